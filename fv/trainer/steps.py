"""The trainer's step of each model family (fv.engine.families): `Family.name` -> its step class.

A step owns its losses and optimisers and returns a loss dict (STYLE practice 7); the loop around it is
fv.trainer.loop. A new family adds its step here.
"""

from __future__ import annotations

from fv.engine.config import RunConfig
from fv.engine.families import family_of
from fv.trainer.diffusion_step import DiffusionStep
from fv.trainer.embedder_step import EmbedderStep
from fv.trainer.gan_step import GANStep
from fv.trainer.lfdm_step import LFDMStep

STEPS = {"gan": GANStep, "diffusion": DiffusionStep, "embedder": EmbedderStep, "lfdm": LFDMStep}


def step_class(config: RunConfig):
    return STEPS[family_of(config).name]
