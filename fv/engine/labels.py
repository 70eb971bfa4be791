"""Emotion labels and the fixed temporal structure of a clip (thesis 4.2, "Video Structure").

Every clip is N_FRAMES = 32 frames: neutral onset (0-9), apex (10-21), neutral offset (22-31).
The category code z_a is a one-hot over the 7 MUG classes (dim_z_category = 7, thesis 3.1.1);
generation targets are the six basic emotions, index 6 is neutral.
"""

from __future__ import annotations

import torch

N_FRAMES = 32
ONSET = range(0, 10)
APEX = range(10, 22)
OFFSET = range(22, 32)

EMOTIONS: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
CLASSES: tuple[str, ...] = EMOTIONS + ("neutral",)
NEUTRAL = CLASSES.index("neutral")
N_CLASSES = len(CLASSES)  # dim_z_category

_ALIASES = {
    "angry": "anger", "anger": "anger", "mad": "anger",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happiness": "happiness", "happy": "happiness", "joy": "happiness",
    "sadness": "sadness", "sad": "sadness",
    "surprise": "surprise", "surprised": "surprise",
    "neutral": "neutral",
}


class UnknownEmotionError(ValueError):
    pass


def parse_emotion(name: str, allow_neutral: bool = False) -> int:
    """Class index of an emotion name or common alias ('happy' -> 3). Case-insensitive."""
    canon = _ALIASES.get(str(name).strip().lower())
    if canon is None or (canon == "neutral" and not allow_neutral):
        valid = ", ".join(EMOTIONS + (("neutral",) if allow_neutral else ()))
        raise UnknownEmotionError(f"unknown emotion {name!r}; choose one of: {valid}")
    return CLASSES.index(canon)


def one_hot(index: torch.Tensor) -> torch.Tensor:
    """[B] long -> [B, 7] float one-hot z_a."""
    return torch.nn.functional.one_hot(index.long(), N_CLASSES).float()


def segment_targets(emotion: int) -> list[int]:
    """Per-frame target class of a clip with this emotion: neutral, apex emotion, neutral (AEA_WN)."""
    return [emotion if t in APEX else NEUTRAL for t in range(N_FRAMES)]
