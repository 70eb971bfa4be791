"""The thesis' findings (SPEC.md, "The thesis' results"; thesis 5.1, 5.4) checked on fv's numbers.

Each finding claims an order between settings on one measure. `compare` calls a difference only where it is
larger than twice the spread of the difference, sqrt(s_a^2 + s_b^2) (FVD: bootstrap; DEA/AEA: binomial), or,
for ACD-I (no spread), larger than ACD_MARGIN.
"""

from __future__ import annotations

import math

ACD_MARGIN = 0.02
GANS = ("baseline", "onlyEM")                          # the thesis' groups of settings, by name
DIFFUSIONS = ("onlyDM", "EM-DM", "both_retrievedMcs")
HOLDS, FAILS, TIED, UNKNOWN = "holds here", "does not hold here", "cannot be told apart", "cannot be told"


def compare(a: dict | None, b: dict | None, lower_better: bool, margin: float = 0.0) -> str | None:
    """'better' / 'worse' / 'tied' for a against b ({"fv", "spread"} cells); None where either is missing."""
    if not a or not b or a.get("fv") is None or b.get("fv") is None:
        return None
    diff = (b["fv"] - a["fv"]) if lower_better else (a["fv"] - b["fv"])   # > 0: a is better
    need = 2 * math.sqrt((a.get("spread") or 0) ** 2 + (b.get("spread") or 0) ** 2) + margin
    return "better" if diff > need else "worse" if -diff > need else "tied"


def _verdict(results: list[str | None]) -> str:
    """All comparisons better: holds; any worse: does not hold; otherwise cannot be told apart."""
    if not results or any(r is None for r in results):
        return UNKNOWN + " (not measured)"
    if all(r == "better" for r in results):
        return HOLDS
    return FAILS if any(r == "worse" for r in results) else TIED


def _fvd(n: dict, s: str) -> dict | None:
    return n["fvd"].get(s, {}).get("all")


def _aea(n: dict, s: str) -> dict | None:
    return n["emotion"].get(s, {}).get("all", {}).get("aea")


def _acd_i(n: dict, s: str) -> dict | None:
    """ACD-I of the first embedder measured (cosine, all emotions), as a cell without spread."""
    d = {e: v for e, v in n["acd_i"].get(s, {}).items() if e != "thesis_arcface_cos_all"}
    for e in sorted(d):
        v = d[e].get("cosine", {}).get("all")
        if v is not None:
            return {"fv": v, "spread": None, "embedder": e}
    return None


def _fig(cells: dict[str, dict | None], digits: int) -> str:
    def one(c):
        if c is None or c.get("fv") is None:
            return "–"
        return f"{c['fv']:.{digits}f}" + (f" ± {c['spread']:.{digits}f}" if c.get("spread") is not None else "")
    return ", ".join(f"{s} {one(c)}" for s, c in cells.items())


def best_of(n: dict, winners: tuple[str, ...], others: tuple[str, ...], get, lower: bool, margin: float = 0.0):
    """The best of `winners` against every one of `others`."""
    cells = {s: get(n, s) for s in winners}
    have = [s for s in winners if cells[s] is not None and cells[s].get("fv") is not None]
    if not have:
        return [None], cells
    top = (min if lower else max)(have, key=lambda s: cells[s]["fv"])
    return [compare(cells[top], get(n, o), lower, margin) for o in others], cells


def check_findings(n: dict) -> list[dict]:
    rest = [s for s in n["fvd"]]
    out = []

    def add(finding, results, cells, digits):
        out.append({"finding": finding, "verdict": _verdict(results), "figures": _fig(cells, digits)})
    # 1. onlyDM has the best FVD (thesis 100; next EM-DM 120)
    add("onlyDM has the best FVD", [compare(_fvd(n, "onlyDM"), _fvd(n, s), True) for s in rest if s != "onlyDM"],
        {s: _fvd(n, s) for s in rest}, 0)
    # 2. diffusion preserves identity best (ACD-I: onlyDM / EM-DM 0.16 against LFDM 0.29, GANs 0.45)
    others = tuple(s for s in rest if s not in DIFFUSIONS)
    res, cells = best_of(n, DIFFUSIONS, others, _acd_i, True, ACD_MARGIN)
    add("the diffusion settings preserve identity best (ACD-I)", res, {**cells, **{s: _acd_i(n, s) for s in others}},
        3)
    # 3. the GAN settings score best on the classifier's emotion scores (AEA: onlyEM 0.76, baseline 0.70)
    others = tuple(s for s in rest if s not in GANS)
    res, cells = best_of(n, GANS, others, _aea, False)
    add("the GAN settings score best on the emotion classifier (AEA)", res,
        {**cells, **{s: _aea(n, s) for s in others}}, 2)
    # 4. onlyEM above the baseline (FVD 346 against 430)
    add("onlyEM above the baseline (FVD)", [compare(_fvd(n, "onlyEM"), _fvd(n, "baseline"), True)],
        {s: _fvd(n, s) for s in ("onlyEM", "baseline")}, 0)
    # 5. EM-DM below onlyDM (FVD 120 against 100)
    add("EM-DM below onlyDM (FVD)", [compare(_fvd(n, "onlyDM"), _fvd(n, "EM-DM"), True)],
        {s: _fvd(n, s) for s in ("onlyDM", "EM-DM")}, 0)
    # 6. both_retrievedMcs between the frame-diffusion settings and the GANs (FVD 287: onlyDM 100, baseline 430)
    add("both_retrievedMcs between onlyDM and the baseline (FVD)",
        [compare(_fvd(n, "onlyDM"), _fvd(n, "both_retrievedMcs"), True),
         compare(_fvd(n, "both_retrievedMcs"), _fvd(n, "baseline"), True)],
        {s: _fvd(n, s) for s in ("onlyDM", "both_retrievedMcs", "baseline")}, 0)
    return out
