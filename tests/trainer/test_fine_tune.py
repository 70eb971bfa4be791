"""Fine-tuning (`fv train SETTING --init CKPT`): the architecture comes from the checkpoint, the loss
weights from the requested preset, and for onlyDM / EM-DM `--motion-checkpoint` swaps the frozen GRU."""

import dataclasses
from pathlib import Path

import pytest
import torch

from fv.engine.checkpoint import read_checkpoint
from fv.engine.config import ConfigError, default_config
from fv.trainer.run import attach_motion_source
from fv.trainer.loop import Trainer
from fv.trainer.run import train_setting
from tests.export.conftest import tiny_config
from tests.tiny import tiny_gan_config

QUIET = dict(progress=False, log=lambda m: None)
ONE_STEP = dict(steps=1, batch_size=2, sample_every=0, log_every=1)


def _gru(data, run: Path, seed: int) -> Path:
    return Trainer(tiny_gan_config("baseline", steps=1, seed=seed), data, run, **QUIET).fit()


def _r_weights(ckpt: Path, prefix: str) -> torch.Tensor:
    return read_checkpoint(ckpt).section(prefix)["R.cell.weight_hh"]


def test_fine_tune_keeps_or_swaps_the_frozen_gru(tiny_data, tmp_path):
    gru_a, gru_b = _gru(tiny_data, tmp_path / "a", 1), _gru(tiny_data, tmp_path / "b", 2)
    assert not torch.equal(_r_weights(gru_a, "ema"), _r_weights(gru_b, "ema"))
    cfg = tiny_config("onlyDM")
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, unet=dataclasses.replace(cfg.model.unet, image_size=64)),
                      train=dataclasses.replace(cfg.train, **ONE_STEP))
    dm = Trainer(attach_motion_source(cfg, gru_a), tiny_data, tmp_path / "dm", **QUIET).fit()
    torch.testing.assert_close(_r_weights(dm, "model"), _r_weights(gru_a, "ema"))

    kept = train_setting("onlyDM", tiny_data, run_dir=tmp_path / "ft_keep", overrides=dict(ONE_STEP, lr=0.0),
                         resume=False, init=dm, **QUIET)
    torch.testing.assert_close(_r_weights(kept, "model"), _r_weights(gru_a, "ema"))

    swapped = train_setting("onlyDM", tiny_data, run_dir=tmp_path / "ft_swap", overrides=dict(ONE_STEP, lr=0.0),
                            resume=False, init=dm, motion_checkpoint=gru_b, **QUIET)
    out = read_checkpoint(swapped)
    torch.testing.assert_close(out.section("model")["R.cell.weight_hh"], _r_weights(gru_b, "ema"))
    assert out.config.model.motion_from == str(gru_b)
    # the U-Net is the initial checkpoint's (lr 0: unchanged by the step)
    torch.testing.assert_close(out.section("model")["unet.out.2.weight"],
                               read_checkpoint(dm).section("model")["unet.out.2.weight"])


def test_fine_tune_takes_the_loss_weights_of_the_preset(tiny_data, tmp_path):
    cfg = tiny_gan_config("baseline", steps=1)
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, lambda_rec=0.0, lambda_emo=3.0))
    start = Trainer(cfg, tiny_data, tmp_path / "start", **QUIET).fit()
    out = train_setting("baseline", tiny_data, run_dir=tmp_path / "ft", overrides=ONE_STEP, resume=False,
                        init=start, **QUIET)
    model = read_checkpoint(out).config.model
    preset = default_config("baseline", "demo").model
    assert preset.lambda_rec > 0
    assert (model.lambda_rec, model.lambda_emo) == (preset.lambda_rec, preset.lambda_emo)   # the preset's
    assert (model.gen_ch, model.dim_z_content) == (4, 8)             # the checkpoint's architecture


def test_objective_flags_choose_what_a_fresh_run_diffuses_and_refuse_what_they_cannot_do(tiny_data, tmp_path):
    """The demo preset diffuses the residual with x0 prediction, the thesis preset the frame with eps
    prediction (thesis 3.2.1); `fv train --frame / --residual` (objective=) overrides that for a fresh run and
    the checkpoint records it. Resuming with the same flag continues; GAN settings, fine-tunes and resuming
    a run of the other objective refuse it."""
    gru = _gru(tiny_data, tmp_path / "g", 1)
    demo, thesis = default_config("onlyDM", "demo").model, default_config("onlyDM", "thesis").model
    assert demo.objective == "residual-x0" and thesis.objective == "frame-eps"
    out = train_setting("onlyDM", tiny_data, run_dir=tmp_path / "res", overrides=ONE_STEP, resume=False,
                        motion_checkpoint=gru, **QUIET)                      # the demo preset's own
    model = read_checkpoint(out).config.model
    assert model.objective == "residual-x0"
    assert train_setting("onlyDM", tiny_data, run_dir=tmp_path / "res", overrides=ONE_STEP, objective="residual-x0",
                         **QUIET) == out                                   # resumed: already at its last step
    frame = train_setting("onlyDM", tiny_data, run_dir=tmp_path / "frame", overrides=ONE_STEP,
                          motion_checkpoint=gru, objective="frame-eps", **QUIET)
    model = read_checkpoint(frame).config.model
    assert model.objective == "frame-eps"
    with pytest.raises(ConfigError, match="frame-eps run: --residual needs --fresh"):
        train_setting("onlyDM", tiny_data, run_dir=tmp_path / "frame", overrides=ONE_STEP, objective="residual-x0",
                      **QUIET)
    with pytest.raises(ConfigError, match="residual-x0 run: --frame needs --fresh"):
        train_setting("onlyDM", tiny_data, run_dir=tmp_path / "res", overrides=ONE_STEP, objective="frame-eps",
                      **QUIET)
    with pytest.raises(ConfigError, match="diffusion"):
        train_setting("baseline", tiny_data, run_dir=tmp_path / "b", overrides=ONE_STEP, objective="residual-x0",
                      **QUIET)
    with pytest.raises(ConfigError, match="init"):
        train_setting("onlyDM", tiny_data, run_dir=tmp_path / "ft", overrides=ONE_STEP, init=out,
                      objective="frame-eps", **QUIET)


def _synthetic_copy(src: Path, dst: Path, version: int) -> Path:
    """The tiny clips again, with a meta.json saying they were drawn by synthetic generator `version`."""
    import shutil

    from fv.data.layout import write_meta
    shutil.copytree(src, dst)
    write_meta(dst, name="synthetic", source="synthetic", synth_version=version)
    return dst


def test_the_average_follows_a_fine_tune_on_other_data_and_resumes_exactly(tiny_data, tmp_path):
    v1, v2 = _synthetic_copy(tiny_data, tmp_path / "v1", 1), _synthetic_copy(tiny_data, tmp_path / "v2", 2)
    start = Trainer(tiny_gan_config("baseline", steps=1), v1, tmp_path / "start", **QUIET).fit()
    assert read_checkpoint(start).config.synth_version == 1
    two = dict(ONE_STEP, steps=2, ckpt_every=1)
    for data, warmup in ((v1, False), (v2, True)):   # same data: a nudge; another version: a warm-up
        whole = train_setting("baseline", data, run_dir=tmp_path / f"w{warmup}", overrides=two, resume=False,
                              init=start, **QUIET)
        cfg = read_checkpoint(whole).config
        assert cfg.train.ema_warmup is warmup and cfg.synth_version == read_checkpoint(start).config.synth_version + warmup
        # stop after step 1, resume to 2: the same average as the uninterrupted run (the flag is in the config)
        train_setting("baseline", data, run_dir=tmp_path / f"r{warmup}", overrides=dict(two, steps=1),
                      resume=False, init=start, **QUIET)
        resumed = train_setting("baseline", data, run_dir=tmp_path / f"r{warmup}", overrides=two, resume=True,
                                **QUIET)
        a, b = read_checkpoint(whole).section("ema"), read_checkpoint(resumed).section("ema")
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
