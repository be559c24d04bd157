"""``deepdream()``: the driver over batch items, octaves and steps."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from .ascent import ascent_step, random_shift
from .backbones import Backbone
from .errors import DreamCancelled, check
from .images import check_image, prepare_mask
from .objectives import Objective
from .pyramid import dream_octaves, octave_sizes, resize

log = logging.getLogger("DeepDreamNodes")

__all__ = ["deepdream", "Progress", "Cancel"]

Progress = Callable[[int, int, Tensor], None]
"""``progress(step, total, preview)``: after every step; ``preview`` is the current item at the current
octave, :math:`(3, h, w)` in 0..1 on the compute device. Read it, never modify it."""
Cancel = Callable[[], bool]
"""``cancel()`` is asked before every step; returning True stops the dream with :class:`DreamCancelled`
(a host's own interrupt exception raised from it passes through unchanged)."""

MIN_OCTAVE_SIZE = 32
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` (``"fp32"``, ``"bf16"``, ``"fp16"``) on ``device``.

    Convention: fp32 is the default everywhere. bf16 roughly halves a step on CPUs with native bf16
    (AVX512-BF16, AMX) and on GPUs, but changes the picture: after 10 steps its dream differs from
    the fp32 one by about a third of the dream's own change (``dream_core.bench`` README section).
    It is several times slower on CPUs without native bf16. fp16 is CUDA-only.
    """
    check(precision in PRECISIONS, f"precision: unknown {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    check(precision != "fp16" or device.type == "cuda", "precision: fp16 needs a CUDA device; use bf16 or fp32.")
    return PRECISIONS[precision]


@contextmanager
def _tuned_for(device: torch.device) -> Iterator[None]:
    """cuDNN autotuning for the length of a dream (unless the user asked for determinism), restored after."""
    if device.type != "cuda" or torch.backends.cudnn.deterministic:
        yield
        return
    with torch.backends.cudnn.flags(enabled=True, benchmark=True, deterministic=False,
                                    allow_tf32=torch.backends.cudnn.allow_tf32):
        yield


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
    precision: str = "fp32",
    tile_size: int = 512,
    tile_overlap: int = 128,
    tile_above: int = 1024,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> Tensor:
    """Dream every image of a batch: gradient ascent of ``objective`` over an octave pyramid.

    Defaults follow Google's original notebook (10 steps per octave, 4 octaves of scale 1.4, jitter 32,
    gradient normalised by its mean absolute value).

    Args:
        image: :math:`(B, 3, H, W)` RGB in 0..1, on any device; the dream runs on the backbone's device.
        backbone: the network, from :func:`dream_core.load_backbone`.
        objective: what to maximise, e.g. ``l2("inception4c") + 0.5 * l2("inception4d")``.
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
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` for the network's forward and backward (see
            :func:`autocast_dtype`); the update is always float32.
        tile_size, tile_overlap: tiles for the gradient of octaves larger than ``tile_above`` px on
            their longer side, so memory stays bounded at any image size (see
            :func:`dream_core.ascent.image_gradient`); ``tile_size=0`` never tiles. On CUDA
            out-of-memory a step is retried with tiles, then with smaller tiles, with one warning.
        progress: called after every step, see :data:`Progress`.
        cancel: asked before every step, see :data:`Cancel`.

    Returns:
        :math:`(B, 3, H, W)` in 0..1, on ``image``'s device.
    """
    original = check_image(image)
    _check_settings(steps, step_size, jitter, smoothing, max_loss)
    check(tile_size == 0 or tile_size >= 2 * tile_overlap + 32,
          f"tile_size: must be 0 (off) or at least 2 * tile_overlap + 32 = {2 * tile_overlap + 32}, got {tile_size}.")
    batch, _, height, width = original.shape
    given_size = (height, width)
    extractor = backbone.extractor(objective.layers)
    smallest = extractor.min_input_size()
    if min(height, width) < smallest:  # dream an enlarged copy, hand back the size given
        factor = smallest / min(height, width)
        log.warning("image: %dx%d is smaller than the %d px that %s of %s needs; dreaming it enlarged %.1fx.",
                    height, width, smallest, extractor.deepest, backbone.name, factor)
        height, width = math.ceil(height * factor), math.ceil(width * factor)
    sizes = octave_sizes((height, width), octaves, octave_scale, max(MIN_OCTAVE_SIZE, smallest))
    masks = None if mask is None else prepare_mask(mask, batch, given_size).to(backbone.device)
    autocast = autocast_dtype(precision, backbone.device)
    total, done = batch * len(sizes) * steps, 0
    tiles = TilePolicy(tile_size, tile_above, minimum=2 * tile_overlap + max(32, smallest))

    def dream_item(index: int) -> Tensor:
        generator = torch.Generator().manual_seed((seed + index) % 2**64)
        item_mask = None if masks is None else masks[index if masks.shape[0] > 1 else 0].unsqueeze(0)

        def dream_level(start: Tensor, level: int) -> Tensor:
            nonlocal done
            level_mask = None if item_mask is None else resize(item_mask, start.shape[-2:])
            sigma = smoothing * octave_scale**level
            current = start
            for step in range(steps):
                if cancel is not None and cancel():
                    raise DreamCancelled(f"dream cancelled at step {done} of {total}")
                shift = random_shift(generator, jitter)
                current, scores = tiles.run(
                    ascent_step, current, extractor, objective, step_size=step_size, shift=shift,
                    grad_norm=grad_norm, smoothing=sigma, mask=level_mask, autocast=autocast,
                    tile_overlap=tile_overlap)
                reached = max_loss is not None and bool((scores > max_loss).all())
                done += steps - step if reached else 1  # skipped steps count as done for the bar
                if progress is not None:
                    progress(done, total, current[0])
                if reached:
                    break
            return current

        item = original[index:index + 1].to(backbone.device)
        dreamed = dream_octaves(resize(item, (height, width)), sizes, dream_level, detail, blend)
        if (height, width) != given_size:
            dreamed = resize(dreamed, given_size).clamp(0.0, 1.0)
        if item_mask is not None:
            dreamed = torch.where(item_mask > 0, dreamed, item)
        return dreamed

    with _tuned_for(backbone.device):
        return torch.cat([dream_item(index) for index in range(batch)]).to(image.device)


class TilePolicy:
    """Which tile size a step at a given size uses, and the smaller tiles to fall back to on out-of-memory.

    Images up to ``tile_above`` px (longer side) run whole; larger ones in ``tile_size`` tiles. When a
    step runs out of GPU memory, it is retried untiled -> ``tile_size`` tiles -> half that, down to
    ``minimum``, and the smaller size is kept for the rest of the dream; the first fallback is logged.
    """

    def __init__(self, tile_size: int, tile_above: int, minimum: int) -> None:
        self.tile_size, self.tile_above, self.minimum = tile_size, tile_above, minimum
        self.forced: int | None = None  # set by a fallback, then used for every size
        self.warned = False

    def for_size(self, size: tuple[int, int]) -> int:
        if self.forced is not None:
            return self.forced
        return self.tile_size if self.tile_size and max(size) > self.tile_above else 0

    def run(self, step: Callable[..., tuple[Tensor, Tensor]], image: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        """``step(image, *args, tile_size=..., **kwargs)`` with this policy's tile size, retried on out-of-memory."""
        size = tuple(image.shape[-2:])
        while True:
            tile = self.for_size(size)
            try:
                return step(image, *args, tile_size=tile, **kwargs)
            except torch.OutOfMemoryError:
                smaller = (self.tile_size or 512) if tile == 0 else tile // 2
                if smaller < self.minimum:
                    raise
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if not self.warned:
                    log.warning("out of GPU memory at %dx%d; continuing with %d px tiles (slower, same picture).",
                                size[0], size[1], smaller)
                    self.warned = True
                self.forced = smaller


def _check_settings(steps: int, step_size: float, jitter: int, smoothing: float, max_loss: float | None) -> None:
    check(steps >= 0, f"steps: must be 0 or more, got {steps}.")
    check(math.isfinite(step_size) and step_size >= 0, f"step_size: must be a finite number >= 0, got {step_size}.")
    check(jitter >= 0, f"jitter: must be 0 or more pixels, got {jitter}.")
    check(smoothing >= 0, f"smoothing: must be 0 (off) or a positive sigma, got {smoothing}.")
    check(max_loss is None or math.isfinite(max_loss), f"max_loss: must be a finite number, got {max_loss}.")

