"""Throughput of the sampling engine: frames/s and videos/s per backend, sampler and step count.

Method (nanoGPT bench.py style): one warm-up render per configuration (allocations, ONNX Runtime
session set-up, CUDA graphs, compilation), then `repeats` timed renders of `videos` requests each;
the engine returns host arrays, so each timing includes the device synchronisation. Reports medians.

Efficiency (issue 23): `passes` is the network passes a video's render makes (its sampler's visited steps,
twice with guidance: fv runs both halves in one call, over all of a video's frames); `GFLOP/frame` is counted
once per configuration by torch.utils.flop_counter over one PyTorch render of one video (matmuls and
convolutions, 2 FLOP per multiply-add) over its 32 frames, the same work whatever the backend; `peak` is this
machine's fp32 matmul rate measured in the same run (a 2048 x 2048 torch.mm, the median of 5), and `% peak`
the share of it a configuration reaches (GFLOP/frame x frames/s over the peak).
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
from fv.engine.samplers import steps_from


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
    peak = matmul_peak_gflops(device)
    log(f"[fv bench] {setting}: fp32 matmul peak of this {device} {peak:.1f} GFLOP/s")
    flops: dict[tuple, float] = {}
    for backend in backends:
        for sampler in samplers:
            for n_steps in steps:
                # ref_strength 1: start from pure noise, so the table's step count is the number of steps run
                one_pass = sampler == "single-pass"
                kw = {} if one_pass else dict(sampler=sampler, steps=n_steps, guidance=guidance, ref_strength=1.0)
                log(f"[fv bench] {backend} {sampler} steps={0 if one_pass else n_steps}: warm-up, then {repeats} "
                    f"timed renders of {videos} videos")
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
                key = (sampler, n_steps)
                if key not in flops:
                    flops[key] = render_gflops(checkpoint, device, kw, faces[:1]) / 32
                passes = 1 if one_pass else steps_from(config.model.num_steps, engine.options.steps, 1.0) * (
                    1 if engine.options.guidance == 1 else 2)
                fps = videos * 32 / t
                rows.append({"setting": setting, "backend": backend, "sampler": sampler,
                             "steps": 0 if one_pass else n_steps,
                             "guidance": None if one_pass else engine.options.guidance,
                             "videos": videos, "seconds": round(t, 4),
                             "videos_per_s": round(videos / t, 4), "frames_per_s": round(fps, 2),
                             "passes_per_video": passes, "gflop_per_frame": round(flops[key], 4),
                             "peak_gflops": round(peak, 2), "share_of_peak": round(flops[key] * fps / peak, 4),
                             "device": str(engine.device), "precision": precision})
                log(f"{backend:12s} {sampler:7s} steps={rows[-1]['steps']:<4} {fps:9.1f} frames/s, "
                    f"{100 * rows[-1]['share_of_peak']:.1f}% of peak")
    return rows


def matmul_peak_gflops(device: str = "cpu", n: int = 2048, repeats: int = 5) -> float:
    """This machine's fp32 matmul rate: 2 n^3 FLOP over the median time of a torch.mm of two n x n matrices."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def render_gflops(checkpoint: str | Path, device: str, options: dict, face: torch.Tensor) -> float:
    """GFLOP of one PyTorch render of one video (torch.utils.flop_counter: matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode
    engine = Engine(checkpoint, backend="torch", device=device, **options)
    counter = FlopCounterMode(display=False)
    with counter:
        engine.render(face, torch.zeros(1, dtype=torch.long), [0])
    return counter.get_total_flops() / 1e9


def environment() -> dict:
    env = {"torch": torch.__version__, "python": platform.python_version(), "cpu": platform.processor(),
           "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


SHORT = {"onnxruntime": "ort", "tensorrt": "trt", "single-pass": "one pass"}   # the table's names (80 columns)


def print_table(rows: list[dict]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    # fits an 80-column terminal whole: short headers, no vertical rules (seconds per run are in the JSON)
    caption = None
    if rows:
        r0 = rows[0]
        caption = (f"{r0['setting']}, guidance {r0['guidance']}, {r0['videos']} videos per run; passes: network "
                   f"passes per video; GF/fr: GFLOP per frame; ort: ONNX Runtime; trt: TensorRT; fp32 matmul peak "
                   f"{r0['peak_gflops']:.0f} GFLOP/s")
    table = Table(title="fv sampling throughput (median of repeats)", box=box.SIMPLE_HEAD, pad_edge=False,
                  caption=caption)
    for col in ("backend", "sampler", "steps", "passes", "video/s", "frame/s", "GF/fr", "%peak"):
        table.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    for r in rows:
        table.add_row(SHORT.get(r["backend"], r["backend"]), SHORT.get(r["sampler"], r["sampler"]), str(r["steps"]),
                      str(r["passes_per_video"]), f"{r['videos_per_s']:.2f}", f"{r['frames_per_s']:.1f}",
                      f"{r['gflop_per_frame']:.3f}", f"{100 * r['share_of_peak']:.1f}")
    Console().print(table)


def write_json(path: str | Path, rows: list[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"environment": environment(), "results": rows}, indent=2))
    return path
