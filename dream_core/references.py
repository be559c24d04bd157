"""Objectives built from a reference image: the guide of a guided dream, the style of a style loss.

The reference runs through the backbone once, without gradients, when the objective is built; the
objective then carries the reference's activations (or Gram matrices) as constants.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from .backbones import Backbone
from .images import check_image
from .objectives import LayerTerm, Objective, gram_matrix, gram_style, guide
from .pyramid import resize_longer_side

__all__ = ["reference_activations", "guided_objective", "style_objective"]


def reference_activations(backbone: Backbone, image: Tensor, layers: Iterable[str], name: str = "image",
                          max_side: int | None = None) -> dict[str, Tensor]:
    """Activations of the first item of ``image`` :math:`(B, 3, H, W)` at ``layers``, without gradients.

    ``max_side`` shrinks a large reference first (its longer side at most that many pixels).
    """
    reference = check_image(image, name)[:1].to(backbone.device)
    if max_side is not None and max(reference.shape[-2:]) > max_side:
        reference = resize_longer_side(reference, max_side)
    with torch.no_grad():
        return backbone.extractor(layers)(reference)


def guided_objective(backbone: Backbone, guide_image: Tensor, terms: Sequence[LayerTerm]) -> Objective:
    """``sum(weight * guide(layer))`` over ``terms``, the guide seen at the backbone's native size."""
    layers = [backbone.resolve(term.layer) for term in terms]
    acts = reference_activations(backbone, guide_image, layers, "guide_image", backbone.spec.native_size)
    return Objective.sum(term.weight * guide(layer, acts[layer]) for term, layer in zip(terms, layers))


def style_objective(backbone: Backbone, style_image: Tensor, terms: Sequence[LayerTerm],
                    weight: float = 1.0) -> Objective:
    """Gatys' style loss as a score to maximise (it is negative): ``weight / n * sum(term.weight * gram_style)``."""
    layers = [backbone.resolve(term.layer) for term in terms]
    acts = reference_activations(backbone, style_image, layers, "style_image")
    return (weight / len(terms)) * Objective.sum(
        term.weight * gram_style(layer, gram_matrix(acts[layer])) for term, layer in zip(terms, layers))
