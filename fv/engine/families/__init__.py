"""Model families: one module per family owns everything its settings differ in (STYLE practice 16).

    gan        baseline, onlyEM (thesis 2.2, 3.1)         fv.engine.families.gan
    diffusion  onlyDM, EM-DM, both_retrievedMcs (3.2-3.4)  fv.engine.families.diffusion
    lfdm       LFDM, the external reference (2.3)          fv.engine.families.lfdm
    embedder   embedder, both_retrievedMcs' expression     fv.engine.families.embedder
               embedder (2.5.1); renders no videos

A family builds the modules from the config, declares the networks it exports (their I/O specs and the
module behind each), derives its sampling options, and makes the `Renderer` that turns a chunk of requests
into videos from a set of networks, whatever runs them (torch modules, ONNX Runtime or TensorRT: keyword
callables returning dicts, fv.engine.engine.Network). It also answers what a training run needs from it
(fresh, fine-tuned, objective). The engine, the exporter, `fv bench`, the trainer loop and the preview call
these and never ask which family they hold; the trainer's per-family step is chosen by `Family.name`
(fv.trainer.steps). A new family is a new module here plus its entry in FAMILIES.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from fv.engine.config import RunConfig
from fv.engine.families.diffusion import DiffusionFamily
from fv.engine.families.embedder import EmbedderFamily
from fv.engine.families.gan import GANFamily
from fv.engine.families.lfdm import LFDMFamily
from fv.engine.iospec import NetworkSpec
from fv.engine.sample_options import SampleOptions

Tick = Callable[[], None]
Nets = dict[str, Callable[..., dict[str, torch.Tensor]]]   # network name -> net(**feeds) -> outputs
State = Callable[[str], dict[str, torch.Tensor]]           # module name -> its tensors (for non-networks)


class Renderer(Protocol):
    """Renders chunks of whole videos for one checkpoint on one set of networks."""
    image_size: int
    rows_per_frame: int     # network rows per frame in one call (2 with classifier-free guidance)
    steps: int              # network steps per chunk (progress ticks)

    def __call__(self, x_ref: torch.Tensor, emotions: torch.Tensor, seeds: list[int],
                 tick: Tick) -> torch.Tensor: ...   # [n, 3, S, S], [n], n seeds -> videos [n, T, 3, S, S]


class Family(Protocol):
    name: str

    def build(self, config: RunConfig) -> nn.ModuleDict: ...
    def network_specs(self, config: RunConfig) -> dict[str, NetworkSpec]: ...
    def network_modules(self, config: RunConfig, model: nn.ModuleDict) -> dict[str, nn.Module]: ...
    def sample_options(self, config: RunConfig, **overrides) -> SampleOptions | None: ...
    def renderer(self, config: RunConfig, nets: Nets, options: SampleOptions | None, state: State,
                 device: torch.device) -> Renderer: ...
    def motion_setting(self, config: RunConfig) -> str | None: ...   # whose GRU a fresh run needs
    def fresh_run(self, config: RunConfig, motion: tuple[RunConfig, Path] | None) -> RunConfig: ...
    def fine_tune(self, config: RunConfig, initial: RunConfig, init: Path,
                  motion: tuple[RunConfig, Path] | None) -> tuple[RunConfig, tuple[str, ...]]: ...
    def with_objective(self, config: RunConfig, name: str) -> RunConfig: ...
    def with_embedder(self, config: RunConfig, name: str) -> RunConfig: ...   # both_retrievedMcs' motion codes


FAMILIES: dict[str, Family] = {"GANConfig": GANFamily(), "DiffusionConfig": DiffusionFamily(),
                               "LFDMConfig": LFDMFamily(), "EmbedderConfig": EmbedderFamily()}


def family_of(config: RunConfig) -> Family:
    """The family of a setting's config (by the type of its model config)."""
    return FAMILIES[type(config.model).__name__]


def build_model(config: RunConfig) -> nn.ModuleDict:
    """The modules of a setting from its config (the inverse of what a checkpoint stores)."""
    return family_of(config).build(config)


def network_specs(config: RunConfig) -> dict[str, NetworkSpec]:
    """The exported networks of a setting, by name."""
    return family_of(config).network_specs(config)


def network_modules(config: RunConfig, model: nn.ModuleDict) -> dict[str, nn.Module]:
    """The exportable module per network name: forward(*inputs in spec order) -> outputs in spec order."""
    return family_of(config).network_modules(config, model)
