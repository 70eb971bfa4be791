"""Frozen configurations of every setting, saved inside every checkpoint (STYLE practice 5).

A `RunConfig` is everything needed to rebuild a trained model and to continue its training:
the setting name, the model configuration (one dataclass per model family: `GANConfig`, `DiffusionConfig`,
`LFDMConfig`, `EmbedderConfig`) and the training configuration. Presets: "demo" (trains on a 2-core CPU in minutes) and
"thesis" (the thesis' hyper-parameters, thesis 2.2.2, 3.1.2, 3.2.3). Checkpoints written by older fv versions
are read through each model config's `upgrade` (renamed and merged fields), so they keep loading.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field

from fv.engine.diffusion import OBJECTIVES, PREDICTIONS, DiffusionSchedule, Objective, objective
from fv.engine.models.flow_unet import FlowUNetConfig
from fv.engine.models.unet import UNetConfig
from fv.engine.sample_options import SampleOptions

GAN_SETTINGS = ("baseline", "onlyEM")
DIFFUSION_SETTINGS = ("onlyDM", "EM-DM", "both_retrievedMcs")
EMBEDDER_SETTINGS = ("embedder",)   # both_retrievedMcs' expression embedder (fv.engine.models.fecnet)
LFDM_SETTINGS = ("LFDM",)           # the external reference (thesis 2.3; fv.engine.families.lfdm)
SETTINGS = GAN_SETTINGS + DIFFUSION_SETTINGS + LFDM_SETTINGS + EMBEDDER_SETTINGS
MOTION_SOURCES = ("gru", "retrieved")
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
    ema_warmup: bool = True      # d = min(decay, (1+step)/(10+step)); off for a fine-tune on the data its init learned
    seed: int = 0
    log_every: int = 10
    sample_every: int = 250
    ckpt_every: int = 250
    keep_checkpoints: int = 3


@dataclass(frozen=True)
class DiffusionConfig:
    """onlyDM, EM-DM and both_retrievedMcs (thesis 3.2-3.4)."""
    unet: UNetConfig = field(default_factory=UNetConfig.demo)
    # DDPM, L = 1000, linear betas 1e-4 -> 0.02 (thesis 3.2.1)
    num_steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    # what is diffused and what the U-Net predicts (fv.engine.diffusion.OBJECTIVES): "frame-eps" is the thesis
    objective: str = "frame-eps"
    p_uncond: float = 0.1              # guidance dropout: motion AND emotion zeroed together (3.2.3)
    batch_mode: str = "random_frames"  # "full_video" (all 32 frames) | "random_frames"
    frames_per_video: int = 8          # random_frames: frames drawn per video (thesis: up to 8)
    # where the motion codes come from (fv.engine.motion)
    motion_source: str = "gru"         # "gru": frozen R of a baseline (onlyDM) / onlyEM (EM-DM) checkpoint
    motion: GANConfig | None = None    # that GRU's architecture (its weights travel in this checkpoint)
    motion_from: str = ""              # the checkpoint the GRU was taken from (informative)
    bank_size: int = 0                 # "retrieved": training trajectories stored with the model (3.4.4)
    embedder: str = ""                 # "retrieved": the expression embedder that made them
    mix_max: float = 0.5               # motion mixing: probability rises linearly over mix_warmup steps
    mix_warmup: int = 1000             # to mix_max (thesis 3.4.4 does it per epoch; fv per step)
    # how it samples by default (the thesis samples with all 1000 DDPM steps from pure noise)
    sampling: SampleOptions = field(default_factory=SampleOptions)

    def __post_init__(self):
        objective(self.objective)
        if self.motion_source not in MOTION_SOURCES:
            raise ConfigError(f"motion_source must be one of {MOTION_SOURCES}, got {self.motion_source!r}")
        self.sampling.check_steps(self.num_steps)

    @property
    def parameterisation(self) -> Objective:
        return objective(self.objective)

    def schedule(self, device=None) -> DiffusionSchedule:
        """The noise schedule, built from this config here and nowhere else."""
        return DiffusionSchedule(self.num_steps, self.beta_start, self.beta_end, device=device)

    @staticmethod
    def upgrade(d: dict) -> dict:
        """A model dict written by an older fv: the sampling fields become `sampling`; target, unet.predict
        (and the removed unet.x_skip) become `objective`."""
        d = dict(d)
        old = {"sampler": "sampler", "sample_steps": "steps", "eta": "eta", "guidance": "guidance",
               "ref_strength": "ref_strength"}
        if "sampling" not in d:   # the old DiffusionConfig's defaults, where a field was missing
            legacy = {"sampler": "ddim", "steps": 50, "eta": 0.0, "guidance": 2.0, "ref_strength": 0.5}
            legacy.update({new: d.pop(k) for k, new in old.items() if k in d})
            d["sampling"] = legacy
        unet = dict(d.get("unet", {}))
        if "objective" not in d:
            if unet.pop("x_skip", False):
                raise ConfigError("this checkpoint's U-Net uses x_skip, which fv no longer supports (no preset "
                                  "used it; the runs with it diverged)")
            pair = (d.pop("target", "frame"), unet.pop("predict", "eps"))
            names = {(o.target, o.prediction): n for n, o in OBJECTIVES.items()}
            if pair not in names:
                raise ConfigError(f"target {pair[0]!r} with {pair[1]!r} prediction is not one of fv's "
                                  f"objectives {tuple(OBJECTIVES)}")
            d["objective"] = names[pair]
            if "unet" in d:
                d["unet"] = unet
        return d


@dataclass(frozen=True)
class EmbedderConfig:
    """fv's FECNet-style expression embedder (fv.engine.models.fecnet) and its triplets (fv.trainer.triplets)."""
    channels: tuple[int, ...] = (16, 32, 64, 96)
    dim: int = 16                      # FECNet's width = both_retrievedMcs' unet.motion_dim
    image_size: int = 64               # clips64
    frames_per_video: int = 6          # frames drawn from each video of a batch
    similarity: str = ""               # "aus" (per-frame action units) | "labels" (emotion + phase); set from the data
    au_gap: float = 0.2                # a negative is farther from the anchor than the positive by >= this
    positive_pool: int = 3             # the positive is one of the anchor's nearest other-identity frames
    neutral_edge: int = 4              # labels: frames t < 4 and t >= 28 are neutral (apex: fv.engine.labels.APEX)
    margin_same: float = 0.1           # FECNet's margins: triplets whose three frames share one class
    margin_cross: float = 0.2          # ... and two- or three-class triplets
    shift: int = 3                     # augmentation: random translation of up to this many pixels
    flip: bool = True                  # ... and horizontal flips

    def __post_init__(self):
        if self.similarity not in ("", "aus", "labels"):
            raise ConfigError(f"similarity must be 'aus' or 'labels', got {self.similarity!r}")


def embedder_preset(preset: str) -> tuple[EmbedderConfig, TrainConfig]:
    if preset == "demo":   # about 0.6 s a step on a loaded 2-core CPU; at lr 1e-3 every embedding collapsed to
        # one point within 10 steps (where the squared-distance triplet loss has no gradient)
        return EmbedderConfig(), TrainConfig(steps=2000, batch_size=16, lr=3e-4, betas=(0.9, 0.999),
                                             weight_decay=1e-4, ema_decay=0.99, sample_every=0, ckpt_every=250)
    return (EmbedderConfig(channels=(32, 64, 128, 256)),
            TrainConfig(steps=20_000, batch_size=32, lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4,
                        ema_decay=0.999, sample_every=0, ckpt_every=2000))


@dataclass(frozen=True)
class LFDMConfig:
    """LFDM (thesis 2.3; Ni et al. 2023): the latent flow autoencoder, then the flow diffusion model, one run.
    Steps [0, lfae_steps) train the LFAE; the later ones train the flow U-Net on the frozen LFAE's flows."""
    image_size: int = 64
    ch: tuple[int, ...] = (32, 64, 64)       # LFAE encoder/decoder widths; latent at image_size / 2^(len - 1)
    flow_ch: tuple[int, ...] = (16, 32, 64)  # flow predictor widths (same number of levels)
    latent_ch: int = 16
    groups: int = 8
    unet: FlowUNetConfig = field(default_factory=FlowUNetConfig)
    lfae_steps: int = 1500
    frames_per_video: int = 2          # LFAE: target frames per video and step
    lambda_flow: float = 0.5           # ground-truth flow (L1, image pixels), where the data carries it
    lambda_vis: float = 0.1            # ground-truth visibility (binary cross-entropy), likewise
    flow_scale: float = 1.0            # the diffused flow channels are flow / flow_scale (image pixels)
    num_steps: int = 1000              # DDPM, linear betas, as fv's other diffusion settings
    beta_start: float = 1e-4
    beta_end: float = 0.02
    # x0: the U-Net outputs the flows themselves. With eps prediction (500 steps of the demo preset) x0 = (x_t -
    # sqrt(1 - abar) eps) / sqrt(abar) missed the flows by more than their own spread from t = 300 on, and the
    # sampled flows were noise that scrambled every face; with x0 prediction 300 steps gave whole faces.
    prediction: str = "x0"
    p_uncond: float = 0.1              # guidance dropout of the class (the image condition is always kept)
    # x0 clipped to [-12, 12]: the flows' range (pixels; the synthetic set's largest is 11), visibility [-1, 1]
    sampling: SampleOptions = field(default_factory=lambda: SampleOptions(steps=25, clip_x0=12.0, ref_strength=1.0))

    def __post_init__(self):
        if self.prediction not in PREDICTIONS:
            raise ConfigError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if len(self.ch) != len(self.flow_ch):
            raise ConfigError(f"ch and flow_ch need the same number of levels, got {self.ch} and {self.flow_ch}")
        if self.unet.latent_ch != self.latent_ch:
            raise ConfigError(f"unet.latent_ch {self.unet.latent_ch} must equal latent_ch {self.latent_ch}")
        if self.sampling.ref_strength != 1.0:
            raise ConfigError("LFDM samples its flows from pure noise (ref_strength 1)")
        self.sampling.check_steps(self.num_steps)

    @property
    def latent_size(self) -> int:
        return self.image_size >> (len(self.ch) - 1)

    def schedule(self, device=None) -> DiffusionSchedule:
        return DiffusionSchedule(self.num_steps, self.beta_start, self.beta_end, device=device)


def lfdm_preset(preset: str) -> tuple[LFDMConfig, TrainConfig]:
    if preset == "demo":   # 64 px, latent 16x16: both stages train on a 2-core CPU
        return LFDMConfig(), TrainConfig(steps=3000, batch_size=8, lr=5e-4, betas=(0.9, 0.999), grad_clip=1.0,
                                         ema_decay=0.995, sample_every=500, ckpt_every=250)
    # the paper on MUG: 128x128 frames, 32x32 latent flows, a wider U-Net (fv's data: clips128.npy)
    unet = FlowUNetConfig(latent_ch=32, cond_ch=32, ch=(64, 128, 256, 256), blocks=2, time_dim=128, dropout=0.1)
    return (LFDMConfig(image_size=128, ch=(64, 128, 256), flow_ch=(32, 64, 128), latent_ch=32, groups=32,
                       unet=unet, lfae_steps=100_000, frames_per_video=4, sampling=SampleOptions(
                           steps=50, clip_x0=12.0, ref_strength=1.0), flow_scale=2.0),   # 128 px: flows twice as long
            TrainConfig(steps=200_000, batch_size=16, lr=2e-4, betas=(0.9, 0.999), grad_clip=1.0,
                        ema_decay=0.9999, sample_every=5000, ckpt_every=5000))


def with_objective(model: DiffusionConfig, name: str) -> DiffusionConfig:
    """`model` set to diffuse and predict as objective `name` (fv.engine.diffusion.OBJECTIVES)."""
    objective(name)
    return dataclasses.replace(model, objective=name)


def diffusion_preset(setting: str, preset: str) -> tuple[DiffusionConfig, TrainConfig]:
    source = "retrieved" if setting == "both_retrievedMcs" else "gru"
    motion_dim = 16 if source == "retrieved" else 10
    if preset == "demo":   # fv's residual-x0 objective: on this CPU the frame target tints whole videos
        model = DiffusionConfig(unet=UNetConfig.demo(motion_dim=motion_dim), motion_source=source,
                                objective="residual-x0", batch_mode="random_frames", frames_per_video=8,
                                mix_warmup=500, sampling=SampleOptions(steps=25, ref_strength=0.5))
        # lr 1e-3: at 2e-3 the residual run stopped using its conditioning within 500 steps
        train = TrainConfig(steps=6000, batch_size=8, lr=1e-3, grad_clip=1.0, sample_every=500,
                            ckpt_every=250, ema_decay=0.995)
    else:
        model = DiffusionConfig(unet=UNetConfig.thesis(motion_dim=motion_dim), motion_source=source,
                                batch_mode="full_video", mix_warmup=20_000, sampling=SampleOptions(steps=50))
        train = TrainConfig(steps=200_000, batch_size=16, lr=1e-4, grad_clip=1.0, sample_every=5000,
                            ckpt_every=5000, ema_decay=0.9999)
    return model, train


@dataclass(frozen=True)
class RunConfig:
    setting: str
    preset: str
    model: GANConfig | DiffusionConfig | LFDMConfig | EmbedderConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    data: str = ""                          # the data folder it was trained on (informative)
    synth_version: int = 0                  # that folder's synthetic generator version (meta.json); 0: none recorded

    def to_dict(self) -> dict:
        return {"setting": self.setting, "preset": self.preset, "model_type": type(self.model).__name__,
                "model": to_dict(self.model), "train": to_dict(self.train), "data": self.data,
                "synth_version": self.synth_version}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(d: dict) -> "RunConfig":
        cls = _model_type(d.get("model_type"))
        model = getattr(cls, "upgrade", lambda m: m)(d["model"])
        return RunConfig(setting=check_setting(d["setting"]), preset=d.get("preset", "demo"),
                         model=from_dict(cls, model),
                         train=from_dict(TrainConfig, d["train"]), data=d.get("data", ""),
                         synth_version=int(d.get("synth_version", 0)))

    def replace(self, **kw) -> "RunConfig":
        return dataclasses.replace(self, **kw)


def data_synth_version(root: str) -> int:
    """A data folder's synthetic generator version from its meta.json: 0 for real faces; 1 for a synthetic set
    that does not record one (it predates version 2), or, where the folder is not on this machine, for a folder
    named synth*; 0 where nothing says it is synthetic."""
    from pathlib import Path
    if not root:
        return 0
    try:
        meta = json.loads((Path(root) / "meta.json").read_text())
    except (OSError, ValueError):
        return 1 if Path(root).name.lower().startswith("synth") else 0
    if "synthetic" not in (str(meta.get("name", "")), str(meta.get("source", ""))):
        return 0
    return int(meta.get("synth_version") or 1)


def learned_synth_version(config: RunConfig) -> int:
    """The synthetic generator version a checkpoint's RunConfig learned: recorded, or read from its data."""
    return config.synth_version or data_synth_version(config.data)


def _model_type(name: str | None) -> type:
    types = {"GANConfig": GANConfig, "DiffusionConfig": DiffusionConfig, "LFDMConfig": LFDMConfig,
             "EmbedderConfig": EmbedderConfig}
    if name not in types:
        raise ConfigError(f"unknown model type {name!r} in checkpoint config")
    return types[name]


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
    elif setting in DIFFUSION_SETTINGS:
        model, train = diffusion_preset(setting, preset)
    elif setting in LFDM_SETTINGS:
        model, train = lfdm_preset(preset)
    else:
        model, train = embedder_preset(preset)
    train = dataclasses.replace(train, **train_overrides)
    return RunConfig(setting=setting, preset=preset, model=model, train=train)
