"""Objectives: what a dream maximises, as values you can add and scale.

An :class:`Objective` maps the activations of a forward pass, ``{layer: (B, C, H, W)}``, to one
score per batch item, shape ``(B,)``. It knows the layers it reads (``.layers``), so the feature
extractor runs only as deep as the whole sum needs. Objectives compose::

    objective = l2("inception4c") + 0.5 * channel("inception4d", 97) - 0.1 * mean_activation("conv2")

Scores are means, not sums, so they do not grow with the image size and weights stay comparable
across layers of different sizes (the Keras source divides by the activation's size for the same reason).

Some objectives read the image itself, under the reserved name ``"input"`` (0..1 RGB): penalties
such as :func:`total_variation` and :func:`pixel_l2` are subtracted from a layer objective,
``l2("inception4c") - 0.05 * total_variation()``; an objective made only of them runs no network.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import DreamError, check
from .features import INPUT

__all__ = ["Objective", "objective", "l2", "mean_activation", "channel", "layer_objective", "LOSSES",
           "LayerTerm", "terms_objective", "guide", "gram_matrix", "gram_style", "total_variation", "pixel_l2",
           "TV_KINDS"]

Activations = Mapping[str, Tensor]


class Objective:
    """A score to maximise, computed from named activations.

    Args:
        fn: ``activations -> (B,)`` scores.
        layers: the layer names ``fn`` reads.
        description: a readable formula, shown in ``repr`` and in logs.
    """

    def __init__(self, fn: Callable[[Activations], Tensor], layers: Iterable[str], description: str) -> None:
        self.fn = fn
        self.layers = frozenset(layers)
        self.description = description

    def __call__(self, activations: Activations) -> Tensor:
        return self.fn(activations)

    def __repr__(self) -> str:
        return f"Objective({self.description})"

    def __add__(self, other: Objective | float) -> Objective:
        if isinstance(other, Objective):
            return Objective(lambda a: self(a) + other(a), self.layers | other.layers,
                             f"{self.description} + {other.description}")
        if isinstance(other, (int, float)):
            return Objective(lambda a: self(a) + other, self.layers, f"{self.description} + {other:g}")
        return NotImplemented

    __radd__ = __add__  # sum([...]) starts from 0

    def __mul__(self, factor: float) -> Objective:
        if isinstance(factor, bool) or not isinstance(factor, (int, float)):
            return NotImplemented
        return Objective(lambda a: factor * self(a), self.layers, f"{factor:g} * ({self.description})")

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
    return f"tensor{list(value.shape)}" if isinstance(value, Tensor) else str(value)


def _select(activation: Tensor, channels: Sequence[int] | int | None, crop: int) -> Tensor:
    """The part of ``activation`` (B, C, H, W) that a layer objective scores, in float32 (also under autocast)."""
    if channels is not None:
        index = [channels] if isinstance(channels, int) else list(channels)
        count = activation.shape[1]
        if not index or not all(-count <= c < count for c in index):
            raise DreamError(f"channel: {index} is outside this layer's channels 0..{count - 1}.")
        activation = activation[:, index]
    if crop:
        if min(activation.shape[-2:]) <= 2 * crop:
            raise DreamError(f"crop: cropping {crop} from each border leaves nothing of a "
                             f"{tuple(activation.shape[-2:])} activation; lower it or use a larger image.")
        activation = activation[..., crop:-crop, crop:-crop]
    return activation.float()


@objective
def l2(layer: str, channels: Sequence[int] | int | None = None, crop: int = 0) -> Callable[[Activations], Tensor]:
    """``0.5 * mean(a**2)`` of the layer (or of some channels): the classic DeepDream loss.

    Its gradient with respect to the activation is the activation itself, which is what
    ``act.backward(act)`` in the PyTorch source and Google's original compute. ``crop`` drops that many
    activation pixels at each border to avoid edge artefacts, as the Keras source does with 2.
    """
    return lambda acts: 0.5 * _select(acts[layer], channels, crop).square().flatten(1).mean(1)


@objective
def mean_activation(layer: str, channels: Sequence[int] | int | None = None,
                    crop: int = 0) -> Callable[[Activations], Tensor]:
    """``mean(a)`` of the layer: the loss of the InceptionV3 DeepDreamer source; favours what fires positively."""
    return lambda acts: _select(acts[layer], channels, crop).flatten(1).mean(1)


@objective
def channel(layer: str, index: int) -> Callable[[Activations], Tensor]:
    """The mean activation of one channel: visualises what that feature detects."""
    return lambda acts: _select(acts[layer], index, 0).flatten(1).mean(1)


LOSSES: dict[str, Callable[..., Objective]] = {"l2": l2, "mean": mean_activation}


def layer_objective(layer: str, weight: float = 1.0, loss: str = "l2",
                    channels: Sequence[int] | int | None = None, crop: int = 0) -> Objective:
    """``weight * loss(layer)``, with the loss chosen by name (``"l2"`` or ``"mean"``)."""
    if loss not in LOSSES:
        raise DreamError(f"loss: unknown loss {loss!r}; choose one of {', '.join(LOSSES)}.")
    return weight * LOSSES[loss](layer, channels, crop=crop)



@dataclass(frozen=True)
class LayerTerm:
    """One weighted layer of a layer objective (what the Select Dream Layer node makes and chains)."""

    layer: str
    weight: float = 1.0
    channel: int | None = None
    loss: str = "l2"

    def objective(self) -> Objective:
        return layer_objective(self.layer, self.weight, self.loss, self.channel)


def terms_objective(terms: Sequence[LayerTerm]) -> Objective:
    """The sum of ``term.objective()`` over ``terms``."""
    if not terms:
        raise DreamError("layers: no layer selected; connect a Select Dream Layer node.")
    return Objective.sum(term.objective() for term in terms)


class _OnDevice:
    """A constant tensor, copied once to each device and dtype it is used with (not once per step)."""

    def __init__(self, tensor: Tensor) -> None:
        self._copies = {(tensor.device, tensor.dtype): tensor}
        self._source = tensor

    def like(self, other: Tensor) -> Tensor:
        key = (other.device, other.dtype)
        if key not in self._copies:
            self._copies[key] = self._source.to(device=other.device, dtype=other.dtype)
        return self._copies[key]


_GUIDE_CHUNK = 4096  # image positions matched at a time: bounds the (positions x guide positions) matrix


@objective
def guide(layer: str, guide_activation: Tensor) -> Callable[[Activations], Tensor]:
    """Guided ("controlled") dream: pull each image feature towards its best-matching guide feature.

    For every position ``i`` of the layer, the guide position ``j`` with the largest dot product
    ``x_i . g_j`` is found, and the score is the mean of ``x_i . g_best(i)`` (per channel), as in the
    PyTorch and Google sources. The match is held fixed for the gradient, so ``d score / d x_i`` is
    the matched guide feature.

    Args:
        layer: the layer both activations come from.
        guide_activation: the guide image's activation at ``layer``, :math:`(1, C, h, w)`.
    """
    guide_features = _OnDevice(guide_activation.detach().flatten(2)[0])  # (C, M)

    def score(acts: Activations) -> Tensor:
        features = acts[layer].float().flatten(2)  # (B, C, N)
        target = guide_features.like(features)
        if features.shape[1] != target.shape[0]:
            raise DreamError(f"guide: the guide has {target.shape[0]} channels at {layer}, the image "
                             f"{features.shape[1]}; build both from the same backbone.")
        with torch.no_grad():
            best = torch.cat([(chunk.transpose(1, 2) @ target).argmax(-1)
                              for chunk in features.split(_GUIDE_CHUNK, dim=2)], dim=1)  # (B, N)
        matched = target[:, best].movedim(1, 0)  # (B, C, N)
        return (features * matched).mean((1, 2))

    return score


def gram_matrix(activation: Tensor) -> Tensor:
    """Channel correlations of :math:`(B, C, H, W)` -> :math:`(B, C, C)`, divided by ``C * H * W``
    so that the Grams of a small and a large picture of the same texture agree."""
    batch, channels, height, width = activation.shape
    features = activation.float().reshape(batch, channels, height * width)
    return features @ features.transpose(1, 2) / (channels * height * width)


@objective
def gram_style(layer: str, target_gram: Tensor) -> Callable[[Activations], Tensor]:
    """Gatys style: minus the squared distance between the layer's Gram matrix and the style's.

    The distance is relative, ``|G - A|^2 / |A|^2``, so scores are comparable across layers and
    backbones; maximising the score minimises the style loss.

    Args:
        layer: the layer to match.
        target_gram: the style image's Gram at ``layer``, :math:`(1, C, C)` (see :func:`gram_matrix`).
    """
    target = _OnDevice(target_gram.detach().float())

    def score(acts: Activations) -> Tensor:
        gram = gram_matrix(acts[layer])
        style = target.like(gram)
        return -(gram - style).square().sum((1, 2)) / style.square().sum().clamp_min(1e-30)

    return score


TV_KINDS = ("l2", "l1", "keras")


def total_variation(kind: str = "l2") -> Objective:
    """Total variation of the image: how much neighbouring pixels differ. A penalty: subtract it.

    With ``dy``, ``dx`` the differences to the pixel below and to the right (over the
    :math:`(H-1) \times (W-1)` pixels that have both), per item:

    - ``"l2"``: ``mean(dy**2 + dx**2)``, smooth and quadratic;
    - ``"l1"``: ``mean(|dy| + |dx|)``, keeps edges sharp;
    - ``"keras"``: ``mean((dy**2 + dx**2) ** 1.25)``, the Keras style-transfer source's form.

    Example:
        >>> flat, noisy = torch.full((1, 3, 8, 8), 0.5), torch.rand(1, 3, 8, 8)
        >>> tv = total_variation()
        >>> tv({"input": flat}).item(), bool(tv({"input": noisy}) > 0)
        (0.0, True)
    """
    check(kind in TV_KINDS, f"total_variation: unknown kind {kind!r}; choose one of {', '.join(TV_KINDS)}.")

    def score(acts: Activations) -> Tensor:
        image = acts[INPUT].float()
        dy = image[..., 1:, :-1] - image[..., :-1, :-1]
        dx = image[..., :-1, 1:] - image[..., :-1, :-1]
        if kind == "l1":
            per_pixel = dy.abs() + dx.abs()
        else:
            per_pixel = dy.square() + dx.square()
            if kind == "keras":
                per_pixel = per_pixel.pow(1.25)
        return per_pixel.flatten(1).mean(1)

    return Objective(score, [INPUT], f"total_variation({kind})")


def pixel_l2(center: float = 0.5) -> Objective:
    """``mean((x - center)**2)`` over the image: how far the pixels stray from ``center`` (mid-grey).

    The L2 regulariser of CS231n's class visualisation (which centres on the mean colour by working
    on the mean-subtracted image). A penalty: subtract it.
    """
    return Objective(lambda acts: (acts[INPUT].float() - center).square().flatten(1).mean(1), [INPUT],
                     f"pixel_l2({center:g})")
