"""Which `fv render --mode` gives the better video of a real photo (issue 13)? Prints a table and writes JSON.

    python benchmarks/photo_modes.py [--checkpoint PATH] [--steps 10] [--max-size 512] [--strips DIR]
                                     [--modes transfer,...] [--video-frames 0,150,300] [--every 2]
                                     [--out benchmarks/photo_modes.json]

Inputs: the real portraits in /work/shared/data/faces (obama, biden, obama-1080p; $FV_FACES) and frames of
the Pexels video ($FV_VIDEO; --video-frames, default 0), all six emotions, one seed. For every mode of
fv.photo.modes' registry that applies to the checkpoint (pixels: the model's frames upscaled; transfer-self: the
photo's pixels moved by the model's frames of the photo; transfer: moved by the model's frames of a synthetic
stand-in face; flow and flow-standin, for LFDM: moved by the flows it generates for the photo or the stand-in;
--modes picks some)
it scores the face video (at the face's own size, at most --max-size):
  id_mean / id_max   dlib identity distance (Euclidean, 128-D; same person < 0.6) between the input crop and
                     every output frame, mean and max over the 32 frames (frames scored at 224 px)
  p0 / p_apex        the FER classifier's (fv.metrics.emotion, "wtf") probability of the target emotion at
                     frame 0 and its mean over the apex frames 10-21; gain = p_apex - p0
(--every 2: every 2nd output frame is scored.) Means over inputs x emotions, and per emotion. --strips writes
one PNG per input and mode (rows = emotions, frames 0 6 11 16 21 26 31 at 128 px).
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
from fv.metrics.emotion import build_emotion_classifier
from fv.metrics.identity import build_face_embedder
from fv.photo.face import load_face
from fv.photo.modes import MODES
from fv.photo.standin import standin_version

FACES = Path(os.environ.get("FV_FACES", "/work/shared/data/faces"))
VIDEO = Path(os.environ.get("FV_VIDEO", "/work/shared/data/WolfgangLanger_Pexels.mp4"))
APEX = slice(10, 22)
SCORE_SIZE = 224
STRIP_FRAMES = [0, 6, 11, 16, 21, 26, 31]


def inputs(tmp: Path, video_frames: list[int]) -> dict[str, Path]:
    paths = {p.stem: p for p in sorted(FACES.glob("*.jpg"))}
    if VIDEO.is_file() and video_frames:
        for i, frame in zip(video_frames, read_video(VIDEO, indices=video_frames)):
            paths[f"pexels-frame{i}"] = tmp / f"pexels{i}.png"
            Image.fromarray(frame).save(paths[f"pexels-frame{i}"])
    return paths


def score(video: np.ndarray, crop: np.ndarray, emotion: int, embed, fer, every: int = 1) -> dict:
    keep = np.zeros(len(video), bool)
    keep[::every] = True
    keep[APEX] |= np.arange(len(video))[APEX] % every == 0
    video = np.concatenate([crop[None], video[keep]])
    apex = np.nonzero(keep)[0]
    apex = (apex >= APEX.start) & (apex < APEX.stop)
    if video.shape[1] > SCORE_SIZE:   # both metrics see at most 224 px (dlib's chips are 150, FER's 48)
        import cv2
        video = np.stack([cv2.resize(f, (SCORE_SIZE,) * 2, interpolation=cv2.INTER_AREA) for f in video])
    e = embed(video)
    video = video[1:]
    dist = np.linalg.norm(e[1:] - e[0], axis=1)
    p = fer(video)[1][:, emotion]
    return {"id_mean": float(dist.mean()), "id_max": float(dist.max()), "p0": float(p[0]),
            "p_apex": float(p[apex].mean()), "gain": float(p[apex].mean() - p[0])}


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
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated modes to score")
    ap.add_argument("--video-frames", default="0", help="frames of the Pexels video to animate (comma-separated)")
    ap.add_argument("--every", type=int, default=2, help="score every n-th output frame")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/photo_modes.json"))
    args = ap.parse_args()
    torch.manual_seed(0)
    eng = Engine(args.checkpoint, steps=int(args.steps))
    steps = eng.options.steps if eng.options is not None else 1
    embed, fer = build_face_embedder("dlib"), build_emotion_classifier("wtf", device="cpu")
    wanted = {m.strip() for m in args.modes.split(",")}
    modes = [m for m in MODES.values() if m.name in wanted and m.applies_to(eng)]
    rows, t0 = [], time.perf_counter()
    frames = [int(x) for x in args.video_frames.split(",") if x.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        faces = {name: load_face(p, eng.image_size, hi=args.max_size) for name, p in inputs(Path(tmp), frames).items()}
    # one batch per kind of model output (frames, flows): the photos' crops, then the stand-in, each rendered once for
    # all the modes that ask for it (transfer-self and pixels share the photos' frames)
    version = standin_version(eng.config)   # the stand-in is drawn as the checkpoint's training faces were
    asks = {}                                # (output, source) -> the crop the model renders
    for m in modes:
        for name, face in faces.items():
            asks.setdefault((m.output, "_standin" if m.renders_standin else name), m.model_input(face, version))
    gen = {}
    for output in dict.fromkeys(o for o, _ in asks):
        srcs = sorted((n for o, n in asks if o is output), key=lambda n: n == "_standin")
        reqs = [(n, e) for n in srcs for e in range(len(EMOTIONS))]
        outs = output.generate(eng, [asks[output, n] for n, _ in reqs], [e for _, e in reqs], [args.seed] * len(reqs))
        gen.update({(output, n, e): v for (n, e), v in zip(reqs, outs)})
    t_model = time.perf_counter() - t0
    for name, face in faces.items():
        per_mode = {m.name: [] for m in modes}
        for e, emo in enumerate(EMOTIONS):
            for mode in modes:
                out = gen[mode.output, "_standin" if mode.renders_standin else name, e]
                video = mode.face_video(face, out, version)
                per_mode[mode.name].append(video)
                rows.append({"input": name, "size": face.size, "emotion": emo, "mode": mode.name,
                             **score(video, face.hires, e, embed, fer, args.every)})
        if args.strips:
            args.strips.mkdir(parents=True, exist_ok=True)
            for mode, videos in per_mode.items():
                Image.fromarray(strip(videos)).save(args.strips / f"{name}_{mode}.png")
    keys = ("id_mean", "id_max", "p0", "p_apex", "gain")

    def mean(sel, k):
        return float(np.mean([r[k] for r in rows if sel(r)]))
    names = [m.name for m in modes]
    summary = {m: {k: mean(lambda r: r["mode"] == m, k) for k in keys} for m in names}
    for m in names:
        summary[m]["by_emotion"] = {emo: {k: mean(lambda r: r["mode"] == m and r["emotion"] == emo, k) for k in keys}
                                    for emo in EMOTIONS}
        summary[m]["id_max_all"] = float(max(r["id_max"] for r in rows if r["mode"] == m))
    print(f"checkpoint {args.checkpoint.name} ({eng.setting}, {steps} steps); inputs: "
          + ", ".join(f"{n} {f.size}px" for n, f in faces.items()) + f"; model {t_model:.0f} s, "
          f"total {time.perf_counter() - t0:.0f} s")
    print("\n| mode | emotion | id mean | id max | P(target) frame 0 | P(target) apex | gain |\n" + "|---" * 7 + "|")
    for m, sm in summary.items():
        for emo, t in [("all", sm)] + list(sm["by_emotion"].items()):
            print(f"| {m} | {emo} | {t['id_mean']:.3f} | {t['id_max']:.3f} | {t['p0']:.3f} | {t['p_apex']:.3f} "
                  f"| {t['gain']:+.3f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"checkpoint": str(args.checkpoint), "setting": eng.setting, "steps": steps,
                                    "seed": args.seed, "summary": summary, "rows": rows}, indent=1))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
