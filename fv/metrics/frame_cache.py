"""Per-frame outputs of the evaluation networks (emotion classifier, face embedders), cached by content.

A frame is keyed by a hash of its pixels, a network by `model_key` (its kind, settings and the digests
of its weight files), so a re-run of `fv eval` computes only frames it has never scored.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from fv.engine.atomic import atomic_write
from fv.engine.render_set import frame_digest

FRAME_CHUNK = 256  # frames per network call inside a frame cache (also the progress step)


class FrameCache:
    """Per-frame outputs of one network (classifier or embedder), keyed by each frame's content.

    Shards <dir>/<kind>-<sha(model_key)>/<sha(hashes)>.npz hold `hashes` [K] and one array [K, ...] per
    output; every shard carries the model key, checked on load. Only frames never seen are computed.
    """

    def __init__(self, root: Path | None, kind: str, model_key: str):
        tag = hashlib.sha256(model_key.encode()).hexdigest()[:16]
        self.dir = None if root is None else Path(root) / f"{kind}-{tag}"
        self.model_key, self.computed, self.reused = model_key, 0, 0
        self._store: dict[str, dict[str, np.ndarray]] = {}
        self._loaded = False

    def _load(self) -> None:
        self._loaded = True
        if self.dir is None or not self.dir.is_dir():
            return
        for p in sorted(self.dir.glob("*.npz")):
            if p.name.startswith("."):
                continue    # a killed writer's temporary file (fv.engine.atomic)
            try:
                with np.load(p) as f:
                    if str(f["model_key"]) != self.model_key:
                        continue
                    names = [k for k in f.files if k not in ("hashes", "model_key")]
                    arrays = {k: f[k] for k in names}
                    for i, h in enumerate(f["hashes"]):
                        self._store[str(h)] = {k: a[i] for k, a in arrays.items()}
            except (OSError, KeyError, ValueError):
                continue  # unreadable shard: its frames are recomputed

    def __call__(self, frames: np.ndarray, compute: Callable[[np.ndarray], dict[str, np.ndarray]],
                 progress: bool = False, what: str = "") -> dict[str, np.ndarray]:
        """frames uint8 [N, H, W, 3] -> {output: array [N, ...]} (compute(frames) -> same, on a miss)."""
        if not self._loaded:
            self._load()
        hashes = [frame_digest(f) for f in frames]
        first: dict[str, int] = {}
        for i, h in enumerate(hashes):
            if h not in self._store:
                first.setdefault(h, i)
        self.computed += len(first)
        self.reused += len(hashes) - len(first)
        if first:
            todo = np.stack([frames[i] for i in first.values()])
            outs = [compute(todo[s:s + FRAME_CHUNK]) for s in _track(range(0, len(todo), FRAME_CHUNK), progress, what)]
            new = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
            keys = list(first)
            for j, h in enumerate(keys):
                self._store[h] = {k: a[j] for k, a in new.items()}
            if self.dir is not None:
                name = hashlib.sha256("".join(keys).encode()).hexdigest()[:24]
                atomic_write(self.dir / f"{name}.npz", lambda tmp: np.savez(
                    tmp, hashes=np.array(keys), model_key=np.array(self.model_key), **new))
        if not hashes:
            return {}
        names = self._store[hashes[0]].keys()
        return {k: np.stack([self._store[h][k] for h in hashes]) for k in names}


def _track(it, progress: bool, what: str):
    from rich.progress import track
    return track(it, description=what, disable=not progress, transient=True)


@functools.lru_cache(maxsize=16)
def _file_digest(path: str, mtime: float) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _digest(path: Path) -> str:
    return _file_digest(str(path), path.stat().st_mtime) if path.is_file() else "missing"


def model_key(net) -> str:
    """What a classifier / embedder computes: its kind, settings and weight-file digests."""
    from fv.metrics import emotion as em
    from fv.metrics import identity as idn

    if isinstance(net, em.WtfEmotionClassifier):
        w = em.wtf_package_dir() / em.WTF_CHECKPOINTS[net.checkpoint]
        return f"wtf/{net.checkpoint}/crop={net.face_crop},{net.crop_margin}/{_digest(w)}"
    if isinstance(net, em.DeepFaceEmotionClassifier):
        w = idn.deepface_weights_dir() / idn.DEEPFACE_WEIGHTS["emotion"]
        return f"deepface-emotion/{net.detector_backend}/crop={net.face_crop},{net.crop_margin}/{_digest(w)}"
    if isinstance(net, idn.DlibFaceEmbedder):
        d = idn.dlib_model_dir()
        return (f"dlib/{net.min_size}/{net.detect}/{net.num_jitters}/"
                f"{_digest(d / idn.DLIB_RECOGNITION)}/{_digest(d / idn.DLIB_LANDMARKS5)}")
    if isinstance(net, idn.DeepFaceEmbedder):
        w = idn.deepface_weights_dir() / idn.DEEPFACE_WEIGHTS[net.name]
        return f"deepface/{net.name}/{net.detector_backend}/{_digest(w)}"
    return f"{type(net).__module__}.{type(net).__qualname__}/{getattr(net, 'name', '')}"
