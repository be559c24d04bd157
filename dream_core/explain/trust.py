"""Whether a visualisation can be trusted: does it travel through the network the way natural pictures of
its feature do (Geirhos et al., "Don't trust your eyes: on the (un)reliability of feature visualizations",
2024)? A picture can excite a unit by another route than the pictures the unit stands for; its path, layer
by layer, then parts from theirs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..backbones import Backbone
from ..errors import check
from ..images import check_image

__all__ = ["PathStep", "path_similarity"]


@dataclass(frozen=True)
class PathStep:
    """One layer of the path: how the visualisation's activations correlate with the natural pictures',
    and how the natural pictures correlate with each other there (the scale to read it against)."""

    layer: str
    similarity: float
    natural: float

    def __str__(self) -> str:
        return f"{self.layer}: {self.similarity:.2f} (natural pictures among themselves {self.natural:.2f})"


def _profile(activations: Tensor) -> Tensor:
    """Each channel's mean over positions, :math:`(B, C)` (a vector layer, such as logits, as it is)."""
    return activations.float().flatten(2).mean(2) if activations.ndim > 2 else activations.float()


def _correlation(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of the rows of ``a`` with those of ``b`` (channel profiles), :math:`(N_a, N_b)`."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)) @ (b / b.norm(dim=1, keepdim=True).clamp_min(1e-12)).T


def path_similarity(backbone: Backbone, pictures: Tensor, references: Tensor, up_to: str | None = None,
                    layers: Sequence[str] | None = None) -> list[PathStep]:
    """Per layer, the mean correlation between the channel profile (each channel's mean over positions) of
    every item of ``pictures`` :math:`(B, 3, H, W)` (a visualisation) and of every item of ``references``
    :math:`(R, 3, h, w)` (natural pictures that excite the same feature), next to the references' mean
    correlation with each other (``natural``; needs 2 or more). A trustworthy visualisation follows the natural
    path: its similarity stays near ``natural`` at every layer, not only at the last.

    Args:
        up_to: the last layer of the path (default: the backbone's last, ``logits`` included).
        layers: the layers to report (default: every catalogue layer up to ``up_to``).

    Example:
        >>> from dream_core import load_backbone
        >>> net = load_backbone("alexnet", "random")
        >>> steps = path_similarity(net, torch.rand(1, 3, 64, 64), torch.rand(3, 3, 64, 64), up_to="relu2")
        >>> [step.layer for step in steps]
        ['conv1', 'relu1', 'pool1', 'conv2', 'relu2']
    """
    pictures, references = check_image(pictures, "pictures"), check_image(references, "references")
    check(references.shape[0] >= 2, f"references: at least 2 natural pictures to compare with each other, got "
                                    f"{references.shape[0]}.")
    catalogue = list(backbone.spec.layers)
    last = backbone.resolve(up_to) if up_to is not None else catalogue[-1]
    chosen = [backbone.resolve(layer) for layer in layers] if layers else catalogue[:catalogue.index(last) + 1]
    extractor = backbone.extractor(chosen)
    with torch.no_grad():
        seen = extractor(pictures.to(backbone.device))
        natural = extractor(references.to(backbone.device))
    steps = []
    count = references.shape[0]
    for layer in chosen:
        ours, theirs = _profile(seen[layer]), _profile(natural[layer])
        among = _correlation(theirs, theirs)
        natural_mean = (among.sum() - among.diagonal().sum()) / (count * (count - 1))
        steps.append(PathStep(layer, float(_correlation(ours, theirs).mean()), float(natural_mean)))
    return steps
