"""Style statistics: what Gatys' style loss compares, and the loss itself as an objective.

A style is the statistics of a layer's features over all positions, blind to where things are:
their Gram matrix (Gatys et al.), or their mean and covariance, whose Wasserstein-2 distance
also matches each feature's mean. :func:`style_match` turns a target statistic into a score to raise.
Statistics are taken in float32 (outside autocast): a Gram of half-precision features overflows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..errors import check
from ..objectives import Activations, DeviceCopies, at_least_float32, objective

__all__ = ["STATISTICS", "gram_matrix", "mean_covariance", "style_statistic", "style_match"]


class _MaskAt:
    """A mask :math:`(B \\text{ or } 1, 1, H, W)`, area-resized once to each activation size it is used at."""

    def __init__(self, mask: Tensor) -> None:
        self.mask = mask.detach()
        self._sizes: dict[tuple, Tensor] = {}

    def like(self, activation: Tensor) -> Tensor:
        key = (tuple(activation.shape[-2:]), activation.device, activation.dtype)
        if key not in self._sizes:
            mask = self.mask.to(device=activation.device, dtype=activation.dtype)
            self._sizes[key] = torch.nn.functional.adaptive_avg_pool2d(mask, activation.shape[-2:])
        return self._sizes[key]


def _positions(activation: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor | float]:
    """Features as :math:`(B, N, C)` positions x channels, position weights :math:`(B \\text{ or } 1, N, 1)`
    (None without a mask) and their total.

    For channels_last activations (the backbones' default layout) the features are a view, not a copy.
    """
    features = at_least_float32(activation).movedim(1, -1).flatten(1, 2)
    if mask is None:
        return features, None, features.shape[1]
    weights = mask.movedim(1, -1).flatten(1, 2)
    return features, weights, weights.sum(1, keepdim=True).clamp_min(1e-8)


class _SelfProduct(torch.autograd.Function):
    """``X^T X`` for ``X`` :math:`(B, N, C)`, whose backward is one matmul, ``X (G + G^T)``, where
    autograd would take two (one per operand) and add their position-sized results."""

    @staticmethod
    def forward(ctx, features: Tensor) -> Tensor:
        ctx.save_for_backward(features)
        return features.mT @ features

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        features, = ctx.saved_tensors
        return features @ (grad + grad.mT)


def gram_matrix(activation: Tensor, mask: Tensor | None = None) -> Tensor:
    """Channel correlations of :math:`(B, C, H, W)` -> :math:`(B, C, C)`, divided by ``C * H * W``
    so that the Grams of a small and a large picture of the same texture agree.

    With a ``mask`` :math:`(B \\text{ or } 1, 1, H, W)` of position weights, the Gram of the masked
    positions only: ``F diag(m) F^T / (C * sum(m))`` (a regional style).
    """
    features, weights, total = _positions(activation, mask)
    with torch.autocast(features.device.type, enabled=False):
        product = _SelfProduct.apply(features) if weights is None else (features * weights).mT @ features
        return product / (features.shape[2] * total)


def mean_covariance(activation: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-channel mean :math:`(B, C)` and covariance :math:`(B, C, C)` of :math:`(B, C, H, W)` over
    the positions (weighted by ``mask`` :math:`(B \\text{ or } 1, 1, H, W)` if given): the Gaussian whose
    Wasserstein-2 distance :func:`style_match` measures with ``statistic="mean_cov"``."""
    features, weights, total = _positions(activation, mask)
    with torch.autocast(features.device.type, enabled=False):
        if weights is None:
            mean = features.mean(1, keepdim=True)
            return mean.squeeze(1), _SelfProduct.apply(features - mean) / total
        mean = (features * weights).sum(1, keepdim=True) / total
        centred = features - mean
        return mean.squeeze(1), (centred * weights).mT @ centred / total


STATISTICS = ("gram", "mean_cov")


def style_statistic(activation: Tensor, statistic: str = "gram", mask: Tensor | None = None) -> tuple[Tensor, ...]:
    """The style statistic of an activation: ``(gram,)`` or ``(mean, covariance)``, see :func:`style_match`."""
    check(statistic in STATISTICS, f"statistic: unknown {statistic!r}; choose one of {', '.join(STATISTICS)}.")
    if statistic == "gram":
        return (gram_matrix(activation, mask),)
    return mean_covariance(activation, mask)


def _sqrtm(matrix: Tensor) -> Tensor:
    """The square root of a symmetric positive semi-definite matrix (eigenvalues clamped at 0)."""
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag_embed(values.clamp_min(0).sqrt()) @ vectors.transpose(-1, -2)


@objective
def style_match(layer: str, target: Sequence[Tensor], statistic: str = "gram",
                mask: Tensor | None = None) -> Callable[[Activations], Tensor]:
    """Gatys style: minus the distance between the layer's style statistic and the style's.

    - ``"gram"``: ``|G - A|^2 / |A|^2``, the squared Gram distance relative to the style's Gram, so
      scores are comparable across layers and backbones.
    - ``"mean_cov"``: the squared Wasserstein-2 distance between the Gaussians of the two feature
      sets, ``|m - mu|^2 + tr(S + T - 2 (T^1/2 S T^1/2)^1/2)``, relative to ``|mu|^2 + tr(T)``: it
      also matches the mean colour of each feature, which Gram matching leaves loose.

    Maximising the score minimises the style loss.

    Args:
        layer: the layer to match.
        target: the style image's statistic at ``layer``, from :func:`style_statistic`.
        mask: :math:`(B \\text{ or } 1, 1, H, W)` position weights in 0..1 at any resolution: the
            statistic is taken over the masked positions only (a regional style).
    """
    check(statistic in STATISTICS, f"statistic: unknown {statistic!r}; choose one of {', '.join(STATISTICS)}.")
    targets = [DeviceCopies(t.detach()) for t in target]
    region = None if mask is None else _MaskAt(mask)
    if statistic == "mean_cov":
        targets.append(DeviceCopies(_sqrtm(at_least_float32(target[1].detach()))))

    def score(acts: Activations) -> Tensor:
        activation = acts[layer]
        weights = None if region is None else region.like(at_least_float32(activation))
        stats = style_statistic(activation, statistic, weights)
        wanted = [t.like(stats[0]) for t in targets]
        with torch.autocast(stats[0].device.type, enabled=False):
            if statistic == "gram":
                return -(stats[0] - wanted[0]).square().sum((1, 2)) / wanted[0].square().sum().clamp_min(1e-30)
            (mean, cov), (mu, target_cov, root) = stats, wanted
            cross = torch.linalg.eigvalsh(root @ cov @ root).clamp_min(1e-12).sqrt().sum(-1)
            trace = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1) + torch.diagonal(target_cov, dim1=-2, dim2=-1).sum(-1)
            distance = (mean - mu).square().sum(-1) + trace - 2 * cross
            return -distance / (mu.square().sum() + target_cov.diagonal(dim1=-2, dim2=-1).sum()).clamp_min(1e-30)

    return score
