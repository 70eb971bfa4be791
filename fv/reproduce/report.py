"""The report of `fv reproduce`: fv's tables 5.2-5.5 beside the thesis' (fv.reproduce.thesis), with spreads,
and the thesis' findings checked one by one (issue 22).

Spreads:
  FVD     bootstrap over the generated videos (resampled with replacement, the real split fixed): the standard
          deviation of `bootstrap` resamples of each set's I3D features (read back from eval's cache). Each
          resample's FVD is fv.metrics.frechet.frechet_distance_low_rank (an n_r x n_g SVD instead of a D x D
          square root), so hundreds of resamples take seconds.
  DEA/AEA binomial standard error over the videos, sqrt(p (1 - p) / n) (exact for DEA, a bound for AEA).
  ACD     none: metrics.json keeps no per-video distances; a difference counts only above
          fv.reproduce.findings.ACD_MARGIN.
A finding holds where the difference it claims is larger than twice the spread of the difference
(sqrt(s_a^2 + s_b^2)), does not hold where the opposite difference is, and cannot be told apart otherwise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from fv.engine.atomic import atomic_write_text
from fv.engine.labels import EMOTIONS
from fv.metrics.frechet import frechet_distance_low_rank
from fv.metrics.report import EMBEDDER_LABELS, GROUP_LABELS, GROUPS, fmt
from fv.reproduce import thesis
from fv.reproduce.findings import check_findings

EMO_KEYS = ("dea", "aea", "dea_wn", "aea_wn")


# ---------------------------------------------------------------------- FVD spread

def bootstrap_fvd(real: np.ndarray, real_em: np.ndarray, gen: np.ndarray, gen_em: np.ndarray, n: int,
                  seed: int = 0) -> dict[str, float | None]:
    """group -> standard deviation of FVD over `n` resamples of the generated videos (None: under 2 per side)."""
    out: dict[str, float | None] = {}
    for g in GROUPS:
        r = real if g == "all" else real[real_em == EMOTIONS.index(g)]
        x = gen if g == "all" else gen[gen_em == EMOTIONS.index(g)]
        if len(r) < 2 or len(x) < 2 or n < 2:
            out[g] = None
            continue
        rng = np.random.default_rng([seed, GROUPS.index(g)])
        fvds = [frechet_distance_low_rank(r, x[rng.integers(0, len(x), len(x))]) for _ in range(n)]
        out[g] = float(np.std(fvds, ddof=1))
    return out


def fvd_spreads(sets: dict[str, Path], options, n: int) -> dict[str, dict[str, float | None]]:
    """setting -> group -> FVD's bootstrap spread, from the I3D features eval cached."""
    from fv.data.layout import load_split
    from fv.metrics.generated import load_generated, real_clip_set
    from fv.metrics.scorer import Scorer
    real = load_split(options.data, options.split)
    cache = Path(options.cache_dir)
    scorer = Scorer(options, cache)
    real_feats = scorer.features(real_clip_set(real).clips)
    out = {}
    for name, path in sets.items():
        s = load_generated(path, real, options.crop, cache, name)
        out[name] = bootstrap_fvd(real_feats, np.asarray(real.emotions), scorer.features(s.clips),
                                  np.asarray(s.emotions), n)
    return out


# ---------------------------------------------------------------------- tables

def collect(metrics: dict, spreads: dict) -> dict:
    """report.json's numbers: per setting and group, fv's value, its spread and the thesis' value."""
    rows = {r["name"]: r for r in metrics["generated"]}
    fvd, emo, acd = {}, {}, {"acd_i": {}, "acd_c": {}}
    for s, r in rows.items():
        f = r.get("fvd") or {}
        fvd[s] = {g: {"fv": f.get(g), "spread": (spreads.get(s) or {}).get(g),
                      "thesis": thesis.FVD.get(s, (None,) * 7)[i]} for i, g in enumerate(GROUPS)}
        groups = (r.get("emotion") or {}).get("groups", {})
        emo[s] = {}
        for g in GROUPS:
            have, th = groups.get(g), thesis.EMOTION.get(g, {}).get(s)
            emo[s][g] = {k: {"fv": None if have is None else have[k],
                             "spread": None if have is None else _binomial(have[k], have.get("n_videos")),
                             "thesis": None if th is None else th[j]} for j, k in enumerate(EMO_KEYS)}
        for which, ref in (("acd_i", thesis.ACD_I_ARCFACE_COS), ("acd_c", thesis.ACD_C_ARCFACE_COS)):
            acd[which][s] = {e: {m: {g: (gs.get(g) or {}).get("distance") for g in GROUPS}
                                 for m, gs in d.get(which, {}).items()} for e, d in (r.get("identity") or {}).items()}
            acd[which][s]["thesis_arcface_cos_all"] = ref.get(s)
    return {"fvd": fvd, "emotion": emo, **acd}


def _binomial(p, n) -> float | None:
    if p is None or not n or (isinstance(p, float) and math.isnan(p)):
        return None
    return math.sqrt(max(p * (1 - p), 0.0) / n)


def _cell(v: dict, digits: int = 2) -> str:
    """'fv ± spread (thesis)'."""
    s = fmt(v["fv"], digits)
    if v.get("spread") is not None and v["fv"] is not None:
        s += f" ± {fmt(v['spread'], digits)}"
    return s + (f" ({fmt(float(v['thesis']), digits)})" if v.get("thesis") is not None else "")


def _table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def markdown(numbers: dict, findings: list[dict], budget) -> str:
    settings = list(numbers["fvd"])
    steps = budget.steps or "the preset's"
    sampling = budget.sample_steps or "each checkpoint's own"
    parts = [f"# fv reproduce ({budget.name} preset)\n",
             f"Networks trained at fv train's `{budget.train_preset}` preset, {steps} steps each, init: "
             f"{budget.init}; test split re-generated with render-set seed {budget.seed}, sampling steps: {sampling}. "
             "Each cell: fv ± spread (the thesis' number, MUG). Per-frame profiles (figs 5.1-5.7): eval/plots/.\n",
             "## Table 5.2: FVD (lower is better; spread: bootstrap over the generated videos)\n",
             _table(["model"] + [GROUP_LABELS[g].capitalize() + "↓" for g in GROUPS],
                    [[s] + [_cell(numbers["fvd"][s][g], 0) for g in GROUPS] for s in settings]),
             "\n## Table 5.3: emotion accuracy (higher is better; spread: binomial over videos)\n",
             _table(["", "model", "DEA↑", "AEA↑", "DEA WN↑", "AEA WN↑"],
                    [[GROUP_LABELS[g] if i == 0 else "", s] + [_cell(numbers["emotion"][s][g][k]) for k in EMO_KEYS]
                     for g in GROUPS for i, s in enumerate(settings)])]
    for which, title in (("acd_i", "Table 5.4: identity ACD-I"), ("acd_c", "Table 5.5: continuity ACD-C")):
        embs = sorted({e for s in settings for e in numbers[which][s] if e != "thesis_arcface_cos_all"})
        cols = [(e, m) for e in embs for m in ("cosine", "euclidean")]
        rows = [[s] + [fmt(numbers[which][s].get(e, {}).get(m, {}).get("all")) for e, m in cols]
                + [fmt(numbers[which][s]["thesis_arcface_cos_all"])] for s in settings]
        parts += [f"\n## {title} (distance, lower is better; all emotions)\n",
                  _table(["model"] + [f"{EMBEDDER_LABELS.get(e, e)} {m[:3]}↓" for e, m in cols]
                         + ["thesis ArcFace cos"], rows)]
    parts.append("\n## The thesis' findings, here\n")
    parts += [f"- **{f['finding']}**: {f['verdict']} ({f['figures']})" for f in findings]
    return "\n".join(parts) + "\n"


def write_report(metrics_path: Path, sets: dict[str, Path], options, budget, md: Path, js: Path) -> dict:
    metrics = json.loads(Path(metrics_path).read_text())
    spreads = fvd_spreads(sets, options, budget.bootstrap) if "fvd" in options.metrics else {}
    numbers = collect(metrics, spreads)
    findings = check_findings(numbers)
    doc = {"preset": budget.name, "budget": budget.key(), **numbers, "findings": findings}
    atomic_write_text(js, json.dumps(doc, indent=2, sort_keys=True, allow_nan=False, default=_none))
    atomic_write_text(md, markdown(numbers, findings, budget))
    return doc


def _none(x):
    return None
