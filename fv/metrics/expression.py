"""Frame-by-frame expression features: the frozen network behind both_retrievedMcs' motion codes.

The thesis (2.5.1, 3.4) embeds every frame with FECNet, a 16-D expression-similarity embedding trained
with a triplet loss on the FEC data set. FECNet's weights cannot be had offline, so fv uses the frozen
expression network that ships in an installed package: the FER2013 CNN of what_the_face_classification
(the same network as fv.metrics.emotion's "wtf" classifier). Its penultimate layer, before the ReLU,
is the feature (304-D for active_model.pth):

    grey [N, 1, 48, 48] -> 3 x (conv, tanh, pool) -> fc1 -> ReLU -> fc2 = features [N, 304]
                        -> ReLU -> fc3 -> logits [N, 7]

Pre-activation rather than post-ReLU: about 78 % of the post-ReLU units are exactly 0 on faces, and on
fv's synthetic set the pre-activation codes predict the ground-truth action units better (held-out
identities, linear fit: R^2 0.76 vs 0.65 after the bank's projection). fv.trainer.expression_bank
reduces the features to the 16-D motion codes.

Crop (the network's view of the face). FER2013 faces are registered tightly: fv cuts a square window
whose side is the inter-ocular distance / 0.40 with the eye line 0.40 of the side from its top, centred
on the eyes, and hands it to fer_preprocess (resize to 48, ITU-R 601 grey, / 255), the classifier's
own input pipeline. The eye positions come from the frames' layout:
  "eyes": thesis 3.4.1's eye-centred crop (mid-eye at the centre, inter-ocular 55 px at 224,
          clips224.npy): window 138 px (rows 56-193, columns 43-180); FECNet's ImageNet
          normalisation is replaced by the input the FER CNN was trained with;
  "face": fv's face-centred crop (eyes on y = 0.40 s, inter-ocular 0.28 s, thesis 4.2.1; clips64.npy):
          window 45 px at 64, i.e. 64x64 clips are upsampled 45 -> 48 (used where clips224 is absent);
  "full": the whole frame is already the face window;
  "auto": "eyes" for 224x224 frames, "face" for any other square size.
The 0.40 was set on the real Pexels video (tests/trainer/test_expression_bank.py checks it): on 16
eye-aligned frames of its sad first third and 16 of its happy last third the CNN says sad 14/16 and
happy 16/16. In a first look at 20 frames of frames 0-150, looser windows (inter-ocular 0.30-0.34 of
the side, more background) called 5-8 of the 20 sad frames happy, 0.375 called 16/20 sad, 0.42 20/20.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from fv.metrics.emotion import FERConvNet, fer_preprocess, load_wtf_net
from fv.metrics.identity import FrameInputError, check_frames
from fv.photo.geometry import eye_centred_targets, face_targets

LAYOUTS = ("auto", "eyes", "face", "full")
WINDOW_INTEROCULAR = 0.40  # inter-ocular distance / window side
WINDOW_EYE_Y = 0.40        # eye line / window side, from the window's top
EYES_SIZE, EYES_INTEROCULAR = 224, 55.0   # thesis 3.4.1


class ExpressionInputError(FrameInputError):
    """Frames or a layout the expression embedder cannot use."""


def eye_layout(size: int, layout: str) -> np.ndarray:
    """Eye centres [2, 2] (image-left, image-right; x, y pixels) of a square crop in `layout`."""
    if layout == "auto":
        layout = "eyes" if size == EYES_SIZE else "face"
    if layout == "eyes":
        return eye_centred_targets(size, EYES_INTEROCULAR * size / EYES_SIZE)
    if layout == "face":
        return face_targets(size)
    raise ExpressionInputError(f"unknown frame layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")


def fer_window(size: int, layout: str = "auto") -> tuple[int, int, int]:
    """(top, left, side) of the FER window in a square crop of `size` px.

    side = d / 0.40 with d the inter-ocular distance; eye line at 0.40 side from the top; the
    window's centre column is the mid-eye column. Rounded to whole pixels (at most 0.5 px off)."""
    if layout == "full":
        return 0, 0, int(size)
    eyes = eye_layout(int(size), layout)
    d = float(np.linalg.norm(eyes[1] - eyes[0]))
    mid = eyes.mean(0)
    side = d / WINDOW_INTEROCULAR
    return int(round(mid[1] - WINDOW_EYE_Y * side)), int(round(mid[0] - side / 2)), int(round(side))


def crop_windows(frames: np.ndarray, layout: str = "auto") -> np.ndarray:
    """uint8 [N, S, S, 3] -> uint8 [N, side, side, 3] FER windows (edge-replicated where outside)."""
    n, h, w = frames.shape[:3]
    if h != w:
        raise ExpressionInputError(f"expression frames must be square aligned face crops, got {h}x{w}")
    top, left, side = fer_window(h, layout)
    pad = max(0, -top, -left, top + side - h, left + side - w)
    if pad:
        frames = np.pad(frames, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
        top, left = top + pad, left + pad
    return np.ascontiguousarray(frames[:, top:top + side, left:left + side])


class ExpressionFeatures:
    """The frozen FER2013 CNN up to its penultimate layer: frames uint8 [N, S, S, 3] -> float32 [N, F]."""

    def __init__(self, checkpoint: str = "active", device=None, batch_size: int = 512):
        self.device = torch.device(device or "cpu")
        self.net: FERConvNet = load_wtf_net(checkpoint).to(self.device).requires_grad_(False)
        self.penultimate = getattr(self.net, f"fc{self.net.n_fc - 1}")   # Linear whose output we keep
        self.head = getattr(self.net, f"fc{self.net.n_fc}")               # logits = head(relu(features))
        self.checkpoint, self.batch_size = checkpoint, int(batch_size)

    @property
    def dim(self) -> int:
        return int(self.penultimate.out_features)

    @torch.no_grad()
    def features_of_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """grey [B, 1, 48, 48] in [0, 1] -> penultimate pre-activation [B, F] (a forward hook on that Linear)."""
        out: list[torch.Tensor] = []
        handle = self.penultimate.register_forward_hook(lambda mod, inp, res: out.append(res))
        try:
            self.net(x.to(self.device))
        finally:
            handle.remove()
        return out[0].float()

    def __call__(self, frames, layout: str = "auto", batch_size: int | None = None) -> np.ndarray:
        frames = check_frames(frames)
        if layout not in LAYOUTS:
            raise ExpressionInputError(f"unknown frame layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
        bs = int(batch_size or self.batch_size)
        feats = np.empty((len(frames), self.dim), np.float32)
        for s in range(0, len(frames), bs):
            win = torch.from_numpy(crop_windows(frames[s:s + bs], layout)).to(self.device)
            feats[s:s + len(win)] = self.features_of_inputs(fer_preprocess(win)).cpu().numpy()
        return feats


@functools.lru_cache(maxsize=4)
def default_features(checkpoint: str = "active", device: str = "cpu") -> ExpressionFeatures:
    """One shared ExpressionFeatures per (checkpoint, device): the weights load once per process."""
    return ExpressionFeatures(checkpoint, device)


def embed_frames(frames, layout: str = "auto", batch_size: int = 512, device: str = "cpu") -> np.ndarray:
    """uint8 [N, S, S, 3] aligned faces -> float32 [N, 304] penultimate FER2013-CNN features, batched."""
    return default_features("active", str(device))(frames, layout, batch_size)
