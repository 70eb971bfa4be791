"""Errors of `fv export` (user errors: the CLI prints them as one line)."""

from __future__ import annotations


class ExportError(RuntimeError):
    """An export that cannot be made or failed its check (parity above tolerance, TensorRT missing, ...)."""
