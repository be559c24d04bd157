"""The runtime backbone: a built, frozen network with its spec, handing out feature extractors that stop
at the deepest layer asked for."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

import torch
from torch import nn

from ..errors import DreamError, LayerError
from ..features import INPUT, FeatureExtractor
from ..transformers import PatchEmbedding
from .spec import BackboneSpec
from .surgery import POOLINGS, average_pooling, fold_batchnorm

__all__ = ["Backbone", "EXTRACTORS_KEPT"]

EXTRACTORS_KEPT = 16  # layer sets whose extractor (and its probed sizes) a backbone keeps


class Backbone:
    """A built, frozen network with its spec: parameters never require grad, the module is in eval mode.

    Args:
        spec: the registry entry this module was built from.
        model: the torchvision module (its weights already loaded).
        source: where the weights came from, for messages (``"random init (seed 0)"``, a path, a URL).
        fuse_batchnorm: fold batch norms into their convolutions (see :func:`fold_batchnorm`); the
            model's state dict then no longer has torchvision's keys.
        pooling: ``"max"`` (as trained) or ``"avg"``: max poolings become rescaled average poolings
            (see :func:`average_pooling`), the smoother choice for style transfer.
    """

    def __init__(self, spec: BackboneSpec, model: nn.Module, source: str, fuse_batchnorm: bool = False,
                 pooling: str = "max") -> None:
        if pooling not in POOLINGS:
            raise DreamError(f"pooling: unknown {pooling!r}; choose one of {', '.join(POOLINGS)}.")
        if pooling == "avg" and not average_pooling(model):
            raise DreamError(f"pooling: {spec.name} has no max pooling to replace; use pooling 'max'.")
        model.eval().requires_grad_(False)
        for module in model.modules():
            if getattr(module, "inplace", False):
                # An in-place ReLU (or ReLU6) would overwrite the activation of the conv layer before
                # it, which a caller may have asked for (conv4_3 and relu4_3 in one pass).
                module.inplace = False
        self.spec = spec
        self.model = model
        self.source = source
        self.pooling = pooling
        self.stages = list(zip(spec.layers, spec.trunk(model), strict=True))
        if fuse_batchnorm:  # within each stage only, so every catalogue layer keeps its meaning
            for _, stage in self.stages:
                fold_batchnorm(stage)
            model.requires_grad_(False)
        self.memory_format = torch.contiguous_format
        self.computes_on: torch.device | None = None
        """Where the network computes when a host keeps its weights elsewhere and casts them in at each
        call (ComfyUI's dynamic VRAM); None: where the weights are."""
        self._extractors: OrderedDict[frozenset[tuple[str, str]], FeatureExtractor] = OrderedDict()
        self._class_names: list[str] | None = None

    def __repr__(self) -> str:
        pooling = "" if self.pooling == "max" else f", {self.pooling} pooling"
        return f"Backbone({self.spec.name}, {self.source}{pooling}, device={self.device})"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def device(self) -> torch.device:
        """Where the network computes: its weights' device, or :attr:`computes_on`."""
        return self.computes_on or next(self.model.parameters()).device

    def to(self, device: torch.device | str | None = None, memory_format: torch.memory_format | None = None) -> Backbone:
        """Move the network and/or change its memory layout, in place; returns self.

        ``torch.channels_last`` runs the convolutions in NHWC, which on CPU and on tensor-core GPUs
        takes 0.67x to 1.0x of the contiguous time for the same result (see ``dream_bench``).
        Extractors handed out before stay valid: they share the moved modules.
        """
        device = self.device if device is None else torch.device(device)
        memory_format = memory_format or self.memory_format
        if device != self.device or memory_format != self.memory_format:
            self.model.to(device=device, memory_format=memory_format)
            self.memory_format = memory_format
            for extractor in self._extractors.values():
                extractor.memory_format = memory_format
        return self

    @property
    def largest_view(self) -> int | None:
        """The longest side the network sees as trained: a ViT's native size, whose grid its position
        embeddings were learnt for; None where any size is native (CNNs, Swin's relative positions).

        :func:`~dream_core.deepdream` shows such a network a larger octave in tiles of this size: on a
        small ViT trained in ``tools/vit_views.py``, dreams of 2x and 3x its size were recognised by an
        independent network in 0.67 and 0.60 of their windows, against 0.44 and 0.26 through
        interpolated position embeddings.
        """
        return self.spec.native_size if isinstance(self.stages[0][1], PatchEmbedding) else None

    @property
    def class_names(self) -> list[str] | None:
        """The name of each ``logits`` class (ImageNet's for registry backbones), or None."""
        if self._class_names is None:
            self._class_names = self.spec.class_names() or []
        return self._class_names or None

    def resolve(self, layer: str) -> str:
        """The catalogue name of ``layer`` (aliases resolved); raises a message listing the valid names.

        :data:`~dream_core.features.INPUT` (the image itself) is valid for every backbone.
        """
        layer = self.spec.aliases.get(layer, layer)
        if layer not in self.spec.layers and layer != INPUT:
            available = list(self.spec.layers)
            raise LayerError(
                f"layer: {layer!r} is not a layer of {self.name}; available: {', '.join(available)}.",
                layer,
                available,
            )
        return layer

    def channels(self, layer: str) -> int:
        layer = self.resolve(layer)
        return 3 if layer == INPUT else self.spec.layers[layer]

    def extractor(self, layers: Iterable[str]) -> FeatureExtractor:
        """A module that runs this network up to the deepest of ``layers`` and returns their activations.

        Activations come back under the names asked for, so an objective on an alias (``mixed4``)
        reads what it asked for. Extractors are cached per layer set, so a dream builds one per run,
        not one per step; the :data:`EXTRACTORS_KEPT` most recently used are kept (a long-running host
        sees many layer sets).
        """
        requested = {layer: self.resolve(layer) for layer in layers}
        if not requested:
            raise LayerError("layers: no layer given; name at least one.", "", list(self.spec.layers))
        key = frozenset(requested.items())
        if key in self._extractors:
            self._extractors.move_to_end(key)
        else:
            self._extractors[key] = FeatureExtractor(
                self.stages, requested, self.spec.mean, self.spec.std, self.memory_format)
            while len(self._extractors) > EXTRACTORS_KEPT:
                self._extractors.popitem(last=False)
        return self._extractors[key]
