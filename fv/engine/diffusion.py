"""The DDPM noise schedule, the forward process and timestep respacing (thesis 2.4.6, 3.2.1, 3.2.3).

Indexing: a timestep t is an integer in [0, L-1]; index t holds the thesis' beta_{t+1}, so
abar_t = prod_{s<=t} (1 - beta_s) and abar_0 = 1 - beta_min. t = -1 stands for "clean data"
(abar_{-1} = 1); samplers use it as the t_prev of their last step.

The schedule holds no network: the trainer calls `add_noise` (eq. 3.2) and every back-end's
sampling loop calls the step functions in `fv.engine.samplers` with it (STYLE practice 1).
Timesteps are per sample, `t: LongTensor[B]`, and the tables live on the device once (practice 2).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

# Thesis 3.2.1: L = 1000, betas linear from beta_min = 1e-4 to beta_max = 0.02.
NUM_STEPS = 1000
BETA_START = 1e-4
BETA_END = 0.02

TimeLike = int | torch.Tensor


class ScheduleError(ValueError):
    pass


class TimestepSpecError(ValueError):
    pass


class DiffusionSchedule:
    """Linear-beta DDPM schedule with per-sample timesteps. The step functions work on eps; a network that
    predicts x0 (the "residual-x0" objective) is turned into eps by `eps_from`, here and nowhere else.

    Public tables (float32, [L], on `device`): betas, alphas = 1 - betas, alphas_cumprod = abar.
    They are computed in float64 and rounded once. The coefficient math of every method runs on a
    float64 copy of abar (float32 on MPS, which has no float64) and is cast to the input's dtype,
    so respaced betas 1 - abar_t / abar_prev keep their precision.
    """

    def __init__(
        self,
        num_steps: int = NUM_STEPS,
        beta_start: float = BETA_START,
        beta_end: float = BETA_END,
        device: torch.device | str | None = None,
    ) -> None:
        if int(num_steps) != num_steps or num_steps < 1:
            raise ScheduleError(f"num_steps must be a positive integer, got {num_steps!r}")
        if not (0.0 < beta_start < 1.0 and 0.0 < beta_end < 1.0):
            raise ScheduleError(f"betas must lie in (0, 1), got beta_start={beta_start}, beta_end={beta_end}")
        self.num_steps = int(num_steps)
        self.beta_start = float(beta_start)
        self.beta_end = float(beta_end)
        self.device = torch.device(device) if device is not None else torch.device("cpu")

        betas64 = torch.linspace(self.beta_start, self.beta_end, self.num_steps, dtype=torch.float64)
        alphas64 = 1.0 - betas64
        abar64 = torch.cumprod(alphas64, dim=0)  # abar_t = prod_{s<=t} alpha_s
        self.betas = betas64.to(torch.float32).to(self.device)
        self.alphas = alphas64.to(torch.float32).to(self.device)
        self.alphas_cumprod = abar64.to(torch.float32).to(self.device)
        # [L+1]: entry t+1 holds abar_t, entry 0 holds abar_{-1} = 1, so t_prev = -1 needs no branch.
        table_dtype = torch.float32 if self.device.type == "mps" else torch.float64
        self._abar_pad = torch.cat([torch.ones(1, dtype=torch.float64), abar64]).to(self.device, table_dtype)
        # float32 [L] tables of eps_from (x0 prediction): sqrt(abar_t) and 1 / sqrt(1 - abar_t), from the float32 abar
        abar = self.alphas_cumprod.double()
        self._x0_coef = abar.sqrt().float()
        self._x0_scale = (1.0 - abar).rsqrt().float()

    def __repr__(self) -> str:
        return (f"DiffusionSchedule(num_steps={self.num_steps}, beta_start={self.beta_start}, "
                f"beta_end={self.beta_end}, device={str(self.device)!r})")

    def to(self, device: torch.device | str) -> DiffusionSchedule:
        """A copy of this schedule with its tables on `device` (the original is untouched)."""
        return DiffusionSchedule(self.num_steps, self.beta_start, self.beta_end, device=device)

    # ---- per-sample coefficients -------------------------------------------------------------

    def timesteps(self, t: TimeLike, batch: int, *, allow_minus_one: bool = False) -> torch.Tensor:
        """t (int or LongTensor[B]) -> LongTensor[B] on the schedule's device, checked.

        The range check reads values, so it runs for ints and CPU tensors only; on an accelerator it
        would force a device sync on every step (out-of-range CUDA indices fail inside `index_select`).
        """
        lo = -1 if allow_minus_one else 0
        if isinstance(t, torch.Tensor):
            if t.dtype.is_floating_point or t.dtype == torch.bool or t.dtype.is_complex:
                raise ScheduleError(f"timesteps must be an integer tensor, got dtype {t.dtype}")
            if t.dim() == 0:
                t = t.expand(batch)
            if t.shape != (batch,):
                raise ScheduleError(f"timesteps must have shape [{batch}] (one per sample), "
                                    f"got {list(t.shape)}")
            if t.device.type == "cpu" and batch and (int(t.min()) < lo or int(t.max()) > self.num_steps - 1):
                raise ScheduleError(f"timesteps must lie in [{lo}, {self.num_steps - 1}], "
                                    f"got values in [{int(t.min())}, {int(t.max())}]")
            return t.to(self.device, torch.long)
        if int(t) != t or not lo <= int(t) <= self.num_steps - 1:
            raise ScheduleError(f"timestep must be an integer in [{lo}, {self.num_steps - 1}], got {t!r}")
        return torch.full((batch,), int(t), dtype=torch.long, device=self.device)

    def abar(self, t: TimeLike, like: torch.Tensor, *, allow_minus_one: bool = False) -> torch.Tensor:
        """abar_t per sample, float64 (or the table's dtype), shaped [B, 1, ..., 1] to broadcast over `like`."""
        idx = self.timesteps(t, like.shape[0], allow_minus_one=allow_minus_one) + 1
        out = self._abar_pad.index_select(0, idx)
        return out.view(like.shape[0], *([1] * (like.dim() - 1))).to(like.device)

    def abar_value(self, t: int) -> float:
        """abar_t of one timestep as a float64 Python number (t = -1: 1, clean data)."""
        if int(t) != t or not -1 <= int(t) <= self.num_steps - 1:
            raise ScheduleError(f"timestep must be an integer in [-1, {self.num_steps - 1}], got {t!r}")
        return float(self._abar_pad[int(t) + 1])

    # ---- forward process and conversions (eq. 2.10 / 3.2) ----------------------------------

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: TimeLike) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (thesis eq. 3.2). x0, noise: [B, ...]; t: [B]."""
        _same_shape(x0, noise, "x0", "noise")
        a = self.abar(t, x0)
        return a.sqrt().to(x0.dtype) * x0 + (1.0 - a).sqrt().to(x0.dtype) * noise

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: TimeLike) -> torch.Tensor:
        """x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), eq. 3.2 solved for x0."""
        _same_shape(x_t, eps, "x_t", "eps")
        a = self.abar(t, x_t)
        return (x_t - (1.0 - a).sqrt().to(x_t.dtype) * eps) * a.rsqrt().to(x_t.dtype)

    def predict_eps(self, x_t: torch.Tensor, x0: torch.Tensor, t: TimeLike) -> torch.Tensor:
        """eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t), eq. 3.2 solved for eps."""
        _same_shape(x_t, x0, "x_t", "x0")
        a = self.abar(t, x_t)
        return (x_t - a.sqrt().to(x_t.dtype) * x0) * (1.0 - a).rsqrt().to(x_t.dtype)

    def eps_from(self, raw: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, prediction: str) -> torch.Tensor:
        """The network's raw output as eps: itself for eps prediction; for x0 prediction
        eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t) (eq. 3.2 solved for eps), in float32 tables gathered per
        sample (TensorRT and ONNX Runtime have no float64, and this runs on every denoiser output).
        raw, x_t [B, ...]; t LongTensor[B] on the tables' device."""
        if prediction == "eps":
            return raw
        if prediction != "x0":
            raise ObjectiveError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        shape = (-1, *([1] * (raw.dim() - 1)))
        coef = self._x0_coef.index_select(0, t).view(shape).to(raw.dtype)
        scale = self._x0_scale.index_select(0, t).view(shape).to(raw.dtype)
        return (x_t - coef * raw) * scale

    def posterior_mean_var(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: TimeLike, t_prev: TimeLike | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q(x_{t_prev} | x_t, x0) = N(mean, var): Ho et al. 2020 eqs. 6-7, for any t_prev < t.

        With alpha' = abar_t / abar_prev and beta' = 1 - alpha' (= beta_t when t_prev = t - 1, the
        default; the respaced beta otherwise):
            mean = sqrt(abar_prev) beta' / (1 - abar_t) x0 + sqrt(alpha') (1 - abar_prev) / (1 - abar_t) x_t
            var  = beta' (1 - abar_prev) / (1 - abar_t)      (beta-tilde; 0 when t_prev = -1)
        Returns mean [B, ...] and var [B, 1, ..., 1] in x_t's dtype.
        """
        _same_shape(x0, x_t, "x0", "x_t")
        t_idx = self.timesteps(t, x_t.shape[0])
        prev = t_idx - 1 if t_prev is None else self.timesteps(t_prev, x_t.shape[0], allow_minus_one=True)
        if prev.device.type == "cpu" and bool((prev >= t_idx).any()):
            raise ScheduleError("t_prev must be smaller than t for every sample")
        a_t = self.abar(t_idx, x_t)
        a_p = self.abar(prev, x_t, allow_minus_one=True)
        alpha = a_t / a_p
        beta = 1.0 - alpha
        c_x0 = a_p.sqrt() * beta / (1.0 - a_t)
        c_xt = alpha.sqrt() * (1.0 - a_p) / (1.0 - a_t)
        var = beta * (1.0 - a_p) / (1.0 - a_t)
        dt = x_t.dtype
        return c_x0.to(dt) * x0 + c_xt.to(dt) * x_t, var.to(dt)

    def sample_timesteps(
        self, batch: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """t ~ U{0, ..., L-1} per sample (thesis 3.2.3 step 1) -> LongTensor[batch] on `device`.

        Drawn on the generator's device (CPU when none is given) and then moved, so a seeded CPU
        generator gives the same timesteps whatever the training device.
        """
        draw_on = generator.device if generator is not None else torch.device("cpu")
        t = torch.randint(0, self.num_steps, (int(batch),), generator=generator, device=draw_on)
        return t.to(device if device is not None else self.device)


# ---- respacing (guided-diffusion's space_timesteps semantics, own implementation) ---------------

_DDIM = re.compile(r"^ddim(\d+)$")
_DIFFUSERS = re.compile(r"^(linspace|trailing)(\d+)$")


def space_timesteps(num_steps: int, spec: str | int) -> list[int]:
    """The timesteps a sampler visits, sorted ascending, unique, within [0, num_steps - 1].

    spec:
      * N or "ddimN": N steps with an even integer stride s = (L-1) // (N-1), the largest with (N-1) s <= L-1:
        0, s, 2s, ..., (N-1)s (ddim50 on L = 1000: s = 20, steps 0..980; N = 1 gives [L-1], one jump from pure
        noise). This is none of diffusers' `timestep_spacing` conventions, nor DDIM's own "uniform" skip
        (Song et al.'s code: stride L // N, 0..(N-1)(L//N), top 900 for N = 10 on L = 1000): like diffusers'
        "leading" with steps_offset 0 it starts at t = 0, and like its "linspace" it reaches close to L-1
        (ddim10: 0, 111, ..., 999). Its last network pass is at t = 0, where almost no noise is left.
      * "linspaceN", "trailingN": diffusers' `timestep_spacing="linspace"` (round(linspace(0, L-1, N+1))
        without its 0) and `"trailing"` (round(L - k L / N) - 1, k < N), Lin et al. 2024, Table 2: N steps,
        the top at L-1, the lowest well above 0 (its step to clean data is the x0 prediction). For few steps
        these use every pass on noise that is still there.
      * "K1,K2,...": split [0, L-1] into len(K) near-equal sections (the first L % len(K) sections one
        step longer), and take Ki steps in section i, evenly spaced with a fractional stride
        (size_i - 1) / (Ki - 1), rounded, so each section's first and last step are included
        ("1000" = all steps, "250" = 250 steps from 0 to L-1; guided-diffusion's space_timesteps).
    """
    if int(num_steps) != num_steps or num_steps < 1:
        raise TimestepSpecError(f"num_steps must be a positive integer, got {num_steps!r}")
    L = int(num_steps)
    if isinstance(spec, int) and not isinstance(spec, bool):
        return _ddim_stride(L, spec)
    if not isinstance(spec, str):
        raise TimestepSpecError(f"step spec must be an int or a string like 'ddim50' or '10,15,20', "
                                f"got {spec!r}")
    text = spec.strip().lower().replace(" ", "")
    m = _DDIM.match(text)
    if m:
        return _ddim_stride(L, int(m.group(1)))
    m = _DIFFUSERS.match(text)
    if m:
        return _diffusers_spacing(L, m.group(1), int(m.group(2)))
    parts = text.split(",")
    if not text or not all(p.isdigit() for p in parts):
        raise TimestepSpecError(f"bad step spec {spec!r}; use an int, 'ddimN', 'linspaceN', 'trailingN' or "
                                "per-section counts like '10,15,20'")
    return _sections(L, [int(p) for p in parts])


def _diffusers_spacing(L: int, kind: str, n: int) -> list[int]:
    import numpy as np
    if not 1 <= n <= L - (kind == "linspace"):
        raise TimestepSpecError(f"{kind} step count must be in [1, {L - (kind == 'linspace')}], got {n}")
    if kind == "linspace":
        ts = np.linspace(0, L - 1, n + 1).round()[1:]
    else:
        ts = np.arange(L, 0, -L / n).round() - 1
    out = sorted({int(t) for t in ts})
    if len(out) != n:
        raise TimestepSpecError(f"{kind}{n} on {L} timesteps repeats a step; use fewer steps")
    return out


def _ddim_stride(L: int, n: int) -> list[int]:
    if not 1 <= n <= L:
        raise TimestepSpecError(f"DDIM step count must be in [1, {L}], got {n}")
    if n == 1:
        return [L - 1]
    stride = (L - 1) // (n - 1)  # largest s with (n-1) s <= L-1
    return [i * stride for i in range(n)]


def _sections(L: int, counts: Sequence[int]) -> list[int]:
    k = len(counts)
    if k > L:
        raise TimestepSpecError(f"{k} sections do not fit into {L} timesteps")
    base, extra = divmod(L, k)
    steps: list[int] = []
    start = 0
    for i, count in enumerate(counts):
        size = base + (1 if i < extra else 0)
        if not 1 <= count <= size:
            raise TimestepSpecError(f"section {i} has {size} timesteps; its step count must be in "
                                    f"[1, {size}], got {count}")
        stride = (size - 1) / (count - 1) if count > 1 else 0.0
        steps.extend(start + round(j * stride) for j in range(count))
        start += size
    return sorted(set(steps))


def timestep_pairs(num_steps: int, spec: str | int) -> list[tuple[int, int]]:
    """(t, t_prev) for each sampling step, from high noise down; the last t_prev is -1 (clean data)."""
    ts = space_timesteps(num_steps, spec)
    return [(t, ts[i - 1] if i > 0 else -1) for i, t in reversed(list(enumerate(ts)))]


def _same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ScheduleError(f"{name_a} and {name_b} must have the same shape, "
                            f"got {list(a.shape)} and {list(b.shape)}")
    if a.dim() < 1:
        raise ScheduleError(f"{name_a} must have a batch dimension, got a scalar")


# ---- the objective: what the process diffuses and what the network predicts --------------------------
# One documented choice per diffusion config (DiffusionConfig.objective):
#   "frame-eps"    the thesis (3.2.1): x0 is the frame itself and the network predicts the noise eps;
#                  loss ||eps - eps_theta||^2.
#   "residual-x0"  fv's (the demo preset): x0 is the frame minus the neutral reference x_ref, so identity and
#                  colours come from x_ref exactly, and the network predicts that residual itself; loss
#                  ||x0 - x0_theta||^2, the same error weighted 1 instead of SNR_t = abar_t / (1 - abar_t), so the
#                  high-t steps, where only the motion codes and the emotion say what the expression is, are not
#                  weighted ~0. The residual is zero wherever the face does not move.
# The network returns its raw prediction; the samplers turn it into eps once (DiffusionSchedule.eps_from) and
# the trainer takes its loss against `Objective.loss_target`. Nothing else differs.
TARGETS = ("frame", "residual")
PREDICTIONS = ("eps", "x0")


class ObjectiveError(ValueError):
    pass


@dataclass(frozen=True)
class Objective:
    target: str        # TARGETS
    prediction: str    # PREDICTIONS

    def encode(self, frames: torch.Tensor, x_ref: torch.Tensor) -> torch.Tensor:
        """Frames [..., 3, H, W] -> the tensor the process diffuses; x_ref broadcasts against frames."""
        return frames - x_ref if self.target == "residual" else frames

    def decode(self, x0: torch.Tensor, x_ref: torch.Tensor) -> torch.Tensor:
        """Inverse of `encode`."""
        return x0 + x_ref if self.target == "residual" else x0

    def loss_target(self, x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """What the network's raw output is regressed on: the clean target, or the noise."""
        return x0 if self.prediction == "x0" else eps


OBJECTIVES = {"frame-eps": Objective("frame", "eps"), "residual-x0": Objective("residual", "x0")}


def objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ObjectiveError(f"diffusion objective must be one of {tuple(OBJECTIVES)}, got {name!r}")
    return OBJECTIVES[name]
