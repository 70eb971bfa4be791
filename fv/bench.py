"""Throughput of the sampling engine: frames/s and videos/s per backend, sampler and step count.

Method (nanoGPT bench.py style): one warm-up render per configuration (allocations, ONNX Runtime
session set-up, CUDA graphs, compilation), then `repeats` timed renders of `videos` requests each;
the engine returns host arrays, so each timing includes the device synchronisation. Reports medians.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from fv.engine.checkpoint import read_checkpoint
from fv.engine.engine import Engine
from fv.engine.families import family_of


def throughput(checkpoint: str | Path, backends=("torch",), samplers=("ddim",), steps=(10,), videos: int = 4,
               repeats: int = 3, device: str = "cpu", guidance: float | None = None,
               artifacts_dir: str | Path | None = None, max_frames_per_call: int = 512,
               precision: str = "fp32", log: Callable[[str], None] = print) -> list[dict]:
    config = read_checkpoint(checkpoint).config
    setting = config.setting
    if family_of(config).sample_options(config) is None:   # one pass, no sampler (the GAN settings)
        samplers, steps = ("single-pass",), (1,)
    if any(b != "torch" for b in backends):
        from fv.export.stages import export_checkpoint
        export_checkpoint(checkpoint, artifacts_dir, trt="tensorrt" in backends,
                          precision=precision if "tensorrt" in backends else "fp32", log=log)
    emotions = torch.arange(videos) % 6
    seeds = list(range(videos))
    rows = []
    for backend in backends:
        for sampler in samplers:
            for n_steps in steps:
                # ref_strength 1: start from pure noise, so the table's step count is the number of steps run
                one_pass = sampler == "single-pass"
                kw = {} if one_pass else dict(sampler=sampler, steps=n_steps, guidance=guidance, ref_strength=1.0)
                engine = Engine(checkpoint, backend=backend, device=device, artifacts_dir=artifacts_dir,
                                max_frames_per_call=max_frames_per_call,
                                precision=precision if backend != "onnxruntime" else "fp32", **kw)
                size = engine.image_size
                faces = torch.rand(videos, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
                engine.render(faces[:1], emotions[:1], seeds[:1])          # warm-up
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    engine.render(faces, emotions, seeds)
                    times.append(time.perf_counter() - t0)
                t = statistics.median(times)
                rows.append({"setting": setting, "backend": backend, "sampler": sampler,
                             "steps": 0 if one_pass else n_steps,
                             "guidance": None if one_pass else engine.options.guidance,
                             "videos": videos, "seconds": round(t, 4),
                             "videos_per_s": round(videos / t, 4), "frames_per_s": round(videos * 32 / t, 2),
                             "device": str(engine.device), "precision": precision})
                log(f"{backend:12s} {sampler:5s} steps={rows[-1]['steps']:<4d} {rows[-1]['frames_per_s']:9.1f} frames/s")
    return rows


def environment() -> dict:
    env = {"torch": torch.__version__, "python": platform.python_version(), "cpu": platform.processor(),
           "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table
    table = Table(title="fv sampling throughput (median of repeats)")
    for col in ("setting", "backend", "sampler", "steps", "guidance", "videos", "seconds", "videos/s", "frames/s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["setting"], r["backend"], r["sampler"], str(r["steps"]), str(r["guidance"]),
                      str(r["videos"]), f"{r['seconds']:.3f}", f"{r['videos_per_s']:.3f}", f"{r['frames_per_s']:.1f}")
    Console().print(table)


def write_json(path: str | Path, rows: list[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"environment": environment(), "results": rows}, indent=2))
    return path
