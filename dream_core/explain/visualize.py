"""What a classifier wants to see: class visualisation by regularised gradient ascent from noise."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from ..backbones import LOGITS, Backbone
from ..errors import check
from ..images import check_image
from ..loop import Ascent, Cancel, Item, Progress, ProgressFn, for_each_item
from ..objectives import channel, pixel_l2
from ..precision import autocast_dtype
from ..pyramid import gaussian_blur, octave_sizes, resize
from .predict import class_count

__all__ = ["class_visualize"]

def class_visualize(backbone: Backbone, target: int, *, size: tuple[int, int] | None = None, batch: int = 1,
                    steps: int = 100, step_size: float = 0.02, l2_weight: float = 1.0, jitter: int = 16,
                    blur_sigma: float = 0.5, blur_every: int = 10, octaves: int = 1, octave_scale: float = 1.4,
                    init: Tensor | None = None, seed: int = 0, precision: str = "auto",
                    progress: Progress | ProgressFn | None = None, cancel: Cancel | None = None) -> Tensor:
    """Pictures the network takes for class ``target``: gradient ascent on its score from noise.

    CS231n's regularised recipe (Simonyan et al.) on our ascent loop: each step raises
    ``f_target - l2_weight * mean((x - 0.5)^2)`` by a normalised gradient step under random jitter,
    then clamps to 0..1, and every ``blur_every`` steps blurs the picture a little (sigma
    ``blur_sigma``). With ``octaves`` above 1 it starts small and grows by ``octave_scale``, which
    gives larger shapes.

    Args:
        size: ``(H, W)``; default: the backbone's native square.
        batch: pictures to make, item ``i`` from the noise of ``seed + i`` (or each from ``init``).
        init: start from this image :math:`(1 \\text{ or } B, 3, H, W)` instead of noise (resized).

    Returns:
        :math:`(\\text{batch}, 3, H, W)` in 0..1 on the backbone's device.
    """
    class_count(backbone, target)
    check(batch >= 1 and steps >= 0, f"batch and steps: need batch >= 1 and steps >= 0, got {batch}, {steps}.")
    check(blur_every >= 0 and blur_sigma >= 0, "blur_every and blur_sigma: must be 0 (off) or more.")
    height, width = size or (backbone.spec.native_size,) * 2
    starts = None if init is None else check_image(init, "init_image")
    sizes = octave_sizes((height, width), octaves, octave_scale, max(32, backbone.extractor([LOGITS]).min_input_size()))
    objective = channel(LOGITS, target) - l2_weight * pixel_l2()

    def blur(picture: Tensor, step: int) -> Tensor:
        return gaussian_blur(picture, blur_sigma) if blur_every and blur_sigma and step % blur_every == 0 else picture

    def visualize(item: Item) -> Tensor:
        x = torch.rand((1, 3, *sizes[0]), generator=item.generator) if starts is None else item.take(starts)
        ascent = Ascent(backbone.extractor(objective.layers), objective, step_size=step_size, jitter=jitter,
                        autocast=autocast_dtype(precision, backbone.device), cancel=cancel)
        x = x.to(item.device)
        for level, level_size in enumerate(sizes):
            part = item.progress.part(level, len(sizes))
            part.begin(steps)
            x = replace(ascent, progress=part).run(resize(x, level_size).clamp(0, 1), steps, item.generator,
                                                   after_step=blur)
        return x

    return for_each_item(batch, visualize, device=backbone.device, steps=len(sizes) * steps, seed=seed,
                         progress=progress, cancel=cancel)
