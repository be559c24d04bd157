"""Memory: what a run needs on its device, and handing freed host memory back to the system.

Working sets: every driver has one entry that says how many bytes one item's run needs beyond the
weights, for a host to make room (ComfyUI frees other models) and for automatic batching:
:func:`pass_memory` for the drivers that run one gradient pass at a time at the picture's size
(class visualisation, fooling, feature inversion, feature visualisation), built on by
:func:`~dream_core.deepdream_memory` (octaves and tiles; zoom and video dream with it),
:func:`~dream_core.stylize_memory` (optimizer state) and :func:`~dream_core.attribution_memory`
(chunks of noisy or path samples).

A tiled step on the CPU allocates and frees a tile's activations many times (tens of MB each, in
sizes that change with the tile). glibc keeps such freed blocks in its heap, and over the steps
the heap fragments and grows: at 2048 px the resident set between steps rose from 240 to 487 MB
over a default dream while the live tensors stayed the same. Trimming after each tiled step keeps
the resident set to what is live.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Collection

from .backbones import Backbone

__all__ = ["IMAGE_COPIES", "pass_memory", "release_free_heap"]

IMAGE_COPIES = 6
"""Float copies of the picture a run holds at most: original, base, dream, gradient, mask, a resize in flight."""


def pass_memory(size: tuple[int, int], backbone: Backbone, layers: Collection[str], inputs: int = 1,
                network_pixels: int | None = None) -> int:
    """Bytes a gradient pass at a picture of ``size`` ``(H, W)`` needs beyond the weights.

    The network's activations to the deepest of ``layers`` (measured bytes per pixel, see
    :meth:`~dream_core.features.FeatureExtractor.bytes_per_pixel`) for ``inputs`` pictures sent at
    once, each of ``network_pixels`` pixels (default: the whole picture; a tile's when tiled), plus
    :data:`IMAGE_COPIES` float copies of the picture.
    """
    pixels = size[0] * size[1]
    network = backbone.extractor(layers).bytes_per_pixel() * (pixels if network_pixels is None else network_pixels)
    return int(inputs * network + IMAGE_COPIES * 3 * 4 * pixels)


TRIM_OPT_OUT = "DEEPDREAM_NO_HEAP_TRIM"
"""Set this environment variable (to anything) to never trim the heap."""


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim`` from the symbols already loaded in this process (no process is started to
    find the C library), or None where there is none (macOS, Windows, musl)."""
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:
        return None


def release_free_heap() -> bool:
    """Return the C heap's free pages to the system (glibc ``malloc_trim(0)``); True if it could.

    Cheap next to a tiled step (the heap is walked once; the pages come back zeroed on next use),
    and it never touches live memory. A no-op where the C library has no ``malloc_trim``, when
    ``$DEEPDREAM_NO_HEAP_TRIM`` is set, and in effect under another allocator preloaded (tcmalloc,
    jemalloc: glibc's heap then holds nothing to give back).
    """
    trim = None if os.environ.get(TRIM_OPT_OUT) else _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
