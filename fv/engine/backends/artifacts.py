"""Where exported artefacts live and how they are keyed (STYLE practice 11).

A stage's key is the sha256 of everything its output depends on, and the folder name holds it, so a
stale artefact can never be picked up (a file's mere existence is never trusted):

    onnx key = H(export format, checkpoint sha256, every network's I/O spec, fp32, opset,
                 torch / onnx / onnxruntime / fv versions)
    trt key  = H(onnx key, precision, TensorRT version, GPU compute capability, profiles)

    <exports>/<setting>-<onnx key>/manifest.json, <network>.onnx
    <exports>/<setting>-<onnx key>/trt-<precision>-<trt key>/manifest.json, <network>.plan

A manifest is written last, after the parity check passed, and lists each file's sha256; a folder
without one, with another key, or whose files' hashes differ is not an export.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from fv.engine.atomic import atomic_write_text
from fv.engine.backends.base import BackendError
from fv.engine.config import RunConfig
from fv.engine.families import network_specs
from fv.engine.iospec import NetworkSpec

EXPORT_FORMAT = 1
OPSET = 17
MANIFEST = "manifest.json"
KEY_CHARS = 16
TRT_PRECISIONS = ("fp32", "fp16", "bf16")  # of TensorRT engines; ONNX files are always fp32


def default_exports_dir() -> Path:
    """$FV_EXPORTS, else `exports/` beside the runs folder ($FV_RUNS or ./runs)."""
    if os.environ.get("FV_EXPORTS"):
        return Path(os.environ["FV_EXPORTS"])
    return Path(os.environ.get("FV_RUNS", "runs")).parent / "exports"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def json_key(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:KEY_CHARS]


def read_config(checkpoint: str | Path) -> RunConfig:
    """The RunConfig inside a checkpoint, from its metadata alone (no weights read)."""
    from fv.engine.checkpoint import read_setting  # raises CheckpointError for a non-fv file
    from safetensors import safe_open

    read_setting(checkpoint)
    with safe_open(str(checkpoint), framework="pt") as f:
        return RunConfig.from_dict(json.loads(f.metadata()["fv.config"]))


def onnx_versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    from fv import __version__
    return {"fv": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__}


def onnx_key(checkpoint_sha: str, specs: dict[str, NetworkSpec], versions: dict[str, str]) -> str:
    return json_key({"format": EXPORT_FORMAT, "checkpoint": checkpoint_sha, "precision": "fp32", "opset": OPSET,
                     "specs": {n: s.to_dict() for n, s in specs.items()}, "versions": versions})


def trt_key(onnx_key_: str, precision: str, profiles: dict[str, list[int]], versions: dict[str, str]) -> str:
    return json_key({"format": EXPORT_FORMAT, "onnx": onnx_key_, "precision": precision, "profiles": profiles,
                     "versions": versions})


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def write_json_atomic(path: Path, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def verify_files(folder: Path, manifest: dict) -> str | None:
    """None if every file the manifest lists is there with its sha256, else what is wrong."""
    for name, entry in manifest.get("files", {}).items():
        p = folder / name
        if not p.is_file():
            return f"{p} is missing"
        if file_sha256(p) != entry["sha256"]:
            return f"{p} changed since it was written (sha256 differs from the manifest)"
    return None


@dataclass(frozen=True)
class StageDir:
    """A keyed artefact folder: the networks' specs and the file per network."""

    folder: Path
    key: str
    specs: dict[str, NetworkSpec]
    suffix: str  # ".onnx" or ".plan"

    def path(self, network: str) -> Path:
        return self.folder / f"{network}{self.suffix}"

    def onnx_path(self, network: str) -> Path:
        return self.path(network)

    def engine_path(self, network: str) -> Path:
        return self.path(network)

    def valid(self) -> str | None:
        """None if a finished, intact export of this key is here, else why not."""
        m = read_manifest(self.folder)
        if m is None:
            return f"no {MANIFEST} in {self.folder}"
        if m.get("key") != self.key:
            return f"{self.folder / MANIFEST} has key {m.get('key')}, expected {self.key}"
        if set(m.get("files", {})) != {self.path(n).name for n in self.specs}:
            return f"{self.folder / MANIFEST} does not list the files of {sorted(self.specs)}"
        return verify_files(self.folder, m)


def onnx_stage(checkpoint: str | Path, root: str | Path | None = None,
               config: RunConfig | None = None, checkpoint_sha: str | None = None) -> StageDir:
    """The ONNX folder that an export of `checkpoint` with these library versions has (or will have)."""
    root = Path(root) if root is not None else default_exports_dir()
    config = config or read_config(checkpoint)
    specs = network_specs(config)
    key = onnx_key(checkpoint_sha or file_sha256(checkpoint), specs, onnx_versions())
    return StageDir(root / f"{config.setting}-{key}", key, specs, ".onnx")


def trt_stage(onnx: StageDir, precision: str, versions: dict[str, str]) -> StageDir:
    profiles = {n: list(s.batch_range) for n, s in onnx.specs.items()}
    key = trt_key(onnx.key, precision, profiles, versions)
    return StageDir(onnx.folder / f"trt-{precision}-{key}", key, onnx.specs, ".plan")


def find_export(checkpoint: str | Path, root: str | Path | None = None) -> StageDir:
    """The verified ONNX export of exactly this checkpoint; BackendError telling how to make it otherwise."""
    stage = onnx_stage(checkpoint, root)
    why = stage.valid()
    if why is not None:
        raise BackendError(f"no ONNX export of {checkpoint} for this fv/torch/onnx version ({why}); "
                           f"run `fv export {checkpoint} --out {stage.folder.parent}`")
    return stage


def find_trt(onnx: StageDir, precision: str = "fp32") -> StageDir:
    """The verified TensorRT engines built from `onnx` at `precision` on this GPU and TensorRT version."""
    from fv.engine.backends.trt_backend import trt_versions

    if precision not in TRT_PRECISIONS:
        raise BackendError(f"TensorRT engines are built in {', '.join(TRT_PRECISIONS)}, not {precision!r}")
    stage = trt_stage(onnx, precision, trt_versions())
    why = stage.valid()
    if why is not None:
        flag = "" if precision == "fp32" else f" --precision {precision}"
        raise BackendError(f"no TensorRT {precision} engines for this export, GPU and TensorRT version ({why}); "
                           f"run `fv export CHECKPOINT --trt{flag} --out {onnx.folder.parent}`")
    return stage
