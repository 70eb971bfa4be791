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
    tmp = temp_path(path)
    try:   # a read-only, full or forbidden folder fails here, with the final name (writers' own errors vary)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.touch()
        tmp.unlink()   # the writer makes the file: one that makes none fails below, as before
    except OSError as e:
        raise type(e)(e.errno, e.strerror, str(path)) from None
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
    tmp = _fresh_temp_dir(path)
    try:
        yield tmp
        _fsync_tree(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_files(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary sibling folder to fill; on success its files join the folder `path` (made
    if missing; other files already there are kept), on failure it is removed, and so are the folders
    made for it: a failed writer leaves `path` as it was, absent included."""
    path = Path(path)
    made = [p for p in (path, *path.parents) if not p.exists()]          # innermost first
    try:
        tmp = _fresh_temp_dir(path)
        yield tmp
        _fsync_tree(tmp)
        if not path.exists():
            os.replace(tmp, path)
        for f in sorted(tmp.iterdir()) if tmp.exists() else ():
            os.replace(f, path / f.name)
    except BaseException as e:
        tmp = temp_path(path)
        shutil.rmtree(tmp, ignore_errors=True)
        for p in made[1:]:
            with contextlib.suppress(OSError):
                p.rmdir()
        if isinstance(e, OSError) and e.filename and tmp in Path(e.filename).parents:   # name the file's place
            raise type(e)(e.errno, e.strerror, str(path / Path(e.filename).relative_to(tmp))) from None
        raise
    finally:
        shutil.rmtree(temp_path(path), ignore_errors=True)


def _fresh_temp_dir(path: Path) -> Path:
    tmp = temp_path(path)
    shutil.rmtree(tmp, ignore_errors=True)  # a folder this pid left earlier
    tmp.mkdir(parents=True)
    return tmp


def _fsync_tree(folder: Path) -> None:
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        _fsync(f)


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
