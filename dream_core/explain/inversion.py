"""What one layer keeps: feature inversion from noise, and the PSNR to measure it."""

from __future__ import annotations

import torch
from torch import Tensor

from ..backbones import Backbone
from ..errors import check
from ..images import check_image
from ..loop import Cancel, Item, Progress, ProgressFn, for_each_item
from ..objectives import content, pixel_l2, total_variation
from ..optimizers import optimize
from ..precision import autocast_dtype
from ..references import reference_activations

__all__ = ["invert_features", "psnr"]

def invert_features(image: Tensor, backbone: Backbone, layer: str, *, steps: int = 200,
                    learning_rate: float = 0.05, tv_weight: float = 0.5, l2_weight: float = 0.0, jitter: int = 0,
                    optimizer: str = "adam", seed: int = 0, precision: str = "auto",
                    progress: Progress | ProgressFn | None = None, cancel: Cancel | None = None) -> Tensor:
    """An image whose features at ``layer`` match ``image``'s: what that layer keeps (Mahendran & Vedaldi).

    From seeded noise (item ``i`` from ``seed + i``), minimise the relative feature distance
    (:func:`~dream_core.objectives.content`) plus ``tv_weight`` times the total variation and
    ``l2_weight`` times the distance of the pixels from mid-grey, with Adam or L-BFGS.
    Early layers give back the picture; deep ones keep the parts that matter to the class.

    Returns:
        :math:`(B, 3, H, W)` in 0..1 on ``image``'s device.
    """
    pictures = check_image(image)
    layer = backbone.resolve(layer)
    check(tv_weight >= 0 and l2_weight >= 0, "tv_weight and l2_weight: must be 0 or more.")
    autocast = autocast_dtype(precision, backbone.device)

    def invert(item: Item) -> Tensor:
        original = item.take(pictures)
        target = reference_activations(backbone, original, [layer])[layer]
        objective = content(layer, target) - tv_weight * total_variation() - l2_weight * pixel_l2()
        pixels = torch.rand(original.shape, generator=item.generator).to(item.device)
        return optimize([pixels], lambda: pixels.clamp(0, 1), backbone.extractor(objective.layers), objective,
                        steps=steps, optimizer=optimizer, lr=learning_rate, jitter=jitter, generator=item.generator,
                        autocast=autocast, progress=item.progress, cancel=cancel)

    return for_each_item(pictures.shape[0], invert, device=backbone.device, steps=steps, seed=seed,
                         progress=progress, cancel=cancel, to=image.device)


def psnr(image: Tensor, reference: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB of 0..1 images, per item: ``10 log10(1 / MSE)``."""
    mse = (image - reference).square().flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(1 / mse)
