"""``deepdream()``: the driver over batch items and octaves, on the shared :class:`~dream_core.loop.Ascent` loop."""

from __future__ import annotations

import logging
import math
from collections.abc import Collection
from dataclasses import replace

import torch
from torch import Tensor

from .ascent import TILE_ALIGN
from .backbones import Backbone
from .cutouts import Cutouts
from .errors import check
from .images import check_image, prepare_mask
from .loop import Ascent, Cancel, Item, Progress, ProgressFn, TilePolicy, autocast_dtype, for_each_item
from .memory import pass_memory
from .objectives import Objective
from .pyramid import dream_octaves, octave_sizes, resize

log = logging.getLogger("DeepDreamNodes")

__all__ = ["deepdream", "deepdream_memory"]

MIN_OCTAVE_SIZE = 32


def deepdream(
    image: Tensor,
    backbone: Backbone,
    objective: Objective,
    *,
    steps: int = 10,
    step_size: float = 0.01,
    jitter: int = 32,
    octaves: int = 4,
    octave_scale: float = 1.4,
    detail: str = "reinject",
    blend: float = 0.6,
    grad_norm: str = "mean_abs",
    smoothing: float = 0.0,
    mask: Tensor | None = None,
    max_loss: float | None = None,
    seed: int = 0,
    precision: str = "auto",
    tile_size: int = 512,
    tile_overlap: int = 128,
    tile_above: int = 1024,
    batch_size: int = 0,
    progress: Progress | ProgressFn | None = None,
    cancel: Cancel | None = None,
) -> Tensor:
    """Dream every image of a batch: gradient ascent of ``objective`` over an octave pyramid.

    Defaults follow Google's original notebook (10 steps per octave, 4 octaves of scale 1.4, jitter 32,
    gradient normalised by its mean absolute value).

    Args:
        image: :math:`(B, 3, H, W)` RGB in 0..1, on any device; each item is moved to the backbone's
            device in turn and its dream moved back, so the batch never sits on the GPU whole.
        backbone: the network, from :func:`dream_core.load_backbone`.
        objective: what to maximise, e.g. ``l2("inception4c") + 0.5 * l2("inception4d")``; it is taken
            ``at`` each octave's size and item (styles and contents follow the octave).
        steps: ascent steps per octave; 0 returns the image unchanged (in ``reinject`` mode).
        step_size: mean absolute pixel change per step, 0..1 pixel units.
        jitter: the largest random roll in pixels, each step.
        octaves: pyramid levels; fewer are used (with a warning) where the image is too small.
        octave_scale: size ratio between neighbouring octaves.
        detail: ``"reinject"`` (original DeepDream) or ``"blend"`` (the VGG19 source), see ``pyramid``.
        blend: weight of the lower octave's dream in ``"blend"`` mode.
        grad_norm: ``"mean_abs"`` or ``"std"``.
        smoothing: sigma (pixels) of the gradient blur at the smallest octave; it grows with the octave
            size (``smoothing * octave_scale**level``), so it covers the same part of the picture at
            every octave. 0 = off.
        mask: :math:`(H, W)`, :math:`(B, H, W)` or :math:`(B, 1, H, W)` in 0..1: where the image may change;
            soft values scale the step, zeros leave pixels exactly as they were.
        max_loss: stop an octave early once the objective exceeds this (the Keras source's ``max_loss``).
        seed: item ``i`` of the batch uses the jitter stream of ``seed + i``.
        precision: ``"auto"`` (half on CUDA, fp32 elsewhere), ``"fp32"``, ``"bf16"`` or ``"fp16"`` for the
            network's forward and backward (see
            :func:`~dream_core.loop.autocast_dtype`); the update is always float32.
        tile_size, tile_overlap: tiles for the gradient of octaves larger than ``tile_above`` px on
            their longer side, so memory stays bounded at any image size (see
            :func:`dream_core.ascent.image_gradient`); ``tile_size=0`` never tiles. A ViT (see
            :attr:`~dream_core.Backbone.largest_view`) sees octaves larger than its native size in
            native-size tiles without overlap; ``tile_size=0`` dreams them whole through interpolated
            position embeddings instead. On CUDA
            out-of-memory a step is retried with tiles, then with smaller tiles, with one warning.
        batch_size: items dreamed together, one forward pass for all, each with its own roll. A step
            equals the lone step to float rounding; over many steps max-pooling ties, which rounding
            can break the other way, move single pixels, so dreams agree on average (a mean
            difference of 3e-3 after 12 steps at 256 px). 0 = automatic: one at a time on the CPU,
            where that is as fast, and on CUDA as many as fit in the free memory. Objectives made from
            references (styles, contents) and ``max_loss`` always run one item at a time.
        progress: a callback ``(step, total, preview)`` called after every step, or a
            :class:`~dream_core.loop.Progress` part of a larger job.
        cancel: asked before every step, see :data:`~dream_core.loop.Cancel`.

    Returns:
        :math:`(B, 3, H, W)` in 0..1, on ``image``'s device.
    """
    original = check_image(image)
    _check_settings(steps, step_size, jitter, smoothing, max_loss)
    check_tile_size(tile_size, tile_overlap)
    tile_size, tile_overlap, tile_above, tile_align = _tiles_for(backbone, tile_size, tile_overlap, tile_above)
    batch, _, height, width = original.shape
    given_size = (height, width)
    extractor = backbone.extractor(objective.layers)
    smallest = extractor.min_input_size()
    (height, width), sizes = _dream_sizes(given_size, smallest, octaves, octave_scale,
                                          f"{extractor.deepest} of {backbone.name}")
    masks = None if mask is None else prepare_mask(mask, batch, given_size).to(backbone.device)
    ascent = Ascent(extractor, objective, step_size=step_size, jitter=jitter, grad_norm=grad_norm,
                    autocast=autocast_dtype(precision, backbone.device), tile_overlap=tile_overlap,
                    tile_align=tile_align,
                    tiles=TilePolicy(tile_size, tile_above, minimum=2 * tile_overlap + max(32, smallest),
                                     image_side=max(height, width)),
                    cancel=cancel, max_loss=max_loss)

    def dream_items(item: Item) -> Tensor:
        items_mask = None if masks is None else item.take(masks)

        def dream_level(start: Tensor, level: int) -> Tensor:
            level_mask = None if items_mask is None else resize(items_mask, start.shape[-2:])
            level_ascent = replace(ascent, objective=objective.at(tuple(start.shape[-2:]), item.index),
                                   progress=item.progress)
            return level_ascent.run(start, steps, item.generator if len(item.indices) == 1 else item.generators,
                                    smoothing=smoothing * octave_scale**level, mask=level_mask,
                                    in_place=start.untyped_storage().data_ptr() != caller)

        # Contiguous: a ComfyUI IMAGE arrives as a channels-last view, and every kornia op on one makes
        # extra full-size copies (a 2048 px dream peaked at 919 MB instead of 536 MB). A copy made here
        # (another device, or that layout) is ours: it becomes the full-size octave's start.
        start = resize(item.take(original).contiguous(), (height, width))
        caller = original.untyped_storage().data_ptr()  # never dreamed in place
        ours = start.untyped_storage().data_ptr() != caller
        dreamed = dream_octaves(start, sizes, dream_level, detail, blend, overwrite=ours)
        if (height, width) != given_size:
            dreamed = resize(dreamed, given_size).clamp(0.0, 1.0)
        if items_mask is not None:
            dreamed = torch.where(items_mask > 0, dreamed, item.take(original))
        return dreamed

    per_chunk = _chunk_size(batch_size, batch, backbone, objective, max_loss,
                            lambda: deepdream_memory(given_size, backbone, objective, octaves=octaves,
                                                     octave_scale=octave_scale, tile_size=tile_size,
                                                     tile_overlap=tile_overlap, tile_above=tile_above))
    return for_each_item(batch, dream_items, device=backbone.device, steps=len(sizes) * steps, seed=seed,
                         progress=progress, cancel=cancel, chunk=per_chunk, to=image.device)


def deepdream_memory(
    size: tuple[int, int],
    backbone: Backbone,
    objective: Objective | Collection[str],
    *,
    octaves: int = 4,
    octave_scale: float = 1.4,
    tile_size: int = 512,
    tile_overlap: int = 128,
    tile_above: int = 1024,
    views: Cutouts | None = None,
) -> int:
    """Bytes a :func:`deepdream` of one ``(H, W)`` item needs on the compute device beyond the weights
    (also the entry of :func:`~dream_core.dream_zoom` and :func:`~dream_core.dream_video`, which dream
    frame by frame): a :func:`~dream_core.memory.pass_memory` whose network sees the largest input the
    dream runs at once, an untiled octave or one tile, or all its cutouts. ``objective`` may be just the
    layer names it reads, with its ``views``. Per item: a batched dream on CUDA takes as many items as
    fit in the free memory.
    """
    check_tile_size(tile_size, tile_overlap)
    tile_size, tile_overlap, tile_above, _ = _tiles_for(backbone, tile_size, tile_overlap, tile_above)
    layers = objective.layers if isinstance(objective, Objective) else objective
    _, sizes = _dream_sizes(size, backbone.extractor(layers).min_input_size(), octaves, octave_scale, None)
    tiles = TilePolicy(tile_size, tile_above, image_side=max(sizes[-1]))
    largest = max(tiles.for_size(s) ** 2 if tiles.for_size(s) else s[0] * s[1] for s in sizes)
    views = objective.views if isinstance(objective, Objective) else views
    if views is not None:  # every step sees the cutouts, whatever the size
        largest = views.count * views.size**2
    return pass_memory(sizes[-1], backbone, layers, network_pixels=largest)


def _tiles_for(backbone: Backbone, tile_size: int, tile_overlap: int,
               tile_above: int) -> tuple[int, int, int, int]:
    """The tiling a dream through ``backbone`` uses, ``(size, overlap, above, align)``: as asked, on the
    32 px grid, except that a network with a :attr:`~dream_core.Backbone.largest_view` (a ViT) sees
    larger octaves in tiles of exactly that size (336 px for a 336 px tower, not a multiple of 32),
    without overlap (its attention is global within a tile, and the jitter moves the borders)."""
    view = backbone.largest_view
    if view is None or tile_size == 0:
        return tile_size, tile_overlap, tile_above, TILE_ALIGN
    return view, 0, min(tile_above, view), 1


def _chunk_size(batch_size: int, batch: int, backbone: Backbone, objective: Objective, max_loss: float | None,
                memory_per_item) -> int:
    """How many items to dream together (see ``batch_size`` in :func:`deepdream`)."""
    check(batch_size >= 0, f"batch_size: must be 0 (automatic) or more, got {batch_size}.")
    if objective.per_image or max_loss is not None:
        return 1  # per-item objectives, or an early stop per item
    if batch_size:
        return min(batch_size, batch)
    device = backbone.device
    if device.type != "cuda":
        return 1
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, min(batch, int(0.8 * free // max(memory_per_item(), 1))))


def check_tile_size(tile_size: int, tile_overlap: int = 128) -> None:
    """The tile sizes :func:`deepdream` accepts: 0 (never tile) or at least ``2 * tile_overlap + 32``."""
    smallest = 2 * tile_overlap + TILE_ALIGN
    check(tile_size == 0 or tile_size >= smallest,
          f"tile_size: must be 0 (off) or at least 2 * tile_overlap + 32 = {smallest}, got {tile_size}.")


def _dream_sizes(size: tuple[int, int], smallest: int, octaves: int, octave_scale: float,
                 warn_for: str | None) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """The size to dream at (enlarged when below ``smallest``) and its octave sizes, smallest first."""
    height, width = size
    if min(height, width) >= smallest:
        return size, octave_sizes(size, octaves, octave_scale, max(MIN_OCTAVE_SIZE, smallest),
                                  warn=warn_for is not None)
    factor = smallest / min(height, width)  # dream an enlarged copy, hand back the size given
    enlarged = (math.ceil(height * factor), math.ceil(width * factor))
    sizes = octave_sizes(enlarged, octaves, octave_scale, max(MIN_OCTAVE_SIZE, smallest), warn=False)
    if warn_for:
        log.warning("image: %dx%d is smaller than the %d px that %s needs; dreaming it enlarged %.1fx "
                    "(%d of the %d octaves) and handing it back at %dx%d.", height, width, smallest, warn_for,
                    factor, len(sizes), octaves, height, width)
    return enlarged, sizes


def _check_settings(steps: int, step_size: float, jitter: int, smoothing: float, max_loss: float | None) -> None:
    check(steps >= 0, f"steps: must be 0 or more, got {steps}.")
    check(math.isfinite(step_size) and step_size >= 0, f"step_size: must be a finite number >= 0, got {step_size}.")
    check(jitter >= 0, f"jitter: must be 0 or more pixels, got {jitter}.")
    check(smoothing >= 0, f"smoothing: must be 0 (off) or a positive sigma, got {smoothing}.")
    check(max_loss is None or math.isfinite(max_loss), f"max_loss: must be a finite number, got {max_loss}.")
