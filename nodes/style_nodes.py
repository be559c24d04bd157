"""Style Loss."""

from __future__ import annotations

import torch

from ..dream_core import from_bhwc
from ..dream_core.backbones import Backbone
from ..dream_core.objectives import LayerTerm, Objective
from ..dream_core.references import style_objective
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
        with host.dreaming(backbone, pixels=style_image[0, ..., 0].numel()):
            style = style_objective(backbone, from_bhwc(style_image, "style_image"), layers, weight)
        return (style if objective is None else objective + style,)
