"""Checkpoints: one safetensors file holding weights, EMA weights, optimiser state and the config.

Layout of the tensors (never pickle):
    model.<module>.<param>     the trained modules (a ModuleDict built by fv.engine.families.build_model)
    ema.<module>.<param>       exponential moving average of the trainable parameters (used for sampling)
    optim.<name>.<i>.<key>     optimiser state per parameter index (training only)
    extra.<name>               anything else a setting needs at inference (e.g. a motion-code bank)
Metadata (string -> string): "fv.config" (RunConfig JSON), "fv.step", "fv.format", "fv.version",
"fv.torch", "fv.optim" (param-group hyper-parameters JSON), and free "fv.meta" JSON.
Writes are atomic: a temporary file in the same folder, fsync, then os.replace.
"""

from __future__ import annotations

import errno
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fv import __version__
from fv.engine.atomic import atomic_path
from fv.engine.config import ConfigError, RunConfig, check_setting

FORMAT = "1"
LAST = "last.safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, corrupt, or of the wrong setting."""


@dataclass
class Checkpoint:
    path: Path
    config: RunConfig
    step: int
    tensors: dict[str, torch.Tensor]
    meta: dict

    def section(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors under 'prefix.' with the prefix removed."""
        p = prefix + "."
        return {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}


def state_tensors(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().contiguous().clone() for k, v in state.items()}


def optimizer_tensors(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    sd = opt.state_dict()
    tensors = {}
    for i, st in sd["state"].items():
        for k, v in st.items():
            t = v if torch.is_tensor(v) else torch.tensor(v)
            tensors[f"optim.{name}.{i}.{k}"] = t.detach().cpu().contiguous().clone()
    return tensors, sd["param_groups"]


def load_optimizer(opt: torch.optim.Optimizer, ckpt: Checkpoint, name: str) -> None:
    groups = ckpt.meta["optim"][name]
    state: dict[int, dict] = {}
    for k, v in ckpt.section(f"optim.{name}").items():
        i, key = k.split(".", 1)
        state.setdefault(int(i), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(path: str | Path, config: RunConfig, step: int, tensors: dict[str, torch.Tensor],
                    optim_groups: dict | None = None, meta: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    md = {"fv.config": config.to_json(), "fv.step": str(step), "fv.format": FORMAT,
          "fv.version": __version__, "fv.torch": torch.__version__,
          "fv.optim": json.dumps(optim_groups or {}), "fv.meta": json.dumps(meta or {})}
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=md)
        except SafetensorError as e:   # e.g. the disk filled up: an OSError naming the file, as Python's own
            if "I/O error" not in str(e):
                raise
            raise OSError(errno.EIO, f"cannot write the checkpoint ({e})", str(path)) from None
    return path


def read_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable fv checkpoint (corrupt or not safetensors): {e}")
    if "fv.config" not in md:
        raise CheckpointError(f"{path} is a safetensors file but not an fv checkpoint (no fv.config metadata)")
    try:
        config = RunConfig.from_dict(json.loads(md["fv.config"]))
    except (ConfigError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: its config cannot be read by this fv version: {e}")
    meta = {"optim": json.loads(md.get("fv.optim", "{}")), **json.loads(md.get("fv.meta", "{}"))}
    return Checkpoint(path, config, int(md.get("fv.step", 0)), tensors, meta)


def expect_setting(ckpt: Checkpoint, *settings: str) -> None:
    want = [check_setting(s) for s in settings]
    if ckpt.config.setting not in want:
        raise CheckpointError(f"{ckpt.path} is a {ckpt.config.setting} checkpoint; "
                              f"this needs {' or '.join(want)}")


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", ema: bool = True,
                    settings: tuple[str, ...] = ()) -> tuple[RunConfig, torch.nn.ModuleDict]:
    """(config, model) ready for inference: EMA weights where present, eval mode, on `device`."""
    from fv.engine.families import build_model

    ckpt = read_checkpoint(path)
    if settings:
        expect_setting(ckpt, *settings)
    model = build_model(ckpt.config)
    load_model_state(model, ckpt, ema=ema)
    return ckpt.config, model.to(device).eval()


def load_model_state(model: torch.nn.Module, ckpt: Checkpoint, ema: bool = False) -> None:
    state = ckpt.section("model")
    if ema:
        state.update(ckpt.section("ema"))  # EMA covers the trainable parameters; buffers stay
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{ckpt.path} does not fit the {ckpt.config.setting} model it describes: {first}")


def find_latest(root: str | Path, setting: str | None = None) -> Path | None:
    """Newest last.safetensors below `root` (optionally of one setting, by its config)."""
    root = Path(root)
    if not root.is_dir():
        return None
    cands = sorted(root.rglob(LAST), key=lambda p: p.stat().st_mtime, reverse=True)
    for p in cands:
        if setting is None:
            return p
        try:
            if read_setting(p) == check_setting(setting):
                return p
        except CheckpointError:
            continue
    return None


def read_setting(path: str | Path) -> str:
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {})["fv.config"])["setting"]
    except Exception as e:  # noqa: BLE001 - any failure means "not a readable fv checkpoint"
        raise CheckpointError(f"{path} is not a readable fv checkpoint: {e}")
