"""The checkpoint a bare command uses: the latest of runs/, else demo_out/runs/, else the one fv ships."""

from __future__ import annotations

import pytest

from fv.cli import common
from fv.engine.families import build_model
from fv.engine.checkpoint import CheckpointError, save_checkpoint, state_tensors
from tests.tiny import tiny_gan_config


def test_default_checkpoint_falls_back_to_the_shipped_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                            # no runs/, no demo_out/
    monkeypatch.setattr(common, "RUNS", tmp_path / "runs")
    assert common.default_checkpoint("baseline") == common.ASSETS / "baseline.safetensors"
    assert common.default_checkpoint() == common.ASSETS / "onlyDM.safetensors"
    assert common.default_checkpoint("baseline").is_file()      # `fv train onlyDM` finds its motion GRU
    with pytest.raises(CheckpointError, match="fv train EM-DM"):
        common.default_checkpoint("EM-DM")                 # nothing shipped for it: a clear error
    # a checkpoint in the demo's runs folder wins over the shipped one, one in runs/ over both
    cfg = tiny_gan_config("baseline")
    state = state_tensors("model", build_model(cfg).state_dict())
    demo = save_checkpoint(tmp_path / "demo_out" / "runs" / "baseline" / "last.safetensors", cfg, 1, state)
    assert common.default_checkpoint("baseline").resolve() == demo.resolve()
    mine = save_checkpoint(tmp_path / "runs" / "b2" / "last.safetensors", cfg, 2, state)
    assert common.default_checkpoint("baseline").resolve() == mine.resolve()
