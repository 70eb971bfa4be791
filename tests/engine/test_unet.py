"""Conditional U-Net denoiser and temporal MLP-Mixer (thesis 3.2.2): shapes, invariants, ONNX parity."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from fv.engine.models.mixer import MotionWindowError, TemporalMixer, motion_windows
from fv.engine.models.unet import (
    ConditionalUNet,
    FeatureDenoiser,
    SinusoidalEmbedding,
    UNetConfig,
    UNetConfigError,
    UNetInputError,
)

# Tiny: 16x16 frames, two levels, attention at 8x8 and in the bottleneck, dropout on (eval must ignore it).
TINY = dict(image_size=16, base_ch=8, ch_mult=(1, 2), groups=4, face_ch=(8, 8), time_dim=16, mixer_ch=8,
            mixer_hidden=16, mixer_depth=1, attn_resolutions=(8,), attn_heads=2, dropout=0.1)


def tiny(**kw) -> ConditionalUNet:
    torch.manual_seed(0)
    return ConditionalUNet(UNetConfig(**{**TINY, **kw})).eval()


def inputs(b: int, size: int = 16, seed: int = 1, motion_dim: int = 10):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, 3, size, size, generator=g),  # x_t
        torch.randn(b, 3, size, size, generator=g),  # x_ref
        torch.randint(0, 1000, (b,), generator=g),  # t
        torch.randn(b, 7, motion_dim, generator=g),  # motion window
        torch.eye(7)[torch.randint(0, 6, (b,), generator=g)],  # emotion one-hot
    )


# ------------------------------------------------------------------ motion windows
def test_motion_windows_by_hand():
    codes = torch.arange(5, dtype=torch.float32).reshape(1, 5, 1) * torch.tensor([1.0, -1.0])  # c_t = (t, -t)
    w = motion_windows(codes, 7)
    assert w.shape == (1, 5, 7, 2)
    hand = [[0, 0, 0, 0, 1, 2, 3],  # frame 0: c0 replicated to the left
            [0, 0, 0, 1, 2, 3, 4],
            [0, 0, 1, 2, 3, 4, 4],
            [0, 1, 2, 3, 4, 4, 4],
            [1, 2, 3, 4, 4, 4, 4]]  # frame 4 = last: c4 replicated to the right
    assert torch.equal(w[0, :, :, 0], torch.tensor(hand, dtype=torch.float32))
    assert torch.equal(w[0, :, :, 1], -torch.tensor(hand, dtype=torch.float32))
    assert torch.equal(motion_windows(codes, 1)[:, :, 0], codes)


def test_motion_windows_match_numpy_edge_padding():
    codes = torch.randn(3, 32, 4)
    padded = np.pad(codes.numpy(), ((0, 0), (3, 3), (0, 0)), mode="edge")  # [B, T+6, D]
    ref = np.lib.stride_tricks.sliding_window_view(padded, 7, axis=1)  # [B, T, D, W]
    np.testing.assert_array_equal(motion_windows(codes, 7).numpy(), ref.transpose(0, 1, 3, 2))


@pytest.mark.parametrize("window", [0, 4])
def test_motion_windows_reject_even_window(window):
    with pytest.raises(MotionWindowError, match="odd"):
        motion_windows(torch.zeros(1, 8, 2), window)


# ------------------------------------------------------------------ temporal mixer
def test_mixer_shape_position_and_batch_invariance():
    torch.manual_seed(0)
    mixer = TemporalMixer(in_dim=10, out_dim=12, window=7, channels=8, hidden=16, depth=2).eval()
    x = torch.randn(4, 7, 10)
    out = mixer(x)
    assert out.shape == (4, 12)
    torch.testing.assert_close(mixer(x[2:3]), out[2:3], atol=1e-6, rtol=0)
    # the order of the window matters (token MLP + flatten are position-aware)
    assert (mixer(x.flip(1)) - out).abs().max() > 1e-4
    # changing only the farthest code still reaches the embedding (mixing over time)
    y = x.clone()
    y[:, 0] += 1.0
    assert (mixer(y) - out).abs().max() > 1e-4
    # zeros (CFG unconditional) give a finite embedding, distinct from a real window
    z = mixer(torch.zeros(1, 7, 10))
    assert torch.isfinite(z).all() and (z - out[:1]).abs().max() > 1e-4


# ------------------------------------------------------------------ U-Net
def test_sinusoidal_embedding_formula():
    emb = SinusoidalEmbedding(8)(torch.tensor([0, 5, 999]))
    for row, t in enumerate([0, 5, 999]):
        for i in range(4):
            w = 10000.0 ** (-i / 4)
            assert emb[row, i].item() == pytest.approx(math.sin(t * w), abs=1e-4)
            assert emb[row, 4 + i].item() == pytest.approx(math.cos(t * w), abs=1e-4)


def test_shapes_tiny_and_demo():
    m = tiny()
    x_t, x_ref, t, mo, e = inputs(3)
    assert m(x_t, x_ref, t, mo, e).shape == (3, 3, 16, 16)
    feats = m.encode_reference(x_ref)
    assert [tuple(f.shape) for f in feats] == [(3, 8, 16, 16), (3, 8, 8, 8)]

    cfg = UNetConfig.demo()
    demo = ConditionalUNet(cfg).eval()
    with torch.no_grad():
        out = demo(*inputs(2, size=64))
        feats = demo.encode_reference(torch.zeros(1, 3, 64, 64))
    assert out.shape == (2, 3, 64, 64)
    assert [tuple(f.shape[1:]) for f in feats] == [(c, 64 >> i, 64 >> i) for i, c in enumerate(cfg.face_ch)]


def test_forward_equals_denoise_of_encoded_reference():
    m = tiny()
    x_t, x_ref, t, mo, e = inputs(4)
    with torch.no_grad():
        a = m(x_t, x_ref, t, mo, e)
        b = m.denoise(x_t, m.encode_reference(x_ref), t, mo, e)
        # one face encoded once, broadcast over 4 frames == the face repeated 4 times
        one = m.encode_reference(x_ref[:1])
        c = m.denoise(x_t, one, t, mo, e)
        d = m(x_t, x_ref[:1].expand(4, -1, -1, -1), t, mo, e)
    assert torch.equal(a, b)
    torch.testing.assert_close(c, d, atol=1e-5, rtol=0)  # float32 rounding of batch-shape-dependent kernels


def test_batch_invariance_eval():
    m = tiny()
    batch = inputs(5)
    with torch.no_grad():
        full = m(*batch)
        for i in range(5):
            single = m(*(x[i:i + 1] for x in batch))
            torch.testing.assert_close(single, full[i:i + 1], atol=1e-5, rtol=0)


def test_conditions_change_the_output():
    m = tiny()
    x_t, x_ref, t, mo, e = inputs(2)
    with torch.no_grad():
        base = m(x_t, x_ref, t, mo, e)
        variants = {
            "emotion": m(x_t, x_ref, t, mo, e.roll(1, dims=1)),
            "motion": m(x_t, x_ref, t, mo + 1.0, e),
            "timestep": m(x_t, x_ref, (t + 300) % 1000, mo, e),
            "reference": m(x_t, -x_ref, t, mo, e),
            "unconditional": m(x_t, x_ref, t, torch.zeros_like(mo), torch.zeros_like(e)),
        }
    for name, out in variants.items():
        assert torch.isfinite(out).all(), name
        assert (out - base).abs().max() > 1e-4, f"{name} does not reach the output"


def test_film_starts_near_identity():
    m = tiny()
    e = m.emotion_mlp(torch.eye(7))  # [7, E]
    for block in [m.mid1, m.mid2, *m.enc, *m.dec]:
        dgamma, beta = block.film(e).chunk(2, dim=1)
        assert dgamma.abs().max() < 0.2 and beta.abs().max() < 0.2


def test_gradient_reaches_every_parameter():
    m = tiny().train()
    out = m(*inputs(3))
    (out * torch.randn_like(out)).sum().backward()
    dead = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().max() == 0]
    assert not dead, f"no gradient for {dead}"


def test_bad_inputs_raise_clear_errors():
    m = tiny()
    x_t, x_ref, t, mo, e = inputs(2)
    with pytest.raises(UNetInputError, match="motion"):
        m(x_t, x_ref, t, mo[:, :5], e)
    with pytest.raises(UNetInputError, match="emotion"):
        m(x_t, x_ref, t, mo, e[:, :6])
    with pytest.raises(UNetInputError, match="t must"):
        m(x_t, x_ref, t[:1], mo, e)
    with pytest.raises(UNetInputError, match="ref_feats"):
        m.denoise(x_t, m.encode_reference(x_ref)[:1], t, mo, e)


# ------------------------------------------------------------------ config
def test_config_json_round_trip():
    for cfg in (UNetConfig.demo(), UNetConfig.thesis(motion_dim=16), UNetConfig(**TINY)):
        back = UNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert back == cfg
        assert isinstance(back.ch_mult, tuple) and isinstance(back.face_ch, tuple)
    with pytest.raises(UNetConfigError, match="unknown"):
        UNetConfig.from_dict({"base_chans": 8})


@pytest.mark.parametrize("bad", [dict(face_ch=(8,)), dict(groups=3), dict(window=6), dict(attn_resolutions=(4,))])
def test_config_rejects_inconsistent_settings(bad):
    with pytest.raises(UNetConfigError):
        UNetConfig(**{**TINY, **bad})


def test_parameter_budgets():
    count = lambda cfg: sum(p.numel() for p in ConditionalUNet(cfg).parameters())  # noqa: E731
    assert 0.5e6 <= count(UNetConfig.demo()) <= 2e6
    assert 30e6 <= count(UNetConfig.thesis()) <= 60e6


# ------------------------------------------------------------------ ONNX
NAMES = ["x_t", "x_ref", "t", "motion", "emotion"]


def _ort(path):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnx_export_parity(tmp_path):
    m = tiny()
    path = tmp_path / "unet.onnx"
    torch.onnx.export(m, inputs(2), str(path), dynamo=False, opset_version=17, input_names=NAMES,
                      output_names=["eps"], dynamic_axes={n: {0: "batch"} for n in NAMES + ["eps"]})
    sess = _ort(path)
    for b in (1, 5):
        batch = inputs(b, seed=10 + b)
        with torch.no_grad():
            ref = m(*batch).numpy()
        out = sess.run(None, {n: x.numpy() for n, x in zip(NAMES, batch)})[0]
        assert np.abs(out - ref).max() < 1e-4


def test_onnx_split_export_parity(tmp_path):
    """Face encoder once per video + denoiser on cached features, as the engine runs them."""
    m = tiny()
    x_t, x_ref, t, mo, e = inputs(2)
    feats = m.encode_reference(x_ref)
    feat_names = [f"ref_feat{i}" for i in range(len(feats))]
    enc_path, den_path = tmp_path / "face.onnx", tmp_path / "denoise.onnx"
    torch.onnx.export(m.face_encoder, (x_ref,), str(enc_path), dynamo=False, opset_version=17,
                      input_names=["x_ref"], output_names=feat_names,
                      dynamic_axes={n: {0: "batch"} for n in ["x_ref", *feat_names]})
    den_in = ["x_t", "t", "motion", "emotion", *feat_names]
    torch.onnx.export(FeatureDenoiser(m), (x_t, t, mo, e, *feats), str(den_path), dynamo=False, opset_version=17,
                      input_names=den_in, output_names=["eps"],
                      dynamic_axes={n: {0: "batch"} for n in den_in + ["eps"]})
    assert not m.training, "exporting the wrapper must leave the U-Net in eval mode"
    enc, den = _ort(enc_path), _ort(den_path)
    for b in (1, 5):
        x_t, x_ref, t, mo, e = inputs(b, seed=20 + b)
        with torch.no_grad():
            ref = m(x_t, x_ref, t, mo, e).numpy()
        f = enc.run(None, {"x_ref": x_ref.numpy()})
        out = den.run(None, {"x_t": x_t.numpy(), "t": t.numpy(), "motion": mo.numpy(), "emotion": e.numpy(),
                             **dict(zip(feat_names, f))})[0]
        assert np.abs(out - ref).max() < 1e-4


def test_x0_prediction_becomes_eps_in_the_schedule_not_the_network():
    """An x0-predicting U-Net's output r is the clean target; the sampler's DiffusionSchedule.eps_from turns it
    into eps = (x_t - sqrt(abar_t) r) / sqrt(1 - abar_t), abar by hand (float64 cumprod of the linear betas),
    so a deterministic DDIM step to t = -1 with that eps gives r back. The network holds no schedule table."""
    from fv.engine.diffusion import DiffusionSchedule
    from fv.engine.samplers import ddim_step
    net = tiny()
    x_t, x_ref, t, mo, e = inputs(4)
    t = torch.tensor([0, 1, 500, 999])                       # both ends of the schedule
    abar = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))[t.numpy()]
    sched = DiffusionSchedule()
    with torch.no_grad():
        r = net(x_t, x_ref, t, mo, e)
    eps = sched.eps_from(r, x_t, t, "x0")
    want = (x_t.double() - torch.from_numpy(np.sqrt(abar)).view(-1, 1, 1, 1) * r.double()) \
        / torch.from_numpy(np.sqrt(1 - abar)).view(-1, 1, 1, 1)
    torch.testing.assert_close(eps.double(), want, atol=1e-3, rtol=1e-4)   # x 100 at t = 0: float32 round-off
    x_rec = ddim_step(sched, x_t, eps, t, -1, 0.0, None)
    torch.testing.assert_close(x_rec, r, atol=1e-3, rtol=0)   # / sqrt(abar_999) = x 160 on round-off
    assert sched.eps_from(r, x_t, t, "eps") is r
    assert not [k for k in net.state_dict() if "coef" in k or "scale" in k]
    with pytest.raises(ValueError, match="prediction"):
        sched.eps_from(r, x_t, t, "v")
