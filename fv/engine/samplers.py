"""DDPM, DDIM, DPM-Solver++(2M) and UniPC sampling, classifier-free guidance and per-sample noise
(thesis 2.4.6-2.4.7, 3.2.3; issue 23).

The samplers hold no network: `eps_fn(x_t [B, ...], t LongTensor[B]) -> eps [B, ...]` is any
callable (a torch module, ONNX Runtime, TensorRT behind the engine's backend interface), and the
step functions let an engine run its own loop (STYLE practices 1 and 10).

Notation: abar_t from `DiffusionSchedule`, abar_{-1} = 1; a step goes from t to t_prev < t
(t_prev = t - 1 with all steps, the next lower respaced step otherwise, -1 at the end).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from fv.engine.diffusion import DiffusionSchedule, TimeLike, timestep_pairs

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
GuidedEpsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class SamplerError(ValueError):
    pass


class NoiseSourceError(ValueError):
    pass


# clip of the predicted x0: none, [-c, c], or elementwise [lo, hi] (tensors broadcasting against x_t)
Clip = float | tuple[torch.Tensor, torch.Tensor] | None


# ---- one step ---------------------------------------------------------------------------------

def _x0_hat(schedule: DiffusionSchedule, x_t: torch.Tensor, eps: torch.Tensor, t: TimeLike,
            clip_x0: Clip) -> tuple[torch.Tensor, torch.Tensor]:
    """x0_hat from eq. 3.2, optionally clipped: to [-c, c] for a number c, or elementwise to [lo, hi]
    for a pair of tensors broadcasting against x_t (a residual target's bounds, -1 - x_ref and 1 - x_ref);
    eps is re-derived from the clipped x0 so the step stays consistent with it (as guided-diffusion does)."""
    x0 = schedule.predict_x0(x_t, eps, t)
    if clip_x0 is not None:
        if isinstance(clip_x0, tuple):
            lo, hi = (b.to(x0.device, x0.dtype) for b in clip_x0)
            x0 = torch.maximum(torch.minimum(x0, hi), lo)
        else:
            x0 = x0.clamp(-clip_x0, clip_x0)
        eps = schedule.predict_eps(x_t, x0, t)
    return x0, eps


def _with_noise(x: torch.Tensor, std: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    if noise is None:  # the step's mean
        return x
    if noise.shape != x.shape:
        raise SamplerError(f"noise must have the sample's shape {list(x.shape)}, got {list(noise.shape)}")
    return x + std * noise.to(x.device, x.dtype)


def ddpm_step(schedule: DiffusionSchedule, x_t: torch.Tensor, eps: torch.Tensor, t: TimeLike,
              t_prev: TimeLike, noise: torch.Tensor | None, clip_x0: Clip = None) -> torch.Tensor:
    """Ancestral step x_t -> x_{t_prev} ~ N(posterior mean, beta-tilde) with x0_hat from eps.

    Ho et al. 2020 Alg. 2 / eqs. 6-7 with the "fixed small" variance sigma^2 = beta-tilde, the
    posterior variance (their other choice, sigma^2 = beta, is not used). For a respaced sequence
    the step uses the respaced beta' = 1 - abar_t / abar_prev (Nichol & Dhariwal 2021):
        x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)
        mean   = sqrt(abar_prev) beta' / (1 - abar_t) x0_hat
                 + sqrt(1 - beta') (1 - abar_prev) / (1 - abar_t) x_t
        x_prev = mean + sqrt(beta' (1 - abar_prev) / (1 - abar_t)) z,   z = noise
    Unclipped, mean = (x_t - beta' / sqrt(1 - abar_t) eps) / sqrt(1 - beta') (Alg. 2's line 4).
    t_prev = -1 has variance 0 and returns x0_hat. noise=None gives the mean.
    """
    x0, _ = _x0_hat(schedule, x_t, eps, t, clip_x0)
    mean, var = schedule.posterior_mean_var(x0, x_t, t, t_prev)
    return _with_noise(mean, var.sqrt(), noise)


def ddim_step(schedule: DiffusionSchedule, x_t: torch.Tensor, eps: torch.Tensor, t: TimeLike,
              t_prev: TimeLike, eta: float, noise: torch.Tensor | None,
              clip_x0: Clip = None) -> torch.Tensor:
    """DDIM step (Song et al. 2021, eq. 12 with sigma from eq. 16).

        sigma  = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)      (eq. 16)
        x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps + sigma z      (eq. 12)
    eta = 0 is deterministic; eta = 1 makes sigma^2 = beta-tilde, the DDPM ancestral step.
    t_prev = -1 (abar_prev = 1) returns x0_hat. noise=None drops the sigma z term.
    """
    if eta < 0:
        raise SamplerError(f"eta must be >= 0, got {eta}")
    x0, eps = _x0_hat(schedule, x_t, eps, t, clip_x0)
    a_t = schedule.abar(t, x_t)
    a_p = schedule.abar(t_prev, x_t, allow_minus_one=True)
    sigma2 = (eta ** 2) * (1.0 - a_p) / (1.0 - a_t) * (1.0 - a_t / a_p)
    c_dir = (1.0 - a_p - sigma2).clamp_min(0.0).sqrt()
    dt = x_t.dtype
    x_prev = a_p.sqrt().to(dt) * x0 + c_dir.to(dt) * eps
    return _with_noise(x_prev, sigma2.sqrt().to(dt), noise)


# ---- multistep solvers of the diffusion ODE (data prediction) ----------------------------------------
# With alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t), lambda_t = log(alpha_t / sigma_t) (the half log-SNR)
# and the step's h = lambda_prev - lambda_t > 0, both solvers integrate the probability-flow ODE exactly in its
# linear part and approximate the model's x0 prediction as a polynomial in lambda through the last two visited
# points. Order 1 at the first step (no history) and at the last one (to t_prev = -1, sigma = 0: the x0
# prediction itself), order 2 between: what diffusers' schedulers do with solver_order=2 and
# lower_order_final=True (tests/engine/test_multistep.py checks every step against them). They are
# deterministic: no eta, no noise.
MULTISTEP = ("dpmpp2m", "unipc")
SAMPLERS = ("ddpm", "ddim") + MULTISTEP     # every sampler `sample` runs (SampleOptions checks against it)


def _alpha_sigma_lambda(schedule: DiffusionSchedule, t: int) -> tuple[float, float, float]:
    a = schedule.abar_value(t)
    alpha, sigma = math.sqrt(a), math.sqrt(max(1.0 - a, 0.0))
    return alpha, sigma, (math.inf if sigma == 0.0 else math.log(alpha / sigma))


def dpmpp2m_step(schedule: DiffusionSchedule, x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int,
                 prev: tuple[torch.Tensor, int] | None = None) -> torch.Tensor:
    """DPM-Solver++(2M) step x_t -> x_{t_prev} (Lu et al. 2022, "DPM-Solver++", Alg. 2, midpoint form).

    x0: the (guided, clipped) x0 prediction at x_t; prev: (x0 prediction, timestep) of the step before, or None
    for a first-order step. With r = (lambda_t - lambda_last) / h:
        D      = x0                               first order (= ddim_step with eta 0)
        D      = x0 + (x0 - x0_last) / (2 r)      second order
        x_prev = (sigma_prev / sigma_t) x_t - alpha_prev expm1(-h) D
    t_prev = -1 returns x0 (sigma_prev = 0 and expm1(-inf) = -1).
    """
    if t_prev < 0:
        return x0
    a_p, s_p, l_p = _alpha_sigma_lambda(schedule, t_prev)
    _, s_t, l_t = _alpha_sigma_lambda(schedule, t)
    h = l_p - l_t
    if not h > 0:
        raise SamplerError(f"a step must go to less noise: t={t} -> t_prev={t_prev}")
    d = x0
    if prev is not None:
        x0_last, t_last = prev
        r = (l_t - _alpha_sigma_lambda(schedule, t_last)[2]) / h
        d = x0 + (x0 - x0_last.to(x0.dtype)) * (0.5 / r)
    return (s_p / s_t) * x_t - (a_p * math.expm1(-h)) * d


def unipc_correct(schedule: DiffusionSchedule, x_t: torch.Tensor, x0_t: torch.Tensor, t: int,
                  x_last: torch.Tensor, x0_last: torch.Tensor, t_last: int,
                  before: tuple[torch.Tensor, int] | None = None) -> torch.Tensor:
    """UniC, UniPC's corrector (Zhao et al. 2023, "UniPC", Alg. 2 with B(h) = expm1(h), their "bh2").

    x_t was predicted by the step from x_last (the corrected sample at t_last > t, whose x0 prediction is
    x0_last); x0_t is the model's x0 prediction at x_t, the pass the next step makes anyway, so the
    correction costs no network pass. before: (x0 prediction, timestep) of the step before t_last for a
    second-order correction (the predictor was second order), None for first order. With hh = -h,
    h = lambda_t - lambda_last, phi = expm1(hh), D_t = x0_t - x0_last:
        order 1:  x_t^c = (sigma_t / sigma_last) x_last - alpha_t phi x0_last - alpha_t phi (D_t / 2)
        order 2:  r = (lambda_before - lambda_last) / h, D_1 = (x0_before - x0_last) / r,
                  [rho_1, rho_2] solves [[1, 1], [r, 1]] rho = [b_1, b_2],
                  b_1 = (phi / hh - 1) / phi, b_2 = 2 ((phi / hh - 1) / hh - 1/2) / phi,
                  x_t^c = (sigma_t / sigma_last) x_last - alpha_t phi (x0_last + rho_1 D_1 + rho_2 D_t)
    """
    a_t, s_t, l_t = _alpha_sigma_lambda(schedule, t)
    _, s_l, l_l = _alpha_sigma_lambda(schedule, t_last)
    h, hh = l_t - l_l, l_l - l_t
    phi = math.expm1(hh)
    x0_last = x0_last.to(x0_t.dtype)
    if before is None:
        corr = 0.5 * (x0_t - x0_last)
    else:
        x0_b, t_b = before
        r = (_alpha_sigma_lambda(schedule, t_b)[2] - l_l) / h
        k1 = phi / hh - 1.0
        b1, b2 = k1 / phi, 2.0 * (k1 / hh - 0.5) / phi
        rho1, rho2 = (b1 - b2) / (1.0 - r), (b2 - r * b1) / (1.0 - r)
        corr = (rho1 / r) * (x0_b.to(x0_t.dtype) - x0_last) + rho2 * (x0_t - x0_last)
    return (s_t / s_l) * x_last - (a_t * phi) * (x0_last + corr)


# ---- classifier-free guidance (thesis eq. 2.14, 3.2.3) --------------------------------------------

def cfg_eps(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, g: float | torch.Tensor) -> torch.Tensor:
    """eps = eps_uncond + g (eps_cond - eps_uncond); g a float or one scale per sample, Tensor[B]."""
    if eps_cond.shape != eps_uncond.shape:
        raise SamplerError(f"conditional and unconditional eps differ in shape: "
                           f"{list(eps_cond.shape)} vs {list(eps_uncond.shape)}")
    if isinstance(g, torch.Tensor) and g.dim() > 0:
        if g.shape != eps_cond.shape[:1]:
            raise SamplerError(f"per-sample guidance needs shape [{eps_cond.shape[0]}], got {list(g.shape)}")
        g = g.to(eps_cond.device, eps_cond.dtype).view(-1, *([1] * (eps_cond.dim() - 1)))
    return eps_uncond + g * (eps_cond - eps_uncond)


def guided(eps_fn2: GuidedEpsFn, g: float | torch.Tensor) -> EpsFn:
    """Wrap eps_fn2(x [2B], t [2B], uncond BoolTensor[2B]) into an eps_fn with ONE call per step.

    The doubled batch is [x; x] with uncond = [False]*B + [True]*B: the first half conditional, the
    second half with motion and emotion dropped (the caller's eps_fn2 zeroes them, thesis 3.2.3).
    """
    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        uncond = torch.arange(2 * b, device=x.device) >= b
        out = eps_fn2(torch.cat([x, x]), torch.cat([t, t]), uncond)
        if out.shape[0] != 2 * b:
            raise SamplerError(f"guided model must return a doubled batch of {2 * b}, got {out.shape[0]}")
        return cfg_eps(out[:b], out[b:], g)

    return eps_fn


# ---- per-sample noise ----------------------------------------------------------------------------

class NoiseSource:
    """Gaussian noise for a batch where every sample draws only from its own CPU generator.

    Stream layout per sample: draw 0 is x_T (`initial()`), draw i + 1 is the noise of loop step i
    (`step(i)`). Draws are made on the CPU and then moved, so CPU and CUDA runs get the same numbers,
    and a sample's numbers never depend on the batch it shares. Steps go forward: `step(i)` may skip
    ahead (the skipped draws are discarded) or repeat the last index, never go back.

    CPU normal draws run at roughly 100 M numbers/s per core, so a large batch (2048 frames of 3x64x64
    is 25 M numbers a step) should draw with `workers` threads (torch releases the GIL; the numbers do
    not depend on it) or overlap `step(i + 1)` with the network in a background thread.
    """

    def __init__(self, generators: Sequence[torch.Generator], shape: Sequence[int], *,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                 workers: int = 1) -> None:
        gens = list(generators)
        if not gens:
            raise NoiseSourceError("a NoiseSource needs at least one generator (one per sample)")
        for g in gens:
            if not isinstance(g, torch.Generator) or g.device.type != "cpu":
                raise NoiseSourceError("NoiseSource takes CPU torch.Generator objects, one per sample")
        if not dtype.is_floating_point:
            raise NoiseSourceError(f"noise dtype must be floating point, got {dtype}")
        if int(workers) != workers or workers < 1:
            raise NoiseSourceError(f"workers must be a positive integer, got {workers!r}")
        self.workers = int(workers)
        self._gens = gens
        self.shape = tuple(int(s) for s in shape)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self._next = 0  # index of the next draw in every sample's stream
        self._cache: tuple[int, torch.Tensor] | None = None

    @classmethod
    def from_seeds(cls, seeds: Sequence[int] | torch.Tensor, shape: Sequence[int], *,
                   device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                   workers: int = 1) -> NoiseSource:
        """One generator per sample, seeded with seeds[b]."""
        values = seeds.tolist() if isinstance(seeds, torch.Tensor) else list(seeds)
        gens = []
        for s in values:
            if int(s) != s:
                raise NoiseSourceError(f"seeds must be integers, got {s!r}")
            gens.append(torch.Generator(device="cpu").manual_seed(int(s)))
        return cls(gens, shape, device=device, dtype=dtype, workers=workers)

    def __len__(self) -> int:
        return len(self._gens)

    def _fill(self) -> torch.Tensor:
        """The next draw of every stream, on the CPU: [B, *shape]."""
        buf = torch.empty((len(self._gens), *self.shape), dtype=self.dtype)

        def fill(rows: range) -> None:
            for b in rows:
                buf[b].normal_(generator=self._gens[b])  # same numbers as torch.randn(shape, generator=g)

        n, w = len(self._gens), min(self.workers, len(self._gens))
        if w == 1:
            fill(range(n))
        else:  # disjoint rows, each sample's own generator: the result does not depend on w
            list(_pool(w).map(fill, [range(i, n, w) for i in range(w)]))
        self._next += 1
        return buf

    def _draw(self) -> torch.Tensor:
        out = self._fill().to(self.device)
        self._cache = (self._next - 1, out)
        return out

    def _draw_index(self, k: int) -> torch.Tensor:
        if self._cache is not None and self._cache[0] == k:
            return self._cache[1]
        if k < self._next:
            raise NoiseSourceError(f"draw {k} was already consumed; noise streams only go forward "
                                   f"(next draw is {self._next})")
        while self._next < k:  # skip ahead, keeping the stream layout fixed
            self._fill()
        return self._draw()

    def initial(self) -> torch.Tensor:
        """x_T ~ N(0, I): Tensor[B, *shape] on the source's device."""
        return self._draw_index(0)

    def step(self, i: int) -> torch.Tensor:
        """The noise z of sampling loop step i (0-based): Tensor[B, *shape]."""
        if int(i) != i or i < 0:
            raise NoiseSourceError(f"step index must be a non-negative integer, got {i!r}")
        return self._draw_index(int(i) + 1)


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="fv-noise")
    return _POOLS[workers]


# ---- the loop ---------------------------------------------------------------------------------

def sample(eps_fn: EpsFn, x_T: torch.Tensor, schedule: DiffusionSchedule, sampler: str = "ddpm",
           steps: int | str = 1000, eta: float = 0.0, noise: NoiseSource | None = None,
           clip_x0: Clip = None, progress: bool = False, start_t: int | None = None) -> torch.Tensor:
    """Run the reverse process from x_T [B, ...] to x_0 with any eps_fn(x_t, t) -> eps.

    start_t: skip the visited timesteps above it; x_T is then the sample at the first one kept,
    `start_timestep(num_steps, steps, start_t)` (SDEdit-style starts from a noised image).

    sampler "ddpm" (ancestral, `ddpm_step`), "ddim" (`ddim_step` with eta), "dpmpp2m" (`dpmpp2m_step`) or
    "unipc" (`unipc_correct`, then `dpmpp2m_step`: UniPC's second-order predictor with B(h) = expm1(h) is
    DPM-Solver++(2M)'s step); steps is a respacing spec for `space_timesteps` (1000, 50, "ddim50",
    "linspace10", "10,15,20"). Loop step i visits the i-th pair of `timestep_pairs` and, when stochastic
    (ddpm, or ddim with eta > 0), uses noise.step(i); the last step (t_prev = -1) has zero variance and
    draws nothing. The multistep solvers take one network pass per step, as DDIM does.
    """
    if sampler not in SAMPLERS:
        raise SamplerError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    if sampler in MULTISTEP and eta > 0:
        raise SamplerError(f"{sampler} is deterministic: eta applies to ddim only (got eta={eta})")
    stochastic = sampler == "ddpm" or eta > 0
    b = x_T.shape[0]
    if stochastic:
        if noise is None:
            raise SamplerError(f"{sampler} with eta={eta} draws noise: "
                               "pass noise=NoiseSource.from_seeds(seeds, shape)")
        if len(noise) != b or noise.shape != tuple(x_T.shape[1:]):
            raise SamplerError(f"noise source gives [{len(noise)}, {', '.join(map(str, noise.shape))}] "
                               f"but x_T is {list(x_T.shape)}")
    pairs = _pairs_from(schedule.num_steps, steps, start_t)
    indices = range(len(pairs))
    if progress:
        from rich.progress import track
        indices = track(indices, description=f"{sampler} {len(pairs)} steps")
    x = x_T
    history: list[tuple[torch.Tensor, int]] = []    # multistep: (x0 prediction, t) of the last two steps
    started: tuple[torch.Tensor, int] | None = None  # unipc: (the sample the last step started from, its order)
    for i in indices:
        t, t_prev = pairs[i]
        t_vec = torch.full((b,), t, dtype=torch.long, device=x.device)
        eps = eps_fn(x, t_vec)
        if eps.shape != x.shape:
            raise SamplerError(f"eps_fn returned shape {list(eps.shape)} for x_t of shape {list(x.shape)}")
        z = noise.step(i) if stochastic and t_prev >= 0 else None
        if sampler in MULTISTEP:
            x0, _ = _x0_hat(schedule, x, eps, t, clip_x0)
            if started is not None and sampler == "unipc":
                x = unipc_correct(schedule, x, x0, t, started[0], *history[-1],
                                  before=history[-2] if started[1] == 2 else None)
            order = 2 if history and t_prev >= 0 else 1
            started = (x, order)
            x_next = dpmpp2m_step(schedule, x, x0, t, t_prev, history[-1] if order == 2 else None)
            history = (history + [(x0, t)])[-2:]
            x = x_next
        elif sampler == "ddpm":
            x = ddpm_step(schedule, x, eps, t, t_prev, z, clip_x0)
        else:
            x = ddim_step(schedule, x, eps, t, t_prev, eta, z, clip_x0)
    return x


def _pairs_from(num_steps: int, steps: int | str, start_t: int | None) -> list[tuple[int, int]]:
    """The (t, t_prev) pairs `sample` visits: those of the respacing at or below start_t."""
    pairs = timestep_pairs(num_steps, steps)
    if start_t is not None:
        pairs = [p for p in pairs if p[0] <= start_t]
        if not pairs:
            raise SamplerError(f"start_t={start_t} keeps none of the visited timesteps")
    return pairs


def start_timestep(num_steps: int, steps: int | str, start_t: int | None) -> int:
    """The first timestep `sample` visits for this respacing and start_t (num_steps - 1 when None)."""
    return _pairs_from(num_steps, steps, start_t)[0][0]


def ref_start(num_steps: int, ref_strength: float) -> int | None:
    """The start_t of an SDEdit start at strength s (the reference noised to t = s (L-1)); None for s = 1."""
    return None if ref_strength >= 1.0 else int(round(ref_strength * (num_steps - 1)))


def steps_from(num_steps: int, steps: int | str, ref_strength: float = 1.0) -> int:
    """How many network steps `sample` runs for this respacing and start (what a progress bar counts)."""
    return len(_pairs_from(num_steps, steps, ref_start(num_steps, ref_strength)))
