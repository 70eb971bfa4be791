"""How far a real face moves its landmarks: the numbers behind fv.data.synth_motion.MOTION_IOD. Prints a
table and writes JSON.

    python benchmarks/pexels_motion.py [--video ../shared/data/WolfgangLanger_Pexels.mp4] [--step 2]

dlib's 68 landmarks (FaceAligner.track) on every `step`-th frame of the Pexels video; each frame's points
mapped by the similarity putting its eye centres at (0, 0) and (1, 0) (inter-ocular units, roll and scale
removed); per landmark group the 1st, 50th and 99th percentiles over the frames.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fv.data.video_io import count_frames, read_video
from fv.photo.aligner import FaceAligner
from fv.photo.geometry import apply_affine, eye_centres, similarity_from_eyes

# group -> (points, how the value is read from them): "y" mean height, "x+" / "y+" difference last - first
GROUPS = {
    "lip corners, height": ((48, 54), "y"), "mouth width": ((48, 54), "x+"), "lip gap": ((62, 66), "y+"),
    "chin": ((8,), "y"), "inner brows": ((21, 22), "y"), "outer brows": ((17, 26), "y"),
    "inner-brow distance": ((21, 22), "x+"), "upper lids": ((37, 38, 43, 44), "y"),
    "lower lids": ((40, 41, 46, 47), "y"), "nose wings": ((31, 35), "y"), "upper lip": ((51,), "y"),
    "lower lip": ((57,), "y"),
}


def normalised_landmarks(video: Path, step: int) -> np.ndarray:
    """[T, 68, 2] in inter-ocular units, eyes at (0, 0) and (1, 0)."""
    frames = read_video(video, np.arange(0, count_frames(video), step))
    track = FaceAligner().track(frames)
    unit = np.array([[0.0, 0.0], [1.0, 0.0]])
    return np.stack([apply_affine(similarity_from_eyes(eye_centres(lm), unit), lm) for lm in track.landmarks])


def group_values(lm: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for name, (pts, how) in GROUPS.items():
        p = lm[:, list(pts)]
        out[name] = p[..., 1].mean(1) if how == "y" else p[:, -1, "xy".index(how[0])] - p[:, 0, "xy".index(how[0])]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--video", type=Path,
                   default=Path(__file__).resolve().parents[2] / "shared" / "data" / "WolfgangLanger_Pexels.mp4")
    p.add_argument("--step", type=int, default=2)
    p.add_argument("--json", type=Path, default=Path("runs/benchmarks/pexels_motion.json"))
    a = p.parse_args()
    values = group_values(normalised_landmarks(a.video, a.step))
    table = {}
    print("| group | p1 | p50 | p99 | p50 - p1 | p99 - p50 | span p99 - p1 |\n|---|---|---|---|---|---|---|")
    for name, v in values.items():
        p1, p50, p99 = (float(x) for x in np.percentile(v, [1, 50, 99]))
        table[name] = {"p1": p1, "p50": p50, "p99": p99, "span": p99 - p1}
        print(f"| {name} | {p1:.3f} | {p50:.3f} | {p99:.3f} | {p50 - p1:.3f} | {p99 - p50:.3f} | {p99 - p1:.3f} |")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"video": a.video.name, "step": a.step, "iod_units": table}, indent=2))
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
