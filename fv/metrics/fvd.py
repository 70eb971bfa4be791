"""Fréchet Video Distance: clip preprocessing, I3D features, FVD (thesis 4.4.1, 4.3.1).

Pipeline of the FVD reference (google-research frechet_video_distance, as the thesis ran it):
  clips in [0, 255] -> bilinear resize of every frame to 224x224 -> 2 x / 255 - 1 in [-1, 1]
  -> Kinetics-400 I3D -> the 400 time-averaged logits per clip ("RGB/inception_i3d/Mean")
  -> Gaussians of real and generated features (eq. 4.1) -> Fréchet distance (eq. 4.2).

The reference resizes with TF1's `tf.image.resize_bilinear` (align_corners=False,
half_pixel_centers=False): output pixel o samples input coordinate o * in/out. That legacy mapping
is the default here (resize="tf1"); resize="half_pixel" samples (o + 0.5) in/out - 0.5 as
torch/OpenCV/TF2 do. Resizing is linear with weights summing to 1, so scaling to [-1, 1] first
gives the same numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from fv.engine.atomic import atomic_write
from fv.metrics.frechet import frechet_distance_from_features
from fv.metrics.i3d import INPUT_SIZE, default_weights_path, load_i3d

FEATURES = ("logits", "mixed_5c")
RESIZE_MODES = ("tf1", "half_pixel")
TFHUB_HANDLE = "https://tfhub.dev/deepmind/i3d-kinetics-400/1"
_RANGE_TOL = 1e-3  # the reference asserts values within [-1.001, 1.001]


class ClipFormatError(ValueError):
    """Clips in a layout, dtype or value range that FVD cannot read."""


class TFHubUnavailable(RuntimeError):
    """The optional TF-Hub I3D cannot run here (package or cached module missing)."""


# ---------------------------------------------------------------- preprocessing

def bilinear_matrix(n_in: int, n_out: int, mode: str = "tf1") -> torch.Tensor:
    """[n_out, n_in] interpolation weights of a 1-D bilinear resize; rows sum to 1.

    tf1:        src = o * n_in / n_out                      (TF1 resize_bilinear, legacy)
    half_pixel: src = max((o + 0.5) * n_in / n_out - 0.5, 0)  (torch align_corners=False, OpenCV)
    out[o] = (1 - f) in[floor(src)] + f in[min(floor(src) + 1, n_in - 1)],  f = src - floor(src).
    """
    if mode not in RESIZE_MODES:
        raise ClipFormatError(f"unknown resize mode {mode!r}; choose one of: {', '.join(RESIZE_MODES)}")
    o = torch.arange(n_out, dtype=torch.float64)
    scale = n_in / n_out
    src = o * scale if mode == "tf1" else ((o + 0.5) * scale - 0.5).clamp(min=0.0)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = src - lo
    w = torch.zeros(n_out, n_in, dtype=torch.float64)
    w.index_put_((o.long(), lo), 1.0 - frac, accumulate=True)
    w.index_put_((o.long(), hi), frac, accumulate=True)
    return w


def preprocess_clips(clips: np.ndarray | torch.Tensor, size: int = INPUT_SIZE,
                     resize: str = "tf1") -> torch.Tensor:
    """Clips -> float32 [B, T, size, size, 3] in [-1, 1], the I3D's input (thesis 4.4.1).

    Accepts uint8 [B, T, H, W, 3] (decoded video, x / 127.5 - 1) or float [B, T, 3, H, W] in [-1, 1]
    (fv's model layout). Every frame is resized bilinearly H x W -> size x size (64 -> 224 for fv).
    Runs on the tensor's device.
    """
    x = torch.as_tensor(clips)
    if x.ndim != 5:
        raise ClipFormatError(f"clips must be 5-D, uint8 [B, T, H, W, 3] or float [B, T, 3, H, W]; "
                              f"got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        if x.shape[-1] != 3:
            raise ClipFormatError(f"uint8 clips must be [B, T, H, W, 3] (channels last), got {tuple(x.shape)}")
        x = x.float() / 127.5 - 1.0
    elif x.is_floating_point():
        if x.shape[2] != 3:
            raise ClipFormatError(f"float clips must be [B, T, 3, H, W] in [-1, 1] (fv's layout), got "
                                  f"{tuple(x.shape)}; pass uint8 for channels-last video")
        x = x.float()
        lo, hi = float(x.min()), float(x.max())
        if lo < -1.0 - _RANGE_TOL or hi > 1.0 + _RANGE_TOL:
            raise ClipFormatError(f"float clips must lie in [-1, 1], got [{lo:.3g}, {hi:.3g}]; "
                                  "pass uint8 for 0..255 video")
        x = x.permute(0, 1, 3, 4, 2)  # [B, T, 3, H, W] -> [B, T, H, W, 3]
    else:
        raise ClipFormatError(f"clips must be uint8 or float, got {x.dtype}")
    h, w = x.shape[2], x.shape[3]
    if (h, w) == (size, size):
        return x.contiguous()
    ah = bilinear_matrix(h, size, resize).to(x.device, torch.float32)  # [size, H]
    aw = bilinear_matrix(w, size, resize).to(x.device, torch.float32)  # [size, W]
    # Separable resize of every frame: out[b,t,o,p,c] = sum_h,w Ah[o,h] x[b,t,h,w,c] Aw[p,w].
    return torch.einsum("oh,bthwc,pw->btopc", ah, x, aw).contiguous()


# ---------------------------------------------------------------- features

@contextlib.contextmanager
def _ieee_fp32(device: torch.device) -> Iterator[None]:
    """Full fp32 convolutions on CUDA (cuDNN's TF32 default would cost ~1e-3 relative error)."""
    if device.type != "cuda":
        yield
        return
    conv = getattr(torch.backends.cudnn, "conv", None)
    owner, flag, value = ((conv, "fp32_precision", "ieee") if hasattr(conv, "fp32_precision")
                          else (torch.backends.cudnn, "allow_tf32", False))  # torch < 2.9
    old = getattr(owner, flag)
    setattr(owner, flag, value)
    try:
        yield
    finally:
        setattr(owner, flag, old)


def _batches(n: int, batch_size: int, progress: bool, what: str) -> Iterator[slice]:
    from rich.progress import track  # only where features are computed

    starts = range(0, n, batch_size)
    for s in track(starts, description=what, disable=not progress, transient=True):
        yield slice(s, min(s + batch_size, n))


def _n_clips(clips: np.ndarray | torch.Tensor, batch_size: int) -> int:
    if batch_size < 1:
        raise ClipFormatError(f"batch_size must be >= 1, got {batch_size}")
    if getattr(clips, "ndim", 0) != 5 or clips.shape[0] < 1:
        shape = tuple(getattr(clips, "shape", ()))
        raise ClipFormatError(f"clips must be a non-empty 5-D array, got shape {shape}")
    return int(clips.shape[0])


class I3DFeatures:
    """Kinetics-400 I3D features of clips: `feature="logits"` ([B, 400], as the FVD reference)
    or `"mixed_5c"` ([B, 1024] global average pool, the layer the thesis text names)."""

    def __init__(self, feature: str = "logits", device: str | torch.device = "cpu",
                 weights_path: str | Path | None = None, resize: str = "tf1", progress: bool = False):
        if feature not in FEATURES:
            raise ClipFormatError(f"unknown I3D feature {feature!r}; choose one of: {', '.join(FEATURES)}")
        if resize not in RESIZE_MODES:
            raise ClipFormatError(f"unknown resize mode {resize!r}; choose one of: {', '.join(RESIZE_MODES)}")
        self.feature, self.resize, self.progress = feature, resize, progress
        self.device = torch.device(device)
        self.model = load_i3d(weights_path, self.device)
        self._weights_path = weights_path
        self._key: str | None = None

    @property
    def key(self) -> str:
        """Identity of what this extractor computes: backend, feature, resize, sha256 of the weights."""
        if self._key is None:
            path = Path(self._weights_path) if self._weights_path is not None else default_weights_path()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            self._key = f"torch-i3d/{self.feature}/{self.resize}/{digest}"
        return self._key

    def __call__(self, clips: np.ndarray | torch.Tensor, batch_size: int = 8) -> np.ndarray:
        """clips (see preprocess_clips) -> float32 features [B, 400] or [B, 1024]."""
        n = _n_clips(clips, batch_size)
        out = []
        with torch.inference_mode(), _ieee_fp32(self.device):
            for sl in _batches(n, batch_size, self.progress, f"I3D {self.feature}"):
                x = preprocess_clips(torch.as_tensor(clips[sl]).to(self.device), resize=self.resize)
                logits, mixed = self.model(x)
                out.append((logits if self.feature == "logits" else mixed).float().cpu().numpy())
        return np.concatenate(out, axis=0)


class TFHubI3D:
    """The thesis' original path: TF-Hub `deepmind/i3d-kinetics-400/1` logits [B, 400] (needs
    tensorflow + tensorflow_hub and the module already in the TF-Hub cache; never downloads)."""

    feature = "logits"

    def __init__(self, module_dir: str | Path | None = None, resize: str = "tf1", progress: bool = False):
        if resize not in RESIZE_MODES:
            raise ClipFormatError(f"unknown resize mode {resize!r}; choose one of: {', '.join(RESIZE_MODES)}")
        missing = [m for m in ("tensorflow", "tensorflow_hub") if importlib.util.find_spec(m) is None]
        if missing:
            raise TFHubUnavailable(f"the TF-Hub I3D needs {' and '.join(missing)} (pip install tensorflow "
                                   "tensorflow-hub); the default PyTorch I3D needs neither")
        path = Path(module_dir) if module_dir is not None else tfhub_module_dir()
        if not (path / "saved_model.pb").is_file():
            raise TFHubUnavailable(f"TF-Hub module {TFHUB_HANDLE} is not cached at {path}; unpack "
                                   f"{TFHUB_HANDLE}?tf-hub-format=compressed there (or set TFHUB_CACHE_DIR)")
        import tensorflow_hub as hub

        self.resize, self.progress, self.key = resize, progress, f"tfhub-i3d/logits/{resize}/{path}"
        self._fn = hub.load(str(path)).signatures["default"]
        self._input = next(iter(self._fn.structured_input_signature[1]))  # the module's single input

    def __call__(self, clips: np.ndarray | torch.Tensor, batch_size: int = 16) -> np.ndarray:
        """clips (see preprocess_clips) -> float32 logits [B, 400]."""
        import tensorflow as tf

        n = _n_clips(clips, batch_size)
        out = []
        for sl in _batches(n, batch_size, self.progress, "TF-Hub I3D"):
            x = preprocess_clips(torch.as_tensor(clips[sl]), resize=self.resize).numpy()
            res = self._fn(**{self._input: tf.constant(x)})
            out.append(np.asarray(res["default"] if "default" in res else next(iter(res.values())), np.float32))
        return np.concatenate(out, axis=0)


def tfhub_module_dir(cache_dir: str | Path | None = None) -> Path:
    """Where tensorflow_hub caches the I3D module: $TFHUB_CACHE_DIR/sha1(handle)."""
    root = cache_dir or os.environ.get("TFHUB_CACHE_DIR")
    if not root:
        raise TFHubUnavailable("TFHUB_CACHE_DIR is not set; point it at the TF-Hub cache that holds "
                               f"{TFHUB_HANDLE} (or pass module_dir=)")
    return Path(root) / hashlib.sha1(TFHUB_HANDLE.encode("utf8")).hexdigest()


def cached_features(extractor: I3DFeatures | TFHubI3D, clips: np.ndarray | torch.Tensor,
                    cache_dir: str | Path, batch_size: int = 8) -> np.ndarray:
    """extractor(clips), stored in cache_dir under a sha256 of (extractor.key, clip dtype, shape, bytes).

    The key is saved inside the file and checked on load, so a stale or foreign file is recomputed.
    """
    arr = clips.detach().cpu().numpy() if isinstance(clips, torch.Tensor) else np.asarray(clips)
    h = hashlib.sha256(extractor.key.encode())
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(np.ascontiguousarray(arr).data)
    key = h.hexdigest()
    path = Path(cache_dir) / f"i3d_{key[:32]}.npz"
    if path.is_file():
        try:
            with np.load(path) as f:
                if str(f["key"]) == key:
                    return f["features"]
        except (OSError, KeyError, ValueError):
            pass  # unreadable or foreign entry: recompute and overwrite
    feats = extractor(arr, batch_size=batch_size)
    # atomic: a crash never leaves a half-written cache entry
    atomic_write(path, lambda tmp: np.savez(tmp, features=feats, key=np.array(key)))
    return feats


# ---------------------------------------------------------------- FVD

def fvd(real_feats: np.ndarray, gen_feats: np.ndarray) -> float:
    """FVD (eq. 4.2) between real [N1, D] and generated [N2, D] I3D features."""
    return frechet_distance_from_features(real_feats, gen_feats)


def fvd_from_clips(real: np.ndarray | torch.Tensor, gen: np.ndarray | torch.Tensor,
                   extractor: I3DFeatures | TFHubI3D | None = None, batch_size: int = 8,
                   feature: str = "logits", device: str | torch.device = "cpu") -> float:
    """FVD between two clip sets (layouts as in preprocess_clips); builds an I3DFeatures if none is given."""
    extractor = extractor or I3DFeatures(feature=feature, device=device)
    return fvd(extractor(real, batch_size=batch_size), extractor(gen, batch_size=batch_size))
