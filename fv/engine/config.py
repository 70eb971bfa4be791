"""Frozen configurations of every setting, saved inside every checkpoint (STYLE practice 5).

A `RunConfig` is everything needed to rebuild a trained model and to continue its training:
the setting name, the model configuration and the training configuration. Presets: "demo" (trains on a
2-core CPU in minutes) and "thesis" (the thesis' hyper-parameters, thesis 2.2.2, 3.1.2, 3.2.3).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field

GAN_SETTINGS = ("baseline", "onlyEM")
DIFFUSION_SETTINGS = ("onlyDM", "EM-DM", "both_retrievedMcs")
SETTINGS = GAN_SETTINGS + DIFFUSION_SETTINGS
PRESETS = ("demo", "thesis")
GAN_LOSS_WEIGHTS = ("lambda_emo", "lambda_ide", "lambda_rec")  # fine-tuning takes these from the preset


class ConfigError(ValueError):
    pass


def check_setting(name: str) -> str:
    for s in SETTINGS:
        if s.lower() == str(name).lower():
            return s
    raise ConfigError(f"unknown setting {name!r}; choose one of: {', '.join(SETTINGS)}")


@dataclass(frozen=True)
class GANConfig:
    """VICEGAN (baseline) and onlyEM networks, thesis 2.2 / 3.1."""
    dim_z_motion: int = 10
    dim_z_content: int = 64
    n_classes: int = 7          # dim_z_category
    n_emotions: int = 6
    n_identities: int = 42      # training subjects (D_V's identity head); set from the data
    gen_ch: int = 32
    disc_ch: int = 32
    n_frames: int = 32
    emotion_in_gru: bool = False  # True for onlyEM (outer-product conditioning, thesis 3.1.1)
    lambda_emo: float = 1.0
    lambda_ide: float = 1.0
    disc_spectral_norm: bool = False  # fv's stabiliser, on in the demo preset (thesis: D_V's layers unspecified)
    # fv's warm start for short CPU runs, not in the thesis (0 there): each fake starts from a real video's
    # f(0) with that video's emotion as target, and lambda_rec * mean|fake - real| joins L_G (fv.trainer.gan_step)
    lambda_rec: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation. Thesis: AdamW, batch 16 videos; GAN lr 2e-4, diffusion lr 1e-4, betas (0.5, 0.999)."""
    steps: int = 2000
    batch_size: int = 16
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.01
    grad_clip: float | None = None
    amp: bool = True             # used on CUDA only
    ema_decay: float = 0.999
    seed: int = 0
    log_every: int = 10
    sample_every: int = 250
    ckpt_every: int = 250
    keep_checkpoints: int = 3


@dataclass(frozen=True)
class RunConfig:
    setting: str
    preset: str
    model: typing.Any                       # GANConfig | DiffusionConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    data: str = ""                          # the data folder it was trained on (informative)

    def to_dict(self) -> dict:
        return {"setting": self.setting, "preset": self.preset, "model_type": type(self.model).__name__,
                "model": to_dict(self.model), "train": to_dict(self.train), "data": self.data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(d: dict) -> "RunConfig":
        return RunConfig(setting=check_setting(d["setting"]), preset=d.get("preset", "demo"),
                         model=from_dict(_model_type(d.get("model_type")), d["model"]),
                         train=from_dict(TrainConfig, d["train"]), data=d.get("data", ""))

    def replace(self, **kw) -> "RunConfig":
        return dataclasses.replace(self, **kw)


def _model_type(name: str | None) -> type:
    if name == "GANConfig":
        return GANConfig
    if name == "DiffusionConfig":
        from fv.engine.diffusion_config import DiffusionConfig  # imports the U-Net's config
        return DiffusionConfig
    raise ConfigError(f"unknown model type {name!r} in checkpoint config")


def to_dict(obj) -> dict:
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        out[f.name] = to_dict(v) if dataclasses.is_dataclass(v) else (list(v) if isinstance(v, tuple) else v)
    return out


def from_dict(cls, d: dict):
    """Rebuild a (nested) frozen dataclass; lists become tuples where the field is a tuple; unknown keys
    are an error, missing keys take the default (so older checkpoints keep loading)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"{cls.__name__} has no fields {sorted(unknown)}")
    kw = {}
    for k, v in d.items():
        hint = hints[k]
        sub = next((a for a in (typing.get_args(hint) or (hint,)) if dataclasses.is_dataclass(a)), None)
        if sub is not None and isinstance(v, dict):
            v = from_dict(sub, v)
        elif isinstance(v, list):
            v = tuple(tuple(x) if isinstance(x, list) else x for x in v)
        kw[k] = v
    return cls(**kw)


def default_config(setting: str, preset: str = "demo", **train_overrides) -> RunConfig:
    """The configuration `fv train SETTING --preset PRESET` starts from."""
    setting = check_setting(setting)
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    if setting in GAN_SETTINGS:
        model = GANConfig(emotion_in_gru=(setting == "onlyEM"))
        if preset == "demo":
            model = dataclasses.replace(model, gen_ch=16, disc_ch=16, dim_z_content=32, disc_spectral_norm=True,
                                        lambda_rec=100.0)
            train = TrainConfig(steps=3000, batch_size=8, lr=5e-4, sample_every=250, ckpt_every=250,
                                ema_decay=0.995)
        else:
            model = dataclasses.replace(model, gen_ch=64, disc_ch=64, dim_z_content=128)
            train = TrainConfig(steps=100_000, batch_size=16, lr=2e-4, sample_every=2000, ckpt_every=2000)
    else:
        from fv.engine.diffusion_config import diffusion_preset
        model, train = diffusion_preset(setting, preset)
    train = dataclasses.replace(train, **train_overrides)
    return RunConfig(setting=setting, preset=preset, model=model, train=train)
