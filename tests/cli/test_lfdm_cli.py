"""LFDM at the command line: options that do not apply to it are one clear line (exit 2); `fv train LFDM` runs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fv.engine.checkpoint import load_checkpoint
from tests.cli.test_render import assert_one_clear_line, fv_main
from tests.export.conftest import tiny_checkpoint


@pytest.fixture(scope="module")
def lfdm_ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("lfdm_cli") / "lfdm.safetensors", "LFDM")


def test_render_with_ref_strength_is_one_clear_line(lfdm_ckpt, tmp_path, monkeypatch, capsys):
    crop = tmp_path / "crop.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(crop)
    code, out = fv_main(monkeypatch, capsys, "render", crop, "--aligned", "-e", "happy", "--checkpoint", lfdm_ckpt,
                        "--ref-strength", "0.5", "--out", tmp_path / "r", "--device", "cpu", "--no-progress")
    assert code == 2
    assert_one_clear_line(code, out, "--ref-strength does not apply")
    assert not (tmp_path / "r").exists()


def test_render_set_with_ref_strength_is_one_clear_line(lfdm_ckpt, tiny_data, tmp_path, monkeypatch, capsys):
    code, out = fv_main(monkeypatch, capsys, "render-set", lfdm_ckpt, "--data", tiny_data, "--out", tmp_path / "rs",
                        "--ref-strength", "0.5", "--device", "cpu", "--no-progress")
    assert code == 2
    assert_one_clear_line(code, out, "--ref-strength does not apply")
    assert not (tmp_path / "rs").exists()


def test_fv_train_lfdm_writes_a_checkpoint(tiny_data, tmp_path):
    from fv.cli.app import app
    from fv.cli.main import _register
    _register()
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "LFDM", "--data", str(tiny_data), "--steps", "2", "--batch-size", "2",
                                   "--run-dir", str(run), "--device", "cpu", "--sample-every", "0",
                                   "--no-progress"])   # no preview: it renders 12 videos of the demo U-Net
    assert res.exit_code == 0, (res.output, res.exception)
    config, model = load_checkpoint(run / "last.safetensors")
    assert config.setting == "LFDM" and config.train.steps == 2 and set(model) == {"lfae", "dm"}
