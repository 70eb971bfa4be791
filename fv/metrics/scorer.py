"""The metric networks of `fv eval` behind their content-keyed caches: FVD (thesis 4.4.1), emotion
accuracy (4.4.2-4.4.3), identity and continuity distances (4.4.4) of a ClipSet."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fv.engine.labels import EMOTIONS
from fv.metrics.frame_cache import FrameCache, model_key
from fv.metrics.generated import ClipSet

if TYPE_CHECKING:
    from fv.metrics.evaluate import EvalOptions


def _device(device: str) -> str:
    import torch
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class _CountingExtractor:
    """An I3D extractor for cached_features that counts the clips it really computes (cache misses)."""

    def __init__(self, inner):
        self.inner, self.key, self.computed = inner, inner.key, 0

    def __call__(self, clips: np.ndarray, batch_size: int = 8) -> np.ndarray:
        self.computed += len(clips)
        return self.inner(clips, batch_size=batch_size)


class Scorer:
    """Holds the metric networks and their caches; scores ClipSets."""

    def __init__(self, options: EvalOptions, cache_dir: Path | None, progress: bool = False):
        self.o, self.cache_dir, self.progress = options, cache_dir, progress
        self.device = _device(options.device)
        self._i3d: _CountingExtractor | None = None
        self._classifier, self._emotion_cache = None, None
        self._embedders: dict[str, tuple[object, FrameCache]] = {}

    # -- FVD (thesis 4.4.1)
    def features(self, clips: np.ndarray) -> np.ndarray:
        """I3D features [N, D] of uint8 clips [N, 32, 64, 64, 3], through the content-keyed cache."""
        from fv.metrics.fvd import I3DFeatures, cached_features
        if self._i3d is None:
            self._i3d = _CountingExtractor(I3DFeatures(self.o.fvd_feature, self.device, progress=self.progress))
        if self.cache_dir is None:
            return self._i3d(clips, self.o.batch_size)
        return cached_features(self._i3d, clips, self.cache_dir / "i3d", batch_size=self.o.batch_size)

    @staticmethod
    def fvd_groups(real_feats: np.ndarray, real_em: np.ndarray, gen_feats: np.ndarray,
                   gen_em: np.ndarray) -> dict[str, float | None]:
        """FVD overall and per target emotion (None where a side has fewer than 2 clips)."""
        from fv.metrics.fvd import fvd
        out: dict[str, float | None] = {}
        for g in ("all",) + EMOTIONS:
            a = real_feats if g == "all" else real_feats[real_em == EMOTIONS.index(g)]
            b = gen_feats if g == "all" else gen_feats[gen_em == EMOTIONS.index(g)]
            out[g] = fvd(a, b) if len(a) >= 2 and len(b) >= 2 else None
        return out

    # -- emotion (thesis 4.4.2-4.4.3)
    def emotion(self, s: ClipSet) -> dict:
        from fv.metrics.emotion import build_emotion_classifier
        from fv.metrics.scores import emotion_scores
        if self._classifier is None:
            self._classifier = build_emotion_classifier(self.o.emotion_model, device=self.device)
            self._emotion_cache = FrameCache(self.cache_dir, "emotion", model_key(self._classifier))
        clf = self._classifier

        def compute(frames):
            labels, probs = clf(frames)
            return {"labels": labels, "probs": probs}
        n, t = s.clips.shape[:2]
        out = self._emotion_cache(s.clips.reshape(n * t, *s.clips.shape[2:]), compute, self.progress,
                                  f"emotions {s.name}")
        report = emotion_scores(out["labels"].reshape(n, t), s.emotions)
        return {"classifier": self.o.emotion_model, "groups": report.to_dict()}

    # -- identity and continuity (thesis 4.4.4)
    def identity(self, s: ClipSet, name: str) -> dict:
        from fv.metrics.identity import build_face_embedder
        from fv.metrics.scores import identity_scores
        if name not in self._embedders:
            net = build_face_embedder(name)
            self._embedders[name] = (net, FrameCache(self.cache_dir, "embed", model_key(net)))
        net, cache = self._embedders[name]
        n, t = s.clips.shape[:2]
        frames = np.concatenate([s.clips.reshape(n * t, *s.clips.shape[2:]), s.ref_frames])
        emb = cache(frames, lambda f: {"emb": net(f)}, self.progress, f"{name} {s.name}")["emb"]
        report = identity_scores(emb[:n * t].reshape(n, t, -1), emb[n * t:], s.emotions, embedder=net.name)
        return report.to_dict()

    def score(self, s: ClipSet, real_feats: np.ndarray | None, real_em: np.ndarray | None) -> dict:
        res: dict = {"name": s.name, "source": s.source, "n_videos": int(len(s.clips)), "inputs": s.inputs,
                     "timing_s": {}}
        t0 = time.perf_counter()
        if "fvd" in self.o.metrics and real_feats is not None:
            res["fvd"] = {"feature": self.o.fvd_feature,
                          **self.fvd_groups(real_feats, real_em, self.features(s.clips), s.emotions)}
            res["timing_s"]["fvd"] = time.perf_counter() - t0
        if "emotion" in self.o.metrics:
            t0 = time.perf_counter()
            res["emotion"] = self.emotion(s)
            res["timing_s"]["emotion"] = time.perf_counter() - t0
        if "identity" in self.o.metrics:
            res["identity"] = {}
            for name in self.o.identity_models:
                t0 = time.perf_counter()
                res["identity"][name] = self.identity(s, name)
                res["timing_s"][f"identity_{name}"] = time.perf_counter() - t0
        return res

    def cache_counts(self) -> dict[str, dict[str, int]]:
        out = {"i3d": {"computed_clips": 0 if self._i3d is None else self._i3d.computed}}
        if self._emotion_cache is not None:
            out["emotion"] = {"computed_frames": self._emotion_cache.computed, "reused_frames": self._emotion_cache.reused}
        for name, (_, c) in self._embedders.items():
            out[f"identity_{name}"] = {"computed_frames": c.computed, "reused_frames": c.reused}
        return out
