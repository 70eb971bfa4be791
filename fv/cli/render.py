"""`fv render` (any photo), `fv sample` (a checkpoint on PyTorch) and `fv render-set` (a split, for `fv eval`)."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Optional

import typer

from fv.cli import common
from fv.cli.app import app
from fv.photo.modes import modes_help

MODES_HELP = "How the face video is made: " + modes_help()

BACKEND_HELP = "torch | onnxruntime | tensorrt (the last two use `fv export [--trt]`'s files)"
STEPS_HELP = ("Sampling steps: N (= ddimN, an even stride ending at t = 0), linspaceN or trailingN (diffusers' "
              "spacings, for few-step solvers), or per-section counts like 10,15,20; default: the checkpoint's.")
SAMPLER_HELP = ("ddpm | ddim | dpmpp2m | unipc (diffusion settings); default: the checkpoint's. dpmpp2m "
                "(DPM-Solver++(2M)) and unipc are deterministic multistep solvers for few steps: pair them with "
                "--steps linspace10 or trailing10.")


@contextlib.contextmanager
def _engine_errors():
    """The engine's own input errors as one clear line and exit code 2 (as fv.cli.main does for the rest)."""
    from fv.engine.render_set import RenderSetError
    from fv.engine.requests import EngineError
    try:
        yield
    except (EngineError, RenderSetError) as e:
        common.fail(e)
        raise typer.Exit(2)


FRAME_NOISE_HELP = ("video: one starting noise per video, shared by its 32 frames (steady colour and identity) | "
                    "frame: independent noise per frame (diffusion settings).")


REF_STRENGTH_HELP = ("Diffusion: 1 = start from pure noise (the thesis); s < 1 = start from the neutral face "
                     "noised to s of the schedule (keeps identity and colour). Default: the checkpoint's.")


def _engine(checkpoint: Optional[Path], setting: Optional[str], backend: str, device: str,
            artifacts: Optional[Path], sampler, steps, guidance, eta, **kw):
    from fv.engine.checkpoint import CheckpointError
    from fv.engine.config import check_setting
    from fv.engine.engine import Engine
    want = check_setting(setting) if setting else None
    path = checkpoint or common.default_checkpoint(want)
    eng = Engine(path, backend=backend, device=device, artifacts_dir=artifacts, sampler=sampler,
                 steps=common.steps_spec(steps), guidance=guidance, eta=eta, **kw)
    if want and eng.setting != want:
        raise CheckpointError(f"{path} is a {eng.setting} checkpoint, not {want}")
    if eng.options is None and any(v is not None for v in (sampler, steps, guidance, eta)):
        common.info(f"[fv] {eng.setting} is a GAN setting (one pass): --sampler/--steps/--guidance/--eta are ignored")
    return eng


def render_photo(face: Path, emotion: str, eng, seed: int, out: Optional[Path], paste: bool, aligned: bool,
                 fps: float, progress: bool, mode: str | None = "pixels") -> Path:
    """Detect and align the face, render it at its own resolution (fv.photo.modes), write video.mp4 /
    video.gif / strip.png / input.png / generated.png (the checkpoint's own frames) (+ paste_*)."""
    from fv.data.video_io import write_gif, write_mp4, write_strip
    from fv.engine.atomic import atomic_files
    from fv.engine.labels import CLASSES, parse_emotion
    from fv.photo.modes import default_mode, get_mode
    from fv.photo.paste import pasted
    emo, how = parse_emotion(emotion), get_mode(mode or default_mode(eng))
    photo = _face(face, eng.image_size, aligned)
    if (caution := how.caution(eng, aligned)) is not None:
        common.info(f"[fv] warning: {caution}")
    out = out or Path("renders") / f"{face.stem}_{CLASSES[emo]}"
    video, generated = how.render(eng, photo, emo, seed, progress)   # uint8 [32, S, S, 3], [32, s, s, 3]
    with atomic_files(out) as tmp:   # all of the files, or (a failed write) none of them
        names = [write_mp4(tmp / "video.mp4", video, fps), write_gif(tmp / "video.gif", video, fps),
                 write_strip(tmp / "strip.png", video, 10), write_strip(tmp / "input.png", photo.hires[None], 1),
                 write_strip(tmp / "generated.png", generated, 10)]
        if paste:
            big = pasted(photo, video)
            small = _fit(big, 720)   # GIF and strip of a large photo at most 720 px high
            names += [write_mp4(tmp / "paste.mp4", big, fps), write_gif(tmp / "paste.gif", small, fps),
                      write_strip(tmp / "paste_strip.png", small, 10)]
    files = [out / p.name for p in names]
    common.info(f"[fv] {eng.setting} {CLASSES[emo]} (seed {seed}, {how.name}, face {photo.size} px) -> "
                + ", ".join(str(f) for f in files))
    return out


def _face(path: Path, size: int, aligned: bool):
    """fv.photo.face.PhotoFace of the photo; a warning line for each fv.photo.errors.PhotoWarning (several faces,
    a covered mouth)."""
    from fv.photo.errors import PhotoWarning
    from fv.photo.face import load_face
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PhotoWarning)
        face = load_face(path, size, aligned)
    for w in caught:
        common.info(f"[fv] {w.message}")
    return face


def _fit(frames, height: int):
    """uint8 [T, H, W, 3] scaled down (INTER_AREA) to at most `height` rows; as is when already small."""
    import cv2
    import numpy as np
    h, w = frames.shape[1:3]
    if h <= height:
        return frames
    size = (max(1, round(w * height / h)), height)
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


@app.command()
def render(
    face: Path = typer.Argument(..., help="A photo with one clearly visible face (any size; it is detected "
                                "and aligned)."),
    emotion: str = typer.Option(..., "--emotion", "-e", help="anger | disgust | fear | happiness (happy) | "
                                "sadness (sad) | surprise"),
    checkpoint: Optional[Path] = typer.Option(None, help="Default: the latest checkpoint in runs/, else the "
                                              "demo's, else the one shipped with fv."),
    setting: Optional[str] = typer.Option(None, help="Pick the default checkpoint of this setting."),
    backend: str = typer.Option("torch", help=BACKEND_HELP),
    artifacts: Optional[Path] = typer.Option(None, help="fv export's output folder (default: exports/)."),
    sampler: Optional[str] = typer.Option(None, help=SAMPLER_HELP),
    steps: Optional[str] = typer.Option(None, help=STEPS_HELP),
    guidance: Optional[float] = typer.Option(None, help="Classifier-free guidance scale g (1 = off)."),
    eta: Optional[float] = typer.Option(None, help="DDIM eta (0 = deterministic)."),
    frame_noise: str = typer.Option("video", help=FRAME_NOISE_HELP),
    ref_strength: Optional[float] = typer.Option(None, help=REF_STRENGTH_HELP),
    seed: int = typer.Option(0, help="Random seed (the video depends on it alone)."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: renders/<photo>_<emotion>/)."),
    paste: bool = typer.Option(False, "--paste", help="Also paste the face video back into the photo, at the "
                               "photo's own size."),
    aligned: bool = typer.Option(False, "--aligned", help="The photo is already an aligned face crop."),
    mode: Optional[str] = typer.Option(None, help=MODES_HELP),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    fps: float = typer.Option(8.0, help="Frames per second of the MP4 and GIF."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Render a 32-frame video (neutral -> emotion -> neutral) of the face in any photo, at the resolution the
    face has in the photo (an aligned crop of 64-512 px): MP4, GIF, PNG strip."""
    from fv.engine.labels import parse_emotion
    from fv.photo.modes import parse_mode
    parse_emotion(emotion)  # an unknown emotion or mode fails before anything is loaded
    if mode is not None:
        parse_mode(mode)
    if paste and aligned:
        common.fail(ValueError("--paste needs the face detected in a photo; drop --aligned"))
        raise typer.Exit(2)
    with _engine_errors():
        eng = _engine(checkpoint, setting, backend, device, artifacts, sampler, steps, guidance, eta,
                      frame_noise=frame_noise, ref_strength=ref_strength)
        render_photo(face, emotion, eng, seed, out, paste, aligned, fps, progress, mode)


@app.command()
def sample(
    checkpoint: Path = typer.Argument(..., help="A trained checkpoint (fv train ...)."),
    face: Path = typer.Option(..., "--face", help="A photo with a face, or an aligned crop with --aligned."),
    emotion: str = typer.Option(..., "--emotion", "-e", help="anger | disgust | fear | happiness | sadness | surprise"),
    sampler: Optional[str] = typer.Option(None, help=SAMPLER_HELP),
    steps: Optional[str] = typer.Option(None, help=STEPS_HELP),
    guidance: Optional[float] = typer.Option(None, help="Classifier-free guidance scale g (1 = off)."),
    eta: Optional[float] = typer.Option(None, help="DDIM eta (0 = deterministic)."),
    frame_noise: str = typer.Option("video", help=FRAME_NOISE_HELP),
    ref_strength: Optional[float] = typer.Option(None, help=REF_STRENGTH_HELP),
    seed: int = typer.Option(0, help="Random seed."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: renders/<face>_<emotion>/)."),
    aligned: bool = typer.Option(False, "--aligned", help="The face image is already an aligned crop."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Sample one video from CHECKPOINT with PyTorch: MP4, GIF and PNG strip (fv render --mode pixels, torch)."""
    from fv.engine.labels import parse_emotion
    parse_emotion(emotion)
    with _engine_errors():
        eng = _engine(checkpoint, None, "torch", device, None, sampler, steps, guidance, eta,
                      frame_noise=frame_noise, ref_strength=ref_strength)
        render_photo(face, emotion, eng, seed, out, False, aligned, 8.0, progress)


@app.command("render-set")
def render_set(
    checkpoint: Optional[Path] = typer.Argument(None, help="Default: the latest checkpoint (of --setting)."),
    data: Optional[Path] = typer.Option(None, help="Prepared data folder (default: data/synth)."),
    split: str = typer.Option("test", help="Split whose videos are re-generated from frame 0 and emotion."),
    shard: str = typer.Option("0/1", help="i/n: render only videos with row % n == i (run n processes)."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: renders/<setting>_<split>/)."),
    repeats: int = typer.Option(1, help="Samples per test video (different seeds)."),
    seed: int = typer.Option(0, help="Base seed (each video's seed derives from it and its id)."),
    setting: Optional[str] = typer.Option(None, help="Pick the default checkpoint of this setting."),
    backend: str = typer.Option("torch", help=BACKEND_HELP),
    artifacts: Optional[Path] = typer.Option(None, help="fv export's output folder (default: exports/)."),
    sampler: Optional[str] = typer.Option(None, help=SAMPLER_HELP),
    steps: Optional[str] = typer.Option(None, help=STEPS_HELP),
    guidance: Optional[float] = typer.Option(None, help="Classifier-free guidance scale g (1 = off)."),
    eta: Optional[float] = typer.Option(None, help="DDIM eta (0 = deterministic)."),
    frame_noise: str = typer.Option("video", help=FRAME_NOISE_HELP),
    ref_strength: Optional[float] = typer.Option(None, help=REF_STRENGTH_HELP),
    mp4: bool = typer.Option(False, "--mp4", help="Also write an MP4 per video."),
    max_videos: Optional[int] = typer.Option(None, help="Stop after this many new videos (resume later)."),
    max_frames_per_call: int = typer.Option(512, help="Largest network batch (frames); bounds memory."),
    precision: str = typer.Option("fp32", help="fp32 | bf16 | fp16 (torch autocast; tensorrt: its engines)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Render every video of a split (frame 0 + its emotion) for `fv eval`; resumable and shardable."""
    from fv.data.layout import load_split
    from fv.engine.render_set import parse_shard, render_set as run
    with _engine_errors():
        which = parse_shard(shard)
        split_data = load_split(common.ensure_data(data or common.DATA, explicit=data is not None), split)
        eng = _engine(checkpoint, setting, backend, device, artifacts, sampler, steps, guidance, eta,
                      max_frames_per_call=max_frames_per_call, precision=precision, frame_noise=frame_noise,
                      ref_strength=ref_strength)
        writers = {}
        if mp4:
            from fv.data.video_io import write_mp4
            writers["mp4"] = lambda p, v: write_mp4(p, v, 8)
        target = out or Path("renders") / f"{eng.setting}_{split}"
        res = run(eng, split_data.clips64[:, 0], split_data.rows, target, split, which, repeats, seed,
                  writers, max_videos, progress, str(split_data.root))
    common.info(f"[fv] {res.rendered} rendered, {res.skipped} already done, {res.remaining} left "
                f"(shard {which[0]}/{which[1]}); index: {res.index}")
