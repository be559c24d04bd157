"""CLIP Vision Backbone, CLIP Embedding Target: dreaming through the CLIP models already in the graph."""

from __future__ import annotations

import torch

from ..dream_core import EMBEDDING, Backbone, Cutouts, DreamError, Objective, cosine, embedding_task, from_bhwc
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
                   "model's own size (224 px; 336 px for ViT-L/14-336) is seen whole, a larger one in tiles of exactly "
                   "that size (the dream node's tile_size 0: whole, position embeddings stretched); the picture is "
                   "normalised in float and padded to whole patches, so the gradient reaches every pixel. The host's "
                   "model is used in place, loaded by its own patcher to the device the dream computes on.")

    def build(self, clip_vision) -> tuple[Backbone]:
        return (host.clip_vision_backbone(clip_vision),)


DEFAULT_CUTOUTS = 16


class ClipTarget:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "backbone": ("DD_BACKBONE", {"tooltip": "From CLIP Vision Backbone."}),
                "weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.05, "tooltip":
                           "Strength of the pull towards the prompt and the image."}),
                "cutouts": ("INT", {"default": DEFAULT_CUTOUTS, "min": 0, "max": 128, "tooltip":
                            "Random crops of the picture scored each step, at the model's own size: the picture must "
                            "show the prompt at every place and scale (as VQGAN+CLIP and CLIP-guided diffusion do). "
                            "0: the picture in native tiles (the target painted into each tile). Each crop is one pass "
                            "of the model: 32 a little better than 16, twice as slow."}),
            },
            "optional": {
                "clip": ("CLIP", {"tooltip": "The text encoder that belongs to the vision model, for the prompts: "
                         "SDXL's (its clip_g) with clip_vision_g, SD2.x's with a ViT-H vision file, a CLIP-L file "
                         "that carries its text_projection with a ViT-L one. SD1.x checkpoints' CLIP is refused: "
                         "it has no trained projection into image space."}),
                "text": ("STRING", {"multiline": True, "default": "", "tooltip": "Dream towards this prompt "
                         "(needs clip)."}),
                "negative_text": ("STRING", {"multiline": True, "default": "", "tooltip": "Dream away from this "
                                  "prompt (needs clip)."}),
                "file_projection": ("BOOLEAN", {"default": False, "tooltip": "ComfyUI pools SD1.x's and Flux's "
                                    "CLIP-L without its text_projection (an SD1.x checkpoint has none). Switch on only "
                                    "for a CLIP-L file that carries text_projection.weight (check its keys), to dream "
                                    "it with a ViT-L/14 vision file."}),
                "negative_weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.05, "tooltip":
                                    "Strength of the push away from the negative prompt."}),
                "image": ("IMAGE", {"tooltip": "Dream towards this picture's CLIP embedding (first image, embedded "
                          "as Load CLIP Vision's encoder sees it: short side resized, centre crop): a guided dream "
                          "in CLIP space."}),
                "objective": ("DD_OBJECTIVE", {"tooltip": "Another objective to add this one to."}),
            },
        }

    RETURN_TYPES = ("DD_OBJECTIVE",)
    RETURN_NAMES = ("objective",)
    OUTPUT_TOOLTIPS = ("weight x cosine to each target - negative_weight x cosine to the negative, scored on the "
                       "cutouts, for a dream node's 'objective' input (no layers needed).",)
    FUNCTION = "build"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Steers a dream in CLIP space: raises the cosine between the picture's CLIP image embedding and "
                   "a prompt's (or a picture's), lowers it to a negative prompt's. The prompts are encoded here, "
                   "through the text encoder's trained projection into image space (CLIP Text Encode's pooled "
                   "output is not in that space for most models).")

    def build(self, backbone: Backbone, weight: float, cutouts: int, clip=None, text: str = "",
              negative_text: str = "", file_projection: bool = False, negative_weight: float = 1.0,
              image: torch.Tensor | None = None, objective: Objective | None = None) -> tuple[Objective]:
        if EMBEDDING not in backbone.spec.layers:
            raise DreamError(f"backbone: {backbone.name} has no CLIP image embedding; connect a CLIP Vision Backbone.")
        prompts = [(name, value, sign) for name, value, sign in
                   (("text", text, weight), ("negative_text", negative_text, -negative_weight)) if value.strip()]
        if prompts and clip is None:
            raise DreamError(f"clip: connect the CLIP text encoder that belongs to the vision model to use "
                             f"{prompts[0][0]}.")
        terms = []
        with host.gradients():  # targets are kept for later passes: no inference tensors
            for name, value, sign in prompts:
                target = _checked(host.clip_text_embedding(clip, value, name, file_projection), backbone, name)
                terms.append(sign * cosine(EMBEDDING, target))
            if image is not None:
                guide = from_bhwc(image, "image")[:1]
                target = host.run(embedding_task(backbone, guide, EMBEDDING, "image"), "fp32")
                terms.append(weight * cosine(EMBEDDING, target.cpu()))
        if not terms:
            raise DreamError("CLIP Embedding Target: write a prompt (text or negative_text, with clip connected) "
                             "or connect an image.")
        made = Objective.sum(terms)
        if cutouts:
            made = made.through(Cutouts(cutouts, backbone.spec.native_size))
        return (made if objective is None else objective + made,)


def _checked(embedding: torch.Tensor, backbone: Backbone, name: str) -> torch.Tensor:
    wanted = backbone.spec.layers[EMBEDDING]
    if embedding.shape[-1] != wanted:
        raise DreamError(f"{name}: the text embedding has {embedding.shape[-1]} values, {backbone.name}'s image "
                         f"embedding {wanted}; use the text encoder that belongs to the vision model "
                         f"({host.PAIRINGS}).")
    return embedding.clone()
