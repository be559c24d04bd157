"""Objectives built from a reference picture: the guide of a guided dream, and the building blocks of
the style package's style and content losses.

The reference runs through the backbone without gradients and the objective carries its activations
(or their statistics) as constants. A reference can follow the image it is matched against
(:func:`reference_objective`): ``objective.at(size, item)`` sees the reference at a size that
follows ``size`` (and takes batch item ``item`` of a batch); each is computed on first use, on the
backbone's device, and the last few are kept.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor

from .backbones import Backbone
from .errors import DreamError
from .images import check_image
from .objectives import LayerTerm, Objective, guide
from .pyramid import resize_longer_side

__all__ = ["reference_activations", "reference_objective", "item_of", "guided_objective", "centre_view",
           "image_embedding"]

KEPT = 8  # (size, item) versions of a reference objective kept: the sizes of one dream or transfer


def reference_activations(backbone: Backbone, image: Tensor, layers: Iterable[str], name: str = "image",
                          max_side: int | None = None) -> dict[str, Tensor]:
    """Activations of ``image`` :math:`(B, 3, H, W)` at ``layers``, without gradients.

    ``max_side`` shrinks a large reference first (its longer side at most that many pixels).
    """
    reference = check_image(image, name).to(backbone.device)
    if max_side is not None and max(reference.shape[-2:]) > max_side:
        reference = resize_longer_side(reference, max_side)
    with torch.no_grad():
        return backbone.extractor(layers)(reference)


def reference_objective(description: str, layers: Iterable[str],
                        build: Callable[[tuple[int, int] | None, int | None], Objective]) -> Objective:
    """An objective whose ``at(size, item)`` is ``build(size, item)``, built on first use and kept;
    called directly it is ``build(None, None)``: the reference as given."""
    built = functools.lru_cache(maxsize=KEPT)(build)
    return Objective(lambda acts: built(None, None)(acts), layers, description, built)


def item_of(batch: Tensor, item: int | None, name: str) -> Tensor:
    """Batch item ``item`` of ``batch`` (all of it for None; the one item of a batch of 1)."""
    if item is None or batch.shape[0] == 1:
        return batch
    if item >= batch.shape[0]:
        raise DreamError(f"{name}: has {batch.shape[0]} items but image {item + 1} of the batch needs one; "
                         f"give 1 {name} for the whole batch or one per image.")
    return batch[item:item + 1]


def guided_objective(backbone: Backbone, guide_image: Tensor, terms: Sequence[LayerTerm]) -> Objective:
    """``sum(weight * guide(layer))`` over ``terms``, the guide seen at the backbone's native size."""
    layers = [backbone.resolve(term.layer) for term in terms]
    acts = reference_activations(backbone, guide_image[:1], layers, "guide_image", backbone.spec.native_size)
    return Objective.sum(term.weight * guide(layer, acts[layer]) for term, layer in zip(terms, layers))


def centre_view(image: Tensor, size: int) -> Tensor:
    """What a CLIP model is shown of ``image`` :math:`(B, 3, H, W)`: the shorter side resized to ``size``
    (bicubic, antialiased), the centre ``size`` x ``size`` cut out, rounded to 8 bits; as ComfyUI's
    ``clip_preprocess`` (and OpenAI's CLIP) prepares it, before the normalisation. No gradient flows
    through the rounding: for targets, not for dreaming."""
    height, width = image.shape[-2:]
    if (height, width) != (size, size):
        scale = size / min(height, width)
        image = torch.nn.functional.interpolate(image, size=(round(scale * height), round(scale * width)),
                                                mode="bicubic", antialias=True)
        top, left = (image.shape[-2] - size) // 2, (image.shape[-1] - size) // 2
        image = image[..., top:top + size, left:left + size]
    return (255.0 * image).clamp(0, 255).round() / 255.0


def image_embedding(backbone: Backbone, image: Tensor, layer: str, name: str = "image") -> Tensor:
    """``layer`` (a CLIP backbone's ``embedding``) of ``image`` :math:`(B, 3, H, W)` as the model's host
    embeds a picture: its :func:`centre_view` at the backbone's native size; :math:`(B, E)`, no gradient."""
    picture = check_image(image, name).to(backbone.device)
    return reference_activations(backbone, centre_view(picture, backbone.spec.native_size), [layer], name)[layer]
