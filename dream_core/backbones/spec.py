"""What a backbone is before it is built: its layer catalogue, input normalisation, size and weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

__all__ = ["LOGITS", "BackboneSpec", "IMAGENET_MEAN", "IMAGENET_STD", "HALF"]

LOGITS = "logits"
"""The last layer of every registry catalogue: the classifier's output, one score per class."""


@dataclass(frozen=True)
class BackboneSpec:
    """What we know about a backbone before building it.

    Attributes:
        name: registry key, e.g. ``"googlenet"``.
        title: one line for help texts.
        build: returns the torchvision module with random weights (seeded by the caller).
        trunk: the module's stages in execution order, one per entry of ``layers`` (the classifier
            head included, as the ``logits`` stage).
        layers: layer name -> channel count, in execution order.
        mean, std: per-channel input normalisation applied to 0..1 RGB.
        native_size: the resolution the network was trained at.
        weights_url: torchvision's pretrained state dict; its file name carries a sha256 prefix.
        ignore_keys: state-dict key prefixes that belong to heads we never build (auxiliary classifiers).
        default_layer: a layer that dreams well when the user names none.
        aliases: other names users know a layer by (Keras ``mixed4`` for ``Mixed_6b``).
        categories: where the class names come from: a torchvision weights name
            (``"GoogLeNet_Weights.IMAGENET1K_V1"``, read from the installed package, no download) or
            the names themselves.
    """

    name: str
    title: str
    build: Callable[[], nn.Module]
    trunk: Callable[[nn.Module], list[nn.Module]]
    layers: dict[str, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    native_size: int
    weights_url: str
    default_layer: str
    ignore_keys: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)
    categories: str | tuple[str, ...] = ()

    def class_names(self) -> list[str] | None:
        """The name of each output class, or None when the network has no named classes."""
        if isinstance(self.categories, str):
            import torchvision.models

            return list(torchvision.models.get_weight(self.categories).meta["categories"])
        return list(self.categories) or None


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# GoogLeNet and Inception v3 were trained on (x - 0.5) / 0.5; torchvision reaches that through
# `transform_input`, which we switch off and replace with the normalisation itself.
HALF = (0.5, 0.5, 0.5)
