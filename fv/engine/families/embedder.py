"""The embedder family: both_retrievedMcs' expression embedder (thesis 2.5.1, 3.4), trained by `fv train embedder`.

Modules: net (fv.engine.models.fecnet.ExpressionEmbedder). Exported network (batch axis B, frames):
    embedder   frames [B,3,S,S] in [-1, 1] -> embedding [B,D], unit norm
It makes no videos: it is the frozen network behind both_retrievedMcs' motion codes
(fv.trainer.expression_bank), and it is not the classifier that scores AEA/DEA (fv.metrics.emotion).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from fv.engine.config import ConfigError, RunConfig
from fv.engine.iospec import NetworkSpec, tensor
from fv.engine.models.fecnet import ExpressionEmbedder


def embedder_spec(config: RunConfig) -> NetworkSpec:
    m = config.model
    S = m.image_size
    return NetworkSpec("embedder", (tensor("frames", "B", 3, S, S, values="image"),),
                       (tensor("embedding", "B", m.dim),), batch_range=(1, 512, 2048))


def _no_videos() -> ConfigError:
    return ConfigError("an expression-embedder checkpoint renders no videos; it makes both_retrievedMcs' motion "
                       "codes (fv train both_retrievedMcs --embedder fecnet:CHECKPOINT)")


class EmbedderFamily:
    name = "embedder"

    def build(self, config: RunConfig) -> nn.ModuleDict:
        m = config.model
        return nn.ModuleDict({"net": ExpressionEmbedder(tuple(m.channels), m.dim)})

    def network_specs(self, config: RunConfig) -> dict[str, NetworkSpec]:
        return {"embedder": embedder_spec(config)}

    def network_modules(self, config: RunConfig, model: nn.ModuleDict) -> dict[str, nn.Module]:
        return {"embedder": model["net"]}

    def sample_options(self, config: RunConfig, **overrides):
        raise _no_videos()

    def renderer(self, config: RunConfig, nets, options, state, device):
        raise _no_videos()

    def motion_setting(self, config: RunConfig) -> None:
        return None

    def fresh_run(self, config: RunConfig, motion) -> RunConfig:
        return config

    def fine_tune(self, config: RunConfig, initial: RunConfig, init: Path, motion) -> tuple[RunConfig, tuple[str, ...]]:
        """The architecture is the initial checkpoint's; the similarity is the new data's (an embedder of the
        synthetic set's action units goes on with MUG's labels)."""
        return config.replace(model=dataclasses.replace(initial.model, similarity="")), ()

    def with_objective(self, config: RunConfig, name: str) -> RunConfig:
        raise ConfigError(f"--{name.split('-')[0]} is for the diffusion settings, not {config.setting}")

    def with_embedder(self, config: RunConfig, name: str) -> RunConfig:
        raise ConfigError(f"--embedder is for both_retrievedMcs, not {config.setting}")
