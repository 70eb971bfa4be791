"""What the CLI commands share: default locations, user-error reporting, checkpoint lookup."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from fv.engine.assets import SHIPPED

console = Console(stderr=True, highlight=False)

# Defaults, relative to where `fv` runs (override with the environment or the options).
RUNS = Path(os.environ.get("FV_RUNS", "runs"))
DATA = Path(os.environ.get("FV_DATA", "data/synth"))
DEMO_OUT = Path("demo_out")
ASSETS = SHIPPED


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input, reported as one line without a traceback."""
    from fv.cli.validate import OptionError
    from fv.data.layout import DatasetError
    from fv.engine.checkpoint import CheckpointError
    from fv.engine.config import ConfigError
    from fv.engine.labels import UnknownEmotionError
    # OSError last: disk full, read-only folder, permission denied, a missing file ... (one line with the path)
    errs: list[type[BaseException]] = [OptionError, DatasetError, CheckpointError, ConfigError,
                                       UnknownEmotionError, OSError]
    # fv.photo's FaceError is the root of all of a photo's errors (no face, unreadable image, unknown mode, AU readout)
    for mod, name in (("fv.photo.errors", "FaceError"), ("fv.export.errors", "ExportError"),
                      ("fv.engine.backends", "BackendError"), ("fv.metrics.errors", "MetricsError"),
                      ("fv.engine.requests", "EngineError"), ("fv.engine.render_set", "RenderSetError"),
                      ("fv.data.video_io", "VideoIOError"), ("fv.data.mug", "SourceDataError")):
        try:
            errs.append(getattr(__import__(mod, fromlist=[name]), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errs)


def fail(err: BaseException) -> None:
    msg = _os_message(err) if isinstance(err, OSError) else str(err) or type(err).__name__
    from rich.markup import escape
    console.print(f"[bold red]error:[/] {escape(' '.join(msg.splitlines()))}", soft_wrap=True)


def _os_message(err: OSError) -> str:
    """`PATH: No space left on device` (the file first), whatever else the error says after it."""
    if not err.filename:
        return str(err) or type(err).__name__
    paths = " -> ".join(str(p) for p in (err.filename, err.filename2) if p)
    return f"{paths}: {err.strerror or type(err).__name__}"


def steps_spec(text: str | None) -> int | str | None:
    """A --steps value as the engine takes it: digits are the int N (ddimN), anything else a respacing spec."""
    return int(text) if text is not None and text.strip().isdigit() else text


def info(msg: str) -> None:
    console.print(msg, soft_wrap=True, markup=False)


def default_checkpoint(setting: str | None = None) -> Path:
    """The latest checkpoint of the default runs folder, else the demo's, else the one shipped with fv."""
    from fv.engine.checkpoint import CheckpointError, find_latest
    for root in (RUNS, DEMO_OUT / "runs"):
        p = find_latest(root, setting)
        if p is not None:
            return p
    shipped = ASSETS / f"{setting or 'onlyDM'}.safetensors"   # fv ships baseline.safetensors, onlyDM.safetensors
    if shipped.is_file():
        return shipped
    want = f"{setting} checkpoint" if setting else "checkpoint"
    raise CheckpointError(f"no {want} found in {RUNS}/, {DEMO_OUT}/runs/ or fv's shipped assets; "
                          f"train one with `fv train {setting or 'onlyDM'}` or run `fv demo`")


def ensure_data(path: Path, explicit: bool) -> Path:
    """The default data folder is made on first use (the synthetic set); a folder the user named must exist."""
    from fv.data.layout import DatasetError
    if (path / "train" / "clips64.npy").exists():
        return path
    if explicit:
        raise DatasetError(f"{path} is not a prepared data set (no train/clips64.npy); make one with "
                           f"`fv data synth {path}`, `fv data mug RAW {path}` or `fv data folder`")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:   # under torchrun every process would write it at once
        raise DatasetError(f"no data at {path}; make it before a multi-process run: `fv data synth {path}`")
    from fv.data.synth import make_synthetic
    info(f"[fv] no data at {path}: generating the synthetic data set there (once, a few minutes)")
    return make_synthetic(path)
