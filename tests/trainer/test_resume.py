"""A run stopped and resumed ends with the same weights as an uninterrupted run (same seed, CPU): every
setting, at the demo and the thesis preset's architecture (issue 15)."""

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fv.engine.checkpoint import CheckpointError
from fv.engine.config import EMBEDDER_SETTINGS, GAN_SETTINGS, PRESETS, SETTINGS, ConfigError
from fv.trainer.loop import Trainer
from fv.trainer.run import attach_motion_source
from tests.tiny import tiny_gan_config, tiny_preset_config


# the thesis' settings (the expression embedder's exact resume is tested in test_embedder.py, on data whose
# action units its triplets can learn)
THESIS_SETTINGS = [s for s in SETTINGS if s not in EMBEDDER_SETTINGS]
MOTION = {"onlyDM": "baseline", "EM-DM": "onlyEM"}   # the setting whose GRU a diffusion setting's codes come from


@pytest.fixture(scope="module")
def grus(tiny_data, tmp_path_factory) -> dict[tuple[str, str], Path]:
    """(setting, preset) -> a one-step tiny checkpoint of baseline / onlyEM, the frozen GRU of onlyDM / EM-DM."""
    root = tmp_path_factory.mktemp("grus")
    return {(s, p): Trainer(tiny_preset_config(s, p, steps=1), tiny_data, root / f"{s}-{p}", progress=False,
                            log=lambda m: None).fit()
            for s in MOTION.values() for p in PRESETS}


def resume_config(setting: str, preset: str, grus: dict, steps: int, every: int):
    """The preset at tiny widths; the thesis diffusion runs take one whole video per step (32 frames) and
    motion mixing's probability climbs over these 4 steps instead of the preset's thousands, so it mixes."""
    whole_videos = preset == "thesis" and setting not in GAN_SETTINGS
    cfg = tiny_preset_config(setting, preset, steps=steps, ckpt_every=every, batch_size=1 if whole_videos else 2)
    if setting == "both_retrievedMcs":
        cfg = cfg.replace(model=dataclasses.replace(cfg.model, mix_warmup=4))
    return attach_motion_source(cfg, grus.get((MOTION.get(setting), preset)))


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("setting", THESIS_SETTINGS)
def test_stop_and_resume_equals_uninterrupted(tiny_data, tmp_path, grus, setting, preset):
    """Stopped after step 2 and resumed to step 4, a run ends with the uninterrupted run's checkpoint, every
    tensor bit for bit (weights, EMA, optimiser moments), and logs the same losses; the thesis U-Net draws
    dropout masks (p = 0.1) from the global RNG, which the resumed process left in another state."""
    def trainer(folder, steps, every, log=lambda m: None):
        return Trainer(resume_config(setting, preset, grus, steps, every), tiny_data, tmp_path / folder,
                       progress=False, log=log)

    cfg = resume_config(setting, preset, grus, 4, 4)
    if setting == "LFDM":   # stopped in the LFAE stage, resumed into the flow diffusion stage
        assert cfg.model.lfae_steps == 2 and (preset == "demo" or cfg.model.unet.dropout > 0)
    elif preset == "thesis" and setting not in GAN_SETTINGS:
        assert cfg.model.unet.dropout > 0 and cfg.model.batch_mode == "full_video"
    full = load_file(trainer("a", 4, 4).fit())
    trainer("b", 2, 2).fit()
    torch.manual_seed(12345)            # whatever else the process did before resuming
    np.random.seed(12345)
    random.seed(12345)
    logs = []
    resumed = trainer("b", 4, 2, logs.append)
    assert resumed.start == 2 and any("resuming" in m for m in logs)
    end = load_file(resumed.fit())
    assert end.keys() == full.keys()
    assert any(k.startswith("optim.") for k in full) and any(k.startswith("ema.") for k in full)
    differ = [k for k in full if not torch.equal(full[k], end[k])]
    assert differ == [], f"{len(differ)} of {len(full)} tensors differ, e.g. {differ[:3]}"
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    # and the resumed steps did train: weights, average and moments moved from step 2's (or, for LFDM's flow
    # diffusion stage, began after it)
    mid = load_file(tmp_path / "b" / "step_000002.safetensors")
    for part in ("model.", "ema.", "optim."):
        assert any(k not in mid or not torch.equal(mid[k], end[k]) for k in end if k.startswith(part)), part


def losses(run: Path) -> list[dict]:
    """Every logged step's losses (without the seconds trained)."""
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in d.items() if k != "time"} for d in lines]


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
