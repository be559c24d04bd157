"""Octave Pyramid, DeepDream, Guided Dream."""

from __future__ import annotations

from dataclasses import asdict

import torch

from ..dream_core import (DETAIL_MODES, GRAD_NORMS, PRECISIONS, Backbone, DreamError, LayerTerm, Objective,
                          OctaveSettings, check_tile_size, dream_task, from_bhwc, guided_dream_task, terms_objective,
                          to_bhwc)
from . import host
from .catalogue import layer_weights_only, validation

SEED_MAX = 0xFFFFFFFFFFFFFFFF


class OctavePyramid:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "octaves": ("INT", {"default": 4, "min": 1, "max": 12, "tooltip": "Sizes to dream at, smallest "
                            "first; more octaves give larger patterns. Reduced automatically for small images."}),
                "octave_scale": ("FLOAT", {"default": 1.4, "min": 1.05, "max": 4.0, "step": 0.05,
                                           "tooltip": "Size ratio between neighbouring octaves."}),
                "detail": (list(DETAIL_MODES), {"default": "reinject", "tooltip": "reinject: Google's "
                           "original, dreamed detail is added to each larger octave of the original; blend: the "
                           "VGG19 recipe, the upscaled dream is mixed with the blurred original."}),
                "blend": ("FLOAT", {"default": 0.6, "min": 0.0, "max": 1.0, "step": 0.05,
                                    "tooltip": "For 'blend': weight of the smaller octave's dream."}),
            },
        }

    RETURN_TYPES = ("DD_OCTAVES",)
    RETURN_NAMES = ("octaves",)
    OUTPUT_TOOLTIPS = ("Pyramid settings for a dream node.",)
    FUNCTION = "build"
    CATEGORY = "DeepDream"
    DESCRIPTION = "Sets up the octave pyramid: dream small first, then carry the dream up to full size."

    def build(self, octaves: int, octave_scale: float, detail: str, blend: float) -> tuple[OctaveSettings]:
        return (OctaveSettings(octaves, octave_scale, detail, blend),)


def precision_input() -> dict:
    return {"precision": (list(PRECISIONS), {"default": "auto", "tooltip": "auto: what ComfyUI picks for its own "
                          "image models on this device (bf16 on recent GPUs, fp16 on older ones, fp32 on the CPU). "
                          "bf16/fp16 run the network in half precision (fp16 with loss scaling), with a slightly "
                          "different picture; the step itself stays fp32."})}


def _ascent_inputs() -> dict:
    return {
        "steps": ("INT", {"default": 10, "min": 0, "max": 1000,
                          "tooltip": "Gradient-ascent steps per octave."}),
        "step_size": ("FLOAT", {"default": 0.01, "min": 0.0, "max": 0.5, "step": 0.001, "round": 0.0001,
                                "tooltip": "How much a pixel changes per step on average (0..1 units)."}),
        "jitter": ("INT", {"default": 32, "min": 0, "max": 256,
                           "tooltip": "Largest random shift (pixels) before each step; hides grid artefacts."}),
        "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX,
                         "tooltip": "Seed of the jitter; image i of a batch uses seed + i."}),
    }


def _shared_optional_inputs() -> dict:
    return {
        "octaves": ("DD_OCTAVES", {"tooltip": "Octave Pyramid settings; default 4 octaves of 1.4."}),
        "mask": ("MASK", {"tooltip": "Where the image may change: 1 = dream, 0 = keep exactly; soft values dream "
                          "less. Resized to the image; one mask for the batch or one per image."}),
        "invert_mask": ("BOOLEAN", {"default": False, "tooltip": "Dream where the mask is 0 instead. A mask from "
                                    "Load Image is 1 where the picture was transparent."}),
        "tile_size": ("INT", {"default": 512, "min": 0, "max": 4096, "step": 64, "tooltip": "Octaves larger than "
                              "1024 px are dreamed in tiles of this size, so 4K images fit in memory; 0 = never tile. "
                              "A CLIP or ViT backbone sees octaves above its own size (224 px for most) in tiles of that size "
                              "(0: whole, its position embeddings stretched)."}),
        "grad_norm": (list(GRAD_NORMS), {"default": "mean_abs", "tooltip": "How each step's gradient is scaled: "
                      "mean_abs (Google), std (Keras), laplacian: every frequency band normalised on its own "
                      "(lucid), which keeps large dreams free of high-frequency noise, or sign: every pixel moves "
                      "by exactly the step (FGSM's step)."}),
        **precision_input(),
    }


class DeepDream:
    @classmethod
    def VALIDATE_INPUTS(cls, tile_size: int | None = None):
        return validation(check_tile_size, tile_size=tile_size)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The images to dream; every image of the batch is dreamed."}),
                "backbone": ("DD_BACKBONE", {"tooltip": "From Load Dream Backbone."}),
                **_ascent_inputs(),
            },
            "optional": {
                "layers": ("DD_LAYERS", {"tooltip": "From Select Dream Layer: the layers to amplify. Optional when "
                           "an objective is connected."}),
                **_shared_optional_inputs(),
                "objective": ("DD_OBJECTIVE", {"tooltip": "Terms added to the layer objective (or dreamed alone), "
                              "e.g. a Style Loss or a CLIP Embedding Target."}),
                "smoothing": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 10.0, "step": 0.1, "tooltip":
                              "Blur of the gradient (sigma in pixels at the smallest octave): smoother, "
                              "larger patterns. 0 = off."}),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The dreamed images, same size and batch as the input.",)
    FUNCTION = "dream"
    CATEGORY = "DeepDream"
    DESCRIPTION = ("DeepDream: gradient ascent on the image to amplify what the chosen layers see (and raise any "
                   "connected objective), over an octave pyramid, with random jitter and normalised gradients.")

    def dream(self, image: torch.Tensor, backbone: Backbone, steps: int, step_size: float, jitter: int, seed: int,
              layers: tuple[LayerTerm, ...] | None = None, octaves: OctaveSettings | None = None,
              mask: torch.Tensor | None = None, invert_mask: bool = False, tile_size: int = 512,
              grad_norm: str = "mean_abs", precision: str = "auto",
              objective: Objective | None = None, smoothing: float = 0.0) -> tuple[torch.Tensor]:
        total = dream_objective(layers, objective, "Deep Dream")
        picture = from_bhwc(image)
        task = dream_task(picture, backbone, total, **_pyramid_and_mask(octaves, mask, invert_mask), steps=steps,
                          step_size=step_size, jitter=jitter, seed=seed, smoothing=smoothing, tile_size=tile_size,
                          grad_norm=grad_norm)
        return (to_bhwc(host.run(task, precision)),)


class GuidedDream(DeepDream):
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The images to dream; every image of the batch is dreamed."}),
                "guide_image": ("IMAGE", {"tooltip": "What to dream of: each feature of the image is pulled "
                                "towards its best match among this picture's features (first image used)."}),
                "backbone": ("DD_BACKBONE", {"tooltip": "From Load Dream Backbone."}),
                **_ascent_inputs(),
            },
            "optional": {
                "layers": ("DD_LAYERS", {"tooltip": "The layers at which image and guide are matched. Without "
                           "layers a CLIP Vision Backbone matches the guide's CLIP image embedding instead."}),
                **_shared_optional_inputs(),
                "objective": ("DD_OBJECTIVE", {"tooltip": "Terms added to the guide's pull, e.g. a CLIP Embedding "
                              "Target."}),
            },
        }

    OUTPUT_TOOLTIPS = ("The images dreamed towards the guide, same size and batch as the input.",)
    DESCRIPTION = ("Guided (controlled) DeepDream: instead of amplifying whatever the layers see, steer the "
                   "dream towards the features of a guide image.")

    def dream(self, image: torch.Tensor, guide_image: torch.Tensor, backbone: Backbone, steps: int, step_size: float,
              jitter: int, seed: int, layers: tuple[LayerTerm, ...] | None = None,
              octaves: OctaveSettings | None = None, mask: torch.Tensor | None = None,
              invert_mask: bool = False, tile_size: int = 512, grad_norm: str = "mean_abs", precision: str = "auto",
              objective: Objective | None = None) -> tuple[torch.Tensor]:
        guide = from_bhwc(guide_image, "guide_image")[:1]
        layers = layer_weights_only(layers, "Guided Dream") if layers else None
        task = guided_dream_task(from_bhwc(image), backbone, guide, layers, objective,
                                 **_pyramid_and_mask(octaves, mask, invert_mask), steps=steps, step_size=step_size,
                                 jitter=jitter, seed=seed, tile_size=tile_size, grad_norm=grad_norm)
        return (to_bhwc(host.run(task, precision)),)


def dream_objective(layers: tuple[LayerTerm, ...] | None, objective: Objective | None, node: str) -> Objective:
    """What a dream node raises: its layers' objective plus the connected one (either may be missing)."""
    parts = [part for part in (terms_objective(layers) if layers else None, objective) if part is not None]
    if not parts:
        raise DreamError(f"layers: {node} needs layers (Select Dream Layer), an objective, or both; connect one.")
    return Objective.sum(parts)


def _pyramid_and_mask(octaves: OctaveSettings | None, mask: torch.Tensor | None, invert_mask: bool) -> dict:
    """The pyramid (default: 4 octaves of 1.4) and the mask, as ``deepdream`` takes them."""
    return {**asdict(octaves or OctaveSettings()), "mask": None if mask is None else (1.0 - mask if invert_mask else mask)}
