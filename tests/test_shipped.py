"""The checkpoints fv ships (fv/assets/checkpoints/): small enough to live in the repository, complete enough to run.

Issue 14's budget: every shipped checkpoint together at most 12 MB. Each one must load into the model its config
describes; the settings that render videos must render one (2 DDIM steps)."""

from __future__ import annotations

import pytest
import torch

from fv.engine.assets import SHIPPED
from fv.engine.checkpoint import load_model_state, read_checkpoint
from fv.engine.families import build_model

CHECKPOINTS = sorted(SHIPPED.glob("*.safetensors"))
BUDGET = 12 * 1000 * 1000


def test_all_shipped_checkpoints_fit_the_budget():
    assert {p.stem for p in CHECKPOINTS} >= {"baseline", "onlyDM", "LFDM", "fecnet-fv16"}
    total = sum(p.stat().st_size for p in CHECKPOINTS)
    assert total <= BUDGET, f"shipped checkpoints take {total / 1e6:.1f} MB, over {BUDGET / 1e6:.0f} MB"


@pytest.mark.parametrize("path", CHECKPOINTS, ids=[p.stem for p in CHECKPOINTS])
def test_a_shipped_checkpoint_loads_and_renders(path):
    from fv.engine.engine import Engine
    ckpt = read_checkpoint(path)
    load_model_state(build_model(ckpt.config), ckpt)              # strict: every tensor, none missing
    if ckpt.config.setting == "embedder":
        return
    eng = Engine(path, steps=2) if ckpt.config.setting != "baseline" else Engine(path)
    face = torch.zeros(1, 3, eng.image_size, eng.image_size)
    video = eng.render(face, [3], [0])
    assert video.shape == (1, 32, eng.image_size, eng.image_size, 3) and video.std() > 0
