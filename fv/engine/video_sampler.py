"""Diffusion video sampling: motion codes -> windows -> one batched reverse process over N x T frames.

x is kept as [N, T, 3, H, W] so each request's noise comes from its own seed (samplers.NoiseSource);
the denoiser sees the flattened [N*T, ...] batch, with guidance's conditional and unconditional halves
in ONE call (samplers.guided). The denoiser is any callable
    denoiser(x_t [M,3,H,W], t [M], motion [M,W,D], emotion [M,7], ref_feats tuple of [M,...]) -> eps
so a torch module, ONNX Runtime or TensorRT can drive the same loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from fv.engine.diffusion import DiffusionSchedule, check_target, decode_target, encode_target
from fv.engine.gan_sampling import per_sample_motion_inputs
from fv.engine.labels import N_FRAMES, one_hot
from fv.engine.models.mixer import motion_windows
from fv.engine.samplers import NoiseSource, guided, sample, start_timestep

MOTION_SEED_OFFSET = 1_000_003  # motion noise and pixel noise of one request use separate streams


@dataclass(frozen=True)
class SampleOptions:
    sampler: str = "ddim"        # "ddpm" | "ddim"
    steps: int | str = 50        # respacing spec (fv.engine.diffusion.space_timesteps)
    eta: float = 0.0
    guidance: float = 2.0        # eps = eps_u + g (eps_c - eps_u); 1 = conditional only
    clip_x0: float | None = 1.0  # clip the predicted x0 to [-1, 1] (pixels live there)
    # "video": one x_T (and one z per step) per video, shared by its 32 frames, so frames differ only
    # through their conditioning (fv's default: steadier colour and identity across frames);
    # "frame": independent noise per frame. The thesis does not say which it used.
    frame_noise: str = "video"
    # 1.0: start from pure noise at t = L-1 (the thesis). s < 1: start from the neutral reference noised
    # to t = s (L-1) (SDEdit, Meng et al. 2022): identity and colours come from the reference, the model
    # adds the expression. fv's demo preset uses 0.5.
    ref_strength: float = 1.0


FRAME_NOISE = ("video", "frame")


class SharedOverFrames:
    """A NoiseSource of per-video draws [N, 1, ...] seen as [N, T, ...]: every frame of a video gets the
    same x_T and the same step noise. Same interface as NoiseSource for `samplers.sample`."""

    def __init__(self, source: NoiseSource, n_frames: int):
        self.source, self.n_frames = source, n_frames
        self.shape = (n_frames, *source.shape[1:])

    def __len__(self) -> int:
        return len(self.source)

    def _expand(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, self.n_frames, *x.shape[2:])

    def initial(self) -> torch.Tensor:
        return self._expand(self.source.initial())

    def step(self, i: int) -> torch.Tensor:
        return self._expand(self.source.step(i))


def motion_noise(seeds: list[int], dim: int, n_frames: int = N_FRAMES,
                 device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The GRU's inputs per request, e_t [N, T, dim] and h0 [N, dim], from the request's motion stream
    (seed + MOTION_SEED_OFFSET), so they never depend on the batch the request shares."""
    return per_sample_motion_inputs([int(s) + MOTION_SEED_OFFSET for s in seeds], dim, n_frames, device)


def retrieved_codes(bank, emotions: torch.Tensor, seeds: list[int], device=None) -> torch.Tensor:
    """both_retrievedMcs (thesis 3.4.4): per request a training trajectory [T, D] of the target emotion,
    drawn with the request's motion stream -> [N, T, D]."""
    return torch.stack([bank.retrieve(int(e), int(s) + MOTION_SEED_OFFSET)
                        for e, s in zip(emotions, seeds)]).to(device)


def motion_codes(model: torch.nn.ModuleDict, emotions: torch.Tensor, seeds: list[int],
                 device=None) -> torch.Tensor:
    """Motion codes [N, T, D] per request: from the frozen GRU (onlyDM, EM-DM) with the request's own
    noise, or a seeded retrieval of a training trajectory of the target emotion (both_retrievedMcs)."""
    if "R" in model:
        R = model["R"]
        noise, h0 = motion_noise(seeds, R.dim, N_FRAMES, device)
        return R(noise, h0, one_hot(emotions).to(device))
    return retrieved_codes(model["bank"], emotions, seeds, device)


def gan_frames(generate: Callable, x_ref: torch.Tensor, codes: torch.Tensor,
               category: torch.Tensor) -> torch.Tensor:
    """GAN frame synthesis (thesis 2.2.1) through any per-frame callable
        generate(x_ref [M,3,H,W], motion [M,D], category [M,7]) -> frames [M,3,H,W]
    x_ref [N,3,H,W], codes [N,T,D], category [N,7] -> video [N,T,3,H,W] (frame t of video n is row n*T + t)."""
    N, T, D = codes.shape
    frames = generate(x_ref.repeat_interleave(T, 0), codes.reshape(N * T, D), category.repeat_interleave(T, 0))
    return frames.view(N, T, *frames.shape[1:])


def torch_denoiser(unet) -> Callable:
    return lambda x_t, t, motion, emotion, ref_feats: unet.denoise(x_t, ref_feats, t, motion, emotion)


def sample_frames(denoiser: Callable, schedule: DiffusionSchedule, ref_feats: tuple[torch.Tensor, ...],
                  windows: torch.Tensor, emotions: torch.Tensor, seeds: list[int], opts: SampleOptions,
                  image_shape=(3, 64, 64), progress: bool = False, x_ref: torch.Tensor | None = None,
                  target: str = "frame") -> torch.Tensor:
    """ref_feats [N, ...] per video, windows [N, T, W, D], emotions [N] -> videos [N, T, 3, H, W].
    x_ref [N, 3, H, W] (the neutral faces) is needed when opts.ref_strength < 1 or target is "residual"
    (the process then runs on frame - x_ref, fv.engine.diffusion.encode_target, and x_ref is added back)."""
    N, T = windows.shape[:2]
    if check_target(target) == "residual" and x_ref is None:
        raise ValueError("a residual target is decoded against the reference: pass x_ref")
    ref_x = None if x_ref is None else x_ref.unsqueeze(1)                   # [N, 1, 3, H, W]
    dev = windows.device
    ref = tuple(f.repeat_interleave(T, 0) for f in ref_feats)               # [N*T, ...]
    win = windows.reshape(N * T, *windows.shape[2:])                        # [N*T, W, D]
    emo = one_hot(emotions).to(dev).repeat_interleave(T, 0)                 # [N*T, 7]

    def flat_eps(x, t, w, e, r):                                           # x [n, T, 3, H, W], t [n]
        n = x.shape[0]
        eps = denoiser(x.reshape(n * T, *image_shape), t.repeat_interleave(T), w, e, r)
        return eps.view(n, T, *image_shape)

    if opts.guidance == 1.0:
        eps_fn = lambda x, t: flat_eps(x, t, win, emo, ref)                # noqa: E731
    else:
        # the doubled batch [cond; uncond] (samplers.guided): motion and emotion are zeroed in the
        # second half (thesis 3.2.3), identity features are kept; built once, reused at every step
        w2 = torch.cat([win, torch.zeros_like(win)])                       # [2N*T, W, D]
        e2 = torch.cat([emo, torch.zeros_like(emo)])                       # [2N*T, 7]
        r2 = tuple(torch.cat([f, f]) for f in ref)

        def eps2(x, t, uncond):                                            # x [2N, T, ...], uncond [2N]
            if uncond.shape[0] != 2 * N:
                raise ValueError(f"guided batch of {uncond.shape[0]} for {N} videos")
            return flat_eps(x, t, w2, e2, r2)
        eps_fn = guided(eps2, opts.guidance)
    if opts.frame_noise not in FRAME_NOISE:
        raise ValueError(f"frame_noise must be one of {FRAME_NOISE}, got {opts.frame_noise!r}")
    if opts.frame_noise == "video":
        noise = SharedOverFrames(NoiseSource.from_seeds(seeds, (1, *image_shape), device=dev), T)
    else:
        noise = NoiseSource.from_seeds(seeds, (T, *image_shape), device=dev)
    x_T, start_t = noise.initial(), None
    if opts.ref_strength < 1.0:
        if x_ref is None:
            raise ValueError("ref_strength < 1 starts from the reference: pass x_ref")
        start_t = int(round(opts.ref_strength * (schedule.num_steps - 1)))
        t0 = start_timestep(schedule.num_steps, opts.steps, start_t)
        r = ref_x.to(x_T.dtype)
        x0 = encode_target(r, r, target).expand(-1, T, *image_shape)
        x_T = schedule.add_noise(x0, x_T, t0)
    clip = opts.clip_x0
    if clip is not None and target == "residual":                          # the frame's [-c, c], shifted
        clip = (-clip - ref_x, clip - ref_x)
    x0 = sample(eps_fn, x_T, schedule, opts.sampler, opts.steps, opts.eta, noise,
                clip_x0=clip, progress=progress, start_t=start_t)
    return x0 if target == "frame" else decode_target(x0, ref_x.to(x0.dtype), target)


@torch.no_grad()
def sample_diffusion_videos(model: torch.nn.ModuleDict, config, x_ref: torch.Tensor, emotions: torch.Tensor,
                            seeds: list[int], opts: SampleOptions | None = None,
                            progress: bool = False) -> torch.Tensor:
    """x_ref [N, 3, 64, 64] neutral faces, emotions [N] class indices -> videos [N, 32, 3, 64, 64]."""
    opts = opts or SampleOptions(config.sampler, config.sample_steps, config.eta, config.guidance,
                                 ref_strength=config.ref_strength)
    dev = x_ref.device
    unet = model["unet"]
    schedule = DiffusionSchedule(config.num_steps, config.beta_start, config.beta_end, device=dev)
    codes = motion_codes(model, emotions, seeds, dev)
    windows = motion_windows(codes, config.unet.window)
    return sample_frames(torch_denoiser(unet), schedule, unet.encode_reference(x_ref), windows, emotions,
                         seeds, opts, tuple(x_ref.shape[1:]), progress, x_ref=x_ref,
                         target=config.target)
