"""The registry: the torchvision networks that can dream, each a :class:`~.spec.BackboneSpec` whose trunk
flattens the network into stages that run one after the other (see :mod:`dream_core.backbones`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..errors import DreamError
from ..transformers import (
    ClassTokenHead,
    GridTokens,
    PatchEmbedding,
    PooledHead,
    block_stages,
    hierarchical_layers,
    transformer_layers,
)
from .spec import HALF, IMAGENET_MEAN, IMAGENET_STD, LOGITS, BackboneSpec

__all__ = ["BACKBONES", "backbone_names", "get_spec"]


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


def backbone_names() -> list[str]:
    return list(BACKBONES)


def get_spec(name: str) -> BackboneSpec:
    """The spec registered as ``name``; an unknown name gets a message that lists the choices."""
    if name not in BACKBONES:
        raise DreamError(f"backbone: unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}.")
    return BACKBONES[name]
