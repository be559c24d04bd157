"""The backbone registry: which CNNs can dream, their layers, and how they want their input.

Each :class:`BackboneSpec` describes one torchvision network without building it: its layer
catalogue (every stage of the convolutional trunk, in execution order, with its channel count), its
input normalisation, native resolution and pretrained-weights URL. :class:`Backbone` is a built,
frozen network plus its spec; it hands out feature extractors that stop at the deepest layer asked for.

Convention: a layer's name is the name of the trunk stage whose *output* it is. The trunk is the
network flattened into stages that run one after the other; VGG and AlexNet stages get Caffe-style
names (``conv4_3``, ``relu4_3``, ``pool4``), the others keep torchvision's attribute names
(``inception4c``, ``Mixed_6b``, ``layer3``). Every registry catalogue ends with ``logits``, the
classifier's output :math:`(B, 1000)`, so ``channel("logits", k)`` is the score of ImageNet class ``k``.
Any ``nn.Module`` becomes a backbone with :func:`backbone_from_module`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .errors import DreamError, LayerError
from .features import INPUT, FeatureExtractor, Stage
from .transformers import (ClassTokenHead, GridTokens, PatchEmbedding, PooledHead, block_stages,
                           clip_vision_stages, hierarchical_layers, transformer_layers)

__all__ = ["BackboneSpec", "Backbone", "BACKBONES", "LOGITS", "POOLINGS", "get_spec", "backbone_names",
           "fold_batchnorm", "average_pooling", "backbone_from_module", "backbone_from_clip_vision"]

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


EXTRACTORS_KEPT = 16  # layer sets whose extractor (and its probed sizes) a backbone keeps
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# GoogLeNet and Inception v3 were trained on (x - 0.5) / 0.5; torchvision reaches that through
# `transform_input`, which we switch off and replace with the normalisation itself.
HALF = (0.5, 0.5, 0.5)


_FLATTEN = "flatten"


def _children_then_head(skipped: Sequence[str], head: Sequence[str]) -> Callable[[nn.Module], list[nn.Module]]:
    """Trunk = the module's children in order (without ``skipped``: the head, auxiliary branches),
    then one ``logits`` stage made of the ``head`` children in the order the module's forward runs them."""
    return lambda model: [*(m for name, m in model.named_children() if name not in skipped), _head(model, head)]


def _features_then_head(model: nn.Module) -> list[nn.Module]:
    """VGG, AlexNet: the ``features`` stack, then pooling and the ``classifier`` stack as ``logits``."""
    return [*model.features, _head(model, ("avgpool", _FLATTEN, "classifier"))]


def _mobilenet_trunk(model: nn.Module) -> list[nn.Module]:
    """MobileNetV2 pools in its forward, not in a module: the head gets its own pooling."""
    return [*model.features, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), model.classifier)]


def _head(model: nn.Module, names: Sequence[str]) -> nn.Module:
    return nn.Sequential(*(nn.Flatten(1) if name == _FLATTEN else getattr(model, name) for name in names))


def _with_logits(layers: dict[str, int]) -> dict[str, int]:
    return {**layers, LOGITS: 1000}


def _vgg_layers(config: list[int | str]) -> dict[str, int]:
    """Caffe names for a VGG ``features`` config: conv{b}_{i}, relu{b}_{i}, pool{b}."""
    layers: dict[str, int] = {}
    block, index, channels = 1, 1, 3
    for entry in config:
        if entry == "M":
            layers[f"pool{block}"] = channels
            block, index = block + 1, 1
        else:
            channels = int(entry)
            layers[f"conv{block}_{index}"] = channels
            layers[f"relu{block}_{index}"] = channels
            index += 1
    return layers


def _vgg(name: str, config: list[int | str], url: str) -> BackboneSpec:
    return BackboneSpec(
        name=name,
        title=f"{name.upper()} (Simonyan & Zisserman 2014), the Gatys style-transfer network",
        build=lambda: _torchvision(name)(weights=None),
        trunk=_features_then_head,
        layers=_with_logits(_vgg_layers(config)),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        native_size=224,
        weights_url=url,
        default_layer="relu4_3" if name == "vgg16" else "relu4_4",
        categories=f"{name.upper()}_Weights.IMAGENET1K_V1",
    )


def _torchvision(builder: str) -> Callable[..., nn.Module]:
    import torchvision.models  # imported on first build: keeps `import dream_core` light

    return getattr(torchvision.models, builder)


def _vit_trunk(model: nn.Module) -> list[nn.Module]:
    """torchvision's VisionTransformer as transformer stages (see :mod:`dream_core.transformers`): its
    position embeddings interpolated, each ``EncoderBlock`` split at the MLP's hidden units, the final
    layer norm and the heads on the class token."""
    encoder = model.encoder
    parts = [(block.ln_1, _Attention(block.self_attention), block.ln_2, block.mlp[0], block.mlp[1], block.mlp[3])
             for block in encoder.layers]
    return [PatchEmbedding(model.conv_proj, lambda _: encoder.pos_embedding, lambda _: model.class_token),
            *block_stages(parts), ClassTokenHead(encoder.ln, model.heads)]


def _swin_trunk(model: nn.Module) -> list[nn.Module]:
    """torchvision's SwinTransformer as transformer stages: its patch embedding, each block split at the
    MLP's hidden units, the patch merging between stages, and the pooled head."""
    stages: list[nn.Module] = [GridTokens(model.features[0])]
    for stage in model.features[1:]:
        if isinstance(stage, nn.Sequential):
            stages += block_stages([(b.norm1, b.attn, b.norm2, b.mlp[0], b.mlp[1], b.mlp[3]) for b in stage])
        else:
            stages.append(GridTokens(stage))
    return [*stages, PooledHead(nn.Sequential(model.norm, model.permute, model.avgpool, model.flatten, model.head))]


class _Attention(nn.Module):
    """``nn.MultiheadAttention`` as self-attention of one input (torchvision's encoder blocks)."""

    def __init__(self, attention: nn.MultiheadAttention) -> None:
        super().__init__()
        self.attention = attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x, need_weights=False)[0]


_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
_VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
_INCEPTION_V3_MIXED = ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c",
                       "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]

BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in [
        BackboneSpec(
            name="googlenet",
            title=("GoogLeNet / Inception v1 (Szegedy et al. 2014), DeepDream's architecture (torchvision's "
                   "batch-normalised weights, not the Caffe ones Google dreamed with)"),
            build=lambda: _torchvision("googlenet")(
                weights=None, aux_logits=False, transform_input=False, init_weights=True),
            trunk=_children_then_head(("aux1", "aux2", "avgpool", "dropout", "fc"),
                                      ("avgpool", _FLATTEN, "dropout", "fc")),
            layers=_with_logits({"conv1": 64, "maxpool1": 64, "conv2": 64, "conv3": 192, "maxpool2": 192,
                    "inception3a": 256, "inception3b": 480, "maxpool3": 480,
                    "inception4a": 512, "inception4b": 512, "inception4c": 512, "inception4d": 528,
                    "inception4e": 832, "maxpool4": 832, "inception5a": 832, "inception5b": 1024}),
            mean=HALF,
            std=HALF,
            native_size=224,
            weights_url="https://download.pytorch.org/models/googlenet-1378be20.pth",
            default_layer="inception4c",
            ignore_keys=("aux1.", "aux2."),
            categories="GoogLeNet_Weights.IMAGENET1K_V1",
        ),
        BackboneSpec(
            name="inception_v3",
            title="Inception v3 (Szegedy et al. 2015), the Keras DeepDream network",
            build=lambda: _torchvision("inception_v3")(
                weights=None, aux_logits=False, transform_input=False, init_weights=True),
            trunk=_children_then_head(("AuxLogits", "avgpool", "dropout", "fc"),
                                      ("avgpool", "dropout", _FLATTEN, "fc")),
            layers=_with_logits({"Conv2d_1a_3x3": 32, "Conv2d_2a_3x3": 32, "Conv2d_2b_3x3": 64, "maxpool1": 64,
                    "Conv2d_3b_1x1": 80, "Conv2d_4a_3x3": 192, "maxpool2": 192,
                    "Mixed_5b": 256, "Mixed_5c": 288, "Mixed_5d": 288, "Mixed_6a": 768,
                    "Mixed_6b": 768, "Mixed_6c": 768, "Mixed_6d": 768, "Mixed_6e": 768,
                    "Mixed_7a": 1280, "Mixed_7b": 2048, "Mixed_7c": 2048}),
            mean=HALF,
            std=HALF,
            native_size=299,
            weights_url="https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
            default_layer="Mixed_6b",
            ignore_keys=("AuxLogits.",),
            aliases={f"mixed{i}": name for i, name in enumerate(_INCEPTION_V3_MIXED)},
            categories="Inception_V3_Weights.IMAGENET1K_V1",
        ),
        _vgg("vgg16", _VGG16, "https://download.pytorch.org/models/vgg16-397923af.pth"),
        _vgg("vgg19", _VGG19, "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"),
        BackboneSpec(
            name="resnet50",
            title="ResNet-50 (He et al. 2015), as in the PyTorch DeepDream tutorial",
            build=lambda: _torchvision("resnet50")(weights=None),
            trunk=_children_then_head(("avgpool", "fc"), ("avgpool", _FLATTEN, "fc")),
            layers=_with_logits({"conv1": 64, "bn1": 64, "relu": 64, "maxpool": 64,
                                 "layer1": 256, "layer2": 512, "layer3": 1024, "layer4": 2048}),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            native_size=224,
            weights_url="https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
            default_layer="layer3",
            categories="ResNet50_Weights.IMAGENET1K_V1",
        ),
        BackboneSpec(
            name="mobilenet_v2",
            title="MobileNetV2 (Sandler et al. 2018), small and fast; its ImageNet weights also ship on PyPI",
            build=lambda: _torchvision("mobilenet_v2")(weights=None),
            trunk=_mobilenet_trunk,
            layers=_with_logits({f"features.{i}": channels for i, channels in enumerate(
                [32, 16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320, 1280])}),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            native_size=224,
            weights_url="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
            default_layer="features.10",
            categories="MobileNet_V2_Weights.IMAGENET1K_V1",
        ),
        BackboneSpec(
            name="vit_b_16",
            title="ViT-B/16 (Dosovitskiy et al. 2020), a vision transformer; layers block{i}.mlp are its MLP units",
            build=lambda: _torchvision("vit_b_16")(weights=None),
            trunk=_vit_trunk,
            layers=transformer_layers(768, 3072, 12, LOGITS, 1000),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            native_size=224,
            weights_url="https://download.pytorch.org/models/vit_b_16-c867db91.pth",
            default_layer="block8.mlp",
            categories="ViT_B_16_Weights.IMAGENET1K_V1",
        ),
        BackboneSpec(
            name="swin_t",
            title="Swin-T (Liu et al. 2021), a hierarchical vision transformer with shifted windows",
            build=lambda: _torchvision("swin_t")(weights=None),
            trunk=_swin_trunk,
            layers=hierarchical_layers((96, 192, 384, 768), (2, 2, 6, 2), LOGITS, 1000),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            native_size=224,
            weights_url="https://download.pytorch.org/models/swin_t-704ceda3.pth",
            default_layer="block7.mlp",
            categories="Swin_T_Weights.IMAGENET1K_V1",
        ),
        BackboneSpec(
            name="alexnet",
            title="AlexNet (Krizhevsky et al. 2012), small and fast",
            build=lambda: _torchvision("alexnet")(weights=None),
            trunk=_features_then_head,
            layers=_with_logits({"conv1": 64, "relu1": 64, "pool1": 64, "conv2": 192, "relu2": 192,
                                 "pool2": 192, "conv3": 384, "relu3": 384, "conv4": 256, "relu4": 256,
                                 "conv5": 256, "relu5": 256, "pool5": 256}),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            native_size=224,
            weights_url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            default_layer="relu4",
            categories="AlexNet_Weights.IMAGENET1K_V1",
        ),
    ]
}


def fold_batchnorm(module: nn.Module) -> int:
    """Fold each eval-mode ``BatchNorm2d`` into the convolution that feeds it, in place; returns how many.

    ``bn(conv(x))`` becomes one convolution with scaled weights and a bias: the same function (to
    float rounding, about 1e-6 relative) without a memory-bound pass forward and backward.

    Convention: a pair is a ``Conv2d`` and a ``BatchNorm2d`` that are consecutive in an
    ``nn.Sequential``, or siblings named ``conv``/``bn`` or ``convN``/``bnN``, as in torchvision's
    GoogLeNet, Inception v3 and ResNet blocks, whose forward applies them in that order.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for parent in list(module.modules()):
        names = list(dict(parent.named_children()))
        if isinstance(parent, nn.Sequential):
            pairs = list(zip(names, names[1:]))
        else:
            pairs = [(name, "bn" + name.removeprefix("conv")) for name in names if name.startswith("conv")]
        for conv_name, bn_name in pairs:
            conv, bn = getattr(parent, conv_name, None), getattr(parent, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and not bn.training:
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
                folded += 1
    return folded


POOLINGS = ("max", "avg")


class ScaledAvgPool2d(nn.AvgPool2d):
    """Average pooling times ``scale``: stands in for a max pooling without shrinking what follows.

    The average of a window of ReLU outputs is smaller than its maximum; for VGG's 2x2 windows a
    factor of 2 (crowsonkb's style-transfer-pytorch, chosen there with the trained ImageNet weights)
    brings the activations after each pooling back to about the magnitude the next layers were
    trained on. Not re-measured here: no trained VGG weights can be downloaded on our test machines.
    """

    def __init__(self, pool: nn.MaxPool2d, scale: float = 2.0) -> None:
        super().__init__(pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode, count_include_pad=False)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.scale


def average_pooling(module: nn.Module) -> int:
    """Replace every ``MaxPool2d`` in ``module`` by a rescaled average pooling, in place; returns how many.

    Gatys et al. found average pooling gives smoother style transfers; the gradient reaches every
    pixel of each window instead of one.
    """
    replaced = 0
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d) and child.dilation in (1, (1, 1)):
                setattr(parent, name, ScaledAvgPool2d(child))
                replaced += 1
    return replaced


def backbone_names() -> list[str]:
    return list(BACKBONES)


def get_spec(name: str) -> BackboneSpec:
    """The spec registered as ``name``; an unknown name gets a message that lists the choices."""
    if name not in BACKBONES:
        raise DreamError(f"backbone: unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}.")
    return BACKBONES[name]


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
        takes 0.67x to 1.0x of the contiguous time for the same result (see ``dream_core.bench``).
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
