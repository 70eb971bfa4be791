"""train_setting: the library call behind `fv train` (config, run folder, resume/fresh/init)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Callable

from fv.engine.checkpoint import expect_setting, load_model_state, read_checkpoint
from fv.engine.config import (ConfigError, check_setting, data_synth_version, default_config,
                              learned_synth_version)
from fv.engine.families import family_of
from fv.trainer import distributed
from fv.trainer.ema import EMA
from fv.trainer.expression_embedders import check_embedder
from fv.trainer.loop import Trainer
from fv.trainer.run_folder import METRICS, checkpoint_files


def train_setting(setting: str, data: Path, run_dir: Path | None = None, runs_root: Path = Path("runs"),
                  preset: str = "demo", overrides: dict | None = None, device: str = "auto",
                  resume: bool = True, init: Path | None = None, motion_checkpoint: Path | None = None,
                  progress: bool = True, log: Callable[[str], None] = print, objective: str | None = None,
                  override: bool = False, embedder: str | None = None,
                  model_overrides: dict | None = None) -> Path:
    """objective: "frame-eps" | "residual-x0" for a fresh diffusion run (fv.engine.diffusion.OBJECTIVES);
    None keeps the preset's (demo: residual-x0, thesis: frame-eps), or the resumed / initial checkpoint's.
    override: a resumed run takes the given lr / batch_size / seed (fv.trainer.loop.TRAJECTORY) instead of
    refusing them. embedder: both_retrievedMcs' expression embedder for a fresh run
    (fv.trainer.expression_embedders; None: the default, or the resumed / initial checkpoint's). model_overrides:
    fields of the preset's model config a fresh run changes (e.g. LFDM's lfae_steps; an --init run keeps its
    checkpoint's architecture)."""
    setting = check_setting(setting)
    config = default_config(setting, preset, **(overrides or {}))
    if model_overrides:
        config = config.replace(model=dataclasses.replace(config.model, **model_overrides))
    family = family_of(config)
    if objective is not None:   # a fresh run: a resumed or fine-tuned run keeps its checkpoint's objective
        if init is not None:
            raise ConfigError(f"--{objective.split('-')[0]} chooses what a fresh run diffuses; --init keeps the "
                              f"initial checkpoint's")
        config = family.with_objective(config, objective)
    if embedder is not None:
        if init is not None:
            raise ConfigError("--embedder chooses a fresh run's motion codes; --init keeps the initial checkpoint's")
        config = family.with_embedder(config, check_embedder(embedder).name)   # before --fresh removes anything
    run_dir = Path(run_dir or Path(runs_root) / setting)
    if not resume and run_dir.exists():
        for p in list(run_dir.glob("*.safetensors")) + [run_dir / METRICS]:
            p.unlink(missing_ok=True)
        shutil.rmtree(run_dir / "samples", ignore_errors=True)
    fresh = not checkpoint_files(run_dir)   # a run resumes from last.safetensors or, unreadable, a step_*
    motion = _motion(family.motion_setting(config), motion_checkpoint)
    ckpt, keep = None, ()
    if init is not None and fresh:
        # fine-tuning: the architecture comes from the initial checkpoint (a diffusion setting's frozen
        # GRU travels inside it, so it is the motion source too, unless a motion checkpoint replaces it)
        ckpt = read_checkpoint(init)
        expect_setting(ckpt, setting)
        config, keep = family.fine_tune(config, ckpt.config, init, motion)
        # the average starts from the trained weights: on the data they learned a short fine-tune only nudges
        # it (no warm-up); on other data (another generator version, real faces) it follows the new weights
        other = data_synth_version(str(data)) != learned_synth_version(ckpt.config)
        config = config.replace(train=dataclasses.replace(config.train, ema_warmup=other))
    elif fresh:
        config = family.fresh_run(config, motion)
    trainer = Trainer(config, data, run_dir, device=device, resume=resume, progress=progress, log=log,
                      schedule=overrides, override=override)
    if ckpt is not None:
        _fresh_subject_head(trainer.model, ckpt, log)
        for name in keep:   # modules the trainer set up itself (the --motion-checkpoint GRU), not the init's
            for k, v in trainer.model[name].state_dict().items():
                ckpt.tensors[f"model.{name}.{k}"] = v.detach().clone()
        load_model_state(trainer.model, ckpt)
        ema = ckpt.section("ema")
        if ema:
            trainer.ema.load(ema)
        else:                                   # a packed checkpoint: its weights are the EMA weights
            trainer.ema = EMA(trainer.step.trainable, trainer.config.train.ema_decay, trainer.config.train.ema_warmup)
        log(f"initialised from {init} (step {ckpt.step})")
    try:
        if objective is not None and not fresh and (have := trainer.config.model.objective) != objective:
            raise ConfigError(f"{run_dir} holds a {have} run: --{objective.split('-')[0]} needs --fresh or another "
                              f"--run-dir")
        if embedder is not None and not fresh and (had := trainer.config.model.embedder) != config.model.embedder:
            raise ConfigError(f"{run_dir} holds a run whose codes come from {had}: --embedder {embedder} needs --fresh "
                              f"or another --run-dir")
        return trainer.fit()
    finally:
        distributed.teardown(trainer.dist)


def _motion(need: str | None, motion_checkpoint: Path | None):
    """(config, path) of the motion checkpoint a run takes its frozen GRU from, checked to be a `need` one."""
    if need is None or motion_checkpoint is None:
        return None
    ckpt = read_checkpoint(motion_checkpoint)
    expect_setting(ckpt, need)
    return ckpt.config, Path(motion_checkpoint)


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


def attach_motion_source(config, motion_checkpoint: Path | None):
    """`config` as a fresh run takes it, with the frozen GRU of `motion_checkpoint` where its family needs one
    (onlyDM: a baseline checkpoint, EM-DM: an onlyEM one); unchanged otherwise."""
    family = family_of(config)
    return family.fresh_run(config, _motion(family.motion_setting(config), motion_checkpoint))
