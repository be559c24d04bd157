"""Cutouts: many random crops of the picture, seen at the network's own size in one batch.

Raising a CLIP embedding's cosine on the one picture finds adversarial texture: a pattern that only
this exact view of this exact tower scores highly. Every CLIP-guided generator that makes pictures a
person recognises (VQGAN+CLIP, CLIP-guided diffusion, deep-daze, lucid's CLIP notebooks) scores
many random crops of random size with light augmentation instead, and raises their mean: the
picture must say the prompt at every scale and place. An objective seen through :class:`Cutouts`
(``objective.through(cutouts)``) is scored so by the ascent drivers: each step draws new crops from
the item's own random stream, and the item's score is the mean over its crops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from .errors import check

__all__ = ["Cutouts"]


@dataclass(frozen=True)
class Cutouts:
    """``count`` random square crops per picture, resized to ``size`` px, as one batch.

    Each crop's side is uniform in ``min_fraction`` .. 1 of the picture's shorter side, its place
    uniform within the picture; it is mirrored left-right with probability 1/2 and gets Gaussian
    noise of a standard deviation uniform in 0 .. ``noise`` (the light augmentation of VQGAN+CLIP).

    Args:
        count: crops per picture (at least 1).
        size: the side the network sees (a ViT's native size).
        min_fraction: the smallest crop side, as a fraction of the picture's shorter side.
        noise: the largest noise standard deviation, in 0..1 pixel units.

    Example:
        >>> cut = Cutouts(4, 32).draw((2, 3, 64, 80), [torch.Generator().manual_seed(s) for s in (0, 1)])
        >>> cut(torch.rand(2, 3, 64, 80)).shape
        torch.Size([8, 3, 32, 32])
    """

    count: int
    size: int
    min_fraction: float = 0.4
    noise: float = 0.05

    def __post_init__(self) -> None:
        check(self.count >= 1, f"cutouts: at least 1 crop per picture, got {self.count}.")
        check(self.size >= 1, f"cutouts: the crops' size must be at least 1 px, got {self.size}.")
        check(0.0 < self.min_fraction <= 1.0, f"cutouts: min_fraction must be in (0, 1], got {self.min_fraction}.")
        check(self.noise >= 0.0, f"cutouts: noise must be 0 or more, got {self.noise}.")

    def draw(self, shape: Sequence[int], generators: Sequence[torch.Generator]) -> Callable[[Tensor], Tensor]:
        """This step's crops for pictures of ``shape`` :math:`(B, 3, H, W)`, item ``i`` drawn from
        ``generators[i]`` (CPU): a function :math:`(B, 3, H, W) \\to (B \\cdot count, 3, size, size)`,
        differentiable, items in order and each item's crops together."""
        batch, _, height, width = shape
        check(len(generators) == batch, f"cutouts: {len(generators)} random streams for a batch of {batch}.")
        short = min(height, width)
        boxes = []  # per crop: (item, top, left, side, flip)
        stds, seeds = [], []  # per crop: the noise's std; per item: the seed of its noise
        for item, generator in enumerate(generators):
            for a, b, c, d, e in torch.rand(self.count, 5, generator=generator).tolist():
                side = max(1, round(short * (self.min_fraction + (1.0 - self.min_fraction) * a)))
                boxes.append((item, int(b * (height - side + 1)), int(c * (width - side + 1)), side, d < 0.5))
                stds.append(self.noise * e)
            seeds.append(int(torch.randint(0, 2**62, (1,), generator=generator)))

        def cut(image: Tensor) -> Tensor:
            crops = []
            for item, top, left, side, flip in boxes:
                crop = image[item:item + 1, :, top:top + side, left:left + side]
                crop = F.interpolate(crop, size=(self.size, self.size), mode="bilinear", antialias=side > self.size,
                                     align_corners=False)
                crops.append(crop.flip(-1) if flip else crop)
            crops = torch.cat(crops)
            if self.noise == 0:
                return crops
            shape = (self.count, *crops.shape[1:])  # each item's noise from its own stream, on the device
            noise = torch.cat([torch.randn(shape, generator=torch.Generator(image.device).manual_seed(seed),
                                           device=image.device, dtype=crops.dtype) for seed in seeds])
            return crops + torch.tensor(stds, device=image.device, dtype=crops.dtype).view(-1, 1, 1, 1) * noise

        return cut
