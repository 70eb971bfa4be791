"""FVD sanity check: real test clips against real train clips must score far lower than against
frame-shuffled test clips or noise (thesis 4.4.1). Prints a table and writes JSON.

    python benchmarks/fvd_sanity.py [--data DIR] [--generated DIR] [--train-clips 144] [--max-clips N] [--device auto]

--data defaults to the synthetic set at data/synth (made with fv.data.synth.make_synthetic if absent).
Comparisons, each FVD(test, X) on I3D features (fv.metrics.fvd, logits by default):
  train       a seeded subsample of the train split (other identities, same distribution)
  shuffled    the test clips with each clip's 32 frames in a seeded random order (appearance kept, motion broken)
  noise       uniform noise clips of the test clips' shape
  generated   a `fv render-set` folder or index CSV (fv.metrics.generated.load_generated), if given
Timing: I3D seconds per clip for every set (features computed fresh unless --cache is given).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from fv.data.layout import load_split
from fv.metrics.fvd import I3DFeatures, cached_features, fvd


def shuffle_frames(clips: np.ndarray, seed: int = 0) -> np.ndarray:
    """[N, T, ...] -> each clip's frames in its own random order."""
    rng = np.random.default_rng(seed)
    return np.stack([c[rng.permutation(len(c))] for c in clips])


def features(ext: I3DFeatures, clips: np.ndarray, cache: Path | None, batch_size: int) -> tuple[np.ndarray, float]:
    """-> (features [N, D], seconds); synchronised so GPU time is counted."""
    t0 = time.perf_counter()
    f = cached_features(ext, clips, cache, batch_size) if cache else ext(clips, batch_size=batch_size)
    if ext.device.type == "cuda":
        torch.cuda.synchronize()
    return f, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=Path(os.environ.get("FV_DATA", "data/synth")))
    p.add_argument("--generated", type=Path, default=None, help="render-set folder or index CSV to compare too")
    p.add_argument("--train-clips", type=int, default=144, help="train clips to subsample (0: all)")
    p.add_argument("--max-clips", type=int, default=0,
                   help="compare at most this many clips per set (seeded subsample; 0: all). FVD depends on the "
                        "number of clips, so compare sets of equal size; the test reference stays whole")
    p.add_argument("--feature", default="logits", choices=("logits", "mixed_5c"))
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=None, help="feature cache folder (default: none, time everything)")
    p.add_argument("--json", type=Path, default=Path("runs/benchmarks/fvd_sanity.json"))
    a = p.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    if not (a.data / "test" / "clips64.npy").exists():
        from fv.data.synth import make_synthetic
        print(f"no data at {a.data}: generating the synthetic data set there")
        make_synthetic(a.data)
    test = np.array(load_split(a.data, "test").clips64)
    train_split = load_split(a.data, "train")
    rng = np.random.default_rng(a.seed)
    n_train = len(train_split) if a.train_clips <= 0 else min(a.train_clips, len(train_split))
    train = np.array(train_split.clips64[np.sort(rng.choice(len(train_split), n_train, replace=False))])
    sets = {"train": train, "shuffled": shuffle_frames(test, a.seed),
            "noise": np.random.default_rng(a.seed + 1).integers(0, 256, test.shape, dtype=np.uint8)}
    if a.generated is not None:
        from fv.metrics.generated import load_generated
        sets["generated"] = load_generated(a.generated, load_split(a.data, "test"), crop="face").clips

    if a.max_clips > 0:
        pick = np.random.default_rng(a.seed + 2)
        sets = {k: (v[np.sort(pick.choice(len(v), a.max_clips, replace=False))] if len(v) > a.max_clips else v)
                for k, v in sets.items()}
    ext = I3DFeatures(a.feature, device)
    ext(test[:1, :16], batch_size=1)  # warm-up (allocations, cuDNN autotune)
    ref, t_ref = features(ext, test, a.cache, a.batch_size)
    rows = [{"set": "test (reference)", "n": len(test), "fvd": 0.0, "i3d_s": t_ref}]
    for name, clips in sets.items():
        f, t = features(ext, clips, a.cache, a.batch_size)
        rows.append({"set": name, "n": len(clips), "fvd": fvd(ref, f), "i3d_s": t})

    print(f"\nFVD(test, X) on {a.data} ({len(test)} test clips), I3D {a.feature}, {device}"
          f"{' (' + torch.cuda.get_device_name() + ')' if device.startswith('cuda') else ''}")
    print(f"{'X':<18}{'clips':>7}{'FVD':>12}{'I3D s':>10}{'s/clip':>9}")
    for r in rows:
        print(f"{r['set']:<18}{r['n']:>7}{r['fvd']:>12.1f}{r['i3d_s']:>10.1f}{r['i3d_s'] / r['n']:>9.3f}")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"data": str(a.data), "feature": a.feature, "device": device,
                                  "torch_threads": torch.get_num_threads(), "rows": rows}, indent=2))
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
