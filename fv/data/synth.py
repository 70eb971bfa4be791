"""fv's embedded synthetic data set: procedural identities performing the six emotions through AUs.

Each clip follows MUG's video structure (thesis 4.2, "Video Structure"): 32 frames, neutral 0-9,
apex 10-21, neutral 22-31. The AUs of the target emotion (EMFACS prototypes) rise with a raised-cosine
onset centred on the 9|10 border and fall with an offset centred on the 21|22 border; ramp lengths are
emotion-specific (surprise fast, sadness slow) and every video jitters timing (about a frame), apex
intensity (0.8-1.0) and head pose (sub-pixel). Train and test identities are disjoint (the last
`n_test_identities` are the test split), as MUG's split by subject (thesis 4.2.1).
"""

from __future__ import annotations

import colorsys
import contextlib
import dataclasses
import multiprocessing as mp
import os
from pathlib import Path

import cv2
import numpy as np

from fv.data.layout import write_meta, write_split
from fv.data.synth_face import (AUS, DEFAULT_VERSION, LATEST_VERSION, VERSIONS, Identity, SynthInputError, render_clip,
                                render_clip_motion, render_frame, synth_style)
from fv.engine.atomic import atomic_path
from fv.engine.labels import EMOTIONS, N_FRAMES, parse_emotion

__all__ = ["AUS", "DEFAULT_VERSION", "EMOTION_AUS", "EMOTION_AUS_V2", "LATEST_VERSION", "VERSIONS", "Identity",
           "SynthInputError", "au_trajectory", "emotion_aus",
           "head_motion", "make_synthetic", "render_clip", "render_clip_motion", "render_frame", "sample_identity",
           "synthetic_identity"]

# EMFACS prototypes of the six basic emotions: AU -> apex intensity weight.
EMOTION_AUS: dict[str, dict[str, float]] = {
    "anger": {"AU4": 1.0, "AU5": 0.6, "AU7": 0.9, "AU23": 1.0},
    "disgust": {"AU9": 1.0, "AU15": 0.8, "AU16": 0.8},
    "fear": {"AU1": 1.0, "AU2": 0.8, "AU4": 0.7, "AU5": 1.0, "AU20": 1.0, "AU26": 0.5},
    "happiness": {"AU6": 0.9, "AU12": 1.0},
    "sadness": {"AU1": 1.0, "AU4": 0.6, "AU15": 1.0},
    "surprise": {"AU1": 1.0, "AU2": 1.0, "AU5": 0.9, "AU26": 1.0},
}
# Version 2 (motion "field") moves the face instead of redrawing it, and two prototypes then read as other
# emotions to the FER classifier: anger's lid raise (AU5) widens the eyes into surprise (0.6 -> 0.3) and fear's
# jaw drop (AU26) under the stretched lips opens a grin (0.5 -> 0.3). The AUs are EMFACS's all the same.
EMOTION_AUS_V2: dict[str, dict[str, float]] = {
    **EMOTION_AUS,
    "anger": {**EMOTION_AUS["anger"], "AU5": 0.3},
    "fear": {**EMOTION_AUS["fear"], "AU26": 0.3},
}


def emotion_aus(version: int) -> dict[str, dict[str, float]]:
    """The emotion prototypes a generator version animates (AU -> apex weight)."""
    return EMOTION_AUS if synth_style(version).motion == "drawn" else EMOTION_AUS_V2
# Onset and offset ramp lengths in frames (10%..90% spans are ~0.6 of these): surprise is fast,
# sadness slow; offsets are slower than onsets.
RAMPS: dict[str, tuple[float, float]] = {
    "surprise": (3.0, 6.0), "fear": (4.0, 7.0), "anger": (5.0, 7.0),
    "happiness": (5.0, 7.0), "disgust": (6.0, 7.0), "sadness": (7.0, 9.0),
}
ONSET_CENTRE, OFFSET_CENTRE = 9.5, 21.5   # borders of the apex segment 10-21


def _ramp(x: np.ndarray) -> np.ndarray:
    """Raised cosine: 0 for x <= 0, 1 for x >= 1, (1 - cos(pi x)) / 2 between."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def au_trajectory(emotion: str, rng: np.random.Generator,
                  recipes: dict[str, dict[str, float]] = EMOTION_AUS) -> np.ndarray:
    """Per-frame AU intensities float32 [32, len(AUS)] in [0, 1] for one video of `emotion`.

    a_k(t) = w_k * I * g_k * min(R((t - s_on)/d_on), 1 - R((t - s_off)/d_off)) * (1 + wobble(t)),
    R the raised cosine, s = centre - d/2, centres 9.5 and 21.5 shifted by a per-video jitter
    (+-1 frame) and a per-AU lag (+-0.4), I ~ U(0.8, 1) the apex intensity, g_k ~ U(0.9, 1)."""
    name = EMOTIONS[parse_emotion(emotion)]
    d_on, d_off = RAMPS[name]
    t = np.arange(N_FRAMES, dtype=np.float64)
    shift_on, shift_off = 0.5 * rng.uniform(-1.0, 1.0) + 0.5 * rng.uniform(-1.0, 1.0, 2)  # shared + own
    apex = rng.uniform(0.8, 1.0)
    out = np.zeros((N_FRAMES, len(AUS)), np.float64)
    for au, w in recipes[name].items():
        lag = rng.uniform(-0.4, 0.4)
        s_on = ONSET_CENTRE + shift_on + lag - d_on / 2
        s_off = OFFSET_CENTRE + shift_off + lag - d_off / 2
        env = np.minimum(_ramp((t - s_on) / d_on), 1.0 - _ramp((t - s_off) / d_off))
        wobble = 1.0 + 0.04 * np.sin(2 * np.pi * t / rng.uniform(6, 12) + rng.uniform(0, 2 * np.pi))
        out[:, AUS.index(au)] = w * apex * rng.uniform(0.9, 1.0) * env * wobble
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def head_motion(rng: np.random.Generator, n_frames: int = N_FRAMES) -> np.ndarray:
    """Tiny smooth head motion float32 [n_frames, 3] = (dx, dy, roll), exactly 0 at frame 0.

    Each component is A * (sin(w t + phi) - sin(phi)): dx, dy up to 0.012 face units (~0.4 px at 64),
    roll up to 0.012 rad (0.7 deg)."""
    t = np.arange(n_frames, dtype=np.float64)[:, None]
    amp = 0.012 * rng.uniform(0.3, 1.0, 3)
    w = 2 * np.pi / rng.uniform(20, 60, 3)
    phi = rng.uniform(0, 2 * np.pi, 3)
    return (amp * (np.sin(w * t + phi) - np.sin(phi))).astype(np.float32)


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    return tuple(255.0 * c for c in colorsys.hsv_to_rgb(h, s, v))


_SKIN = np.array([(255, 226, 200), (243, 200, 168), (226, 176, 132), (200, 150, 105),
                  (165, 112, 75), (120, 78, 50), (85, 55, 38)], float)
_HAIR = np.array([(28, 22, 20), (62, 42, 30), (100, 66, 42), (135, 65, 35), (200, 165, 105),
                  (228, 205, 150), (160, 158, 155), (215, 212, 205), (175, 85, 40)], float)
_HAIR_P = np.array([0.22, 0.2, 0.15, 0.07, 0.1, 0.06, 0.08, 0.04, 0.08])
_IRIS = np.array([(85, 52, 28), (48, 30, 20), (120, 96, 48), (75, 118, 68), (70, 110, 165),
                  (110, 122, 134)], float)


def sample_identity(rng: np.random.Generator) -> Identity:
    """A random synthetic subject: skin tone, hair colour/style, face and feature shapes, framing."""
    u = rng.uniform
    k = u(0, len(_SKIN) - 1)
    i = int(k)
    skin = _SKIN[i] * (1 - (k - i)) + _SKIN[min(i + 1, len(_SKIN) - 1)] * (k - i) + rng.normal(0, 5, 3)
    skin = np.clip(skin, 30, 255)
    hair = np.clip(_HAIR[rng.choice(len(_HAIR), p=_HAIR_P)] + rng.normal(0, 8, 3), 5, 250)
    red = u(0.3, 0.6)                   # lips: darkened skin tinted towards a red (darker on dark skin)
    tint = (0.6 + 0.4 * skin.mean() / 255) * np.array([185, 72, 82])
    lips = np.clip((1 - red) * 0.78 * skin + red * tint, 20, 240)
    for _ in range(50):                 # a background the face stands out from (RGB distance >= 70)
        bg = _hsv(u(0, 1), u(0.05, 0.45), u(0.35, 0.95))
        if np.linalg.norm(np.subtract(bg, skin)) >= 70:
            break
    bg2 = tuple(c * u(0.75, 0.95) for c in bg)
    shirt = _hsv(u(0, 1), u(0.1, 0.8), u(0.2, 0.9))

    def f(lo: float, hi: float) -> float:
        return float(u(lo, hi))
    return Identity(
        skin=tuple(float(c) for c in skin), hair=tuple(float(c) for c in hair),
        hair_style=int(rng.integers(0, 8)), hair_volume=f(0.0, 0.12),
        iris=tuple(float(c) for c in _IRIS[rng.integers(0, len(_IRIS))]),
        lips=tuple(float(c) for c in lips), background=bg, background2=bg2, shirt=shirt,
        face_width=f(0.50, 0.62), face_length=f(0.70, 0.82), jaw=f(0, 1), chin=f(0, 0.35),
        eye_sep=f(0.38, 0.48), eye_size=f(0.085, 0.12), eye_open=f(0.38, 0.55), eye_tilt=f(-0.012, 0.02),
        brow_thick=f(0.02, 0.045), brow_arch=f(0.01, 0.05), nose_len=f(0.24, 0.33),
        nose_width=f(0.07, 0.11), mouth_width=f(0.14, 0.21), lip_thick=f(0.035, 0.06),
        folds=f(0.0, 0.35), offset=(f(-0.04, 0.04), f(-0.02, 0.05)), scale=f(1.0, 1.12),
    )


def synthetic_identity(seed: int, index: int) -> Identity:
    """Identity number `index` of the data set made with `seed` (what make_synthetic renders)."""
    return sample_identity(np.random.default_rng([seed, index, 0]))


def _render_identity(job: tuple[int, int, int, bool, int, bool]) -> dict[str, np.ndarray]:
    """All clips of one identity (emotions x takes): "c64" uint8 [E*takes, 32, 64, 64, 3], "aus" float32
    [E*takes, 32, K], with motion "field" "flow" float16 [E*takes, 32, 64, 64, 2] and "occ" uint8
    [E*takes, 32, 64, 64], with size224 "c224" (eye-aligned), with size128 "c128" (c64's framing, AUs and head
    motion at 128 px). Depends only on the job: worker-independent."""
    seed, index, takes, size224, version, size128 = job
    idt = synthetic_identity(seed, index)
    out: dict[str, list] = {"c64": [], "aus": [], "flow": [], "occ": [], "c224": [], "c128": []}
    for e, name in enumerate(EMOTIONS):
        for take in range(takes):
            rng = np.random.default_rng([seed, index, 1 + e, take])
            a = au_trajectory(name, rng, emotion_aus(version))
            pose = head_motion(rng)        # the last draw: the renders below take none
            frames, flow, occ = render_clip_motion(idt, a, 64, pose, version=version)
            out["c64"].append(frames)
            if size128:
                out["c128"].append(render_clip(idt, a, 128, pose, version=version))
            if flow is not None:
                out["flow"].append(flow.astype(np.float16))
                out["occ"].append(occ)
            if size224:
                out["c224"].append(render_clip(idt, a, 224, eye_aligned=True, version=version))
            out["aus"].append(a)
    return {k: np.stack(v) for k, v in out.items() if v}


def _check_args(n_identities: int, n_test_identities: int, takes: int) -> None:
    if n_test_identities < 1 or n_identities - n_test_identities < 1:
        raise SynthInputError(f"need at least one train and one test identity, got n_identities={n_identities}, "
                              f"n_test_identities={n_test_identities}")
    if takes < 1:
        raise SynthInputError(f"takes must be at least 1, got {takes}")


def make_synthetic(out, n_identities: int = 60, n_test_identities: int = 12, takes: int = 2, seed: int = 0,
                   size224: bool = False, workers: int | None = None, progress: bool = True,
                   version: int = DEFAULT_VERSION, size128: bool = False) -> Path:
    """Write the synthetic data set (n_identities x 6 emotions x takes clips) to `out` in fv's layout.

    Identities 0..n-n_test-1 are train, the last n_test_identities test (disjoint subjects). Output is
    the same for a seed whatever `workers` is (default: up to 2 processes). version: the generator
    (fv.data.synth_face.VERSIONS; recorded as meta.json "synth_version"); version 2 also writes each
    clip's ground-truth motion (flow64.npy, occ64.npy). size128 also writes clips128.npy, the 64 px clips
    rendered at 128 px (same framing, AUs and head motion; clips64 are the same with or without it). Returns
    the data root."""
    _check_args(n_identities, n_test_identities, takes)
    field = synth_style(version).motion == "field"
    root = Path(out)
    n_train = n_identities - n_test_identities
    workers = min(2, os.cpu_count() or 1) if workers is None else max(1, int(workers))
    splits = {"train": range(n_train), "test": range(n_train, n_identities)}
    per_id = len(EMOTIONS) * takes
    shapes = {"c64": ((N_FRAMES, 64, 64, 3), np.uint8), "aus": ((N_FRAMES, len(AUS)), np.float32)}
    if field:
        shapes.update(flow=((N_FRAMES, 64, 64, 2), np.float16), occ=((N_FRAMES, 64, 64), np.uint8))
    arrays = {k: {name: np.empty((len(ids) * per_id, *shape), dtype) for name, (shape, dtype) in shapes.items()}
              for k, ids in splits.items()}
    large = [size for size, on in ((224, size224), (128, size128)) if on]
    # each clips224.npy / clips128.npy goes into place once complete, after write_split (which removes an older
    # clips128.npy); they go straight to disk (3.5 GB / 1.1 GB for the default set)
    with contextlib.ExitStack() as publish:
        for k, ids in splits.items():
            (root / k).mkdir(parents=True, exist_ok=True)
            for size in (224, 128):
                path = root / k / f"clips{size}.npy"
                if size in large:
                    arrays[k][f"c{size}"] = np.lib.format.open_memmap(
                        publish.enter_context(atomic_path(path)), "w+", np.uint8,
                        (len(ids) * per_id, N_FRAMES, size, size, 3))
                else:
                    path.unlink(missing_ok=True)   # an older run's clips would not match these clips
        jobs = [(seed, i, takes, size224, version, size128) for i in range(n_identities)]
        _render_all(jobs, workers, progress, splits, n_train, per_id, arrays)
        for k, ids in splits.items():
            rows = [{"video_id": f"synth{i:03d}_{name}_{take}", "subject": f"synth{i:03d}", "emotion": name,
                     "take": take} for i in ids for name in EMOTIONS for take in range(takes)]
            got = arrays[k]
            write_split(root, k, got["c64"], rows, aus=got["aus"], flow64=got.get("flow"), occ64=got.get("occ"))
            for size in large:
                got[f"c{size}"].flush()
                del got[f"c{size}"]            # closes the memory map before it is published
    write_meta(root, name="synthetic", source="synthetic", aus=list(AUS), seed=seed,
               n_identities=n_identities, test_subjects=[f"synth{i:03d}" for i in splits["test"]],
               takes=takes, emotion_aus=emotion_aus(version), size224=size224, size128=size128, synth_version=version,
               synth_style=dataclasses.asdict(VERSIONS[version]))
    return root


def _render_all(jobs, workers: int, progress: bool, splits: dict[str, range], n_train: int, per_id: int,
                arrays: dict[str, dict[str, np.ndarray]]) -> None:
    """Render every identity's clips (in `workers` processes) into the split arrays, in identity order."""
    ctx = mp.get_context("spawn")  # fork after torch or OpenMP threads started can deadlock
    # fork before the progress thread starts; one OpenCV thread per worker process
    pool = ctx.Pool(workers, initializer=cv2.setNumThreads, initargs=(1,)) if workers > 1 else None
    try:
        results = pool.imap(_render_identity, jobs) if pool else map(_render_identity, jobs)
        with _progress(progress) as bar:
            task = bar.add_task("rendering synthetic clips", total=len(jobs) * per_id)
            for i, got in enumerate(results):  # ordered: identity i arrives i-th
                k = "train" if i < n_train else "test"
                j = (i - splits[k].start) * per_id
                for name, arr in got.items():
                    arrays[k][name][j:j + per_id] = arr
                bar.advance(task, per_id)
    finally:
        if pool:
            pool.terminate()


def _progress(enabled: bool):
    """A rich progress bar over clips (inert when not enabled)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    disable=not enabled)
