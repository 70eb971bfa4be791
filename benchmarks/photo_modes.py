"""Which `fv render --mode` gives the better video of a real photo (issue 13)? Prints a table and writes JSON.

    python benchmarks/photo_modes.py [--checkpoint PATH] [--steps 10] [--max-size 512] [--strips DIR]
                                     [--out benchmarks/photo_modes.json]

Inputs: the real portraits in /work/shared/data/faces (obama, biden, obama-1080p; $FV_FACES) and frame 0 of
the Pexels video ($FV_VIDEO), all six emotions, one seed. For every mode of fv.photo_video (pixels: the
model's frames upscaled; transfer-self: the photo's pixels moved by the model's frames of the photo;
transfer: moved by the model's frames of a synthetic stand-in face) it scores the face video (at the face's
own size, at most --max-size):
  id_mean / id_max   dlib identity distance (Euclidean, 128-D; same person < 0.6) between the input crop and
                     every output frame, mean and max over the 32 frames (frames scored at 224 px)
  p0 / p_apex        the FER classifier's (fv.metrics.emotion, "wtf") probability of the target emotion at
                     frame 0 and its mean over the apex frames 10-21; gain = p_apex - p0
Means over inputs x emotions; per-emotion gains in the JSON. --strips writes one PNG per input and mode
(rows = emotions, frames 0 6 11 16 21 26 31 at 128 px).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fv.data.video_io import read_video
from fv.engine.engine import Engine
from fv.engine.labels import EMOTIONS
from fv.engine.requests import RenderRequest
from fv.metrics.emotion import build_emotion_classifier
from fv.metrics.identity import build_face_embedder
from fv.photo_video import MODES, face_video, load_face, model_input, standin_version

FACES = Path(os.environ.get("FV_FACES", "/work/shared/data/faces"))
VIDEO = Path(os.environ.get("FV_VIDEO", "/work/shared/data/WolfgangLanger_Pexels.mp4"))
APEX = slice(10, 22)
SCORE_SIZE = 224
STRIP_FRAMES = [0, 6, 11, 16, 21, 26, 31]


def inputs(tmp: Path) -> dict[str, Path]:
    paths = {p.stem: p for p in sorted(FACES.glob("*.jpg"))}
    if VIDEO.is_file():
        frame = tmp / "pexels0.png"
        Image.fromarray(read_video(VIDEO, indices=[0])[0]).save(frame)
        paths["pexels-frame0"] = frame
    return paths


def score(video: np.ndarray, crop: np.ndarray, emotion: int, embed, fer) -> dict:
    video = np.concatenate([crop[None], video])
    if video.shape[1] > SCORE_SIZE:   # both metrics see at most 224 px (dlib's chips are 150, FER's 48)
        import cv2
        video = np.stack([cv2.resize(f, (SCORE_SIZE,) * 2, interpolation=cv2.INTER_AREA) for f in video])
    e = embed(video)
    video = video[1:]
    dist = np.linalg.norm(e[1:] - e[0], axis=1)
    p = fer(video)[1][:, emotion]
    return {"id_mean": float(dist.mean()), "id_max": float(dist.max()), "p0": float(p[0]),
            "p_apex": float(p[APEX].mean()), "gain": float(p[APEX].mean() - p[0])}


def strip(videos: list[np.ndarray]) -> np.ndarray:
    import cv2
    rows = [np.concatenate([cv2.resize(v[t], (128, 128), interpolation=cv2.INTER_AREA) for t in STRIP_FRAMES], 1)
            for v in videos]
    return np.concatenate(rows, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=Path(__file__).resolve().parents[1]
                    / "fv" / "assets" / "checkpoints" / "onlyDM.safetensors")
    ap.add_argument("--steps", default="10", help="diffusion steps (ignored by GAN settings)")
    ap.add_argument("--max-size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strips", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/photo_modes.json"))
    args = ap.parse_args()
    torch.manual_seed(0)
    eng = Engine(args.checkpoint, steps=int(args.steps))
    steps = eng.options.steps if eng.options is not None else 1
    embed, fer = build_face_embedder("dlib"), build_emotion_classifier("wtf", device="cpu")
    rows, t0 = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        faces = {name: load_face(p, eng.image_size, hi=args.max_size) for name, p in inputs(Path(tmp)).items()}
    # one batch: the photos' crops and the stand-in, every emotion (transfer-self and pixels share a render)
    sources = {**{n: f for n, f in faces.items()}, "_standin": next(iter(faces.values()))}
    reqs = [(n, e) for n in sources for e in range(len(EMOTIONS))]
    version = standin_version(eng.config)   # the stand-in is drawn as the checkpoint's training faces were
    crops = {n: model_input(f, "transfer" if n == "_standin" else "pixels", version) for n, f in sources.items()}
    gen = eng.render_requests([RenderRequest(crops[n], e, args.seed) for n, e in reqs])
    gen = {k: v for k, v in zip(reqs, gen)}
    t_model = time.perf_counter() - t0
    for name, face in faces.items():
        per_mode = {m: [] for m in MODES}
        for e, emo in enumerate(EMOTIONS):
            for mode in MODES:
                g = gen[("_standin" if mode == "transfer" else name, e)]
                video = face_video(face, mode, g, version)
                per_mode[mode].append(video)
                rows.append({"input": name, "size": face.size, "emotion": emo, "mode": mode,
                             **score(video, face.hires, e, embed, fer)})
        if args.strips:
            args.strips.mkdir(parents=True, exist_ok=True)
            for mode, videos in per_mode.items():
                Image.fromarray(strip(videos)).save(args.strips / f"{name}_{mode}.png")
    keys = ("id_mean", "id_max", "p0", "p_apex", "gain")
    summary = {m: {k: float(np.mean([r[k] for r in rows if r["mode"] == m])) for k in keys} for m in MODES}
    for m in MODES:
        summary[m]["gain_by_emotion"] = {emo: float(np.mean([r["gain"] for r in rows if r["mode"] == m
                                                             and r["emotion"] == emo])) for emo in EMOTIONS}
    print(f"checkpoint {args.checkpoint.name} ({eng.setting}, {steps} steps); inputs: "
          + ", ".join(f"{n} {f.size}px" for n, f in faces.items()) + f"; model {t_model:.0f} s, "
          f"total {time.perf_counter() - t0:.0f} s")
    print(f"{'mode':<14}{'id_mean':>9}{'id_max':>8}{'p0':>7}{'p_apex':>8}{'gain':>7}   gain per emotion "
          + " ".join(e[:4] for e in EMOTIONS))
    for m, s in summary.items():
        print(f"{m:<14}{s['id_mean']:>9.3f}{s['id_max']:>8.3f}{s['p0']:>7.3f}{s['p_apex']:>8.3f}{s['gain']:>7.3f}   "
              + " ".join(f"{s['gain_by_emotion'][e]:+.2f}"[:5].rjust(4) for e in EMOTIONS))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"checkpoint": str(args.checkpoint), "setting": eng.setting, "steps": steps,
                                    "seed": args.seed, "summary": summary, "rows": rows}, indent=1))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
