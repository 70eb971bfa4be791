"""DiffusionSchedule, respacing and clipped sampling chains against hand formulas in float64 (thesis 2.4.6,
3.2.1, 3.2.3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fv.engine.diffusion import (
    DiffusionSchedule,
    ScheduleError,
    TimestepSpecError,
    space_timesteps,
    timestep_pairs,
)
from fv.engine.samplers import NoiseSource, sample

L = 1000


def hand_abar() -> np.ndarray:
    """abar_t = prod_{s<=t} (1 - beta_s), beta linear 1e-4 -> 0.02 over L steps, by hand in float64."""
    betas = np.array([1e-4 + (0.02 - 1e-4) * i / (L - 1) for i in range(L)], dtype=np.float64)
    out = np.empty(L)
    acc = 1.0
    for i, b in enumerate(betas):
        acc *= 1.0 - b
        out[i] = acc
    return out


# ---- the schedule ------------------------------------------------------------------------------

def test_tables_are_the_linear_schedule_in_float32():
    s = DiffusionSchedule()
    assert s.betas.dtype == s.alphas.dtype == s.alphas_cumprod.dtype == torch.float32
    assert s.betas.shape == (L,)
    assert s.betas[0].item() == pytest.approx(1e-4, rel=1e-6)
    assert s.betas[-1].item() == pytest.approx(0.02, rel=1e-6)
    assert torch.allclose(s.alphas, 1 - s.betas)
    ref = hand_abar()
    np.testing.assert_allclose(s.alphas_cumprod.double().numpy(), ref, rtol=2e-6)
    # abar_0 = 1 - beta_min; abar_{L-1} = exp(sum log(1 - beta)) with sum beta = L (b0 + b1) / 2 = 10.05,
    # sum beta^2 / 2 and sum beta^3 / 3 from the closed sums of a linear sequence -> about 4.0e-5.
    assert s.alphas_cumprod[0].item() == pytest.approx(1 - 1e-4, abs=1e-7)
    b0, b1, n = 1e-4, 0.02, L
    s1 = n * (b0 + b1) / 2
    s2 = n * (b0 * b0 + b0 * b1 + b1 * b1) / 3 + (b1 - b0) ** 2 * n / (6 * (n - 1))  # sum of squared betas
    log_abar = -s1 - s2 / 2 - sum(b ** 3 for b in np.linspace(b0, b1, n)) / 3
    assert math.exp(log_abar) == pytest.approx(ref[-1], rel=1e-4)
    assert 3.9e-5 < s.alphas_cumprod[-1].item() < 4.2e-5


def test_add_noise_is_the_closed_form_per_sample():
    s = DiffusionSchedule()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(5, 3, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 499, 998, 999])
    ab = hand_abar()[t.numpy()]
    want = np.sqrt(ab)[:, None, None, None] * x0.numpy() + np.sqrt(1 - ab)[:, None, None, None] * eps.numpy()
    np.testing.assert_allclose(s.add_noise(x0, eps, t).numpy(), want, rtol=1e-9, atol=1e-12)
    # float32 inputs stay float32 and agree to float32 precision
    got32 = s.add_noise(x0.float(), eps.float(), t)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), want, atol=1e-5)
    # an int t means the same step for every sample
    a7 = hand_abar()[7]
    np.testing.assert_allclose(s.add_noise(x0, eps, 7).numpy(),
                               math.sqrt(a7) * x0.numpy() + math.sqrt(1 - a7) * eps.numpy())


def test_predict_x0_and_eps_invert_add_noise():
    s = DiffusionSchedule()
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 10, 500, 999])
    x_t = s.add_noise(x0, eps, t)
    torch.testing.assert_close(s.predict_x0(x_t, eps, t), x0, rtol=0, atol=1e-10)
    torch.testing.assert_close(s.predict_eps(x_t, x0, t), eps, rtol=0, atol=1e-10)


def test_posterior_is_the_product_of_gaussians():
    # q(x_{t-1} | x_t, x0) ∝ N(x_t; sqrt(alpha_t) x_{t-1}, beta_t) N(x_{t-1}; sqrt(abar_{t-1}) x0, 1 - abar_{t-1}):
    #   precision = alpha_t / beta_t + 1 / (1 - abar_{t-1})
    #   mean = var (sqrt(alpha_t) x_t / beta_t + sqrt(abar_{t-1}) x0 / (1 - abar_{t-1}))
    s = DiffusionSchedule()
    ab = hand_abar()
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(3, 5, generator=g, dtype=torch.float64)
    x_t = torch.randn(3, 5, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 300, 999])
    mean, var = s.posterior_mean_var(x0, x_t, t)
    for i, ti in enumerate(t.tolist()):
        a_prev = ab[ti - 1]
        alpha = ab[ti] / ab[ti - 1]
        beta = 1 - alpha
        v = 1.0 / (alpha / beta + 1.0 / (1 - a_prev))
        m = v * (math.sqrt(alpha) * x_t[i].numpy() / beta + math.sqrt(a_prev) * x0[i].numpy() / (1 - a_prev))
        assert var[i].item() == pytest.approx(v, rel=1e-9)
        np.testing.assert_allclose(mean[i].numpy(), m, rtol=1e-8, atol=1e-12)
    # the first step ends at the data: variance 0, mean x0
    mean0, var0 = s.posterior_mean_var(x0, x_t, torch.zeros(3, dtype=torch.long))
    assert torch.all(var0 == 0)
    torch.testing.assert_close(mean0, x0, rtol=0, atol=1e-9)
    # a respaced jump t -> t_prev uses beta' = 1 - abar_t / abar_prev in the same product, per sample
    t, t_prev = torch.tensor([500, 999, 40]), torch.tensor([480, 749, -1])
    mean_j, var_j = s.posterior_mean_var(x0, x_t, t, t_prev)
    for i, (ti, pi) in enumerate(zip(t.tolist(), t_prev.tolist())):
        a_prev = ab[pi] if pi >= 0 else 1.0
        alpha = ab[ti] / a_prev
        beta = 1 - alpha
        if pi < 0:  # the jump to the data: N(x0, 0), the product's limit as 1 - abar_prev -> 0
            assert var_j[i].item() == 0.0
            np.testing.assert_allclose(mean_j[i].numpy(), x0[i].numpy(), rtol=0, atol=1e-12)
            continue
        v = 1.0 / (alpha / beta + 1.0 / (1 - a_prev))
        m = v * (math.sqrt(alpha) * x_t[i].numpy() / beta + math.sqrt(a_prev) * x0[i].numpy() / (1 - a_prev))
        assert var_j[i].item() == pytest.approx(v, rel=1e-9)
        np.testing.assert_allclose(mean_j[i].numpy(), m, rtol=1e-8, atol=1e-12)


def test_sample_timesteps_are_uniform_and_seeded():
    s = DiffusionSchedule()
    t = s.sample_timesteps(20000, generator=torch.Generator().manual_seed(3))
    assert t.dtype == torch.long and t.shape == (20000,)
    assert t.min().item() == 0 and t.max().item() == L - 1  # P(an end is missed) ~ 2e-9
    # mean of U{0..999} is 499.5, sd 288.7; within 4 standard errors
    assert abs(t.double().mean().item() - 499.5) < 4 * 288.675 / math.sqrt(20000)
    again = s.sample_timesteps(20000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(t, again)


def test_to_returns_a_moved_copy():
    s = DiffusionSchedule(num_steps=10)
    c = s.to("cpu")
    assert c is not s and c.alphas_cumprod is not s.alphas_cumprod
    assert torch.equal(c.alphas_cumprod, s.alphas_cumprod) and c.device == torch.device("cpu")


def test_bad_inputs_raise_clear_errors():
    s = DiffusionSchedule()
    x = torch.zeros(2, 3)
    with pytest.raises(ScheduleError, match="shape"):
        s.add_noise(x, torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ScheduleError, match=r"shape \[2\]"):
        s.add_noise(x, x, torch.tensor([0, 1, 2]))
    with pytest.raises(ScheduleError, match="lie in"):
        s.add_noise(x, x, torch.tensor([0, 1000]))
    with pytest.raises(ScheduleError, match="integer"):
        s.add_noise(x, x, torch.tensor([0.5, 1.0]))
    with pytest.raises(ScheduleError, match="smaller"):
        s.posterior_mean_var(x, x, torch.tensor([5, 5]), torch.tensor([5, 4]))
    with pytest.raises(ScheduleError):
        DiffusionSchedule(num_steps=0)
    with pytest.raises(ScheduleError):
        DiffusionSchedule(beta_end=1.5)


# ---- whole chains with a clipped x0, against a loop written from the papers ----------------------------

def toy_eps(x):
    """A stand-in network, elementwise and affine: x0_hat = (x (1 + sqrt(1 - a) / 2) - 0.3 sqrt(1 - a)) / sqrt(a)
    leaves [-1, 1] at high noise (sqrt(a) small), so the clip is exercised at several steps."""
    return -0.5 * x + 0.3


def hand_chain(x, zs, ts, sampler, eta, lo, hi):
    """x_T -> x_0 visiting ts (ascending) from the top: x0_hat = (x - sqrt(1 - a) eps) / sqrt(a) clipped to
    [lo, hi] and eps re-derived from it, then DDPM's posterior (Ho et al. eqs. 6-7, sigma^2 = beta-tilde, the
    respaced beta' = 1 - a / a_prev) or DDIM's eq. 12 with sigma from eq. 16. zs[i]: the noise of step i.
    Returns x_0 and the number of steps where the clip changed something."""
    ab = hand_abar()
    pairs = list(zip(ts[::-1], ts[::-1][1:] + [-1]))
    clipped = 0
    for i, (t, tp) in enumerate(pairs):
        a, ap = ab[t], (ab[tp] if tp >= 0 else 1.0)
        x0 = (x - math.sqrt(1 - a) * toy_eps(x)) / math.sqrt(a)
        clipped += int(((x0 < lo) | (x0 > hi)).any())
        x0 = np.minimum(np.maximum(x0, lo), hi)
        eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
        z = zs[i] if zs and tp >= 0 else 0.0  # deterministic DDIM draws nothing
        if sampler == "ddpm":
            beta = 1 - a / ap
            mean = math.sqrt(ap) * beta / (1 - a) * x0 + math.sqrt(1 - beta) * (1 - ap) / (1 - a) * x
            x = mean + math.sqrt(beta * (1 - ap) / (1 - a)) * z
        else:
            sigma = eta * math.sqrt((1 - ap) / (1 - a)) * math.sqrt(1 - a / ap)
            x = math.sqrt(ap) * x0 + math.sqrt(1 - ap - sigma ** 2) * eps + sigma * z
    return x, clipped


@pytest.mark.parametrize("bounds", ["scalar", "elementwise"])
@pytest.mark.parametrize("sampler,eta", [("ddpm", 0.0), ("ddim", 0.0), ("ddim", 0.6)])
def test_clipped_chain_matches_a_hand_loop(sampler, eta, bounds):
    seeds, shape = [5, 6], (3, 4, 4)
    ts = list(range(0, 996, 199))                       # "ddim6" on L = 1000: stride 999 // 5 = 199
    stochastic = sampler == "ddpm" or eta > 0
    # every sample's own stream: x_T, then one draw per step that ends above the data
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    x_T = torch.stack([torch.randn(shape, generator=g, dtype=torch.float64) for g in gens]).numpy()
    zs = [torch.stack([torch.randn(shape, generator=g, dtype=torch.float64) for g in gens]).numpy()
          for _ in range(len(ts) - 1 if stochastic else 0)]
    if bounds == "scalar":
        lo, hi, clip = -1.0, 1.0, 1.0
    else:                                               # a residual target's [-1 - x_ref, 1 - x_ref]
        x_ref = np.random.default_rng(7).uniform(-0.8, 0.8, (1, *shape))
        lo, hi = -1.0 - x_ref, 1.0 - x_ref
        clip = (torch.from_numpy(lo), torch.from_numpy(hi))
    want, clipped = hand_chain(x_T, zs, ts, sampler, eta, lo, hi)
    free, _ = hand_chain(x_T, zs, ts, sampler, eta, -np.inf, np.inf)
    assert clipped >= 3 and np.abs(want - free).max() > 0.1  # the clip acts, at several steps

    def run(clip_x0):
        noise = NoiseSource.from_seeds(seeds, shape, dtype=torch.float64)
        return sample(lambda x, t: toy_eps(x), noise.initial(), DiffusionSchedule(), sampler, "ddim6", eta=eta,
                      noise=noise, clip_x0=clip_x0).numpy()
    np.testing.assert_allclose(run(clip), want, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(run(None), free, rtol=1e-9, atol=1e-9)


# ---- respacing -----------------------------------------------------------------------------------

def test_ddim_stride_spacing():
    want = list(range(0, 981, 20))  # DDIM's stride 20 for 50 steps
    assert space_timesteps(L, "ddim50") == want
    assert space_timesteps(L, 50) == want
    assert space_timesteps(L, "DDIM50") == want
    assert space_timesteps(L, 3) == [0, 499, 998]  # largest stride with 2 s <= 999
    assert space_timesteps(L, 1) == [L - 1]
    assert space_timesteps(L, 1000) == list(range(L))
    for n in range(2, L + 1):
        ts = space_timesteps(L, n)
        stride = ts[1] - ts[0]
        assert len(ts) == n and ts[0] == 0 and ts[-1] <= L - 1
        assert all(b - a == stride for a, b in zip(ts, ts[1:]))
        assert ts[-1] + (n - 1) > L - 1  # a stride one larger would not fit


def test_section_spacing_by_hand():
    assert space_timesteps(L, "1000") == list(range(L))
    # L = 10, "2,3": sections [0..4] and [5..9]; 2 steps -> stride 4: 0, 4; 3 steps -> stride 2: 5, 7, 9
    assert space_timesteps(10, "2,3") == [0, 4, 5, 7, 9]
    # L = 10, "4": one section, stride 9/3 = 3
    assert space_timesteps(10, "4") == [0, 3, 6, 9]
    # L = 11, "1,1,1": sections of 4, 4, 3 starting at 0, 4, 8; one step takes the section's start
    assert space_timesteps(11, "1,1,1") == [0, 4, 8]
    ts = space_timesteps(L, "10,15,20")
    assert len(ts) == 45 and ts == sorted(set(ts))
    starts, ends = [0, 334, 667], [333, 666, 999]  # 1000 = 334 + 333 + 333
    for lo, hi, count in zip(starts, ends, (10, 15, 20)):
        inside = [t for t in ts if lo <= t <= hi]
        assert len(inside) == count and inside[0] == lo and inside[-1] == hi


def test_spacing_properties_hold_for_many_specs():
    for spec in ["ddim10", 7, "250", "100", "1,2,3,4", "333,333,333", "5, 5", 999]:
        ts = space_timesteps(L, spec)
        assert ts == sorted(set(ts)) and 0 <= ts[0] and ts[-1] <= L - 1
        pairs = timestep_pairs(L, spec)
        assert [p[0] for p in pairs] == ts[::-1]
        assert [p[1] for p in pairs] == ts[::-1][1:] + [-1]


def test_bad_specs_raise():
    for spec in ["ddim0", "ddim1001", 0, 1001, "abc", "10,x", "", "400,400,400", "0,5", True, 2.5]:
        with pytest.raises(TimestepSpecError):
            space_timesteps(L, spec)
    with pytest.raises(TimestepSpecError):
        space_timesteps(0, 10)
