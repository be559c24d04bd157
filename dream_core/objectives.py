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

Convention: matching objectives (:func:`guide`, :func:`content`, the style package's ``style_match``) are scores,
higher when closer, so they are *added*; penalties (:func:`total_variation`, :func:`pixel_l2`) are
positive measures, so they are *subtracted*.

Objectives made from a reference picture (a style or content image) depend on the size of the
image being optimised and on which batch item it is: drivers call ``objective.at(size, item)``
before working on an item at a size, and sums and multiples pass the call on to their parts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .cutouts import Cutouts
from .errors import DreamError, check
from .features import INPUT

__all__ = ["Objective", "objective", "l2", "mean_activation", "channel", "layer_objective", "LOSSES",
           "LayerTerm", "terms_objective", "guide", "cosine", "direction", "diversity", "content", "total_variation", "pixel_l2", "TV_KINDS",
           "ranked_channels", "CHANNEL_MODES", "CHOICES", "neuron"]

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


def _select(activation: Tensor, channels: Sequence[int] | int | None, crop: int, layer: str = "this layer") -> Tensor:
    """The part of ``activation`` (B, C, H, W) that a layer objective scores, in float32 (also under autocast)."""
    if channels is not None:
        index = [channels] if isinstance(channels, int) else list(channels)
        count = activation.shape[1]
        if not index or not all(-count <= c < count for c in index):
            raise DreamError(f"channel: {index} is outside the channels of {layer}, 0..{count - 1}.")
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
    return lambda acts: 0.5 * _select(acts[layer], channels, crop, layer).square().flatten(1).mean(1)


@objective
def mean_activation(layer: str, channels: Sequence[int] | int | None = None,
                    crop: int = 0) -> Callable[[Activations], Tensor]:
    """``mean(a)`` of the layer: the loss of the InceptionV3 DeepDreamer source; favours what fires positively."""
    return lambda acts: _select(acts[layer], channels, crop, layer).flatten(1).mean(1)


@objective
def channel(layer: str, index: int) -> Callable[[Activations], Tensor]:
    """The mean activation of one channel: visualises what that feature detects."""
    return lambda acts: _select(acts[layer], index, 0, layer).flatten(1).mean(1)


@objective
def neuron(layer: str, index: int) -> Callable[[Activations], Tensor]:
    """The activation of channel ``index`` at the centre position of the layer: one neuron, as lucid's
    ``neuron`` objective (a channel objective is that neuron at every position)."""
    def score(acts: Activations) -> Tensor:
        activation = acts[layer]
        return _select(activation[..., activation.shape[-2] // 2, activation.shape[-1] // 2][..., None, None],
                       index, 0, layer).flatten(1).mean(1)

    return score


LOSSES: dict[str, Callable[..., Objective]] = {"l2": l2, "mean": mean_activation}
CHANNEL_MODES = ("all", "strongest", "weakest")
CHOICES = ("once", "every_step")


def ranked_channels(layer: str, k: int, mode: str = "strongest", choose: str = "once", loss: str = "l2") -> Objective:
    """``loss`` over the ``k`` channels of ``layer`` with the highest (``strongest``) or lowest
    (``weakest``) mean activation in each item: neural-dream's channel modes. Amplifying the
    strongest deepens what the picture already shows; the weakest brings out what it hides.

    With ``choose="once"`` each item's channels are picked on the first call and kept for the rest of
    the dream (every octave: drivers call ``at(size, item)``, which keeps one choice per item); with
    ``"every_step"`` they are picked again at every step.
    """
    check(mode in CHANNEL_MODES[1:], f"channel_mode: unknown {mode!r}; choose strongest or weakest.")
    check(choose in CHOICES, f"choose: unknown {choose!r}; choose one of {', '.join(CHOICES)}.")
    check(k >= 1, f"top_k: must be 1 or more, got {k}.")
    check(loss in LOSSES, f"loss: unknown loss {loss!r}; choose one of {', '.join(LOSSES)}.")
    description = f"{loss}({layer}, {mode} {k} {'chosen once' if choose == 'once' else 'every step'})"

    def fresh() -> Objective:
        chosen: list[Tensor] = []

        def score(acts: Activations) -> Tensor:
            activation = at_least_float32(acts[layer])
            check(k <= activation.shape[1], f"top_k: {layer} has {activation.shape[1]} channels, fewer than {k}.")
            if not chosen or choose == "every_step":
                ranking = activation.detach().mean((2, 3))
                chosen[:] = [ranking.topk(k, dim=1, largest=mode == "strongest").indices]
            index = chosen[0][..., None, None].expand(-1, -1, *activation.shape[-2:])
            picked = activation.gather(1, index)
            return 0.5 * picked.square().mean((1, 2, 3)) if loss == "l2" else picked.mean((1, 2, 3))

        return Objective(score, [layer], description)

    per_item: dict[int, Objective] = {}

    def at(size: tuple[int, int], item: int) -> Objective:
        return per_item.setdefault(item, fresh())

    whole = fresh()
    return Objective(whole.fn, [layer], description, at)


def layer_objective(layer: str, weight: float = 1.0, loss: str = "l2",
                    channels: Sequence[int] | int | None = None, crop: int = 0) -> Objective:
    """``weight * loss(layer)``, with the loss chosen by name (``"l2"`` or ``"mean"``)."""
    if loss not in LOSSES:
        raise DreamError(f"loss: unknown loss {loss!r}; choose one of {', '.join(LOSSES)}.")
    return weight * LOSSES[loss](layer, channels, crop=crop)



@dataclass(frozen=True)
class LayerTerm:
    """One weighted layer of a layer objective (what the Select Dream Layer node makes and chains):
    all its channels, one ``channel``, or the ``top_k`` strongest or weakest (``channel_mode``)."""

    layer: str
    weight: float = 1.0
    channel: int | None = None
    loss: str = "l2"
    channel_mode: str = "all"
    top_k: int = 8
    choose: str = "once"

    def objective(self) -> Objective:
        if self.channel_mode == "all":
            return layer_objective(self.layer, self.weight, self.loss, self.channel)
        check(self.channel is None, "channel: pick one channel or a channel mode, not both.")
        return self.weight * ranked_channels(self.layer, self.top_k, self.channel_mode, self.choose, self.loss)


def terms_objective(terms: Sequence[LayerTerm]) -> Objective:
    """The sum of ``term.objective()`` over ``terms``."""
    if not terms:
        raise DreamError("layers: no layer selected; connect a Select Dream Layer node.")
    return Objective.sum(term.objective() for term in terms)


class DeviceCopies:
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
    guide_features = DeviceCopies(guide_activation.detach().flatten(2)[0])  # (C, M)

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


def at_least_float32(tensor: Tensor) -> Tensor:
    """``tensor`` in at least float32: half-precision activations are promoted, float64 stays (for gradcheck)."""
    return tensor if tensor.dtype == torch.float64 else tensor.float()


@objective
def direction(layer: str, vector: Tensor) -> Callable[[Activations], Tensor]:
    """How far the layer's features point along ``vector``, a direction in its channel space (lucid's
    ``direction``): the cosine between each position's channel vector and ``vector``, averaged over the
    positions. Directions that are no single channel (a sum of units, a difference of two classes'
    features) become visualisable.

    Args:
        layer: the layer whose channel space ``vector`` lives in.
        vector: :math:`(C,)`.
    """
    wanted = DeviceCopies(vector.detach().reshape(-1))

    def score(acts: Activations) -> Tensor:
        activation = at_least_float32(acts[layer])
        goal = wanted.like(activation)
        if goal.shape[0] != activation.shape[1]:
            raise DreamError(f"direction: the vector has {goal.shape[0]} values, {layer} has {activation.shape[1]} "
                             "channels; give one value per channel.")
        goal = goal.reshape(1, -1, *([1] * (activation.ndim - 2)))
        return torch.nn.functional.cosine_similarity(activation, goal, dim=1).flatten(1).mean(1)

    return score


@objective
def diversity(layer: str) -> Callable[[Activations], Tensor]:
    """How different the batch items' styles at ``layer`` are (lucid's ``diversity``): item ``i``'s score is
    minus the sum of the cosines between its normalised Gram matrix and every other item's, divided by
    the batch size (the items' scores add up to lucid's). It reads the whole batch, so the batch must
    be optimised together (``feature_visualize(..., diversity=w)`` does); alone, an item scores 0.
    """

    def score(acts: Activations) -> Tensor:
        features = at_least_float32(acts[layer]).flatten(2)
        grams = torch.nn.functional.normalize((features @ features.transpose(1, 2)).flatten(1), dim=1)
        similarity = grams @ grams.T
        return -(similarity.sum(1) - similarity.diagonal()) / features.shape[0]

    return score


@objective
def cosine(layer: str, target: Tensor) -> Callable[[Activations], Tensor]:
    """The cosine similarity between the layer's activation (flattened per item) and ``target``: 1 when
    they point the same way, -1 when opposite.

    CLIP compares pictures and texts this way: ``cosine("embedding", text)`` pulls the picture
    towards a prompt's embedding, ``- cosine("embedding", other)`` pushes it away from another (a
    negative prompt), and a second picture's embedding as ``target`` guides a dream in CLIP space.

    Args:
        layer: the layer to compare (CLIP's ``embedding``).
        target: one vector :math:`(E,)` or :math:`(1, E)`, with as many values as the layer has per item.
    """
    wanted = DeviceCopies(target.detach().reshape(1, -1))

    def score(acts: Activations) -> Tensor:
        features = at_least_float32(acts[layer]).flatten(1)
        goal = wanted.like(features)
        if goal.shape[1] != features.shape[1]:
            raise DreamError(f"cosine: the target has {goal.shape[1]} values, {layer} has {features.shape[1]} per "
                             "image; make the target with the same model (e.g. SDXL's CLIP-G with a ViT-bigG vision "
                             "model: both 1280).")
        return torch.nn.functional.cosine_similarity(features, goal, dim=1)

    return score


@objective
def content(layer: str, target: Tensor) -> Callable[[Activations], Tensor]:
    """Gatys content: minus the mean squared difference between the layer's activation and ``target``,
    relative to ``mean(target**2)`` (so weights carry across layers). 0 when they are equal.

    Args:
        layer: the layer to match (relu4_2 in Gatys et al.).
        target: the content image's activation at ``layer``, :math:`(B \\text{ or } 1, C, H, W)`.
    """
    wanted = DeviceCopies(target.detach())
    scale = at_least_float32(target.detach()).square().mean().clamp_min(1e-30)

    def score(acts: Activations) -> Tensor:
        activation = at_least_float32(acts[layer])
        goal = wanted.like(activation)
        if goal.shape[1:] != activation.shape[1:]:
            raise DreamError(f"content: the target at {layer} is {tuple(goal.shape[1:])}, the image's "
                             f"{tuple(activation.shape[1:])}; content needs the whole image at once (set tile_size 0).")
        return -(activation - goal).square().mean((1, 2, 3)) / scale.to(activation.device)

    return score


TV_KINDS = ("l2", "l1", "keras")


def total_variation(kind: str = "l2") -> Objective:
    """Total variation of the image: how much neighbouring pixels differ. A penalty: subtract it.

    With ``dy``, ``dx`` the differences to the pixel below and to the right (over the
    :math:`(H-1) \\times (W-1)` pixels that have both), per item:

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
        image = at_least_float32(acts[INPUT])
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
