"""A run stopped and resumed ends with the same weights as an uninterrupted run (same seed, CPU)."""

import pytest
import torch
from safetensors.torch import load_file

from fv.engine.checkpoint import CheckpointError
from fv.trainer.loop import Trainer
from tests.tiny import tiny_gan_config


@pytest.mark.parametrize("setting", ["baseline", "onlyEM"])
def test_stop_and_resume_equals_uninterrupted(tiny_data, tmp_path, setting):
    full = Trainer(tiny_gan_config(setting, steps=4, ckpt_every=4), tiny_data, tmp_path / "a",
                   progress=False, log=lambda m: None).fit()
    Trainer(tiny_gan_config(setting, steps=2, ckpt_every=2), tiny_data, tmp_path / "b",
            progress=False, log=lambda m: None).fit()
    logs = []
    resumed = Trainer(tiny_gan_config(setting, steps=4, ckpt_every=2), tiny_data, tmp_path / "b",
                      progress=False, log=logs.append)
    assert resumed.start == 2 and "resuming" in logs[0]
    resumed = resumed.fit()
    a, b = load_file(full), load_file(resumed)
    assert a.keys() == b.keys()
    assert any(k.startswith("optim.") for k in a) and any(k.startswith("ema.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and training did move the weights
    fresh = Trainer(tiny_gan_config(setting, steps=4), tiny_data, tmp_path / "c", progress=False)
    w0 = fresh.model.state_dict()["G.out.weight"]
    assert not torch.equal(w0, a["model.G.out.weight"])


def test_resume_refuses_a_checkpoint_of_another_setting(tiny_data, tmp_path):
    Trainer(tiny_gan_config("baseline", steps=1), tiny_data, tmp_path, progress=False).fit()
    with pytest.raises(CheckpointError, match="baseline checkpoint"):
        Trainer(tiny_gan_config("onlyEM", steps=2), tiny_data, tmp_path, progress=False)


def test_checkpoints_rotate_and_metrics_are_logged(tiny_data, tmp_path):
    cfg = tiny_gan_config(steps=5, ckpt_every=1, keep_checkpoints=2, sample_every=5)
    Trainer(cfg, tiny_data, tmp_path, progress=False).fit()
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_000004.safetensors",
                                                               "step_000005.safetensors"]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 5 and '"loss_d"' in lines[0]
    assert (tmp_path / "samples" / "step_000005.png").stat().st_size > 0


def test_resume_takes_new_output_schedule_but_keeps_the_trajectory(tiny_data, tmp_path):
    Trainer(tiny_gan_config(steps=2, ckpt_every=2, sample_every=2), tiny_data, tmp_path, progress=False).fit()
    t = Trainer(tiny_gan_config(steps=3, sample_every=0, ckpt_every=1, lr=0.5), tiny_data, tmp_path,
                progress=False, log=lambda m: None, schedule={"sample_every": 0, "ckpt_every": 1, "lr": 0.5})
    assert t.start == 2 and t.config.train.sample_every == 0 and t.config.train.ckpt_every == 1
    assert t.config.train.lr == tiny_gan_config().train.lr        # lr is part of the trajectory: kept
