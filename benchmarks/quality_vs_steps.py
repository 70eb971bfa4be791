"""Quality against sampling time (issue 23): one checkpoint, the same test videos and seeds, every sampler row.
Prints a Markdown table, writes JSON and a plot of FVD against seconds per video.

    python benchmarks/quality_vs_steps.py [--checkpoints onlyDM,LFDM] [--rows ddpm:1000,ddim:50,...]
        [--shards 0/13] [--backend onnxruntime] [--data data/synth_v2] [--bootstrap 200]
        [--work bench_out/quality_vs_steps] [--out benchmarks/quality_vs_steps.json]

Videos: `fv render-set` of the test split with each row's sampler and steps (guidance and ref_strength stay the
checkpoint's). --shards i,j/n renders the videos whose row % n is i or j: with n = 13 one shard is 12 of the 144
test videos, one of each of the 12 held-out identities, every emotion twice (12 identities x 6 emotions x 2
takes, row = 12 identity + 2 emotion + take); 0,1,2,3/13 is 45. Seeds come from the video ids, so every row
samples the same x_T. Resumable: render-set keeps finished videos, and a row's time is written once it is whole
(a row finished across runs is timed by its last run, over the videos that run made).
Scores: one `fv eval` of all rows against the whole real test split: FVD (I3D logits) with the bootstrap
spread over the generated videos (fv.reproduce.report.bootstrap_fvd), AEA (FER classifier "wtf") and ACD-I (dlib,
Euclidean). Seconds per video: the row's rendering wall time over its videos on this machine, the engine built
beforehand; passes: network passes per frame (visited steps, twice with guidance, which fv runs in one batch).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fv.engine.atomic import atomic_write_text  # noqa: E402

ROWS = ("ddpm:1000,ddim:50,ddim:25,ddim:10,dpmpp2m:linspace20,dpmpp2m:linspace10,dpmpp2m:linspace5,"
        "unipc:linspace10,unipc:linspace5")
CHECKPOINTS = ROOT / "fv" / "assets" / "checkpoints"


def row_name(row: str) -> str:
    sampler, steps = row.split(":")
    return f"{sampler}-{steps}"


def render_row(ckpt: Path, row: str, shards: tuple[list[int], int], backend: str, data: Path, out: Path) -> dict:
    """Render one row's videos (what is missing) and return {seconds_per_video, videos, passes}."""
    from fv.data.layout import load_split
    from fv.engine.engine import Engine
    from fv.engine.render_set import read_index, render_set
    from fv.engine.samplers import steps_from
    from fv.cli.common import steps_spec
    timing = out / "timing.json"
    if timing.exists():                      # a finished row: its record, no engine built
        return json.loads(timing.read_text())
    sampler, steps = row.split(":")
    eng = Engine(ckpt, backend=backend, device="cpu", sampler=sampler,
                 steps=steps_spec(steps))    # N is ddimN, as `fv render --steps N`
    o = eng.options
    passes = steps_from(eng.config.model.num_steps, o.steps, o.ref_strength) * (2 if o.guidance != 1 else 1)
    split = load_split(data, "test")
    made, t0 = 0, time.perf_counter()
    for i in shards[0]:
        res = render_set(eng, split.clips64[:, 0], split.rows, out, "test", (i, shards[1]), progress=True,
                         data=str(split.root))
        made += res.rendered
    seconds = time.perf_counter() - t0
    rec = {"row": row, "videos": len(read_index(out)), "timed_videos": made,
           "seconds_per_video": seconds / made if made else None, "passes_per_frame": passes,
           "sampler": sampler, "steps": steps, "guidance": o.guidance, "ref_strength": o.ref_strength,
           "backend": backend}
    atomic_write_text(timing, json.dumps(rec, indent=1))
    return rec


def score(sets: dict[str, Path], data: Path, cache: Path, bootstrap: int) -> dict[str, dict]:
    from fv.metrics.evaluate import EvalOptions, evaluate
    from fv.reproduce.report import fvd_spreads
    opts = EvalOptions(data=str(data), split="test", cache_dir=str(cache), real=False)
    names = list(sets)
    metrics = evaluate([sets[n] for n in names], opts, out=cache.parent / f"{cache.name}-eval", names=names,
                       progress=True)
    spreads = fvd_spreads(sets, opts, bootstrap)
    out = {}
    for r in metrics["generated"]:
        emo = (r.get("emotion") or {}).get("groups", {}).get("all", {})
        ide = ((r.get("identity") or {}).get("dlib") or {}).get("acd_i", {})
        out[r["name"]] = {"fvd": (r.get("fvd") or {}).get("all"), "fvd_spread": spreads[r["name"]]["all"],
                          "aea": emo.get("aea"),
                          "acd_i": (ide.get("euclidean") or {}).get("all", {}).get("distance")}   # dlib: Euclidean
    return out


def table(results: dict) -> str:
    lines = ["| checkpoint | sampler | steps | passes/frame | s/video | FVD | AEA | ACD-I |", "|" + "---|" * 8]
    for ck, rows in results.items():
        for name, r in rows.items():
            def f(v, d=2):
                return "–" if v is None else f"{v:.{d}f}"
            fvd = "–" if r.get("fvd") is None else f"{r['fvd']:.0f} ± {f(r.get('fvd_spread'), 0)}"
            lines.append(f"| {ck} | {r['sampler']} | {r['steps']} | {r['passes_per_frame']} | "
                         f"{f(r.get('seconds_per_video'))} | {fvd} | {f(r.get('aea'))} | {f(r.get('acd_i'))} |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for ck, rows in results.items():
        pts = [(r["seconds_per_video"], r["fvd"], n) for n, r in rows.items()
               if r.get("seconds_per_video") and r.get("fvd") is not None]
        if not pts:
            continue
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=ck)
        for x, y, n in pts:
            ax.annotate(n, (x, y), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("seconds per video (this CPU)")
    ax.set_ylabel("FVD (lower is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoints", default="onlyDM,LFDM")
    ap.add_argument("--rows", default=ROWS)
    ap.add_argument("--shards", default="0/13")
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "synth_v2")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--work", type=Path, default=ROOT / "bench_out" / "quality_vs_steps")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "quality_vs_steps.json")
    ap.add_argument("--no-score", action="store_true", help="render (and time) only")
    a = ap.parse_args()
    which, n = a.shards.split("/")
    shards = ([int(i) for i in which.split(",")], int(n))
    results: dict[str, dict] = {}
    for ck in a.checkpoints.split(","):
        path = Path(ck) if Path(ck).suffix else CHECKPOINTS / f"{ck}.safetensors"
        rows = {}
        for row in a.rows.split(","):
            out = a.work / f"{path.stem}-{a.shards.replace('/', 'of').replace(',', '+')}" / row_name(row)
            print(f"[quality_vs_steps] {path.stem} {row} -> {out}", flush=True)
            rows[row_name(row)] = {**render_row(path, row, shards, a.backend, a.data, out), "dir": str(out)}
        results[path.stem] = rows
    if not a.no_score:
        for ck, rows in results.items():
            scores = score({n: Path(r["dir"]) for n, r in rows.items()}, a.data, a.work / f"{ck}-cache", a.bootstrap)
            for n, s in scores.items():
                rows[n].update(s)
    md = table(results)
    print(md)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out, json.dumps({"shards": a.shards, "backend": a.backend, "results": results}, indent=1))
    atomic_write_text(a.out.with_suffix(".md"), md + "\n")
    if not a.no_score:
        plot(results, a.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
