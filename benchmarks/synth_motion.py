"""Synthetic data that teaches real motion (issue 13): generator version 1 against version 2. Prints tables,
writes JSON and PNG strips.

    python benchmarks/synth_motion.py [--v1 DIR] [--v2 DIR] [--faces DIR] [--out runs/benchmarks/synth_motion]

--v1 / --v2: synthetic data sets of each version (default data/synth_v1, data/synth_v2; made with the default
settings where absent). --faces: real portraits (default ../shared/data/faces). Measurements, all on the
test split:
  framing    dlib eye centres (68-point model, FaceAligner) on frame 0 of each test identity, upscaled
             64 -> 256 (cubic), against the same measure on the portraits aligned by FaceAligner.face_crop
             to 64 px; px at 256.
  motion     apex landmark displacement in inter-ocular distances, dlib on frames upscaled to 256, t = 10,
             12, ..., 20 against frame 0, mean over test clips per emotion: the mean over the 68 points, and
             fv's expression_distance (pose removed); see apex_displacement.
  warp       every portrait (face_crop, 64 px) pulled through every test clip's backward flow to frame 0
             (version 2: its ground truth flow64; version 1 has none: Farneback flow estimated from its
             frames); the FER classifier's (fv.metrics.emotion, "wtf") probability of the clip's emotion on
             frame 0 and on the apex (mean of frames 10-21); mean over clips x portraits per emotion.
  aea        what `fv eval` gives the real test videos scored as generated (its "real data" row:
             fv.metrics.scorer.Scorer on fv.metrics.generated.real_clip_set): AEA per emotion.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from fv.data.layout import load_split
from fv.data.synth import make_synthetic
from fv.engine.labels import CLASSES, EMOTIONS
from fv.photo.aligner import FaceAligner
from fv.photo.geometry import expression_distance, eye_centres, face_targets
from fv.photo.image import read_image
from fv.photo.motion_transfer import warp

APEX = slice(10, 22)
UP = 256


def _up(frame: np.ndarray) -> np.ndarray:
    return cv2.resize(frame, (UP, UP), interpolation=cv2.INTER_CUBIC)


def landmarks(aligner: FaceAligner, frame64: np.ndarray) -> np.ndarray | None:
    """dlib's 68 points [68, 2] on a 64 px frame upscaled to 256 (cubic), None without a face."""
    img = _up(frame64)
    boxes = aligner.detect(img)
    return aligner.landmarks(img, boxes[0]) if boxes else None


def framing(aligner: FaceAligner, split, portraits: list[np.ndarray]) -> dict:
    firsts = [split.subjects.index(s) for s in sorted(set(split.subjects))]
    synth = [landmarks(aligner, split.clips64[i, 0]) for i in firsts]
    photo = [landmarks(aligner, p) for p in portraits]
    se = np.array([eye_centres(lm) for lm in synth if lm is not None])
    pe = np.array([eye_centres(lm) for lm in photo if lm is not None])
    ref = pe.mean(0)
    return {"n_faces": len(se), "n_missed": len(synth) - len(se), "eyes_mean": se.mean(0).tolist(),
            "photos_eyes_mean": ref.tolist(), "template_256": face_targets(UP).tolist(),
            "max_dev_from_photos_px": float(np.abs(se - ref).max()),
            "mean_dev_from_photos_px": float(np.abs(se.mean(0) - ref).max()),
            "interocular_px": float(np.linalg.norm(se[:, 1] - se[:, 0], axis=1).mean()),
            "photos_interocular_px": float(np.linalg.norm(ref[1] - ref[0]))}


def apex_displacement(aligner: FaceAligner, split) -> dict:
    """Per emotion: "mean68" mean over the 68 points of |landmarks(t) - landmarks(0)| / IOD(0) (head motion
    included) and "expression" fv.photo.geometry.expression_distance (RMS of points 17-67 after each set's
    eyes are put at (0, 0), (1, 0): pose removed); t = 10, 12, ..., 20, mean over the test clips."""
    per: dict[str, dict[str, list[float]]] = {e: {"mean68": [], "expression": []} for e in EMOTIONS}
    for i, row in enumerate(split.rows):
        lm0 = landmarks(aligner, split.clips64[i, 0])
        if lm0 is None:
            continue
        iod = np.linalg.norm(np.subtract(*eye_centres(lm0)))
        apex = [lm for lm in (landmarks(aligner, split.clips64[i, t]) for t in range(10, 22, 2)) if lm is not None]
        if apex:
            per[row["emotion"]]["mean68"].append(float(np.mean([np.linalg.norm(lm - lm0, axis=1).mean() / iod
                                                                for lm in apex])))
            per[row["emotion"]]["expression"].append(float(np.mean([expression_distance(lm0, lm) for lm in apex])))
    return {k: {e: float(np.mean(per[e][k])) if per[e][k] else None for e in EMOTIONS}
            for k in ("mean68", "expression")}


def farneback_to_frame0(clip: np.ndarray) -> np.ndarray:
    """Estimated backward flow [T, 64, 64, 2] of each frame to frame 0 (what v1 offers: no ground truth)."""
    g = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in clip]
    return np.stack([cv2.calcOpticalFlowFarneback(g[t], g[0], None, 0.5, 3, 9, 3, 5, 1.1, 0) for t in range(len(g))])


def warped_portraits(classifier, split, portraits: list[np.ndarray], estimated: bool) -> tuple[dict, dict]:
    """FER probability of each clip's emotion on frame 0 and at the apex of the warped portraits."""
    p0 = {e: [] for e in EMOTIONS}
    pa = {e: [] for e in EMOTIONS}
    examples = {}
    for i, row in enumerate(split.rows):
        flows = farneback_to_frame0(split.clips64[i]) if estimated else np.asarray(split.flow64[i], np.float32)
        k = CLASSES.index(row["emotion"])
        for j, face in enumerate(portraits):
            video = np.stack([warp(face, f) for f in flows])
            probs = classifier(video)[1][:, k]
            p0[row["emotion"]].append(float(probs[0]))
            pa[row["emotion"]].append(float(probs[APEX].mean()))
            examples.setdefault((row["emotion"], j), video)
    table = {e: {"frame0": float(np.mean(p0[e])), "apex": float(np.mean(pa[e])),
                 "rise": float(np.mean(pa[e]) - np.mean(p0[e]))} for e in EMOTIONS}
    return table, examples


def aea(data: Path) -> dict:
    from fv.metrics.evaluate import EvalOptions
    from fv.metrics.generated import real_clip_set
    from fv.metrics.scorer import Scorer
    real = load_split(data, "test")
    res = Scorer(EvalOptions(data=str(data), metrics=("emotion",), device="cpu"), None).score(
        real_clip_set(real), None, None)
    groups = res["emotion"]["groups"]
    return {g: groups[g]["aea"] for g in ("all",) + EMOTIONS if g in groups}


def strip(path: Path, rows: list[np.ndarray]) -> None:
    """rows of clips [T, 64, 64, 3] -> one PNG, 10 frames across (frames 0, 3, ..., 31), 2x nearest."""
    pick = np.linspace(0, 31, 10).round().astype(int)
    img = np.concatenate([np.concatenate(list(r[pick]), 1) for r in rows], 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.resize(img[..., ::-1], None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST))


def _data(path: Path, version: int) -> Path:
    if not (path / "test" / "clips64.npy").exists():
        print(f"no data at {path}: generating synthetic version {version} there")
        make_synthetic(path, version=version)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--v1", type=Path, default=Path("data/synth_v1"))
    p.add_argument("--v2", type=Path, default=Path("data/synth_v2"))
    p.add_argument("--faces", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "faces")
    p.add_argument("--out", type=Path, default=Path("runs/benchmarks/synth_motion"))
    p.add_argument("--skip", default="", help="comma-separated sections to skip: framing,motion,warp,aea")
    a = p.parse_args()
    from fv.metrics.emotion import build_emotion_classifier
    skip = set(a.skip.split(","))
    aligner, classifier = FaceAligner(), build_emotion_classifier("wtf", device="cpu")
    portraits = [aligner.face_crop(read_image(f), 64)[0] for f in sorted(a.faces.glob("*.jpg"))]
    splits = {v: load_split(_data(d, v), "test") for v, d in ((1, a.v1), (2, a.v2))}
    out: dict = {"portraits": [f.name for f in sorted(a.faces.glob("*.jpg"))]}
    for v, s in splits.items():
        firsts = [s.rows.index(r) for r in s.rows if r["subject"] == s.subjects[0]]
        strip(a.out / f"synth_v{v}.png", [s.clips64[i] for i in firsts])
    if "framing" not in skip:
        out["framing"] = {f"v{v}": framing(aligner, s, portraits) for v, s in splits.items()}
        print("\nframing: dlib eye centres at 256 (x, y of image-left / image-right eye)")
        for k, f in out["framing"].items():
            print(f"  {k}: {np.round(f['eyes_mean'], 1).tolist()}  photos {np.round(f['photos_eyes_mean'], 1).tolist()}"
                  f"  max |dev| {f['max_dev_from_photos_px']:.2f} px (mean face {f['mean_dev_from_photos_px']:.2f})"
                  f"  IOD {f['interocular_px']:.1f} vs {f['photos_interocular_px']:.1f}")
    if "motion" not in skip:
        out["apex_displacement_iod"] = {f"v{v}": apex_displacement(aligner, s) for v, s in splits.items()}
    if "warp" not in skip:
        out["warp_fer"] = {}
        for v, s in splits.items():
            table, examples = warped_portraits(classifier, s, portraits, estimated=s.flow64 is None)
            out["warp_fer"][f"v{v}" + ("_farneback" if s.flow64 is None else "_gt")] = table
            for j in range(len(portraits)):
                strip(a.out / f"warped_v{v}_{j}.png", [examples[(e, j)] for e in EMOTIONS if (e, j) in examples])
    if "aea" not in skip:
        out["aea"] = {f"v{v}": aea(d) for v, d in ((1, a.v1), (2, a.v2))}
    _print(out)
    (a.out / "synth_motion.json").write_text(json.dumps(out, indent=2))
    print(f"\nwrote {a.out / 'synth_motion.json'} and PNG strips in {a.out}")


def _row(name: str, vals: list) -> None:
    mean = np.mean([x for x in vals if x is not None])
    print(f"| {name} | {mean:.3f} | " + " | ".join("-" if x is None else f"{x:.3f}" for x in vals) + " |")


def _print(out: dict) -> None:
    cols = ("all",) + EMOTIONS
    print("\n| measure | " + " | ".join(cols) + " |\n" + "|---" * (len(cols) + 1) + "|")
    for k, both in out.get("apex_displacement_iod", {}).items():
        for measure, t in both.items():
            _row(f"apex displacement {measure} (IOD) {k}", [t.get(e) for e in EMOTIONS])
    for k, t in out.get("warp_fer", {}).items():
        for q in ("frame0", "apex", "rise"):
            _row(f"warped portraits P(target) {q} {k}", [t[e][q] for e in EMOTIONS])
    for k, t in out.get("aea", {}).items():
        print(f"| AEA real test videos {k} | " + " | ".join(f"{t.get(c, float('nan')):.2f}" for c in cols) + " |")


if __name__ == "__main__":
    main()
