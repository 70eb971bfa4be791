"""The GAN family: baseline (VICEGAN) and onlyEM (thesis 2.2.1, 3.1).

Modules: R (MotionGRU), G (FrameGenerator G_I), D (VideoDiscriminator D_V, training only).
Exported networks (batch axis B; videos for motion / encoder, frames for decoder):
    motion   R              noise [B,T,Dm], h0 [B,Dm], category [B,7]                  -> codes [B,T,Dm]
    encoder  G_I.encode     x_ref [B,3,64,64]             -> e32, e16, e8, e4 (feature maps), content [B,Dc]
    decoder  G_I.decode     x_ref, e32, e16, e8, e4, content, motion [B,Dm], category [B,7] -> frame [B,3,64,64]
A chunk of n videos: codes = R(e, h0, z_a) from each request's motion stream (fv.engine.motion), the neutral
face encoded ONCE per video, then every frame decoded in one batch of n*T rows (thesis 2.2.1).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from fv.engine.config import GAN_LOSS_WEIGHTS, ConfigError, GANConfig, RunConfig
from fv.engine.iospec import NetworkSpec, tensor
from fv.engine.labels import one_hot
from fv.engine.models.gan import FrameDecoder, FrameEncoder, FrameGenerator, MotionGRU, VideoDiscriminator
from fv.engine.motion import GRUMotion
from fv.engine.requests import EngineError

IMAGE_SIZE = 64     # GAN frames are 64x64 (thesis 4.2)
FEATURES = ("e32", "e16", "e8", "e4")   # G_I's encoder maps at 32, 16, 8, 4 px


def build_motion(cfg: GANConfig) -> MotionGRU:
    return MotionGRU(cfg.dim_z_motion, cfg.n_classes, conditioned=cfg.emotion_in_gru)


def motion_spec(m: GANConfig) -> NetworkSpec:
    """R (thesis 2.2.1 / 3.1.1): noise e_t [B,T,10], h0 [B,10], z_a [B,7] -> h_1..h_T [B,T,10]."""
    T, D, C = m.n_frames, m.dim_z_motion, m.n_classes
    return NetworkSpec("motion", (tensor("noise", "B", T, D), tensor("h0", "B", D),
                                  tensor("category", "B", C, values="one_hot")),
                       (tensor("codes", "B", T, D),), batch_range=(1, 16, 256))


def need(nets, names: tuple[str, ...], config: RunConfig) -> None:
    """EngineError unless `nets` holds every network in `names`."""
    missing = [n for n in names if n not in nets]
    if missing:
        raise EngineError(f"the {config.setting} engine needs backends for {missing}, got {sorted(nets)}")


def gru_motion(nets, dim: int) -> GRUMotion:
    """A GRUMotion over the exported `motion` network (any backend)."""
    motion = nets["motion"]
    return GRUMotion(lambda noise, h0, category: motion(noise=noise, h0=h0, category=category)["codes"], dim)


def _feature_specs(m: GANConfig, size: int) -> tuple:
    c = [m.gen_ch, m.gen_ch * 2, m.gen_ch * 4, m.gen_ch * 8]
    return tuple(tensor(n, "B", ch, size >> (i + 1), size >> (i + 1)) for i, (n, ch) in enumerate(zip(FEATURES, c)))


def encoder_spec(m: GANConfig, size: int = IMAGE_SIZE) -> NetworkSpec:
    """G_I's encoder (thesis 2.2.1): f(0) -> multi-scale skips and the content code z_c, once per video."""
    return NetworkSpec("encoder", (tensor("x_ref", "B", 3, size, size, values="image"),),
                       (*_feature_specs(m, size), tensor("content", "B", m.dim_z_content)), batch_range=(1, 16, 256))


def decoder_spec(m: GANConfig, size: int = IMAGE_SIZE) -> NetworkSpec:
    """G_I's decoder: one frame per (f(0) and its features, motion code, category); onlyEM ignores the category."""
    return NetworkSpec("decoder", (tensor("x_ref", "B", 3, size, size, values="image"), *_feature_specs(m, size),
                                   tensor("content", "B", m.dim_z_content), tensor("motion", "B", m.dim_z_motion),
                                   tensor("category", "B", m.n_classes, values="one_hot")),
                       (tensor("frame", "B", 3, size, size),), batch_range=(1, 256, 1024))


class GANRenderer:
    rows_per_frame = 1
    steps = 1            # one pass per chunk
    image_size = IMAGE_SIZE

    def __init__(self, config: RunConfig, nets, device: torch.device):
        need(nets, ("motion", "encoder", "decoder"), config)
        self.nets, self.device = nets, device
        self.motion = gru_motion(nets, config.model.dim_z_motion)

    def __call__(self, x_ref: torch.Tensor, emotions: torch.Tensor, seeds: list[int], tick) -> torch.Tensor:
        n = len(x_ref)
        codes = self.motion.codes(emotions, seeds, self.device)                   # [n, T, Dm]
        T, D = codes.shape[1:]
        feats = self.nets["encoder"](x_ref=x_ref)                                 # once per video
        per_frame = {k: v.repeat_interleave(T, 0) for k, v in feats.items()}      # row n*T + t = frame t of n
        category = one_hot(emotions).to(self.device).repeat_interleave(T, 0)      # z_a [n*T, 7]
        frames = self.nets["decoder"](x_ref=x_ref.repeat_interleave(T, 0), **per_frame,
                                      motion=codes.reshape(n * T, D), category=category)["frame"]
        tick()
        return frames.view(n, T, *frames.shape[1:])                               # [n, T, 3, 64, 64]


class GANFamily:
    name = "gan"

    def build(self, config: RunConfig) -> nn.ModuleDict:
        m = config.model
        return nn.ModuleDict({
            "R": build_motion(m),
            "G": FrameGenerator(m.dim_z_content, m.dim_z_motion, m.n_classes, use_category=not m.emotion_in_gru,
                                ch=m.gen_ch),
            "D": VideoDiscriminator(m.n_emotions, m.n_identities, m.disc_ch, m.n_frames, m.disc_spectral_norm),
        })

    def network_specs(self, config: RunConfig) -> dict[str, NetworkSpec]:
        m = config.model
        return {"motion": motion_spec(m), "encoder": encoder_spec(m), "decoder": decoder_spec(m)}

    def network_modules(self, config: RunConfig, model: nn.ModuleDict) -> dict[str, nn.Module]:
        return {"motion": model["R"], "encoder": FrameEncoder(model["G"]), "decoder": FrameDecoder(model["G"])}

    def sample_options(self, config: RunConfig, **overrides) -> None:
        return None                                                # one pass: nothing to choose

    def renderer(self, config: RunConfig, nets, options, state, device: torch.device) -> GANRenderer:
        return GANRenderer(config, nets, device)

    def motion_setting(self, config: RunConfig) -> None:
        return None                                                # R is trained here, not taken from elsewhere

    def fresh_run(self, config: RunConfig, motion) -> RunConfig:
        return config

    def fine_tune(self, config: RunConfig, initial: RunConfig, init: Path, motion) -> tuple[RunConfig, tuple[str, ...]]:
        """The architecture is the initial checkpoint's; the loss weights are the requested preset's."""
        weights = {k: getattr(config.model, k) for k in GAN_LOSS_WEIGHTS}
        return config.replace(model=dataclasses.replace(initial.model, **weights)), ()

    def with_objective(self, config: RunConfig, name: str) -> RunConfig:
        raise ConfigError(f"--{name.split('-')[0]} is for the diffusion settings, not {config.setting}")

    def with_embedder(self, config: RunConfig, name: str) -> RunConfig:
        raise ConfigError(f"--embedder is for both_retrievedMcs, not {config.setting}")
