"""DPM-Solver++(2M) and UniPC (fv.engine.samplers) against diffusers' schedulers step by step, and against the
exact probability-flow map of Gaussian data.

diffusers (a test-only dependency) is the independent reference: DPMSolverMultistepScheduler(algorithm_type=
"dpmsolver++", solver_order=2) and UniPCMultistepScheduler (bh2, order 2), both with their defaults
lower_order_final=True and final_sigmas_type="zero". They are fed fv's float64 schedule (their own tables are
float32) and, at every step, the sample and the model output fv's loop had there, so each step is compared
on identical inputs; a second run lets diffusers go on its own from the same x_T and compares the end.

For data x0 ~ N(mu, s^2) with the exact eps-predictor (tests/engine/test_samplers.py), the probability-flow
ODE maps x_T to x_0 = mu + s (x_T - sqrt(a_T) mu) / sqrt(a_T s^2 + 1 - a_T) exactly (both are the same
quantile of their Gaussians), so a deterministic solver's error is its discretisation error alone.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fv.engine.diffusion import DiffusionSchedule, space_timesteps, timestep_pairs
from fv.engine.requests import EngineError
from fv.engine.sample_options import SampleOptions
from fv.engine.samplers import SamplerError, ddim_step, dpmpp2m_step, sample

diffusers = pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")   # diffusers' own numpy-2 notice

L = 1000
MU, S = 0.3, 0.5


def gaussian_eps(x: torch.Tensor, t: torch.Tensor, sched: DiffusionSchedule) -> torch.Tensor:
    a = sched.abar(t, x).to(x.dtype)
    return (1 - a).sqrt() * (x - a.sqrt() * MU) / (a * S * S + 1 - a)


def wiggly_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A smooth nonlinear stand-in for a network: different at every t and every coordinate."""
    tt = t.to(x.dtype).view(-1, *([1] * (x.dim() - 1))) / L
    return torch.tanh(1.3 * x + 0.4 * torch.sin(7 * tt + torch.arange(x.shape[-1], dtype=x.dtype))) * (0.5 + tt)


def recording(eps_fn):
    """eps_fn that also keeps every (x, t, eps) it was called with."""
    calls = []

    def fn(x, t):
        eps = eps_fn(x, t)
        calls.append((x.clone(), int(t[0]), eps.clone()))
        return eps
    return fn, calls


def reference(kind: str, sched: DiffusionSchedule, visited: list[int]):
    """A diffusers scheduler set to fv's timesteps and float64 noise levels."""
    if kind == "dpmpp2m":
        ref = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=L, algorithm_type="dpmsolver++",
                                                    solver_order=2)
    else:
        ref = diffusers.UniPCMultistepScheduler(num_train_timesteps=L, solver_order=2)
    ref.set_timesteps(len(visited))
    abar = torch.tensor([sched.abar_value(t) for t in range(L)], dtype=torch.float64)
    ts = torch.tensor(sorted(visited, reverse=True), dtype=torch.int64)
    ref.alphas_cumprod = abar
    ref.timesteps = ts
    ref.sigmas = torch.cat([((1 - abar[ts]) / abar[ts]).sqrt(), torch.zeros(1, dtype=torch.float64)])
    ref.num_inference_steps = len(ts)
    return ref


@pytest.mark.parametrize("kind", ["dpmpp2m", "unipc"])
@pytest.mark.parametrize("steps", ["linspace10", "trailing5", "ddim10", "20", "linspace2"])
def test_every_step_equals_diffusers_in_float64(kind, steps):
    sched = DiffusionSchedule(L)
    x_T = torch.randn(3, 2, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fn, calls = recording(wiggly_eps)
    out = sample(fn, x_T, sched, kind, steps)
    visited = space_timesteps(L, steps)
    assert [c[1] for c in calls] == sorted(visited, reverse=True)
    ref = reference(kind, sched, visited)
    for i, (x, t, eps) in enumerate(calls):       # identical inputs: fv's sample and model output there
        got = ref.step(eps, torch.tensor(t), x).prev_sample
        want = calls[i + 1][0] if i + 1 < len(calls) else out
        err = float((got - want).abs().max())
        assert err <= 1e-5 * (1 + float(want.abs().max())), f"step {i} (t={t}): {err:.2e}"
    alone = reference(kind, sched, visited)       # diffusers on its own from the same x_T
    x = x_T
    for t in alone.timesteps:
        x = alone.step(wiggly_eps(x, t.repeat(len(x))), t, x).prev_sample
    assert float((x - out).abs().max()) <= 1e-5 * (1 + float(out.abs().max()))


def exact_flow(x_T: torch.Tensor, sched: DiffusionSchedule) -> torch.Tensor:
    a = sched.abar_value(L - 1)
    return MU + S * (x_T - math.sqrt(a) * MU) / math.sqrt(a * S * S + 1 - a)


def test_solvers_converge_to_the_exact_flow_at_their_order():
    """Halving the step (100 -> 200 -> 400 evenly spaced steps) divides DDIM's error by ~2 (first order),
    DPM-Solver++(2M)'s by ~4 (second order) and UniPC's by more (its corrector adds an order)."""
    sched = DiffusionSchedule(L)
    x_T = torch.randn(4000, generator=torch.Generator().manual_seed(1), dtype=torch.float64).view(8, 500)
    exact = exact_flow(x_T, sched)

    def err(kind, steps):
        return float((sample(lambda x, t: gaussian_eps(x, t, sched), x_T, sched, kind, steps) - exact).abs().max())
    e = {k: [err(k, n) for n in ("100", "200", "400")] for k in ("ddim", "dpmpp2m", "unipc")}
    ratios = {k: (v[0] / v[1], v[1] / v[2]) for k, v in e.items()}
    assert all(1.6 < r < 2.4 for r in ratios["ddim"]), ratios
    assert all(r > 3.5 for r in ratios["dpmpp2m"]), ratios
    assert all(r > 4.5 for r in ratios["unipc"]), ratios
    assert e["unipc"][2] < e["dpmpp2m"][2] < 0.2 * e["ddim"][2] and e["unipc"][2] < 1e-3, e


def test_first_order_step_is_ddim_with_eta_0():
    sched = DiffusionSchedule(L)
    x = torch.randn(2, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    eps = wiggly_eps(x, torch.full((2,), 600))
    x0 = sched.predict_x0(x, eps, 600)
    got = dpmpp2m_step(sched, x, x0, 600, 400)
    np.testing.assert_allclose(got, ddim_step(sched, x, eps, 600, 400, 0.0, None), rtol=0, atol=1e-12)
    assert torch.equal(dpmpp2m_step(sched, x, x0, 0, -1), x0)        # to clean data: the x0 prediction


def test_sdedit_start_and_clip_work_with_multistep():
    sched = DiffusionSchedule(L)
    x = torch.randn(2, 6, generator=torch.Generator().manual_seed(3))
    fn, calls = recording(wiggly_eps)
    out = sample(fn, x, sched, "unipc", "linspace10", start_t=500, clip_x0=0.2)
    assert [c[1] for c in calls] == [500, 400, 300, 200, 100]
    assert float(out.abs().max()) <= 0.2 + 1e-6       # the last step returns the clipped x0 prediction


def test_bad_multistep_options_raise():
    sched = DiffusionSchedule(L)
    x = torch.zeros(1, 3)
    with pytest.raises(SamplerError, match="deterministic"):
        sample(wiggly_eps, x, sched, "dpmpp2m", 10, eta=0.5)
    with pytest.raises(EngineError, match="deterministic"):
        SampleOptions(sampler="unipc", eta=0.3)
    assert SampleOptions(sampler="dpmpp2m").sampler == "dpmpp2m"


def test_diffusers_spacings_are_diffusers():
    for kind in ("linspace", "trailing"):
        for n in (1, 2, 5, 10, 25, 50):
            for cls in (diffusers.DPMSolverMultistepScheduler, diffusers.UniPCMultistepScheduler):
                ref = cls(num_train_timesteps=L, timestep_spacing=kind)
                ref.set_timesteps(n)
                assert space_timesteps(L, f"{kind}{n}") == sorted(ref.timesteps.tolist()), (cls, kind, n)
    assert timestep_pairs(L, "linspace2")[-1] == (500, -1)
