"""One I/O spec per exported network (STYLE practice 8): names, dynamic axes, TensorRT profiles and
sample inputs are all derived from the same frozen dataclass.

Networks (batch axis "B" dynamic everywhere; see notes/networks.md):
    motion        MotionGRU R           noise [B,T,Dm], h0 [B,Dm], category [B,7]           -> codes [B,T,Dm]
    generator     FrameGenerator G_I    x_ref [B,3,S,S], motion [B,Dm], category [B,7]     -> frame [B,3,S,S]
    face_encoder  U-Net Face Encoder    x_ref [B,3,S,S]                -> ref_l [B,face_ch[l],S/2^l,S/2^l], l<L
    denoiser      FeatureDenoiser       x_t [B,3,S,S], t int64 [B], motion [B,W,Dm], emotion [B,7], ref_0..ref_{L-1}
                                                                                            -> eps [B,3,S,S]
GAN settings export motion + generator, onlyDM / EM-DM motion + face_encoder + denoiser,
both_retrievedMcs face_encoder + denoiser (its motion codes come from a bank of real trajectories).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import torch
from torch import nn

from fv.engine.config import GANConfig, RunConfig

BATCH = "B"          # the one dynamic axis
IMAGE_SIZE = 64      # GAN frames are 64x64 (thesis 4.2); the U-Net's size comes from its config
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


def _f(name: str, *shape: int | str, values: str = "normal", high: int = 0, dtype: str = "float32") -> TensorSpec:
    return TensorSpec(name, tuple(shape), dtype, values, high)


def motion_spec(m: GANConfig) -> NetworkSpec:
    """R (thesis 2.2.1 / 3.1.1): noise e_t [B,T,10], h0 [B,10], z_a [B,7] -> h_1..h_T [B,T,10]."""
    T, D, C = m.n_frames, m.dim_z_motion, m.n_classes
    return NetworkSpec("motion",
                       (_f("noise", BATCH, T, D), _f("h0", BATCH, D), _f("category", BATCH, C, values="one_hot")),
                       (_f("codes", BATCH, T, D),), batch_range=(1, 16, 256))


def generator_spec(m: GANConfig, size: int = IMAGE_SIZE) -> NetworkSpec:
    """G_I (thesis 2.2.1): one frame per (f(0), motion code, category); onlyEM ignores the category."""
    return NetworkSpec("generator",
                       (_f("x_ref", BATCH, 3, size, size, values="image"), _f("motion", BATCH, m.dim_z_motion),
                        _f("category", BATCH, m.n_classes, values="one_hot")),
                       (_f("frame", BATCH, 3, size, size),), batch_range=(1, 256, 1024))


def face_encoder_spec(u) -> NetworkSpec:
    """Face Encoder (thesis 3.2.2): x_ref -> one identity feature map per U-Net level."""
    S = u.image_size
    refs = tuple(_f(f"ref_{lvl}", BATCH, ch, S >> lvl, S >> lvl) for lvl, ch in enumerate(u.face_ch))
    return NetworkSpec("face_encoder", (_f("x_ref", BATCH, u.in_ch, S, S, values="image"),), refs,
                       batch_range=(1, 16, 256))


def denoiser_spec(u, num_steps: int) -> NetworkSpec:
    """eps_theta(x_t, t, motion window, z_a, identity features) (thesis 3.2.2); t in [0, L-1]."""
    S = u.image_size
    refs = tuple(_f(f"ref_{lvl}", BATCH, ch, S >> lvl, S >> lvl) for lvl, ch in enumerate(u.face_ch))
    inputs = (_f("x_t", BATCH, u.in_ch, S, S), _f("t", BATCH, values="timestep", high=num_steps, dtype="int64"),
              _f("motion", BATCH, u.window, u.motion_dim), _f("emotion", BATCH, u.n_classes, values="one_hot"),
              *refs)
    return NetworkSpec("denoiser", inputs, (_f("eps", BATCH, u.in_ch, S, S),), batch_range=(1, 128, 512))


def network_specs(config: RunConfig) -> dict[str, NetworkSpec]:
    """The exported networks of a setting, by name (see the module docstring)."""
    m = config.model
    if isinstance(m, GANConfig):
        return {"motion": motion_spec(m), "generator": generator_spec(m)}
    specs = {}
    if m.motion_source == "gru":
        if m.motion is None:
            raise SpecError(f"{config.setting}: a gru-driven diffusion config without the GRU's config (motion)")
        specs["motion"] = motion_spec(m.motion)
    specs["face_encoder"] = face_encoder_spec(m.unet)
    specs["denoiser"] = denoiser_spec(m.unet, m.num_steps)
    return specs


def network_modules(config: RunConfig, model: nn.ModuleDict) -> dict[str, nn.Module]:
    """The exportable module per network name: forward(*inputs in spec order) -> outputs in spec order."""
    from fv.engine.models.unet import FeatureDenoiser

    mods: dict[str, nn.Module] = {}
    for name in network_specs(config):
        if name == "motion":
            mods[name] = model["R"]
        elif name == "generator":
            mods[name] = model["G"]
        elif name == "face_encoder":
            mods[name] = model["unet"].face_encoder   # = ConditionalUNet.encode_reference without eager checks
        else:
            mods[name] = FeatureDenoiser(model["unet"])
    return mods
