"""One step of gradient ascent on the image, and the small ops it is made of.

A step: roll the image by a random shift (jitter), run the extractor, take the gradient of the
objective with respect to the image, roll it back, normalise it, optionally smooth it, scale it by the
mask, add ``step_size`` times it to the image and clamp to 0..1.

Convention: the image stays in 0..1 RGB throughout and the network normalisation is the extractor's
first op, so clamping to 0..1 here is clamping to the valid pixel range in the network's normalised
space, and ``step_size`` means the same on every backbone: the mean absolute change of a pixel per
step (with ``grad_norm="mean_abs"``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .errors import check
from .features import FeatureExtractor
from .objectives import Objective
from .pyramid import gaussian_blur

__all__ = ["ascent_step", "random_shift", "normalize_gradient", "GRAD_NORMS"]

GRAD_NORMS = ("mean_abs", "std")
_TINY = torch.finfo(torch.float32).tiny


def random_shift(generator: torch.Generator, jitter: int) -> tuple[int, int]:
    """A ``(dy, dx)`` shift, each uniform in ``-jitter..jitter``, drawn from a CPU generator so that the
    same seed gives the same dream on every device."""
    if jitter <= 0:
        return 0, 0
    dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
    return dy, dx


def normalize_gradient(grad: Tensor, mode: str = "mean_abs") -> Tensor:
    """Scale each item's gradient to unit mean absolute value (Google, PyTorch sources) or unit std (Keras).

    Args:
        grad: :math:`(B, C, H, W)`.
        mode: ``"mean_abs"`` or ``"std"``.

    Returns:
        :math:`(B, C, H, W)` float32, whatever the input precision.
    """
    check(mode in GRAD_NORMS, f"grad_norm: unknown mode {mode!r}; choose one of {', '.join(GRAD_NORMS)}.")
    grad = grad.float()
    dims = tuple(range(1, grad.ndim))
    scale = grad.abs().mean(dims, keepdim=True) if mode == "mean_abs" else grad.std(dims, keepdim=True)
    # Clamp instead of adding an epsilon: the scale is free (a gradient of 1e-12 normalises like one of 1),
    # and an all-zero gradient stays zero.
    return grad / scale.clamp_min(_TINY)


def ascent_step(
    image: Tensor,
    extractor: FeatureExtractor,
    objective: Objective,
    *,
    step_size: float,
    shift: tuple[int, int] = (0, 0),
    grad_norm: str = "mean_abs",
    smoothing: float = 0.0,
    mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One ascent step.

    Args:
        image: :math:`(B, 3, H, W)` in 0..1; not modified.
        extractor: runs the network to the layers ``objective`` reads.
        objective: the score to raise.
        step_size: how far to move, in 0..1 pixel units per unit of normalised gradient.
        shift: ``(dy, dx)`` jitter, applied before the forward pass and undone on the gradient.
        grad_norm: ``"mean_abs"`` or ``"std"`` (see :func:`normalize_gradient`).
        smoothing: sigma of the Gaussian applied to the gradient, in pixels; 0 = off. Smoothing the
            gradient removes the high-frequency noise that a pixel-space ascent otherwise paints.
        mask: :math:`(B \\text{ or } 1, 1, H, W)` in 0..1, scales the step per pixel.

    Returns:
        The new image :math:`(B, 3, H, W)` and the objective's scores before the step, :math:`(B,)`.
    """
    rolled = torch.roll(image, shift, dims=(2, 3)).detach().requires_grad_(True)
    with torch.enable_grad():
        scores = objective(extractor(rolled))
        (grad,) = torch.autograd.grad(scores.sum(), rolled)
    with torch.no_grad():
        grad = torch.roll(grad, (-shift[0], -shift[1]), dims=(2, 3))
        grad = gaussian_blur(normalize_gradient(grad, grad_norm), smoothing)
        if mask is not None:
            grad = grad * mask
        return (image + step_size * grad).clamp_(0.0, 1.0), scores.detach()
