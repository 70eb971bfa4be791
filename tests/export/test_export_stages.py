"""`fv export` end to end on tiny checkpoints: keyed folders, manifest, reuse, re-export, clear errors."""

from __future__ import annotations

import hashlib
import json
import sys
import types

import pytest
import torch

from fv.cli import main as cli
from fv.engine.backends import BackendError, make_backends
from fv.engine.backends.artifacts import MANIFEST, onnx_stage
from fv.engine.checkpoint import CheckpointError
from fv.export.errors import ExportError
from fv.export.parity import TOLERANCE
from fv.export.stages import export_checkpoint
from tests.export.conftest import tiny_checkpoint


def sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def first_export(tiny_ckpts, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports")
    return out, export_checkpoint(tiny_ckpts["onlyEM"], out)


def test_export_writes_keyed_folder_manifest_and_files(first_export, tiny_ckpts):
    out, res = first_export
    ck = tiny_ckpts["onlyEM"]
    assert not res.onnx_reused and res.onnx.folder.parent == out
    assert res.onnx.folder.name == f"onlyEM-{res.onnx.key}" and len(res.onnx.key) == 16
    m = json.loads((res.onnx.folder / MANIFEST).read_text())
    assert m["key"] == res.onnx.key and m["kind"] == "onnx" and m["precision"] == "fp32" and m["opset"] >= 17
    assert m["checkpoint"]["sha256"] == sha(ck) and m["setting"] == "onlyEM" and m["config"]["setting"] == "onlyEM"
    assert set(m["versions"]) >= {"torch", "onnx", "onnxruntime", "fv"} and m["versions"]["torch"] == torch.__version__
    assert set(m["specs"]) == set(m["parity"]) == {"motion", "encoder", "decoder"}
    for rec in m["parity"].values():
        assert rec["tolerance"] == TOLERANCE["onnxruntime-fp32"] and rec["batches"] == [1, 3]
        assert 0 <= rec["max_abs_error"] <= rec["tolerance"]
    assert m["max_abs_error"] == max(r["max_abs_error"] for r in m["parity"].values())
    assert set(m["files"]) == {"motion.onnx", "encoder.onnx", "decoder.onnx"}
    for name, f in m["files"].items():
        assert f["sha256"] == sha(res.onnx.folder / name)
    assert sorted(p.name for p in out.iterdir()) == [res.onnx.folder.name]  # no staging folder left behind


def test_rerun_reuses_and_backends_load_it(first_export, tiny_ckpts):
    out, res = first_export
    mtimes = {p.name: p.stat().st_mtime_ns for p in res.onnx.folder.iterdir()}
    again = export_checkpoint(tiny_ckpts["onlyEM"], out)
    assert again.onnx_reused and again.onnx.key == res.onnx.key
    assert {p.name: p.stat().st_mtime_ns for p in again.onnx.folder.iterdir()} == mtimes  # nothing rewritten
    ort = make_backends("onnxruntime", tiny_ckpts["onlyEM"], out)
    ref = make_backends("torch", tiny_ckpts["onlyEM"])
    assert set(ort) == set(ref) == {"motion", "encoder", "decoder"}
    for name, b in ort.items():
        feeds = b.spec.sample_inputs(2, torch.Generator().manual_seed(9))
        for k, v in b(feeds).items():
            torch.testing.assert_close(v, ref[name](feeds)[k], atol=TOLERANCE["onnxruntime-fp32"], rtol=0)


def test_a_changed_checkpoint_gets_a_new_key(first_export, tmp_path):
    out, res = first_export
    other = tiny_checkpoint(tmp_path / "other.safetensors", "onlyEM", seed=42)
    with pytest.raises(BackendError, match="no ONNX export of .*run `fv export"):
        make_backends("onnxruntime", other, out)
    new = export_checkpoint(other, out)
    assert not new.onnx_reused and new.onnx.key != res.onnx.key and new.onnx.folder != res.onnx.folder
    assert (res.onnx.folder / MANIFEST).is_file()  # the old export is untouched


def test_a_tampered_export_is_not_trusted(tiny_ckpts, tmp_path):
    ck = tiny_ckpts["baseline"]
    res = export_checkpoint(ck, tmp_path)
    gen = res.onnx.folder / "decoder.onnx"
    gen.write_bytes(gen.read_bytes()[:-10])  # truncated: same name, same key, wrong bytes
    assert "changed since it was written" in onnx_stage(ck, tmp_path).valid()
    with pytest.raises(BackendError, match="changed since it was written"):
        make_backends("onnxruntime", ck, tmp_path)
    (res.onnx.folder / MANIFEST).unlink()  # an export without a manifest is unfinished
    assert "no manifest.json" in onnx_stage(ck, tmp_path).valid()
    again = export_checkpoint(ck, tmp_path)
    assert not again.onnx_reused and again.onnx.key == res.onnx.key and onnx_stage(ck, tmp_path).valid() is None


def test_diffusion_setting_exports_its_three_networks(tiny_ckpts, tmp_path):
    res = export_checkpoint(tiny_ckpts["EM-DM"], tmp_path)
    assert sorted(res.manifest["files"]) == ["denoiser.onnx", "face_encoder.onnx", "motion.onnx"]
    assert all(r["max_abs_error"] <= TOLERANCE["onnxruntime-fp32"] for r in res.manifest["parity"].values())


def test_library_errors():
    for precision in ("fp16", "bf16"):
        with pytest.raises(ExportError, match=f"--precision {precision} applies to TensorRT engines; add --trt"):
            export_checkpoint("whatever.safetensors", precision=precision)
    for precision in ("fp8", "FP16", "half", ""):
        with pytest.raises(ExportError, match=f"unknown precision {precision!r}; choose one of: fp32, fp16, bf16"):
            export_checkpoint("whatever.safetensors", trt=True, precision=precision)


def test_precision_flag_of_a_tensorrt_with_and_without_bf16():
    from fv.export.trt_build import precision_flag
    weak = types.SimpleNamespace(__version__="10.9", BuilderFlag=types.SimpleNamespace(FP16="F", BF16="B"))
    assert [precision_flag(weak, p) for p in ("fp32", "fp16", "bf16")] == [None, "F", "B"]
    old = types.SimpleNamespace(__version__="8.6", BuilderFlag=types.SimpleNamespace(FP16="F"))
    assert precision_flag(old, "fp16") == "F"
    with pytest.raises(ExportError, match=r"TensorRT 8.6 has no bf16 builder flag \(BuilderFlag.BF16\)"):
        precision_flag(old, "bf16")
    strong = types.SimpleNamespace(__version__="11.0", BuilderFlag=types.SimpleNamespace())
    assert precision_flag(strong, "fp32") is None
    with pytest.raises(ExportError, match="--precision fp16 needs TensorRT 10.x"):
        precision_flag(strong, "fp16")


def run_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["fv", *map(str, args)])
    code = cli.main()
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def one_line(out):
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in out, out
    return lines[0]


def test_cli_on_a_file_that_is_not_a_checkpoint(monkeypatch, capsys, tmp_path):
    (tmp_path / "photo.png").write_bytes(b"\x89PNG not a checkpoint")
    code, out = run_cli(monkeypatch, capsys, "export", tmp_path / "photo.png", "--out", tmp_path / "ex")
    assert code != 0 and "is not a readable fv checkpoint" in one_line(out)
    assert not (tmp_path / "ex").exists()
    with pytest.raises(CheckpointError):
        export_checkpoint(tmp_path / "photo.png", tmp_path / "ex")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where TensorRT/CUDA is missing")
def test_cli_trt_without_tensorrt_says_what_is_missing(monkeypatch, capsys, tiny_ckpts, tmp_path):
    code, out = run_cli(monkeypatch, capsys, "export", tiny_ckpts["baseline"], "--trt", "--out", tmp_path)
    line = one_line(out)
    assert code != 0 and "TensorRT needs" in line and "a CUDA GPU" in line
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert "the tensorrt Python package" in line
    assert not any(tmp_path.iterdir())  # it stopped before exporting anything


def test_cli_precision_is_checked_before_anything_is_written(monkeypatch, capsys, tiny_ckpts, tmp_path):
    code, out = run_cli(monkeypatch, capsys, "export", tiny_ckpts["baseline"], "--precision", "fp8", "--out", tmp_path)
    assert code == 2 and "unknown precision 'fp8'; choose one of: fp32, fp16, bf16" in one_line(out)
    code, out = run_cli(monkeypatch, capsys, "export", tiny_ckpts["baseline"], "--precision", "bf16", "--out", tmp_path)
    assert code == 2 and "--precision bf16 applies to TensorRT engines; add --trt" in one_line(out)
    assert not any(tmp_path.iterdir())


@pytest.mark.trt
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_tensorrt_reduced_precision_engines(tiny_ckpts, tmp_path, precision):
    from fv.export.trt_build import precision_flag, tensorrt
    try:
        precision_flag(tensorrt(), precision)
    except ExportError as e:  # this TensorRT has no such flag: export says so, in one line, before writing
        with pytest.raises(ExportError, match=f"no {precision} builder flag"):
            export_checkpoint(tiny_ckpts["onlyDM"], tmp_path, trt=True, precision=precision)
        assert "\n" not in str(e) and not any(tmp_path.iterdir())
        return
    res = export_checkpoint(tiny_ckpts["onlyDM"], tmp_path, trt=True, precision=precision)
    m = res.trt_manifest
    assert res.trt.folder.name.startswith(f"trt-{precision}-") and m["precision"] == precision
    assert all(r["max_abs_error"] <= TOLERANCE[f"tensorrt-{precision}"] for r in m["parity"].values())
    assert sorted(make_backends("tensorrt", tiny_ckpts["onlyDM"], tmp_path, "cuda", precision)) == sorted(res.trt.specs)


def test_cli_export_and_rerun(monkeypatch, capsys, tiny_ckpts, tmp_path):
    code, out = run_cli(monkeypatch, capsys, "export", tiny_ckpts["baseline"], "--out", tmp_path)
    assert code == 0 and "max abs error vs PyTorch" in out, out
    code, out = run_cli(monkeypatch, capsys, "export", tiny_ckpts["baseline"], "--out", tmp_path)
    assert code == 0 and "is up to date" in out
    assert len([p for p in tmp_path.iterdir()]) == 1
