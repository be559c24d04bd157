"""The :class:`Objective` type and its algebra (sums, multiples, differences, views), and the
:func:`objective` decorator that turns a score function of one layer into a factory of described objectives."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import Tensor

from ..cutouts import Cutouts
from ..errors import DreamError

__all__ = ["Activations", "Objective", "objective", "at_least_float32"]

Activations = Mapping[str, Tensor]


class Objective:
    """A score to maximise, computed from named activations.

    Args:
        fn: ``activations -> (B,)`` scores.
        layers: the layer names ``fn`` reads.
        description: a readable formula, shown in ``repr`` and in logs.
        at: ``(size, item) -> Objective``: this objective for batch item ``item`` of an image of
            ``size`` ``(H, W)``, for objectives made from reference pictures; None = the same everywhere.
        views: :class:`~dream_core.Cutouts` the ascent drivers score it on instead of the picture (see
            :meth:`through`); None = the picture itself.
    """

    def __init__(self, fn: Callable[[Activations], Tensor], layers: Iterable[str], description: str,
                 at: Callable[[tuple[int, int], int], Objective] | None = None, views: Cutouts | None = None) -> None:
        self.fn = fn
        self.layers = frozenset(layers)
        self.description = description
        self._at = at
        self.views = views

    def through(self, views: Cutouts | None) -> Objective:
        """This objective scored on ``views`` (random crops at the network's size, see
        :class:`~dream_core.Cutouts`) instead of the picture: each item's score is the mean over its
        crops. A sum with such a term is scored on the crops as a whole (one forward pass)."""
        return Objective(self.fn, self.layers, self.description, self._at, views)

    def __call__(self, activations: Activations) -> Tensor:
        return self.fn(activations)

    def __repr__(self) -> str:
        return f"Objective({self.description})"

    def at(self, size: tuple[int, int], item: int = 0) -> Objective:
        """This objective for batch item ``item`` of an image of ``size`` ``(H, W)``.

        Objectives made from a reference picture see it at a size that follows the image's (a style
        seen at ``style_scale`` times the image, a content at the image's size) and take the
        reference of the item; all others return themselves.
        """
        if self._at is None:
            return self
        made = self._at(tuple(size), item)
        return made if made.views == self.views else made.through(self.views)

    @property
    def per_image(self) -> bool:
        """True when :meth:`at` gives other objectives for other sizes or batch items (reference objectives)."""
        return self._at is not None

    def _combine(self, other: Objective, fn: Callable[[Activations], Tensor], description: str) -> Objective:
        sized = self._at is not None or other._at is not None
        if self.views is not None and other.views is not None and self.views != other.views:
            raise DreamError(f"objective: {self.description} and {other.description} are seen through different "
                             "cutouts; give them the same cutouts (one forward pass scores the sum).")
        return Objective(fn, self.layers | other.layers, description,
                         (lambda size, item: self.at(size, item) + other.at(size, item)) if sized else None,
                         self.views or other.views)

    def __add__(self, other: Objective | float) -> Objective:
        if isinstance(other, Objective):
            return self._combine(other, lambda a: self(a) + other(a), f"{self.description} + {other.description}")
        if isinstance(other, (int, float)):
            return Objective(lambda a: self(a) + other, self.layers, f"{self.description} + {other:g}",
                             None if self._at is None else lambda size, item: self.at(size, item) + other,
                             self.views)
        return NotImplemented

    __radd__ = __add__  # sum([...]) starts from 0

    def __mul__(self, factor: float) -> Objective:
        if isinstance(factor, bool) or not isinstance(factor, (int, float)):
            return NotImplemented
        return Objective(lambda a: factor * self(a), self.layers, f"{factor:g} * ({self.description})",
                         None if self._at is None else lambda size, item: factor * self.at(size, item), self.views)

    __rmul__ = __mul__

    @staticmethod
    def sum(objectives: Iterable[Objective]) -> Objective:
        """The sum of several objectives (at least one), without the ``+ 0`` that ``sum()`` adds."""
        objectives = list(objectives)
        if not objectives:
            raise DreamError("objective: nothing to add up; give at least one objective.")
        return functools.reduce(lambda a, b: a + b, objectives)

    def __truediv__(self, divisor: float) -> Objective:
        if isinstance(divisor, bool) or not isinstance(divisor, (int, float)):
            return NotImplemented
        return self * (1.0 / divisor)

    def __neg__(self) -> Objective:
        return self * -1

    def __sub__(self, other: Objective | float) -> Objective:
        return self + (-other)

    def __rsub__(self, other: float) -> Objective:
        return -self + other


def objective(factory: Callable[..., Callable[[Activations], Tensor]]) -> Callable[..., Objective]:
    """Turn ``factory(layer, *args) -> fn(activations)`` into a factory of described Objectives.

    The first argument of the factory is the layer it reads; the description is built from the
    factory's name and arguments, e.g. ``channel(inception4c, 97)``.
    """

    @functools.wraps(factory)
    def build(layer: str, *args, **kwargs) -> Objective:
        shown = [layer, *map(_show, args), *(f"{k}={_show(v)}" for k, v in kwargs.items() if v is not None)]
        return Objective(factory(layer, *args, **kwargs), [layer], f"{factory.__name__}({', '.join(shown)})")

    return build


def _show(value: object) -> str:
    """An argument as a description shows it: tensors by shape only."""
    if isinstance(value, (list, tuple)) and any(isinstance(v, Tensor) for v in value):
        return f"({', '.join(map(_show, value))})"
    return f"tensor{list(value.shape)}" if isinstance(value, Tensor) else str(value)


def at_least_float32(tensor: Tensor) -> Tensor:
    """``tensor`` in at least float32: half-precision activations are promoted, float64 stays (for gradcheck)."""
    return tensor if tensor.dtype == torch.float64 else tensor.float()
