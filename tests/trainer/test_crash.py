"""Crash-clean run folders (issue 15): a run SIGKILLed at any moment, even mid-checkpoint, resumes to the
uninterrupted run's weights with one whole metrics line per step and no temporaries left; an unreadable
last.safetensors falls back to the newest intact step checkpoint; `time` goes on from the checkpoint."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from fv.engine.checkpoint import CheckpointError
from fv.trainer.loop import Trainer
from fv.trainer.run_folder import trim_metrics
from tests.tiny import tiny_gan_config

WORKER = Path(__file__).with_name("crash_worker.py")
STEPS, EVERY = 8, 3                       # checkpoints at steps 3, 6 and 8


def train(data, run_dir, steps=STEPS, every=EVERY, log=lambda m: None) -> Path:
    return Trainer(tiny_gan_config(steps=steps, ckpt_every=every), data, run_dir, progress=False, log=log).fit()


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory) -> dict[str, torch.Tensor]:
    """The uninterrupted run's final checkpoint (one thread, as the tests and the child train: the same sums)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)      # module fixtures start before conftest's per-test one-thread fixture
    try:
        return load_file(train(tiny_data, tmp_path_factory.mktemp("uninterrupted")))
    finally:
        torch.set_num_threads(threads)


def worker(data, run_dir, *kill) -> subprocess.Popen:
    cmd = [sys.executable, str(WORKER), str(data), str(run_dir), str(STEPS), str(EVERY), *map(str, kill)]
    return subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE, text=True)


def logged_steps(run_dir: Path) -> list[int]:
    text = (run_dir / "metrics.jsonl").read_text()
    assert text.endswith("\n"), "a torn last line"
    return [json.loads(line)["step"] for line in text.splitlines()]


def temporaries(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.rglob(".*"))


def assert_whole(run_dir: Path, reference: dict[str, torch.Tensor]) -> None:
    """Resumed to the end: the uninterrupted weights, each step logged once, no temporary, one file mode."""
    final = load_file(run_dir / "last.safetensors")
    assert final.keys() == reference.keys()
    for k in reference:
        assert torch.equal(final[k], reference[k]), k
    assert logged_steps(run_dir) == list(range(1, STEPS + 1))
    assert temporaries(run_dir) == []
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in run_dir.iterdir() if p.is_file()}
    assert set(modes.values()) == {oct(0o666 & ~umask)}, modes          # as config.json, as open() makes


def test_sigkill_between_checkpoints_resumes_cleanly(tiny_data, tmp_path, reference):
    """Killed at a random moment after step 4 or 5 was logged (its newest checkpoint is step 3's)."""
    rng = random.Random()
    after, pause = rng.choice([4, 5]), rng.uniform(0, 0.05)
    run = tmp_path / "run"
    child = worker(tiny_data, run)
    deadline = time.time() + 120
    while child.poll() is None and time.time() < deadline:
        lines = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() else []
        if len(lines) >= after:
            time.sleep(pause)
            break
        time.sleep(0.005)
    assert child.poll() is None, f"the child ended before it was killed: {child.stderr.read()[-2000:]}"
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stderr.close()
    before = (run / "metrics.jsonl").read_text().splitlines()
    assert len(before) >= after > 3, (after, pause)     # steps past the checkpoint that resuming repeats
    logs = []
    train(tiny_data, run, log=logs.append)
    assert logs[0].endswith("last.safetensors at step 3"), (logs, after, pause)
    assert_whole(run, reference)


@pytest.mark.parametrize("what", ["step", "last"])
def test_sigkill_mid_checkpoint_resumes_cleanly(tiny_data, tmp_path, reference, what):
    """Killed while step 6's checkpoint (or its copy to last.safetensors) was half written: the temporary
    is removed, the run goes on from step 3's checkpoint and repeats steps 4-6 once each."""
    run = tmp_path / "run"
    child = worker(tiny_data, run, what, 6)
    _, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, err[-2000:]
    pid = child.pid
    name = "step_000006" if what == "step" else "last"
    assert temporaries(run) == [f".{name}.{pid}.tmp.safetensors"]
    assert logged_steps(run) == list(range(1, 7))
    logs = []
    train(tiny_data, run, log=logs.append)
    assert any("removed 1 temporary file" in m for m in logs), logs
    assert_whole(run, reference)


def test_unreadable_last_falls_back_to_the_newest_intact_step_checkpoint(tiny_data, tmp_path, reference):
    run = tmp_path / "run"
    train(tiny_data, run, steps=4, every=2)                    # step_000002, step_000004, last (= 4)
    for name in ("last", "step_000004"):                      # cut short, as a lost disk or copy leaves them
        path = run / f"{name}.safetensors"
        path.write_bytes(path.read_bytes()[:1000])
    logs = []
    t = Trainer(tiny_gan_config(steps=STEPS, ckpt_every=EVERY), tiny_data, run, progress=False, log=logs.append)
    warnings = [m for m in logs if "warning" in m]
    assert t.start == 2 and len(warnings) == 1 and "\n" not in warnings[0], logs
    assert "last.safetensors" in warnings[0] and "step_000002.safetensors (step 2)" in warnings[0]
    assert "step_000004.safetensors" in warnings[0]
    t.fit()
    assert_whole(run, reference)


def test_no_intact_checkpoint_is_one_error_line_naming_the_files(tiny_data, tmp_path):
    train(tiny_data, tmp_path, steps=2, every=1)
    for p in tmp_path.glob("*.safetensors"):
        p.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError) as e:
        Trainer(tiny_gan_config(steps=3), tiny_data, tmp_path, progress=False, log=lambda m: None)
    msg = str(e.value)
    assert "\n" not in msg and "no intact checkpoint" in msg and "--fresh" in msg
    for name in ("last.safetensors", "step_000001.safetensors", "step_000002.safetensors"):
        assert name in msg


def rewrite_meta(path: Path, **meta) -> None:
    """The checkpoint with its fv.meta replaced (None values removed)."""
    with safe_open(str(path), framework="pt") as f:
        md = f.metadata()
    new = {k: v for k, v in {**json.loads(md["fv.meta"]), **meta}.items() if v is not None}
    save_file(load_file(path), str(path), metadata={**md, "fv.meta": json.dumps(new)})


@pytest.mark.parametrize("record", ["checkpoint", "metrics", "none"])
def test_time_goes_on_from_the_checkpoint(tiny_data, tmp_path, record):
    """`time` on resuming goes on from the checkpoint's elapsed seconds; a checkpoint older than that record
    goes on from the last metrics line kept, or from 0 without one."""
    train(tiny_data, tmp_path, steps=2, every=2)
    assert json.loads(safe_open(str(tmp_path / "last.safetensors"), "pt").metadata()["fv.meta"])["elapsed"] > 0
    metrics = tmp_path / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    rows[-1]["time"] = 500.0
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows + [{"step": 3, "time": 9e9}]))  # beyond it
    if record == "none":
        metrics.unlink()
    rewrite_meta(tmp_path / "last.safetensors", elapsed=1000.0 if record == "checkpoint" else None)
    train(tiny_data, tmp_path, steps=4, every=2)
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    start = {"checkpoint": 1000.0, "metrics": 500.0, "none": 0.0}[record]
    assert [r["step"] for r in rows[-2:]] == [3, 4]
    assert start < rows[-2]["time"] <= rows[-1]["time"] < start + 60, rows
    resumed = json.loads(safe_open(str(tmp_path / "last.safetensors"), "pt").metadata()["fv.meta"])["elapsed"]
    assert rows[-1]["time"] <= resumed < start + 60


def test_trim_metrics_keeps_whole_lines_up_to_the_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = ['{"step": 1, "time": 1.0}', '{"step": 2, "time": 2.0}', '{"step": 3, "time": 3.0}',
             '{"step": 2, "time": 4.0}', "garbage", '{"step": 3, "time": 5.0}', '{"step": 4, "time": 6.0}']
    path.write_text("\n".join(lines) + '\n{"step": 5, "ti')                  # a repeat, garbage, a torn end
    assert trim_metrics(path, 3) == 5.0
    assert path.read_text().splitlines() == [lines[0], lines[3], lines[5]]
    before = path.stat().st_mtime_ns
    assert trim_metrics(path, 3) == 5.0 and path.stat().st_mtime_ns == before      # nothing to cut: untouched
    assert trim_metrics(tmp_path / "absent.jsonl", 3) is None
