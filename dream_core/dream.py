"""``deepdream()``: the driver over batch items, octaves and steps."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .ascent import ascent_step, random_shift
from .backbones import Backbone
from .errors import DreamCancelled, check
from .images import check_image, prepare_mask
from .objectives import Objective
from .pyramid import dream_octaves, octave_sizes, resize

__all__ = ["deepdream", "Progress", "Cancel"]

Progress = Callable[[int, int, Tensor], None]
"""``progress(step, total, preview)``: after every step; ``preview`` is the current item at the current
octave, :math:`(3, h, w)` in 0..1 on the compute device. Read it, never modify it."""
Cancel = Callable[[], bool]
"""``cancel()`` is asked before every step; returning True stops the dream with :class:`DreamCancelled`
(a host's own interrupt exception raised from it passes through unchanged)."""

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
        progress: called after every step, see :data:`Progress`.
        cancel: asked before every step, see :data:`Cancel`.

    Returns:
        :math:`(B, 3, H, W)` in 0..1, on ``image``'s device.
    """
    original = check_image(image)
    _check_settings(steps, step_size, jitter, smoothing, max_loss)
    batch, _, height, width = original.shape
    extractor = backbone.extractor(objective.layers)
    smallest = extractor.min_input_size()
    check(min(height, width) >= smallest,
          f"image: {height}x{width} is too small for {extractor.deepest} of {backbone.name}, which needs at "
          f"least {smallest}x{smallest}; upscale the image or choose an earlier layer.")
    sizes = octave_sizes((height, width), octaves, octave_scale, max(MIN_OCTAVE_SIZE, smallest))
    masks = None if mask is None else prepare_mask(mask, batch, (height, width)).to(backbone.device)
    total, done = batch * len(sizes) * steps, 0

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
                current, scores = ascent_step(
                    current, extractor, objective, step_size=step_size, shift=random_shift(generator, jitter),
                    grad_norm=grad_norm, smoothing=sigma, mask=level_mask)
                reached = max_loss is not None and bool((scores > max_loss).all())
                done += steps - step if reached else 1  # skipped steps count as done for the bar
                if progress is not None:
                    progress(done, total, current[0])
                if reached:
                    break
            return current

        item = original[index:index + 1].to(backbone.device)
        dreamed = dream_octaves(item, sizes, dream_level, detail, blend)
        if item_mask is not None:
            dreamed = torch.where(item_mask > 0, dreamed, item)
        return dreamed

    return torch.cat([dream_item(index) for index in range(batch)]).to(image.device)


def _check_settings(steps: int, step_size: float, jitter: int, smoothing: float, max_loss: float | None) -> None:
    check(steps >= 0, f"steps: must be 0 or more, got {steps}.")
    check(math.isfinite(step_size) and step_size >= 0, f"step_size: must be a finite number >= 0, got {step_size}.")
    check(jitter >= 0, f"jitter: must be 0 or more pixels, got {jitter}.")
    check(smoothing >= 0, f"smoothing: must be 0 (off) or a positive sigma, got {smoothing}.")
    check(max_loss is None or math.isfinite(max_loss), f"max_loss: must be a finite number, got {max_loss}.")

