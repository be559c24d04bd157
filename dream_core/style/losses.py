"""Gatys' style and content losses as objectives built from reference pictures, which follow the
picture they are matched against at every size and batch item (see :mod:`dream_core.references`)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from torch import Tensor

from ..backbones import Backbone
from ..errors import DreamError, check
from ..images import check_image
from ..objectives import LayerTerm, Objective, content
from ..pyramid import resize, resize_longer_side
from ..references import KEPT, item_of, reference_activations, reference_objective
from .statistics import STATISTICS, style_match, style_statistic

__all__ = ["style_objective", "content_objective"]


def style_objective(backbone: Backbone, style_image: Tensor, terms: Sequence[LayerTerm], weight: float = 1.0, *,
                    statistic: str = "gram", scale: float | None = None, mask: Tensor | None = None) -> Objective:
    """Gatys' style loss as a score to maximise (it is negative): ``weight / n * sum(term.weight * style_match)``.

    Args:
        style_image: :math:`(B, 3, H, W)`; its first item is the style.
        terms: the style layers and their weights (Gatys: relu1_1 .. relu5_1 of vgg19).
        weight: the strength of this style; several styles add up to a blend.
        statistic: ``"gram"`` or ``"mean_cov"`` (see :func:`~dream_core.style.statistics.style_match`).
        scale: the style's longer side as a multiple of the image's, at every size the objective is
            used at (neural-style-pt's ``style_scale``): larger paints larger brush strokes. None:
            the style at its own size.
        mask: :math:`(B \\text{ or } 1, 1, H, W)` or :math:`(B, H, W)` in 0..1: where on the image this
            style applies (a regional style); the statistic is taken there only.
    """
    if not terms:
        raise DreamError("style layers: no layer selected; connect a Select Dream Layer node.")
    layers = [backbone.resolve(term.layer) for term in terms]
    check(all(term.weight >= 0 for term in terms), "style layers: weights must be 0 or more.")
    check(scale is None or scale > 0, f"style_scale: must be above 0, got {scale}.")
    check(statistic in STATISTICS, f"statistic: unknown {statistic!r}; choose one of {', '.join(STATISTICS)}.")
    picture = check_image(style_image, "style_image")[:1]
    if mask is not None:
        check(mask.ndim in (3, 4), f"mask: expected (B, H, W) or (B, 1, H, W), got {tuple(mask.shape)}.")
        mask = mask.reshape(mask.shape[0], 1, *mask.shape[-2:]).float().clamp(0.0, 1.0)

    @functools.lru_cache(maxsize=KEPT)
    def statistics(side: int | None) -> dict[str, tuple[Tensor, ...]]:
        if side is not None:  # never below what the layers need (probed on first use, not when built)
            side = max(side, backbone.extractor(layers).min_input_size())
        seen = picture if side is None else resize_longer_side(picture, side)
        acts = reference_activations(backbone, seen, layers, "style_image")
        return {layer: style_statistic(acts[layer], statistic) for layer in layers}

    def build(size: tuple[int, int] | None, item: int | None) -> Objective:
        side = None if size is None or scale is None else round(scale * max(size))
        region = None if mask is None else item_of(mask, item, "mask")
        stats = statistics(side)
        return (weight / len(terms)) * Objective.sum(
            term.weight * style_match(layer, stats[layer], statistic, region) for term, layer in zip(terms, layers))

    shown = f"style({', '.join(layers)}; {statistic}{'' if scale is None else f', scale {scale:g}'}" \
            f"{'' if mask is None else ', masked'})"
    return reference_objective(f"{weight:g} * {shown}", layers, build)


def content_objective(backbone: Backbone, content_image: Tensor, layer: str, weight: float = 1.0) -> Objective:
    """Gatys' content loss as a score to maximise: ``weight * content(layer, activation of the content)``.

    At ``at(size, item)`` the content is item ``item`` of ``content_image`` (or its only item),
    resized to ``size``, so the content can be matched at every octave or scale.
    """
    layer = backbone.resolve(layer)
    pictures = check_image(content_image, "content_image")

    def build(size: tuple[int, int] | None, item: int | None) -> Objective:
        picture = item_of(pictures, item, "content_image")
        seen = picture if size is None else resize(picture, size)
        return weight * content(layer, reference_activations(backbone, seen, [layer], "content_image")[layer])

    return reference_objective(f"{weight:g} * content({layer})", [layer], build)
