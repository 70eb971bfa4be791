"""Bad input at the command line: one clear line on stderr, a non-zero exit, no traceback."""

import subprocess
import sys

import pytest

from fv.engine.families import build_model
from fv.engine.checkpoint import save_checkpoint, state_tensors
from tests.tiny import tiny_gan_config


def fv(*args, cwd=None):
    r = subprocess.run([sys.executable, "-m", "fv.cli.main", *map(str, args)], capture_output=True,
                       text=True, cwd=cwd, timeout=300)
    return r.returncode, r.stdout + r.stderr


def assert_one_clear_line(code, out, needle):
    assert code != 0, out
    assert "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], out


def test_unknown_setting(tmp_path):
    assert_one_clear_line(*fv("train", "onlyXY", "--data", tmp_path), "unknown setting 'onlyXY'")


def test_empty_data_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_clear_line(*fv("train", "baseline", "--data", tmp_path / "empty"), "is not a prepared data set")


def test_missing_data_folder(tmp_path):
    assert_one_clear_line(*fv("train", "baseline", "--data", tmp_path / "nope"), "nope")


def test_resume_with_a_checkpoint_of_another_setting(tiny_data, tmp_path):
    cfg = tiny_gan_config("baseline")
    save_checkpoint(tmp_path / "run" / "last.safetensors", cfg, 1,
                    state_tensors("model", build_model(cfg.replace(model=cfg.model)).state_dict()))
    code, out = fv("train", "onlyEM", "--data", tiny_data, "--run-dir", tmp_path / "run", "--steps", "1")
    assert_one_clear_line(code, out, "is a baseline checkpoint; this needs onlyEM")


def test_motion_checkpoint_of_the_wrong_setting(tiny_data, tmp_path):
    cfg = tiny_gan_config("onlyEM")
    p = save_checkpoint(tmp_path / "em.safetensors", cfg, 1, state_tensors("model", build_model(cfg).state_dict()))
    code, out = fv("train", "onlyDM", "--data", tiny_data, "--run-dir", tmp_path / "dm",
                   "--motion-checkpoint", p, "--steps", "1")
    assert_one_clear_line(code, out, "is a onlyEM checkpoint; this needs baseline")


@pytest.mark.parametrize("flag", ["--frame", "--residual"])
def test_target_flag_on_a_gan_setting(tiny_data, tmp_path, flag):
    code, out = fv("train", "baseline", "--data", tiny_data, "--run-dir", tmp_path / "b", flag, "--steps", "1")
    assert_one_clear_line(code, out, f"{flag} is for the diffusion settings, not baseline")


def test_corrupt_motion_checkpoint(tiny_data, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    code, out = fv("train", "onlyDM", "--data", tiny_data, "--run-dir", tmp_path / "dm",
                   "--motion-checkpoint", bad, "--steps", "1")
    assert_one_clear_line(code, out, "not a readable fv checkpoint")


@pytest.mark.parametrize("cmd", [["--help"], ["train", "--help"], ["data", "synth", "--help"]])
def test_help_explains_options(cmd):
    code, out = fv(*cmd)
    assert code == 0 and "Usage" in out


def test_run_folder_without_an_intact_checkpoint(tiny_data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("last.safetensors", "step_000002.safetensors"):
        (run / name).write_bytes(b"cut short")
    code, out = fv("train", "baseline", "--data", tiny_data, "--run-dir", run, "--steps", "3")
    assert_one_clear_line(code, out, "no intact checkpoint")
    assert "last.safetensors, step_000002.safetensors cannot be read" in out and "--fresh" in out
