"""The diffusion family: onlyDM, EM-DM and both_retrievedMcs (thesis 3.2-3.4).

Modules: unet (ConditionalUNet with its Face Encoder) and the source of its motion codes: R, the frozen GRU
of a baseline (onlyDM) / onlyEM (EM-DM) checkpoint, carried in the checkpoint so it alone can sample; or
bank, the expression-code trajectories of the training videos (both_retrievedMcs, 3.4.4).
Exported networks (batch axis B; videos for motion / face_encoder, frames x guidance halves for denoiser):
    motion        R (gru sources only)   noise [B,T,Dm], h0 [B,Dm], category [B,7]        -> codes [B,T,Dm]
    face_encoder  the U-Net's Face Encoder  x_ref [B,3,S,S]          -> ref_l [B,face_ch[l],S/2^l,S/2^l], l < L
    denoiser      FeatureDenoiser  x_t [B,3,S,S], t int64 [B], motion [B,W,Dm], emotion [B,7], ref_0..ref_{L-1}
                                                                 -> prediction [B,3,S,S] (eps or x0: objective)
A chunk of n videos: ref_l = face_encoder(x_ref) once per video; codes from the motion source; x_T -> x_0 by
video_sampler.sample_frames, every step ONE denoiser batch of 2 n T frames (guidance's halves together).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from fv.engine.config import ConfigError, DiffusionConfig, RunConfig, with_objective
from fv.engine.families.gan import build_motion, gru_motion, motion_spec, need
from fv.engine.iospec import NetworkSpec, tensor
from fv.engine.labels import N_FRAMES
from fv.engine.models.mixer import motion_windows
from fv.engine.models.unet import ConditionalUNet, FeatureDenoiser, UNetConfig
from fv.engine.motion import BankMotion, MotionBank
from fv.engine.samplers import steps_from
from fv.engine.sample_options import SampleOptions
from fv.engine.video_sampler import sample_frames

MOTION_SETTING = {"onlyDM": "baseline", "EM-DM": "onlyEM"}   # where a gru source's frozen R comes from
Motion = tuple[RunConfig, Path]   # a motion checkpoint's config and path


def _refs(u: UNetConfig) -> tuple:
    S = u.image_size
    return tuple(tensor(f"ref_{lvl}", "B", ch, S >> lvl, S >> lvl) for lvl, ch in enumerate(u.face_ch))


def face_encoder_spec(u: UNetConfig) -> NetworkSpec:
    """Face Encoder (thesis 3.2.2): x_ref -> one identity feature map per U-Net level."""
    S = u.image_size
    return NetworkSpec("face_encoder", (tensor("x_ref", "B", u.in_ch, S, S, values="image"),), _refs(u),
                       batch_range=(1, 16, 256))


def denoiser_spec(u: UNetConfig, num_steps: int) -> NetworkSpec:
    """f_theta(x_t, t, motion window, z_a, identity features) (thesis 3.2.2); t in [0, L-1]."""
    S = u.image_size
    inputs = (tensor("x_t", "B", u.in_ch, S, S), tensor("t", "B", values="timestep", high=num_steps, dtype="int64"),
              tensor("motion", "B", u.window, u.motion_dim), tensor("emotion", "B", u.n_classes, values="one_hot"),
              *_refs(u))
    return NetworkSpec("denoiser", inputs, (tensor("prediction", "B", u.in_ch, S, S),), batch_range=(1, 128, 512))


def _gru(m: DiffusionConfig) -> bool:
    if m.motion_source == "gru" and m.motion is None:
        raise ConfigError("a gru-driven diffusion config needs the GRU's config (motion)")
    return m.motion_source == "gru"


def motion_source(config: RunConfig, nets, state, device=None):
    """The MotionSource of a diffusion setting: the frozen GRU's network, or the bank (read through `state`)."""
    m = config.model
    if _gru(m):
        return gru_motion(nets, m.motion.dim_z_motion)
    bank = MotionBank(m.bank_size, N_FRAMES, m.unet.motion_dim)
    bank.load_state_dict(state("bank"))   # the bank stays in torch (thesis 3.4.4)
    return BankMotion(bank)


class DiffusionRenderer:
    def __init__(self, config: RunConfig, nets, options: SampleOptions, state, device: torch.device):
        m = config.model
        need(nets, ("face_encoder", "denoiser") + (("motion",) if _gru(m) else ()), config)
        self.config, self.nets, self.options, self.device = config, nets, options, device
        self.motion = motion_source(config, nets, state, device)
        self.schedule = m.schedule(device)
        self.image_size = m.unet.image_size
        self.rows_per_frame = 1 if options.guidance == 1.0 else 2
        self.steps = steps_from(m.num_steps, options.steps, options.ref_strength)

    def __call__(self, x_ref: torch.Tensor, emotions: torch.Tensor, seeds: list[int], tick) -> torch.Tensor:
        m = self.config.model
        enc, den = self.nets["face_encoder"], self.nets["denoiser"]
        refs = enc(x_ref=x_ref)                                            # once per request
        ref_feats = tuple(refs[name] for name in enc.spec.output_names)    # ref_l [n, C_l, S/2^l, S/2^l]
        ref_names = den.spec.input_names[4:]                               # x_t, t, motion, emotion, ref_*
        windows = motion_windows(self.motion.codes(emotions, seeds, self.device), m.unet.window)  # [n, T, W, D]

        def denoise(x_t, t, motion, emotion, feats):                       # one call per sampling step
            out = den(x_t=x_t, t=t, motion=motion, emotion=emotion, **dict(zip(ref_names, feats)))["prediction"]
            tick()
            return out
        return sample_frames(denoise, self.schedule, m.parameterisation, ref_feats, windows, emotions, seeds,
                             self.options, x_ref)


class DiffusionFamily:
    name = "diffusion"

    def build(self, config: RunConfig) -> nn.ModuleDict:
        m = config.model
        mods = {"unet": ConditionalUNet(m.unet)}
        if _gru(m):
            mods["R"] = build_motion(m.motion).requires_grad_(False)
        else:
            mods["bank"] = MotionBank(m.bank_size, N_FRAMES, m.unet.motion_dim)
        return nn.ModuleDict(mods)

    def network_specs(self, config: RunConfig) -> dict[str, NetworkSpec]:
        m = config.model
        specs = {"motion": motion_spec(m.motion)} if _gru(m) else {}
        return {**specs, "face_encoder": face_encoder_spec(m.unet), "denoiser": denoiser_spec(m.unet, m.num_steps)}

    def network_modules(self, config: RunConfig, model: nn.ModuleDict) -> dict[str, nn.Module]:
        mods = {"motion": model["R"]} if _gru(config.model) else {}
        # the Face Encoder module = ConditionalUNet.encode_reference without its eager shape checks
        return {**mods, "face_encoder": model["unet"].face_encoder, "denoiser": FeatureDenoiser(model["unet"])}

    def sample_options(self, config: RunConfig, **overrides) -> SampleOptions:
        return config.model.sampling.replace(**overrides).check_steps(config.model.num_steps)

    def renderer(self, config: RunConfig, nets, options: SampleOptions, state, device: torch.device):
        return DiffusionRenderer(config, nets, options, state, device)

    def motion_setting(self, config: RunConfig) -> str | None:
        """The setting whose trained GRU a fresh run of `config` takes its motion codes from (onlyDM: baseline,
        EM-DM: onlyEM), or None."""
        return MOTION_SETTING.get(config.setting) if config.model.motion_source == "gru" else None

    def fresh_run(self, config: RunConfig, motion: Motion | None) -> RunConfig:
        """onlyDM / EM-DM: the frozen GRU's config, from that checkpoint, goes into the config."""
        need = self.motion_setting(config)
        if need is None:
            return config
        if motion is None:
            raise ConfigError(f"{config.setting} needs a trained {need} checkpoint for its motion codes; "
                              f"train one with `fv train {need}` or pass --motion-checkpoint")
        return _attach(config, motion)

    def fine_tune(self, config: RunConfig, initial: RunConfig, init: Path,
                  motion: Motion | None) -> tuple[RunConfig, tuple[str, ...]]:
        """The architecture (and the frozen GRU inside it) is the initial checkpoint's; with a motion
        checkpoint the U-Net is fine-tuned on another frozen GRU's codes, and that GRU is kept."""
        start = config.replace(model=initial.model)
        if not _gru(initial.model):
            return start, ()
        if motion is None:
            return start.replace(model=dataclasses.replace(initial.model, motion_from=str(init))), ()
        return _attach(start, motion), ("R",)

    def with_objective(self, config: RunConfig, name: str) -> RunConfig:
        return config.replace(model=with_objective(config.model, name))

    def with_embedder(self, config: RunConfig, name: str) -> RunConfig:
        """The expression embedder of a retrieved-codes run (fv.trainer.expression_embedders names)."""
        if _gru(config.model):
            raise ConfigError(f"--embedder is for both_retrievedMcs, not {config.setting} (its codes come from a GRU)")
        return config.replace(model=dataclasses.replace(config.model, embedder=str(name)))


def _attach(config: RunConfig, motion: Motion) -> RunConfig:
    motion_config, path = motion
    return config.replace(model=dataclasses.replace(config.model, motion=motion_config.model, motion_from=str(path)))
