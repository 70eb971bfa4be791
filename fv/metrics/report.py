"""metrics.json, Markdown tables shaped like thesis tables 5.2-5.5, and the per-frame plots (figs 5.1-5.7).

Tables (one row per generated set, then the "real data" row; per-emotion blocks in the thesis' order
all, angry, disgust, surprise, sad, happy, fear):
  5.2  FVD                      All, then each emotion              (lower is better)
  5.3  DEA, AEA, DEA_WN, AEA_WN  per group                          (higher is better)
  5.4  ACD-I  per embedder: Cos_d, Cos_rr, Euc_d, Euc_rr             (distance lower, rate higher)
  5.5  ACD-C  same columns, consecutive frames (cyclic)
Plots (matplotlib's Agg canvas, no pyplot state):
  profiles_<set>_<embedder>.png  figs 5.1-5.6: per-frame AEA (top) and ACD-I (bottom), one column per
                                 group, the real data's curve dashed, apex frames 10-21 shaded
  overall_<embedder>.png         fig 5.7: the "all" curves of every set and of the real data
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from fv.engine.atomic import atomic_write, atomic_write_text
from fv.engine.labels import APEX

GROUPS = ("all", "anger", "disgust", "surprise", "sadness", "happiness", "fear")  # thesis tables' order
GROUP_LABELS = {"all": "all", "anger": "angry", "disgust": "disgust", "surprise": "surprise",
                "sadness": "sad", "happiness": "happy", "fear": "fear"}
EMBEDDER_LABELS = {"dlib": "dlib", "vgg-face": "VGG-Face", "openface": "OpenFace", "arcface": "ArcFace"}
EMOTION_COLUMNS = (("dea", "DEA↑"), ("aea", "AEA↑"), ("dea_wn", "DEA WN↑"), ("aea_wn", "AEA WN↑"))
REAL = "real data"


def fmt(value, digits: int = 2) -> str:
    """A table cell: fixed decimals, '–' for missing / NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def scored_rows(metrics: dict) -> list[dict]:
    """The generated sets, then the real data (when it was scored)."""
    return list(metrics["generated"]) + ([metrics["real"]] if metrics.get("real") else [])


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def fvd_table(metrics: dict) -> str:
    """Table 5.2: FVD overall and per emotion; '–' where a group has fewer than 2 clips on a side."""
    rows = []
    for r in scored_rows(metrics):
        f = r.get("fvd") or {}
        name = r["name"] + (f" (vs {f['reference']})" if f.get("reference") else "")
        rows.append([name] + [fmt(f.get(g), 1) for g in GROUPS])
    return _table(["model"] + [GROUP_LABELS[g].capitalize() + "↓" for g in GROUPS], rows)


def emotion_table(metrics: dict) -> str:
    """Table 5.3: DEA, AEA and the WN variants per group and set."""
    rows = []
    for g in GROUPS:
        first = True
        for r in scored_rows(metrics):
            s = (r.get("emotion") or {}).get("groups", {}).get(g)
            if s is None:
                continue
            rows.append([GROUP_LABELS[g] if first else "", r["name"]] + [fmt(s[k]) for k, _ in EMOTION_COLUMNS])
            first = False
    return _table(["", "model"] + [h for _, h in EMOTION_COLUMNS], rows)


def embedders_of(metrics: dict) -> list[str]:
    names: list[str] = []
    for r in scored_rows(metrics):
        names += [e for e in (r.get("identity") or {}) if e not in names]
    return names


def acd_table(metrics: dict, which: str = "acd_i") -> str:
    """Table 5.4 (which="acd_i") or 5.5 ("acd_c"): per embedder cosine / Euclidean distance and rate."""
    embs = embedders_of(metrics)
    header = ["", "model"]
    for e in embs:
        lab = EMBEDDER_LABELS.get(e, e)
        header += [f"{lab} Cos_d↓", f"{lab} Cos_rr↑", f"{lab} Euc_d↓", f"{lab} Euc_rr↑"]
    rows = []
    for g in GROUPS:
        first = True
        for r in scored_rows(metrics):
            ident = r.get("identity") or {}
            cells, found = [], False
            for e in embs:
                for metric in ("cosine", "euclidean"):
                    s = ident.get(e, {}).get(which, {}).get(metric, {}).get(g)
                    found |= s is not None
                    cells += [fmt(s and s["distance"]), fmt(s and s["recognition_rate"])]
            if found:
                rows.append([GROUP_LABELS[g] if first else "", r["name"]] + cells)
                first = False
    return _table(header, rows)


def tables_markdown(metrics: dict) -> str:
    """All tables as one Markdown document."""
    o = metrics.get("options", {})
    rs = metrics.get("real_split", {})
    parts = [f"# fv eval\n\nReal split: `{rs.get('root')}/{rs.get('split')}` ({rs.get('n_videos')} videos). "
             f"FVD feature: I3D {o.get('fvd_feature')}; emotion classifier: {o.get('emotion_model')}; "
             f"identity: {', '.join(o.get('identity_models', ()))}.\n"]
    if any(r.get("fvd") for r in scored_rows(metrics)):
        parts.append("## Table 5.2: FVD (lower is better)\n\n" + fvd_table(metrics) + "\n")
    if any(r.get("emotion") for r in scored_rows(metrics)):
        parts.append("## Table 5.3: emotion accuracy (higher is better)\n\n" + emotion_table(metrics) + "\n")
    if embedders_of(metrics):
        thr = "; ".join(f"{EMBEDDER_LABELS.get(e, e)} "
                        + (", ".join(f"{m} ≤ {t}" for m, t in _thresholds(metrics, e)) or "none")
                        for e in embedders_of(metrics))
        parts.append("## Table 5.4: identity preservation ACD-I (distance lower, recognition rate higher)\n\n"
                     + acd_table(metrics, "acd_i") + f"\n\nRecognition thresholds: {thr}.\n")
        parts.append("## Table 5.5: frame continuity ACD-C (consecutive frames, cyclic)\n\n"
                     + acd_table(metrics, "acd_c") + "\n")
    return "\n".join(parts)


def _thresholds(metrics: dict, embedder: str) -> list[tuple[str, float]]:
    for r in scored_rows(metrics):
        d = (r.get("identity") or {}).get(embedder)
        if d:
            return [(m, gs["all"]["threshold"]) for m, gs in d["acd_i"].items()
                    if gs.get("all", {}).get("threshold") is not None]
    return []


# ----------------------------------------------------------------------------- plots

def aea_profile(row: dict, group: str = "all") -> list[float] | None:
    """[32] fraction of videos whose frame t is classified as the target emotion."""
    g = (row.get("emotion") or {}).get("groups", {}).get(group)
    return None if g is None else g["profile"]


def acd_i_profile(row: dict, embedder: str, group: str = "all", distance: str = "cosine") -> list[float] | None:
    """[32] mean over videos of d(embedding of real f(0), embedding of frame t)."""
    g = (row.get("identity") or {}).get(embedder, {}).get("acd_i", {}).get(distance, {}).get(group)
    return None if g is None else g["profile"]


def _new_figure(rows: int, cols: int, w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(w * cols, h * rows), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False)


def _panel(ax, series: list[tuple[str, list[float] | None, dict]], title: str, ylabel: str) -> None:
    ax.axvspan(APEX.start - 0.5, APEX.stop - 0.5, color="0.92", zorder=0)  # apex frames 10-21
    if ylabel == "AEA":
        ax.set_ylim(-0.03, 1.03)  # a fraction of videos
    for label, ys, style in series:
        if ys is not None:
            ax.plot(range(len(ys)), ys, label=label, **style)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("frame", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)


def profile_figure(metrics: dict, set_name: str, embedder: str | None = None, distance: str = "cosine"):
    """Figs 5.1-5.6 for one set: per-frame AEA and ACD-I per group, with the real data's curves."""
    row = next((r for r in metrics["generated"] if r["name"] == set_name), None)
    if row is None:
        raise KeyError(f"no generated set named {set_name!r}")
    real = metrics.get("real") or {}
    groups = [g for g in GROUPS if aea_profile(row, g) is not None
              or (embedder and acd_i_profile(row, embedder, g, distance) is not None)]
    kinds = [k for k in ("aea", "acd") if k == "aea" and row.get("emotion") or k == "acd" and embedder]
    fig, axes = _new_figure(len(kinds), len(groups), 2.6, 2.2)
    for j, g in enumerate(groups):
        for i, k in enumerate(kinds):
            get = (lambda r: aea_profile(r, g)) if k == "aea" else (lambda r: acd_i_profile(r, embedder, g, distance))
            _panel(axes[i, j], [(set_name, get(row), {"color": "C0"}),
                                (REAL, get(real), {"color": "0.3", "linestyle": "--"})],
                   GROUP_LABELS[g], "AEA" if k == "aea" else f"ACD-I ({EMBEDDER_LABELS.get(embedder, embedder)} "
                   f"{distance})")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{set_name}: per-frame AEA and ACD-I", fontsize=10)
    return fig


def overall_figure(metrics: dict, embedder: str | None = None, distance: str = "cosine"):
    """Fig 5.7: the "all" AEA and ACD-I curves of every generated set and of the real data."""
    rows = scored_rows(metrics)
    kinds = [k for k in ("aea", "acd") if k == "aea" and any(r.get("emotion") for r in rows) or k == "acd" and embedder]
    fig, axes = _new_figure(1, len(kinds), 4.0, 3.0)
    for i, k in enumerate(kinds):
        series = [(r["name"], aea_profile(r) if k == "aea" else acd_i_profile(r, embedder, "all", distance),
                   {"color": "0.3", "linestyle": "--"} if r is metrics.get("real") else {"color": f"C{n}"})
                  for n, r in enumerate(rows)]
        _panel(axes[0, i], series, "all emotions",
               "AEA" if k == "aea" else f"ACD-I ({EMBEDDER_LABELS.get(embedder, embedder)} {distance})")
    axes[0, 0].legend(fontsize=7)
    return fig


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "set"


def _finite(x):
    """NaN / inf -> None, so metrics.json stays strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def write_report(metrics: dict, out: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write metrics.json, tables.md and (plots=True) the PNGs under out/plots; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"metrics": atomic_write_text(out / "metrics.json", json.dumps(_finite(metrics), indent=2)),
             "tables": atomic_write_text(out / "tables.md", tables_markdown(metrics))}
    if not plots:
        return files
    (out / "plots").mkdir(exist_ok=True)
    embs = embedders_of(metrics) or [None]
    for e in embs:
        tag = f"_{e}" if e else ""
        for r in metrics["generated"]:
            fig = profile_figure(metrics, r["name"], e)
            files[f"profiles_{r['name']}{tag}"] = atomic_write(
                out / "plots" / f"profiles_{slug(r['name'])}{tag}.png", lambda p: fig.savefig(p, format="png", dpi=110))
        fig = overall_figure(metrics, e)
        files[f"overall{tag}"] = atomic_write(out / "plots" / f"overall{tag}.png",
                                              lambda p: fig.savefig(p, format="png", dpi=110))
    return files
