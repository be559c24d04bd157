"""Objectives that match a target: a guide's features, a direction, an embedding (cosine), a content's
features; and the diversity of a batch. Matching terms are scores, higher when closer: add them."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import DreamError
from .algebra import Activations, at_least_float32, objective

__all__ = ["guide", "direction", "diversity", "cosine", "content", "DeviceCopies"]

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
