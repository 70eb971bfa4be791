"""Issue 15, part 3: validation at the edge, once. Every bad input below gives exit code 2 and one line on
stderr (no traceback) that says what is wrong, and leaves nothing behind: no output folder, no temporary
file, nothing in the working folder."""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from fv.cli import validate
from fv.cli.common import ASSETS
from fv.cli.main import _register
from tests.cli.test_cli_errors import assert_one_clear_line
from tests.conftest import REPO
from tests.cli.test_render import fv_main
from tests.engine.test_engine import tiny_gan_checkpoint
from tests.tiny import tiny_gan_config

def grey_png(path: Path, w: int, h: int, pixels: bool = True) -> Path:
    """A w x h 8-bit grey PNG of one colour, compressed row block by row block (a 182-megapixel one is
    200 KB, made in about a second with little memory); pixels=False writes the header alone."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    z, block = zlib.compressobj(9), (b"\x00" + b"\x80" * w) * 64
    body = b"".join(z.compress(block) for _ in range(h // 64)) if pixels else b""
    tail = z.compress((b"\x00" + b"\x80" * w) * (h % 64)) if pixels else b""
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", body + tail + z.flush()) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_gan_checkpoint(tmp_path_factory.mktemp("bad_ckpt") / "baseline.safetensors")


@pytest.fixture(scope="module")
def photo(shared_data):
    p = shared_data / "faces" / "obama.jpg"
    if not p.is_file():
        pytest.skip(f"{p} is absent")
    return p


@pytest.fixture(scope="module")
def files(tiny_data, tmp_path_factory, ckpt, photo):
    """Paths the table's arguments name: {ckpt}, {photo}, {data}, damaged copies of the data, a generated set
    with a truncated video, a 1.2-gigapixel photo header, a corrupt checkpoint."""
    d = tmp_path_factory.mktemp("bad_files")
    corrupt, truncated = d / "corrupt", d / "truncated"
    for bad in (corrupt, truncated):
        shutil.copytree(tiny_data, bad)
    (corrupt / "train" / "clips64.npy").write_bytes(b"\x93NUMPY\x01\x00garbage header")
    (corrupt / "test" / "clips64.npy").write_bytes(b"not an array")
    for split in ("train", "test"):
        clips = truncated / split / "clips64.npy"
        clips.write_bytes(clips.read_bytes()[:5000])
    gen = d / "gen"
    (gen / "videos").mkdir(parents=True)
    np.save(gen / "videos" / "a.npy", np.zeros((32, 64, 64, 3), np.uint8))
    (gen / "videos" / "b.npy").write_bytes((gen / "videos" / "a.npy").read_bytes()[:9000])
    (gen / "index.csv").write_text("file,emotion,ref_row\nvideos/a.npy,happiness,0\nvideos/b.npy,anger,1\n")
    (d / "bad.safetensors").write_bytes(b"not a checkpoint")
    return {"ckpt": ckpt, "photo": photo, "data": tiny_data, "corrupt": corrupt, "truncated": truncated,
            "gen": gen, "giga": grey_png(d / "giga.png", 40000, 30000, pixels=False),
            "badckpt": d / "bad.safetensors", "shipped": ASSETS / "baseline.safetensors"}


R = ("render", "{photo}", "-e", "happy", "--checkpoint", "{ckpt}", "--out", "{out}", "--no-progress")
RS = ("render-set", "{ckpt}", "--data", "{data}", "--out", "{out}", "--no-progress")
T = ("train", "baseline", "--data", "{data}", "--run-dir", "{out}", "--no-progress")
SYNTH = ("data", "synth", "{out}")

# (id, arguments, what the one line must say); {out} is where the command would write
CASES = [
    ("render-fps-0", R + ("--fps", "0"), "--fps must be > 0 and <= 120, got 0"),
    ("render-fps-negative", R + ("--fps", "-3"), "--fps must be > 0"),
    ("render-fps-nan", R + ("--fps", "nan"), "--fps must be a finite number"),
    ("render-eta-2", R + ("--eta", "2"), "--eta must be >= 0 and <= 1, got 2"),
    ("render-guidance-inf", R + ("--guidance", "inf"), "--guidance must be a finite number"),
    ("render-ref-strength-0", R + ("--ref-strength", "0"), "--ref-strength must be > 0"),
    ("render-seed-negative", R + ("--seed", "-1"), "--seed must be >= 0"),
    ("render-gigapixel-photo", ("render", "{giga}", "-e", "happy", "--checkpoint", "{ckpt}", "--out", "{out}"),
     "40000x30000 px (1200 megapixels) is more than fv reads"),
    ("render-corrupt-checkpoint", R[:4] + ("--checkpoint", "{badckpt}", "--out", "{out}"),
     "not a readable fv checkpoint"),
    ("render-set-max-videos-negative", RS + ("--max-videos", "-1"), "--max-videos must be >= 0 and <= 1000000, got -1"),
    ("render-set-repeats-0", RS + ("--repeats", "0"), "--repeats must be >= 1"),
    ("render-set-frames-per-call-0", RS + ("--max-frames-per-call", "0"), "--max-frames-per-call must be >= 1"),
    ("render-set-eta-negative", RS + ("--eta", "-0.5"), "--eta must be >= 0"),
    ("render-set-corrupt-data", ("render-set", "{ckpt}", "--data", "{corrupt}", "--out", "{out}"),
     "corrupt/test/clips64.npy is not a readable .npy array"),
    ("train-ckpt-every-0", T + ("--ckpt-every", "0"), "--ckpt-every must be >= 1 and <= 1000000, got 0"),
    ("train-lr-nan", T + ("--lr", "nan"), "--lr must be a finite number, got nan"),
    ("train-lr-0", T + ("--lr", "0"), "--lr must be > 0"),
    ("train-lr-negative", T + ("--lr", "-1e-4"), "--lr must be > 0"),
    ("train-batch-size-0", T + ("--batch-size", "0"), "--batch-size must be >= 1 and <= 65536, got 0"),
    ("train-steps-negative", T + ("--steps", "-3"), "--steps must be >= 1 and <= 10000000, got -3"),
    ("train-steps-0", T + ("--steps", "0"), "--steps must be >= 1"),
    ("train-sample-every-negative", T + ("--sample-every", "-1"), "--sample-every must be >= 0"),
    ("train-seed-negative", T + ("--seed", "-5"), "--seed must be >= 0"),
    ("train-corrupt-npy", ("train", "baseline", "--data", "{corrupt}", "--run-dir", "{out}", "--steps", "1"),
     "corrupt/train/clips64.npy is not a readable .npy array"),
    ("train-truncated-npy", ("train", "baseline", "--data", "{truncated}", "--run-dir", "{out}", "--steps", "1"),
     "truncated/train/clips64.npy is not a readable .npy array (damaged or truncated)"),
    ("eval-corrupt-data", ("eval", "{gen}", "--data", "{corrupt}", "--split", "test", "--out", "{out}"),
     "corrupt/test/clips64.npy is not a readable .npy array"),
    ("eval-truncated-video", ("eval", "{gen}", "--data", "{data}", "--split", "test", "--out", "{out}",
                              "--metrics", "emotion", "--no-real", "--no-plots", "--no-progress"),
     "b.npy is not a readable .npy video"),
    ("eval-missing-set", ("eval", "{out}/nothing", "--data", "{data}", "--out", "{out}"), "nothing"),
    ("export-corrupt-checkpoint", ("export", "{badckpt}", "--out", "{out}"), "not a readable fv checkpoint"),
    ("export-bad-precision", ("export", "{ckpt}", "--precision", "fp8", "--trt", "--out", "{out}"), "fp8"),
    ("pack-corrupt-checkpoint", ("pack", "{badckpt}", "{out}/small.safetensors"), "not a readable fv checkpoint"),
    ("pack-missing-checkpoint", ("pack", "{out}.safetensors", "{out}/small.safetensors"), "does not exist"),
    ("data-synth-identities-1", SYNTH + ("--identities", "1"), "--identities must be >= 2 and <= 100000, got 1"),
    ("data-synth-test-identities", SYNTH + ("--test-identities", "60"),
     "--test-identities 60 must be smaller than --identities 60"),
    ("data-synth-takes-0", SYNTH + ("--takes", "0"), "--takes must be >= 1"),
    ("data-synth-version-3", SYNTH + ("--version", "3"), "--version must be one of 1, 2, got 3"),
    ("data-synth-seed-negative", SYNTH + ("--seed", "-1"), "--seed must be >= 0"),
    ("data-folder-missing-csv", ("data", "folder", "{data}", "{out}.csv", "{out}"), ".csv"),
    ("bench-steps-0", ("bench", "{ckpt}", "--steps", "0", "--json", "{out}/b.json"), "--steps must be >= 1"),
    ("bench-videos-0", ("bench", "{ckpt}", "--videos", "0", "--json", "{out}/b.json"), "--videos must be >= 1"),
    ("demo-faces-0", ("demo", "--out", "{out}", "--faces", "0"), "--faces must be >= 1"),
]


def run_bad(monkeypatch, capsys, tmp_path, args, **paths):
    """Run `fv ARGS` in an empty working folder; (exit code, output, out) once it is checked that nothing
    was written: neither {out} nor a temporary beside it, nor anything in the working folder."""
    cwd, out = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    before = sorted(tmp_path.iterdir())
    monkeypatch.chdir(cwd)
    code, log = fv_main(monkeypatch, capsys, *(str(a).format(out=out, **paths) for a in args))
    assert code == 2, log
    assert sorted(tmp_path.iterdir()) == before and not list(cwd.iterdir()), log
    return code, log


@pytest.mark.parametrize("args, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(args, needle, files, tmp_path, monkeypatch, capsys):
    assert_one_clear_line(*run_bad(monkeypatch, capsys, tmp_path, args, **files), needle)


def test_every_numeric_option_has_a_rule():
    _register()
    from fv.cli.app import app
    found = list(validate.numeric_params(app))
    assert {c for c, _ in found} >= {"render", "render-set", "train", "bench", "data synth", "demo", "sample"}
    assert [f"{c} --{p}" for c, p in found if p not in validate.RULES] == []


def test_a_182_megapixel_photo_is_read_shrunk_and_a_gigapixel_one_refused(tmp_path):
    from fv.photo.errors import ImageReadError
    from fv.photo.image import PHOTO_PIXELS, read_image
    img = read_image(grey_png(tmp_path / "big.png", 16000, 11400))        # PIL alone: DecompressionBombError
    assert img.shape == (5700, 8000, 3) and img.shape[0] * img.shape[1] <= PHOTO_PIXELS and (img == 128).all()
    with pytest.raises(ImageReadError, match="1200 megapixels"):
        read_image(grey_png(tmp_path / "giga.png", 40000, 30000, pixels=False))


def test_render_of_a_182_megapixel_photo_is_one_line(ckpt, tmp_path, monkeypatch, capsys):
    big = grey_png(tmp_path / "big.png", 16000, 11400)   # a blank photo: no face in it
    args = ("render", big, "-e", "happy", "--checkpoint", ckpt, "--out", "{out}", "--no-progress")
    assert_one_clear_line(*run_bad(monkeypatch, capsys, tmp_path, args), "no face found in")


def test_a_failed_render_leaves_no_partial_folder(ckpt, photo, tmp_path, monkeypatch, capsys):
    """The disk fills up after video.mp4 was written: no output folder, no temporary, no new parent."""
    fail_at = "video.gif"
    from fv.data import video_io
    real = {name: getattr(video_io, name) for name in ("write_gif", "write_mp4")}

    def full(name):
        def write(path, *a, **kw):
            if Path(path).name == fail_at:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return real[name](path, *a, **kw)
        return write
    for name in real:
        monkeypatch.setattr(video_io, name, full(name))
    args = R[:6] + ("--out", "{out}/deeper/render", "--mode", "pixels", "--no-progress")
    code, log = run_bad(monkeypatch, capsys, tmp_path, args, photo=photo, ckpt=ckpt)
    assert_one_clear_line(code, log, f"out/deeper/render/{fail_at}: No space left on device")


def test_pack_into_a_read_only_folder(ckpt, tmp_path, monkeypatch, capsys):
    ro = Path("/sys/fv-read-only")        # root writes through permission bits; sysfs refuses new files
    if not Path("/sys").is_dir():
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
    code, log = fv_main(monkeypatch, capsys, "pack", ckpt, ro / "small.safetensors")
    assert code == 2
    assert_one_clear_line(code, log, str(ro))
    assert not (ro / "small.safetensors").exists()


def _trained(data, run):
    """A tiny baseline run of one step (batch 2, the demo preset's lr 5e-4, seed 0)."""
    from fv.trainer.loop import Trainer
    Trainer(tiny_gan_config("baseline", steps=1), data, run, progress=False, log=lambda m: None).fit()
    return run


def test_a_resumed_run_refuses_other_options_unless_overridden(tiny_data, tmp_path, monkeypatch, capsys):
    run = _trained(tiny_data, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    base = ("train", "baseline", "--data", tiny_data, "--run-dir", run, "--steps", "2", "--no-progress")
    for flag, value, needle in (("--lr", "1e-3", "--lr 0.001 (saved: 0.0005)"),
                                ("--batch-size", "4", "--batch-size 4 (saved: 2)"),
                                ("--seed", "7", "--seed 7 (saved: 0)")):
        code, log = fv_main(monkeypatch, capsys, *base, flag, value)
        assert code == 2
        assert_one_clear_line(code, log, needle)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before   # nothing changed
    # the same values, a longer budget and another schedule resume silently
    code, log = fv_main(monkeypatch, capsys, *base, "--lr", "5e-4", "--ckpt-every", "5")
    assert code == 0 and "override" not in log, log
    code, log = fv_main(monkeypatch, capsys, *base[:-2], "3", "--no-progress", "--lr", "1e-3", "--override")
    assert code == 0 and "--override at step 2: lr 0.0005 -> 0.001" in log, log
    records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"step": 2, "override": {"lr": {"was": 5e-4, "now": 1e-3}}} in records
    assert json.loads((run / "config.json").read_text())["train"]["lr"] == 1e-3


def test_exit_code_2_in_a_real_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}   # this checkout's fv, from tmp_path
    r = subprocess.run([sys.executable, "-m", "fv.cli.main", "train", "baseline", "--lr", "nan", "--run-dir",
                        str(tmp_path / "run")], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert r.returncode == 2 and r.stdout == "" and not (tmp_path / "run").exists()
    assert_one_clear_line(r.returncode, r.stderr, "--lr must be a finite number")
