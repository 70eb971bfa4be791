"""The render modes of `fv render --mode` (issue 13): how a photo's face video is made, one strategy object per
mode in one registry, MODES (STYLE practice 18). The CLI's choices and help, `fv demo` and
benchmarks/photo_modes.py read the registry; no other module tests a mode's name.

A mode says what the checkpoint renders for it (`output`: its frames, or the flows it samples, of `model_input`:
the photo's crop or the synthetic stand-in, fv.photo.standin), whether it applies to an engine (the flow modes
need one that generates flows), and how the checkpoint's output becomes the face video at the face's own size
(`face_video`). The modes differ in whose pixels the video shows:

  transfer       the photo's own pixels, moved by the synthetic generator's own motion. A neutral synthetic
                 stand-in face (drawn by the generator version the checkpoint learned, so the model works in its
                 own domain) is rendered with the target emotion; its frames are read back as action-unit
                 intensities (fv.photo.au_readout), and the generator's motion field for them, at the amounts
                 measured on a real face, is carried onto the photo's crop through a thin-plate spline between
                 the two faces' landmarks (fv.photo.standin_motion). Where the lips part, the photo's own
                 pixels are shadowed; no generated pixel reaches the photo. A checkpoint whose stand-in has no
                 motion field (generator version 1) falls back to the dense flow of transfer-self's kind.
  scan           (the default for checkpoints that generate frames) the same action units, applied by real faces'
                 motion: the ICT Face Model's scanned expressions fitted to the photo's landmarks
                 (fv.photo.ict_motion), an opened mouth's inside rendered in the photo's colours, a smiling photo's
                 own smile let go where the video does not want it.
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
benchmarks/photo_ceiling.py (issue 21; the same inputs, 25 steps, apex top class = target): scan reads three emotions
at 50% or more with onlyDM (happiness 100%, sadness 50%, surprise 50%; identity 0.22), transfer three (67%, 50%,
50%; identity 0.30) with weaker probabilities (happiness 0.76 / 0.62 at the apex, surprise 0.38 / 0.28); the
baseline two either way (identity 0.17 / 0.26). DEFAULT_MODE is scan since. LFDM keeps flow (two emotions; its
stand-in through scan reads one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fv.photo.errors import FaceError

if TYPE_CHECKING:   # numpy, OpenCV and the engine load on first use: `fv --help` stays quick
    import numpy as np

    from fv.photo.face import PhotoFace

VIS_RAMP = (0.25, 0.75)    # flow modes: visibility below 0.25 is fully shadowed, above 0.75 untouched
# ... and only below the nose (fractions of the crop's height; the eye line is at 0.40, the mouth near 0.70): the
# synthetic set marks widened eyes' new sclera as not visible too, and shadowing it gave people black eye rings
MOUTH_ZONE = (0.52, 0.58)
# A covered mouth (fv.photo.face.PhotoFace.mouth_covered, a hand over it) is left as it is: these action units
# (the lips', the jaw's, and the nose wrinkler's, which raises the upper lip) stay at 0, and every mode's video shows the photo's own pixels over the mouth (its
# points' hull grown by KEEP_MOUTH[0] inter-ocular distances, feathered by KEEP_MOUTH[1]).
MOUTH_AUS = ("AU9", "AU12", "AU15", "AU16", "AU20", "AU23", "AU26")
KEEP_MOUTH = (0.2, 0.1)


class RenderModeError(FaceError):
    """An unknown --mode, or one the checkpoint cannot render."""


# ----------------------------------------------------------------------------- what the checkpoint is asked for

class Frames:
    """The checkpoint's frames of the model input, uint8 [T, s, s, 3] a request (any checkpoint)."""

    def applies_to(self, eng) -> bool:
        return True

    def generate(self, eng, crops: list, emotions: list[int], seeds: list[int], progress: bool = False) -> list:
        from fv.engine.requests import RenderRequest
        reqs = [RenderRequest(c, e, s) for c, e, s in zip(crops, emotions, seeds)]
        return list(eng.render_requests(reqs, progress=progress))

    def frames(self, output: np.ndarray) -> np.ndarray:
        return output


@dataclass(frozen=True)
class SampledFlows:
    flow: np.ndarray         # float32 [T, h, h, 2] backward flow t -> 0, in pixels of the h-pixel latent grid
    visibility: np.ndarray   # float32 [T, h, h] in [0, 1]: whether frame 0 shows the point
    frames: np.ndarray       # uint8 [T, s, s, 3] the frames the checkpoint draws from them


class Flows:
    """The flows the checkpoint samples for the model input, and the frames it draws from them (a checkpoint that
    generates flows, LFDM: fv.engine.engine.Engine.flows)."""

    def applies_to(self, eng) -> bool:
        return eng.generates_flows

    def generate(self, eng, crops: list, emotions: list[int], seeds: list[int],
                 progress: bool = False) -> list[SampledFlows]:
        """One request at a time, as `fv render` samples them (batched kernels round the flows differently,
        ~1e-6 px), so a benchmark's batch gives what fv render gives."""
        return [self._one(eng, c, e, s) for c, e, s in zip(crops, emotions, seeds)]

    def _one(self, eng, crop: np.ndarray, emotion: int, seed: int) -> SampledFlows:
        import torch

        from fv.data.layout import to_model_range
        latent, flow, vis = eng.flows(to_model_range(crop[None]), torch.tensor([emotion]), [seed])
        h = flow.shape[-1]
        grid = flow[0].permute(0, 2, 3, 1).float().cpu().numpy() * (h / eng.image_size)   # [T, h, h, 2] grid px
        return SampledFlows(grid, vis[0, :, 0].float().cpu().numpy(), eng.decode_flows(latent, flow, vis)[0])

    def frames(self, output: SampledFlows) -> np.ndarray:
        return output.frames


FRAMES, FLOWS = Frames(), Flows()


# ----------------------------------------------------------------------------- the modes

@dataclass(frozen=True)
class RenderMode:
    """One way to make a photo's face video. Subclasses turn the checkpoint's output into it (face_video)."""
    name: str
    help: str
    output: Frames | Flows          # what the checkpoint is asked for ...
    renders_standin: bool = False   # ... of the synthetic stand-in face (else of the photo's crop)

    def applies_to(self, eng) -> bool:
        """Whether the engine's checkpoint can render this mode."""
        return self.output.applies_to(eng)

    def model_input(self, face: PhotoFace, version: int | None = None) -> np.ndarray:
        """The crop the checkpoint renders for this mode: the photo's, or the stand-in's (drawn by generator
        `version`, fv.photo.standin.standin_version)."""
        from fv.photo.standin import standin
        return standin(face.crop.shape[0], version)[0] if self.renders_standin else face.crop

    def face_video(self, face: PhotoFace, output, version: int | None = None) -> np.ndarray:
        """uint8 [T, S, S, 3] from the checkpoint's output for model_input(face, version)."""
        raise NotImplementedError

    def caution(self, eng, aligned: bool) -> str | None:
        """A warning worth a line before rendering this mode with this engine, or None."""
        return None

    def render(self, eng, face: PhotoFace, emotion: int, seed: int,
               progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 [T, S, S, 3] the face video, uint8 [T, s, s, 3] the frames the checkpoint made for it)."""
        from fv.photo.standin import standin_version
        if not self.applies_to(eng):
            raise RenderModeError(f"--mode {self.name} needs a checkpoint that generates flows (LFDM); "
                                  f"{eng.setting} generates frames (use --mode {DEFAULT_MODE})")
        version = standin_version(eng.config) if self.renders_standin else None
        out = self.output.generate(eng, [self.model_input(face, version)], [emotion], [seed], progress)[0]
        return keep_mouth(face, self.face_video(face, out, version)), self.output.frames(out)


def still_mouth(face: PhotoFace, aus: np.ndarray) -> np.ndarray:
    """AU intensities [T, K] with the mouth's (MOUTH_AUS) at 0 where the face's mouth is covered."""
    if not face.mouth_covered:
        return aus
    from fv.data.synth_face import AUS
    aus = aus.copy()
    aus[:, [AUS.index(a) for a in MOUTH_AUS]] = 0
    return aus


def keep_mouth(face: PhotoFace, video: np.ndarray) -> np.ndarray:
    """uint8 [T, S, S, 3]: the video with the photo's own mouth (KEEP_MOUTH) where the face's mouth is covered."""
    if not face.mouth_covered or face.aligned is None:
        return video
    import numpy as np

    from fv.photo.motion_transfer import feather
    from fv.photo.paste import mouth_mask
    iod = float(np.linalg.norm(face.aligned.eyes[1] - face.aligned.eyes[0]))
    hull = mouth_mask(face.aligned, grow=0.0, drop=0.0)           # the photo's own, exactly; feathered outside it
    m = np.maximum(feather(mouth_mask(face.aligned, grow=KEEP_MOUTH[0], drop=0.0), KEEP_MOUTH[1] * iod), hull)
    m = m[None, ..., None]
    return np.clip(video * (1 - m) + face.hires[None] * m + 0.5, 0, 255).astype(np.uint8)


def _mouth(face: PhotoFace) -> np.ndarray:
    """float32 [S, S]: where a fill may show what the photo has not (the landmarks' mouth, or the template's)."""
    from fv.photo.paste import mouth_mask, template_mouth
    return template_mouth(face.size) if face.aligned is None else mouth_mask(face.aligned)


class TransferMode(RenderMode):
    def face_video(self, face, output, version=None):
        from fv.photo.au_readout import load
        from fv.photo.motion_transfer import transfer_video
        from fv.photo.standin import generator_version, standin_matrix
        v, S = generator_version(version), face.size
        if load().version == v:   # the shipped readout was fitted on this version: the generator's own motion
            from fv.photo.au_readout import read
            from fv.photo.face import face_landmarks
            from fv.photo.standin import standin_identity, standin_landmarks
            from fv.photo.standin_motion import au_track, retarget, standin_transfer
            aus = still_mouth(face, au_track(read(load(), output)))
            rt = retarget(S, standin_matrix(S, v), face_landmarks(face), standin_landmarks(S, v))
            return standin_transfer(face.hires, aus, standin_identity(), v, rt)
        # a stand-in without a motion field (version 1): dense optical flow of its frames, filled in the mouth
        return transfer_video(face.hires, output, standin_matrix(output.shape[1], version), allow=_mouth(face))


class ScanMode(TransferMode):
    """The action units the AU readout finds in the model's stand-in video (as transfer mode), applied to the
    photo by the ICT Face Model's scanned real-face motion (fv.photo.ict_motion), with a rendered mouth inside and
    a smiling photo's own smile let go where the video does not want it. Where the readout does not fit the
    checkpoint's stand-in (generator version 1) or dlib finds no face in an aligned crop, transfer mode's way."""
    gain: float = 1.4   # benchmarks/photo_ceiling.py: the prototypes read best at 1.4 without rubber lips (2.0)

    def face_video(self, face, output, version=None):
        from fv.photo.au_readout import load, read
        from fv.photo.face import face_landmarks
        from fv.photo.ict_motion import FaceRig, MotionOptions
        from fv.photo.standin import generator_version
        from fv.photo.standin_motion import StandinOptions, au_track
        marks = face_landmarks(face)
        if marks is None or load().version != generator_version(version):
            return super().face_video(face, output, version)
        aus = still_mouth(face, au_track(read(load(), output), StandinOptions(gain=1.0)))
        return FaceRig(face.hires, marks, opts=MotionOptions(gain=self.gain)).video(aus)


class TransferSelfMode(RenderMode):
    def face_video(self, face, output, version=None):
        from fv.photo.motion_transfer import transfer_video
        return transfer_video(face.hires, output, None, allow=_mouth(face))


class PixelsMode(RenderMode):
    def face_video(self, face, output, version=None):
        from fv.photo.motion_transfer import resize_video
        return resize_video(output, face.size)

    def caution(self, eng, aligned):
        from fv.photo.standin import trained_on_synthetic
        if aligned or not trained_on_synthetic(eng.config):
            return None
        return (f"{eng.setting} was trained on synthetic faces ({eng.config.data}); --mode {self.name} paints its "
                f"cartoon pixels onto a real photo (--mode {DEFAULT_MODE} moves the photo's own)")


class FlowMode(RenderMode):
    """LFDM's flows applied to the photo's high-resolution crop (fv.photo.motion_transfer's conventions: backward
    flow, F^S(p) = r F^s((p + 0.5) / r - 0.5)), shadowed where the visibility is low (VIS_RAMP), below the nose
    (MOUTH_ZONE)."""

    def face_video(self, face, output, version=None):
        import numpy as np
        S = face.size
        lo, hi = VIS_RAMP
        shadow = np.clip((hi - output.visibility) / (hi - lo), 0, 1).astype(np.float32)
        y = (np.arange(S, dtype=np.float32) + 0.5) / S
        zone = np.clip((y - MOUTH_ZONE[0]) / (MOUTH_ZONE[1] - MOUTH_ZONE[0]), 0, 1)[:, None]   # [S, 1]
        return np.stack(self._moved(face, output.flow, shadow, zone, version))

    def _moved(self, face, flows, shadow, zone, version) -> list[np.ndarray]:
        import cv2
        import numpy as np

        from fv.photo.motion_transfer import SHADOW, resize_flow, warp
        S, frames = face.size, []
        for f, m in zip(flows, shadow):
            scale = 1 - (1 - SHADOW) * cv2.resize(m, (S, S), interpolation=cv2.INTER_LINEAR) * zone
            warped = warp(face.hires, resize_flow(f, S)).astype(np.float32)
            frames.append(np.clip(warped * scale[..., None] + 0.5, 0, 255).astype(np.uint8))
        return frames


class FlowStandinMode(FlowMode):
    """The flows generated for the stand-in, carried onto the photo through the landmark spline of transfer mode
    (fv.photo.standin_motion.move_frame, which keeps a photo's open mouth)."""

    def _moved(self, face, flows, shadow, zone, version):
        import cv2

        from fv.photo.face import face_landmarks
        from fv.photo.motion_transfer import resize_flow
        from fv.photo.standin import standin_landmarks, standin_matrix
        from fv.photo.standin_motion import move_frame, retarget
        S = face.size
        rt = retarget(S, standin_matrix(S, version), face_landmarks(face), standin_landmarks(S, version))
        return [move_frame(face.hires, resize_flow(f, S), cv2.resize(m, (S, S)) * zone, rt)
                for f, m in zip(flows, shadow)]


# ----------------------------------------------------------------------------- the registry

MODES: dict[str, RenderMode] = {m.name: m for m in (
    TransferMode("transfer", "the photo's own pixels, moved by the motion the model gives a synthetic stand-in face "
                 "(read as action units, applied by the synthetic generator's motion field)", FRAMES, True),
    ScanMode("scan", "the default: the photo's own pixels, moved by real faces' scanned action-unit motion (ICT "
             "Face Model) at the action units the model gives a synthetic stand-in face, the opened mouth rendered "
             "inside, a smiling photo's smile let go for other emotions", FRAMES, True),
    TransferSelfMode("transfer-self", "the photo's own pixels, moved by the motion of the model's frames of the "
                     "photo", FRAMES),
    PixelsMode("pixels", "the model's own 64 px frames of the photo, upscaled (synthetic-trained models paint "
               "cartoon teeth and blotches on real faces)", FRAMES),
    FlowMode("flow", "LFDM only, its default: the photo's own pixels moved by the flows LFDM generates for it", FLOWS),
    FlowStandinMode("flow-standin", "LFDM only: the photo's own pixels moved by the flows LFDM generates for a "
                    "synthetic stand-in face, carried onto the person through both faces' landmarks", FLOWS, True),
)}
DEFAULT_MODE = "scan"           # for a checkpoint that generates frames (benchmarks/photo_ceiling.py, issue 21)
DEFAULTS = ("flow", DEFAULT_MODE)   # a checkpoint's default: the first of these that applies to it


def get_mode(mode: str | RenderMode) -> RenderMode:
    """The registered mode of a name (case and spaces aside), or the mode itself."""
    if isinstance(mode, RenderMode):
        return mode
    key = mode.strip().lower()
    if key not in MODES:
        raise RenderModeError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    return MODES[key]


def parse_mode(text: str) -> str:
    """A mode's registered name from what the user typed (RenderModeError for an unknown one)."""
    return get_mode(text).name


def modes_help() -> str:
    return "; ".join(f"{m.name}: {m.help}" for m in MODES.values()) + f". Default: {DEFAULT_MODE} (flow for LFDM)."


def default_mode(eng) -> str:
    """The name of the engine's default mode: flow for a checkpoint that generates flows, else scan."""
    return next(MODES[n] for n in DEFAULTS if MODES[n].applies_to(eng)).name


def render(eng, face: PhotoFace, emotion: int, seed: int, mode: str | RenderMode | None = None,
           progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [32, S, S, 3] the face video, uint8 [32, s, s, 3] what the checkpoint generated for it); mode None:
    the checkpoint's default (default_mode)."""
    return get_mode(mode or default_mode(eng)).render(eng, face, emotion, seed, progress)
