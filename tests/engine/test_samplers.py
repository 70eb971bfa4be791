"""Samplers without a network: the exact eps-predictor of Gaussian data, hand formulas, invariances.

For data x0 ~ N(mu, s^2) per coordinate, x_t = sqrt(a) x0 + sqrt(1-a) eps is jointly Gaussian with eps, so
    E[eps | x_t] = Cov(eps, x_t) / Var(x_t) (x_t - E x_t) = sqrt(1-a) (x_t - sqrt(a) mu) / (a s^2 + 1 - a).
With that predictor every sampler step is affine in x plus independent Gaussian noise, so the exact law
of the sampler's output is N(m, v) from a scalar recursion (`chain_law`, written here by hand in the
eps form of Ho et al. Alg. 2 and DDIM eq. 12). Its gap to N(mu, s^2) is the sampler's own
discretisation bias (fixed-small variance for DDPM, few ODE steps for DDIM), which we bound and state.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from fv.engine.diffusion import OBJECTIVES, DiffusionSchedule, Objective, objective, timestep_pairs
from fv.engine.samplers import (
    NoiseSource,
    NoiseSourceError,
    SamplerError,
    cfg_eps,
    ddim_step,
    ddpm_step,
    guided,
    sample,
)

L = 1000
MU, S = 0.3, 0.5
AB = np.cumprod(1.0 - np.linspace(1e-4, 0.02, L))  # abar_t by hand, float64
# 2000 samples of dim 16 = 32,000 iid draws, held as 8 noise streams of 250 x 16 (the predictor is
# elementwise, so coordinates are independent; few streams keep the per-sample generator loop cheap).
STREAMS, SHAPE = 8, (250, 16)


def gaussian_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    a = torch.as_tensor(AB, dtype=x.dtype, device=x.device)[t].view(-1, *([1] * (x.dim() - 1)))
    return (1 - a).sqrt() * (x - a.sqrt() * MU) / (a * S * S + 1 - a)


def chain_law(pairs: list[tuple[int, int]], sampler: str, eta: float = 0.0) -> tuple[float, float]:
    """Exact mean and variance of the sampler output from x_T ~ N(0, 1) with `gaussian_eps`."""
    m, v = 0.0, 1.0
    for t, tp in pairs:
        a, ap = AB[t], (1.0 if tp < 0 else AB[tp])
        k = math.sqrt(1 - a) / (a * S * S + 1 - a)  # eps_hat = k x - k sqrt(a) mu
        ke, be = k, -k * math.sqrt(a) * MU
        if sampler == "ddpm":  # x' = (x - beta'/sqrt(1-a) eps_hat) / sqrt(alpha') + sqrt(beta-tilde) z
            alpha = a / ap
            beta = 1 - alpha
            A = (1 - beta / math.sqrt(1 - a) * ke) / math.sqrt(alpha)
            B = -beta / math.sqrt(1 - a) * be / math.sqrt(alpha)
            var = beta * (1 - ap) / (1 - a)
        else:  # x' = sqrt(ap) (x - sqrt(1-a) eps_hat) / sqrt(a) + sqrt(1 - ap - sigma^2) eps_hat + sigma z
            var = eta ** 2 * (1 - ap) / (1 - a) * (1 - a / ap)
            c = math.sqrt(max(1 - ap - var, 0.0))
            A = math.sqrt(ap) * (1 - math.sqrt(1 - a) * ke) / math.sqrt(a) + c * ke
            B = -math.sqrt(ap) * math.sqrt(1 - a) * be / math.sqrt(a) + c * be
        m, v = A * m + B, A * A * v + var
    return m, v


def run(sampler: str, steps, seeds, eta: float = 0.0, dtype=torch.float64) -> torch.Tensor:
    # one intra-op thread: 32,000-element ops gain nothing from two threads on a shared 2-core box
    torch.set_num_threads(1)
    noise = NoiseSource.from_seeds(seeds, SHAPE, dtype=dtype)
    return sample(gaussian_eps, noise.initial(), DiffusionSchedule(), sampler, steps, eta=eta, noise=noise)


@pytest.fixture(scope="module")
def ddpm_samples() -> torch.Tensor:
    return run("ddpm", 1000, range(STREAMS))


def assert_matches(x: torch.Tensor, mean: float, var: float, bias_m: float = 0.0, bias_v: float = 0.0) -> None:
    """Sample mean within 4 SE (s/sqrt n) and variance within 4 SE (v sqrt(2/(n-1))), plus a stated bias."""
    flat = x.flatten().double()
    se_m = math.sqrt(var / flat.numel())
    se_v = var * math.sqrt(2.0 / (flat.numel() - 1))
    assert abs(flat.mean().item() - mean) < 4 * se_m + bias_m, (flat.mean().item(), mean, se_m)
    assert abs(flat.var().item() - var) < 4 * se_v + bias_v, (flat.var().item(), var, se_v)


# ---- single steps against hand formulas ------------------------------------------------------------

def _step_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, 5, generator=g, dtype=torch.float64) for _ in range(3)]


def test_ddpm_step_is_algorithm_2():
    s = DiffusionSchedule()
    x, eps, z = _step_inputs()
    t = torch.tensor([999, 500, 1, 0])
    got = ddpm_step(s, x, eps, t, t - 1, z)
    for i, ti in enumerate(t.tolist()):
        a, ap = AB[ti], (AB[ti - 1] if ti > 0 else 1.0)
        beta = 1 - a / ap  # = beta_t for consecutive steps
        sigma = math.sqrt(beta * (1 - ap) / (1 - a))
        want = (x[i] - beta / math.sqrt(1 - a) * eps[i]) / math.sqrt(1 - beta) + sigma * z[i]
        torch.testing.assert_close(got[i], want, rtol=1e-9, atol=1e-9)
    # respaced: the same formula with beta' = 1 - abar_t / abar_prev
    got = ddpm_step(s, x, eps, 700, 650, z)
    beta = 1 - AB[700] / AB[650]
    want = (x - beta / math.sqrt(1 - AB[700]) * eps) / math.sqrt(1 - beta) \
        + math.sqrt(beta * (1 - AB[650]) / (1 - AB[700])) * z
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_ddim_step_is_eq_12_with_eq_16():
    s = DiffusionSchedule()
    x, eps, z = _step_inputs(1)
    t, tp = torch.tensor([999, 980, 40, 0]), torch.tensor([979, 960, 20, -1])
    for eta in (0.0, 0.5):
        got = ddim_step(s, x, eps, t, tp, eta, z)
        for i in range(4):
            a, ap = AB[t[i]], (AB[tp[i]] if tp[i] >= 0 else 1.0)
            sigma = eta * math.sqrt((1 - ap) / (1 - a)) * math.sqrt(1 - a / ap)
            x0 = (x[i] - math.sqrt(1 - a) * eps[i]) / math.sqrt(a)
            want = math.sqrt(ap) * x0 + math.sqrt(1 - ap - sigma ** 2) * eps[i] + sigma * z[i]
            torch.testing.assert_close(got[i], want, rtol=1e-9, atol=1e-9)


def test_ddim_eta_1_step_equals_ddpm_step():
    s = DiffusionSchedule()
    x, eps, z = _step_inputs(2)
    for t, tp in [(999, 998), (500, 499), (1, 0), (0, -1), (980, 960)]:
        torch.testing.assert_close(ddim_step(s, x, eps, t, tp, 1.0, z), ddpm_step(s, x, eps, t, tp, z),
                                   rtol=1e-10, atol=1e-10)


def test_clip_x0_bounds_the_final_sample():
    s = DiffusionSchedule()
    x = torch.full((2, 3), 5.0)
    eps = torch.zeros(2, 3)  # x0_hat = 5 / sqrt(abar) > 1
    out = ddim_step(s, x, eps, 10, -1, 0.0, None, clip_x0=1.0)
    torch.testing.assert_close(out, torch.ones(2, 3))
    out = ddpm_step(s, x, eps, 0, -1, None, clip_x0=1.0)
    torch.testing.assert_close(out, torch.ones(2, 3))


# ---- whole chains against the data distribution ----------------------------------------------------

def test_ddpm_1000_samples_the_data(ddpm_samples):
    m, v = chain_law(timestep_pairs(L, 1000), "ddpm")
    # the fixed-small variance leaves the chain's own variance ~1.5 % under s^2; its mean is exact
    assert abs(m - MU) < 1e-4 and abs(v - S * S) < 0.02 * S * S
    assert_matches(ddpm_samples, m, v)
    assert_matches(ddpm_samples, MU, S * S, bias_m=1e-4, bias_v=0.02 * S * S)
    # the whole law, not only two moments: one-sample KS against N(m, v)
    p = stats.kstest(ddpm_samples.flatten().numpy(), "norm", args=(m, math.sqrt(v))).pvalue
    assert p > 1e-3


def test_ddim_50_samples_the_data():
    x = run("ddim", "ddim50", range(100, 100 + STREAMS))
    m, v = chain_law(timestep_pairs(L, "ddim50"), "ddim")
    # 50 deterministic steps under-disperse by ~11 % on this data (the ODE discretisation error; it falls
    # to ~0.6 % at 1000 steps), and the mean misses by ~1e-3 from x_T ~ N(0, 1) at t = 980
    assert abs(m - MU) < 2e-3 and abs(v - S * S) < 0.12 * S * S
    assert_matches(x, m, v)
    assert_matches(x, MU, S * S, bias_m=2e-3, bias_v=0.12 * S * S)


def test_ddim_eta_1_all_steps_is_ddpm(ddpm_samples):
    same = run("ddim", 1000, range(STREAMS), eta=1.0)
    torch.testing.assert_close(same, ddpm_samples, rtol=0, atol=1e-9)
    other = run("ddim", 1000, range(200, 200 + STREAMS), eta=1.0)
    p = stats.ks_2samp(other.flatten().numpy(), ddpm_samples.flatten().numpy()).pvalue
    assert p > 1e-3
    assert not torch.equal(other, ddpm_samples)


# ---- batch invariance and noise streams --------------------------------------------------------------

@pytest.mark.parametrize("sampler,steps,eta",
                         [("ddpm", "250", 0.0), ("ddim", "ddim25", 0.7), ("ddpm", "10,5", 0.0)])
def test_batch_of_four_equals_each_alone(sampler, steps, eta):
    seeds, shape, sched = [11, 12, 13, 14], (3, 4, 4), DiffusionSchedule()
    together = NoiseSource.from_seeds(seeds, shape)
    x4 = sample(gaussian_eps, together.initial(), sched, sampler, steps, eta=eta, noise=together)
    for b, seed in enumerate(seeds):
        alone = NoiseSource.from_seeds([seed], shape)
        x1 = sample(gaussian_eps, alone.initial(), sched, sampler, steps, eta=eta, noise=alone)
        assert torch.equal(x4[b:b + 1], x1)


def test_noise_streams_are_per_sample():
    ns = NoiseSource.from_seeds([5, 6], (2, 3))
    x_T = ns.initial()
    for b, seed in enumerate([5, 6]):
        g = torch.Generator().manual_seed(seed)
        assert torch.equal(x_T[b], torch.randn(2, 3, generator=g))
        assert torch.equal(ns.step(0)[b], torch.randn(2, 3, generator=g))  # the next draw of the same stream
    assert torch.equal(ns.step(0), ns.step(0))  # repeating the last index returns the same draw
    with pytest.raises(NoiseSourceError, match="forward"):
        ns.initial()
    # skipping ahead keeps the layout: step(3) is draw 4 whether or not steps 1-2 were asked for
    a = NoiseSource.from_seeds([5, 6], (2, 3))
    b = NoiseSource.from_seeds([5, 6], (2, 3))
    for i in range(4):
        last = a.step(i)
    assert torch.equal(b.step(3), last)
    # drawing with a thread pool gives the same numbers
    c = NoiseSource.from_seeds([5, 6, 7, 8, 9], (2, 3))
    d = NoiseSource.from_seeds([5, 6, 7, 8, 9], (2, 3), workers=3)
    assert torch.equal(c.initial(), d.initial()) and torch.equal(c.step(2), d.step(2))


# ---- classifier-free guidance ---------------------------------------------------------------------

class DoubledModel:
    """A stand-in for a backend taking a doubled batch: cond eps = 2x + t/1000, uncond eps = -x."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor, uncond: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        assert uncond.dtype == torch.bool
        cond = 2 * x + t.view(-1, *([1] * (x.dim() - 1))).to(x.dtype) / 1000
        return torch.where(uncond.view(-1, *([1] * (x.dim() - 1))), -x, cond)


def test_guided_makes_one_doubled_call_and_applies_the_formula():
    model = DoubledModel()
    x = torch.randn(3, 2, 2, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([5, 100, 999])
    c = 2 * x + t.view(-1, 1, 1) / 1000
    u = -x
    for g in (0.0, 1.0, 3.5):
        model.batches.clear()
        got = guided(model, g)(x, t)
        assert model.batches == [6]
        torch.testing.assert_close(got, u + g * (c - u))
    torch.testing.assert_close(guided(model, 1.0)(x, t), c)  # g = 1 is the conditional model
    torch.testing.assert_close(guided(model, 0.0)(x, t), u)
    per_sample = torch.tensor([0.0, 1.0, 2.0])
    want = torch.stack([u[0], c[1], u[2] + 2 * (c[2] - u[2])])
    torch.testing.assert_close(guided(model, per_sample)(x, t), want)
    torch.testing.assert_close(cfg_eps(c, u, 2.0), u + 2.0 * (c - u))


def test_sampling_with_guidance_calls_once_per_step():
    model = DoubledModel()
    noise = NoiseSource.from_seeds([1, 2], (2, 2))
    sample(guided(model, 2.0), noise.initial(), DiffusionSchedule(), "ddim", "ddim10", noise=noise)
    assert model.batches == [4] * 10


# ---- errors ---------------------------------------------------------------------------------------

def test_bad_calls_raise_clear_errors():
    sched = DiffusionSchedule()
    noise = NoiseSource.from_seeds([1, 2], (3,))
    x = noise.initial()
    with pytest.raises(SamplerError, match="sampler"):
        sample(gaussian_eps, x, sched, "euler", 10, noise=noise)
    with pytest.raises(SamplerError, match="NoiseSource"):
        sample(gaussian_eps, x, sched, "ddpm", 10)
    with pytest.raises(SamplerError, match="noise source"):
        sample(gaussian_eps, torch.zeros(3, 3), sched, "ddpm", 10, noise=noise)
    with pytest.raises(SamplerError, match="shape"):
        sample(lambda x, t: x[:1], x, sched, "ddim", 10)
    with pytest.raises(SamplerError, match="eta"):
        ddim_step(sched, x, x, 10, 5, -1.0, None)
    with pytest.raises(NoiseSourceError):
        NoiseSource([], (3,))


# ---- device ----------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_cuda_gets_the_cpu_numbers():
    cpu = NoiseSource.from_seeds([3, 4], (2, 8))
    gpu = NoiseSource.from_seeds([3, 4], (2, 8), device="cuda")
    assert torch.equal(gpu.initial().cpu(), cpu.initial())
    sched = DiffusionSchedule(device="cuda")
    x_gpu = sample(gaussian_eps, gpu.initial(), sched, "ddim", "ddim20", eta=0.5, noise=gpu)
    x_cpu = sample(gaussian_eps, cpu.initial(), DiffusionSchedule(), "ddim", "ddim20", eta=0.5, noise=cpu)
    torch.testing.assert_close(x_gpu.cpu(), x_cpu, rtol=1e-5, atol=1e-5)
    t = torch.tensor([0, 999], device="cuda")
    torch.testing.assert_close(sched.add_noise(x_gpu, x_gpu, t).cpu(),
                               DiffusionSchedule().add_noise(x_cpu, x_cpu, t.cpu()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sampler,eta", [("ddim", 0.0), ("ddpm", 0.0)])
def test_frame_noise_video_shares_x_T_across_frames(sampler, eta):
    """frame_noise="video": every frame of a video starts from (and is stepped with) the video's own noise,
    so a denoiser that ignores the conditioning gives identical frames; "frame" gives different ones.
    The shared draw is the request's seeded [1, C, H, W] stream: video k alone equals video k in a batch."""
    from fv.engine.sample_options import SampleOptions
    from fv.engine.video_sampler import sample_frames
    sched = DiffusionSchedule(100)
    T, shape = 4, (3, 8, 8)
    feats = (torch.zeros(2, 1),)
    windows, emotions = torch.randn(2, T, 3, 2), torch.tensor([0, 5])

    def denoiser(x_t, t, motion, emotion, ref):               # ignores every condition
        return 0.5 * x_t
    videos = {}
    for mode in ("video", "frame"):
        opts = SampleOptions(sampler, 10, eta, 1.0, frame_noise=mode)
        videos[mode] = sample_frames(denoiser, sched, OBJECTIVES["frame-eps"], feats, windows, emotions, [3, 4], opts,
                                     torch.zeros(2, *shape))
    v = videos["video"]
    assert torch.equal(v[:, 0:1].expand_as(v), v)               # all frames of a video equal
    assert not torch.equal(v[0], v[1])                          # videos still differ (their own seeds)
    f = videos["frame"]
    assert (f[:, 0] - f[:, 1]).abs().max() > 1e-3               # independent per frame
    alone = sample_frames(denoiser, sched, OBJECTIVES["frame-eps"], (feats[0][1:],), windows[1:], emotions[1:], [4],
                          SampleOptions(sampler, 10, eta, 1.0, frame_noise="video"), torch.zeros(1, *shape))
    torch.testing.assert_close(alone[0], v[1], rtol=0, atol=0)


def test_ref_strength_starts_from_the_noised_reference():
    """ref_strength s < 1 (SDEdit): the first denoiser call sees x = add_noise(x_ref, x_T draw, t0) with t0 the
    first visited timestep <= s (L-1), and only the timesteps <= t0 are visited; s = 1 visits them all."""
    from fv.engine.samplers import start_timestep
    from fv.engine.sample_options import SampleOptions
    from fv.engine.video_sampler import sample_frames
    sched = DiffusionSchedule(100)
    T, shape = 3, (3, 8, 8)
    x_ref = torch.rand(2, *shape) * 2 - 1
    windows, emotions = torch.randn(2, T, 3, 2), torch.tensor([1, 2])
    for s, steps in ((0.5, 20), (1.0, 20), (0.3, "ddim10")):
        calls = []

        def denoiser(x_t, t, motion, emotion, ref):
            calls.append((x_t.clone(), t.clone()))
            return 0.1 * x_t
        opts = SampleOptions("ddim", steps, 0.0, 1.0, ref_strength=s)
        sample_frames(denoiser, sched, OBJECTIVES["frame-eps"], (torch.zeros(2, 1),), windows, emotions, [7, 8], opts,
                      x_ref)
        visited = [t for t, _ in timestep_pairs(100, steps)]
        t0 = start_timestep(100, steps, round(s * 99))
        assert t0 == max(t for t in visited if t <= round(s * 99))
        assert [int(c[1][0]) for c in calls] == [t for t in visited if t <= t0]
        x_T = torch.stack([torch.randn(1, *shape, generator=torch.Generator().manual_seed(k)) for k in (7, 8)])
        x0 = x_ref.unsqueeze(1).expand(-1, T, *shape)
        want = x_T.expand(-1, T, *shape) if s == 1.0 else sched.add_noise(x0, x_T.expand(-1, T, *shape), t0)
        torch.testing.assert_close(calls[0][0], want.reshape(2 * T, *shape))


@pytest.mark.parametrize("ref_strength", [1.0, 0.5])
def test_residual_target_is_decoded_against_the_reference(ref_strength):
    """A "residual" target: the process runs on frame - x_ref and x_ref is added back. With the exact eps of a
    constant x0 = r, DDIM (eta 0) returns x0 = r at every step, so the video is x_ref + r, clipped elementwise
    so the frame stays in [-1, 1] ("frame" would give r itself). An SDEdit start noises the residual of the
    reference itself, zero: the first input is sqrt(1 - abar_t0) x_T."""
    from fv.engine.samplers import start_timestep
    from fv.engine.sample_options import SampleOptions
    from fv.engine.video_sampler import sample_frames
    sched = DiffusionSchedule(100)
    T, shape, r = 3, (3, 8, 8), 0.3
    x_ref = torch.rand(2, *shape) * 2 - 1
    windows, emotions = torch.randn(2, T, 3, 2), torch.tensor([1, 2])
    calls = []

    def denoiser(x_t, t, motion, emotion, ref):  # exact eps for x0 = r
        calls.append(x_t.clone())
        ab = sched.abar(t, x_t).float()
        return (x_t - ab.sqrt() * r) / (1 - ab).sqrt()
    opts = SampleOptions("ddim", 10, 0.0, 1.0, ref_strength=ref_strength)
    # both objectives' targets, with an eps-predicting denoiser (the target is what this test is about)
    objectives = {tgt: Objective(tgt, "eps") for tgt in ("frame", "residual")}
    out = {tgt: sample_frames(denoiser, sched, obj, (torch.zeros(2, 1),), windows, emotions, [7, 8], opts, x_ref)
           for tgt, obj in objectives.items()}
    torch.testing.assert_close(out["frame"], torch.full((2, T, *shape), r), atol=1e-4, rtol=0)
    want = (x_ref + r).clamp(-1, 1).unsqueeze(1).expand(-1, T, *shape)
    torch.testing.assert_close(out["residual"], want, atol=1e-4, rtol=0)
    assert (x_ref + r > 1).any()                       # the clip was exercised
    if ref_strength < 1:
        t0 = start_timestep(100, 10, round(ref_strength * 99))
        x_T = torch.stack([torch.randn(1, *shape, generator=torch.Generator().manual_seed(k)) for k in (7, 8)])
        first = (1 - sched.abar(t0, x_T)).sqrt().float() * x_T.expand(-1, T, *shape)
        torch.testing.assert_close(calls[len(calls) // 2], first.reshape(2 * T, *shape), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="objective"):
        objective("residual-eps")
