"""One backend interface: torch (eager, bf16/fp16, compile, CUDA graph), ONNX Runtime, TensorRT."""

from __future__ import annotations

import pytest
import torch

from fv.engine.backends import KINDS, BackendError, make_backends
from fv.engine.backends.torch_backend import TorchBackend
from fv.engine.families import network_modules, network_specs
from tests.export.conftest import tiny_ckpts, tiny_model  # noqa: F401 - tiny_ckpts is a fixture


def module_outputs(mod, spec, feeds):
    with torch.no_grad():
        out = mod(*[feeds[n] for n in spec.input_names])
    return dict(zip(spec.output_names, (out,) if torch.is_tensor(out) else out))


@pytest.mark.parametrize("setting", ["baseline", "onlyDM", "LFDM"])
def test_torch_backend_is_the_module(setting):
    cfg, model = tiny_model(setting)
    specs, mods = network_specs(cfg), network_modules(cfg, model)
    for name, spec in specs.items():
        b = TorchBackend(mods[name], spec)
        assert b.spec is spec and b.device == torch.device("cpu") and b.max_batch is None
        feeds = spec.sample_inputs(3, torch.Generator().manual_seed(1))
        got = b(feeds)
        assert list(got) == spec.output_names
        for k, v in module_outputs(mods[name], spec, feeds).items():
            assert torch.equal(got[k], v) and got[k].dtype == torch.float32


def test_torch_backend_bf16_on_cpu_is_close_not_equal():
    cfg, model = tiny_model("onlyDM")
    spec, mod = network_specs(cfg)["denoiser"], network_modules(cfg, model)["denoiser"]
    feeds = spec.sample_inputs(2, torch.Generator().manual_seed(2))
    ref = module_outputs(mod, spec, feeds)["prediction"]
    low = TorchBackend(mod, spec, dtype="bf16")(feeds)["prediction"]
    assert low.dtype == torch.float32
    err = (low - ref).abs().max().item()
    # bf16 has an 8-bit mantissa: relative error of order 2^-8 per op, never the exact fp32 result
    assert 0 < err < 0.1 * ref.abs().max().item()


def test_torch_backend_rejects_bad_feeds_and_options():
    cfg, model = tiny_model("baseline")
    spec, mod = network_specs(cfg)["decoder"], network_modules(cfg, model)["decoder"]
    b = TorchBackend(mod, spec)
    feeds = spec.sample_inputs(2)
    with pytest.raises(BackendError, match="decoder takes inputs .* missing \\['motion'\\]"):
        b({k: v for k, v in feeds.items() if k != "motion"})
    with pytest.raises(BackendError, match="decoder.category must have shape \\['B', 7\\]"):
        b({**feeds, "category": torch.zeros(2, 6)})
    with pytest.raises(BackendError, match="unknown precision 'int8'"):
        TorchBackend(mod, spec, dtype="int8")
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="fp16 needs a CUDA device"):
            TorchBackend(mod, spec, dtype="fp16")
        with pytest.raises(BackendError, match="CUDA graphs need a CUDA device"):
            TorchBackend(mod, spec, cuda_graph=True)
        with pytest.raises(BackendError, match="CUDA is not available"):
            TorchBackend(mod, spec, device="cuda")


def test_make_backends_torch_and_missing_artefacts(tiny_ckpts, tmp_path):
    bs = make_backends("torch", tiny_ckpts["both_retrievedMcs"])
    assert set(bs) == {"face_encoder", "denoiser"}  # the bank's codes stay in torch
    assert all(isinstance(b, TorchBackend) for b in bs.values())
    assert set(make_backends("torch", tiny_ckpts["onlyDM"])) == {"motion", "face_encoder", "denoiser"}
    with pytest.raises(BackendError, match="unknown backend 'tflite'; choose one of: torch, onnxruntime"):
        make_backends("tflite", tiny_ckpts["baseline"])
    with pytest.raises(BackendError, match="no ONNX export of .*run `fv export .* --out"):
        make_backends("onnxruntime", tiny_ckpts["baseline"], tmp_path)
    assert KINDS == ("torch", "onnxruntime", "tensorrt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where TensorRT/CUDA is missing")
def test_tensorrt_backend_without_tensorrt_says_what_is_missing(tmp_path):
    from fv.engine.backends.trt_backend import TrtBackend
    cfg, _ = tiny_model("baseline")
    with pytest.raises(BackendError, match="TensorRT needs .*a CUDA GPU"):
        TrtBackend(tmp_path / "x.plan", network_specs(cfg)["motion"])


def test_torch_compile_matches_eager():
    # aot_eager traces through dynamo + AOTAutograd like inductor does, without its minute of C++ compiling
    cfg, model = tiny_model("onlyDM")
    spec, mod = network_specs(cfg)["face_encoder"], network_modules(cfg, model)["face_encoder"]
    b = TorchBackend(mod, spec, compile="aot_eager")
    for batch in (2, 3):  # dynamic=True: a second batch size reuses the graph
        feeds = spec.sample_inputs(batch, torch.Generator().manual_seed(4))
        got, want = b(feeds), module_outputs(mod, spec, feeds)
        for k in spec.output_names:
            torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("precision,atol", [("fp32", 1e-3), ("bf16", 0.1), ("fp16", 0.05)])
def test_cuda_graph_backend_matches_eager(precision, atol):
    cfg, model = tiny_model("onlyDM")
    spec, mod = network_specs(cfg)["denoiser"], network_modules(cfg, model)["denoiser"]
    ref = {b: spec.sample_inputs(b, torch.Generator().manual_seed(b)) for b in (1, 3)}
    want = {b: module_outputs(mod, spec, f)["prediction"] for b, f in ref.items()}
    g = TorchBackend(mod, spec, "cuda", precision, cuda_graph=True)
    for _ in range(2):  # the second round replays the captured graphs
        for b, f in ref.items():
            got = g({k: v.cuda() for k, v in f.items()})["prediction"].cpu()
            torch.testing.assert_close(got, want[b], atol=atol, rtol=0)
    assert sorted(g._graphs) == [1, 3]


@pytest.mark.trt
def test_tensorrt_engine_matches_torch(tiny_ckpts, tmp_path):
    from fv.export.stages import export_checkpoint
    res = export_checkpoint(tiny_ckpts["onlyDM"], tmp_path, trt=True)
    m = res.trt_manifest
    assert res.trt is not None and all(r["max_abs_error"] <= r["tolerance"] for r in m["parity"].values())
    trt = make_backends("tensorrt", tiny_ckpts["onlyDM"], tmp_path, "cuda")
    ref = make_backends("torch", tiny_ckpts["onlyDM"])
    for name, b in trt.items():
        feeds = b.spec.sample_inputs(4, torch.Generator().manual_seed(5))
        got = b({k: v.cuda() for k, v in feeds.items()})
        for k, v in ref[name](feeds).items():
            torch.testing.assert_close(got[k].cpu(), v, atol=1e-2, rtol=0)
    again = export_checkpoint(tiny_ckpts["onlyDM"], tmp_path, trt=True)
    assert again.trt_reused and again.trt.key == res.trt.key
    with pytest.raises(BackendError, match="no TensorRT fp16 engines"):
        make_backends("tensorrt", tiny_ckpts["onlyDM"], tmp_path, "cuda", "fp16")
