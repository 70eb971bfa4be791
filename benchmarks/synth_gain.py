"""How far synthetic version 2 must move a face for the FER classifier to read its expressions: the probe behind
fv.data.synth_motion.POSED_GAIN. Prints a table, writes JSON.

    python benchmarks/synth_gain.py [--gains 1.0,1.6,1.8,2.2] [--out runs/benchmarks/synth_gain.json]

For each gain (the field's POSED_GAIN; 1.0 is the amount measured on the Pexels video) and for version 1's
drawing: the default set's test clips (identities 48-59, both takes, make_synthetic's random streams), their
apex frames 10-21 classified by fv's FER classifier ("wtf"); the share of frames whose top class is the clip's
emotion, per emotion (AEA counts clips by their mean over the frames instead: benchmarks/synth_motion.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import fv.data.synth_motion as synth_motion
from fv.data.synth import au_trajectory, emotion_aus, head_motion, render_clip_motion, synthetic_identity
from fv.engine.atomic import atomic_write_text
from fv.engine.labels import CLASSES, EMOTIONS
from fv.metrics.emotion import build_emotion_classifier

APEX = slice(10, 22)


def read_rate(classifier, version: int) -> dict[str, float]:
    hits = {e: [] for e in EMOTIONS}
    for index in range(48, 60):
        idt = synthetic_identity(0, index)
        for e, name in enumerate(EMOTIONS):
            for take in range(2):
                rng = np.random.default_rng([0, index, 1 + e, take])        # make_synthetic's stream
                aus = au_trajectory(name, rng, emotion_aus(version))
                frames = render_clip_motion(idt, aus[APEX], 64, head_motion(rng)[APEX], version=version)[0]
                hits[name] += list(classifier(frames)[0] == CLASSES.index(name))
    return {e: float(np.mean(h)) for e, h in hits.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gains", default="1.0,1.6,1.8,2.2")
    p.add_argument("--out", type=Path, default=Path("runs/benchmarks/synth_gain.json"))
    a = p.parse_args()
    classifier = build_emotion_classifier("wtf", device="cpu")
    shipped = synth_motion.POSED_GAIN
    rows = {"version 1 (drawn)": read_rate(classifier, 1)}
    try:
        for g in (float(x) for x in a.gains.split(",")):
            synth_motion.POSED_GAIN = g
            rows[f"version 2, gain {g:g}" + (" (fv's)" if g == shipped else "")] = read_rate(classifier, 2)
    finally:
        synth_motion.POSED_GAIN = shipped
    print("\n| generator | mean | " + " | ".join(EMOTIONS) + " |\n" + "|---" * (len(EMOTIONS) + 2) + "|")
    for name, r in rows.items():
        print(f"| {name} | {np.mean(list(r.values())):.2f} | " + " | ".join(f"{r[e]:.2f}" for e in EMOTIONS) + " |")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out, json.dumps(rows, indent=2))
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()
