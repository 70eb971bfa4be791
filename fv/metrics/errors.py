"""The one error class of `fv eval`: bad input the user can fix, reported by the CLI as one line."""

from __future__ import annotations


class MetricsError(RuntimeError):
    """A generated set, index, data split or metric model that `fv eval` cannot use (one-line message)."""
