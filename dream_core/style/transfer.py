"""``stylize()``: Gatys neural style transfer on the shared optimizer loop.

The picture is optimised, not dreamed: every scale minimises ``style + content + total variation``
with L-BFGS or Adam (:func:`~dream_core.loop.optimize`). The quality tricks come from the best
standalone tools: coarse-to-fine scales and an average of Adam's iterates (crowsonkb's
style-transfer-pytorch), ``original_colors`` and init from content, noise or an image
(neural-style-pt); regional styles (a mask per style), a batch, previews and Cancel are ours.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..backbones import Backbone
from ..errors import DreamError, check
from ..images import check_image, keep_colors, prepare_mask
from ..loop import Cancel, Item, Progress, ProgressFn, autocast_dtype, for_each_item
from ..memory import pass_memory
from ..objectives import TV_KINDS, Objective, total_variation
from ..optimizers import LBFGS_HISTORY, OPTIMIZERS, optimize
from ..pyramid import octave_sizes, resize
from .losses import content_objective

__all__ = ["INITS", "SMALLEST_SCALE", "gatys_layers", "scale_sizes", "stylize", "stylize_memory"]

INITS = ("content", "noise")
SMALLEST_SCALE = 128
"""The longer side of the first scale when scales are chosen automatically (``scales=0``)."""
SCALE_RATIO = math.sqrt(2)


def gatys_layers(backbone: Backbone) -> tuple[str, list[str]]:
    """The content layer and the style layers to use by default on ``backbone``.

    VGG: Gatys et al.'s relu4_2 and relu1_1 .. relu5_1. Other networks: the default layer for the
    content, and five layers spread evenly from the first to it for the style.
    """
    layers = list(backbone.spec.layers)
    if "relu4_2" in layers:
        return "relu4_2", [f"relu{block}_1" for block in range(1, 6)]
    deepest = layers.index(backbone.spec.default_layer)
    picks = sorted({round(i * deepest / 4) for i in range(5)})
    return backbone.spec.default_layer, [layers[i] for i in picks]


def scale_sizes(size: tuple[int, int], scales: int, smallest: int = 32) -> list[tuple[int, int]]:
    """The sizes of a coarse-to-fine transfer, smallest first, each :math:`\\sqrt{2}` times the one before.

    Args:
        size: ``(H, W)`` of the content; the last scale.
        scales: how many; 0 = from about :data:`SMALLEST_SCALE` px (longer side) up, crowsonkb's scheme.
        smallest: the shorter side of every scale stays at least this large (the network's minimum).

    Example:
        >>> scale_sizes((256, 512), 0)
        [(64, 128), (91, 181), (128, 256), (181, 362), (256, 512)]
    """
    check(scales >= 0, f"scales: must be 0 (automatic) or more, got {scales}.")
    automatic = scales == 0
    if automatic:
        scales = max(1, math.floor(math.log(max(size) / SMALLEST_SCALE, SCALE_RATIO) + 1e-9) + 1)
    return octave_sizes(size, scales, SCALE_RATIO, min_size=smallest, warn=not automatic)


def stylize(
    content_image: Tensor,
    backbone: Backbone,
    style: Objective,
    *,
    content_weight: float = 0.1,
    content_layer: str | None = None,
    tv_weight: float = 10.0,
    tv: str = "l2",
    steps: int = 100,
    optimizer: str = "lbfgs",
    learning_rate: float = 0.02,
    scales: int = 1,
    init: str | Tensor = "content",
    seed: int = 0,
    original_colors: bool = False,
    ema: float = 0.0,
    mask: Tensor | None = None,
    precision: str = "auto",
    progress: Progress | ProgressFn | None = None,
    cancel: Cancel | None = None,
) -> Tensor:
    """Paint every image of ``content_image`` in a style: Gatys et al.'s neural style transfer.

    Each item minimises ``-style + content_weight * content_loss + tv_weight * total_variation`` at
    each scale in turn; a scale starts from the previous scale's result, enlarged.

    Args:
        content_image: :math:`(B, 3, H, W)` in 0..1 on any device; items are transferred one at a time
            on the backbone's device, and come back at their own size.
        backbone: vgg19 is Gatys'; ``load_backbone(..., pooling="avg")`` gives smoother results.
        style: the style score to raise, from :func:`~dream_core.style.losses.style_objective` (several
            add up to a blend); any objective works, a dream layer included.
        content_weight: strength of the content match (relative feature distance at ``content_layer``);
            the style terms are relative distances too, so the default 0.1 lets the style show
            while the subject stays (chosen by eye with MobileNetV2's ImageNet weights).
        content_layer: default: relu4_2 on VGG (see :func:`gatys_layers`).
        tv_weight: strength of the total-variation penalty (mean over pixels, see
            :func:`~dream_core.objectives.total_variation`); ``tv`` is its kind.
        steps: optimizer steps (Adam) or function evaluations (L-BFGS) per scale.
        optimizer: ``"lbfgs"`` (neural-style-pt's default) or ``"adam"``.
        learning_rate: Adam's step, in 0..1 pixel units.
        scales: coarse-to-fine scales, each :math:`\\sqrt{2}` larger (see :func:`scale_sizes`); 1 = the
            content's size only, 0 = from about 128 px up.
        init: where the first scale starts: ``"content"``, ``"noise"`` (uniform, seeded per item) or an
            image :math:`(1 \\text{ or } B, 3, H, W)`, resized.
        seed: item ``i`` draws its noise from ``seed + i``.
        original_colors: keep the content's colours, take only the style's luminance (see
            :func:`~dream_core.images.keep_colors`).
        ema: with Adam, render the result from a moving average of the iterates with this decay
            (crowsonkb uses 0.99 for long runs); 0 = off.
        mask: :math:`(H, W)`, :math:`(B, H, W)` or :math:`(B, 1, H, W)` in 0..1: where the picture may
            change (1) or must stay the content (0).
        precision: the network's precision, see :func:`~dream_core.loop.autocast_dtype`.
        progress, cancel: reported and asked at every step (every L-BFGS evaluation).

    Returns:
        :math:`(B, 3, H, W)` in 0..1, on ``content_image``'s device.
    """
    contents = check_image(content_image, "content_image")
    batch, _, height, width = contents.shape
    _check_settings(content_weight, tv_weight, tv, optimizer, learning_rate, init)
    content_layer = content_layer or gatys_layers(backbone)[0]
    objective = style - tv_weight * total_variation(tv)
    if content_weight:
        objective = objective + content_objective(backbone, contents, content_layer, content_weight)
    smallest = backbone.extractor(objective.layers).min_input_size()
    sizes = scale_sizes((height, width), scales, smallest)
    check(min(height, width) >= smallest, f"content_image: {height}x{width} is smaller than the {smallest} px "
          f"that {backbone.name} needs at these layers; enlarge it.")
    starts = None if isinstance(init, str) else check_image(init, "init_image")
    masks = None if mask is None else prepare_mask(mask, batch, (height, width)).to(backbone.device)
    autocast = autocast_dtype(precision, backbone.device)

    def transfer(item: Item) -> Tensor:
        content = item.take(contents).contiguous()
        region = None if masks is None else item.take(masks)
        if init == "content":
            picture = content
        elif init == "noise":
            picture = torch.rand(content.shape, generator=item.generator).to(item.device)
        else:
            picture = item.take(starts)
        for level, size in enumerate(sizes):
            pixels = resize(picture, size).clone()
            render = _renderer(pixels, resize(content, size), None if region is None else resize(region, size))
            at_size = objective.at(size, item.index)
            picture = optimize([pixels], render, backbone.extractor(at_size.layers), at_size, steps=steps,
                               optimizer=optimizer, lr=learning_rate, generator=item.generator, autocast=autocast,
                               progress=item.progress.part(level, len(sizes)), cancel=cancel, ema=ema)
        return keep_colors(picture, content) if original_colors else picture

    return for_each_item(batch, transfer, device=backbone.device, steps=len(sizes) * steps, seed=seed,
                         progress=progress, cancel=cancel, to=content_image.device)


def _renderer(pixels: Tensor, base: Tensor, region: Tensor | None) -> Callable[[], Tensor]:
    """The picture the network sees: the pixels in 0..1 (what is optimised is what is returned), and
    the content ``base`` outside the mask ``region``."""
    if region is None:
        return lambda: pixels.clamp(0.0, 1.0)
    return lambda: torch.lerp(base, pixels.clamp(0.0, 1.0), region)


def stylize_memory(size: tuple[int, int], backbone: Backbone, style: Objective, optimizer: str = "lbfgs",
                   content_layer: str | None = None) -> int:
    """Bytes a :func:`stylize` of one ``(H, W)`` item needs on the compute device beyond the weights:
    a :func:`~dream_core.memory.pass_memory` to the deepest style or content layer, plus the
    optimizer's state (L-BFGS keeps two images per remembered step, Adam three images)."""
    layers = style.layers | {content_layer or gatys_layers(backbone)[0]}
    state = 2 * LBFGS_HISTORY if optimizer == "lbfgs" else 3
    return pass_memory(size, backbone, layers) + state * 3 * 4 * size[0] * size[1]


def _check_settings(content_weight: float, tv_weight: float, tv: str, optimizer: str, learning_rate: float,
                    init: str | Tensor) -> None:
    check(content_weight >= 0, f"content_weight: must be 0 or more, got {content_weight}.")
    check(tv_weight >= 0, f"tv_weight: must be 0 or more, got {tv_weight}.")
    check(tv in TV_KINDS, f"tv: unknown kind {tv!r}; choose one of {', '.join(TV_KINDS)}.")
    check(optimizer in OPTIMIZERS, f"optimizer: unknown {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
    check(learning_rate > 0, f"learning_rate: must be above 0, got {learning_rate}.")
    if isinstance(init, str) and init not in INITS:
        raise DreamError(f"init: unknown {init!r}; choose one of {', '.join(INITS)}, or give an image.")
