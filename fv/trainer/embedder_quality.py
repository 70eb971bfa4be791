"""How well expression codes tell expressions apart on held-out identities (benchmarks/embedder_quality.py, the
shipped embedder's test): codes [N, 32, D] of N clips of fv's layout, apex frames fv.engine.labels.APEX.

    apex_accuracy       each apex frame of the test clips gets the emotion of the nearest centroid of the
                        reference clips' apex codes (chance 1/6)
    loo_apex_accuracy   the same within one set of clips, the centroids from the OTHER identities' clips
    held_out_triplets   triplets of the clips' frames mined as in training (fv.triplets.mine_triplets: AU
                        distance, the positive of another identity), the share whose anchor is nearer its
                        positive than its negative in code space (chance 1/2)
    au_r2               R^2 on the test frames of a linear fit (with intercept) from reference codes to AUs
"""

from __future__ import annotations

import numpy as np
import torch

from fv.engine.labels import APEX, EMOTIONS
from fv.trainer.triplets import triplet_accuracy


def _centroids(apex: np.ndarray, emotions: np.ndarray) -> np.ndarray:
    """apex codes [N, A, D] -> [6, D] mean apex code per emotion."""
    return np.stack([apex[emotions == k].reshape(-1, apex.shape[-1]).mean(0) for k in range(len(EMOTIONS))])


def _nearest(apex: np.ndarray, cent: np.ndarray) -> np.ndarray:
    return ((apex[..., None, :] - cent) ** 2).sum(-1).argmin(-1)                       # [N, A]


def apex_accuracy(ref_codes, ref_emotions, codes, emotions) -> float:
    cent = _centroids(np.asarray(ref_codes)[:, list(APEX)], np.asarray(ref_emotions))
    return float((_nearest(np.asarray(codes)[:, list(APEX)], cent) == np.asarray(emotions)[:, None]).mean())


def loo_apex_accuracy(codes, emotions, subjects) -> float:
    apex, emotions, subjects = np.asarray(codes)[:, list(APEX)], np.asarray(emotions), np.asarray(subjects)
    hits = [_nearest(apex[subjects == s], _centroids(apex[subjects != s], emotions[subjects != s]))
            == emotions[subjects == s][:, None] for s in np.unique(subjects)]
    return float(np.concatenate(hits).mean())


def held_out_triplets(codes, aus, subjects, frames_per_clip: int = 8, draws: int = 5, seed: int = 0) -> float:
    """Mean triplet accuracy over `draws` draws of `frames_per_clip` frames of every clip."""
    codes, aus, subjects = np.asarray(codes), np.asarray(aus), np.asarray(subjects)
    rng = np.random.default_rng(seed)
    rows = np.arange(len(codes))[:, None]
    out = []
    for r in range(draws):
        f = np.stack([rng.choice(codes.shape[1], frames_per_clip, replace=False) for _ in range(len(codes))])
        out.append(triplet_accuracy(torch.from_numpy(codes[rows, f].reshape(-1, codes.shape[-1])),
                                    torch.from_numpy(aus[rows, f].reshape(-1, aus.shape[-1])),
                                    torch.from_numpy(subjects).repeat_interleave(frames_per_clip), seed=seed + r))
    return float(np.mean(out))


def au_r2(ref_codes, ref_aus, codes, aus) -> float:
    def design(c):
        c = np.asarray(c, np.float64).reshape(-1, np.shape(c)[-1])
        return np.c_[c, np.ones(len(c))]
    y_ref, y = (np.asarray(a, np.float64).reshape(-1, np.shape(a)[-1]) for a in (ref_aus, aus))
    w = np.linalg.lstsq(design(ref_codes), y_ref, rcond=None)[0]
    return float(1 - ((design(codes) @ w - y) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())
