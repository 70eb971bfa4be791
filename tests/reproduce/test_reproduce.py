"""`fv reproduce` on its tiny preset: a run killed mid-way and re-run redoes no finished stage and ends with the
uninterrupted run's report; a damaged or mismatched stage record, or a changed output, redoes its stage;
and the pieces the report is made of (the bootstrap's fast FVD, the stage records, the findings' comparisons,
the training order)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fv.reproduce import records
from fv.reproduce.findings import compare
from fv.reproduce.plan import budget, needs, torchrun_plan, training_order
from fv.reproduce.run import run_reproduce, stage_names

QUIET = dict(progress=False, log=lambda m: None, device="cpu")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    import torch
    out = tmp_path_factory.mktemp("uninterrupted") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # as the tests' runs (conftest's fixture comes after this module-scoped one)
    try:
        p = run_reproduce(out, budget("tiny"), **QUIET)
    finally:
        torch.set_num_threads(threads)
    assert p.reused == [] and set(p.seconds) == set(stage_names())
    return out


def _records(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / records.RECORDS).glob("*.json"))}


@pytest.mark.slow
def test_a_killed_run_continues_without_redoing_finished_stages(uninterrupted, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "fv.cli.main", "reproduce", "--preset", "tiny", "--out", str(out), "--device",
           "cpu", "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = records.record_path(out, "train-baseline")
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not first.exists() and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL   # still running: killed by us, not finished or failed
    before = _records(out)
    assert {"data.json", "train-baseline.json"} <= set(before) and "report.json" not in before
    assert not (out / "report.md").exists()
    p = run_reproduce(out, budget("tiny"), **QUIET)
    finished = [n for n in stage_names() if records.record_path(out, n).name in before]
    assert p.reused == finished                                   # nothing finished was done again
    after = _records(out)
    assert {k: after[k] for k in before} == before                # their records untouched
    for name in ("report.json", "report.md"):                     # same seeds: the same numbers
        assert (out / name).read_bytes() == (uninterrupted / name).read_bytes()
    again = run_reproduce(out, budget("tiny"), **QUIET)           # a finished run: everything reused
    assert again.reused == stage_names()


@pytest.mark.slow
def test_a_damaged_or_mismatched_stage_is_redone(uninterrupted, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(uninterrupted, out)
    records.record_path(out, "train-LFDM").write_text('{"format": 1, "stage": "train-LF')      # torn record
    rec = json.loads(records.record_path(out, "train-onlyEM").read_text())
    rec["key"]["train"]["steps"] = 2                                                        # other config
    records.record_path(out, "train-onlyEM").write_text(json.dumps(rec))
    lines = []
    p = run_reproduce(out, budget("tiny"), progress=False, log=lines.append, device="cpu")
    redone = [n for n in stage_names() if n not in p.reused]
    # the copy's render sets name the original's data folder (render_set.json): they are redone too
    assert {"train-LFDM", "train-onlyEM", "render-baseline", "eval", "report"} <= set(redone)
    assert {"data", "train-baseline", "train-onlyDM", "train-embedder"} <= set(p.reused)
    why = " ".join(lines)
    assert "train-LFDM.json cannot be read" in why and "train-onlyEM.json was made with another configuration" in why
    assert (out / "report.json").read_bytes() == (uninterrupted / "report.json").read_bytes()


def test_a_record_is_reused_only_when_key_and_outputs_match(tmp_path):
    f = tmp_path / "a" / "x.bin"
    f.parent.mkdir()
    f.write_bytes(b"abc")
    key = {"k": 1, "t": (1, 2)}
    assert records.check(tmp_path, "s", key).state == "missing"
    records.write_record(tmp_path, "s", key, {"x": f.parent}, 1.5)
    assert records.check(tmp_path, "s", key).state == "done"
    assert records.check(tmp_path, "s", {"k": 2, "t": (1, 2)}).state == "stale"
    (f.parent / ".x.123.tmp.bin").write_bytes(b"half")       # a killed writer's temporary is not an output
    assert records.check(tmp_path, "s", key).state == "done"
    f.write_bytes(b"abd")
    c = records.check(tmp_path, "s", key)
    assert c.state == "stale" and "is not what the record says" in c.reason
    records.record_path(tmp_path, "s").write_text("{")
    assert records.check(tmp_path, "s", key).state == "stale"


def test_compare_calls_a_difference_only_above_twice_the_spread():
    a, b = {"fv": 100.0, "spread": 10.0}, {"fv": 150.0, "spread": 10.0}
    assert compare(a, b, lower_better=True) == "better"       # 50 > 2 * sqrt(200) = 28.3
    assert compare(b, a, lower_better=True) == "worse"
    assert compare(a, {"fv": 120.0, "spread": 10.0}, lower_better=True) == "tied"
    assert compare({"fv": 0.7, "spread": None}, {"fv": 0.6, "spread": None}, lower_better=False) == "better"
    assert compare(a, None, lower_better=True) is None


def test_every_network_is_trained_after_what_it_needs():
    order = training_order()
    assert sorted(order) == sorted(["baseline", "onlyEM", "onlyDM", "EM-DM", "embedder", "both_retrievedMcs", "LFDM"])
    assert needs("onlyDM") == {"motion": "baseline"} and needs("EM-DM") == {"motion": "onlyEM"}
    assert needs("both_retrievedMcs") == {"embedder": "embedder"} and needs("LFDM") == {}
    for s in order:
        assert all(order.index(d) < order.index(s) for d in needs(s).values())


def test_the_thesis_plan_is_torchrun_commands_in_training_order(tmp_path):
    lines = torchrun_plan(budget("thesis"), Path("/mug"), tmp_path, gpus=4)
    train = [line for line in lines if line.startswith("torchrun")]
    assert [line.split()[6] for line in train] == training_order()
    assert all("--nproc_per_node=4" in line and "--preset thesis" in line for line in train)
    em_dm = next(line for line in train if " EM-DM " in line)
    assert f"--motion-checkpoint {tmp_path / 'runs' / 'onlyEM' / 'last.safetensors'}" in em_dm
    assert any(line.startswith("fv eval") for line in lines)


def _fv(*args):
    return subprocess.run([sys.executable, "-m", "fv.cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_cli_bad_input_is_one_line(tmp_path):
    r = _fv("reproduce", "--preset", "thesis", "--out", tmp_path)
    assert r.returncode == 2 and "needs --data" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _fv("reproduce", "--preset", "huge", "--out", tmp_path)
    assert r.returncode == 2 and "--preset must be one of tiny, demo, thesis" in r.stderr
    r = _fv("reproduce", "--preset", "tiny", "--steps", "0", "--out", tmp_path)
    assert r.returncode == 2 and "--steps" in r.stderr
    r = _fv("reproduce", "--preset", "thesis", "--data", tmp_path, "--out", tmp_path / "o", "--plan", "--gpus", "2")
    assert r.returncode == 0 and "torchrun --standalone --nproc_per_node=2" in r.stdout + r.stderr
    assert not (tmp_path / "o").exists()                       # a plan writes nothing
