"""Emotion accuracy and identity/continuity scores from saved predictions (thesis 4.4.2-4.4.4).

Pure numpy: the networks live in fv.metrics.emotion and fv.metrics.identity; this module only
turns their outputs into the thesis' numbers.

Emotion (labels in fv.engine.labels.CLASSES order, clips of 32 frames):
    acc_v    = 1/12 sum_{t=10..21} 1[y_vt = e_v]                 (per-video apex accuracy)
    AEA      = mean_v acc_v                                       (eq. 4.3)
    DEA      = mean_v 1[acc_v > 0.5]   (strictly: 6/12 fails)     (eq. 4.5-4.6)
    accWN_v  = 1/32 sum_t 1[y_vt = s_t(e_v)], s_t = neutral, e_v, neutral by segment
    AEA_WN   = mean_v accWN_v                                     (eq. 4.4)
    DEA_WN   = mean_v 1[accWN_v > 0.5]                            (eq. 4.7)
Identity / continuity (embeddings [N, T, D], reference = embedding of the real frame 0):
    d_euc(a, b) = ||a - b||_2                                     (eq. 4.10)
    d_cos(a, b) = 1 - a.b / (||a|| ||b||)                         (eq. 4.11)
    rate        = mean 1[d <= tau]                                (eq. 4.12)
    ACD-I       = mean_{v,t} d(ref_v, emb_vt)                     (eq. 4.13)
    ACD-C       = mean_{v,t} d(emb_vt, emb_v,(t+1) mod T)         (eq. 4.14-4.15, cyclic, T pairs)
Per-frame profiles (thesis figs 5.1-5.7) average over videos only, one value per frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from fv.engine.labels import APEX, EMOTIONS, N_CLASSES, N_FRAMES, NEUTRAL

METRICS = ("cosine", "euclidean")

# Recognition thresholds tau per embedder and distance (thesis 4.4.4, kept as the thesis states them;
# note ArcFace cosine 0.1 is the thesis' number, not DeepFace's own default). dlib: its published
# 0.6 Euclidean same-person threshold (no cosine threshold is published, so no cosine rate).
THRESHOLDS: dict[str, dict[str, float]] = {
    "vgg-face": {"cosine": 0.4, "euclidean": 0.6},
    "openface": {"cosine": 0.1, "euclidean": 0.55},
    "arcface": {"cosine": 0.1, "euclidean": 4.15},
    "dlib": {"euclidean": 0.6},
}

ALL = "all"  # the group key of scores over every video


class MetricInputError(ValueError):
    """Labels, targets or embeddings with the wrong shape, dtype or range."""


# ----------------------------------------------------------------------------------------------
# Emotion accuracy (thesis 4.4.2-4.4.3)
# ----------------------------------------------------------------------------------------------

@dataclass
class EmotionScores:
    """Emotion accuracy of one group of videos (all, or one target emotion)."""
    n_videos: int
    aea: float                  # eq. 4.3
    dea: float                  # eq. 4.5-4.6
    aea_wn: float               # eq. 4.4
    dea_wn: float               # eq. 4.7
    profile: list[float]        # [32] fraction of videos whose frame t is the target emotion
    profile_wn: list[float]     # [32] fraction of videos whose frame t is its segment target


@dataclass
class EmotionReport:
    """groups: "all" first, then each target emotion present (fv.engine.labels.EMOTIONS names)."""
    groups: dict[str, EmotionScores]

    def to_dict(self) -> dict:
        return {k: asdict(v) for k, v in self.groups.items()}


def _check_labels(pred, targets) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    targets = np.asarray(targets)
    if pred.ndim != 2 or pred.shape[1] != N_FRAMES:
        raise MetricInputError(f"predicted labels must be [N, {N_FRAMES}], got shape {pred.shape}")
    if targets.shape != (pred.shape[0],):
        raise MetricInputError(f"targets must be [N] = [{pred.shape[0]}], got shape {targets.shape}")
    if pred.shape[0] == 0:
        raise MetricInputError("no videos to score")
    for name, arr, hi in (("predicted labels", pred, N_CLASSES), ("targets", targets, len(EMOTIONS))):
        if not np.issubdtype(arr.dtype, np.integer):
            raise MetricInputError(f"{name} must be integer class indices, got dtype {arr.dtype}")
        if arr.min() < 0 or arr.max() >= hi:
            raise MetricInputError(f"{name} must lie in [0, {hi - 1}] (fv CLASSES order), "
                                   f"got range [{arr.min()}, {arr.max()}]")
    return pred.astype(np.int64), targets.astype(np.int64)


def segment_target_matrix(targets: np.ndarray) -> np.ndarray:
    """int [N] target emotions -> int [N, 32] per-frame targets: neutral, emotion (apex), neutral."""
    seg = np.full((len(targets), N_FRAMES), NEUTRAL, dtype=np.int64)
    seg[:, APEX.start:APEX.stop] = np.asarray(targets)[:, None]
    return seg


def frame_hits(pred, targets) -> tuple[np.ndarray, np.ndarray]:
    """(hit [N, 32] frame == target emotion, hit_wn [N, 32] frame == its segment target), bool."""
    pred, targets = _check_labels(pred, targets)
    return pred == targets[:, None], pred == segment_target_matrix(targets)


def _emotion_group(hit: np.ndarray, hit_wn: np.ndarray) -> EmotionScores:
    apex_acc = hit[:, APEX.start:APEX.stop].mean(axis=1)       # [n] acc_v over the 12 apex frames
    wn_acc = hit_wn.mean(axis=1)                                # [n] accWN_v over all 32 frames
    return EmotionScores(
        n_videos=int(hit.shape[0]),
        aea=float(apex_acc.mean()),
        dea=float((apex_acc > 0.5).mean()),                     # strictly more than half
        aea_wn=float(wn_acc.mean()),
        dea_wn=float((wn_acc > 0.5).mean()),
        profile=hit.mean(axis=0).tolist(),
        profile_wn=hit_wn.mean(axis=0).tolist(),
    )


def emotion_scores(pred, targets) -> EmotionReport:
    """pred int [N, 32] classifier labels (CLASSES order), targets int [N] emotions -> report."""
    hit, hit_wn = frame_hits(pred, targets)
    targets = np.asarray(targets)
    groups = {ALL: _emotion_group(hit, hit_wn)}
    for e, name in enumerate(EMOTIONS):
        m = targets == e
        if m.any():
            groups[name] = _emotion_group(hit[m], hit_wn[m])
    return EmotionReport(groups)


# ----------------------------------------------------------------------------------------------
# Identity and continuity distances (thesis 4.4.4)
# ----------------------------------------------------------------------------------------------

def euclidean_distance(a, b) -> np.ndarray:
    """||a - b||_2 over the last axis (eq. 4.10); broadcasts."""
    return np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1)


def cosine_distance(a, b, eps: float = 1e-12) -> np.ndarray:
    """1 - a.b / (||a|| ||b||) over the last axis (eq. 4.11); broadcasts."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return 1.0 - num / np.maximum(den, eps)


def distance(a, b, metric: str) -> np.ndarray:
    if metric == "cosine":
        return cosine_distance(a, b)
    if metric == "euclidean":
        return euclidean_distance(a, b)
    raise MetricInputError(f"unknown distance {metric!r}; choose one of: {', '.join(METRICS)}")


def _check_embeddings(emb, ref=None) -> tuple[np.ndarray, np.ndarray | None]:
    emb = np.asarray(emb, np.float64)
    if emb.ndim != 3 or emb.shape[0] == 0 or emb.shape[1] == 0:
        raise MetricInputError(f"embeddings must be [N, T, D] with N, T > 0, got shape {emb.shape}")
    if ref is not None:
        ref = np.asarray(ref, np.float64)
        if ref.shape != (emb.shape[0], emb.shape[2]):
            raise MetricInputError(f"reference embeddings must be [N, D] = "
                                   f"[{emb.shape[0]}, {emb.shape[2]}], got shape {ref.shape}")
    if not np.isfinite(emb).all() or (ref is not None and not np.isfinite(ref).all()):
        raise MetricInputError("embeddings contain NaN or inf")
    return emb, ref


def identity_distances(emb, ref, metric: str = "cosine") -> np.ndarray:
    """[N, T] d(ref_v, emb_vt): ACD-I terms (eq. 4.13) for emb [N, T, D] and ref [N, D]."""
    emb, ref = _check_embeddings(emb, ref)
    return distance(ref[:, None, :], emb, metric)


def continuity_distances(emb, metric: str = "cosine") -> np.ndarray:
    """[N, T] d(emb_vt, emb_v,(t+1) mod T): ACD-C terms, cyclic so T pairs (eq. 4.14)."""
    emb, _ = _check_embeddings(emb)
    if emb.shape[1] < 2:
        raise MetricInputError("ACD-C needs at least 2 frames per video")
    return distance(emb, np.roll(emb, -1, axis=1), metric)


def recognition_rate(d, threshold: float) -> float:
    """Share of distances at or under tau (eq. 4.12)."""
    return float((np.asarray(d) <= threshold).mean())


def threshold_for(embedder: str, metric: str) -> float | None:
    """The thesis' tau for this embedder and distance, None where none is defined."""
    return THRESHOLDS.get(embedder.lower(), {}).get(metric)


@dataclass
class ACDScores:
    """One embedder, one distance, one group of videos."""
    n_videos: int
    distance: float                     # ACD-I (eq. 4.13) or ACD-C (eq. 4.15)
    recognition_rate: float | None      # eq. 4.12; None where the embedder has no threshold
    threshold: float | None
    profile: list[float]                # [T] mean over videos of the frame-t (ACD-I) / pair-t (ACD-C) term


@dataclass
class IdentityReport:
    """acd_i / acd_c: metric ("cosine", "euclidean") -> group ("all", emotion names) -> scores."""
    embedder: str
    acd_i: dict[str, dict[str, ACDScores]]
    acd_c: dict[str, dict[str, ACDScores]]

    def to_dict(self) -> dict:
        return {"embedder": self.embedder,
                "acd_i": {m: {g: asdict(s) for g, s in gs.items()} for m, gs in self.acd_i.items()},
                "acd_c": {m: {g: asdict(s) for g, s in gs.items()} for m, gs in self.acd_c.items()}}


def _acd_group(d: np.ndarray, tau: float | None) -> ACDScores:
    return ACDScores(n_videos=int(d.shape[0]), distance=float(d.mean()),
                     recognition_rate=None if tau is None else recognition_rate(d, tau),
                     threshold=tau, profile=d.mean(axis=0).tolist())


def _groups(d: np.ndarray, emotions: np.ndarray | None, tau: float | None) -> dict[str, ACDScores]:
    out = {ALL: _acd_group(d, tau)}
    if emotions is not None:
        for e, name in enumerate(EMOTIONS):
            m = emotions == e
            if m.any():
                out[name] = _acd_group(d[m], tau)
    return out


def identity_scores(emb, ref, emotions=None, embedder: str = "arcface",
                    metrics: tuple[str, ...] = METRICS) -> IdentityReport:
    """ACD-I and ACD-C with recognition rates, overall and per target emotion.

    emb [N, T, D] generated-frame embeddings, ref [N, D] embedding of each video's real frame 0,
    emotions int [N] target emotions (optional; groups per emotion when given), embedder picks
    the thresholds (THRESHOLDS key).
    """
    emb, ref = _check_embeddings(emb, ref)
    if emotions is not None:
        emotions = np.asarray(emotions)
        if emotions.shape != (emb.shape[0],) or not np.issubdtype(emotions.dtype, np.integer):
            raise MetricInputError(f"emotions must be int [N] = [{emb.shape[0]}], got "
                                   f"{emotions.dtype} {emotions.shape}")
    acd_i, acd_c = {}, {}
    for metric in metrics:
        tau = threshold_for(embedder, metric)
        acd_i[metric] = _groups(identity_distances(emb, ref, metric), emotions, tau)
        acd_c[metric] = _groups(continuity_distances(emb, metric), emotions, tau)
    return IdentityReport(embedder.lower(), acd_i, acd_c)
