"""How fv publishes a file or a folder: write it under a temporary name beside its final one, fsync,
then os.replace it into place. A reader sees the old file or the whole new one, never a partial one;
a killed writer leaves only a temporary name, which no reader looks at.

One naming scheme for every temporary: `.<stem>.<pid>.tmp<suffix>` beside `<stem><suffix>` (so
`videos/a.npy` is written as `videos/.a.1234.tmp.npy`). The suffix stays last because some writers
choose the format from it (cv2.imwrite) or append it when it is missing (np.save, np.savez); the pid
keeps concurrent writers of one file apart. `stale_temps` finds what a killed writer left.

A published file gets the mode a plain open() would give it (0666 less the umask), whatever mode its
writer created the temporary with (safetensors creates 0600), so a folder's files share one mode.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path


def temp_path(path: str | Path) -> Path:
    """The temporary name this process writes `path` under: .<stem>.<pid>.tmp<suffix>, same folder."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def stale_temps(folder: str | Path, stem: str | None = None) -> list[Path]:
    """Temporaries of any writer (any pid, any suffix) of files named <stem>.* in `folder` (of any file
    when stem is None)."""
    pattern = re.compile(rf"^\.{'.+' if stem is None else re.escape(stem)}\.\d+\.tmp(\.\w+)?$")
    return [p for p in Path(folder).glob(f".{'*' if stem is None else glob.escape(stem)}.*")
            if pattern.match(p.name)]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield the temporary path to write `path` to; on success fsync it and os.replace it into place,
    on failure remove it (the final file keeps its old content, or stays absent)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder to fill; on success fsync its files and replace `path` with it
    whole (a folder already at `path` is removed first), on failure remove it."""
    path = Path(path)
    tmp = temp_path(path)
    shutil.rmtree(tmp, ignore_errors=True)  # a folder this pid left earlier
    tmp.mkdir(parents=True)
    try:
        yield tmp
        for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
            _fsync(f)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call write(tmp) to make the file, then publish it as `path` (see atomic_path)."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _umask() -> int:
    """The process' umask, read without setting it where Linux shows it (os.umask can only swap it, which
    another thread creating a file at that moment would notice)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
