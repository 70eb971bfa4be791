"""`fv demo`: the embedded default end to end, on a CPU, in minutes.

1. makes the synthetic data set (demo_out/data/synth),
2. trains baseline (VICEGAN), onlyDM and LFDM briefly, starting from the small checkpoints shipped in
   fv/assets/checkpoints/ when present (fine-tuning; from scratch otherwise, which takes hours on a CPU),
3. renders every emotion for held-out test faces with each setting: MP4 + GIF per video, and one PNG
   strip per setting (rows = face x emotion, 10 frames across, as the thesis figures show),
4. renders every emotion for a real portrait that ships with fv (fv/assets/faces/biden.jpg, a public-domain
   White House photograph, downscaled) with onlyDM and with LFDM in `fv render`'s default mode for each
   (transfer; LFDM: its own flows), at the face's own resolution and pasted back into the photo at the
   photo's size (demo_out/portrait/, demo_out/portrait_LFDM/).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from fv.data.layout import load_split
from fv.engine.assets import SHIPPED
from fv.engine.config import default_config
from fv.engine.labels import EMOTIONS

PORTRAIT = Path(__file__).resolve().parent / "assets" / "faces" / "biden.jpg"
FINE_TUNE_LR = 0.1


def shipped_checkpoint(setting: str) -> Path | None:
    p = SHIPPED / f"{setting}.safetensors"
    return p if p.exists() else None


def run_demo(out: Path = Path("demo_out"), baseline_steps: int = 60, dm_steps: int = 60, n_faces: int = 2,
             sample_steps: int = 25, progress: bool = True, log: Callable[[str], None] = print,
             lfdm_steps: int = 40) -> dict:
    from fv.data.synth import DEFAULT_VERSION, make_synthetic
    from fv.engine.config import data_synth_version
    from fv.trainer.run import train_setting

    out = Path(out)
    data = out / "data" / "synth"
    if not (data / "test" / "clips64.npy").exists() or data_synth_version(str(data)) != DEFAULT_VERSION:
        log(f"[demo] 1/4 synthetic data set -> {data}")
        make_synthetic(data, progress=progress)   # the default version: what the shipped checkpoints learned
    runs = out / "runs"
    ckpts = {}
    for setting, steps in (("baseline", baseline_steps), ("onlyDM", dm_steps), ("LFDM", lfdm_steps)):
        init = shipped_checkpoint(setting)
        how = f"fine-tuning the shipped {init.name}" if init else "from scratch (no shipped checkpoint)"
        log(f"[demo] {'2' if setting == 'baseline' else '3'}/4 train {setting}: {steps} steps, {how}")
        overrides = dict(steps=steps, ckpt_every=steps, sample_every=0, log_every=10)
        motion = None          # a shipped onlyDM keeps the GRU it was trained with
        if init is not None:   # a gentle fine-tune (fresh optimiser state): a tenth of the preset's lr
            overrides["lr"] = default_config(setting, "demo").train.lr * FINE_TUNE_LR
        elif setting == "onlyDM":
            motion = runs / "baseline" / "last.safetensors"
        ckpts[setting] = train_setting(setting, data, run_dir=runs / setting, overrides=overrides,
                                       resume=False, init=init, motion_checkpoint=motion, progress=progress,
                                       log=log)
    log("[demo] 4/4 render the six emotions for held-out test faces")
    test = load_split(data, "test")
    rows = [i * (len(test) // n_faces) for i in range(n_faces)]
    faces = test.videos(rows)[:, 0]                                   # [n, 3, 64, 64] neutral frames
    written = {}
    for setting, path in ckpts.items():
        written[setting] = render_emotions(path, faces, [test.rows[r]["subject"] for r in rows],
                                           out / "videos" / setting, out / f"{setting}_strip.png",
                                           sample_steps=sample_steps, progress=progress)
    log(f"[demo] real portrait {PORTRAIT.name}: the six emotions with onlyDM and LFDM at the photo's own resolution")
    written["portrait"] = render_portrait(ckpts["onlyDM"], PORTRAIT, out / "portrait", sample_steps=sample_steps)
    written["portrait_LFDM"] = render_portrait(ckpts["LFDM"], PORTRAIT, out / "portrait_LFDM",
                                               sample_steps=sample_steps)
    log(f"[demo] done: strips {out}/baseline_strip.png, {out}/onlyDM_strip.png, {out}/LFDM_strip.png, "
        f"{out}/portrait_strip.png and {out}/portrait_LFDM_strip.png, videos in {out}/videos/, {out}/portrait/ "
        f"and {out}/portrait_LFDM/")
    return {"checkpoints": ckpts, "videos": written}


def render_portrait(checkpoint: Path, photo: Path, out: Path, sample_steps: int = 25) -> list[Path]:
    """Every emotion for the face in `photo`, in fv render's default mode for the checkpoint: the face video at the face's own
    resolution (MP4 each) and pasted into the whole photo (MP4 each), and a PNG strip (rows = emotions, 10
    frames of the face video across) beside the folder, as <out>_strip.png."""
    import numpy as np

    from fv.data.video_io import uniform_indices, write_mp4
    from fv.engine.engine import Engine
    from fv.photo.face import load_face
    from fv.photo.modes import MODES, default_mode
    from fv.photo.paste import pasted
    from fv.trainer.preview import save_png

    engine = Engine(checkpoint, backend="torch", device="cpu", steps=sample_steps)
    mode = MODES[default_mode(engine)]                                         # the registry's choice for it
    face = load_face(photo, engine.image_size)
    paths, rows = [], []
    for e, name in enumerate(EMOTIONS):
        video, _ = mode.render(engine, face, e, seed=e)                        # uint8 [32, S, S, 3]
        paths += [write_mp4(out / f"{name}_face.mp4", video), write_mp4(out / f"{name}_photo.mp4", pasted(face, video))]
        rows.append(np.concatenate(list(video[uniform_indices(len(video), 10)]), axis=1))
    paths.append(save_png(out.parent / f"{out.name}_strip.png", np.concatenate(rows, axis=0)))
    return paths


def render_emotions(checkpoint: Path, faces: torch.Tensor, names: list[str], video_dir: Path, strip: Path,
                    sample_steps: int = 25, progress: bool = False) -> list[Path]:
    """Every emotion for every face: MP4 + GIF each, and one PNG strip (rows = face x emotion)."""
    from fv.data.video_io import write_gif, write_mp4
    from fv.engine.engine import Engine
    from fv.trainer.preview import save_png, video_grid

    n = len(faces)
    x_ref = faces.repeat_interleave(len(EMOTIONS), 0)
    emotions = torch.arange(len(EMOTIONS)).repeat(n)
    seeds = list(range(len(x_ref)))
    engine = Engine(checkpoint, backend="torch", device="cpu", steps=sample_steps)
    videos = engine.render(x_ref, emotions, seeds, progress=progress)  # uint8 [N, 32, 64, 64, 3]
    paths = []
    for i, v in enumerate(videos):
        stem = video_dir / f"{names[i // len(EMOTIONS)]}_{EMOTIONS[int(emotions[i])]}"
        paths += [write_mp4(stem.with_suffix(".mp4"), v), write_gif(stem.with_suffix(".gif"), v)]
    grid = video_grid(torch.from_numpy(videos).permute(0, 1, 4, 2, 3).float() / 127.5 - 1)
    paths.append(save_png(strip, grid, scale=2))
    return paths
