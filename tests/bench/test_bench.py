"""The throughput benchmark runs every backend it is asked for and reports consistent figures."""

import json

import pytest

from fv.bench import throughput, write_json
from tests.export.conftest import tiny_checkpoint


def test_throughput_rows_for_torch_and_onnxruntime(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "dm.safetensors", "onlyDM")
    rows = throughput(ckpt, backends=("torch", "onnxruntime"), samplers=("ddim",), steps=(2, 3), videos=2,
                      repeats=1, artifacts_dir=tmp_path / "exports", log=lambda m: None)
    assert [(r["backend"], r["steps"]) for r in rows] == [("torch", 2), ("torch", 3),
                                                         ("onnxruntime", 2), ("onnxruntime", 3)]
    for r in rows:
        # seconds is rounded to 0.1 ms in the row, the rates are computed before rounding
        assert abs(r["frames_per_s"] - r["videos"] * 32 / r["seconds"]) <= 1e-3 * r["frames_per_s"] + 0.01
        assert r["videos_per_s"] > 0
        assert r["passes_per_video"] == r["steps"] * 2                 # guidance 2: both halves, one call each step
        assert r["share_of_peak"] == pytest.approx(r["gflop_per_frame"] * r["frames_per_s"] / r["peak_gflops"],
                                                   rel=1e-2, abs=1e-4)
    # the work per frame is the backend's whatever it runs on, and one more step adds one guided pass of work
    by = {(r["backend"], r["steps"]): r["gflop_per_frame"] for r in rows}
    assert by[("torch", 2)] == by[("onnxruntime", 2)] and by[("torch", 3)] > by[("torch", 2)] > 0
    out = json.loads(write_json(tmp_path / "b.json", rows).read_text())
    assert out["results"] == rows and "torch" in out["environment"]


def test_gan_checkpoints_have_one_pass(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "b.safetensors", "baseline")
    rows = throughput(ckpt, steps=(10, 50), videos=2, repeats=1, log=lambda m: None)
    assert len(rows) == 1 and rows[0]["sampler"] == "single-pass" and rows[0]["steps"] == 0


def test_fv_bench_on_an_lfdm_checkpoint(tmp_path, monkeypatch, capsys):
    """`fv bench` through its command line: LFDM's three networks on torch and on ONNX Runtime (exported on demand)."""
    import sys

    from fv.cli import main as cli
    ckpt = tiny_checkpoint(tmp_path / "lfdm.safetensors", "LFDM")
    monkeypatch.setattr(sys, "argv", ["fv", "bench", str(ckpt), "--backend", "torch", "--backend", "onnxruntime",
                                      "--steps", "2", "--steps", "3", "--videos", "2", "--repeats", "1",
                                      "--device", "cpu", "--artifacts", str(tmp_path / "exports"),
                                      "--json", str(tmp_path / "b.json")])
    assert cli.main() == 0, capsys.readouterr()
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    assert [(r["setting"], r["backend"], r["steps"]) for r in rows] == [
        ("LFDM", "torch", 2), ("LFDM", "torch", 3), ("LFDM", "onnxruntime", 2), ("LFDM", "onnxruntime", 3)]
    for r in rows:
        assert r["sampler"] == "ddim" and r["guidance"] == 2.0 and r["videos"] == 2
        assert abs(r["frames_per_s"] - r["videos"] * 32 / r["seconds"]) <= 1e-3 * r["frames_per_s"] + 0.01
    assert (tmp_path / "exports").is_dir() and any((tmp_path / "exports").rglob("*.onnx"))
