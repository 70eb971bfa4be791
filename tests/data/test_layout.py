"""fv's on-disk layout (fv.data.layout): the optional 128 px clips beside clips64."""

from __future__ import annotations

import numpy as np
import pytest

from fv.data.layout import DatasetError, load_split, write_split

N = 3


def _rows(n: int = N) -> list[dict]:
    return [{"video_id": f"v{i}", "subject": f"s{i % 2}", "emotion": "happiness"} for i in range(n)]


def _clips(size: int, n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng([seed, size]).integers(0, 256, (n, 32, size, size, 3), dtype=np.uint8)


def test_clips128_round_trip_and_videos(tmp_path):
    c64, c128 = _clips(64), _clips(128)
    write_split(tmp_path, "train", c64, _rows(), clips128=c128)
    s = load_split(tmp_path, "train")
    assert s.clips128.shape == (N, 32, 128, 128, 3) and s.clips128.dtype == np.uint8
    assert isinstance(s.clips128, np.memmap)
    np.testing.assert_array_equal(s.clips128, c128)
    np.testing.assert_array_equal(s.clips64, c64)
    v = s.videos([0, 2], size=128)
    assert v.shape == (2, 32, 3, 128, 128) and v.dtype.is_floating_point
    assert -1 <= v.min() and v.max() <= 1
    # channel-first in [-1, 1]: pixel (y, x) channel c of clip 2 frame 5 is (u8 / 255 - 0.5) / 0.5
    assert v[1, 5, 1, 7, 9].item() == pytest.approx((c128[2, 5, 7, 9, 1] / 255 - 0.5) / 0.5, abs=1e-6)
    assert s.videos([1]).shape == (1, 32, 3, 64, 64)            # 64 px stays the default


def test_a_rewrite_without_clips128_removes_the_old_file(tmp_path):
    write_split(tmp_path, "train", _clips(64), _rows(), clips128=_clips(128))
    write_split(tmp_path, "train", _clips(64, seed=1), _rows())  # an older run's clips128 would not match
    assert not (tmp_path / "train" / "clips128.npy").exists()
    s = load_split(tmp_path, "train")
    assert s.clips128 is None
    with pytest.raises(DatasetError, match=r"clips128\.npy.*--size128"):
        s.videos([0], size=128)


@pytest.mark.parametrize("bad, what", [
    (_clips(64), "a 64 px array"),
    (_clips(128, n=N - 1), "one clip short"),
    (_clips(128)[:, :16], "16 frames"),
    (_clips(128).astype(np.float32), "float"),
])
def test_write_split_refuses_bad_clips128_before_writing(tmp_path, bad, what):
    with pytest.raises(ValueError, match=r"clips128 must be uint8 \[3, 32, 128, 128, 3\]"):
        write_split(tmp_path, "train", _clips(64), _rows(), clips128=bad)
    assert not (tmp_path / "train" / "clips64.npy").exists(), what   # nothing half-written


def test_load_split_refuses_clips128_of_another_length(tmp_path):
    write_split(tmp_path, "train", _clips(64), _rows())
    np.save(tmp_path / "train" / "clips128.npy", _clips(128, n=N + 1))
    with pytest.raises(DatasetError, match=r"clips128\.npy has 4 clips but clips64\.npy 3"):
        load_split(tmp_path, "train")


def test_videos_sizes(tmp_path):
    write_split(tmp_path, "train", _clips(64), _rows())
    s = load_split(tmp_path, "train")
    with pytest.raises(DatasetError, match=r"has no clips224\.npy"):    # as before clips128 existed
        s.videos([0], size=224)
    for size in (96, 256, 32):
        with pytest.raises(DatasetError, match=rf"no {size} px clips.*64, 128, 224"):
            s.videos([0], size=size)
