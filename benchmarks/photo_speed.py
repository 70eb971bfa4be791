"""The cost of a photo mode's transfer step (issue 21): the checkpoint's output -> the face video at 512 px, on this
machine's CPU. Prints a table and writes JSON.

    python benchmarks/photo_speed.py [--size 512] [--repeat 3] [--modes transfer,scan,flow] [--photo PATH]

The model's part is left out (the same for every mode, and measured by `fv bench`): transfer and scan get the
synthetic stand-in video the generator renders for the EMFACS prototype (what a perfect model would give; happiness
and surprise, surprise opening the mouth), flow gets the flows the shipped LFDM checkpoint samples for the photo
(10 steps, sampled once, not timed). Each row: the median over --repeat runs of one 32-frame video, the first
run's extra (model and asset loading, caches) apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from fv.data.synth import EMOTION_AUS_V2, au_trajectory, render_clip
from fv.engine.labels import EMOTIONS
from fv.photo.au_readout import load as load_readout
from fv.photo.face import load_face
from fv.photo.modes import FLOWS, MODES
from fv.photo.standin import standin_identity

FACES = Path(os.environ.get("FV_FACES", "/work/shared/data/faces"))
CHECKPOINTS = Path(__file__).resolve().parents[1] / "fv" / "assets" / "checkpoints"


def timed(fn, repeat: int) -> tuple[float, float]:
    """(median seconds of the repeats after the first, the first's extra over it)."""
    times = []
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times[1:])
    return med, times[0] - med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--modes", default="transfer,scan,flow")
    ap.add_argument("--photo", type=Path, default=FACES / "biden.jpg")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/photo_speed.json"))
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    face = load_face(args.photo, 64, lo=args.size, hi=args.size)
    version = load_readout().version
    rows = []
    for name in args.modes.split(","):
        mode = MODES[name]
        for emo in ("happiness", "surprise"):
            e = EMOTIONS.index(emo)
            if mode.output is FLOWS:          # its flows, sampled by LFDM for the photo
                from fv.engine.engine import Engine
                eng = Engine(CHECKPOINTS / "LFDM.safetensors", steps=10, device="cpu")
                out = mode.output.generate(eng, [mode.model_input(face)], [e], [0])[0]
                v = None
            else:
                aus = au_trajectory(emo, np.random.default_rng([21, e]), EMOTION_AUS_V2)
                out, v = render_clip(standin_identity(), aus, 64, version=version), version
            sec, first = timed(lambda: mode.face_video(face, out, v), args.repeat)
            rows.append({"mode": name, "emotion": emo, "size": face.size, "seconds": sec, "first_extra": first})
            print(f"  {name} {emo}: {sec:.2f} s", flush=True)
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}; {args.photo.name} at {face.size} px, 32 frames\n")
    print("| mode | emotion | s / video | first run's extra s |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['emotion']} | {r['seconds']:.2f} | {r['first_extra']:.2f} |")
    args.out.write_text(json.dumps({"cpus": os.cpu_count(), "rows": rows}, indent=1))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
