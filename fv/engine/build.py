"""Build the modules of a setting from its config (the inverse of what a checkpoint stores)."""

from __future__ import annotations

from torch import nn

from fv.engine.config import GANConfig, RunConfig
from fv.engine.models.gan import FrameGenerator, MotionGRU, VideoDiscriminator


def build_motion(cfg: GANConfig) -> MotionGRU:
    return MotionGRU(cfg.dim_z_motion, cfg.n_classes, conditioned=cfg.emotion_in_gru)


def build_model(config: RunConfig) -> nn.ModuleDict:
    m = config.model
    if isinstance(m, GANConfig):
        return nn.ModuleDict({
            "R": build_motion(m),
            "G": FrameGenerator(m.dim_z_content, m.dim_z_motion, m.n_classes,
                                use_category=not m.emotion_in_gru, ch=m.gen_ch),
            "D": VideoDiscriminator(m.n_emotions, m.n_identities, m.disc_ch, m.n_frames,
                                    m.disc_spectral_norm),
        })
    from fv.engine.diffusion_build import build_diffusion_model
    return build_diffusion_model(config)
