"""The backend interface shared by every runtime (fv.engine.backends): its error, its protocol, its feed check."""

from __future__ import annotations

from typing import Protocol

import torch

from fv.engine.iospec import NetworkSpec, SpecError

KINDS = ("torch", "onnxruntime", "tensorrt")


class BackendError(RuntimeError):
    """A backend that cannot be built or run as asked (missing library / GPU / artefact, wrong file, bad feeds)."""


def checked_batch(spec: NetworkSpec, feeds: dict[str, torch.Tensor]) -> int:
    """The feeds' batch size, or a BackendError naming the input that does not match the spec."""
    try:
        return spec.check_feeds(feeds)
    except SpecError as e:
        raise BackendError(str(e)) from None


class Backend(Protocol):
    spec: NetworkSpec
    device: torch.device
    max_batch: int | None

    def __call__(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...
