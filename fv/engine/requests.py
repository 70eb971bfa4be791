"""Render requests: (neutral face, target emotion, seed), checked and stacked into the engine's batch.

A face is either an aligned crop, uint8 [S, S, 3] RGB (what fv.photo.aligner.FaceAligner.face_crop returns), or a
model-range tensor float [3, S, S] in [-1, 1]. uint8 maps to the model range as (x / 255 - 0.5) / 0.5
(thesis 4.2.1; the same map as fv.data.layout.to_model_range). The engine's output maps back with
round((x + 1) * 127.5) after clamping to [-1, 1] (fv.data.layout.to_uint8).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fv.engine.labels import CLASSES, EMOTIONS, parse_emotion

RANGE_SLACK = 1e-3   # faces may exceed [-1, 1] by float rounding, not by more
SEED_MAX = 2 ** 63 - 1


class EngineError(ValueError):
    """Bad input to the sampling engine (faces, emotions, seeds, sampler options)."""


@dataclass(frozen=True)
class RenderRequest:
    face: np.ndarray | torch.Tensor   # uint8 [S, S, 3] aligned crop, or float [3, S, S] in [-1, 1]
    emotion: int | str                # class index (0..5) or a name / alias ("happy")
    seed: int = 0


def face_tensor(face: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """One face -> float32 [3, size, size] in [-1, 1]."""
    if isinstance(face, np.ndarray) and face.dtype == np.uint8:
        if face.shape != (size, size, 3):
            raise EngineError(f"an aligned face crop must be uint8 [{size}, {size}, 3], got {face.shape}")
        x = torch.from_numpy(np.ascontiguousarray(face)).float().div(255.0)
        return x.permute(2, 0, 1).sub(0.5).div(0.5)                       # [3, S, S], (x/255 - 0.5)/0.5
    x = torch.as_tensor(face)
    if x.dtype == torch.uint8:
        return face_tensor(x.numpy(), size)
    if x.shape != (3, size, size):
        raise EngineError(f"a face tensor must be float [3, {size}, {size}] in [-1, 1], got {tuple(x.shape)}")
    return x.float()


def emotion_index(emotion: int | str) -> int:
    """A target emotion as its class index 0..5 (anger .. surprise)."""
    if isinstance(emotion, str):
        return parse_emotion(emotion)
    e = int(emotion)
    if e != emotion or not 0 <= e < len(EMOTIONS):
        raise EngineError(f"emotion index must be an integer in 0..{len(EMOTIONS) - 1} "
                          f"({', '.join(EMOTIONS)}), got {emotion!r}")
    return e


def check_batch(faces: torch.Tensor, emotions, seeds, size: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Validate a batch: faces float [N, 3, S, S] in [-1, 1], N emotions (indices or names), N integer
    seeds -> (faces float32 CPU, emotions LongTensor [N] CPU, seeds list[int])."""
    if not isinstance(faces, torch.Tensor):
        raise EngineError(f"faces must be a float tensor [N, 3, {size}, {size}] in [-1, 1], got {type(faces).__name__}")
    if faces.dim() != 4 or tuple(faces.shape[1:]) != (3, size, size) or len(faces) == 0:
        raise EngineError(f"faces must be [N, 3, {size}, {size}] with N >= 1, got {tuple(faces.shape)}")
    if not faces.dtype.is_floating_point:
        raise EngineError(f"faces must be float in [-1, 1] (map uint8 with (x/255 - 0.5)/0.5), got {faces.dtype}")
    faces = faces.detach().float().cpu()
    if not torch.isfinite(faces).all():
        raise EngineError("faces hold NaN or infinite values")
    lo, hi = float(faces.min()), float(faces.max())
    if lo < -1 - RANGE_SLACK or hi > 1 + RANGE_SLACK:
        raise EngineError(f"faces must lie in [-1, 1] (map uint8 with (x/255 - 0.5)/0.5), got [{lo:.3g}, {hi:.3g}]")
    n = len(faces)
    emo_list = emotions.tolist() if isinstance(emotions, torch.Tensor) else list(emotions)
    seed_list = seeds.tolist() if isinstance(seeds, torch.Tensor) else list(seeds)
    if len(emo_list) != n or len(seed_list) != n:
        raise EngineError(f"{n} faces need {n} emotions and {n} seeds, got {len(emo_list)} and {len(seed_list)}")
    for s in seed_list:
        if isinstance(s, bool) or int(s) != s or not 0 <= int(s) <= SEED_MAX:
            raise EngineError(f"seeds must be integers in [0, 2^63 - 1], got {s!r}")
    idx = torch.tensor([emotion_index(e) for e in emo_list], dtype=torch.long)
    return faces, idx, [int(s) for s in seed_list]


def stack_requests(requests: Sequence[RenderRequest], size: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Requests -> (faces [N, 3, S, S] in [-1, 1], emotions [N], seeds), checked."""
    if not requests:
        raise EngineError("no render requests given")
    faces = torch.stack([face_tensor(r.face, size) for r in requests])
    return check_batch(faces, [r.emotion for r in requests], [r.seed for r in requests], size)


def derive_seed(base: int, key: str) -> int:
    """A stable seed for one item of a set: the first 8 bytes of sha256(f"{base}:{key}") as an int < 2^63.
    Independent of the item's position, its shard and the other items (render-set's resumability)."""
    digest = hashlib.sha256(f"{int(base)}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def emotion_name(index: int) -> str:
    return CLASSES[int(index)]
