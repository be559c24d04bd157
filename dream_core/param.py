"""Feature visualisation from nothing (lucid / lucent's core): a picture parameterised in a Fourier basis
with decorrelated colour, optimised through random robustness transforms.

A pixel-space ascent from noise paints high-frequency patterns that excite the network without
looking like anything; scaling each frequency by ``1 / f`` (so every octave starts with equal
energy) and mixing the colour channels by ImageNet's colour correlation lets the optimiser move
whole shapes and colours at once, and the transforms (pad, jitter, scale, rotate) keep only what
survives being moved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .backbones import LOGITS, Backbone
from .errors import check
from .images import check_image
from .loop import Cancel, Item, Progress, ProgressFn, for_each_item
from .objectives import Objective
from .objectives import diversity as diversity_of
from .optimizers import optimize
from .precision import autocast_dtype
from .transformers import EMBEDDING

__all__ = ["FourierImage", "robustness_transform", "feature_visualize", "PARAMETERIZATIONS"]

PARAMETERIZATIONS = ("fft", "pixels")
LUCID_DIVISOR = 4.0
"""lucid's constant: the picture is the spectrum's inverse FFT divided by 4, so a learning rate means
what it means in lucid and lucent (their feature visualisations' settings carry over as they are)."""
# The square root of ImageNet's RGB colour covariance (lucid's colour_correlation_svd_sqrt), normalised
# so its largest column has unit norm: decorrelated channels map to correlated RGB.
_COLOUR = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOUR_MIX = _COLOUR / _COLOUR.norm(dim=0).max()


class FourierImage:
    """Images :math:`(B, 3, H, W)` in 0..1 rendered from a ``1/f``-scaled spectrum in decorrelated colour.

    ``render()`` = sigmoid(colour-mix(inverse FFT(spectrum * scale) / 4)). The spectrum is the parameter;
    the 4 is lucid's (:data:`LUCID_DIVISOR`).

    Args:
        shape: ``(B, H, W)``.
        generator: draws the initial spectrum (std 0.01), so a seed gives the same start anywhere; or one
            generator per item.
        decorrelate: mix colours by :data:`COLOUR_MIX` (else each channel is independent).
        decay: the spectrum's falloff power; 1 = equal energy per octave.
    """

    def __init__(self, shape: tuple[int, int, int], generator: torch.Generator | Sequence[torch.Generator] | None = None,
                 decorrelate: bool = True, decay: float = 1.0, device: torch.device | str = "cpu") -> None:
        batch, height, width = shape
        self.size = (height, width)
        fy = torch.fft.fftfreq(height).view(-1, 1)
        fx = torch.fft.rfftfreq(width).view(1, -1)
        frequency = (fy.square() + fx.square()).sqrt()
        self.scale = (1.0 / frequency.clamp_min(1.0 / max(height, width)) ** decay).to(device)
        self.mix = COLOUR_MIX.to(device) if decorrelate else torch.eye(3, device=device)
        self.spectrum = 0.01 * _draw((batch, 3, height, width // 2 + 1, 2), generator).to(device)

    def render(self) -> Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        image = torch.fft.irfft2(spectrum, s=self.size, norm="ortho") / LUCID_DIVISOR
        return torch.sigmoid(torch.einsum("ij,bjhw->bihw", self.mix, image))

    @classmethod
    def from_image(cls, image: Tensor, decorrelate: bool = True, decay: float = 1.0) -> FourierImage:
        """The parameterisation whose ``render()`` is ``image`` (pixels in 0.001..0.999): an init image."""
        picture = check_image(image).clamp(1e-3, 1 - 1e-3)
        made = cls((picture.shape[0], *picture.shape[-2:]), decorrelate=decorrelate, decay=decay,
                   device=picture.device)
        mixed = torch.logit(picture)
        unmixed = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(made.mix), mixed)
        spectrum = torch.fft.rfft2(unmixed * LUCID_DIVISOR, norm="ortho") / made.scale
        made.spectrum = torch.view_as_real(spectrum).contiguous()
        return made


def _draw(shape: tuple[int, ...], generator: torch.Generator | Sequence[torch.Generator] | None) -> Tensor:
    """Standard normal noise of ``shape``, from one generator or from one per item (``shape[0]`` of them)."""
    if isinstance(generator, Sequence):
        return torch.cat([torch.randn((1, *shape[1:]), generator=g) for g in generator])
    return torch.randn(shape, generator=generator)


def robustness_transform(pad: int = 12, jitter: int = 8, scales: tuple[float, float] = (0.9, 1.1),
                         degrees: float = 10.0) -> Callable[[Tensor, torch.Generator], Tensor]:
    """lucid's standard transforms: pad with grey, jitter, random scale and rotation, jitter again; each
    draw from ``generator``. Returns ``transform(image, generator)``."""
    from kornia.geometry.transform import get_rotation_matrix2d, warp_affine

    def shift(image: Tensor, generator: torch.Generator, amount: int) -> Tensor:
        if amount <= 0:
            return image
        dy, dx = torch.randint(0, 2 * amount + 1, (2,), generator=generator).tolist()
        height, width = image.shape[-2:]
        return image[..., dy:height - 2 * amount + dy, dx:width - 2 * amount + dx]

    def transform(image: Tensor, generator: torch.Generator) -> Tensor:
        image = torch.nn.functional.pad(image, [pad] * 4, value=0.5)
        image = shift(image, generator, jitter)
        scale = scales[0] + (scales[1] - scales[0]) * torch.rand((), generator=generator).item()
        angle = degrees * (2 * torch.rand((), generator=generator).item() - 1)
        batch, _, height, width = image.shape
        options = {"device": image.device, "dtype": image.dtype}
        centre = torch.tensor([[(width - 1) / 2, (height - 1) / 2]], **options).expand(batch, 2)
        matrix = get_rotation_matrix2d(centre, torch.full((batch,), angle, **options),
                                       torch.full((batch, 2), scale, **options))
        image = warp_affine(image, matrix, (height, width), padding_mode="border", align_corners=True)
        return shift(image, generator, jitter // 2)

    return transform


def feature_visualize(backbone: Backbone, objective: Objective, *, size: tuple[int, int] = (224, 224),
                      batch: int = 1, steps: int = 256, learning_rate: float = 0.05,
                      parameterization: str = "fft", decorrelate: bool = True, transforms: bool = True,
                      diversity: float = 0.0, diversity_layer: str | None = None, seed: int = 0,
                      precision: str = "auto", progress: Progress | ProgressFn | None = None,
                      cancel: Cancel | None = None) -> Tensor:
    """Render what ``objective`` maximises from nothing: ``batch`` pictures, picture ``i`` from seed ``seed + i``.

    Adam on a :class:`FourierImage` (or on raw pixels, ``parameterization="pixels"``), each step seeing
    the picture through :func:`robustness_transform` (``transforms=True``). Objectives: a channel
    (``channel(layer, c)``), a neuron (``neuron(layer, c)``), a class (``channel("logits", k)``), a
    ``direction``, any sum; subtract one to see what a unit is *against* (``-channel(...)``).
    ``precision`` is the network's (:func:`~dream_core.precision.autocast_dtype`). The settings are
    lucid's, its learning rate included (see :data:`LUCID_DIVISOR`); for vision transformers Ghiasi et
    al. 2022 visualise the MLP units (``block{i}.mlp``) with these same transforms.

    With ``diversity`` above 0 the batch is optimised together and ``diversity`` times lucid's
    :func:`~dream_core.objectives.diversity` at ``diversity_layer`` (default: the objective's layer)
    is added: the pictures are pushed to show different facets of the feature (lucid uses 1e2 to 1e3
    for a batch of 4 to 8 on GoogLeNet's ``mixed4a``).

    Returns:
        :math:`(\\text{batch}, 3, H, W)` in 0..1 on the backbone's device.
    """
    check(parameterization in PARAMETERIZATIONS,
          f"parameterization: unknown {parameterization!r}; choose one of {', '.join(PARAMETERIZATIONS)}.")
    check(batch >= 1 and steps >= 0, f"batch and steps: need batch >= 1, steps >= 0; got {batch}, {steps}.")
    height, width = size
    check(min(height, width) >= 16, f"size: at least 16 px a side, got {height}x{width}.")
    check(diversity >= 0, f"diversity: must be 0 (off) or more, got {diversity}.")
    if diversity:
        layers = [diversity_layer] if diversity_layer else sorted(objective.layers - {LOGITS, EMBEDDING})
        check(len(layers) == 1, f"diversity_layer: name the layer to compare the pictures at (the objective reads "
                                f"{', '.join(sorted(objective.layers)) or 'none'}).")
        objective = objective + diversity * diversity_of(backbone.resolve(layers[0]))
    extractor = backbone.extractor(objective.layers)
    transform = robustness_transform() if transforms else None
    autocast = autocast_dtype(precision, backbone.device)

    def visualize(item: Item) -> Tensor:
        count = len(item.indices)
        if parameterization == "fft":
            image = FourierImage((count, height, width), item.generators, decorrelate, device=item.device)
            parameters, render = [image.spectrum], image.render
        else:
            pixels = (0.5 + 0.01 * _draw((count, 3, height, width), item.generators)).to(item.device)
            parameters, render = [pixels], (lambda: pixels.clamp(0, 1))
        return optimize(parameters, render, extractor, objective, steps=steps, lr=learning_rate,
                        generator=item.generator, transform=transform, progress=item.progress, autocast=autocast,
                        cancel=cancel)

    return for_each_item(batch, visualize, device=backbone.device, steps=steps, seed=seed, progress=progress,
                         cancel=cancel, chunk=batch if diversity else 1)
