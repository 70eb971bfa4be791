"""Checkpoint round trips, the config inside, and clear errors for bad files."""

import dataclasses

import pytest
import torch

from fv.engine.families import build_model
from fv.engine.checkpoint import (CheckpointError, find_latest, load_checkpoint, read_checkpoint,
                                  save_checkpoint, state_tensors)
from fv.engine.config import ConfigError, GANConfig, RunConfig, check_setting, default_config


def _cfg(setting="baseline"):
    c = default_config(setting, "demo")
    return c.replace(model=dataclasses.replace(c.model, gen_ch=4, disc_ch=4, dim_z_content=8, n_identities=3))


def test_config_round_trip_keeps_types():
    c = _cfg("onlyEM")
    d = RunConfig.from_dict(c.to_dict())
    assert d == c and isinstance(d.train.betas, tuple) and isinstance(d.model, GANConfig)
    assert d.model.emotion_in_gru and not _cfg("baseline").model.emotion_in_gru


def test_thesis_hyperparameters():
    gan = default_config("baseline", "thesis")
    assert gan.train.lr == 2e-4 and gan.train.betas == (0.5, 0.999) and gan.train.batch_size == 16
    assert gan.model.lambda_emo == 1.0 and gan.model.lambda_ide == 1.0
    assert gan.model.dim_z_motion == 10 and gan.model.n_classes == 7


def test_unknown_setting_and_preset():
    with pytest.raises(ConfigError, match="unknown setting"):
        check_setting("onlyXY")
    with pytest.raises(ConfigError, match="unknown preset"):
        default_config("baseline", "huge")
    assert check_setting("onlydm") == "onlyDM"


def test_save_load_round_trip_uses_ema(tmp_path):
    cfg = _cfg()
    model = build_model(cfg)
    tensors = state_tensors("model", model.state_dict())
    ema = {f"ema.{k}": torch.full_like(v, 0.5) for k, v in tensors.items()
           if k.startswith(("model.R.", "model.G.")) and "weight" in k}
    ema = {k.replace("ema.model.", "ema."): v for k, v in ema.items()}
    path = save_checkpoint(tmp_path / "x.safetensors", cfg, 7, {**tensors, **ema})
    ck = read_checkpoint(path)
    assert ck.step == 7 and ck.config == cfg
    _, raw = load_checkpoint(path, ema=False)
    _, smooth = load_checkpoint(path, ema=True)
    torch.testing.assert_close(raw["G"].out.weight, model["G"].out.weight)
    assert torch.all(smooth["G"].out.weight == 0.5) and not smooth.training
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write left no temporary file


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="not a readable fv checkpoint"):
        read_checkpoint(junk)
    from safetensors.torch import save_file
    save_file({"a": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="not an fv checkpoint"):
        read_checkpoint(tmp_path / "foreign.safetensors")
    # truncated file (a crash mid-copy)
    cfg = _cfg()
    good = save_checkpoint(tmp_path / "good.safetensors", cfg, 1, state_tensors("model", build_model(cfg).state_dict()))
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        read_checkpoint(cut)


def test_wrong_setting_and_shape_mismatch(tmp_path):
    cfg = _cfg("baseline")
    p = save_checkpoint(tmp_path / "b" / "last.safetensors", cfg, 1,
                        state_tensors("model", build_model(cfg).state_dict()))
    with pytest.raises(CheckpointError, match="is a baseline checkpoint; this needs onlyEM"):
        load_checkpoint(p, settings=("onlyEM",))
    # weights that do not fit the config they claim
    other = cfg.replace(model=dataclasses.replace(cfg.model, gen_ch=8))
    q = save_checkpoint(tmp_path / "q.safetensors", cfg, 1, state_tensors("model", build_model(other).state_dict()))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(q)
    assert find_latest(tmp_path, "baseline") == p
    assert find_latest(tmp_path, "onlyEM") is None


def test_configs_of_older_checkpoints_are_upgraded_or_refused_with_a_reason():
    """fv's earlier DiffusionConfig kept five sampling fields at its top level and described the objective with
    `target` plus the U-Net's `predict` (and `x_skip`); those dicts still load, as the same configuration."""
    from fv.engine.config import ConfigError, DiffusionConfig, RunConfig, default_config
    new = default_config("onlyDM", "demo")
    d = new.to_dict()
    old = dict(d["model"])
    sampling = old.pop("sampling")
    old.pop("objective")
    old.update(sampler=sampling["sampler"], sample_steps=sampling["steps"], eta=sampling["eta"],
               guidance=sampling["guidance"], ref_strength=sampling["ref_strength"], target="residual",
               unet={**old["unet"], "predict": "x0", "x_skip": False})
    back = RunConfig.from_dict({**d, "model": old})
    assert back.model == new.model and isinstance(back.model, DiffusionConfig)
    # a field an old checkpoint lacked takes that version's default (ref_strength was 0.5 there)
    del old["ref_strength"]
    assert RunConfig.from_dict({**d, "model": old}).model.sampling.ref_strength == 0.5
    for unet, target, match in (({"x_skip": True, "predict": "eps"}, "residual", "x_skip"),
                                ({"x_skip": False, "predict": "eps"}, "residual", "residual.*eps")):
        with pytest.raises(ConfigError, match=match):
            RunConfig.from_dict({**d, "model": {**old, "target": target, "unet": {**old["unet"], **unet}}})
