"""What the photo tests share: frames of the real Pexels video and one loaded aligner."""

from __future__ import annotations

import imageio.v2 as imageio
import numpy as np
import pytest

from fv.photo.aligner import FaceAligner

FRAMES = (0, 300, 430, 440, 450, 460)


@pytest.fixture(scope="module")
def frames(pexels_video) -> dict[int, np.ndarray]:
    out = {}
    with imageio.get_reader(str(pexels_video), format="FFMPEG") as r:
        for i, f in enumerate(r):
            if i in FRAMES:
                out[i] = np.asarray(f)
            if i >= max(FRAMES):
                break
    return out


@pytest.fixture(scope="module")
def aligner() -> FaceAligner:
    return FaceAligner()
