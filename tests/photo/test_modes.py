"""The registry of render modes (fv.photo.modes): names, help, which engines each applies to, the default."""

from __future__ import annotations

import numpy as np
import pytest

from fv.photo.modes import DEFAULT_MODE, MODES, RenderModeError, modes_help, parse_mode


def test_modes_parse_and_explain_themselves():
    assert parse_mode(" Transfer ") == "transfer" and DEFAULT_MODE in MODES
    assert set(MODES) == {"transfer", "scan", "transfer-self", "pixels", "flow", "flow-standin"}
    assert all(m in modes_help() for m in MODES) and f"Default: {DEFAULT_MODE}" in modes_help()
    with pytest.raises(RenderModeError, match="unknown mode 'warp'; choose one of: transfer, scan, transfer-self, pixels, flow, flow-standin"):
        parse_mode("warp")


class _Engine:
    def __init__(self, flows: bool):
        self.generates_flows = flows


def test_every_mode_says_what_the_model_renders_for_it_and_where_it_applies():
    from fv.photo.face import PhotoFace
    from fv.photo.modes import FLOWS, FRAMES, RenderMode, default_mode, get_mode
    from fv.photo.standin import standin
    want = {"transfer": (FRAMES, True), "scan": (FRAMES, True), "transfer-self": (FRAMES, False), "pixels": (FRAMES, False),
            "flow": (FLOWS, False), "flow-standin": (FLOWS, True)}          # (output, renders the stand-in)
    crop = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    face = PhotoFace(crop, crop, crop, None)
    frames, flows = _Engine(False), _Engine(True)
    for name, mode in MODES.items():
        assert isinstance(mode, RenderMode) and mode.name == name and get_mode(f" {name.upper()} ") is mode
        assert f"{name}: {mode.help}" in modes_help()
        assert (mode.output, mode.renders_standin) == want[name]
        assert mode.applies_to(flows) and mode.applies_to(frames) == (mode.output is FRAMES)
        expect = standin(16, 2)[0] if mode.renders_standin else crop
        np.testing.assert_array_equal(mode.model_input(face, 2), expect)
    assert default_mode(frames) == DEFAULT_MODE == "scan" and default_mode(flows) == "flow"
    assert get_mode(MODES["pixels"]) is MODES["pixels"]
