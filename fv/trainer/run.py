"""train_setting: the library call behind `fv train` (config, run folder, resume/fresh/init)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Callable

from fv.engine.backends.artifacts import read_config
from fv.engine.checkpoint import LAST, expect_setting, load_model_state, read_checkpoint
from fv.engine.config import DIFFUSION_SETTINGS, GAN_LOSS_WEIGHTS, ConfigError, check_setting, default_config
from fv.trainer import distributed
from fv.trainer.ema import EMA
from fv.trainer.loop import Trainer


def train_setting(setting: str, data: Path, run_dir: Path | None = None, runs_root: Path = Path("runs"),
                  preset: str = "demo", overrides: dict | None = None, device: str = "auto",
                  resume: bool = True, init: Path | None = None, motion_checkpoint: Path | None = None,
                  progress: bool = True, log: Callable[[str], None] = print, target: str | None = None) -> Path:
    """target: "frame" | "residual" for a fresh diffusion run (fv.engine.diffusion_config.with_target);
    None keeps the preset's (demo: residual, thesis: frame), or the resumed / initial checkpoint's."""
    setting = check_setting(setting)
    config = default_config(setting, preset, **(overrides or {}))
    if target is not None:   # a fresh diffusion run: a resumed or fine-tuned run keeps its checkpoint's target
        if setting not in DIFFUSION_SETTINGS:
            raise ConfigError(f"--{target} is for the diffusion settings, not {setting}")
        if init is not None:
            raise ConfigError(f"--{target} chooses what a fresh run diffuses; --init keeps the initial "
                              f"checkpoint's target")
        from fv.engine.diffusion_config import with_target
        config = config.replace(model=with_target(config.model, target))
    run_dir = Path(run_dir or Path(runs_root) / setting)
    if not resume and run_dir.exists():
        for p in list(run_dir.glob("*.safetensors")) + [run_dir / "metrics.jsonl"]:
            p.unlink(missing_ok=True)
        shutil.rmtree(run_dir / "samples", ignore_errors=True)
    fresh = not (run_dir / LAST).exists()
    if target is not None and not fresh and (have := read_config(run_dir / LAST).model.target) != target:
        raise ConfigError(f"{run_dir} holds a {have}-target run: --{target} needs --fresh or another --run-dir")
    ckpt = None
    if init is not None and fresh:
        # fine-tuning: the architecture comes from the initial checkpoint (a diffusion setting's frozen
        # GRU travels inside it, so it is the motion source too)
        ckpt = read_checkpoint(init)
        expect_setting(ckpt, setting)
        model = ckpt.config.model
        swap_gru = (setting in DIFFUSION_SETTINGS and model.motion_source == "gru"
                    and motion_checkpoint is not None)
        if swap_gru:                            # fine-tune the U-Net on another frozen GRU's codes
            from fv.trainer.diffusion_step import attach_motion_source
            model = attach_motion_source(config.replace(model=model), motion_checkpoint).model
        elif setting in DIFFUSION_SETTINGS and model.motion_source == "gru":
            model = dataclasses.replace(model, motion_from=str(init))
        elif setting not in DIFFUSION_SETTINGS:  # the loss weights are the requested preset's
            model = dataclasses.replace(model, **{k: getattr(config.model, k) for k in GAN_LOSS_WEIGHTS})
        config = config.replace(model=model)
    elif setting in DIFFUSION_SETTINGS and fresh:
        from fv.trainer.diffusion_step import attach_motion_source
        config = attach_motion_source(config, motion_checkpoint)
    trainer = Trainer(config, data, run_dir, device=device, resume=resume, progress=progress, log=log,
                      schedule=overrides)
    if ckpt is not None:
        _fresh_subject_head(trainer.model, ckpt, log)
        if swap_gru:        # keep the GRU the trainer loaded from --motion-checkpoint, not the checkpoint's
            for k, v in trainer.model["R"].state_dict().items():
                ckpt.tensors[f"model.R.{k}"] = v.detach().clone()
        load_model_state(trainer.model, ckpt)
        ema = ckpt.section("ema")
        if ema:
            trainer.ema.load(ema)
        else:                                   # a packed checkpoint: its weights are the EMA weights
            trainer.ema = EMA(trainer.step.trainable, trainer.config.train.ema_decay)
        # the average starts from trained weights: no warm-up, so a short fine-tune only nudges it
        trainer.ema.warmup = False
        log(f"initialised from {init} (step {ckpt.step})")
    try:
        return trainer.fit()
    finally:
        distributed.teardown(trainer.dist)


def _fresh_subject_head(model, ckpt, log) -> None:
    """D_V's identity head has one output per training subject: when the fine-tuning data has another
    number of subjects, that head starts afresh (everything else is loaded)."""
    own = model.state_dict()
    stale = [k for k, v in ckpt.tensors.items() if k.startswith("model.D.ide.")
             and k[len("model."):] in own and own[k[len("model."):]].shape != v.shape]
    for k in stale:
        ckpt.tensors[k] = own[k[len("model."):]].detach().clone()
    if stale:
        log(f"D_V's identity head re-initialised for {own['D.ide.bias'].shape[0]} training subjects "
            f"(the checkpoint had {ckpt.config.model.n_identities})")
