"""A run stopped and resumed ends with the same weights as an uninterrupted run (same seed, CPU)."""

import pytest
import torch
from safetensors.torch import load_file

from fv.engine.checkpoint import CheckpointError
from fv.engine.config import ConfigError
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
    with pytest.raises(ConfigError, match="--lr 0.5"):               # lr is part of the trajectory: refused
        Trainer(tiny_gan_config(steps=3, lr=0.5), tiny_data, tmp_path, progress=False, log=lambda m: None,
                schedule={"sample_every": 0, "ckpt_every": 1, "lr": 0.5})
    t = Trainer(tiny_gan_config(steps=3, sample_every=0, ckpt_every=1), tiny_data, tmp_path,
                progress=False, log=lambda m: None, schedule={"sample_every": 0, "ckpt_every": 1})
    assert t.start == 2 and t.config.train.sample_every == 0 and t.config.train.ckpt_every == 1
    assert t.config.train.lr == tiny_gan_config().train.lr


def test_dropout_resumes_exactly(tiny_data, tmp_path):
    """A U-Net with dropout (the thesis preset has 0.1) draws its masks from the global RNG: stopped after
    step 2 and resumed, it must still end where the uninterrupted run ends."""
    import dataclasses

    from fv.trainer.run import attach_motion_source
    from tests.export.conftest import tiny_config
    gru = Trainer(tiny_gan_config("baseline", steps=1), tiny_data, tmp_path / "gru", progress=False).fit()
    cfg = tiny_config("onlyDM")
    unet = dataclasses.replace(cfg.model.unet, image_size=64, dropout=0.5)
    cfg = attach_motion_source(cfg.replace(model=dataclasses.replace(cfg.model, unet=unet)), gru)

    def run(folder, steps, every):
        train = dataclasses.replace(cfg.train, steps=steps, ckpt_every=every, batch_size=2, log_every=1,
                                    sample_every=0)
        return Trainer(cfg.replace(train=train), tiny_data, tmp_path / folder, progress=False,
                       log=lambda m: None).fit()
    full = run("a", 4, 4)
    run("b", 2, 2)
    torch.manual_seed(12345)             # whatever the process did in between
    a, b = load_file(full), load_file(run("b", 4, 2))
    for k in a:
        assert torch.equal(a[k], b[k]), k
