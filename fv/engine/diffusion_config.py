"""Configuration of the diffusion settings onlyDM, EM-DM and both_retrievedMcs (thesis 3.2-3.4)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from fv.engine.config import GANConfig, TrainConfig
from fv.engine.diffusion import check_target
from fv.engine.models.unet import UNetConfig

MOTION_SOURCES = ("gru", "retrieved")


@dataclass(frozen=True)
class DiffusionConfig:
    unet: UNetConfig = field(default_factory=UNetConfig.demo)
    # DDPM, L = 1000, linear betas 1e-4 -> 0.02, epsilon prediction (thesis 3.2.1)
    num_steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    p_uncond: float = 0.1              # guidance dropout: motion AND emotion zeroed together (3.2.3)
    batch_mode: str = "random_frames"  # "full_video" (all 32 frames) | "random_frames"
    frames_per_video: int = 8          # random_frames: frames drawn per video (thesis: up to 8)
    # where the motion codes come from
    motion_source: str = "gru"         # "gru": frozen R of a baseline (onlyDM) / onlyEM (EM-DM) checkpoint
    motion: GANConfig | None = None    # that GRU's architecture (its weights travel in this checkpoint)
    motion_from: str = ""              # the checkpoint the GRU was taken from (informative)
    bank_size: int = 0                 # "retrieved": training trajectories stored with the model (3.4.4)
    embedder: str = ""                 # "retrieved": the expression embedder that made them
    mix_max: float = 0.5               # motion mixing: probability rises linearly over mix_warmup steps
    mix_warmup: int = 1000             # to mix_max (thesis 3.4.4 does it per epoch; fv per step)
    # sampling defaults (fv's; the thesis samples with all 1000 DDPM steps)
    sampler: str = "ddim"
    sample_steps: int = 50
    eta: float = 0.0
    guidance: float = 2.0
    # what the process diffuses (fv.engine.diffusion.TARGETS): "frame" (the thesis; the thesis preset) or
    # "residual", the frame minus the neutral reference (fv's; the demo preset), see with_target
    target: str = "frame"
    ref_strength: float = 0.5          # start sampling from the reference noised to t = 0.5 (L-1) (fv's demo
                                       # choice, SampleOptions.ref_strength); the thesis preset uses 1.0

    def __post_init__(self):
        check_target(self.target)


def with_target(model: DiffusionConfig, target: str) -> DiffusionConfig:
    """The two ways fv trains a diffusion setting:
    "frame": the thesis (3.2.1): diffuse the frame, the U-Net predicts eps, loss ||eps - eps_theta||^2.
    "residual" (fv's; the demo preset's): diffuse frame - x_ref and let the U-Net predict that residual itself
    (UNetConfig.predict = "x0", loss ||x0 - x0_theta||^2). The residual is zero wherever the face does not move,
    so identity and colour come from x_ref exactly and the expression is what the network outputs."""
    check_target(target)
    predict = "x0" if target == "residual" else "eps"
    return dataclasses.replace(model, target=target,
                               unet=dataclasses.replace(model.unet, x_skip=False, predict=predict))


def diffusion_preset(setting: str, preset: str) -> tuple[DiffusionConfig, TrainConfig]:
    source = "retrieved" if setting == "both_retrievedMcs" else "gru"
    motion_dim = 16 if source == "retrieved" else 10
    if preset == "demo":   # fv's residual target (with_target): on this CPU the frame target tints whole videos
        model = with_target(DiffusionConfig(unet=UNetConfig.demo(motion_dim=motion_dim), motion_source=source,
                                            batch_mode="random_frames", frames_per_video=8, mix_warmup=500,
                                            sample_steps=25), "residual")
        # lr 1e-3: at 2e-3 the residual run stopped using its conditioning within 500 steps
        train = TrainConfig(steps=6000, batch_size=8, lr=1e-3, grad_clip=1.0, sample_every=500,
                            ckpt_every=250, ema_decay=0.995)
    else:
        model = DiffusionConfig(unet=UNetConfig.thesis(motion_dim=motion_dim), motion_source=source,
                                batch_mode="full_video", mix_warmup=20_000, ref_strength=1.0)
        train = TrainConfig(steps=200_000, batch_size=16, lr=1e-4, grad_clip=1.0, sample_every=5000,
                            ckpt_every=5000, ema_decay=0.9999)
    return model, train
