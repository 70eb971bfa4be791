"""`fv render --mode flow` (LFDM's default): the flows an LFDM checkpoint generates move the photo's own
high-resolution crop, and low visibility shadows it.

The flows here are chosen, not sampled (what is under test is how fv.photo.modes applies them: the scale from the
model's 64 px frame and its 16 px latent grid to the crop, the backward-flow direction, the shadow); the
references are numpy shifts and the shadow formula. A real LFDM checkpoint renders a photo in
tests/engine/test_lfdm.py and tests/test_demo.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fv.photo.face import PhotoFace
from fv.photo.modes import MODES, VIS_RAMP, RenderModeError, default_mode, render
from fv.photo.motion_transfer import SHADOW


class ChosenFlows:
    """An engine that hands out fixed flows [1, T, 2, h, h] (pixels of the 64 px frame) and visibility (the public
    flow API of fv.engine.engine.Engine)."""
    generates_flows = True

    def __init__(self, flow: torch.Tensor, vis: torch.Tensor):
        self.image_size, self.device, self.setting = 64, torch.device("cpu"), "LFDM"
        self._flow, self._vis = flow, vis

    def flows(self, faces, emotions, seeds):
        self.asked = (faces.shape, emotions.tolist(), seeds)
        return torch.zeros(1, 4, 16, 16), self._flow, self._vis

    def decode_flows(self, latent, flow, vis):
        return np.zeros((1, flow.shape[1], 64, 64, 3), np.uint8)


def _face(size: int = 256) -> PhotoFace:
    rng = np.random.default_rng(0)
    hires = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    crop = hires[::size // 64, ::size // 64].copy()
    return PhotoFace(crop, hires, hires, None)


def test_a_constant_flow_shifts_the_crop_by_its_scaled_amount():
    T, d = 3, 2.0                                   # 2 px of the 64 px frame = 8 px of the 256 px crop
    flow = torch.zeros(1, T, 2, 16, 16)
    flow[:, 1, 0] = d                               # frame 1: x + 2 (backward: pixel p shows p + (2, 0))
    flow[:, 2, 1] = -d                              # frame 2: y - 2
    eng = ChosenFlows(flow, torch.ones(1, T, 1, 16, 16))
    face = _face()
    video, generated = MODES["flow"].render(eng, face, 3, 7)
    assert eng.asked == ((1, 3, 64, 64), [3], [7]) and generated.shape == (T, 64, 64, 3)
    h = face.hires.astype(int)
    np.testing.assert_array_equal(video[0], face.hires)                               # zero flow: the crop itself
    np.testing.assert_array_equal(video[1][:, :-8].astype(int), h[:, 8:])            # I_1(x, y) = C(x + 8, y)
    np.testing.assert_array_equal(video[2][8:].astype(int), h[:-8])                  # I_2(x, y) = C(x, y - 8)


def test_low_visibility_is_shadowed_and_high_visibility_left_alone():
    vis = torch.ones(1, 2, 1, 16, 16)
    vis[:, 1, :, :, :8] = 0.0                        # frame 1: the left half not visible in frame 0
    eng = ChosenFlows(torch.zeros(1, 2, 2, 16, 16), vis)
    face = _face()
    video, _ = MODES["flow"].render(eng, face, 0, 0)
    np.testing.assert_array_equal(video[0], face.hires)
    low = slice(160, 256)                            # below the nose (MOUTH_ZONE ends at 0.58 of 256 = 148)
    left = np.round(face.hires[low, :100].astype(np.float64) * SHADOW)               # well inside the shadow
    assert np.abs(video[1][low, :100].astype(np.float64) - left).max() <= 1
    np.testing.assert_array_equal(video[1][:, 160:], face.hires[:, 160:])            # well inside visibility 1
    np.testing.assert_array_equal(video[1][:128], face.hires[:128])                   # eyes and brows: never shadowed
    assert VIS_RAMP[0] < VIS_RAMP[1]


def test_flow_is_lfdm_s_default_and_refused_for_frame_models(tmp_path):
    from fv.engine.engine import Engine
    from tests.export.conftest import tiny_checkpoint
    eng = ChosenFlows(torch.zeros(1, 2, 2, 16, 16), torch.ones(1, 2, 1, 16, 16))
    assert default_mode(eng) == "flow"
    assert default_mode(Engine(tiny_checkpoint(tmp_path / "lfdm.safetensors", "LFDM"), steps=2)) == "flow"
    frames = Engine(tiny_checkpoint(tmp_path / "dm.safetensors", "onlyDM"), steps=2)
    assert default_mode(frames) == "scan"
    with pytest.raises(RenderModeError, match="needs a checkpoint that generates flows"):
        render(frames, _face(), 0, 0, "flow")


def test_flow_standin_carries_the_stand_in_s_flow_through_its_matrix():
    """--mode flow-standin: flows generated for the stand-in (its pixels) move the photo by the stand-in's matrix
    (a photo without landmarks: the eye template alone places the stand-in, so the spline is the identity).
    A constant stand-in flow d (pixels of the 64 px frame) is the constant crop flow A d S / 64, A the matrix's
    linear part; the reference is cv2.remap by that shift."""
    import cv2

    from fv.photo.standin import standin_matrix
    T, d = 2, np.array([1.5, -1.0])
    flow = torch.zeros(1, T, 2, 16, 16)
    flow[:, 1, 0], flow[:, 1, 1] = float(d[0]), float(d[1])
    eng = ChosenFlows(flow, torch.ones(1, T, 1, 16, 16))
    from fv.engine.config import default_config
    eng.config = default_config("LFDM")                 # no synthetic version recorded: the default stand-in
    face = _face(128)
    video, _ = MODES["flow-standin"].render(eng, face, 0, 0)
    assert np.abs(video[0].astype(int) - face.hires.astype(int)).max() <= 1          # zero flow: the crop itself
    A = standin_matrix(128)[:, :2].astype(np.float64)
    shift = A @ (d * 128 / 64)
    xs = np.arange(128, dtype=np.float32)
    gx, gy = np.meshgrid(xs, xs)
    want = cv2.remap(face.hires, gx + np.float32(shift[0]), gy + np.float32(shift[1]), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
    inner = slice(16, 112)
    assert np.abs(video[1][inner, inner].astype(int) - want[inner, inner].astype(int)).max() <= 2
    assert np.abs(video[1][inner, inner].astype(int) - face.hires[inner, inner].astype(int)).mean() > 20
