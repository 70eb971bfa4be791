"""Where the small checkpoints fv ships live (fv/assets/checkpoints): the demo's baseline and onlyDM, and
both_retrievedMcs' expression embedder. A path only, so the command line can name it without loading torch; and
read_asset, how a shipped file that fv can rebuild is read (the photo's AU readout and face motion model)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")

SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "checkpoints"


def read_asset(path: str | Path, read: Callable[[Path], T], error: type[Exception], what: str, make: str) -> T:
    """read(path), with one line naming the file where it is missing (and the command `make` that makes it) or
    unreadable (a damaged file: whatever read raised)."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no {what} there; make it with `{make}`")
    try:
        return read(path)
    except Exception as e:
        raise error(f"{path}: not a readable {what} ({type(e).__name__}: {e})") from None
