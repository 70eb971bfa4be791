"""How well fv.photo.aligner.FaceAligner.mouth_covered finds a hand over the mouth: the mouth points' mirror
disagreement on every `step`-th frame of the Pexels video, whose frames 60-138 and 156-222 show a hand over the
mouth (labelled by eye; 144-150, a hand at the cheek, left out). Prints a table and writes JSON.

    python benchmarks/mouth_cover.py [--video ../shared/data/WolfgangLanger_Pexels.mp4] [--step 6]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fv.data.video_io import count_frames, read_video
from fv.photo.aligner import MOUTH_COVERED, FaceAligner

VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "WolfgangLanger_Pexels.mp4"
COVERED = [(60, 138), (156, 222)]
UNSURE = [(139, 155)]


def label(i: int) -> str:
    inside = lambda spans: any(a <= i <= b for a, b in spans)   # noqa: E731
    return "unsure" if inside(UNSURE) else "covered" if inside(COVERED) else "clear"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", type=Path, default=VIDEO)
    ap.add_argument("--step", type=int, default=6)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/mouth_cover.json"))
    args = ap.parse_args()
    idx = list(range(0, count_frames(args.video), args.step))
    al, rows = FaceAligner(), []
    for i, f in zip(idx, read_video(args.video, idx)):
        box = al.detect(f)[0]
        lm = al.landmarks(f, box)
        rows.append({"frame": i, "label": label(i), "mouth": float(al.mirror_disagreement(f, box, lm)[48:68].mean())})
    print(f"threshold {MOUTH_COVERED}: mean mirror disagreement of points 48-67, inter-ocular distances\n")
    print("| frames | n | min | median | max | flagged covered |\n|---|---|---|---|---|---|")
    summary = {}
    for lb in ("clear", "covered", "unsure"):
        v = np.array([r["mouth"] for r in rows if r["label"] == lb])
        summary[lb] = {"n": len(v), "min": float(v.min()), "median": float(np.median(v)), "max": float(v.max()),
                       "flagged": int((v > MOUTH_COVERED).sum())}
        s = summary[lb]
        print(f"| {lb} | {s['n']} | {s['min']:.3f} | {s['median']:.3f} | {s['max']:.3f} | {s['flagged']} |")
    args.out.write_text(json.dumps({"threshold": MOUTH_COVERED, "step": args.step, "summary": summary, "rows": rows},
                                   indent=1))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
