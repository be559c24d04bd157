"""Penalties on the image itself (read under ``"input"``): total variation and the pull to grey.
They are positive measures: subtract them."""

from __future__ import annotations

from torch import Tensor

from ..errors import check
from ..features import INPUT
from .algebra import Activations, Objective, at_least_float32

__all__ = ["total_variation", "pixel_l2", "TV_KINDS"]

TV_KINDS = ("l2", "l1", "keras")


def total_variation(kind: str = "l2") -> Objective:
    """Total variation of the image: how much neighbouring pixels differ. A penalty: subtract it.

    With ``dy``, ``dx`` the differences to the pixel below and to the right (over the
    :math:`(H-1) \\times (W-1)` pixels that have both), per item:

    - ``"l2"``: ``mean(dy**2 + dx**2)``, smooth and quadratic;
    - ``"l1"``: ``mean(|dy| + |dx|)``, keeps edges sharp;
    - ``"keras"``: ``mean((dy**2 + dx**2) ** 1.25)``, the Keras style-transfer source's form.

    Example:
        >>> import torch
        >>> flat, noisy = torch.full((1, 3, 8, 8), 0.5), torch.rand(1, 3, 8, 8)
        >>> tv = total_variation()
        >>> tv({"input": flat}).item(), bool(tv({"input": noisy}) > 0)
        (0.0, True)
    """
    check(kind in TV_KINDS, f"total_variation: unknown kind {kind!r}; choose one of {', '.join(TV_KINDS)}.")

    def score(acts: Activations) -> Tensor:
        image = at_least_float32(acts[INPUT])
        dy = image[..., 1:, :-1] - image[..., :-1, :-1]
        dx = image[..., :-1, 1:] - image[..., :-1, :-1]
        if kind == "l1":
            per_pixel = dy.abs() + dx.abs()
        else:
            per_pixel = dy.square() + dx.square()
            if kind == "keras":
                per_pixel = per_pixel.pow(1.25)
        return per_pixel.flatten(1).mean(1)

    return Objective(score, [INPUT], f"total_variation({kind})")


def pixel_l2(center: float = 0.5) -> Objective:
    """``mean((x - center)**2)`` over the image: how far the pixels stray from ``center`` (mid-grey).

    The L2 regulariser of CS231n's class visualisation (which centres on the mean colour by working
    on the mean-subtracted image). A penalty: subtract it.
    """
    return Objective(lambda acts: (acts[INPUT].float() - center).square().flatten(1).mean(1), [INPUT],
                     f"pixel_l2({center:g})")
