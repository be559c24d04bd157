"""Style Loss, Content Loss, TV Loss, Neural Style Transfer."""

from __future__ import annotations

import torch

from ..dream_core import (INITS, OPTIMIZERS, STATISTICS, TV_KINDS, Backbone, DreamError, LayerTerm,
                          Objective, content_objective, from_bhwc, gatys_layers, style_objective, stylize_task,
                          to_bhwc, total_variation)
from . import host
from .catalogue import LAYER_MENU, check_layer_channel, layer_weights_only, validation
from .dream_nodes import SEED_MAX, precision_input

AUTO = "auto"
INIT_IMAGE = "image"


def _chained(objective: Objective, chained: Objective | None) -> tuple[Objective]:
    return (objective if chained is None else chained + objective,)


def _chain_input() -> dict:
    return {"objective": ("DD_OBJECTIVE", {"tooltip": "Another objective to add this one to: chain Style, "
                          "Content and TV Loss nodes (several styles blend by their weights)."})}


class SelectStyleLayer:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "backbone": ("DD_BACKBONE", {"tooltip": "The backbone whose layer to pick."}),
                "layer": (LAYER_MENU, {"default": "relu1_1", "tooltip": "A layer whose style statistics (or, for "
                          "Guided Dream, features) to match. Early layers carry colour and fine texture, deep "
                          "ones larger motifs. The menu shows the connected backbone's layers."}),
                "weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.05,
                                     "tooltip": "How much this layer counts among the chained ones."}),
            },
            "optional": {
                "layers": ("DD_LAYERS", {"tooltip": "Layers chosen so far: chain several."}),
            },
        }

    RETURN_TYPES = ("DD_LAYERS",)
    RETURN_NAMES = ("layers",)
    OUTPUT_TOOLTIPS = ("The chained layers with their weights, for Style Loss or Guided Dream.",)
    FUNCTION = "select"
    CATEGORY = "DeepDream/objectives"
    DESCRIPTION = ("Picks a style layer and its weight, with nothing else to set: for Style Loss (which uses "
                   "Gatys' layers when none is connected) and Guided Dream.")

    @classmethod
    def VALIDATE_INPUTS(cls, layer: str | None = None):
        return validation(check_layer_channel, layer=layer, channel=-1)

    def select(self, backbone: Backbone, layer: str, weight: float,
               layers: tuple[LayerTerm, ...] = ()) -> tuple[tuple[LayerTerm, ...]]:
        return ((*layers, LayerTerm(backbone.resolve(layer), weight)),)


class StyleLoss:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "style_image": ("IMAGE", {"tooltip": "The picture whose textures and colours to take on "
                                "(first image of the batch)."}),
                "backbone": ("DD_BACKBONE", {"tooltip": "The same backbone as the dream or transfer node's."}),
                "weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.1, "tooltip":
                           "Strength of this style, a plain multiplier (as --style-weights): chained styles "
                           "blend in proportion to their weights, and their sum is the total strength."}),
            },
            "optional": {
                "layers": ("DD_LAYERS", {"tooltip": "Layers whose style statistics are matched, with their "
                           "weights (Select Style Layer). None connected: Gatys' relu1_1 .. relu5_1 on VGG, "
                           "five layers up to the default one elsewhere."}),
                "style_scale": ("FLOAT", {"default": 1.0, "min": 0.1, "max": 4.0, "step": 0.05, "tooltip":
                                "The style picture is seen at this multiple of the image's size: above 1 "
                                "paints finer strokes, below 1 larger ones."}),
                "statistic": (list(STATISTICS), {"default": "gram", "tooltip": "gram: Gatys' channel "
                              "correlations; mean_cov: the mean and covariance of the features (Wasserstein-2), "
                              "which also matches the style's colours more closely."}),
                "mask": ("MASK", {"tooltip": "Where on the image this style applies (1), for regional styles: "
                         "give each chained style its own mask."}),
                **_chain_input(),
            },
        }

    RETURN_TYPES = ("DD_OBJECTIVE",)
    RETURN_NAMES = ("objective",)
    OUTPUT_TOOLTIPS = ("The style objective (plus the chained one), for Neural Style Transfer or a dream node's "
                       "'objective' input.",)
    FUNCTION = "build"
    CATEGORY = "DeepDream/objectives"
    DESCRIPTION = ("Gatys style loss: pulls the feature statistics (Gram matrices) of the image towards the "
                   "style picture's, so it takes on its textures. The style is run through the network when "
                   "the transfer or dream runs, at the size it needs.")

    def build(self, style_image: torch.Tensor, backbone: Backbone, weight: float,
              layers: tuple[LayerTerm, ...] | None = None, style_scale: float = 1.0, statistic: str = "gram",
              mask: torch.Tensor | None = None, objective: Objective | None = None) -> tuple[Objective]:
        layers = (tuple(LayerTerm(name) for name in gatys_layers(backbone)[1]) if layers is None
                  else layer_weights_only(layers, "Style Loss"))
        with host.gradients():  # the style and mask are kept for later passes: no inference tensors
            style = style_objective(backbone, from_bhwc(style_image, "style_image").clone(), layers, weight,
                                    statistic=statistic, scale=style_scale,
                                    mask=None if mask is None else mask.clone())
        return _chained(style, objective)


class ContentLoss:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "content_image": ("IMAGE", {"tooltip": "The picture whose layout to keep; one per image of the "
                                  "batch, or one for all. Seen at the size of the image being worked on."}),
                "backbone": ("DD_BACKBONE", {"tooltip": "The same backbone as the dream or transfer node's."}),
                "layer": ([AUTO, *LAYER_MENU], {"default": AUTO, "tooltip": "Where the features are compared; "
                          "auto = relu4_2 on VGG (Gatys), the default layer elsewhere. Deeper keeps less detail."}),
                "weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.1,
                                     "tooltip": "Strength of the content match."}),
            },
            "optional": _chain_input(),
        }

    RETURN_TYPES = ("DD_OBJECTIVE",)
    RETURN_NAMES = ("objective",)
    OUTPUT_TOOLTIPS = ("The content objective (plus the chained one).",)
    FUNCTION = "build"
    CATEGORY = "DeepDream/objectives"
    DESCRIPTION = ("Gatys content loss: keeps the image's features at one layer close to the content picture's, "
                   "so a dream or style keeps its subject.")

    def build(self, content_image: torch.Tensor, backbone: Backbone, layer: str, weight: float,
              objective: Objective | None = None) -> tuple[Objective]:
        layer = gatys_layers(backbone)[0] if layer == AUTO else layer
        with host.gradients():
            picture = from_bhwc(content_image, "content_image").clone()
            return _chained(content_objective(backbone, picture, layer, weight), objective)


class TVLoss:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "kind": (list(TV_KINDS), {"default": "l2", "tooltip": "l2: smooth; l1: keeps edges sharp; "
                         "keras: (dx^2 + dy^2)^1.25, the Keras style-transfer source's."}),
                "weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.1, "tooltip":
                           "Strength of the penalty on differences between neighbouring pixels."}),
            },
            "optional": _chain_input(),
        }

    RETURN_TYPES = ("DD_OBJECTIVE",)
    RETURN_NAMES = ("objective",)
    OUTPUT_TOOLTIPS = ("Minus the total variation (plus the chained objective): adding it smooths the result.",)
    FUNCTION = "build"
    CATEGORY = "DeepDream/objectives"
    DESCRIPTION = "Total-variation penalty: discourages pixel noise and high-frequency artefacts."

    def build(self, kind: str, weight: float, objective: Objective | None = None) -> tuple[Objective]:
        return _chained(-weight * total_variation(kind), objective)


class StyleTransfer:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "content_image": ("IMAGE", {"tooltip": "The pictures to repaint; every image of the batch is "
                                  "transferred, at its own size."}),
                "backbone": ("DD_BACKBONE", {"tooltip": "vgg19 is Gatys' network; Load Dream Backbone's 'avg' "
                             "pooling gives smoother results."}),
                "style": ("DD_OBJECTIVE", {"tooltip": "From Style Loss nodes (chain several to blend styles or "
                          "give each a region); Content and TV Loss nodes may be chained in too."}),
                "content_weight": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 1000.0, "step": 0.05, "tooltip":
                                   "How closely the layout of the content is kept; 0 = texture synthesis."}),
                "content_layer": ([AUTO, *LAYER_MENU], {"default": AUTO, "tooltip": "Where the content is "
                                  "compared; auto = relu4_2 on VGG."}),
                "tv_weight": ("FLOAT", {"default": 10.0, "min": 0.0, "max": 1000.0, "step": 0.5,
                                        "tooltip": "Smoothing penalty against pixel noise; 0 = off."}),
                "steps": ("INT", {"default": 100, "min": 0, "max": 5000, "tooltip": "Iterations per scale "
                          "(L-BFGS: function evaluations)."}),
                "optimizer": (list(OPTIMIZERS), {"default": "lbfgs", "tooltip": "lbfgs: converges in fewer "
                              "steps (neural-style's default), more memory; adam: steady, cheap, uses learning_rate."}),
                "learning_rate": ("FLOAT", {"default": 0.02, "min": 0.0001, "max": 1.0, "step": 0.001,
                                            "tooltip": "Adam's step size in 0..1 pixel units; ignored by lbfgs."}),
                "init": ([*INITS, INIT_IMAGE], {"default": "content", "tooltip": "Where the picture starts: the "
                         "content, noise, or init_image."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX,
                                 "tooltip": "Seed of the noise init; image i of a batch uses seed + i."}),
                "original_colors": ("BOOLEAN", {"default": False, "tooltip": "Keep the content's colours; take "
                                    "only the style's light and texture."}),
                "scales": ("INT", {"default": 1, "min": 0, "max": 12, "tooltip": "Coarse-to-fine: transfer at "
                           "this many sizes, each 1.41x the last, ending at the content's; 0 = from 128 px up."}),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "Where the picture may change (1); 0 keeps the content exactly."}),
                "init_image": ("IMAGE", {"tooltip": "The start for init = image (resized)."}),
                "ema": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 0.999, "step": 0.001, "tooltip": "With "
                        "adam: the result is a moving average of the iterates with this decay (0.99 for long runs); "
                        "0 = off."}),
                **precision_input(),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The content images in the style, same size and batch.",)
    FUNCTION = "transfer"
    CATEGORY = "DeepDream"
    DESCRIPTION = ("Gatys neural style transfer: optimises each picture to keep the content's layout with the "
                   "style's textures, with L-BFGS or Adam, optionally coarse-to-fine.")

    def transfer(self, content_image: torch.Tensor, backbone: Backbone, style: Objective, content_weight: float,
                 content_layer: str, tv_weight: float, steps: int, optimizer: str, learning_rate: float, init: str,
                 seed: int, original_colors: bool, scales: int, mask: torch.Tensor | None = None,
                 init_image: torch.Tensor | None = None, ema: float = 0.0,
                 precision: str = "auto") -> tuple[torch.Tensor]:
        if init == INIT_IMAGE and init_image is None:
            raise DreamError("init: 'image' needs an init_image; connect one or choose content or noise.")
        content = from_bhwc(content_image, "content_image")
        start = from_bhwc(init_image, "init_image") if init == INIT_IMAGE else init
        layer = None if content_layer == AUTO else content_layer
        task = stylize_task(content, backbone, style, content_weight=content_weight, content_layer=layer,
                            tv_weight=tv_weight, steps=steps, optimizer=optimizer, learning_rate=learning_rate,
                            scales=scales, init=start, seed=seed, original_colors=original_colors, ema=ema, mask=mask)
        return (to_bhwc(host.run(task, precision)),)
