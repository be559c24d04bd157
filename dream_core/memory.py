"""Memory: handing freed host memory back to the system.

A tiled step on the CPU allocates and frees a tile's activations many times (tens of MB each, in
sizes that change with the tile). glibc keeps such freed blocks in its heap, and over the steps
the heap fragments and grows: at 2048 px the resident set between steps rose from 240 to 487 MB
over a default dream while the live tensors stayed the same. Trimming after each tiled step keeps
the resident set to what is live.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["release_free_heap"]


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, Windows, musl)."""
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


def release_free_heap() -> bool:
    """Return the C heap's free pages to the system (glibc ``malloc_trim(0)``); True if it could.

    Cheap next to a tiled step (the heap is walked once; the pages come back zeroed on next use),
    and it never touches live memory. A no-op where the C library has no ``malloc_trim``.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
