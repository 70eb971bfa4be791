"""How well both_retrievedMcs' expression embedders tell expressions apart on identities they never saw: fv's
FECNet-style embedder (`fv train embedder`) against the FER2013 CNN's features (the AEA/DEA classifier's own
network). Prints a table, writes JSON.

    python benchmarks/embedder_quality.py --data data/synth_v2 [--embedder fecnet-fv16 --embedder ...]
                                          [--out runs/benchmarks/embedder_quality.json]

Per embedder, codes of every frame of the train and test splits (disjoint identities):
    codes     the motion bank's codes (fv.trainer.expression_bank: the projection fitted on the train split;
              a subject-centred embedder centres the test frames on their own subject's mean, as the bank does),
              the same with the other choice of centring, and a FECNet-style network's raw output
    apex      nearest centroid: each test apex frame (10-21) gets the emotion of the nearest train-split centroid
              of apex codes (chance 1/6)
    apex LOO  the same within the test split, centroids from the other test identities (leave one identity out)
    triplet   held-out triplets of the test split mined as in training (AU distance, the positive of another
              identity, gap 0.2; 8 frames a clip, 5 draws): the share whose anchor is nearer its positive than
              its negative in code space (chance 1/2)
    AU R^2    a linear fit from train codes to the ground-truth action units, R^2 on the test frames
(fv.trainer.embedder_quality computes them.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fv.data.layout import load_split
from fv.engine.atomic import atomic_write_text
from fv.trainer.embedder_quality import apex_accuracy, au_r2, held_out_triplets, loo_apex_accuracy
from fv.trainer.expression_bank import (ExpressionProjection, check_embedder, clip_features, frame_network,
                                        subject_centre)


def scores(train_codes, test_codes, train, test) -> dict[str, float]:
    """The table's columns for codes [N, 32, D] of the train and test splits."""
    return {"apex": apex_accuracy(train_codes, train.emotions, test_codes, test.emotions),
            "apex_loo": loo_apex_accuracy(test_codes, test.emotions, test.subject_ids),
            "triplet": held_out_triplets(test_codes, test.aus, test.subject_ids),
            "au_r2": au_r2(train_codes, train.aus, test_codes, test.aus)}


def embedder_rows(name: str, train, test) -> dict[str, dict[str, float]]:
    """Rows of one embedder: the bank's codes, the codes with the other choice of subject centring, and for a
    FECNet-style embedder its raw output."""
    spec = check_embedder(name)
    net = frame_network(spec)
    f_tr, source = clip_features(train, net, progress=False)
    f_te, _ = clip_features(test, net, progress=False)
    raw = {f"{name} ({source}), raw": scores(f_tr, f_te, train, test)} if spec.network == "fecnet" else {}
    rows = {}
    for centred in (spec.subject_centred, not spec.subject_centred):
        a, b = ((subject_centre(f_tr, train.subject_ids), subject_centre(f_te, test.subject_ids)) if centred
                else (f_tr, f_te))
        proj = ExpressionProjection.fit(a.reshape(-1, a.shape[-1]), spec.dim, spec.whitened)
        a, b = (proj(f.reshape(-1, f.shape[-1])).reshape(len(f), 32, spec.dim) for f in (a, b))
        other = "codes, subject-centred" if centred else "codes, not subject-centred"
        kind = "the bank's codes" if centred == spec.subject_centred else other
        rows[f"{name} ({source}), {kind}"] = scores(a, b, train, test)
    return {**rows, **raw}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=Path("data/synth"))
    p.add_argument("--embedder", action="append", default=None)
    p.add_argument("--out", type=Path, default=Path("runs/benchmarks/embedder_quality.json"))
    a = p.parse_args()
    train, test = load_split(a.data, "train"), load_split(a.data, "test")
    rows = {}
    for name in a.embedder or ["fecnet-fv16", "fer2013-wtf-spca16"]:
        rows.update(embedder_rows(name, train, test))
    print(f"\n{a.data}: {len(train)} train / {len(test)} held-out test clips\n")
    print("| embedder | apex (train centroids) | apex (LOO) | triplet | AU R^2 |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['apex']:.3f} | {r['apex_loo']:.3f} | {r['triplet']:.3f} | {r['au_r2']:.3f} |")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out, json.dumps({"data": str(a.data), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
