"""Diffusion video sampling: motion codes -> windows -> one batched reverse process over N x T frames.

x is kept as [N, T, 3, H, W] so each request's noise comes from its own seed (samplers.NoiseSource);
the denoiser sees the flattened [N*T, ...] batch, with guidance's conditional and unconditional halves
in ONE call (samplers.guided). The denoiser is any callable
    denoiser(x_t [M,3,H,W], t [M], motion [M,W,D], emotion [M,7], ref_feats tuple of [M,...]) -> prediction
so a torch module, ONNX Runtime or TensorRT can drive the same loop; the prediction (eps or x0, the
objective's) becomes eps here and nowhere else.
"""

from __future__ import annotations

from typing import Callable

import torch

from fv.engine.diffusion import DiffusionSchedule, Objective
from fv.engine.labels import one_hot
from fv.engine.samplers import NoiseSource, guided, ref_start, sample, start_timestep
from fv.engine.sample_options import SampleOptions


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


def drop_condition(motion: torch.Tensor, emotion: torch.Tensor,
                   keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Classifier-free guidance's "unconditional" input (thesis 3.2.3): motion windows [B, W, D] and emotion
    one-hots [B, 7] zeroed together where keep [B] is 0. The trainer drops with p_uncond; the sampler's second
    half is keep = 0 everywhere."""
    return motion * keep[:, None, None], emotion * keep[:, None]


def sample_frames(denoiser: Callable, schedule: DiffusionSchedule, objective: Objective,
                  ref_feats: tuple[torch.Tensor, ...], windows: torch.Tensor, emotions: torch.Tensor,
                  seeds: list[int], opts: SampleOptions, x_ref: torch.Tensor) -> torch.Tensor:
    """ref_feats [N, ...] per video, windows [N, T, W, D], emotions [N], x_ref [N, 3, H, W] (the neutral faces)
    -> videos [N, T, 3, H, W]. The denoiser returns the network's raw prediction; it becomes eps here, once
    (DiffusionSchedule.eps_from, the objective's prediction type). With a residual objective the process runs
    on frame - x_ref (Objective.encode) and x_ref is added back."""
    N, T = windows.shape[:2]
    image_shape = tuple(x_ref.shape[1:])
    ref_x = x_ref.unsqueeze(1)                                              # [N, 1, 3, H, W]
    dev = windows.device
    ref = tuple(f.repeat_interleave(T, 0) for f in ref_feats)               # [N*T, ...]
    win = windows.reshape(N * T, *windows.shape[2:])                        # [N*T, W, D]
    emo = one_hot(emotions).to(dev).repeat_interleave(T, 0)                 # [N*T, 7]

    def flat_eps(x, t, w, e, r):                                           # x [n, T, 3, H, W], t [n]
        n = x.shape[0]
        x_flat, t_flat = x.reshape(n * T, *image_shape), t.repeat_interleave(T)
        eps = schedule.eps_from(denoiser(x_flat, t_flat, w, e, r), x_flat, t_flat, objective.prediction)
        return eps.view(n, T, *image_shape)

    if opts.guidance == 1.0:
        eps_fn = lambda x, t: flat_eps(x, t, win, emo, ref)                # noqa: E731
    else:
        # the doubled batch [cond; uncond] (samplers.guided): motion and emotion are zeroed in the
        # second half (thesis 3.2.3), identity features are kept; built once, reused at every step
        w0, e0 = drop_condition(win, emo, torch.zeros(len(win), device=dev))
        w2, e2 = torch.cat([win, w0]), torch.cat([emo, e0])                # [2N*T, W, D], [2N*T, 7]
        r2 = tuple(torch.cat([f, f]) for f in ref)

        def eps2(x, t, uncond):                                            # x [2N, T, ...], uncond [2N]
            if uncond.shape[0] != 2 * N:
                raise ValueError(f"guided batch of {uncond.shape[0]} for {N} videos")
            return flat_eps(x, t, w2, e2, r2)
        eps_fn = guided(eps2, opts.guidance)
    if opts.frame_noise == "video":
        noise = SharedOverFrames(NoiseSource.from_seeds(seeds, (1, *image_shape), device=dev), T)
    else:
        noise = NoiseSource.from_seeds(seeds, (T, *image_shape), device=dev)
    x_T, start_t = noise.initial(), None
    if opts.ref_strength < 1.0:
        start_t = ref_start(schedule.num_steps, opts.ref_strength)
        t0 = start_timestep(schedule.num_steps, opts.steps, start_t)
        r = ref_x.to(x_T.dtype)
        x0 = objective.encode(r, r).expand(-1, T, *image_shape)
        x_T = schedule.add_noise(x0, x_T, t0)
    clip = opts.clip_x0
    if clip is not None and objective.target == "residual":                # the frame's [-c, c], shifted
        clip = (-clip - ref_x, clip - ref_x)
    x0 = sample(eps_fn, x_T, schedule, opts.sampler, opts.steps, opts.eta, noise, clip_x0=clip, start_t=start_t)
    return x0 if objective.target == "frame" else objective.decode(x0, ref_x.to(x0.dtype))
