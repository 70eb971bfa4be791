"""fv.photo.motion_transfer against hand computations: warping by a known flow, flow scaling, DIS on a
known translation, the forward-backward test, the occlusion mask, colour matching, and the whole transfer
of a translating video onto a larger crop."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fv.photo.motion_transfer import (LUMA, MotionTransferError, TransferOptions, colour_match, dis_flow,
                                      fb_inconsistency, fill_occluded, occlusion_mask, resize_flow, transfer_video,
                                      warp)


def texture(size: int, seed: int = 0) -> np.ndarray:
    """uint8 [size, size, 3]: smooth random blobs (trackable by optical flow, no periodic aliasing)."""
    rng = np.random.default_rng(seed)
    x = cv2.GaussianBlur(rng.uniform(0, 255, (size, size, 3)).astype(np.float32), (0, 0), size / 40)
    x = (x - x.min()) / (x.max() - x.min()) * 255
    return x.round().astype(np.uint8)


def shifted(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """out(x, y) = img(x - dx, y - dy): the content moved by (dx, dy), edges replicated."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, img.shape[1::-1], flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)


def test_zero_flow_gives_the_image_back_exactly():
    img = np.random.default_rng(0).integers(0, 256, (37, 37, 3), dtype=np.uint8)
    np.testing.assert_array_equal(warp(img, np.zeros((37, 37, 2), np.float32)), img)


def test_warp_by_a_known_flow_matches_the_hand_computation():
    img = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    flow = np.zeros((40, 40, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3, -2                      # W(x, y) = img(x + 3, y - 2)
    out = warp(img, flow)
    np.testing.assert_array_equal(out[2:, :37], img[:38, 3:])
    flow[..., 0], flow[..., 1] = 0.5, 0                     # half-way: the mean of two neighbours
    want = (img[:, 5:6].astype(float) + img[:, 6:7]) / 2
    assert np.abs(warp(img, flow)[:, 5:6].astype(float) - want).max() <= 1.0


def test_resize_flow_scales_positions_and_vectors():
    x = np.arange(16, dtype=np.float32)
    flow = np.zeros((16, 16, 2), np.float32)
    flow[..., 0] = x[None, :] * 0.1                         # F(x) = 0.1 x at 16 px
    big = resize_flow(flow, 64)                             # F^64(X) = 4 F((X + 0.5) / 4 - 0.5) = 0.1 X - 0.15
    X = np.arange(8, 56)
    np.testing.assert_allclose(big[20, X, 0], 0.1 * X - 0.15, atol=1e-4)
    assert np.abs(big[..., 1]).max() == 0


def test_dis_flow_recovers_a_translation():
    a = texture(128)
    b = shifted(a, 3, 2)                                    # b(p) = a(p - (3, 2))  =>  a(p) = b(p + (3, 2))
    f = dis_flow(a, b)[16:-16, 16:-16]
    np.testing.assert_allclose(np.median(f.reshape(-1, 2), 0), [3, 2], atol=0.2)


def test_forward_backward_check():
    d = np.zeros((32, 32, 2), np.float32)
    d[..., 0] = 2.0
    assert fb_inconsistency(d, -d).max() == 0               # G undoes F: consistent
    # |F + G|^2 / (a (|F|^2 + |G|^2) + b) = 16 / (0.05 * 8 + 0.5)
    np.testing.assert_allclose(fb_inconsistency(d, d), 16 / (0.05 * 8 + 0.5), rtol=1e-5)


def test_occlusion_mask_marks_what_the_flow_cannot_explain():
    f0 = texture(128, 2)
    ft = shifted(f0, 2, 0)
    ft[40:70, 50:80] = 0                                    # new dark content (an opened mouth)
    back, fwd = dis_flow(ft, f0), dis_flow(f0, ft)
    m = occlusion_mask(ft, f0, back, fwd)
    assert m[45:65, 55:75].mean() > 0.9
    assert m[90:, :].mean() < 0.05 and m[:30, :].mean() < 0.05


def test_colour_match_takes_the_ring_statistics_of_the_photo():
    fill = np.full((40, 40, 3), 50, np.uint8)
    fill[::2] = 70                                          # ring mean 60, std 10 per channel
    photo = np.full((40, 40, 3), 200, np.uint8)
    photo[::2] = 180                                        # ring mean 190, std 10
    mask = np.zeros((40, 40), np.float32)
    mask[15:25, 15:25] = 1
    out = colour_match(fill, photo, mask, ring_px=3)
    region = mask.astype(np.uint8)
    near = cv2.dilate(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))) > 0
    ring = near & (region == 0)
    mu_g, sd_g = fill[ring, 0].mean(), fill[ring, 0].std()
    mu_p, sd_p = photo[ring, 0].mean(), photo[ring, 0].std()
    assert 0.5 < sd_p / sd_g < 2                            # the scale is not clipped here
    for y in (16, 17):                                      # x' = (x - mu_g) sd_p / sd_g + mu_p
        assert out[y, 20, 0] == pytest.approx((fill[y, 20, 0] - mu_g) * sd_p / sd_g + mu_p, abs=1e-3)
    assert out[0, 0, 0] == 70 and out[39, 39, 1] == 50      # outside region and ring: as is


def test_fill_occluded_leaves_unmasked_pixels_and_fills_the_region():
    warped = texture(96, 3)
    gen = np.zeros_like(warped)
    mask = np.zeros((96, 96), np.float32)
    np.testing.assert_array_equal(fill_occluded(warped, gen, mask), warped)
    mask[30:60, 30:60] = 1
    out = fill_occluded(warped, gen, mask, TransferOptions(feather=0.01))
    np.testing.assert_array_equal(out[:15], warped[:15])
    assert not np.array_equal(out[40:50, 40:50], warped[40:50, 40:50])
    assert (out.astype(int) <= warped).all()                     # a fill only darkens ...
    white = np.full_like(warped, 255)
    white[28:62, 28:62] = np.full(3, 255) - warped[28:62, 28:62]   # a bright bar where the photo is dark
    assert (fill_occluded(warped, white, mask).astype(int) <= warped).all()
    bright = fill_occluded(warped, white, mask, TransferOptions(darken_only=False))
    assert (bright.astype(int) > warped).any()                   # ... unless asked to brighten too
    # a fill with a black hole in it: darkened to no less than shadow x the photo's luma (mask 1 in the core)
    hole = np.full_like(warped, 255)
    hole[38:52, 38:52] = 0
    core = (slice(40, 50), slice(40, 50))
    y = warped[core].astype(np.float32) @ LUMA
    black = fill_occluded(warped, hole, mask, TransferOptions(feather=0.01, shadow=0.0))
    assert ((black[core].astype(np.float32) @ LUMA) < 0.2 * y).any()
    floor = fill_occluded(warped, hole, mask, TransferOptions(feather=0.01, shadow=0.35))
    assert ((floor[core].astype(np.float32) @ LUMA) >= 0.35 * y - 1.0).all()


def test_transfer_moves_the_crop_by_the_upscaled_motion():
    """A 64 px video translating by t px per frame moves a 256 px crop by 4 t px: out_t(p) = crop(p - 4 (t, 0))."""
    small = texture(64, 4)
    motion = np.stack([shifted(small, t, 0) for t in range(3)])
    crop = texture(256, 5)
    out = transfer_video(crop, motion, allow=np.zeros((256, 256), np.float32))
    np.testing.assert_array_equal(out[0], crop)             # frame t = 0: no motion, the crop itself
    for t in (1, 2):
        want = shifted(crop, 4 * t, 0)
        inner = (slice(48, -48), slice(48, -48))
        err = np.abs(out[t][inner].astype(float) - want[inner]).mean()
        moved_err = np.abs(crop[inner].astype(float) - want[inner]).mean()
        assert err < 0.15 * moved_err, (t, err, moved_err)


def test_transfer_with_a_stand_in_matrix_and_bad_input():
    small = texture(64, 6)
    half = np.array([[0.5, 0, 15.75], [0, 0.5, 15.75]])     # the stand-in is the crop's layout at half scale
    motion = np.stack([small, shifted(small, 2, 0)])         # 2 px in the stand-in = 4 px in the layout at 64
    crop = texture(128, 7)
    out = transfer_video(crop, motion, np.linalg.inv(np.vstack([half, [0, 0, 1]]))[:2],
                         allow=np.zeros((128, 128), np.float32))
    inner = (slice(40, -40), slice(40, -40))
    assert np.abs(out[1][inner].astype(float) - shifted(crop, 8, 0)[inner]).mean() < \
        0.2 * np.abs(crop[inner].astype(float) - shifted(crop, 8, 0)[inner]).mean()
    with pytest.raises(MotionTransferError, match="crop must be uint8"):
        transfer_video(crop[:, :100], motion)
    with pytest.raises(MotionTransferError, match="motion video must be"):
        transfer_video(crop, motion[0])
    with pytest.raises(MotionTransferError, match="allow must be"):
        transfer_video(crop, motion, allow=np.ones((64, 64)))


def test_tps_map_passes_through_its_points_and_holds_the_border():
    from fv.photo.motion_transfer import tps_map
    rng = np.random.default_rng(0)
    src = rng.choice(np.arange(16, 48), (12, 2), replace=False).astype(float)   # on pixel centres: read back exactly
    same = tps_map(src, src, 64)                       # T(p) = p: the identity on the pixel grid, by hand
    xs = np.arange(64, dtype=np.float32)
    grid = np.stack(np.meshgrid(xs, xs), -1)
    np.testing.assert_allclose(same, grid, atol=1e-3)
    dst = src + rng.normal(0, 2.0, src.shape)
    T = tps_map(src, dst, 64, lam=0.0)                 # interpolating: T(src_i) = dst_i
    np.testing.assert_allclose(T[src[:, 1].astype(int), src[:, 0].astype(int)], dst, atol=1e-3)
    np.testing.assert_allclose(T[0, 0], [0, 0], atol=1e-3)            # a corner held still
    np.testing.assert_allclose(T[63, 63], [63, 63], atol=1e-3)        # and the opposite one
