"""Video reading/writing and uniform temporal sampling (fv.data.video_io)."""

from __future__ import annotations

from fractions import Fraction

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from fv.data.video_io import (VideoIOError, count_frames, read_video, uniform_indices, write_gif,
                              write_mp4, write_strip)


def test_uniform_indices_exact_floor():
    for n in list(range(1, 120)) + [472, 1000]:
        for k in (1, 2, 10, 32):
            got = uniform_indices(n, k)
            want = [0] if k == 1 else [int(Fraction(j * (n - 1), k - 1)) for j in range(k)]  # floor of the rational
            assert got.tolist() == want, (n, k)
            assert got[0] == 0 and (k == 1 or got[-1] == n - 1)
            steps = np.diff(got)
            assert (steps >= 1).all() if n >= k else (steps >= 0).all()
    # the float recipe np.linspace(0, n - 1, 32).astype(int) (LFDM's loader) gives the same indices
    for n in range(32, 400):
        assert uniform_indices(n, 32).tolist() == np.linspace(0, n - 1, 32).astype(int).tolist()
    with pytest.raises(ValueError):
        uniform_indices(0)


def colour_frames(t: int, h: int = 64, w: int = 64) -> np.ndarray:
    """Smooth test frames: a horizontal gradient whose colour shifts with t (codec friendly)."""
    x = np.linspace(0, 1, w)[None, :, None]
    out = []
    for i in range(t):
        c = np.array([40 + 6 * i, 200 - 5 * i, 120.0])
        out.append(np.broadcast_to(c * (0.5 + 0.5 * x), (h, w, 3)))
    return np.round(np.stack(out)).astype(np.uint8)


def test_frame_folder_natural_order(tmp_path):
    colours = {1: 10, 2: 20, 10: 100, 11: 110}
    for i, c in colours.items():
        Image.fromarray(np.full((8, 12, 3), c, np.uint8)).save(tmp_path / f"img_{i}.png")
    (tmp_path / "notes.txt").write_text("ignored")
    v = read_video(tmp_path)
    assert v.shape == (4, 8, 12, 3) and v.dtype == np.uint8
    assert v[:, 0, 0, 0].tolist() == [10, 20, 100, 110]     # 1, 2, 10, 11 (not 1, 10, 11, 2)
    assert count_frames(tmp_path) == 4
    assert read_video(tmp_path, [3, 0, 0])[:, 0, 0, 0].tolist() == [110, 10, 10]
    with pytest.raises(VideoIOError, match="out of range"):
        read_video(tmp_path, [4])


def test_mp4_round_trip(tmp_path):
    frames = colour_frames(16)
    path = write_mp4(tmp_path / "sub" / "a.mp4", frames, fps=8)
    assert path.exists() and sorted(p.name for p in path.parent.iterdir()) == ["a.mp4"]   # no temp left
    assert count_frames(path) == 16
    back = read_video(path)
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames).mean() < 4
    picked = read_video(path, [15, 3])
    np.testing.assert_array_equal(picked, back[[15, 3]])
    with imageio.get_reader(str(path), format="FFMPEG") as r:
        assert r.get_meta_data()["fps"] == pytest.approx(8)


def test_mp4_odd_size_is_padded(tmp_path):
    back = read_video(write_mp4(tmp_path / "odd.mp4", colour_frames(3, 63, 65)))
    assert back.shape == (3, 64, 66, 3)


def test_gif_round_trip(tmp_path):
    frames = np.zeros((5, 16, 20, 3), np.uint8)
    for t in range(5):
        frames[t, :, : 4 * (t + 1)] = (255, 0, 0)
        frames[t, :, 4 * (t + 1):] = (0, 0, 255)
    path = write_gif(tmp_path / "a.gif", frames, fps=8)
    np.testing.assert_array_equal(read_video(path), frames)
    assert count_frames(path) == 5
    with Image.open(path) as im:
        assert im.info["duration"] in (120, 125, 130)    # 1000 / 8 ms, stored in 10 ms units


def test_strip_takes_evenly_spaced_frames(tmp_path):
    frames = np.stack([np.full((6, 4, 3), t, np.uint8) for t in range(32)])
    path = write_strip(tmp_path / "s.png", frames, n=10)
    strip = np.asarray(Image.open(path))
    assert strip.shape == (6, 40, 3)
    assert strip[0, ::4, 0].tolist() == [int(Fraction(j * 31, 9)) for j in range(10)]


def test_write_errors_leave_nothing(tmp_path):
    with pytest.raises(VideoIOError, match="uint8"):
        write_mp4(tmp_path / "bad.mp4", np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(VideoIOError):
        write_gif(tmp_path / "bad.gif", np.zeros((8, 8, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_read_errors(tmp_path):
    with pytest.raises(VideoIOError, match="no such file"):
        read_video(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoIOError, match="no .* frames"):
        read_video(tmp_path / "empty")
    (tmp_path / "clip.xyz").write_text("?")
    with pytest.raises(VideoIOError, match="unknown extension"):
        read_video(tmp_path / "clip.xyz")
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(VideoIOError, match="broken.mp4"):
        read_video(tmp_path / "broken.mp4")


def test_pexels_video(pexels_video):
    assert count_frames(pexels_video) == 472
    got = read_video(pexels_video, [0, 471, 100])
    assert got.shape == (3, 360, 640, 3) and got.dtype == np.uint8
    want = {}
    with imageio.get_reader(str(pexels_video), format="FFMPEG") as r:
        for i, f in enumerate(r):
            if i in (0, 100, 471):
                want[i] = f
    for j, i in enumerate((0, 471, 100)):
        np.testing.assert_array_equal(got[j], want[i])
