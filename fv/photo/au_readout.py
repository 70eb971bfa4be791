"""Reading a synthetic face's action units from its pixels: a linear (ridge) readout fitted on the synthetic
set's own ground truth (issue 13, `fv render --mode transfer`).

A checkpoint trained on synthetic faces renders the stand-in face in its own domain; what it made is read
back as the action-unit intensities [T, K] the synthetic generator would animate, and the generator's own
motion field for them moves the photo (fv.photo.standin_motion). Reading pixels, not optical flow: on the
generator's 64 px frames DIS flow recovers about half of the true motion (end-point error 0.34 px against
a mean motion of 0.70 px over the test clips' faces) and reads drawn texture as motion; dlib's landmarks on
the same frames point the wrong way for happiness (mean cosine to the true motion -0.15) and fear (0.22).

  features   x_t = downsample_32(frame_t - frame_0) / 255, flattened (F = 32 * 32 * 3 = 3072): the change
             from the clip's neutral frame 0, so the person's own look cancels
  readout    a_t = (x_t - mu) W + b, W = (X^T X + lam I)^-1 X^T (Y - b), X the centred training features,
             Y the training frames' AU intensities, mu and b their means; then a_t - a_0, clipped to [0, 1]
Fitted on the default version-2 set's train split (576 clips, 48 identities, lam = 1) and scored on its test
split (144 clips, 12 other identities), R^2 per AU: AU1 .94, AU2 .96, AU4 .87, AU5 .94, AU6 .93, AU7 .84,
AU9 .90, AU12 .93, AU15 .84, AU16 .88, AU20 .92, AU23 .84, AU26 .96 (mean 0.90; lam 10: 0.90, 100: 0.84).

The shipped readout (fv/assets/au_readout.safetensors, 170 KB) is made by
    python -m fv.photo.au_readout data/synth_v2 fv/assets/au_readout.safetensors
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from fv.engine.assets import SHIPPED as SHIPPED_CHECKPOINTS
from fv.photo.errors import FaceError

FEATURE_SIZE = 32
DEFAULT_LAM = 1.0
SHIPPED = SHIPPED_CHECKPOINTS.parent / "au_readout.safetensors"   # fv/assets


class AUReadoutError(FaceError):
    """A readout that cannot be fitted, read or applied."""


@dataclass(frozen=True)
class AUReadout:
    mean: np.ndarray          # float32 [F]   mean training feature
    weight: np.ndarray        # float32 [F, K]
    bias: np.ndarray          # float32 [K]   mean training AU intensities
    aus: tuple[str, ...]      # the K action units, in the data's order
    version: int              # the synthetic generator version of the faces it was fitted on


def features(video: np.ndarray) -> np.ndarray:
    """float32 [T, F]: each frame's change from frame 0 of uint8 [T, s, s, 3], at 32 px (area), in [-1, 1]."""
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[3] != 3:
        raise AUReadoutError(f"expected a video uint8 [T, s, s, 3], got {video.dtype} {video.shape}")
    small = np.stack([cv2.resize(f, (FEATURE_SIZE, FEATURE_SIZE), interpolation=cv2.INTER_AREA) for f in video])
    x = small.astype(np.float32) / 255.0
    return (x - x[:1]).reshape(len(video), -1)


def fit(clips: np.ndarray, aus: np.ndarray, names, version: int, lam: float = DEFAULT_LAM) -> AUReadout:
    """The ridge readout (module docstring) from clips uint8 [N, T, s, s, 3] and their AUs float [N, T, K]."""
    if aus.shape[:2] != clips.shape[:2]:
        raise AUReadoutError(f"clips {clips.shape[:2]} and AU intensities {aus.shape[:2]} do not match")
    X = np.concatenate([features(np.asarray(c)) for c in clips]).astype(np.float64)
    Y = np.asarray(aus, np.float64).reshape(len(X), -1)
    mu, b = X.mean(0), Y.mean(0)
    Xc = X - mu
    W = np.linalg.solve(Xc.T @ Xc + lam * np.eye(X.shape[1]), Xc.T @ (Y - b))
    return AUReadout(mu.astype(np.float32), W.astype(np.float32), b.astype(np.float32), tuple(names), int(version))


def fit_data(root: str | Path, lam: float = DEFAULT_LAM) -> AUReadout:
    """The readout of a synthetic data set's train split (it must store aus.npy)."""
    from fv.data.layout import load_split
    split = load_split(root, "train")
    if split.aus is None:
        raise AUReadoutError(f"{root}/train has no aus.npy: only a synthetic set stores its action units")
    from fv.engine.config import data_synth_version
    return fit(np.asarray(split.clips64), split.aus, split.meta.get("aus"), data_synth_version(str(root)), lam)


def read(readout: AUReadout, video: np.ndarray) -> np.ndarray:
    """float32 [T, K] in [0, 1]: the AU intensities of each frame of a video uint8 [T, s, s, 3] whose frame 0
    is neutral (module docstring)."""
    a = (features(video) - readout.mean) @ readout.weight + readout.bias
    return np.clip(a - a[:1], 0.0, 1.0).astype(np.float32)


def save(readout: AUReadout, path: str | Path) -> Path:
    from safetensors.numpy import save_file

    from fv.engine.atomic import atomic_path
    meta = {"aus": ",".join(readout.aus), "version": str(readout.version), "feature_size": str(FEATURE_SIZE)}
    with atomic_path(path) as tmp:
        save_file({"mean": readout.mean, "weight": readout.weight, "bias": readout.bias}, str(tmp), metadata=meta)
    return Path(path)


@lru_cache(maxsize=4)
def load(path: str | Path = SHIPPED) -> AUReadout:
    from safetensors import safe_open

    from fv.engine.assets import read_asset

    def readout_of(p: Path) -> tuple[dict, AUReadout]:
        with safe_open(str(p), "np") as f:
            meta, t = f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}
        return meta, AUReadout(t["mean"], t["weight"], t["bias"], tuple(meta["aus"].split(",")), int(meta["version"]))
    meta, readout = read_asset(path, readout_of, AUReadoutError, "AU readout",
                               f"python -m fv.photo.au_readout <synthetic data> {path}")
    if int(meta.get("feature_size", FEATURE_SIZE)) != FEATURE_SIZE:
        raise AUReadoutError(f"{path}: made for {meta['feature_size']} px features, fv reads {FEATURE_SIZE}")
    return readout


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Fit the AU readout on a synthetic data set's train split.")
    ap.add_argument("data", type=Path, help="a synthetic data root (fv data synth) with train/aus.npy")
    ap.add_argument("out", type=Path, help="the .safetensors file to write")
    ap.add_argument("--lam", type=float, default=DEFAULT_LAM, help="ridge strength")
    args = ap.parse_args(argv)
    r = save(fit_data(args.data, args.lam), args.out)
    print(f"wrote {r}")


if __name__ == "__main__":
    main()


__all__ = ["AUReadout", "AUReadoutError", "DEFAULT_LAM", "FEATURE_SIZE", "SHIPPED", "features", "fit", "fit_data",
           "load", "read", "save"]
