"""CLIP Vision Backbone, CLIP Embedding Target: dreaming through the CLIP models already in the graph."""

from __future__ import annotations

import torch

from ..dream_core import EMBEDDING, Backbone, DreamError, Objective, cosine, from_bhwc, reference_activations
from . import host

CATEGORY = "DeepDream/clip"


class ClipVisionBackbone:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip_vision": ("CLIP_VISION", {"tooltip": "From Load CLIP Vision: a CLIP ViT "
                             "(ViT-L/14, ViT-H/14 or ViT-bigG/14, as IPAdapter and unCLIP use). SigLIP and DINOv2 "
                             "towers are not supported."})}}

    RETURN_TYPES = ("DD_BACKBONE",)
    RETURN_NAMES = ("backbone",)
    OUTPUT_TOOLTIPS = ("The CLIP vision tower as a dream backbone: layers block{i}.mlp (its units), block{i} and "
                       "embedding, for every dream node and CLIP Embedding Target.",)
    FUNCTION = "build"
    CATEGORY = "DeepDream/loaders"
    DESCRIPTION = ("Dreams through the CLIP vision model of Load CLIP Vision: no download. An octave up to the "
                   "model's own size (224 px) is seen whole, a larger one in tiles of that size (the dream node's "
                   "tile_size 0: whole, position embeddings stretched); the picture is normalised in float, so the "
                   "gradient reaches every pixel. The host's model is used in place and loaded by its own patcher.")

    def build(self, clip_vision) -> tuple[Backbone]:
        return (host.clip_vision_backbone(clip_vision),)


def _pooled(conditioning, name: str) -> torch.Tensor:
    """The pooled (projected) text embedding of CLIP Text Encode's CONDITIONING."""
    try:
        pooled = conditioning[0][1].get("pooled_output")
    except (IndexError, KeyError, TypeError, AttributeError):
        pooled = None
    if pooled is None:
        raise DreamError(f"{name}: this CONDITIONING has no pooled text embedding; connect CLIP Text Encode.")
    return pooled[:1].float()


class ClipTarget:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "backbone": ("DD_BACKBONE", {"tooltip": "From CLIP Vision Backbone."}),
                "weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.05, "tooltip":
                           "Strength of the pull towards the targets."}),
            },
            "optional": {
                "positive": ("CONDITIONING", {"tooltip": "CLIP Text Encode: dream towards this prompt. Its pooled "
                             "embedding must be as wide as the vision model's (SDXL's CLIP-G with ViT-bigG: 1280)."}),
                "negative": ("CONDITIONING", {"tooltip": "CLIP Text Encode: dream away from this prompt."}),
                "negative_weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.05, "tooltip":
                                    "Strength of the push away from the negative prompt."}),
                "image": ("IMAGE", {"tooltip": "Dream towards this picture's CLIP embedding (first image): a guided "
                          "dream in CLIP space."}),
                "objective": ("DD_OBJECTIVE", {"tooltip": "Another objective to add this one to."}),
            },
        }

    RETURN_TYPES = ("DD_OBJECTIVE",)
    RETURN_NAMES = ("objective",)
    OUTPUT_TOOLTIPS = ("weight x cosine to each target - negative_weight x cosine to the negative, for a dream "
                       "node's 'objective' input.",)
    FUNCTION = "build"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Steers a dream in CLIP space: raises the cosine between the picture's CLIP image embedding and "
                   "a prompt's (or a picture's), lowers it to a negative prompt's.")

    def build(self, backbone: Backbone, weight: float, positive=None, negative=None, negative_weight: float = 1.0,
              image: torch.Tensor | None = None, objective: Objective | None = None) -> tuple[Objective]:
        if EMBEDDING not in backbone.spec.layers:
            raise DreamError(f"backbone: {backbone.name} has no CLIP image embedding; connect a CLIP Vision Backbone.")
        terms = []
        with host.gradients():  # targets are kept for later passes: no inference tensors
            if positive is not None:
                terms.append(weight * cosine(EMBEDDING, _checked(_pooled(positive, "positive"), backbone, "positive")))
            if negative is not None:
                terms.append(-negative_weight * cosine(EMBEDDING, _checked(_pooled(negative, "negative"), backbone,
                                                                           "negative")))
            if image is not None:
                with host.dreaming(backbone, 0), torch.no_grad():
                    guide = reference_activations(backbone, from_bhwc(image, "image")[:1], [EMBEDDING], "image")
                terms.append(weight * cosine(EMBEDDING, guide[EMBEDDING].cpu()))
        if not terms:
            raise DreamError("CLIP Embedding Target: connect a positive prompt, a negative prompt or an image.")
        made = Objective.sum(terms)
        return (made if objective is None else objective + made,)


def _checked(embedding: torch.Tensor, backbone: Backbone, name: str) -> torch.Tensor:
    wanted = backbone.spec.layers[EMBEDDING]
    if embedding.shape[-1] != wanted:
        raise DreamError(f"{name}: the text embedding has {embedding.shape[-1]} values, {backbone.name}'s image "
                         f"embedding {wanted}; use the text encoder that belongs to the vision model (SDXL's "
                         "CLIP-G with ViT-bigG: both 1280).")
    return embedding.clone()
