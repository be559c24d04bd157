"""The octave pyramid: dream small first, then carry what was dreamed up to the next size.

Two ways to carry it, both from the sources:

- ``"reinject"`` (Google's original DeepDream, the Keras source's "lost detail"): every level starts
  from the *original* image at that size plus the dreamed detail (dreamed minus original) of the level
  below, upscaled. With no steps taken the detail stays zero and the original comes back exactly.
- ``"blend"`` (the VGG19 source): each level is the original at that size, blurred and downscaled
  from the level above, mixed with the upscaled dream of the level below: ``(1 - blend) * base +
  blend * dream``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from kornia.filters import gaussian_blur2d
from kornia.geometry.transform import resize as _kornia_resize
from torch import Tensor

from .errors import check

__all__ = ["OctaveSettings", "octave_sizes", "resize", "resize_longer_side", "gaussian_blur", "dream_octaves", "DETAIL_MODES"]

log = logging.getLogger("DeepDreamNodes")
DETAIL_MODES = ("reinject", "blend")
BLEND_BLUR_SIGMA = 2.0  # the VGG19 source blurs with a radius-2 Gaussian before each downscale


@dataclass(frozen=True)
class OctaveSettings:
    """The pyramid part of a dream, passed as ``deepdream(..., **asdict(settings))``."""

    octaves: int = 4
    octave_scale: float = 1.4
    detail: str = "reinject"
    blend: float = 0.6


def octave_sizes(size: tuple[int, int], octaves: int, scale: float, min_size: int = 32,
                 warn: bool = True) -> list[tuple[int, int]]:
    """Sizes of the pyramid levels, smallest first; the last one is ``size``.

    Args:
        size: ``(H, W)`` of the image.
        octaves: number of levels wanted (1 = no pyramid).
        scale: ratio between neighbouring levels, > 1.
        min_size: the shorter side of every level stays at least this large.
        warn: log a warning when levels are dropped (off for planning, e.g. a memory estimate).

    Convention: level ``i`` below the top has sides ``round(side / scale**i)``. Levels whose shorter
    side would fall below ``min_size`` are dropped with a warning, never an error.

    Example:
        >>> octave_sizes((256, 384), 3, 2.0)
        [(64, 96), (128, 192), (256, 384)]
    """
    check(octaves >= 1, f"octaves: need at least 1, got {octaves}.")
    check(scale > 1.0 or octaves == 1, f"octave_scale: must be above 1 to shrink each octave, got {scale}.")
    height, width = size
    sizes = []
    for level in range(octaves):
        shrink = scale**level
        level_size = (max(1, round(height / shrink)), max(1, round(width / shrink)))
        if level > 0 and min(level_size) < min_size:
            if warn:
                log.warning("octaves: %dx%d allows %d of the %d octaves asked for (the smallest level must "
                            "stay at least %d px); dreaming with %d.", height, width, level, octaves, min_size, level)
            break
        sizes.append(level_size)
    return sizes[::-1]


def resize(image: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of ``(B, C, H, W)`` to ``size``, antialiased when shrinking; a no-op at the same size.

    Shrinking blurs the input at its own size first, which takes several input-sized temporaries (the
    padded copy and the output of each blur pass): it runs one channel at a time, so they are a
    third of that (the same result: the blur is per channel). At 4096 px this was the peak of a
    whole dream, each octave's base made from the full-size picture.
    """
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    shrinking = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    if not shrinking:
        return _kornia_resize(image, size, interpolation="bilinear", align_corners=False)
    return torch.cat([_kornia_resize(image[:, c:c + 1], size, interpolation="bilinear", align_corners=False,
                                     antialias=True) for c in range(image.shape[1])], dim=1)


def resize_longer_side(image: Tensor, side: int) -> Tensor:
    """Resize :math:`(B, C, H, W)` so that its longer side is ``side`` px, keeping the aspect ratio.

    Example:
        >>> resize_longer_side(torch.rand(1, 3, 300, 400), 200).shape
        torch.Size([1, 3, 150, 200])
    """
    height, width = image.shape[-2:]
    factor = side / max(height, width)
    return resize(image, (max(1, round(height * factor)), max(1, round(width * factor))))


def gaussian_blur(image: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of :math:`(B, C, H, W)`; ``sigma <= 0`` returns the input unchanged.

    The kernel spans 3 sigma each side, capped to what reflect padding allows at small sizes.
    """
    if sigma <= 0:
        return image
    kernel = min(2 * math.ceil(3 * sigma) + 1, 2 * (min(image.shape[-2:]) // 2) - 1)
    return image if kernel < 3 else gaussian_blur2d(image, kernel, (sigma, sigma), border_type="reflect")


def dream_octaves(
    image: Tensor,
    sizes: list[tuple[int, int]],
    dream_level: Callable[[Tensor, int], Tensor],
    detail: str = "reinject",
    blend: float = 0.6,
    overwrite: bool = False,
) -> Tensor:
    """Run ``dream_level(image_at_level, level)`` from the smallest size to the largest.

    Args:
        image: :math:`(B, C, H, W)`, the original; ``sizes[-1]`` must be its size.
        sizes: level sizes, smallest first (see :func:`octave_sizes`).
        dream_level: dreams one level and returns the image at the same size. The start it is given is
            this function's own tensor, which it may dream in place, except for a lone level without
            ``overwrite``: then it is ``image`` itself. What it returns below full size becomes this
            function's (the detail is computed in it).
        detail: ``"reinject"`` or ``"blend"`` (see the module docstring).
        blend: weight of the upscaled dream in ``"blend"`` mode, 0..1 (the source uses 0.6).
        overwrite: ``image`` is the caller's own copy, which may become the full-size level's start:
            one image-sized buffer fewer while the largest level is dreamed.

    Returns:
        :math:`(B, C, H, W)`, the dream at full size.
    """
    check(detail in DETAIL_MODES, f"detail: unknown mode {detail!r}; choose one of {', '.join(DETAIL_MODES)}.")
    check(0.0 <= blend <= 1.0, f"blend: must be within 0..1, got {blend}.")
    check(tuple(sizes[-1]) == tuple(image.shape[-2:]),
          f"sizes: the last level {sizes[-1]} must be the image size {tuple(image.shape[-2:])}.")
    if detail == "reinject":
        carried = None  # the dreamed detail of the level below
        for level, size in enumerate(sizes):
            start = resize(image, size)  # a new tensor below full size; at full size the image itself
            if carried is not None:
                upscaled = resize(carried, size)
                start = start + upscaled if start is image and not overwrite else start.add_(upscaled)
                del upscaled  # kept, it would live through the whole level: one image-sized buffer
            carried = None  # the smaller level is not needed while this one is dreamed
            dreamed = dream_level(start, level)
            if level < len(sizes) - 1:  # the detail, against the base made again: kept, it would cost a buffer
                carried = dreamed.sub_(resize(image, size))
        return dreamed
    bases = [image]
    for size in reversed(sizes[:-1]):
        bases.append(resize(gaussian_blur(bases[-1], BLEND_BLUR_SIGMA), size))
    dreamed = None
    for level, base in enumerate(reversed(bases)):
        start = base if dreamed is None else torch.lerp(base, resize(dreamed, base.shape[-2:]), blend)
        dreamed = dream_level(start, level)
    return dreamed
