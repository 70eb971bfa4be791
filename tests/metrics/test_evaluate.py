"""`fv eval` end to end on a tiny real split: copies of real clips score like the real data, frame-shuffled
and noise clips score worse; generic folders (MP4, GIF, frame folders); tables, plots, caching, bad input."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fv.data.layout import load_split, write_meta, write_split
from fv.engine.labels import APEX, EMOTIONS, NEUTRAL
from fv.metrics.errors import MetricsError
from fv.metrics.evaluate import EvalOptions, evaluate
from fv.metrics.generated import load_clip, read_index
from fv.metrics.report import fmt, overall_figure, profile_figure

COLUMNS = ["video_id", "emotion", "subject", "ref_split", "ref_row", "seed", "file", "setting"]
PERM = np.random.default_rng(0).permutation(32)  # the frame shuffle of the "shuffled" set


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def real_root(tmp_path_factory) -> Path:
    """A tiny real split: synthetic happiness clips of two identities and one anger clip."""
    from fv.data.synth import make_synthetic
    src = load_split(make_synthetic(tmp_path_factory.mktemp("synth"), n_identities=3, n_test_identities=2,
                                    takes=1, workers=1, progress=False), "test")
    pick = [i for i, r in enumerate(src.rows) if r["emotion"] == "happiness"][:2]
    pick += [i for i, r in enumerate(src.rows) if r["emotion"] == "anger"][:1]
    root = tmp_path_factory.mktemp("real")
    write_split(root, "test", np.asarray(src.clips64[pick]), [src.rows[i] for i in pick])
    write_meta(root, name="tiny")
    return root


def render_set(folder: Path, clips: np.ndarray, emotions: list[str], ref_rows: list[int], setting: str) -> Path:
    """The `fv render-set` layout: OUT/videos/<id>.npy + OUT/index.csv."""
    (folder / "videos").mkdir(parents=True)
    with open(folder / "index.csv", "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        for i, (clip, emo, ref) in enumerate(zip(clips, emotions, ref_rows)):
            vid = f"{setting}_{i:03d}"
            np.save(folder / "videos" / f"{vid}.npy", clip)
            w.writerow(dict(video_id=vid, emotion=emo, subject="s", ref_split="test", ref_row=ref, seed=i,
                            file=f"videos/{vid}.npy", setting=setting))
    return folder


@pytest.fixture(scope="module")
def evaluated(real_root, tmp_path_factory):
    """One run over three sets: copies of the real clips, frame-shuffled copies, uniform noise."""
    real = load_split(real_root, "test")
    clips = np.asarray(real.clips64)
    emos = [r["emotion"] for r in real.rows]
    happy = [i for i, e in enumerate(emos) if e == "happiness"]
    base = tmp_path_factory.mktemp("gen")
    # uniform noise images, each held for 32 frames (one unique frame per clip keeps dlib cheap)
    noise = np.repeat(np.random.default_rng(1).integers(0, 256, (len(happy), 1, 64, 64, 3), dtype=np.uint8), 32, 1)
    sets = [render_set(base / "copies", clips, emos, list(range(len(emos))), "copies"),
            render_set(base / "shuffled", clips[happy][:, PERM], ["happiness"] * len(happy), happy, "shuffled"),
            render_set(base / "noise", noise, ["happiness"] * len(happy), happy, "noise")]
    cache = base / "cache"
    opts = EvalOptions(data=str(real_root), identity_models=("dlib",), device="cpu", cache_dir=str(cache))
    out = base / "eval"
    metrics = evaluate(sets, opts, out=out)
    return dict(metrics=metrics, out=out, cache=cache, sets=sets, options=opts, real=real)


def by_name(metrics: dict) -> dict[str, dict]:
    return {r["name"]: r for r in metrics["generated"]}


# ----------------------------------------------------------------------------- end to end

@pytest.mark.slow
def test_copies_score_like_real_data_and_match_hand_formulas(evaluated):
    m, real = evaluated["metrics"], evaluated["real"]
    copies = by_name(m)["copies"]
    assert copies["fvd"]["all"] == pytest.approx(0.0, abs=1e-3)
    assert copies["fvd"]["anger"] is None  # one anger clip per side: no covariance
    assert copies["emotion"]["groups"] == m["real"]["emotion"]["groups"]
    assert copies["identity"]["dlib"] == m["real"]["identity"]["dlib"]
    # AEA / DEA / AEA_WN by hand from the classifier's labels (thesis eqs. 4.3-4.7)
    from fv.metrics.emotion import build_emotion_classifier, classify_clips
    labels, _ = classify_clips(build_emotion_classifier("wtf", device="cpu"), np.array(real.clips64))
    target = real.emotions
    apex = (labels[:, APEX.start:APEX.stop] == target[:, None]).mean(1)
    seg = np.where(np.isin(np.arange(32), list(APEX))[None], target[:, None], NEUTRAL)
    wn = (labels == seg).mean(1)
    g = copies["emotion"]["groups"]["all"]
    assert g["aea"] == pytest.approx(apex.mean()) and g["dea"] == pytest.approx((apex > 0.5).mean())
    assert g["aea_wn"] == pytest.approx(wn.mean()) and g["dea_wn"] == pytest.approx((wn > 0.5).mean())


@pytest.mark.slow
def test_fvd_per_emotion_is_the_frechet_formula_on_i3d_features(evaluated):
    from fv.metrics.fvd import I3DFeatures, cached_features
    m, real = evaluated["metrics"], evaluated["real"]
    ext = I3DFeatures("logits", "cpu")
    real_f = cached_features(ext, np.asarray(real.clips64), evaluated["cache"] / "i3d")  # cache hit: no I3D run
    noise_clips = np.stack([np.load(p) for p in sorted((evaluated["sets"][2] / "videos").glob("*.npy"))])
    gen_f = cached_features(ext, noise_clips, evaluated["cache"] / "i3d")
    a = real_f[real.emotions == EMOTIONS.index("happiness")]

    def frechet(x, y):
        # eq. 4.2 in closed form for N << D: with centred X1 [n1, D], X2 [n2, D] and S_i = X_i^T X_i / (n_i - 1),
        # the nonzero eigenvalues of S1 S2 are the squared singular values of X1 X2^T over (n1 - 1)(n2 - 1), so
        # Tr (S1 S2)^{1/2} = ||X1 X2^T||_* / sqrt((n1 - 1)(n2 - 1)) and Tr S_i = ||X_i||_F^2 / (n_i - 1).
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        x1, x2 = x - x.mean(0), y - y.mean(0)
        c1, c2 = len(x) - 1, len(y) - 1
        tr_sqrt = np.linalg.svd(x1 @ x2.T, compute_uv=False).sum() / np.sqrt(c1 * c2)
        return float(((x.mean(0) - y.mean(0)) ** 2).sum() + (x1 ** 2).sum() / c1 + (x2 ** 2).sum() / c2 - 2 * tr_sqrt)
    noise = by_name(m)["noise"]["fvd"]
    assert noise["happiness"] == pytest.approx(frechet(a, gen_f), rel=1e-3)
    assert noise["all"] == pytest.approx(frechet(real_f, gen_f), rel=1e-3)


@pytest.mark.slow
def test_shuffled_and_noise_clips_score_worse(evaluated):
    sets = by_name(evaluated["metrics"])
    fvd = {k: sets[k]["fvd"]["all"] for k in sets}
    assert fvd["copies"] < 1e-3 < fvd["shuffled"] < fvd["noise"]
    happy = lambda k: sets[k]["emotion"]["groups"]["happiness"]["aea"]  # noqa: E731
    assert happy("copies") == evaluated["metrics"]["real"]["emotion"]["groups"]["happiness"]["aea"] > happy("shuffled")
    acd = lambda k: sets[k]["identity"]["dlib"]["acd_i"]["euclidean"]["all"]  # noqa: E731
    assert acd("noise")["distance"] > 2 * acd("copies")["distance"]
    assert acd("noise")["recognition_rate"] < acd("copies")["recognition_rate"] == 1.0


@pytest.mark.slow
def test_tables_and_plots_hold_the_numbers_of_metrics_json(evaluated):
    out = evaluated["out"]
    m = json.loads((out / "metrics.json").read_text())
    tables = (out / "tables.md").read_text()
    lines = tables.splitlines()
    for r in m["generated"]:
        fvd_row = next(ln for ln in lines if ln.startswith(f"| {r['name']} |"))
        assert fmt(r["fvd"]["all"], 1) in fvd_row and "–" in fvd_row  # anger: no FVD
        g = r["emotion"]["groups"]["all"]
        assert f"| {r['name']} | {fmt(g['dea'])} | {fmt(g['aea'])} | {fmt(g['dea_wn'])} | {fmt(g['aea_wn'])} |" in tables
        i = r["identity"]["dlib"]["acd_i"]
        assert (f"| {r['name']} | {fmt(i['cosine']['all']['distance'])} | – | {fmt(i['euclidean']['all']['distance'])}"
                f" | {fmt(i['euclidean']['all']['recognition_rate'])} |") in tables
    assert "| real data |" in tables and "Table 5.5" in tables
    for name in ("profiles_copies_dlib", "profiles_shuffled_dlib", "profiles_noise_dlib", "overall_dlib"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the plotted curves are the profiles of metrics.json, the real data's among them
    fig = profile_figure(m, "noise", "dlib")
    ax_aea, ax_acd = fig.axes[0], fig.axes[len(fig.axes) // 2]
    noise = by_name(m)["noise"]
    np.testing.assert_allclose(ax_aea.lines[0].get_ydata(), noise["emotion"]["groups"]["all"]["profile"])
    np.testing.assert_allclose(ax_aea.lines[1].get_ydata(), m["real"]["emotion"]["groups"]["all"]["profile"])
    np.testing.assert_allclose(ax_acd.lines[0].get_ydata(), noise["identity"]["dlib"]["acd_i"]["cosine"]["all"]["profile"])
    overall = overall_figure(m, "dlib")
    assert [ln.get_label() for ln in overall.axes[0].lines] == ["copies", "shuffled", "noise", "real data"]


@pytest.mark.slow
def test_second_run_reuses_every_cached_feature(evaluated, tmp_path):
    sets = [evaluated["sets"][0], evaluated["sets"][2]]  # copies, noise
    again = evaluate(sets, evaluated["options"], out=tmp_path / "again", plots=False)
    assert again["cache"]["i3d"]["computed_clips"] == 0
    assert again["cache"]["emotion"]["computed_frames"] == 0
    assert again["cache"]["identity_dlib"]["computed_frames"] == 0
    first = evaluated["metrics"]
    assert [r["fvd"] for r in again["generated"]] == [r["fvd"] for r in first["generated"][::2]]
    assert again["real"]["identity"] == first["real"]["identity"]


# ----------------------------------------------------------------------------- generic folders

def test_generic_folder_of_mp4_gif_and_frames(real_root, tmp_path):
    from fv.data.video_io import write_gif, write_mp4
    from PIL import Image
    real = load_split(real_root, "test")
    clip = np.asarray(real.clips64[0])
    (tmp_path / "frames").mkdir()
    for t, f in enumerate(clip):
        Image.fromarray(f).save(tmp_path / "frames" / f"f{t}.png")
    long = tmp_path / "long"  # 40 frames -> uniform_indices(40, 32)
    long.mkdir()
    rng = np.random.default_rng(0)
    frames40 = rng.integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    for t, f in enumerate(frames40):
        Image.fromarray(f).save(long / f"{t}.png")
    write_mp4(tmp_path / "a.mp4", clip)
    write_gif(tmp_path / "a.gif", clip)
    big = np.repeat(np.repeat(clip, 2, axis=1), 2, axis=2)  # 128x128, like LFDM's samples
    np.save(tmp_path / "big.npy", big)
    Image.fromarray(clip[0]).save(tmp_path / "ref.png")
    rows = [("frames", "happy", {"ref_video_id": real.rows[0]["video_id"]}), ("a.mp4", "happiness", {"ref_row": "0"}),
            ("a.gif", "happiness", {"ref_image": "ref.png"}), ("long", "anger", {"ref_row": "2"}),
            ("big.npy", "happiness", {"ref_row": "0"})]
    with open(tmp_path / "samples.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["file", "emotion", "ref_row", "ref_video_id", "ref_image"])
        w.writeheader()
        for file, emo, ref in rows:
            w.writerow({"file": file, "emotion": emo, **ref})
    assert [r.emotion for r in read_index(tmp_path / "samples.csv")] == [3, 3, 3, 0, 3]
    got = {file: load_clip(tmp_path / file, crop="center")[0] for file, _, _ in rows}
    np.testing.assert_array_equal(got["frames"], clip)                        # PNG: lossless
    assert np.abs(got["a.mp4"].astype(int) - clip).mean() < 6                # H.264, quality 8
    assert np.abs(got["a.gif"].astype(int) - clip).mean() < 6                # 256-colour palette
    np.testing.assert_array_equal(got["long"], frames40[(np.arange(32) * 39) // 31])
    assert np.abs(got["big.npy"].astype(int) - clip).mean() < 2               # 2x up, INTER_AREA down
    np.save(tmp_path / "noise128.npy", rng.integers(0, 256, (32, 128, 128, 3), dtype=np.uint8))
    frames, how = load_clip(tmp_path / "noise128.npy", crop="face")  # no face anywhere: centre crop
    assert frames.shape == (32, 64, 64, 3) and how == {"npy": 1, "center": 1}
    m = evaluate(tmp_path / "samples.csv", EvalOptions(data=str(real_root), metrics=("emotion",), crop="center",
                                                       device="cpu"), out=tmp_path / "eval", plots=False)
    r = m["generated"][0]
    assert r["n_videos"] == 5 and r["name"] == "samples"
    assert r["inputs"] == {"frames": 2, "video": 2, "resampled": 1, "as_is": 4, "npy": 1, "center": 1}
    assert (tmp_path / "eval" / "tables.md").is_file()


def test_larger_frames_get_the_face_centred_crop(pexels_video):
    import cv2

    from fv.photo.aligner import FaceAligner
    from fv.photo.geometry import eye_centres, face_targets
    clip, how = load_clip(pexels_video, crop="face")        # 472 frames 640x360 -> 32 x 64 x 64
    assert clip.shape == (32, 64, 64, 3) and how == {"video": 1, "resampled": 1, "face": 1}
    # Independent check: landmarks found again on the output put the eyes where the crop puts them.
    up = cv2.resize(clip[0], (256, 256), interpolation=cv2.INTER_CUBIC)
    al = FaceAligner()
    eyes = eye_centres(al.landmarks(up, al.detect(up)[0]))
    np.testing.assert_allclose(eyes, face_targets(256), atol=12)


# ----------------------------------------------------------------------------- bad input

def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


def test_bad_input_raises_one_line_metrics_errors(real_root, tmp_path):
    opts = EvalOptions(data=str(real_root), metrics=("emotion",), device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MetricsError) as e:
        evaluate(tmp_path / "empty", opts)
    assert "no index.csv" in _one_line(e)
    clip = np.zeros((1, 32, 64, 64, 3), np.uint8)
    bad = render_set(tmp_path / "bad", clip, ["joyful"], [0], "x")
    with pytest.raises(MetricsError) as e:
        evaluate(bad, opts)
    assert "unknown emotion 'joyful'" in _one_line(e) and "line 2" in _one_line(e)
    far = render_set(tmp_path / "far", clip, ["anger"], [99], "x")
    with pytest.raises(MetricsError) as e:
        evaluate(far, opts)
    assert "ref_row 99" in _one_line(e)
    ok = render_set(tmp_path / "ok", clip, ["anger"], [0], "x")
    with pytest.raises(MetricsError) as e:
        evaluate(ok, EvalOptions(data=str(real_root), split="val", metrics=("emotion",)))
    assert "no 'val' split" in _one_line(e)
    with pytest.raises(MetricsError) as e:
        evaluate(ok, EvalOptions(data=str(tmp_path / "nowhere")))
    assert "does not exist" in _one_line(e)
    with pytest.raises(MetricsError) as e:
        evaluate(ok, EvalOptions(data=str(real_root), identity_models=("facenet",)))
    assert "unknown identity model 'facenet'" in _one_line(e)
    if importlib.util.find_spec("deepface") is None:  # the thesis' DeepFace models: never downloaded
        with pytest.raises(MetricsError) as e:
            evaluate(ok, EvalOptions(data=str(real_root), metrics=("emotion",), emotion_model="deepface"))
        assert "DeepFace emotion model unavailable" in _one_line(e)
        with pytest.raises(MetricsError) as e:
            evaluate(ok, EvalOptions(data=str(real_root), metrics=("identity",), identity_models=("arcface",)))
        assert "DeepFace arcface model unavailable" in _one_line(e)
    (tmp_path / "ok" / "videos" / "x_000.npy").unlink()
    with pytest.raises(MetricsError) as e:
        evaluate(ok, opts)
    assert "does not exist" in _one_line(e)


def _fv(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run the `fv` entry point in-process -> (exit code, stderr)."""
    from fv.cli.main import main
    monkeypatch.setattr(sys, "argv", ["fv", *args])
    code = main()
    return code, capsys.readouterr().err


def test_cli_exit_codes_and_messages(real_root, tmp_path, monkeypatch, capsys):
    real = load_split(real_root, "test")
    gen = render_set(tmp_path / "gen", np.asarray(real.clips64), [r["emotion"] for r in real.rows], [0, 1, 2], "cp")
    code, err = _fv(monkeypatch, capsys, "eval", str(gen), "--data", str(real_root), "--metrics", "emotion",
                    "--no-progress", "--no-plots")
    assert code == 0, err
    m = json.loads((gen / "eval" / "metrics.json").read_text())
    assert "AEA " + fmt(m["generated"][0]["emotion"]["groups"]["all"]["aea"]) in err
    code, err = _fv(monkeypatch, capsys, "eval", str(gen), "--data", str(real_root), "--split", "val")
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "'val'" in lines[0]


def test_eval_takes_the_data_set_from_the_render_set_and_checks_each_reference(real_root, tmp_path, monkeypatch,
                                                                               capsys):
    from fv.engine.engine import Engine
    from fv.engine.render_set import render_set as run_set
    from tests.engine.test_engine import tiny_gan_checkpoint
    real = load_split(real_root, "test")
    gen = tmp_path / "gen"
    run_set(Engine(tiny_gan_checkpoint(tmp_path / "gan.safetensors")), real.clips64[:, 0], real.rows, gen, "test",
            data=real_root)
    monkeypatch.chdir(tmp_path)  # no data/synth here: only render_set.json can name the data set
    flags = ("--metrics", "emotion", "--no-real", "--no-plots", "--no-progress")
    code, err = _fv(monkeypatch, capsys, "eval", str(gen), *flags)
    assert code == 0, err
    m = json.loads((gen / "eval" / "metrics.json").read_text())
    assert m["real_split"] == {"root": str(real_root.resolve()), "split": "test", "n_videos": 3}
    assert m["options"]["data"] == str(real_root.resolve())
    # another data set with the same video ids but other clips in its rows (another seed, another order):
    # --data overrides the manifest, and no video is paired with a reference frame it was not rendered from
    other = tmp_path / "other"
    write_split(other, "test", np.asarray(real.clips64)[[1, 0, 2]], real.rows)  # rows 0, 1: other subjects
    write_meta(other, name="other")
    code, err = _fv(monkeypatch, capsys, "eval", str(gen), "--data", str(other), "--out", str(tmp_path / "e2"), *flags)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error:") and real.rows[0]["video_id"] in lines[0]
    assert "was not rendered from frame 0 of row 0" in lines[0]
    assert f"it was rendered from {real_root.resolve()} split test" in lines[0]
    assert not (tmp_path / "e2" / "metrics.json").exists()
    # a set without render_set.json names no data set: the library asks for one
    (gen / "render_set.json").unlink()
    with pytest.raises(MetricsError, match="pass --data"):
        evaluate(gen, EvalOptions(metrics=("emotion",), real=False))
