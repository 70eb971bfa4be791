"""A photo's face video at the face's own resolution, and the ways to make it (`fv render --mode`, issue 13).

The face is aligned to the eye template of the generator's input (fv.photo.geometry.face_targets) at the size
where it keeps its own scale (native_crop_size, 64..512 px); the checkpoint still generates at its own size
(64 px). The modes differ in whose pixels the video shows:

  transfer       the photo's own pixels, moved by the synthetic generator's own motion. A neutral synthetic
                 stand-in face (drawn by the generator version the checkpoint learned, so the model works in its
                 own domain) is rendered with the target emotion; its frames are read back as action-unit
                 intensities (fv.photo.au_readout), and the generator's motion field for them, at the amounts
                 measured on a real face, is carried onto the photo's crop through a thin-plate spline between
                 the two faces' landmarks (fv.photo.standin_motion). Where the lips part, the photo's own
                 pixels are shadowed; no generated pixel reaches the photo. A checkpoint whose stand-in has no
                 motion field (generator version 1) falls back to the dense flow of transfer-self's kind.
  transfer-self  the photo's own pixels moved by the dense motion (DIS optical flow, frame t -> 0) of the model's
                 own frames of the photo (fv.photo.motion_transfer); generated pixels, colour-matched and
                 only darkening, where the flow cannot explain an opened mouth.
  pixels         the model's own frames of the photo, upscaled: what the thesis' models paint.
  flow           (LFDM, thesis 2.3; its default) the photo's own pixels moved by the latent flows the checkpoint
                 generates for the photo's crop, upsampled to the high-resolution crop; where its visibility map
                 says frame 0 cannot show a point (an opened mouth), the photo's pixels are shadowed.
  flow-standin   (LFDM) the same with the flows LFDM generates for the synthetic stand-in face (in its own domain),
                 carried onto the photo through the landmark spline of transfer mode.

benchmarks/photo_modes.py measures the modes on the real portraits and three frames of the Pexels video, all six
emotions (benchmarks/photo_modes.json; onlyDM, 10 steps): dlib identity distance to the input, mean / max over
frames: transfer 0.30 / 0.45, transfer-self 0.14 / 0.31, pixels 0.35 / 0.55; FER gain of the target emotion
(apex - frame 0): +0.091, +0.033, +0.114. DEFAULT_MODE is transfer: the person's own pixels with three times
transfer-self's expression (transfer-self barely moves: the model's frames of a real photo are out of its
domain); pixels reads a little more expressive to the classifier but paints the synthetic set's teeth and
blotches on the person.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from fv.photo.errors import FaceError

if TYPE_CHECKING:   # numpy, OpenCV and the engine load on first use: `fv --help` stays quick
    import numpy as np

    from fv.photo.geometry import AlignedFace

MODES = {
    "transfer": "the photo's own pixels, moved by the motion the model gives a synthetic stand-in face "
                "(read as action units, applied by the synthetic generator's motion field)",
    "transfer-self": "the photo's own pixels, moved by the motion of the model's frames of the photo",
    "pixels": "the model's own 64 px frames of the photo, upscaled (synthetic-trained models paint "
              "cartoon teeth and blotches on real faces)",
    "flow": "LFDM only, its default: the photo's own pixels moved by the flows LFDM generates for it",
    "flow-standin": "LFDM only: the photo's own pixels moved by the flows LFDM generates for a synthetic stand-in "
                    "face, carried onto the person through both faces' landmarks",
}
DEFAULT_MODE = "transfer"  # for a checkpoint that generates frames; one that generates flows (LFDM): "flow"
VIS_RAMP = (0.25, 0.75)    # flow mode: visibility below 0.25 is fully shadowed, above 0.75 untouched
SHADOW = 0.35              # ... to this share of the pixel's brightness (as transfer's parted lips)
# ... and only below the nose (fractions of the crop's height; the eye line is at 0.40, the mouth near 0.70): the
# synthetic set marks widened eyes' new sclera as not visible too, and shadowing it gave people black eye rings
MOUTH_ZONE = (0.52, 0.58)
STANDIN = (0, 0)          # fv.data.synth.synthetic_identity(seed, index) of the stand-in face


class RenderModeError(FaceError):
    """An unknown --mode."""


def parse_mode(text: str) -> str:
    key = text.strip().lower()
    if key not in MODES:
        raise RenderModeError(f"unknown mode {text!r}; choose one of: {', '.join(MODES)}")
    return key


def modes_help() -> str:
    return "; ".join(f"{k}: {v}" for k, v in MODES.items()) + f". Default: {DEFAULT_MODE} (flow for LFDM)."


def generates_flows(eng) -> bool:
    """Whether the engine's checkpoint generates flows it can hand out (LFDM: Engine.flows)."""
    return eng.generates_flows


def default_mode(eng) -> str:
    return "flow" if generates_flows(eng) else DEFAULT_MODE


@dataclass(frozen=True)
class PhotoFace:
    crop: np.ndarray                 # uint8 [s, s, 3] the generator's input (s = the checkpoint's size)
    hires: np.ndarray                # uint8 [S, S, 3] the same face at its own resolution, S in [64, 512]
    photo: np.ndarray                # uint8 [H, W, 3]
    aligned: AlignedFace | None      # the S-pixel alignment (None: the photo was an aligned crop)

    @property
    def size(self) -> int:
        return int(self.hires.shape[0])


def load_face(path: str | Path, model_size: int, aligned: bool = False, lo: int = 64, hi: int = 512) -> PhotoFace:
    """Detect and align the photo's largest face (or take an aligned crop as it is, resized to [lo, hi])."""
    from fv.photo.aligner import FaceAligner
    from fv.photo.image import read_image
    photo = read_image(path)
    if aligned:
        size = int(min(hi, max(lo, 2 * round(min(photo.shape[:2]) / 2))))
        hires = _resize(photo, size)
        return PhotoFace(_resize(photo, model_size), hires, photo, None)
    crop, al = FaceAligner().face_crops(path, model_size, lo, hi)
    return PhotoFace(crop, al.image, photo, al)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    import cv2
    interp = cv2.INTER_AREA if min(img.shape[:2]) > size else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp)


# ----------------------------------------------------------------------------- the stand-in

def standin(size: int, version: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [size, size, 3] the neutral synthetic stand-in face drawn by generator `version` (default: fv's
    default), float [2, 3] its pixels -> the eye template's pixels at the same size). Its eye centres are the
    face-unit points u = (-+eye_sep / 2, EYE_Y), placed where the renderer draws them (synth_face.rest_pixels)."""
    import numpy as np

    from fv.data.synth import synthetic_identity
    from fv.data.synth_face import AUS, render_frame
    return (render_frame(synthetic_identity(*STANDIN), np.zeros(len(AUS)), size, version=_version(version)),
            standin_matrix(size, version))


def standin_matrix(size: int, version: int | None = None) -> np.ndarray:
    """float [2, 3]: the stand-in's pixels -> the eye template's pixels at `size` (standin's matrix, without
    drawing the face)."""
    from fv.photo.geometry import face_targets, similarity_from_eyes
    from fv.data.synth import synthetic_identity
    from fv.data.synth_face import rest_pixels
    from fv.data.synth_parts import EYE_Y
    idt = synthetic_identity(*STANDIN)
    eyes = rest_pixels(idt, [[-idt.eye_sep / 2, EYE_Y], [idt.eye_sep / 2, EYE_Y]], size, _version(version))
    return similarity_from_eyes(eyes, face_targets(size))


def standin_version(config) -> int | None:
    """The generator version of the stand-in for a checkpoint's RunConfig: the one its synthetic training faces
    were drawn by (1 for one that predates version 2); None (fv's default) for one trained on real faces."""
    from fv.engine.config import learned_synth_version
    return learned_synth_version(config) or None


def template_mouth(size: int) -> np.ndarray:
    """float32 [size, size]: the mouth region of the face-centred template (for crops without landmarks)."""
    import cv2
    import numpy as np
    mask = np.zeros((size, size), np.float32)
    cv2.ellipse(mask, (round(0.5 * size), round(0.74 * size)), (round(0.19 * size), round(0.14 * size)),
                0, 0, 360, 1.0, -1)
    return mask


# ----------------------------------------------------------------------------- rendering

def model_input(face: PhotoFace, mode: str, version: int | None = None) -> np.ndarray:
    """The crop the checkpoint renders for this mode: the photo's, or the stand-in's (standin_version)."""
    return standin(face.crop.shape[0], version)[0] if parse_mode(mode) == "transfer" else face.crop


def face_video(face: PhotoFace, mode: str, generated: np.ndarray, version: int | None = None) -> np.ndarray:
    """uint8 [T, S, S, 3] from the checkpoint's video uint8 [T, s, s, 3] of model_input(face, mode, version)."""
    from fv.photo.motion_transfer import resize_video, transfer_video
    mode = parse_mode(mode)
    if mode == "pixels":
        return resize_video(generated, face.size)
    if mode == "transfer" and _readout_fits(version):   # the generator's own motion (fv.photo.standin_motion)
        from fv.data.synth import synthetic_identity
        from fv.photo.au_readout import load, read
        from fv.photo.standin_motion import au_track, retarget, standin_transfer
        v = _version(version)
        aus = au_track(read(load(), generated))
        rt = retarget(face.size, standin_matrix(face.size, v), face_landmarks(face), standin_landmarks(face.size, v))
        return standin_transfer(face.hires, aus, synthetic_identity(*STANDIN), v, rt)
    # transfer-self, or a stand-in without a motion field (version 1): dense optical flow, filled in the mouth
    allow = template_mouth(face.size) if face.aligned is None else _mouth(face.aligned)
    matrix = standin_matrix(generated.shape[1], version) if mode == "transfer" else None
    return transfer_video(face.hires, generated, matrix, allow=allow)


def _version(version: int | None) -> int:
    from fv.data.synth_face import DEFAULT_VERSION
    return DEFAULT_VERSION if version is None else int(version)


def _readout_fits(version: int | None) -> bool:
    """Whether the shipped AU readout was fitted on faces of the stand-in's generator version."""
    from fv.photo.au_readout import load
    return load().version == _version(version)


def face_landmarks(face: PhotoFace) -> np.ndarray | None:
    """float [68, 2] the face's landmarks in its S-pixel crop: the alignment's, or dlib's on an aligned crop
    (None where it finds no face)."""
    if face.aligned is not None:
        return face.aligned.landmarks
    from fv.photo.aligner import FaceAligner
    aligner = FaceAligner()
    boxes = aligner.detect(face.hires)
    return aligner.landmarks(face.hires, boxes[0]) if boxes else None


@lru_cache(maxsize=8)
def standin_landmarks(size: int, version: int | None = None) -> np.ndarray | None:
    """float [68, 2]: dlib's landmarks of the neutral stand-in in the crop layout at `size` (where its matrix
    puts it; found at 256 px or more), None where dlib finds no face."""
    import cv2

    from fv.photo.aligner import FaceAligner
    from fv.photo.geometry import warp_affine
    img, m = standin(size, version)
    up = max(1, -(-256 // size))
    layout = cv2.resize(warp_affine(img, m, size, size), (size * up,) * 2, interpolation=cv2.INTER_CUBIC)
    aligner = FaceAligner()
    boxes = aligner.detect(layout)
    return None if not boxes else (aligner.landmarks(layout, boxes[0]) + 0.5) / up - 0.5


def _mouth(aligned: AlignedFace) -> np.ndarray:
    from fv.photo.paste import mouth_mask
    return mouth_mask(aligned)


def render(eng, face: PhotoFace, emotion: int, seed: int, mode: str | None = None,
           progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [32, S, S, 3] the face video, uint8 [32, s, s, 3] what the checkpoint generated for it); mode None:
    the checkpoint's default (default_mode)."""
    from fv.engine.requests import RenderRequest
    mode = parse_mode(mode or default_mode(eng))
    if mode in ("flow", "flow-standin"):
        return flow_video(eng, face, emotion, seed, standin_face=mode == "flow-standin")
    version = standin_version(eng.config)
    generated = eng.render_requests([RenderRequest(model_input(face, mode, version), emotion, seed)],
                                    progress=progress)[0]
    return face_video(face, mode, generated, version), generated


def flow_video(eng, face: PhotoFace, emotion: int, seed: int, standin_face: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """LFDM's flows applied to the photo's high-resolution crop (fv.photo.motion_transfer's conventions: backward
    flow, F^S(p) = r F^s((p + 0.5) / r - 0.5)), shadowed where the visibility is low. The flows are generated for
    the photo's crop, or with standin_face for the synthetic stand-in and carried onto the photo through the
    landmark spline of transfer mode (fv.photo.standin_motion.move_frame, which keeps a photo's open mouth)."""
    import cv2
    import numpy as np
    import torch

    from fv.data.layout import to_model_range
    from fv.photo.motion_transfer import resize_flow, warp
    if not generates_flows(eng):
        raise RenderModeError(f"--mode flow needs a checkpoint that generates flows (LFDM); {eng.setting} "
                              f"generates frames (use --mode {DEFAULT_MODE})")
    version = _version(standin_version(eng.config)) if standin_face else None
    crop = standin(face.crop.shape[0], version)[0] if standin_face else face.crop
    latent, flow, vis = eng.flows(to_model_range(crop[None]), torch.tensor([emotion]), [seed])
    generated = eng.decode_flows(latent, flow, vis)[0]
    S, h = face.size, flow.shape[-1]
    flows = flow[0].permute(0, 2, 3, 1).float().cpu().numpy() * (h / eng.image_size)   # [T, h, h, 2] grid px
    lo, hi = VIS_RAMP
    shadow = np.clip((hi - vis[0, :, 0].float().cpu().numpy()) / (hi - lo), 0, 1).astype(np.float32)
    y = (np.arange(S, dtype=np.float32) + 0.5) / S
    zone = np.clip((y - MOUTH_ZONE[0]) / (MOUTH_ZONE[1] - MOUTH_ZONE[0]), 0, 1)[:, None]   # [S, 1]
    if standin_face:
        from fv.photo.standin_motion import move_frame, retarget
        rt = retarget(S, standin_matrix(S, version), face_landmarks(face), standin_landmarks(S, version))
        return np.stack([move_frame(face.hires, resize_flow(f, S), cv2.resize(m, (S, S)) * zone, rt)
                         for f, m in zip(flows, shadow)]), generated
    frames = []
    for f, m in zip(flows, shadow):
        scale = 1 - (1 - SHADOW) * cv2.resize(m, (S, S), interpolation=cv2.INTER_LINEAR) * zone
        warped = warp(face.hires, resize_flow(f, S)).astype(np.float32)
        frames.append(np.clip(warped * scale[..., None] + 0.5, 0, 255).astype(np.uint8))
    return np.stack(frames), generated


def pasted(face: PhotoFace, video: np.ndarray) -> np.ndarray:
    """uint8 [T, H, W, 3]: each frame of the S-pixel face video pasted back into the photo at its own size."""
    import numpy as np

    from fv.photo.paste import paste_back
    return np.stack([paste_back(face.photo, face.aligned, frame) for frame in video])


# ----------------------------------------------------------------------------- what a checkpoint learned from

def trained_on_synthetic(config) -> bool:
    """Whether a RunConfig's training data (RunConfig.data) is a synthetic set: its meta.json's name or
    source says "synthetic", or, where the folder is not on this machine, its name starts with "synth"."""
    from fv.engine.config import learned_synth_version
    return learned_synth_version(config) > 0
