"""fv.engine.atomic: a file or folder appears whole under its final name or not at all."""

from __future__ import annotations

import os

import numpy as np
import pytest

from fv.engine.atomic import (atomic_dir, atomic_path, atomic_write, atomic_write_bytes, atomic_write_text,
                              stale_temps, temp_path)


def test_temp_is_hidden_beside_the_file_and_keeps_the_suffix(tmp_path):
    dest = tmp_path / "sub" / "clip.npy"
    tmp = temp_path(dest)
    assert tmp.parent == dest.parent and tmp.name == f".clip.{os.getpid()}.tmp.npy"
    seen = []
    with atomic_path(dest) as t:
        seen.append(t)
        np.save(t, np.arange(3))  # np.save appends .npy unless the name ends with it
        assert not dest.exists()
    assert seen == [tmp] and np.load(dest).tolist() == [0, 1, 2]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["clip.npy"]


def test_success_replaces_the_old_file(tmp_path):
    dest = tmp_path / "x.json"
    dest.write_text("old")
    assert atomic_write_text(dest, "new") == dest
    assert dest.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]
    atomic_write_bytes(dest, b"\x00\x01")
    assert dest.read_bytes() == b"\x00\x01"


@pytest.mark.parametrize("old", [None, b"old"])
def test_failure_leaves_the_old_file_or_nothing_and_no_temp(tmp_path, old):
    dest = tmp_path / "x.png"
    if old is not None:
        dest.write_bytes(old)

    def failing(tmp):
        tmp.write_bytes(b"partial")
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(dest, failing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if old is None else ["x.png"])
    if old is not None:
        assert dest.read_bytes() == old


def test_a_writer_that_makes_no_file_fails(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "x.bin", lambda tmp: None)
    assert list(tmp_path.iterdir()) == []


def test_folder_is_replaced_whole_or_kept(tmp_path):
    dest = tmp_path / "stage"
    dest.mkdir()
    (dest / "stale.onnx").write_text("old")
    with pytest.raises(ValueError):
        with atomic_dir(dest) as tmp:
            (tmp / "a.onnx").write_text("half")
            raise ValueError("parity check failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"]
    assert sorted(p.name for p in dest.iterdir()) == ["stale.onnx"]
    with atomic_dir(dest) as tmp:
        assert tmp.parent == tmp_path and list(tmp.iterdir()) == []
        (tmp / "a.onnx").write_text("new")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"]
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == ["a.onnx", "sub", "sub/b.json"]


def test_stale_temps_finds_any_writers_temporaries_of_one_stem(tmp_path):
    names = [".a.12.tmp", ".a.12.tmp.npy", ".a.999.tmp.mp4",     # a's, from any pid
             "a.npy", ".ab.12.tmp.npy", ".a.x.tmp.npy", ".a.12.tmp.npy.bak", "a.12.tmp.npy"]
    for n in names:
        (tmp_path / n).write_text("")
    assert sorted(p.name for p in stale_temps(tmp_path, "a")) == sorted(names[:3])
    (tmp_path / ".a[1].7.tmp.json").write_text("")  # glob characters in a stem are literal
    assert [p.name for p in stale_temps(tmp_path, "a[1]")] == [".a[1].7.tmp.json"]
    assert stale_temps(tmp_path / "missing", "a") == []
    assert sorted(p.name for p in stale_temps(tmp_path)) == sorted(names[:3] + [".ab.12.tmp.npy", ".a[1].7.tmp.json"])


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_a_published_file_gets_the_umask_mode_whatever_its_writer_made(tmp_path, umask):
    """safetensors creates its file 0600; published, it has the mode open() gives, like its neighbours."""
    old = os.umask(umask)
    try:
        with atomic_path(tmp_path / "w.bin") as t:
            os.close(os.open(t, os.O_CREAT | os.O_WRONLY, 0o600))
        (tmp_path / "plain.txt").write_text("")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"w.bin": 0o666 & ~umask, "plain.txt": 0o666 & ~umask}
