"""Sample strips written during training: one row per (identity, emotion), 10 frames across."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from fv.engine.atomic import atomic_path
from fv.data.layout import to_uint8
from fv.data.video_io import uniform_indices


def video_grid(videos: torch.Tensor, n_cols: int = 10, pad: int = 2) -> np.ndarray:
    """videos [n, T, 3, H, W] in [-1, 1] -> uint8 RGB image, one row per video."""
    idx = uniform_indices(videos.shape[1], n_cols).tolist()  # the same frames as fv render's strips
    frames = to_uint8(videos[:, idx])                    # [n, cols, H, W, 3]
    n, cols, H, W, _ = frames.shape
    img = np.full((n * (H + pad) + pad, cols * (W + pad) + pad, 3), 255, np.uint8)
    for r in range(n):
        for c in range(cols):
            y, x = pad + r * (H + pad), pad + c * (W + pad)
            img[y:y + H, x:x + W] = frames[r, c]
    return img


def save_png(path: str | Path, rgb: np.ndarray, scale: int = 1) -> Path:
    path = Path(path)
    if scale > 1:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")
    return path
