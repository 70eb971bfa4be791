"""PyTorch vs ONNX Runtime parity of every exported network, at batch 1 and 3, on fresh inputs."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fv.engine.backends import BackendError
from fv.engine.backends.ort_backend import OrtBackend
from fv.engine.families import network_modules, network_specs
from fv.export.errors import ExportError
from fv.export.onnx_export import export_onnx
from fv.export.parity import TOLERANCE, parity
from tests.export.conftest import tiny_model

TOL = TOLERANCE["onnxruntime-fp32"]
CASES = [("baseline", "motion"), ("onlyEM", "motion"), ("baseline", "encoder"), ("baseline", "decoder"),
         ("onlyEM", "decoder"),
         ("onlyDM", "face_encoder"), ("onlyDM", "denoiser"), ("both_retrievedMcs", "denoiser"),
         ("LFDM", "encoder"), ("LFDM", "flow_denoiser"), ("LFDM", "decoder")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(module, spec, onnx path) per case, exported once."""
    d = tmp_path_factory.mktemp("onnx")
    out = {}
    for setting, net in CASES:
        cfg, model = tiny_model(setting, seed=len(out))
        spec, mod = network_specs(cfg)[net], network_modules(cfg, model)[net]
        out[setting, net] = (mod, spec, export_onnx(mod, spec, d / f"{setting}_{net}.onnx"))
    return out


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_onnxruntime_matches_pytorch(exported, case):
    mod, spec, path = exported[case]
    backend = OrtBackend(path, spec, "cpu")
    rec = parity(mod, backend, TOL, batches=(1, 3))
    assert rec["batches"] == [1, 3] and set(rec["per_batch"]) == {"1", "3"}
    assert 0 <= rec["max_abs_error"] <= TOL
    # independently of the backend's IO binding: plain session.run on the same fresh inputs
    feeds = spec.sample_inputs(3, torch.Generator().manual_seed(rec["seed"] + 1))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(spec.output_names, {k: v.numpy() for k, v in feeds.items()})
    with torch.no_grad():
        want = mod(*feeds.values())
    want = (want,) if torch.is_tensor(want) else want
    for g, w, o in zip(got, want, backend(feeds).values()):
        assert np.abs(g - w.numpy()).max() <= TOL
        np.testing.assert_array_equal(g, o.numpy())  # IO binding returns exactly what session.run does


def test_every_file_takes_exactly_its_spec_inputs(exported):
    # the tracer drops inputs a graph never reads (baseline GRU / onlyEM decoder category); fv puts them back
    for (setting, net), (_, spec, path) in exported.items():
        m = onnx.load(str(path))
        assert [i.name for i in m.graph.input] == spec.input_names, (setting, net)
        assert [o.name for o in m.graph.output] == spec.output_names
        assert {p.key: p.value for p in m.metadata_props}["fv.network"] == net
        assert m.opset_import[0].version >= 17


def test_unused_category_really_is_unused(exported):
    mod, spec, path = exported["onlyEM", "decoder"]
    b = OrtBackend(path, spec)
    feeds = spec.sample_inputs(2, torch.Generator().manual_seed(3))
    other = {**feeds, "category": feeds["category"].roll(1, dims=1)}
    torch.testing.assert_close(b(feeds)["frame"], b(other)["frame"], rtol=0, atol=0)
    _, spec_b, path_b = exported["baseline", "decoder"]  # ...while the baseline G_I reads it
    bb = OrtBackend(path_b, spec_b)
    feeds_b = spec_b.sample_inputs(2, torch.Generator().manual_seed(3))
    moved = bb({**feeds_b, "category": feeds_b["category"].roll(1, 1)})["frame"]
    assert (bb(feeds_b)["frame"] - moved).abs().max() > 1e-4


def test_parity_fails_when_the_export_differs(exported):
    mod, spec, path = exported["onlyDM", "face_encoder"]
    backend = OrtBackend(path, spec)
    with torch.no_grad():
        mod.stem.bias.add_(1e-2)  # the module changed after export: parity must notice
    try:
        with pytest.raises(ExportError, match="differs from PyTorch by max abs .* > tolerance"):
            parity(mod, backend, TOL)
    finally:
        with torch.no_grad():
            mod.stem.bias.sub_(1e-2)


def test_backend_refuses_an_onnx_file_of_another_network(exported, tmp_path):
    _, gen_spec, gen_path = exported["baseline", "decoder"]
    _, mot_spec, mot_path = exported["baseline", "motion"]
    _, fe_spec, fe_path = exported["onlyDM", "face_encoder"]
    with pytest.raises(BackendError, match="holds the decoder network, not motion"):
        OrtBackend(gen_path, mot_spec)
    # without fv's metadata the names and shapes still give it away
    m = onnx.load(str(fe_path))
    del m.metadata_props[:]
    onnx.save(m, str(tmp_path / "anon.onnx"))
    with pytest.raises(BackendError, match="is not a decoder network: its inputs are \\['x_ref'\\]"):
        OrtBackend(tmp_path / "anon.onnx", gen_spec)
    # same names, another shape: a face encoder of another config
    _, den_spec, _ = exported["onlyDM", "denoiser"]
    wider = den_spec.__class__("face_encoder", fe_spec.inputs, tuple(
        o.__class__(o.name, (o.shape[0], o.shape[1] * 2, *o.shape[2:])) for o in fe_spec.outputs))
    with pytest.raises(BackendError, match="ref_0 is tensor\\(float\\) \\['B', 4, 32, 32\\], expected"):
        OrtBackend(tmp_path / "anon.onnx", wider)
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(BackendError, match="is not a loadable ONNX model"):
        OrtBackend(tmp_path / "junk.onnx", gen_spec)
    with pytest.raises(BackendError, match="does not exist; run `fv export`"):
        OrtBackend(tmp_path / "missing.onnx", gen_spec)
