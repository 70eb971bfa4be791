"""One I/O spec per network: names, dynamic axes, TensorRT profiles and sample inputs all derived from it."""

from __future__ import annotations

import json

import pytest
import torch

from fv.engine.families import network_modules, network_specs
from fv.engine.iospec import BATCH, NetworkSpec, SpecError, TensorSpec
from tests.export.conftest import SETTINGS, tiny_config, tiny_model

EXPECTED = {"baseline": ["motion", "encoder", "decoder"], "onlyEM": ["motion", "encoder", "decoder"],
            "onlyDM": ["motion", "face_encoder", "denoiser"], "EM-DM": ["motion", "face_encoder", "denoiser"],
            "both_retrievedMcs": ["face_encoder", "denoiser"], "LFDM": ["encoder", "flow_denoiser", "decoder"]}


@pytest.mark.parametrize("setting", SETTINGS)
def test_networks_per_setting_and_names(setting):
    specs = network_specs(tiny_config(setting))
    assert list(specs) == EXPECTED[setting]
    for name, s in specs.items():
        assert s.name == name
        assert len(set(s.input_names)) == len(s.input_names) and len(set(s.output_names)) == len(s.output_names)
    if "denoiser" in specs:
        d, f = specs["denoiser"], specs["face_encoder"]
        assert d.input_names[:4] == ["x_t", "t", "motion", "emotion"]
        # the denoiser takes exactly the face encoder's outputs as its identity inputs
        assert d.inputs[4:] == f.outputs and [o.name for o in f.outputs] == [f"ref_{i}" for i in range(2)]
    if "motion" in specs:
        assert specs["motion"].input_names == ["noise", "h0", "category"]


@pytest.mark.parametrize("setting", SETTINGS)
def test_dynamic_axes_are_the_batch_axis_only(setting):
    for s in network_specs(tiny_config(setting)).values():
        axes = s.dynamic_axes()
        assert set(axes) == set(s.input_names) | set(s.output_names)
        assert all(a == {0: BATCH} for a in axes.values())


def test_trt_profile_from_the_spec():
    s = network_specs(tiny_config("onlyDM"))["denoiser"]
    prof = s.trt_profile(2, 8, 64)
    assert list(prof) == s.input_names
    assert prof["x_t"] == ((2, 3, 32, 32), (8, 3, 32, 32), (64, 3, 32, 32))
    assert prof["t"] == ((2,), (8,), (64,))
    assert prof["ref_1"] == ((2, 8, 16, 16), (8, 8, 16, 16), (64, 8, 16, 16))
    lo, mid, hi = s.batch_range
    assert s.trt_profile()["motion"] == ((lo, 7, 10), (mid, 7, 10), (hi, 7, 10))
    with pytest.raises(SpecError, match="min <= opt <= max"):
        s.trt_profile(8, 4, 16)


@pytest.mark.parametrize("setting", SETTINGS)
def test_sample_inputs_are_valid_and_modules_give_the_spec_outputs(setting):
    cfg, model = tiny_model(setting)
    specs, mods = network_specs(cfg), network_modules(cfg, model)
    g = torch.Generator().manual_seed(0)
    for name, s in specs.items():
        feeds = s.sample_inputs(3, g)
        assert list(feeds) == s.input_names and s.check_feeds(feeds) == 3
        with torch.no_grad():
            out = mods[name](*feeds.values())
        out = (out,) if torch.is_tensor(out) else tuple(out)
        assert [tuple(o.shape) for o in out] == list(s.output_shapes(3).values())
        assert all(torch.isfinite(o).all() for o in out)


def test_sample_values_one_hot_timesteps_and_pixels():
    d = network_specs(tiny_config("onlyDM"))["denoiser"]
    feeds = d.sample_inputs(4000, torch.Generator().manual_seed(1))
    t = feeds["t"]
    assert t.dtype == torch.int64 and int(t.min()) == 0 and int(t.max()) == 99  # t in [0, L-1], L = 100
    e = feeds["emotion"]
    assert e.dtype == torch.float32 and set(e.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(e.sum(1), torch.ones(4000)) and set(e.argmax(1).unique().tolist()) == set(range(7))
    x = network_specs(tiny_config("baseline"))["decoder"].sample_inputs(50)["x_ref"]
    assert x.min() >= -1 and x.max() <= 1 and x.min() < -0.9 and x.max() > 0.9
    # the same generator seed gives the same inputs; another seed other ones
    a = d.sample_inputs(2, torch.Generator().manual_seed(5))
    b = d.sample_inputs(2, torch.Generator().manual_seed(5))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_check_feeds_names_the_problem():
    s = network_specs(tiny_config("baseline"))["decoder"]
    good = s.sample_inputs(2)
    with pytest.raises(SpecError, match="missing \\['category'\\]"):
        s.check_feeds({k: v for k, v in good.items() if k != "category"})
    with pytest.raises(SpecError, match="x_ref must have shape \\['B', 3, 64, 64\\], got \\[2, 3, 32, 32\\]"):
        s.check_feeds({**good, "x_ref": torch.zeros(2, 3, 32, 32)})
    with pytest.raises(SpecError, match="batch 3 differs"):
        s.check_feeds({**good, "motion": torch.zeros(3, 10)})
    d = network_specs(tiny_config("onlyDM"))["denoiser"]
    with pytest.raises(SpecError, match="t must be int64, got float32"):
        d.check_feeds({**d.sample_inputs(2), "t": torch.zeros(2)})


def test_spec_serialises_and_its_digest_tracks_every_field():
    s = network_specs(tiny_config("onlyDM"))["denoiser"]
    assert json.loads(json.dumps(s.to_dict()))["inputs"][1] == {"name": "t", "shape": ["B"], "dtype": "int64",
                                                                 "values": "timestep", "high": 100}
    other = NetworkSpec(s.name, s.inputs[:-1] + (TensorSpec("ref_1", (BATCH, 8, 8, 8)),), s.outputs)
    assert other.digest() != s.digest()
    assert NetworkSpec(s.name, s.inputs, s.outputs, (1, 2, 3)).digest() != s.digest()
    assert network_specs(tiny_config("onlyDM"))["denoiser"].digest() == s.digest()
