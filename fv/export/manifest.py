"""The manifest JSON written beside every export, last, once its parity checks passed.

It records everything the artefact depends on and how it was checked: the key, the checkpoint (path,
sha256, step), the full RunConfig, each network's I/O spec, library versions, the precision, the
exporter, per network the parity record (tolerance, seed, batches, measured max abs errors) and the
sha256 of every file (fv.engine.backends.artifacts verifies them before a backend loads anything).
"""

from __future__ import annotations

import datetime
from pathlib import Path

from fv.engine.backends.artifacts import EXPORT_FORMAT, MANIFEST, file_sha256, read_manifest, write_json_atomic
from fv.engine.config import RunConfig
from fv.engine.iospec import NetworkSpec


def build_manifest(kind: str, key: str, checkpoint: Path, checkpoint_sha: str, config: RunConfig,
                   specs: dict[str, NetworkSpec], versions: dict[str, str], precision: str,
                   files: dict[str, Path], parity: dict[str, dict], **extra) -> dict:
    """kind: "onnx" | "tensorrt"; files: {network: path}; parity: {network: fv.export.parity record}."""
    return {
        "format": EXPORT_FORMAT, "kind": kind, "key": key, "precision": precision,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": {"path": str(Path(checkpoint).resolve()), "sha256": checkpoint_sha},
        "config": config.to_dict(), "setting": config.setting,
        "specs": {n: s.to_dict() for n, s in specs.items()}, "versions": versions,
        "parity": parity,
        "max_abs_error": max((p["max_abs_error"] for p in parity.values()), default=0.0),
        "files": {p.name: {"network": n, "sha256": file_sha256(p), "bytes": p.stat().st_size}
                  for n, p in files.items()},
        **extra,
    }


def write_manifest(folder: Path, manifest: dict) -> Path:
    path = folder / MANIFEST
    write_json_atomic(path, manifest)
    return path


def load_manifest(folder: Path) -> dict | None:
    return read_manifest(folder)
