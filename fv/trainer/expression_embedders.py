"""The expression embedders both_retrievedMcs' motion codes can come from (thesis 3.4), by name.

    fecnet-fv16          fv's FECNet-style embedder (fv.engine.models.fecnet), 16-D, shipped as
                         fv/assets/checkpoints/fecnet-fv16.safetensors (`fv train embedder` on the synthetic
                         set; the README gives the command). The default since issue 15.
    fecnet:PATH          any checkpoint of `fv train embedder` (e.g. runs/embedder/last.safetensors)
    fer2013-wtf-spcaD    the FER2013 CNN's penultimate features (fv.metrics.expression), subject-centred,
    fer2013-wtf-pcaD     or not, reduced to D by whitened PCA (fv.trainer.expression_bank)
The FER2013 CNN is also the classifier that scores AEA/DEA (fv.metrics.emotion): with its codes the judge
drives the setting it judges. It was the default before issue 15 and stays for the configs that name it.
The FECNet-style embedder is trained here, by triplets of faces, and shares nothing with that classifier.
Their codes on synthetic version 2's 12 held-out identities (benchmarks/embedder_quality.py; apex emotion by
nearest centroid of the training split's codes, and the share of held-out AU-mined triplets ordered right):
                           apex   triplets   AU R^2
    fecnet-fv16            0.90     0.94      0.73
    fer2013-wtf-spca16     0.95     0.78      0.77
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fv.data.layout import VideoSplit, to_model_range
from fv.engine.assets import SHIPPED
from fv.engine.config import ConfigError

DEFAULT_EMBEDDER = "fecnet-fv16"          # D = 16, FECNet's width and the presets' unet.motion_dim
FER_EMBEDDER = "fer2013-wtf-spca16"       # the default before issue 15
_FER = re.compile(r"^fer2013-wtf-(s?)pca(\d+)$")
_FECNET = re.compile(r"^fecnet-fv(\d+)$")


class ExpressionBankError(ConfigError):
    """A motion bank, embedder name or mixing request that does not fit."""


@dataclass(frozen=True)
class EmbedderSpec:
    name: str
    subject_centred: bool
    dim: int | None              # None: a fecnet:PATH checkpoint's own width
    network: str = "fer2013"     # "fer2013" | "fecnet"
    path: Path | None = None     # fecnet: the embedder checkpoint

    @property
    def whitened(self) -> bool:
        """FER features: whitened PCA. FECNet-style embeddings: one scale for all axes, so the distances its
        triplets trained stay (fv.trainer.expression_bank.ExpressionProjection)."""
        return self.network != "fecnet"


def parse_embedder(name: str) -> EmbedderSpec:
    """'fer2013-wtf-spca16' -> EmbedderSpec(name, subject_centred=True, dim=16); 'fecnet-fv16' -> the shipped
    FECNet-style checkpoint; 'fecnet:PATH' -> that checkpoint. Syntax only: `check_embedder` looks at files."""
    raw = str(name).strip()
    if raw.lower().startswith("fecnet:") and raw[7:].strip():
        return EmbedderSpec(raw, True, None, "fecnet", Path(raw[7:].strip()))
    low = raw.lower()
    if (m := _FECNET.match(low)) is not None:
        return EmbedderSpec(low, True, int(m.group(1)), "fecnet", SHIPPED / f"{low}.safetensors")
    m = _FER.match(low)
    if m is None or int(m.group(2)) < 1:
        raise ExpressionBankError(f"unknown expression embedder {name!r}; use {DEFAULT_EMBEDDER} (fv's FECNet-style "
                                  f"embedder), fecnet:CHECKPOINT (one of `fv train embedder`), or "
                                  f"fer2013-wtf-spcaD / fer2013-wtf-pcaD (the AEA classifier's features)")
    return EmbedderSpec(m.group(0), m.group(1) == "s", int(m.group(2)))


def check_embedder(name: str) -> EmbedderSpec:
    """The spec of `name` with its checkpoint checked (present, an embedder, of the named width): one-line
    ExpressionBankError naming the path otherwise. Reads metadata only."""
    spec = parse_embedder(name)
    if spec.network != "fecnet":
        return spec
    from fv.engine.backends.artifacts import read_config
    from fv.engine.checkpoint import CheckpointError
    if not spec.path.is_file():
        how = ("fv ships it; reinstall fv or make it with `fv train embedder` (README)" if spec.path.parent == SHIPPED
               else "train one with `fv train embedder`")
        raise ExpressionBankError(f"expression embedder {spec.name}: checkpoint {spec.path} does not exist; {how}")
    try:
        config = read_config(spec.path)
    except (CheckpointError, ConfigError, KeyError, ValueError) as e:
        raise ExpressionBankError(f"expression embedder {spec.name}: {spec.path} is not a readable fv checkpoint "
                                  f"({' '.join(str(e).splitlines())})") from None
    if config.setting != "embedder":
        raise ExpressionBankError(f"expression embedder {spec.name}: {spec.path} is a {config.setting} checkpoint, "
                                  f"not one of `fv train embedder`")
    if spec.dim is not None and config.model.dim != spec.dim:
        raise ExpressionBankError(f"expression embedder {spec.name}: {spec.path} makes {config.model.dim}-D codes")
    return EmbedderSpec(spec.name, spec.subject_centred, config.model.dim, "fecnet", spec.path)


class FECNetFeatures:
    """An embedder checkpoint of `fv train embedder` (EMA weights): frames uint8 [N, S, S, 3] -> float32 [N, D]."""

    title = "FECNet-style embeddings"

    def __init__(self, path: str | Path, device: str = "cpu", batch_size: int = 512):
        from fv.engine.checkpoint import load_checkpoint
        config, model = load_checkpoint(path, device, settings=("embedder",))
        self.net = model["net"].requires_grad_(False)
        self.dim, self.size = int(config.model.dim), int(config.model.image_size)
        self.device, self.batch_size = torch.device(device), int(batch_size)

    def clips(self, data: VideoSplit) -> tuple[np.ndarray, str]:
        return data.clips64, "clips64"

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[1:] != (self.size, self.size, 3) or frames.dtype != np.uint8:
            raise ExpressionBankError(f"the embedder takes uint8 [N, {self.size}, {self.size}, 3] faces, "
                                      f"got {frames.dtype} {list(frames.shape)}")
        out = np.empty((len(frames), self.dim), np.float32)
        for s in range(0, len(frames), self.batch_size):
            x = to_model_range(np.array(frames[s:s + self.batch_size])).to(self.device)   # [b, 3, S, S] (a copy:
            # memory-mapped clips are read-only)
            out[s:s + len(x)] = self.net(x).cpu().numpy()
        return out


class FERFeatures:
    """The FER2013 CNN's penultimate layer (fv.metrics.expression): frames -> float32 [N, 304]."""

    title = "FER2013-CNN features"

    def __init__(self):
        from fv.metrics.expression import default_features
        self.net = default_features()
        self.dim = self.net.dim

    def clips(self, data: VideoSplit) -> tuple[np.ndarray, str]:
        """clips224 (eye-aligned, thesis 3.4.1) where the data set has them, else clips64 (the FER window of
        the face-centred 64 crop, 45 px, upsampled to 48)."""
        return (data.clips224, "clips224") if data.clips224 is not None else (data.clips64, "clips64")

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return self.net(frames)


def frame_network(spec: EmbedderSpec) -> FECNetFeatures | FERFeatures:
    """The frozen network behind an embedder name."""
    return FECNetFeatures(check_embedder(spec.name).path) if spec.network == "fecnet" else FERFeatures()
