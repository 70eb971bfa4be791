"""Stage records of `fv reproduce`: what a finished stage made, and from what (STYLE practice 11).

OUT/stages/<stage>.json, written atomically when a stage ends:
    {"stage": "train-onlyDM", "key": {...}, "key_sha256": "...", "outputs": {"checkpoint": {"path": ...,
     "sha256": ..., "size": ..., "files": ...}}, "seconds": 12.3, "format": 1}
`key` is everything that decides the stage's output: its configuration and the digests of the outputs of the
stages it reads (so a retrained checkpoint makes its render set stale). A stage is reused only when its record
reads back, its key equals the one the run would use, and every output it names still hashes to what was
recorded; never because a file exists. Paths in a record are relative to OUT, so a moved OUT stays valid.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from fv.engine.atomic import atomic_write_text
from fv.engine.backends.artifacts import file_sha256

FORMAT = 1
RECORDS = "stages"


def digest(path: str | Path, skip: tuple[str, ...] = ()) -> dict:
    """{sha256, size, files} of a file, or of a folder: sha256 over its files' (relative path, size, sha256)
    in path order, hidden temporaries (fv.engine.atomic's .<stem>.<pid>.tmp names) and `skip` folders left out.
    A missing path digests to {"missing": True}."""
    path = Path(path)
    if path.is_file():
        return {"sha256": file_sha256(path), "size": path.stat().st_size, "files": 1}
    if not path.is_dir():
        return {"missing": True}
    h, size, n = hashlib.sha256(), 0, 0
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path)
        if not p.is_file() or rel.parts[0] in skip or any(part.startswith(".") for part in rel.parts):
            continue
        s = p.stat().st_size
        h.update(f"{rel.as_posix()}\0{s}\0{file_sha256(p)}\n".encode())
        size, n = size + s, n + 1
    return {"sha256": h.hexdigest(), "size": size, "files": n}


def key_sha256(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def record_path(out: Path, stage: str) -> Path:
    return Path(out) / RECORDS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', stage)}.json"


@dataclass(frozen=True)
class Check:
    """Whether a stage's record lets the run reuse it: state "done", "missing" (never finished: a killed stage
    continues from what it left) or "stale" (a record that is unreadable, or made from something else)."""
    state: str
    reason: str = ""
    record: dict | None = None


def check(out: Path, stage: str, key: dict) -> Check:
    path = record_path(out, stage)
    if not path.exists():
        return Check("missing")
    try:
        rec = json.loads(path.read_text())
        if not isinstance(rec, dict) or rec.get("format") != FORMAT or not isinstance(rec.get("outputs"), dict):
            raise ValueError("not a stage record")
    except (OSError, ValueError) as e:
        return Check("stale", f"{path.name} cannot be read ({e})")
    if rec.get("key_sha256") != key_sha256(key) or rec.get("key") != json.loads(json.dumps(key, default=str)):
        return Check("stale", f"{path.name} was made with another configuration or other inputs", rec)
    for label, want in rec["outputs"].items():
        have = digest(Path(out) / want.get("path", ""), tuple(want.get("skip", ())))
        if any(have.get(k) != want.get(k) for k in ("sha256", "size", "files")):
            return Check("stale", f"its {label} ({want.get('path')}) is not what the record says", rec)
    return Check("done", record=rec)


def write_record(out: Path, stage: str, key: dict, outputs: dict[str, Path], seconds: float,
                 skip: dict[str, tuple[str, ...]] | None = None, extra: dict | None = None) -> dict:
    """Digest `outputs` (label -> path inside OUT) and publish the stage's record atomically; returns it."""
    out = Path(out)
    skip = skip or {}
    outs = {}
    for label, p in outputs.items():
        p = Path(p).resolve()
        rel = p.relative_to(out.resolve()).as_posix() if p.is_relative_to(out.resolve()) else str(p)
        outs[label] = {"path": rel, **digest(p, skip.get(label, ())), **({"skip": list(skip[label])}
                                                                          if label in skip else {})}
    rec = {"format": FORMAT, "stage": stage, "key": json.loads(json.dumps(key, default=str)),
           "key_sha256": key_sha256(key), "outputs": outs, "seconds": round(float(seconds), 3), **(extra or {})}
    atomic_write_text(record_path(out, stage), json.dumps(rec, indent=2, sort_keys=True))
    return rec


def output_digest(rec: dict, label: str) -> str:
    """The sha256 a finished stage recorded for one of its outputs (what a later stage's key names)."""
    return rec["outputs"][label]["sha256"]
