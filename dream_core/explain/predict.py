"""What a classifier predicts: its logits and the most probable classes, the checks every explain tool
makes of a classifier and a target class."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..backbones import LOGITS, Backbone
from ..errors import DreamError, check
from ..images import check_image
from ..precision import autocast_dtype, running_in
from ..pyramid import resize

__all__ = ["Prediction", "classify", "logits"]

@dataclass(frozen=True)
class Prediction:
    """One class of a prediction: its index, its name and its probability."""

    index: int
    name: str
    probability: float

    def __str__(self) -> str:
        return f"{self.name} ({self.probability:.1%})"


def logits(image: Tensor, backbone: Backbone, precision: str = "fp32") -> Tensor:
    """The classifier's scores :math:`(B, \\text{classes})` for ``image``, without gradients; an image smaller
    than the network's smallest input is enlarged first."""
    picture = check_image(image).to(backbone.device)
    check_classifier(backbone)
    extractor = backbone.extractor([LOGITS])
    smallest, height, width = extractor.min_input_size(), *picture.shape[-2:]
    if min(height, width) < smallest:  # too small for the network's strides: classify it enlarged
        scale = smallest / min(height, width)
        picture = resize(picture, (max(smallest, round(height * scale)), max(smallest, round(width * scale))))
    with torch.no_grad(), running_in(autocast_dtype(precision, picture.device), picture.device):
        return extractor(picture)[LOGITS].float()


def classify(image: Tensor, backbone: Backbone, top_k: int = 5, precision: str = "auto") -> list[list[Prediction]]:
    """The ``top_k`` most probable classes of each item, most probable first.

    Example:
        >>> from dream_core import load_backbone
        >>> net = load_backbone("alexnet", "random")
        >>> top = classify(torch.rand(2, 3, 64, 64), net, top_k=3)
        >>> len(top), len(top[0]), isinstance(top[0][0].name, str)
        (2, 3, True)
    """
    check(top_k >= 1, f"top_k: must be 1 or more, got {top_k}.")
    probabilities = logits(image, backbone, precision).softmax(1).cpu()
    names = label_names(backbone, probabilities.shape[1])
    values, indices = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    return [[Prediction(int(i), names[int(i)], float(v)) for v, i in zip(row_values, row_indices)]
            for row_values, row_indices in zip(values, indices)]


def label_names(backbone: Backbone, count: int) -> list[str]:
    names = backbone.class_names or []
    return list(names) if len(names) == count else [f"class {i}" for i in range(count)]


def check_classifier(backbone: Backbone) -> None:
    if LOGITS not in backbone.spec.layers:
        raise DreamError(f"backbone: {backbone.name} has no 'logits' layer, so it cannot classify; use a "
                         "registry backbone or name the classifier stage 'logits' in backbone_from_module.")


def class_count(backbone: Backbone, target: int) -> int:
    """The backbone's number of classes, after checking it has a classifier and ``target`` is one of them."""
    check_classifier(backbone)
    classes = backbone.spec.layers[LOGITS]
    check(0 <= target < classes, f"target: {backbone.name} has classes 0..{classes - 1}, got {target}.")
    return classes


def item_targets(image: Tensor, backbone: Backbone, target: int | None) -> list[int]:
    """Per-item class indices: ``target`` for all, or each item's predicted class for None or -1 (the
    only case that needs a forward pass)."""
    if target is None or target == -1:
        return logits(image, backbone).argmax(1).tolist()
    class_count(backbone, target)
    return [target] * image.shape[0]
