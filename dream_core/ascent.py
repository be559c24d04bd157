"""One step of gradient ascent on the image, and the small ops it is made of.

A step: roll the image by a random shift (jitter), run the extractor, take the gradient of the
objective with respect to the image, roll it back, normalise it, optionally smooth it, scale it by the
mask, add ``step_size`` times it to the image and clamp to 0..1.

Convention: the image stays in 0..1 RGB throughout and the network normalisation is the extractor's
first op, so clamping to 0..1 here is clamping to the valid pixel range in the network's normalised
space, and ``step_size`` means the same on every backbone: the mean absolute change of a pixel per
step (with ``grad_norm="mean_abs"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .errors import check
from .memory import release_free_heap
from .features import FeatureExtractor
from .objectives import Objective
from .precision import LossScale, finite_or_zero
from .pyramid import gaussian_blur, resize

__all__ = ["ascent_step", "image_gradient", "random_shift", "normalize_gradient", "laplacian_bands", "merge_bands",
           "GRAD_NORMS"]

GRAD_NORMS = ("mean_abs", "std", "laplacian", "sign")
LAPLACIAN_BANDS = 4
_TINY = torch.finfo(torch.float32).tiny
TILE_ALIGN = 32  # tile edges on multiples of the largest total stride (pool5, Mixed_7c, layer4: 32)


def random_shift(generator: torch.Generator, jitter: int) -> tuple[int, int]:
    """A ``(dy, dx)`` shift, each uniform in ``-jitter..jitter``, drawn from a CPU generator so that the
    same seed gives the same dream on every device."""
    if jitter <= 0:
        return 0, 0
    dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
    return dy, dx


def laplacian_bands(image: Tensor, bands: int = LAPLACIAN_BANDS) -> list[Tensor]:
    """Split :math:`(B, C, H, W)` into ``bands`` band-pass images and a low-pass residual, finest first.

    Each level blurs (sigma 1), halves the size (odd sides round up) and keeps what the halved image,
    enlarged back, misses; so :func:`merge_bands` gives the input back exactly, at any size. Levels
    stop early once a side would fall below 2 px.
    """
    levels = []
    for _ in range(bands):
        height, width = image.shape[-2:]
        if min(height, width) < 4:
            break
        low = resize(gaussian_blur(image, 1.0), (math.ceil(height / 2), math.ceil(width / 2)))
        levels.append(image - resize(low, (height, width)))
        image = low
    return [*levels, image]


def merge_bands(levels: list[Tensor]) -> Tensor:
    """The inverse of :func:`laplacian_bands`."""
    image = levels[-1]
    for band in reversed(levels[:-1]):
        image = resize(image, band.shape[-2:]) + band
    return image


def normalize_gradient(grad: Tensor, mode: str = "mean_abs", inplace: bool = False) -> Tensor:
    """Scale each item's gradient to unit mean absolute value (Google, PyTorch sources) or unit std
    (Keras); or, with ``"laplacian"``, divide each of its Laplacian-pyramid bands by the band's own
    RMS before the mean-absolute scaling (lucid's ``lap_normalize``): the coarse bands, which a
    plain gradient all but lacks, then move as much as the fine ones, the cure for the
    high-frequency noise of large dreams; or, with ``"sign"``, keep only each entry's sign: every
    pixel moves by exactly the step (the L-inf steepest ascent of FGSM and PGD).

    Args:
        grad: :math:`(B, C, H, W)`.
        mode: ``"mean_abs"``, ``"std"``, ``"laplacian"`` or ``"sign"``.
        inplace: divide ``grad`` itself when it is float32 (saves a full-size copy on large images).

    Returns:
        :math:`(B, C, H, W)` float32, whatever the input precision.
    """
    check(mode in GRAD_NORMS, f"grad_norm: unknown mode {mode!r}; choose one of {', '.join(GRAD_NORMS)}.")
    grad = grad.float()
    if mode == "sign":
        return grad.sign_() if inplace else grad.sign()
    dims = tuple(range(1, grad.ndim))
    if mode == "laplacian":
        levels = [band / band.square().mean(dims, keepdim=True).sqrt().clamp_min(_TINY)
                  for band in laplacian_bands(grad)]
        grad, mode, inplace = merge_bands(levels), "mean_abs", True
    if mode == "mean_abs":  # the L1 norm's reduction never makes an |grad| copy of the whole image
        scale = torch.linalg.vector_norm(grad, 1, dims, keepdim=True) / (grad[0].numel() or 1)
    else:
        scale = grad.std(dims, keepdim=True)
    # Clamp instead of adding an epsilon: the scale is free (a gradient of 1e-12 normalises like one of 1),
    # and an all-zero gradient stays zero.
    return grad.div_(scale.clamp_min(_TINY)) if inplace else grad / scale.clamp_min(_TINY)


def ascent_step(
    image: Tensor,
    extractor: FeatureExtractor,
    objective: Objective,
    *,
    step_size: float,
    shift: tuple[int, int] = (0, 0),
    grad_norm: str = "mean_abs",
    smoothing: float = 0.0,
    mask: Tensor | None = None,
    autocast: torch.dtype | None = None,
    tile_size: int = 0,
    tile_overlap: int = 128,
    tile_align: int = TILE_ALIGN,
    loss_scale: LossScale | None = None,
    in_place: bool = False,
    view: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """One ascent step.

    Args:
        image: :math:`(B, 3, H, W)` in 0..1; not modified.
        extractor: runs the network to the layers ``objective`` reads.
        objective: the score to raise.
        step_size: how far to move, in 0..1 pixel units per unit of normalised gradient.
        shift: ``(dy, dx)`` jitter, applied before the forward pass and undone on the gradient.
        grad_norm: ``"mean_abs"`` or ``"std"`` (see :func:`normalize_gradient`).
        smoothing: sigma of the Gaussian applied to the gradient, in pixels; 0 = off. Smoothing the
            gradient removes the high-frequency noise that a pixel-space ascent otherwise paints.
        mask: :math:`(B \\text{ or } 1, 1, H, W)` in 0..1, scales the step per pixel.
        autocast: run the network in this precision (``torch.bfloat16``, ``torch.float16``); the
            objective, the gradient's normalisation and the update stay in float32.
        tile_size, tile_overlap, tile_align: compute the gradient in tiles (see :func:`image_gradient`);
            0 = whole image.
        loss_scale: the fp16 loss scaling of the run (see :class:`~dream_core.precision.LossScale`).
        in_place: write the new image into ``image``, a buffer the caller owns and no longer needs (else
            into the gradient's buffer): either way no third image-sized buffer exists at the peak.
        view: what the network sees instead of the (rolled, tiled) image, e.g. :class:`~dream_core.Cutouts`
            drawn for this step (see :func:`image_gradient`).

    Returns:
        The new image :math:`(B, 3, H, W)` and the objective's scores before the step, :math:`(B,)`.
        Where the gradient is not finite the step moves nothing.
    """
    grad, scores = image_gradient(image, extractor, objective, shift=shift, autocast=autocast, tile_size=tile_size,
                                  overlap=tile_overlap, align=tile_align, loss_scale=loss_scale, view=view)
    with torch.no_grad():
        grad = gaussian_blur(normalize_gradient(finite_or_zero(grad), grad_norm, inplace=True), smoothing)
        if mask is not None:
            grad.mul_(mask)
        step = grad.mul_(step_size)
        return (image.add_(step) if in_place else step.add_(image)).clamp_(0.0, 1.0), scores


def image_gradient(
    image: Tensor,
    extractor: FeatureExtractor,
    objective: Objective,
    *,
    shift: tuple[int, int] = (0, 0),
    autocast: torch.dtype | None = None,
    tile_size: int = 0,
    overlap: int = 128,
    align: int = TILE_ALIGN,
    loss_scale: LossScale | None = None,
    view: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """The objective's gradient with respect to ``image`` :math:`(B, 3, H, W)`, and its scores :math:`(B,)`.

    The network sees ``image`` rolled by ``shift`` (jitter), one ``(dy, dx)`` for the batch or one per
    item (batched dreaming: still one forward pass when untiled); the gradient comes back unrolled,
    aligned with ``image``.

    With ``tile_size > 0`` and an image larger than one tile, the gradient is computed tile by tile,
    as in the TensorFlow DeepDream tutorial: the image is split into a grid of *cores*; each core is
    run with ``overlap // 2`` pixels of context on each side and only its core's gradient is kept.
    Memory then depends on the tile size, not the image size. Each tile's score is weighted by its
    share of the image, so a mean-type objective gives every tile the gradient scale it has in the
    untiled image. The random roll before each step moves the tile borders, so no seam builds up.

    Convention: core edges and margins fall on multiples of ``align`` px, by default 32, the largest
    total stride of any catalogue CNN layer, so every tile samples the same grid of strided convolutions
    and poolings as the whole image would; otherwise a tile's gradient has another aliasing pattern than
    its neighbour's. A transformer's tiles are its native views (``align=1``, no overlap): exactly
    ``tile_size``, its trained size. Objectives over the whole picture (Gram style, guide matching) see
    one tile at a time.

    With a ``view`` (cutouts) the network sees ``view(image)``, :math:`(B N, 3, h, w)`: ``N`` views
    per item, scored and averaged per item; no roll, no tiles (the views are the network's size).

    The network runs in ``loss_scale``'s dtype: under fp16 it (one for the run, shared by its tiles)
    keeps the small scores of tiles from underflowing in the backward pass; by default a new one per
    call, for ``autocast``.
    """
    height, width = image.shape[-2:]
    loss_scale = loss_scale or LossScale(autocast)
    if view is not None:
        return _gradient(image, extractor, objective, 1.0, loss_scale, view)
    shifts = _per_item(shift, image.shape[0])
    tiled = tile_size > 0 and (height > tile_size or width > tile_size)
    if len(set(shifts)) > 1:  # a batch with its own roll per item
        if tiled:
            parts = [image_gradient(image[i:i + 1], extractor, objective, shift=s, autocast=autocast,
                                    tile_size=tile_size, overlap=overlap, loss_scale=loss_scale)
                     for i, s in enumerate(shifts)]
            return torch.cat([g for g, _ in parts]), torch.cat([s for _, s in parts])
        rolled = torch.cat([torch.roll(image[i:i + 1], s, dims=(2, 3)) for i, s in enumerate(shifts)])
        grad, scores = _gradient(rolled, extractor, objective, 1.0, loss_scale)
        return torch.cat([torch.roll(grad[i:i + 1], (-s[0], -s[1]), dims=(2, 3)) for i, s in enumerate(shifts)]), scores
    shift = shifts[0]
    if not tiled:
        grad, scores = _gradient(torch.roll(image, shift, dims=(2, 3)), extractor, objective, 1.0, loss_scale)
        return torch.roll(grad, (-shift[0], -shift[1]), dims=(2, 3)), scores
    # Tiles are gathered from the image with wrap-around indices and their gradients scattered back
    # unrolled, so no full-size rolled copy of the image or the gradient is ever made.
    source_rows = (torch.arange(height, device=image.device) - shift[0]) % height
    source_cols = (torch.arange(width, device=image.device) - shift[1]) % width
    grad = torch.empty_like(image)
    scores = image.new_zeros(image.shape[0])
    margin = align * math.ceil(overlap / 2 / align)
    core = max(align, align * ((tile_size - 2 * margin) // align))
    for rows, tile_rows in _spans(height, core, margin):
        for cols, tile_cols in _spans(width, core, margin):
            tile = image[..., source_rows[tile_rows, None], source_cols[None, tile_cols]]  # one gather, no strip
            tile_area = tile[0, 0].numel()
            tile_grad, tile_scores = _gradient(tile, extractor, objective, tile_area / (height * width), loss_scale)
            kept = tile_grad[..., rows.start - tile_rows.start:rows.stop - tile_rows.start,
                             cols.start - tile_cols.start:cols.stop - tile_cols.start]
            grad[..., source_rows[rows, None], source_cols[None, cols]] = kept
            core_area = (rows.stop - rows.start) * (cols.stop - cols.start)
            scores += tile_scores * (core_area / tile_area)  # margins are scored by their own tile
    if image.device.type == "cpu":
        release_free_heap()  # the tiles' freed activations would otherwise stay in the process, fragmented
    return grad, scores


def _per_item(shift: tuple[int, int] | Sequence[tuple[int, int]], batch: int) -> list[tuple[int, int]]:
    """One ``(dy, dx)`` shift, or one per batch item, as a list of ``batch`` shifts."""
    if len(shift) == 2 and all(isinstance(v, int) for v in shift):
        return [tuple(shift)] * batch
    shifts = [tuple(s) for s in shift]
    check(len(shifts) == batch, f"shift: {len(shifts)} shifts for a batch of {batch}.")
    return shifts


def _spans(length: int, core: int, margin: int) -> list[tuple[slice, slice]]:
    """``(core, tile)`` slices covering ``0..length``: cores of ``core`` px (the last one shorter), each
    tile its core with ``margin`` px each side, clipped at the image edges. Without margins (a ViT's
    tiles, see :func:`~dream_core.deepdream`) a tile that the edge cuts short takes context from
    inside instead, to the full ``core``: a ViT always sees its native size (a last core of 2 px
    once made a tile smaller than a patch). With margins (CNNs) a short edge tile is fine, and its
    start stays on the 32 px grid."""
    edges = [*range(0, length, core), length]
    spans = []
    for a, b in zip(edges, edges[1:]):
        start, stop = max(0, a - margin), min(length, b + margin)
        if margin == 0 and stop - start < core:
            start = max(0, stop - core)
        spans.append((slice(a, b), slice(start, stop)))
    return spans


def _gradient(image: Tensor, extractor: FeatureExtractor, objective: Objective, weight: float,
              loss_scale: LossScale, view: Callable[[Tensor], Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """The gradient of ``weight * objective`` at ``image`` and its scores, the network in the scale's
    precision; with a ``view``, each item's score is the mean over its views."""
    leaf = image.detach().requires_grad_(True)

    def scores() -> Tensor:
        if view is None:
            return objective(extractor(leaf)) * weight
        return objective(extractor(view(leaf))).view(leaf.shape[0], -1).mean(1) * weight

    with torch.enable_grad():
        values, (grad,) = loss_scale.gradients(scores, [leaf], leaf.device)
    return grad, values.detach()
