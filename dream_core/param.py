"""Feature visualisation from nothing (lucid / lucent's core, and MaCo): a picture parameterised in a Fourier
basis with decorrelated colour, optimised through random transforms.

A pixel-space ascent from noise paints high-frequency patterns that excite the network without
looking like anything; scaling each frequency by ``1 / f`` (so every octave starts with equal
energy) and mixing the colour channels by ImageNet's colour correlation lets the optimiser move
whole shapes and colours at once, and the transforms (pad, jitter, scale, rotate) keep only what
survives being moved. MaCo (Fel et al. 2023) goes further on deep networks and transformers: the
spectrum's magnitude stays that of natural photographs and only its phase is optimised, through
random crops with noise; the gradient that kept arriving at each pixel is its transparency map.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from .backbones import LOGITS, Backbone
from .cutouts import Cutouts
from .errors import check
from .images import check_image, max_normalised
from .loop import Cancel, Item, Progress, ProgressFn, for_each_item
from .objectives import Objective, channel, neuron
from .objectives import diversity as diversity_of
from .optimizers import optimize
from .precision import autocast_dtype
from .transformers import EMBEDDING

__all__ = ["FourierImage", "MacoImage", "natural_magnitude", "robustness_transform", "feature_visualize", "accentuate",
           "feature_objective", "maco_cutouts", "PARAMETERIZATIONS", "FEATURE_TARGETS", "ACCENT_PULL"]

PARAMETERIZATIONS = ("fft", "pixels", "maco")
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
        unit_step: divide the falloff by its root mean square, so that an optimiser step moves a pixel about
            as far whatever the decay (lucid's scale, False, moves a small picture's low frequencies far).
    """

    def __init__(self, shape: tuple[int, int, int], generator: torch.Generator | Sequence[torch.Generator] | None = None,
                 decorrelate: bool = True, decay: float = 1.0, device: torch.device | str = "cpu",
                 unit_step: bool = False) -> None:
        batch, height, width = shape
        self.size = (height, width)
        fy = torch.fft.fftfreq(height).view(-1, 1)
        fx = torch.fft.rfftfreq(width).view(1, -1)
        frequency = (fy.square() + fx.square()).sqrt()
        scale = 1.0 / frequency.clamp_min(1.0 / max(height, width)) ** decay
        self.scale = (scale / scale.square().mean().sqrt() if unit_step else scale).to(device)
        self.mix = COLOUR_MIX.to(device) if decorrelate else torch.eye(3, device=device)
        self.spectrum = 0.01 * _draw((batch, 3, height, width // 2 + 1, 2), generator).to(device)

    def render(self) -> Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        image = torch.fft.irfft2(spectrum, s=self.size, norm="ortho") / LUCID_DIVISOR
        return torch.sigmoid(torch.einsum("ij,bjhw->bihw", self.mix, image))

    @classmethod
    def from_image(cls, image: Tensor, decorrelate: bool = True, decay: float = 1.0,
                   unit_step: bool = False) -> FourierImage:
        """The parameterisation whose ``render()`` is ``image`` (pixels in 0.001..0.999): an init image."""
        picture = check_image(image).clamp(1e-3, 1 - 1e-3)
        made = cls((picture.shape[0], *picture.shape[-2:]), decorrelate=decorrelate, decay=decay,
                   device=picture.device, unit_step=unit_step)
        mixed = torch.logit(picture)
        unmixed = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(made.mix), mixed)
        spectrum = torch.fft.rfft2(unmixed * LUCID_DIVISOR, norm="ortho") / made.scale
        made.spectrum = torch.view_as_real(spectrum).contiguous()
        return made


SPECTRUM_FILE = Path(__file__).parent / "data" / "natural_spectrum.safetensors"
"""The mean log-amplitude spectrum of natural photographs in the decorrelated colour space, made by
``tools/make_spectrum.py`` from scikit-image's bundled pictures (no download at run time)."""
PHASE_SCALE = 20.0
"""A MaCo phase is this many times its parameter: Adam's step of 0.05 (lucid's learning rate, the nodes'
default) moves the phase as MaCo's reference step of 1.0 does."""
MACO_CROPS = 6  # MaCo's crops per step
FEATURE_TARGETS = ("channel", "neuron", "class")


@functools.cache
def _log_amplitude() -> Tensor:
    from safetensors.torch import load_file

    return load_file(str(SPECTRUM_FILE))["log_amplitude"]


def natural_magnitude(height: int, width: int) -> Tensor:
    """The amplitude :math:`(3, H, W/2 + 1)` of natural photographs at the ``rfft2`` frequencies of an
    ``H x W`` picture (the stored spectrum sampled at each frequency, bilinear in its log)."""
    rows = torch.fft.fftfreq(height) * 2  # -1 .. 1: the stored rows run from -1/2 to 1/2
    cols = torch.fft.rfftfreq(width) * 4 - 1  # 0 .. 1/2 -> -1 .. 1
    grid = torch.stack(torch.broadcast_tensors(cols.view(1, -1), rows.view(-1, 1)), dim=-1)
    logs = torch.nn.functional.grid_sample(_log_amplitude()[None], grid[None], mode="bilinear",
                                           padding_mode="border", align_corners=True)[0]
    return logs.exp()


class MacoImage:
    """Images :math:`(B, 3, H, W)` in 0..1 whose spectrum has natural photographs' magnitude and a free phase.

    ``render()`` = sigmoid(colour-mix(standardise(inverse FFT(magnitude * exp(i * 20 * phase))))): the
    phase (:attr:`phase`, the only parameter) decides where things are; the magnitude
    (:func:`natural_magnitude`, never optimised) keeps the picture's energy per frequency natural, so the
    optimiser cannot pile energy into the high frequencies a deep network responds to.

    Args:
        shape: ``(B, H, W)``.
        generator: draws the initial phase (normal, standard deviation pi), or one generator per item.
        decorrelate: mix colours by :data:`COLOUR_MIX` (else each channel is independent).
    """

    def __init__(self, shape: tuple[int, int, int], generator: torch.Generator | Sequence[torch.Generator] | None = None,
                 decorrelate: bool = True, device: torch.device | str = "cpu") -> None:
        batch, height, width = shape
        self.size = (height, width)
        self.magnitude = _hermitian_columns(natural_magnitude(height, width), width, odd=False).to(device)
        self.mix = COLOUR_MIX.to(device) if decorrelate else torch.eye(3, device=device)
        # A phase of standard deviation pi is as good as uniform on the circle (std 1 would keep cos(phase)
        # near 0.6 everywhere: every frequency in step at the corner pixel, a spike of 60 sigma).
        self.phase = (torch.pi * _draw((batch, 3, height, width // 2 + 1), generator) / PHASE_SCALE).to(device)

    def spectrum(self) -> Tensor:
        """The half spectrum :math:`(B, 3, H, W/2 + 1)`, complex. Its columns at frequency 0 (and W/2) hold
        both signs of the vertical frequency, so they must be Hermitian (magnitude even, phase odd in it)
        for the picture to be real: so they are made."""
        phase = PHASE_SCALE * _hermitian_columns(self.phase, self.size[1], odd=True)
        return torch.complex(self.magnitude * torch.cos(phase), self.magnitude * torch.sin(phase))

    def spatial(self) -> Tensor:
        """The picture before colour mixing and sigmoid: standardised per item, :math:`(B, 3, H, W)`."""
        image = torch.fft.irfft2(self.spectrum(), s=self.size, norm="ortho")
        centred = image - image.mean((1, 2, 3), keepdim=True)
        return centred / (centred.std((1, 2, 3), keepdim=True) + 1e-4)

    def render(self) -> Tensor:
        return torch.sigmoid(torch.einsum("ij,bjhw->bihw", self.mix, self.spatial()))


def _hermitian_columns(values: Tensor, width: int, odd: bool) -> Tensor:
    """``values`` :math:`(..., H, W/2 + 1)` with its frequency-0 column (and W/2 for an even width) made even
    (``odd=False``) or odd in the vertical frequency: the average with its mirror ``k -> -k``."""
    made = values.clone()
    for column in [0] + ([width // 2] if width % 2 == 0 else []):
        line = values[..., column]
        mirror = torch.roll(torch.flip(line, dims=[-1]), 1, dims=-1)  # entry k holds entry -k (mod H)
        made[..., column] = (line - mirror) / 2 if odd else (line + mirror) / 2
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
                      cancel: Cancel | None = None, return_transparency: bool = False) -> Tensor | tuple[Tensor, Tensor]:
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

    ``parameterization="maco"`` (Fel et al. 2023): a :class:`MacoImage`, only the phase optimised, seen
    through ``MACO_CROPS`` random crops with noise (:class:`~dream_core.Cutouts`) instead of lucid's
    transforms; ``diversity`` is lucid's and not offered with it.

    Returns:
        :math:`(\\text{batch}, 3, H, W)` in 0..1 on the backbone's device; with ``return_transparency``
        also the transparency map :math:`(\\text{batch}, 1, H, W)` in 0..1: the gradient magnitude that
        reached each pixel, summed over the steps (MaCo's map; for any parameterisation), each picture
        divided by its largest value.
    """
    check(parameterization in PARAMETERIZATIONS,
          f"parameterization: unknown {parameterization!r}; choose one of {', '.join(PARAMETERIZATIONS)}.")
    check(batch >= 1 and steps >= 0, f"batch and steps: need batch >= 1, steps >= 0; got {batch}, {steps}.")
    height, width = size
    check(min(height, width) >= 16, f"size: at least 16 px a side, got {height}x{width}.")
    check(diversity >= 0, f"diversity: must be 0 (off) or more, got {diversity}.")
    check(not (diversity and parameterization == "maco"), "diversity: lucid's, not offered with maco; set it to 0 "
                                                           "or choose fft.")
    if diversity:
        layers = [diversity_layer] if diversity_layer else sorted(objective.layers - {LOGITS, EMBEDDING})
        check(len(layers) == 1, f"diversity_layer: name the layer to compare the pictures at (the objective reads "
                                f"{', '.join(sorted(objective.layers)) or 'none'}).")
        objective = objective + diversity * diversity_of(backbone.resolve(layers[0]))
    if parameterization == "maco" and transforms:
        objective = objective.through(maco_cutouts(backbone, size))
    extractor = backbone.extractor(objective.layers)
    transform = robustness_transform() if transforms and parameterization != "maco" else None
    autocast = autocast_dtype(precision, backbone.device)

    def visualize(item: Item) -> Tensor:
        count = len(item.indices)
        if parameterization == "fft":
            image = FourierImage((count, height, width), item.generators, decorrelate, device=item.device)
            parameters, render = [image.spectrum], image.render
        elif parameterization == "maco":
            image = MacoImage((count, height, width), item.generators, decorrelate, device=item.device)
            parameters, render = [image.phase], image.render
        else:
            pixels = (0.5 + 0.01 * _draw((count, 3, height, width), item.generators)).to(item.device)
            parameters, render = [pixels], (lambda: pixels.clamp(0, 1))
        gradients = torch.zeros(count, 3, height, width, device=item.device)
        made = optimize(parameters, render, extractor, objective, steps=steps, lr=learning_rate,
                        generator=item.generator, transform=transform, progress=item.progress, autocast=autocast,
                        cancel=cancel, gradient_sum=gradients)
        return _with_transparency(made, gradients)

    made = for_each_item(batch, visualize, device=backbone.device, steps=steps, seed=seed, progress=progress,
                         cancel=cancel, chunk=batch if diversity else 1)
    return _pictures(made, return_transparency)


ACCENT_DECAY = 1.5  # the seeded spectrum's falloff power, as in Hamblin et al.'s reference
ACCENT_PULL = 1000.0
"""The default pull back to the picture (see tools/maco_measure.py)."""


def accentuate(image: Tensor, backbone: Backbone, objective: Objective, *, pull: float = ACCENT_PULL, steps: int = 64,
               learning_rate: float = 0.05, crops: bool = True, seed: int = 0, precision: str = "auto",
               progress: Progress | ProgressFn | None = None, cancel: Cancel | None = None,
               return_transparency: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Feature accentuation (Hamblin, Fel et al. 2024): what *in this picture* drives a feature, made stronger.

    Each item of ``image`` :math:`(B, 3, H, W)` seeds a :class:`FourierImage` (falloff :data:`ACCENT_DECAY`,
    unit steps), optimised with Adam to raise ``objective`` seen through ``MACO_CROPS`` random crops with
    noise (``crops``), minus ``pull`` times the mean squared difference to the picture: the larger
    ``pull``, the more of the picture is kept (0: none). Item ``i`` draws its crops from seed ``seed + i``.

    Returns:
        :math:`(B, 3, H, W)` in 0..1 on the backbone's device; with ``return_transparency`` also the map
        :math:`(B, 1, H, W)` of the gradient that reached each pixel (see :func:`feature_visualize`).
    """
    pictures = check_image(image)
    check(pull >= 0, f"pull: must be 0 (none) or more, got {pull}.")
    check(steps >= 0, f"steps: must be 0 or more, got {steps}.")
    height, width = pictures.shape[-2:]
    check(min(height, width) >= 16, f"image: at least 16 px a side, got {height}x{width}.")
    if crops:
        objective = objective.through(maco_cutouts(backbone, (height, width)))
    extractor = backbone.extractor(objective.layers)
    autocast = autocast_dtype(precision, backbone.device)

    def accentuated(item: Item) -> Tensor:
        start = FourierImage.from_image(item.take(pictures), decay=ACCENT_DECAY, unit_step=True)
        anchor = start.render().detach()  # the picture as the parameterisation renders it (0.001..0.999)

        def pulled_back(rendered: Tensor) -> Tensor:
            return pull * (rendered - anchor).square().mean((1, 2, 3)).sum()

        gradients = torch.zeros_like(anchor)
        made = optimize([start.spectrum], start.render, extractor, objective, steps=steps, lr=learning_rate,
                        generator=item.generator, progress=item.progress, autocast=autocast, cancel=cancel,
                        gradient_sum=gradients, penalty=pulled_back if pull else None)
        return _with_transparency(made, gradients)

    made = for_each_item(pictures.shape[0], accentuated, device=backbone.device, steps=steps, seed=seed,
                         progress=progress, cancel=cancel)
    return _pictures(made, return_transparency)


def feature_objective(backbone: Backbone, target: str, index: int, layer: str | None = None) -> Objective:
    """A feature to visualise or accentuate: channel ``index`` of ``layer`` (default: the backbone's default
    layer), its centre neuron, or the score of class ``index`` (``target`` ``"class"``, layer ignored)."""
    check(target in FEATURE_TARGETS, f"target: unknown {target!r}; choose one of {', '.join(FEATURE_TARGETS)}.")
    name = LOGITS if target == "class" else backbone.resolve(layer or backbone.spec.default_layer)
    return neuron(name, index) if target == "neuron" else channel(name, index)


def maco_cutouts(backbone: Backbone, size: tuple[int, int]) -> Cutouts:
    """MaCo's crops of a picture of ``size`` ``(H, W)``: :data:`MACO_CROPS` of them, each resized to the
    picture's shorter side, or to a vision transformer's native size when that is smaller."""
    return Cutouts(MACO_CROPS, min(*size, backbone.largest_view or min(size)))


def _with_transparency(pictures: Tensor, gradients: Tensor) -> Tensor:
    """One tensor per item for the runner: the pictures and, as a fourth channel, their transparency map."""
    return torch.cat([pictures, max_normalised(gradients.mean(1, keepdim=True))], dim=1)


def _pictures(made: Tensor, return_transparency: bool) -> Tensor | tuple[Tensor, Tensor]:
    pictures, transparency = made.split([3, 1], dim=1)
    return (pictures, transparency) if return_transparency else pictures
