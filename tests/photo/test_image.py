"""Reading photos (fv.photo.image): formats, alpha, grey and 16-bit, and the errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from fv.photo.errors import ImageReadError
from fv.photo.image import read_image


def test_read_image_formats(tmp_path, frames):
    rgb = frames[0]
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgb)
    assert np.abs(read_image(tmp_path / "a.jpg").astype(int) - rgb).mean() < 3

    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:50, :, :3], rgba[:50, :, 3] = (10, 200, 30), 0          # transparent -> white
    rgba[50:60, :, 3] = 128                                      # half -> (c 128 + 255 127) / 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "b.png")
    got = read_image(tmp_path / "b.png").astype(np.float64)
    assert (got[:50] == 255).all()
    np.testing.assert_array_equal(got[60:], rgb[60:])
    want = (rgb[50:60].astype(np.float64) * 128 + 255 * 127) / 255
    assert np.abs(got[50:60] - want).max() <= 0.5 + 1e-9

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    Image.fromarray(grey).save(tmp_path / "g.png")
    g = read_image(tmp_path / "g.png")
    assert g.shape == rgb.shape and (g[..., 0] == grey).all() and (g[..., 2] == grey).all()

    g16 = (grey.astype(np.uint16) * 257 + 100)                    # 16-bit: x16 / 257, rounded
    cv2.imwrite(str(tmp_path / "g16.png"), g16)
    got16 = read_image(tmp_path / "g16.png")
    assert got16.dtype == np.uint8
    np.testing.assert_array_equal(got16[..., 1], np.clip(np.round(g16 / 257.0), 0, 255).astype(np.uint8))


def test_read_image_errors(tmp_path):
    with pytest.raises(ImageReadError, match="nope.png"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "text.jpg").write_text("not a jpeg")
    with pytest.raises(ImageReadError, match="text.jpg"):
        read_image(tmp_path / "text.jpg")
    with pytest.raises(ImageReadError):
        read_image(tmp_path)
