"""Style Loss."""

from __future__ import annotations

import torch

from ..dream_core import Backbone, LayerTerm, Objective, deepdream_memory, from_bhwc, style_objective, terms_objective
from . import host


class StyleLoss:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "style_image": ("IMAGE", {"tooltip": "The picture whose textures and colours to take on "
                                "(first image of the batch)."}),
                "backbone": ("DD_BACKBONE", {"tooltip": "The same backbone as the dream node's."}),
                "layers": ("DD_LAYERS", {"tooltip": "Layers whose Gram matrices are matched, with their weights; "
                           "Gatys uses relu1_1 .. relu5_1 of vgg19."}),
                "weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.1, "tooltip":
                           "Strength of the style against the dream's layer objective."}),
            },
            "optional": {
                "objective": ("DD_OBJECTIVE", {"tooltip": "Another objective to add this one to."}),
            },
        }

    RETURN_TYPES = ("DD_OBJECTIVE",)
    RETURN_NAMES = ("objective",)
    OUTPUT_TOOLTIPS = ("The style objective (plus the chained one), for a dream node's 'objective' input.",)
    FUNCTION = "build"
    CATEGORY = "DeepDream/objectives"
    DESCRIPTION = ("Gatys style loss: pulls the Gram matrices (channel correlations) of the dream towards the "
                   "style image's, so the dream takes on its textures.")

    def build(self, style_image: torch.Tensor, backbone: Backbone, layers: tuple[LayerTerm, ...], weight: float,
              objective: Objective | None = None) -> tuple[Objective]:
        style_picture = from_bhwc(style_image, "style_image")
        memory = deepdream_memory(tuple(style_picture.shape[-2:]), backbone, terms_objective(layers), octaves=1)
        with host.dreaming(backbone, memory):
            style = style_objective(backbone, style_picture, layers, weight)
        return (style if objective is None else objective + style,)
