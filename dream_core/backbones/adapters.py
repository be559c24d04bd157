"""Networks from elsewhere as backbones: any ``nn.Module`` (your own classifier, a test net) and a CLIP
vision tower already loaded by its host."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..errors import DreamError
from ..features import Stage
from ..transformers import clip_vision_stages
from .backbone import Backbone
from .spec import IMAGENET_MEAN, IMAGENET_STD, LOGITS, BackboneSpec

__all__ = ["backbone_from_module", "backbone_from_clip_vision", "CLIP_MEAN", "CLIP_STD"]


def backbone_from_module(
    module: nn.Module,
    stages: Sequence[tuple[str, nn.Module]] | None = None,
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    class_names: Sequence[str] = (),
    name: str = "custom",
    native_size: int = 224,
    default_layer: str | None = None,
) -> Backbone:
    """Make any network a backbone: your own classifier, a fine-tuned model, a small test net.

    Args:
        module: the network, with its weights; it is frozen and put in eval mode in place.
        stages: ``(name, submodule)`` pairs that, run one after the other on the normalised image,
            compute the network; default: the module's children in order (an ``nn.Sequential``).
            Name the classifier's stage ``"logits"`` to use class objectives on it.
        mean, std: the per-channel normalisation of the network's 0..1 RGB input.
        class_names: the names of the ``logits`` classes, if any.
        name: shown in messages.
        native_size: the input size the network was trained at; the channel counts are read off one
            forward pass of a blank image of this size.
        default_layer: the layer to dream when none is chosen (default: the last one before ``logits``).

    Example:
        >>> from collections import OrderedDict
        >>> net = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 8, 3), relu=nn.ReLU(),
        ...                                 logits=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))))
        >>> backbone = backbone_from_module(net, class_names=["cats", "dogs"], native_size=32)
        >>> backbone.spec.layers, backbone.class_names
        ({'conv': 8, 'relu': 8, 'logits': 2}, ['cats', 'dogs'])
    """
    stages = list(module.named_children()) if stages is None else list(stages)
    if not stages:
        raise DreamError(f"{name}: the module has no stages; pass stages=[(name, submodule), ...].")
    channels: dict[str, int] = {}
    x = (torch.zeros(1, 3, native_size, native_size) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            for stage_name, stage in stages:
                x = stage(x.to(next(stage.parameters(), x).device) if isinstance(x, torch.Tensor) else x)
                channels[stage_name] = (stage.activation(x) if isinstance(stage, Stage) else x).shape[1]
    except RuntimeError as error:
        module.train(was_training)
        raise DreamError(f"{name}: the stages do not run one after the other on a {native_size} px image "
                         f"({error}); check their order, or give native_size.") from error
    trunk_names = [n for n in channels if n != LOGITS]
    spec = BackboneSpec(
        name=name, title=f"{name} (a user module)", build=_not_rebuildable(name),
        trunk=lambda _: [stage for _, stage in stages], layers=channels, mean=tuple(mean), std=tuple(std),
        native_size=native_size, weights_url="",
        default_layer=default_layer or (trunk_names[-1] if trunk_names else LOGITS),
        categories=tuple(class_names))
    return Backbone(spec, module, f"module {type(module).__name__}")


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def backbone_from_clip_vision(model: nn.Module, *, image_size: int = 224, mean: Sequence[float] = CLIP_MEAN,
                              std: Sequence[float] = CLIP_STD, name: str = "clip_vision") -> Backbone:
    """A CLIP vision tower as a backbone: the model of ComfyUI's ``CLIP_VISION`` (``clip_vision.model``) or
    transformers' ``CLIPVisionModelWithProjection``, whose weights the caller already loaded.

    Its catalogue (see :mod:`dream_core.transformers`): ``patches``, ``block{i}.mlp`` (the MLP units)
    and ``block{i}`` per encoder block, and ``embedding``, the projected image embedding that CLIP
    compares with text. The picture is normalised in float with ``mean`` and ``std`` (ComfyUI's own
    preprocessing rounds to 8 bits, which has no gradient) and seen at its own size, the position
    embeddings interpolated from ``image_size``. The module is frozen and put in eval mode in place.
    """
    try:
        stages, layers = clip_vision_stages(model)
    except (AttributeError, ValueError) as error:
        raise DreamError(f"{name}: {type(model).__name__} is not a CLIP ViT vision tower ({error}); "
                         "load a CLIP vision model (ViT-L, ViT-H, ViT-bigG).") from None
    blocks = (len(layers) - 2) // 2
    spec = BackboneSpec(
        name=name, title=f"{name}: CLIP vision, {blocks} blocks", build=_not_rebuildable(name),
        trunk=lambda _: stages, layers=layers, mean=tuple(mean), std=tuple(std), native_size=image_size,
        weights_url="", default_layer=f"block{(2 * blocks) // 3}.mlp")
    return Backbone(spec, model, f"CLIP vision {type(model).__name__}")


def _not_rebuildable(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        raise DreamError(f"{name}: a backbone made from a module cannot be rebuilt; wrap the module again.")

    return build
