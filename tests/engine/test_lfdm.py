"""LFDM's engine side (fv.engine.models.lfae, fv.engine.families.lfdm): the latent warp against cv2.remap, the
diffused flow layout against a tensor built by hand, the sampled flows against a DDIM loop written from the paper,
batch == single, and ONNX Runtime against torch."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from fv.engine.config import ConfigError, LFDMConfig
from fv.engine.engine import Engine
from fv.engine.requests import EngineError
from fv.engine.families.lfdm import LFDMFamily, decode_flows, encode_flows
from fv.engine.models.flow_unet import FlowUNetConfig
from fv.engine.sample_options import SampleOptions
from fv.engine.models.lfae import warp
from tests.export.conftest import tiny_checkpoint, tiny_model

ATOL = 2e-5  # batched kernels may round differently from single ones (as tests/engine/test_engine.py)


def faces(n, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def smooth_image(c, h, w, seed):
    """[c, h, w] float32: a few random sinusoids per channel (image-like: smooth, values of order 1)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((c, h, w))
    for ch in range(c):
        for _ in range(3):
            fx, fy, ph = rng.uniform(0.1, 0.6), rng.uniform(0.1, 0.6), rng.uniform(0, 2 * np.pi)
            out[ch] += rng.normal() * np.sin(fx * x + fy * y + ph)
    return out.astype(np.float32)


def smooth_flow(h, w, seed, amp=2.5):
    """[2, h, w] backward flow in pixels, smooth, up to ~amp pixels (it reaches past the border), its values on a
    1/32-pixel grid: cv2.remap interpolates with weights quantised to 1/32 pixel (INTER_BITS = 5), so on that
    grid its bilinear weights are exact and the comparison with grid_sample is float round-off only."""
    f = smooth_image(2, h, w, seed)
    f = f / np.abs(f).max() * amp + np.array([0.7, -0.4], np.float32)[:, None, None]
    return np.round(f * 32) / 32


def test_warp_is_cv2_remap_with_replicated_border():
    C, h = 3, 16
    z = smooth_image(C, h, h, seed=1)
    flow = smooth_flow(h, h, seed=2)
    y, x = np.mgrid[0:h, 0:h].astype(np.float32)
    map_x, map_y = (x + flow[0]).astype(np.float32), (y + flow[1]).astype(np.float32)
    assert (map_x < 0).any() and (map_x > h - 1).any()   # some samples fall outside: the border rule is tested
    want = np.stack([cv2.remap(z[c], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for c in range(C)])
    got = warp(torch.from_numpy(z)[None], torch.from_numpy(flow)[None], image_size=h)[0].numpy()
    # everywhere, the border included: grid_sample's "border" clamps the sample point to [0, h - 1] pixels, which
    # for bilinear weights is the same as replicating the edge pixels
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert np.abs(got - z).max() > 0.1                   # the flow moved something


@pytest.mark.parametrize("r", [2, 4])
def test_warp_flow_is_in_pixels_of_the_image(r):
    """The latent grid at h cells of an (h r)-pixel image: a flow of d image pixels moves the latent d / r cells,
    so warp(z, r f, h r) == warp(z, f, h) == cv2.remap(z, x + f_x, y + f_y)."""
    C, h = 2, 8
    z = torch.from_numpy(smooth_image(C, h, h, seed=3))[None]
    flow = torch.from_numpy(smooth_flow(h, h, seed=4, amp=1.5))[None]
    big = warp(z, flow * r, image_size=h * r)
    torch.testing.assert_close(big, warp(z, flow, image_size=h), atol=1e-6, rtol=0)
    y, x = np.mgrid[0:h, 0:h].astype(np.float32)
    f = flow[0].numpy()
    want = np.stack([cv2.remap(z[0, c].numpy(), x + f[0], y + f[1], cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE) for c in range(C)])
    np.testing.assert_allclose(big[0].numpy(), want, atol=1e-4, rtol=0)


def test_flow_encoding_layout_and_round_trip():
    B, T, h, w, scale = 2, 3, 4, 5, 4.0
    g = torch.Generator().manual_seed(0)
    flow = torch.randn(B, T, 2, h, w, generator=g) * 6                 # image pixels
    vis = torch.rand(B, T, 1, h, w, generator=g)                       # in [0, 1]
    x0 = encode_flows(flow, vis, scale)
    hand = torch.empty(B, 3, T, h, w)                                  # channel c of frame t of video b
    for b in range(B):
        for t in range(T):
            hand[b, 0, t] = flow[b, t, 0] / scale                      # flow_x / scale
            hand[b, 1, t] = flow[b, t, 1] / scale                      # flow_y / scale
            hand[b, 2, t] = 2 * vis[b, t, 0] - 1                       # visibility in [-1, 1]
    torch.testing.assert_close(x0, hand, atol=1e-6, rtol=0)
    f2, v2 = decode_flows(x0, scale)
    assert f2.shape == (B, T, 2, h, w) and v2.shape == (B, T, 1, h, w)
    torch.testing.assert_close(f2, flow, atol=1e-5, rtol=0)
    torch.testing.assert_close(v2, vis, atol=1e-6, rtol=0)
    # a sampled visibility channel may leave [-1, 1]: decoded it is clamped to [0, 1]; the flow is not clamped
    out = hand.clone()
    out[:, 2] = torch.linspace(-3, 3, T)[None, :, None, None]
    out[:, :2] *= 10
    f3, v3 = decode_flows(out, scale)
    want_v = ((torch.linspace(-3, 3, T) + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(v3, want_v[None, :, None, None, None].expand(B, T, 1, h, w))
    torch.testing.assert_close(f3, flow * 10, atol=1e-4, rtol=0)


# ---------------------------------------------------------------- the sampled flows against DDIM from the paper

def lfdm_engine(guidance=2.0, steps=3, prediction="eps", clip_x0=3.0, seed=0, **kw):
    cfg, model = tiny_model("LFDM", seed)
    m = cfg.model
    m = dataclasses.replace(m, prediction=prediction, sampling=dataclasses.replace(m.sampling, clip_x0=clip_x0))
    cfg = cfg.replace(model=m)
    return cfg, model, Engine.from_model(cfg, model, "cpu", steps=steps, sampler="ddim", eta=0, guidance=guidance,
                                         **kw)


# float32 network, float64 loop here: 1e-5 relative. With x0 prediction the engine turns x0 into eps through
# float32 tables built from the float32-rounded abar (DiffusionSchedule.eps_from), ~1e-4 relative at t = 0 (as in
# test_engine.py's hand loop)
@pytest.mark.parametrize("prediction,rtol", [("eps", 1e-5), ("x0", 2e-4)])
def test_sampled_flows_are_a_hand_written_ddim_loop(prediction, rtol):
    """DDIM with eta = 0 (Song et al. 2021, eq. 12): x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) eps,
    x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), on the linear schedule beta = 1e-4 .. 0.02 over L = 100,
    "ddim5": t = 0, 24, 48, 72, 96 (DDIM's uniform skip, stride floor(99 / 4)). eps = eps_u + g (eps_c - eps_u), the
    unconditional call with the emotion zeroed and the image latent kept; x_T = each request's first N(0, I) draw
    of shape [3, 32, h, w] from a CPU generator seeded with its seed. No clipping of x0."""
    g, seeds, emotions = 2.5, [7, 123], [1, 4]
    cfg, model, eng = lfdm_engine(g, "ddim5", prediction, clip_x0=None)
    assert eng.options.clip_x0 is None and cfg.model.num_steps == 100
    x_ref = faces(2, seed=1)
    latent, flow, vis = eng.renderer.flows(x_ref, torch.tensor(emotions), seeds)

    ab = np.cumprod(1 - np.linspace(1e-4, 0.02, 100))                  # abar_t, float64
    ts = [96, 72, 48, 24, 0]
    h = cfg.model.image_size // 4                                      # three LFAE levels: two halvings
    x_t = torch.stack([torch.randn(3, 32, h, h, generator=torch.Generator().manual_seed(s)) for s in seeds]).double()
    with torch.no_grad():
        z = model["lfae"].encoder(x_ref)
        emo = torch.zeros(2, 7)
        emo[range(2), emotions] = 1.0
        for t, tp in zip(ts, ts[1:] + [-1]):
            a, ap = ab[t], (ab[tp] if tp >= 0 else 1.0)
            t_vec = torch.full((2,), t)
            raw_c = model["dm"](x_t.float(), t_vec, emo, z).double()
            raw_u = model["dm"](x_t.float(), t_vec, torch.zeros_like(emo), z).double()
            if prediction == "x0":                                     # eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar)
                raw_c, raw_u = ((x_t - a ** 0.5 * r) / (1 - a) ** 0.5 for r in (raw_c, raw_u))
            eps = raw_u + g * (raw_c - raw_u)
            x0 = (x_t - (1 - a) ** 0.5 * eps) / a ** 0.5
            x_t = ap ** 0.5 * x0 + (1 - ap) ** 0.5 * eps
    assert x_t.abs().max() > 3                                         # a clip at 3 would have changed it
    scale = cfg.model.flow_scale
    want_flow = torch.stack([x_t[:, 0], x_t[:, 1]], 2) * scale        # [B, T, 2, h, w], image pixels
    want_vis = ((x_t[:, 2:3] + 1) / 2).clamp(0, 1).transpose(1, 2)    # [B, T, 1, h, w]
    torch.testing.assert_close(latent, z, atol=1e-6, rtol=0)
    peak = want_flow.abs().max().item()
    torch.testing.assert_close(flow.double(), want_flow, atol=rtol * peak, rtol=0)
    torch.testing.assert_close(vis.double(), want_vis, atol=rtol * 4, rtol=0)


def test_batch_equals_single_and_split_calls_change_nothing():
    x, emo, seeds = faces(3, seed=2), [3, 0, 5], [11, 12, 13]
    _, _, big = lfdm_engine(steps=3)
    _, _, small = lfdm_engine(steps=3, max_frames_per_call=1)          # one video a chunk, one row a network call
    assert big.videos_per_chunk == 8 and small.videos_per_chunk == 1
    a = big.sample(x, emo, seeds)
    assert a.shape == (3, 32, 3, 32, 32) and torch.isfinite(a).all()
    # big: one chunk, 3 steps of one doubled call of 6 videos; small: 3 chunks x 3 steps x 2 calls of one video
    assert big.nets["flow_denoiser"].calls == 3 and big.nets["decoder"].calls == 1
    single = torch.cat([big.sample(x[i:i + 1], [emo[i]], [seeds[i]]) for i in range(3)])
    torch.testing.assert_close(a, single, atol=ATOL, rtol=0)
    b = small.sample(x, emo, seeds)
    assert small.nets["flow_denoiser"].calls == 3 * 3 * 2 and small.nets["decoder"].calls == 3 * 32
    assert small.nets["encoder"].calls == 3
    torch.testing.assert_close(b, a, atol=ATOL, rtol=0)


def test_seeds_and_emotions_change_the_result():
    _, _, eng = lfdm_engine(guidance=3.0, steps=3)
    x = faces(1, seed=3).expand(2, -1, -1, -1)
    v = eng.sample(x, [2, 2], [1, 2])
    assert (v[0] - v[1]).abs().max() > 1e-2                           # another seed, another video
    _, f, _ = eng.renderer.flows(x, torch.tensor([0, 5]), [4, 4])     # same face and seed, two emotions
    assert (f[0] - f[1]).abs().max() > 1e-2
    # and the engine's emotion is its one-hot: the same emotion twice gives the same flows
    _, f2, _ = eng.renderer.flows(x, torch.tensor([5, 5]), [4, 4])
    torch.testing.assert_close(f2[0], f2[1], atol=ATOL, rtol=0)
    torch.testing.assert_close(f2[1], f[1], atol=ATOL, rtol=0)


def test_the_engine_hands_out_flows_and_their_frames_are_its_render(tmp_path):
    """Engine.flows + Engine.decode_flows (what `fv render --mode flow` uses) are `render` in two steps, chunked as
    `sample` chunks (any max_frames_per_call gives the same flows); a frame model has none and says so."""
    x, emo, seeds = faces(3, seed=4), [3, 0, 5], [21, 22, 23]
    _, _, big = lfdm_engine(steps=3)
    _, _, small = lfdm_engine(steps=3, max_frames_per_call=32)         # one video a chunk
    assert big.generates_flows and small.generates_flows
    latent, flow, vis = big.flows(x, emo, seeds)
    assert flow.shape == (3, 32, 2, 8, 8) and vis.shape == (3, 32, 1, 8, 8) and len(latent) == 3
    np.testing.assert_array_equal(big.decode_flows(latent, flow, vis), big.render(x, emo, seeds))
    torch.testing.assert_close(small.flows(x, emo, seeds)[1], flow, atol=ATOL, rtol=0)
    torch.testing.assert_close(big.flows(x.to(memory_format=torch.channels_last), emo, seeds)[1], flow, atol=0, rtol=0)
    frames = Engine(tiny_checkpoint(tmp_path / "dm.safetensors", "onlyDM"), steps=2)
    assert not frames.generates_flows
    with pytest.raises(EngineError, match="onlyDM generates frames, not flows"):
        frames.flows(x[:, :, :16, :16], [0, 0, 0], [0, 0, 0])


@pytest.mark.parametrize("sampler", ["ddim", "unipc"])
def test_onnxruntime_engine_matches_torch(tmp_path, sampler):
    pytest.importorskip("onnxruntime")
    from fv.export.stages import export_checkpoint
    ckpt = tiny_checkpoint(tmp_path / "lfdm.safetensors", "LFDM", seed=5)
    export_checkpoint(ckpt, tmp_path / "exports")                      # what `fv export` writes
    kw = dict(sampler=sampler, steps=3, guidance=2.0)
    ort = Engine(ckpt, backend="onnxruntime", artifacts_dir=tmp_path / "exports", **kw)
    ref = Engine(ckpt, **kw)
    assert {type(n.backend).__name__ for n in ort.nets.values()} == {"OrtBackend"}
    assert set(ort.nets) == {"encoder", "flow_denoiser", "decoder"}
    x, emo, seeds = faces(2, seed=7), [3, 1], [1, 2]
    a = ort.sample(x, emo, seeds)
    torch.testing.assert_close(a, ref.sample(x, emo, seeds), atol=1e-3, rtol=0)   # the other settings' tolerance
    torch.testing.assert_close(a, torch.cat([ort.sample(x[i:i + 1], [emo[i]], [seeds[i]]) for i in range(2)]),
                               atol=ATOL, rtol=0)


def test_config_errors():
    LFDMConfig()                                                       # the defaults are valid
    with pytest.raises(ConfigError, match="prediction must be one of"):
        LFDMConfig(prediction="v")
    with pytest.raises(ConfigError, match="ch and flow_ch need the same number of levels"):
        LFDMConfig(ch=(8, 8), flow_ch=(4, 8, 8))
    with pytest.raises(ConfigError, match="unet.latent_ch 8 must equal latent_ch 16"):
        LFDMConfig(unet=FlowUNetConfig(latent_ch=8))
    with pytest.raises(ConfigError, match="ref_strength 1"):
        LFDMConfig(sampling=SampleOptions(ref_strength=0.5))
    cfg, _ = tiny_model("LFDM")
    family = LFDMFamily()
    assert family.sample_options(cfg, ref_strength=1.0, frame_noise="video", steps=3).steps == 3
    with pytest.raises(ConfigError, match="--ref-strength does not apply"):
        family.sample_options(cfg, ref_strength=0.5)
    with pytest.raises(ConfigError, match="--frame-noise does not apply"):
        family.sample_options(cfg, frame_noise="frame")
