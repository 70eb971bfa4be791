"""A run folder made whole again after a crash, before training goes on from its checkpoint (issue 15).

A run killed at any moment (SIGKILL, power loss) may leave, besides its intact checkpoints:
  - metrics lines past its newest checkpoint, the last one possibly torn: resuming repeats those steps, so
    the lines are cut back to the checkpoint's step (`trim_metrics`);
  - temporaries of a checkpoint, a last.safetensors copy, a preview or a metrics file being published
    (fv.engine.atomic names them .<stem>.<pid>.tmp<suffix>): removed (`remove_stale_temps`);
  - a last.safetensors that cannot be read (a disk that lost it, a copy cut short outside fv): the newest
    intact step_*.safetensors takes its place (`resume_checkpoint`). Only `fv train --fresh` discards them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from fv.engine.atomic import atomic_write_text, stale_temps
from fv.engine.checkpoint import LAST, Checkpoint, CheckpointError, read_checkpoint

METRICS = "metrics.jsonl"


def checkpoint_files(run_dir: str | Path) -> list[Path]:
    """last.safetensors, then step_*.safetensors newest first: the order resuming tries them in."""
    run_dir = Path(run_dir)
    steps = sorted(run_dir.glob("step_*.safetensors"), reverse=True)   # step_NNNNNN: by name is by step
    return [p for p in [run_dir / LAST] + steps if p.is_file()]


def resume_checkpoint(run_dir: str | Path, log: Callable[[str], None]) -> Checkpoint | None:
    """The checkpoint a run resumes from: last.safetensors, or where it is unreadable the newest intact
    step checkpoint (said in one warning line); None for a folder without checkpoints. Raises one
    CheckpointError line naming the files when none of them can be read."""
    files = checkpoint_files(run_dir)
    bad: list[tuple[Path, CheckpointError]] = []
    for path in files:
        try:
            ckpt = read_checkpoint(path)
        except CheckpointError as e:
            bad.append((path, e))
            continue
        if bad:
            also = f" (also unreadable: {', '.join(p.name for p, _ in bad[1:])})" if bad[1:] else ""
            log(f"warning: {_first_line(bad[0][1])}; resuming from the newest intact checkpoint, {path.name} "
                f"(step {ckpt.step}){also}")
        return ckpt
    if bad:
        raise CheckpointError(f"no intact checkpoint in {run_dir}: {', '.join(p.name for p, _ in bad)} cannot be "
                              f"read ({_first_line(bad[0][1])}); `fv train --fresh` starts the run over")
    return None


def remove_stale_temps(run_dir: str | Path) -> list[Path]:
    """Remove the temporaries killed writers left in the run folder and its samples/ (fv's own naming only)."""
    run_dir = Path(run_dir)
    gone = [p for folder in (run_dir, run_dir / "samples") for p in stale_temps(folder) if p.is_file()]
    for p in gone:
        p.unlink(missing_ok=True)
    return gone


def trim_metrics(path: str | Path, step: int) -> float | None:
    """Cut metrics.jsonl back to the lines of steps <= `step` (the checkpoint resumed from): a torn or
    unreadable line goes too, and a step logged twice (by a run resumed before this fix) keeps its later
    line, so steps increase strictly. Rewritten atomically, only when something goes. Returns the `time`
    of the last line kept (None without one)."""
    path = Path(path)
    if not path.is_file():
        return None
    lines = path.read_text(errors="replace").splitlines(keepends=True)
    keep: list[tuple[int, str]] = []
    for line in lines:
        row = _row(line)
        if row is None or row["step"] > step:
            continue
        while keep and keep[-1][0] >= row["step"]:
            keep.pop()
        keep.append((row["step"], line))
    if len(keep) < len(lines):
        atomic_write_text(path, "".join(line for _, line in keep))
    return _row(keep[-1][1]).get("time") if keep else None


def _row(line: str) -> dict | None:
    """A whole metrics line (newline-terminated JSON object with an integer step), else None."""
    if not line.endswith("\n"):
        return None
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) and isinstance(row.get("step"), int) else None


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]
