"""One I/O spec per exported network (STYLE practice 8): names, dynamic axes, TensorRT profiles and
sample inputs are all derived from the same frozen dataclass.

Each model family declares the networks it exports, with their specs, in its own module
(fv.engine.families.gan, fv.engine.families.diffusion); `fv.engine.families.network_specs(config)` gives a
setting's. The batch axis "B" is the one dynamic axis everywhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import torch

BATCH = "B"          # the one dynamic axis
DTYPES = {"float32": torch.float32, "int64": torch.int64}
# What a valid value of an input looks like (sample_inputs draws from it):
#   normal   N(0, 1)            (noise, h0, motion codes, features)
#   image    U(-1, 1)           (pixels live in [-1, 1])
#   one_hot  one row of I_7     (category / emotion z_a)
#   timestep integer U{0..high-1} (DDPM step t, high = L)
VALUE_KINDS = ("normal", "image", "one_hot", "timestep")


class SpecError(ValueError):
    """Feeds that do not match a network's I/O spec, or a config with no exportable networks."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: shape entries are ints (fixed) or axis names (dynamic, e.g. "B")."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"      # a key of DTYPES (strings keep the spec JSON-able and hashable)
    values: str = "normal"      # a VALUE_KINDS entry (inputs only)
    high: int = 0               # timestep: exclusive upper bound L

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def concrete(self, batch: int) -> tuple[int, ...]:
        """The shape with every dynamic axis set to `batch`."""
        return tuple(batch if isinstance(d, str) else d for d in self.shape)

    def dynamic(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    def sample(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        shape = self.concrete(batch)
        if self.values == "timestep":
            return torch.randint(0, self.high, shape, generator=generator, dtype=torch.int64)
        if self.values == "one_hot":
            idx = torch.randint(0, shape[-1], shape[:-1], generator=generator)
            return torch.nn.functional.one_hot(idx, shape[-1]).to(self.torch_dtype)
        if self.values == "image":
            return (torch.rand(shape, generator=generator) * 2 - 1).to(self.torch_dtype)
        return torch.randn(shape, generator=generator).to(self.torch_dtype)

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "values": self.values,
                "high": self.high}


@dataclass(frozen=True)
class NetworkSpec:
    """Inputs and outputs of one exported network, in the order its module's forward takes / returns them.

    batch_range (min, opt, max) is the default TensorRT optimisation profile over the batch axis; its
    meaning per network: motion / face_encoder = videos, generator = frames, denoiser = frames x 2
    (guidance doubles the batch; 512 = 8 videos x 32 frames x 2)."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    batch_range: tuple[int, int, int] = (1, 16, 256)

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """torch.onnx.export's dynamic_axes: {tensor name: {axis index: axis name}}."""
        return {s.name: s.dynamic() for s in (*self.inputs, *self.outputs) if s.dynamic()}

    def sample_inputs(self, batch: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Fresh valid inputs (one-hot categories, t in [0, L-1], pixels in [-1, 1]) at this batch size."""
        return {s.name: s.sample(batch, generator) for s in self.inputs}

    def trt_profile(self, min_b: int | None = None, opt_b: int | None = None,
                    max_b: int | None = None) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """{input name: (min shape, opt shape, max shape)} for a TensorRT optimisation profile."""
        lo, mid, hi = (d if v is None else v for v, d in zip((min_b, opt_b, max_b), self.batch_range))
        if not 1 <= lo <= mid <= hi:
            raise SpecError(f"{self.name}: profile batches need 1 <= min <= opt <= max, got {lo}, {mid}, {hi}")
        return {s.name: (s.concrete(lo), s.concrete(mid), s.concrete(hi)) for s in self.inputs}

    def output_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        return {s.name: s.concrete(batch) for s in self.outputs}

    def check_feeds(self, feeds: dict[str, torch.Tensor]) -> int:
        """The batch size of `feeds`; SpecError naming the first input that does not fit the spec."""
        missing = [n for n in self.input_names if n not in feeds]
        extra = [n for n in feeds if n not in self.input_names]
        if missing or extra:
            raise SpecError(f"{self.name} takes inputs {self.input_names}; missing {missing}, unexpected {extra}")
        batch = None
        for s in self.inputs:
            x = feeds[s.name]
            if x.dim() != len(s.shape):
                raise SpecError(f"{self.name}.{s.name} must have shape {list(s.shape)}, got {list(x.shape)}")
            for want, got in zip(s.shape, x.shape):
                if isinstance(want, str):
                    batch = got if batch is None else batch
                    if got != batch:
                        raise SpecError(f"{self.name}.{s.name}: batch {got} differs from the other inputs' {batch}")
                elif want != got:
                    raise SpecError(f"{self.name}.{s.name} must have shape {list(s.shape)}, got {list(x.shape)}")
            if x.dtype != s.torch_dtype:
                raise SpecError(f"{self.name}.{s.name} must be {s.dtype}, got {str(x.dtype).replace('torch.', '')}")
        return int(batch or 0)

    def to_dict(self) -> dict:
        return {"name": self.name, "inputs": [s.to_dict() for s in self.inputs],
                "outputs": [s.to_dict() for s in self.outputs], "batch_range": list(self.batch_range)}

    def digest(self) -> str:
        """sha256 of the spec's canonical JSON (part of every artefact key)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def tensor(name: str, *shape: int | str, values: str = "normal", high: int = 0, dtype: str = "float32") -> TensorSpec:
    return TensorSpec(name, tuple(shape), dtype, values, high)
