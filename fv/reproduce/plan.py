"""What `fv reproduce` runs: the presets' budgets, and the training order the settings' dependencies need.

Dependencies (read from the families, not listed per setting where the family says it): onlyDM's and EM-DM's
motion codes come from the frozen GRU of a baseline / onlyEM checkpoint (Family.motion_setting);
both_retrievedMcs' from an expression embedder (`fv train embedder`), whose codes of the training videos
become its motion bank (fv.trainer.expression_bank). LFDM, baseline and onlyEM need nothing.

Presets:
  tiny    a test's: 3 synthetic identities (6 test videos), 3 optimiser steps per network (LFDM: 2 of them
          on its autoencoder, 1 on its flow diffusion), 2 sampling steps, emotion scores only (FVD's I3D and
          dlib take minutes on a CPU). Numbers mean nothing; it checks that every stage runs and resumes.
  demo    this CPU: the synthetic set's 48 training identities (the ones the shipped checkpoints learned) and
          4 held-out ones (48 test videos); ONE budget for every network, 300 optimiser steps at the demo
          preset's batch, so no setting gets more training than another. Where fv ships a checkpoint of the
          setting (baseline, onlyDM, LFDM, the fecnet-fv16 embedder) the 300 steps fine-tune it at a tenth of
          the preset's learning rate, as `fv demo` does; onlyEM, EM-DM and both_retrievedMcs start from
          scratch, so at this budget they are far weaker than the shipped three and the comparison says more
          about the budget than about the settings (--init scratch trains all from scratch). Rendered with
          each checkpoint's own sampling (25 DDIM steps); FVD, emotion scores and dlib's ACD.
  thesis  MUG (--data, prepared by `fv data mug`): every network at its thesis preset (GAN 100k steps,
          diffusion 200k, LFDM 200k, embedder 20k, batch 16), from scratch. Without a GPU it prints the
          torchrun commands of the plan instead of running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fv.engine.config import (DIFFUSION_SETTINGS, GAN_SETTINGS, LFDM_SETTINGS, ConfigError, check_setting,
                              default_config)
from fv.engine.families import family_of

THESIS_SETTINGS = GAN_SETTINGS + DIFFUSION_SETTINGS + LFDM_SETTINGS   # the six of the thesis' tables
EMBEDDER = "embedder"
EMBEDDER_OF = {"both_retrievedMcs": EMBEDDER}   # the settings whose motion codes an expression embedder makes
PRESETS = ("tiny", "demo", "thesis")
INITS = ("shipped", "scratch")
FINE_TUNE_LR = 0.1                               # a fine-tune's lr: a tenth of the preset's (as `fv demo`)


@dataclass(frozen=True)
class Budget:
    """Everything a preset decides; saved in the stage records (a changed field reruns what it touches)."""
    name: str
    train_preset: str                    # fv train's preset the networks start from: demo | thesis
    steps: int | None                    # optimiser steps per network (None: the train preset's own)
    batch_size: int | None = None        # None: the train preset's
    init: str = "scratch"                # shipped: fine-tune fv's shipped checkpoint where one exists
    model: dict = field(default_factory=dict)   # setting -> model config fields (tiny: LFDM's stage switch)
    synth: dict | None = None            # fv.data.synth.make_synthetic arguments (None: --data is needed)
    sample_steps: int | None = None      # diffusion sampling steps at render (None: each checkpoint's own)
    metrics: tuple[str, ...] = ("fvd", "emotion", "identity")
    identity_models: tuple[str, ...] = ("dlib",)
    bootstrap: int = 200                 # FVD resamples for its spread
    seed: int = 0                        # render-set base seed (training: each preset's own)

    def key(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def budget(preset: str, steps: int | None = None, init: str | None = None, sample_steps: int | None = None,
           metrics: tuple[str, ...] | None = None, identity_models: tuple[str, ...] | None = None) -> Budget:
    """A preset's budget with the options the user gave in place of its own (None keeps the preset's)."""
    if preset not in PRESETS:
        raise ConfigError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    if init is not None and init not in INITS:
        raise ConfigError(f"--init must be one of {', '.join(INITS)}, got {init!r}")
    for name, v in (("--steps", steps), ("--sample-steps", sample_steps)):
        if v is not None and v < 1:
            raise ConfigError(f"{name} must be a positive integer, got {v}")
    if preset == "tiny":
        b = Budget("tiny", "demo", 3, batch_size=2, model={"LFDM": {"lfae_steps": 2}},
                   synth=dict(n_identities=3, n_test_identities=1, takes=1), sample_steps=2,
                   metrics=("emotion",), identity_models=(), bootstrap=50)
    elif preset == "demo":
        b = Budget("demo", "demo", 300, init="shipped", synth=dict(n_identities=52, n_test_identities=4, takes=2))
    else:
        b = Budget("thesis", "thesis", None, identity_models=("arcface", "vgg-face", "openface"))
    over = {k: v for k, v in dict(steps=steps, init=init, sample_steps=sample_steps, metrics=metrics,
                                  identity_models=identity_models).items() if v is not None}
    return Budget(**{**b.__dict__, **over})


def training_order() -> list[str]:
    """The six settings and the embedder, each after what it needs (baseline, onlyEM, onlyDM, EM-DM, embedder,
    both_retrievedMcs, LFDM)."""
    order: list[str] = []

    def add(s: str) -> None:
        for d in needs(s).values():
            if d not in order:
                add(d)
        if s not in order:
            order.append(s)
    for s in THESIS_SETTINGS:
        add(s)
    return order


def needs(setting: str) -> dict[str, str]:
    """role -> setting: what a fresh run of `setting` takes from another one ("motion": its frozen GRU,
    "embedder": the expression embedder of its codes)."""
    setting = check_setting(setting)
    out = {}
    motion = family_of(default_config(setting)).motion_setting(default_config(setting))
    if motion is not None:
        out["motion"] = motion
    if setting in EMBEDDER_OF:
        out["embedder"] = EMBEDDER_OF[setting]
    return out


def shipped(setting: str) -> Path | None:
    """fv's shipped checkpoint of a setting (the embedder's: fecnet-fv16), None where fv ships none."""
    from fv.engine.assets import SHIPPED
    from fv.trainer.expression_embedders import DEFAULT_EMBEDDER
    p = SHIPPED / f"{DEFAULT_EMBEDDER if setting == EMBEDDER else setting}.safetensors"
    return p if p.is_file() else None


def train_overrides(b: Budget, setting: str, fine_tune: bool) -> dict:
    """fv train's TrainConfig overrides of one network: the budget's steps and batch, one checkpoint at the end
    (and every 250 steps, so a killed run resumes near where it stopped), no preview strips."""
    cfg = default_config(setting, b.train_preset).train
    steps = b.steps or cfg.steps
    over = dict(steps=steps, ckpt_every=min(steps, cfg.ckpt_every), sample_every=0)
    if b.batch_size is not None:
        over["batch_size"] = b.batch_size
    if fine_tune:
        over["lr"] = cfg.lr * FINE_TUNE_LR
    return over


def torchrun_plan(b: Budget, data: Path, out: Path, gpus: int = 8) -> list[str]:
    """The thesis recipe as shell commands (one `fv train` per network, in training order, on `gpus` GPUs
    with torchrun), then the render sets, `fv eval` and the report: what `--preset thesis` runs on a GPU."""
    tr = f"torchrun --standalone --nproc_per_node={gpus} -m fv.cli.main train"
    runs = out / "runs"
    lines = []
    for s in training_order():
        extra = []
        for role, dep in needs(s).items():
            ck = runs / dep / "last.safetensors"
            extra.append(f"--motion-checkpoint {ck}" if role == "motion" else f"--embedder fecnet:{ck}")
        steps = f" --steps {b.steps}" if b.steps else ""
        lines.append(f"{tr} {s} --preset {b.train_preset} --data {data} --run-dir {runs / s}{steps} "
                     + " ".join(extra))
    for s in THESIS_SETTINGS:
        lines.append(f"fv render-set {runs / s / 'last.safetensors'} --data {data} --out {out / 'renders' / s} "
                     f"--seed {b.seed}")
    sets = " ".join(str(out / "renders" / s) for s in THESIS_SETTINGS)
    lines.append(f"fv eval {sets} --data {data} --out {out / 'eval'} --identity-model "
                 f"{','.join(b.identity_models)} --name {','.join(THESIS_SETTINGS)}")
    lines.append(f"fv reproduce --preset thesis --data {data} --out {out}   # the report from the above")
    return [" ".join(line.split()) for line in lines]
