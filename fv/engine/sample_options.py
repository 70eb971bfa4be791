"""How a diffusion setting samples: one frozen dataclass, stored in the config, validated once.

`DiffusionConfig.sampling` holds the checkpoint's defaults; the engine, `fv render`, `fv render-set`,
`fv bench` and the training preview derive their options from it with `SampleOptions.replace`, and every
one of them is checked by the same `__post_init__`. The respacing spec is checked against the schedule's
length by `check_steps` (the config knows L; the options alone do not).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from fv.engine.diffusion import TimestepSpecError, timestep_pairs
from fv.engine.requests import EngineError
from fv.engine.samplers import MULTISTEP, SAMPLERS
FRAME_NOISE = ("video", "frame")


@dataclass(frozen=True)
class SampleOptions:
    sampler: str = "ddim"        # "ddpm" (ancestral) | "ddim" | "dpmpp2m" (DPM-Solver++(2M)) | "unipc"
    steps: int | str = 50        # respacing spec (fv.engine.diffusion.space_timesteps); the thesis used 1000
    eta: float = 0.0             # DDIM's eta; 0 = deterministic
    guidance: float = 2.0        # eps = eps_u + g (eps_c - eps_u); 1 = conditional only
    clip_x0: float | None = 1.0  # clip the predicted x0 to [-c, c] (pixels live in [-1, 1])
    # "video": one x_T (and one z per step) per video, shared by its 32 frames, so frames differ only
    # through their conditioning (fv's default: steadier colour and identity across frames);
    # "frame": independent noise per frame. The thesis does not say which it used.
    frame_noise: str = "video"
    # 1.0: start from pure noise at t = L-1 (the thesis). s < 1: start from the neutral reference noised
    # to t = s (L-1) (SDEdit, Meng et al. 2022): identity and colours come from the reference, the model
    # adds the expression. fv's demo preset uses 0.5.
    ref_strength: float = 1.0

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise EngineError(f"unknown sampler {self.sampler!r}; choose one of: {', '.join(SAMPLERS)}")
        if self.frame_noise not in FRAME_NOISE:
            raise EngineError(f"unknown frame noise {self.frame_noise!r}; choose one of: {', '.join(FRAME_NOISE)}")
        if not isinstance(self.eta, (int, float)) or not math.isfinite(self.eta) or self.eta < 0:
            raise EngineError(f"eta must be a finite number >= 0, got {self.eta}")
        if self.eta > 0 and self.sampler in MULTISTEP:
            raise EngineError(f"{self.sampler} is deterministic: --eta applies to ddim only (got {self.eta})")
        if not isinstance(self.guidance, (int, float)) or not math.isfinite(self.guidance):
            raise EngineError(f"guidance must be a finite number, got {self.guidance}")
        if not isinstance(self.ref_strength, (int, float)) or not 0.0 < self.ref_strength <= 1.0:
            raise EngineError(f"ref_strength must be in (0, 1], got {self.ref_strength}")
        if self.clip_x0 is not None and not (math.isfinite(self.clip_x0) and self.clip_x0 > 0):
            raise EngineError(f"clip_x0 must be a positive number or None, got {self.clip_x0}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, (int, str)):
            raise EngineError(f"steps must be an int or a spec like 'ddim50', got {self.steps!r}")

    def replace(self, **overrides) -> SampleOptions:
        """A copy with the given fields changed (None leaves a field as it is), validated again."""
        kw = {k: v for k, v in overrides.items() if v is not None}
        for k in ("eta", "guidance", "ref_strength"):
            if k in kw:
                kw[k] = float(kw[k])
        return dataclasses.replace(self, **kw)

    def check_steps(self, num_steps: int) -> SampleOptions:
        """These options, after checking their respacing spec against a schedule of `num_steps` steps."""
        try:
            timestep_pairs(num_steps, self.steps)
        except TimestepSpecError as e:
            raise EngineError(f"bad --steps: {e}") from None
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
