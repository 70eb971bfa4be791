"""Where a real photo's expression is lost (issue 21): each stage of transfer mode fed the ground truth, beside
what the shipped checkpoints give through the same motion. Prints a table and writes JSON.

    python benchmarks/photo_ceiling.py [--motions ict@1.0,field@0.56,...] [--stages ceiling,readout,model,real]
                                       [--checkpoints baseline,onlyDM,LFDM] [--steps 25]
                                       [--video-frames 0,150,300] [--strips DIR] [--out benchmarks/photo_ceiling.json]

Stages (rows), for every emotion, on the portraits in ../shared/data/faces and frames of the Pexels video:
  ceiling   the synthetic generator's EMFACS prototype (fv.data.synth.EMOTION_AUS_V2) as an AU trajectory
            (fv.data.synth.au_trajectory, one fixed draw per emotion: MUG's timing, apex 0.8-1.0) moves the photo:
            what a perfect model would give through that motion
  readout   the synthetic stand-in face rendered with that trajectory (the generator's own pixels), read back by
            the AU readout (fv.data.au_readout), then the same motion: the readout's loss
  model     each shipped checkpoint renders the stand-in (its default sampler, --steps), read back, same motion:
            the model's loss; LFDM also in its own flow mode
  real      no motion: the classifier itself on real expressive frames, every 6th frame of the Pexels video's
            segments (labelled by eye: sadness 0-54, fear 156-222 with a hand at the mouth, happiness 240-471):
            the rate at which it finds the segment's emotion, and its top class over all frames
Motions: ict@g, the ICT Face Model's scanned AU motion fitted to the photo (fv.photo.ict_motion) at gain g;
field@g, the synthetic generator's motion field of the stand-in carried through the landmark spline
(fv.data.standin_motion, the transfer of version 0.x) at gain g (0.56 = its default 1 / POSED_GAIN).
Scores: the FER classifier's ("wtf") target probability at frame 0 and over the apex frames 10-21, the apex top
class (the class with the highest mean apex probability) = the target, and dlib's identity distance to the
input (mean over frames); every 2nd frame is scored.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo_modes import SCORE_SIZE, STRIP_FRAMES, inputs  # noqa: E402

from fv.data.synth import EMOTION_AUS_V2, au_trajectory, render_clip  # noqa: E402
from fv.engine.labels import EMOTIONS  # noqa: E402
from fv.photo.au_readout import load as load_readout, read  # noqa: E402
from fv.photo.face import face_landmarks, load_face  # noqa: E402
from fv.photo.ict_motion import FaceRig, MotionOptions  # noqa: E402
from fv.photo.standin import standin, standin_identity, standin_landmarks, standin_matrix  # noqa: E402
from fv.photo.standin_motion import StandinOptions, au_track, retarget, standin_transfer  # noqa: E402

APEX = slice(10, 22)
CHECKPOINTS = Path(__file__).resolve().parents[1] / "fv" / "assets" / "checkpoints"


def prototype(e: int) -> np.ndarray:
    """float32 [32, K]: one fixed draw of the emotion's prototype trajectory."""
    return au_trajectory(EMOTIONS[e], np.random.default_rng([21, e]), EMOTION_AUS_V2)


def move(face, aus: np.ndarray, motion: str) -> np.ndarray:
    """uint8 [32, S, S, 3]: the photo's crop moved by AU intensities [32, K] (frame 0 neutral)."""
    kind, gain = motion.split("@")
    if kind == "ict":
        return FaceRig(face.hires, face_landmarks(face), opts=MotionOptions(gain=float(gain))).video(aus)
    S = face.size
    rt = retarget(S, standin_matrix(S), face_landmarks(face), standin_landmarks(S))
    return standin_transfer(face.hires, aus * float(gain), standin_identity(), 2, rt)


def score(video: np.ndarray, crop: np.ndarray, e: int, embed, fer, every: int = 2) -> dict:
    import cv2
    idx = np.arange(0, len(video), every)
    frames = np.concatenate([crop[None], video[idx]])
    frames = np.stack([cv2.resize(f, (SCORE_SIZE,) * 2, interpolation=cv2.INTER_AREA) for f in frames])
    emb = embed(frames)
    probs = fer(frames[1:])[1]                                   # [n, 7]
    apex = (idx >= APEX.start) & (idx < APEX.stop)
    mean_apex = probs[apex].mean(0)
    return {"p0": float(probs[0, e]), "p_apex": float(mean_apex[e]), "top": float(mean_apex.argmax() == e),
            "apex_class": int(mean_apex.argmax()), "id": float(np.linalg.norm(emb[1:] - emb[0], axis=1).mean())}


def strip(videos: list[np.ndarray]) -> np.ndarray:
    import cv2
    return np.concatenate([np.concatenate([cv2.resize(v[t], (128, 128), interpolation=cv2.INTER_AREA)
                                           for t in STRIP_FRAMES], 1) for v in videos], 0)


SEGMENTS = {"sadness": (0, 54), "fear": (156, 222), "happiness": (240, 471)}


def real_rates(fer, step: int = 6) -> dict:
    """The classifier on the Pexels video's real expressive segments (SEGMENTS): per segment the share of frames
    whose top class is its emotion and the mean probability of it; over all frames the share of each top class."""
    from photo_modes import VIDEO

    from fv.data.video_io import count_frames, read_video
    from fv.photo.aligner import FaceAligner
    idx = np.arange(0, count_frames(VIDEO), step)
    probs = fer(FaceAligner().align_clip(read_video(VIDEO, idx), SCORE_SIZE))[1]
    out = {}
    for emo, (a, b) in SEGMENTS.items():
        sel, e = (idx >= a) & (idx <= b), EMOTIONS.index(emo)
        out[emo] = {"frames": int(sel.sum()), "top": float((probs[sel].argmax(1) == e).mean()),
                    "p": float(probs[sel, e].mean())}
    classes = list(EMOTIONS) + ["neutral"]
    out["top_class_share"] = {c: float((probs.argmax(1) == i).mean()) for i, c in enumerate(classes)}
    out["max_p"] = {c: float(probs[:, i].max()) for i, c in enumerate(classes)}
    return out


def model_aus(name: str, steps: int, seed: int) -> tuple[dict[int, np.ndarray], object]:
    """{emotion: AU track [32, K]} read from the checkpoint's stand-in videos, and the engine."""
    from fv.engine.engine import Engine
    from fv.engine.requests import RenderRequest
    eng = Engine(CHECKPOINTS / f"{name}.safetensors", steps=steps, device="cpu")
    crop = standin(eng.image_size)[0]
    gen = eng.render_requests([RenderRequest(crop, e, seed) for e in range(len(EMOTIONS))])
    return {e: au_track(read(load_readout(), g), StandinOptions(gain=1.0)) for e, g in enumerate(gen)}, eng


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--motions", default="ict@1.0,field@0.56,field@1.0")
    ap.add_argument("--stages", default="ceiling,readout,model")
    ap.add_argument("--checkpoints", default="baseline,onlyDM,LFDM")
    ap.add_argument("--model-motion", default="ict@1.0", help="the motion the readout and model stages use")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-size", type=int, default=512)
    ap.add_argument("--video-frames", default="0,150,300")
    ap.add_argument("--strips", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/photo_ceiling.json"))
    args = ap.parse_args()
    from fv.metrics.emotion import build_emotion_classifier
    from fv.metrics.identity import build_face_embedder
    embed, fer = build_face_embedder("dlib"), build_emotion_classifier("wtf", device="cpu")
    stages = args.stages.split(",")
    t0 = time.perf_counter()
    real = real_rates(fer) if "real" in stages else None
    if real:
        print("the classifier on real expressive frames (Pexels segments): top class = the segment's emotion\n")
        print("| segment | frames | top-class rate | mean P |\n|---|---|---|---|")
        for emo in SEGMENTS:
            print(f"| {emo} | {real[emo]['frames']} | {real[emo]['top']:.0%} | {real[emo]['p']:.2f} |")
        print("all frames, top-class share: " + ", ".join(f"{c} {v:.0%}" for c, v in real["top_class_share"].items())
              + "; max P: " + ", ".join(f"{c} {v:.2f}" for c, v in real["max_p"].items()) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        faces = {n: load_face(p, 64, hi=args.max_size)
                 for n, p in inputs(Path(tmp), [int(x) for x in args.video_frames.split(",") if x]).items()}
    protos = {e: prototype(e) for e in range(len(EMOTIONS))}
    sources: dict[str, tuple[dict[int, np.ndarray], str]] = {}   # row -> ({emotion: AUs}, motion)
    if "ceiling" in stages:
        for m in args.motions.split(","):
            sources[f"ceiling {m}"] = (protos, m)
    if "readout" in stages:
        idt, readout = standin_identity(), load_readout()
        sources[f"readout {args.model_motion}"] = (
            {e: au_track(read(readout, render_clip(idt, a, 64)), StandinOptions(gain=1.0)) for e, a in protos.items()},
            args.model_motion)
    engines = {}
    if "model" in stages:
        for name in args.checkpoints.split(","):
            aus, engines[name] = model_aus(name, args.steps, args.seed)
            sources[f"{name} transfer {args.model_motion}"] = (aus, args.model_motion)
    rows = []
    for label, (aus, motion) in sources.items():
        for name, face in faces.items():
            videos = []
            for e in range(len(EMOTIONS)):
                video = move(face, aus[e], motion)
                videos.append(video)
                rows.append({"row": label, "input": name, "emotion": EMOTIONS[e],
                             **score(video, face.hires, e, embed, fer)})
            if args.strips:
                args.strips.mkdir(parents=True, exist_ok=True)
                Image.fromarray(strip(videos)).save(args.strips / f"{name}_{label.replace(' ', '_')}.png")
        print(f"[{time.perf_counter() - t0:.0f} s] {label}", flush=True)
    if "LFDM" in engines:                                        # LFDM's own default: its flows for the photo
        from fv.photo.modes import render
        label = "LFDM flow"
        for name, face in faces.items():
            videos = []
            for e in range(len(EMOTIONS)):
                videos.append(render(engines["LFDM"], face, e, args.seed, "flow")[0])
                rows.append({"row": label, "input": name, "emotion": EMOTIONS[e],
                             **score(videos[-1], face.hires, e, embed, fer)})
            if args.strips:
                Image.fromarray(strip(videos)).save(args.strips / f"{name}_LFDM_flow.png")
    labels = list(dict.fromkeys(r["row"] for r in rows))
    keys = ("p0", "p_apex", "top", "id")

    def mean(sel, k):
        return float(np.mean([r[k] for r in rows if sel(r)]))
    summary = {lb: {emo: {k: mean(lambda r: r["row"] == lb and r["emotion"] == emo, k) for k in keys}
                    for emo in EMOTIONS} for lb in labels}
    for lb in labels:
        summary[lb]["all"] = {k: mean(lambda r: r["row"] == lb, k) for k in keys}
    print(f"inputs: {', '.join(f'{n} {f.size}px' for n, f in faces.items())}; {time.perf_counter() - t0:.0f} s")
    print("\napex top-class rate (P(target) frame 0 -> apex)\n")
    print("| row | " + " | ".join(EMOTIONS) + " | emotions >= 50% | id mean |\n" + "|---" * 9 + "|")
    for lb in labels:
        s = summary[lb]
        cells = [f"{s[emo]['top']:.0%} ({s[emo]['p0']:.2f}->{s[emo]['p_apex']:.2f})" for emo in EMOTIONS]
        print(f"| {lb} | " + " | ".join(cells) + f" | {sum(s[emo]['top'] >= 0.5 for emo in EMOTIONS)} "
              f"| {s['all']['id']:.3f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"steps": args.steps, "seed": args.seed, "real": real, "inputs": {n: f.size for n, f in faces.items()},
                                    "summary": summary, "rows": rows}, indent=1))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
