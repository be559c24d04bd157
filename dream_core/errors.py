"""Errors a user can act on.

Every check in ``dream_core`` raises a :class:`DreamError` (a ``ValueError``) whose message names the
input, says what was expected and what was given, and says what to do. Nodes and the CLI show the
message as it is, so it must read well without a stack trace.
"""

from __future__ import annotations

__all__ = [
    "DreamError",
    "ShapeError",
    "LayerError",
    "WeightsError",
    "DreamCancelled",
    "check",
]


class DreamError(ValueError):
    """A bad input or setting, explained for the user."""


class ShapeError(DreamError):
    """A tensor with the wrong rank, channel count or size."""

    def __init__(self, message: str, actual_shape: tuple[int, ...] | None = None) -> None:
        super().__init__(message)
        self.actual_shape = actual_shape


class LayerError(DreamError):
    """A layer name that the backbone does not have."""

    def __init__(self, message: str, layer: str, available: list[str]) -> None:
        super().__init__(message)
        self.layer = layer
        self.available = available


class WeightsError(DreamError):
    """Weights that cannot be found, downloaded, verified or loaded."""


class DreamCancelled(RuntimeError):
    """The cancel callback asked the dream to stop."""


def check(condition: bool, message: str, error: type[DreamError] = DreamError) -> None:
    """Raise ``error(message)`` unless ``condition`` holds: one line per check at the top of a function."""
    if not condition:
        raise error(message)
