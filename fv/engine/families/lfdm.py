"""The LFDM family: latent flow diffusion (Ni et al., CVPR 2023; thesis 2.3), the thesis' external reference.

Modules: lfae (fv.engine.models.lfae.LFAE: encoder, flow predictor, decoder) and dm (fv.engine.models.flow_unet).
Exported networks (batch axis B: videos for encoder / flow_denoiser, frames for decoder):
    encoder        x_ref [B,3,S,S]                                           -> latent [B,C,h,w]
    flow_denoiser  x_t [B,3,T,h,w], t int64 [B], emotion [B,7], latent [B,C,h,w]
                                                                            -> prediction [B,3,T,h,w] (eps or x0)
    decoder        latent [B,C,h,w], flow [B,2,h,w], visibility [B,1,h,w]   -> frame [B,3,S,S]
The flow predictor only trains (it measures real videos' flows); generation never runs it.

The diffused sequence x [3, T, h, w] per video is (flow_x, flow_y) / flow_scale (flow in pixels of the S-pixel
frame) and 2 visibility - 1. A chunk of n videos: latent = encoder(x_ref); x_T -> x_0 by fv's sampler
(fv.engine.samplers.sample, guidance's halves in ONE flow_denoiser batch of 2n videos); then every frame t is
decoder(latent, flow_t, visibility_t): frame 0's own features, moved.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from fv.engine.config import ConfigError, LFDMConfig, RunConfig
from fv.engine.families.gan import need
from fv.engine.iospec import NetworkSpec, tensor
from fv.engine.labels import N_FRAMES, one_hot
from fv.engine.models.flow_unet import FlowUNet
from fv.engine.models.lfae import LFAE, FrameDecoder
from fv.engine.sample_options import SampleOptions
from fv.engine.samplers import NoiseSource, guided, sample, steps_from


def build_lfae(m: LFDMConfig) -> LFAE:
    return LFAE(m.image_size, m.ch, m.flow_ch, m.latent_ch, m.groups)


def encode_flows(flow: torch.Tensor, visibility: torch.Tensor, flow_scale: float) -> torch.Tensor:
    """flow [B, T, 2, h, w] (image pixels), visibility [B, T, 1, h, w] in [0, 1] -> x0 [B, 3, T, h, w]."""
    return torch.cat([flow / flow_scale, visibility * 2 - 1], 2).transpose(1, 2)


def decode_flows(x0: torch.Tensor, flow_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of encode_flows: x0 [B, 3, T, h, w] -> (flow [B, T, 2, h, w], visibility [B, T, 1, h, w])."""
    x = x0.transpose(1, 2)
    return x[:, :, :2] * flow_scale, ((x[:, :, 2:] + 1) / 2).clamp(0, 1)


def specs(m: LFDMConfig) -> dict[str, NetworkSpec]:
    S, h, C = m.image_size, m.latent_size, m.latent_ch
    latent = tensor("latent", "B", C, h, h)
    return {
        "encoder": NetworkSpec("encoder", (tensor("x_ref", "B", 3, S, S, values="image"),), (latent,),
                               batch_range=(1, 16, 256)),
        "flow_denoiser": NetworkSpec(
            "flow_denoiser", (tensor("x_t", "B", 3, N_FRAMES, h, h),
                              tensor("t", "B", values="timestep", high=m.num_steps, dtype="int64"),
                              tensor("emotion", "B", m.unet.n_classes, values="one_hot"), latent),
            (tensor("prediction", "B", 3, N_FRAMES, h, h),), batch_range=(1, 16, 128)),
        "decoder": NetworkSpec("decoder", (latent, tensor("flow", "B", 2, h, h),
                                           tensor("visibility", "B", 1, h, h, values="image")),
                               (tensor("frame", "B", 3, S, S),), batch_range=(1, 128, 1024)),
    }


class LFDMRenderer:
    def __init__(self, config: RunConfig, nets, options: SampleOptions, state, device: torch.device):
        need(nets, ("encoder", "flow_denoiser", "decoder"), config)
        m = config.model
        self.m, self.nets, self.options, self.device = m, nets, options, device
        self.schedule = m.schedule(device)
        self.image_size = m.image_size
        self.rows_per_frame = 1 if options.guidance == 1.0 else 2
        self.steps = steps_from(m.num_steps, options.steps)

    def flows(self, x_ref: torch.Tensor, emotions: torch.Tensor, seeds: list[int],
               tick=lambda: None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x_ref [n, 3, S, S] -> (latent [n, C, h, w], flow [n, T, 2, h, w] in pixels of the S-pixel frame,
        visibility [n, T, 1, h, w]): the sampled flows, before any decoding."""
        m, o = self.m, self.options
        den = self.nets["flow_denoiser"]
        latent = self.nets["encoder"](x_ref=x_ref)["latent"]
        emo = one_hot(emotions).to(self.device, latent.dtype)

        def raw(x, t, e, z):
            out = den(x_t=x, t=t, emotion=e, latent=z)["prediction"]
            tick()
            return self.schedule.eps_from(out, x, t, m.prediction)
        if o.guidance == 1.0:
            eps_fn = lambda x, t: raw(x, t, emo, latent)                      # noqa: E731
        else:   # [cond; uncond]: the class zeroed in the second half, the image condition kept
            e2, z2 = torch.cat([emo, torch.zeros_like(emo)]), torch.cat([latent, latent])
            eps_fn = guided(lambda x, t, uncond: raw(x, t, e2, z2), o.guidance)
        h = m.latent_size
        noise = NoiseSource.from_seeds(seeds, (3, N_FRAMES, h, h), device=self.device)
        x0 = sample(eps_fn, noise.initial(), self.schedule, o.sampler, o.steps, o.eta, noise, clip_x0=o.clip_x0)
        return (latent, *decode_flows(x0, m.flow_scale))

    def __call__(self, x_ref: torch.Tensor, emotions: torch.Tensor, seeds: list[int], tick) -> torch.Tensor:
        return self.decode(*self.flows(x_ref, emotions, seeds, tick))

    def decode(self, latent: torch.Tensor, flow: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        """(latent [n, C, h, w], flow [n, T, 2, h, w], visibility [n, T, 1, h, w]) -> videos [n, T, 3, S, S]."""
        n, T = flow.shape[:2]
        frames = self.nets["decoder"](latent=latent.repeat_interleave(T, 0), flow=flow.flatten(0, 1),
                                      visibility=vis.flatten(0, 1))["frame"]
        return frames.view(n, T, *frames.shape[1:])


class LFDMFamily:
    name = "lfdm"

    def build(self, config: RunConfig) -> nn.ModuleDict:
        m = config.model
        return nn.ModuleDict({"lfae": build_lfae(m), "dm": FlowUNet(m.unet)})

    def network_specs(self, config: RunConfig) -> dict[str, NetworkSpec]:
        return specs(config.model)

    def network_modules(self, config: RunConfig, model: nn.ModuleDict) -> dict[str, nn.Module]:
        return {"encoder": model["lfae"].encoder, "flow_denoiser": model["dm"], "decoder": FrameDecoder(model["lfae"])}

    def sample_options(self, config: RunConfig, **overrides) -> SampleOptions:
        if overrides.get("ref_strength") not in (None, 1.0):
            raise ConfigError("LFDM samples its flows from pure noise: --ref-strength does not apply")
        if overrides.get("frame_noise") not in (None, "video"):
            raise ConfigError("LFDM samples one noise per video (its flows are one space-time tensor): "
                              "--frame-noise does not apply")
        return config.model.sampling.replace(**overrides).check_steps(config.model.num_steps)

    def renderer(self, config: RunConfig, nets, options: SampleOptions, state, device: torch.device):
        return LFDMRenderer(config, nets, options, state, device)

    def motion_setting(self, config: RunConfig) -> None:
        return None

    def fresh_run(self, config: RunConfig, motion) -> RunConfig:
        return config

    def fine_tune(self, config: RunConfig, initial: RunConfig, init: Path, motion) -> tuple[RunConfig, tuple[str, ...]]:
        """The architecture is the initial checkpoint's; a fine-tune's steps go half to each stage."""
        model = dataclasses.replace(initial.model, lfae_steps=config.train.steps // 2)
        return config.replace(model=model), ()

    def with_objective(self, config: RunConfig, name: str) -> RunConfig:
        raise ConfigError(f"--{name.split('-')[0]} is for the frame diffusion settings, not LFDM")

    def with_embedder(self, config: RunConfig, name: str) -> RunConfig:
        raise ConfigError("--embedder is for both_retrievedMcs, not LFDM")
