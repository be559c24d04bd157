"""Classify, Saliency, Class Visualize, Fooling Image, Feature Inversion, Feature Visualize."""

from __future__ import annotations

import torch

from ..dream_core import (ACCENT_PULL, BASELINES, FEATURE_TARGETS, FOOLING_METHODS, LOGITS, PARAMETERIZATIONS, SALIENCY_METHODS, Backbone,
                          DreamError, Objective, accentuate_task, channel, feature_objective, path_task, resize,
                          class_visualize_task, classify_task, feature_visualize_task, fool_task, from_bhwc, heatmap,
                          invert_task, pixel_l2, saliency_task, to_bhwc)
from . import host
from .catalogue import LAYER_MENU
from .dream_nodes import SEED_MAX, precision_input

CATEGORY = "DeepDream/explain"
AUTO = "auto"
OBJECTIVE_ONLY = "objective"
EPSILON = 0.0314  # 8/255 rounded to the widget's 0.0001: the value shown is the value used


def _image_and_backbone() -> dict:
    return {"image": ("IMAGE", {"tooltip": "The pictures to explain; every image of the batch."}),
            "backbone": ("DD_BACKBONE", {"tooltip": "A classifier: a registry backbone (ImageNet classes) or "
                         "your own with a 'logits' stage."})}


def _target(default: int = -1, minimum: int = -1, tooltip: str = "The class (index into the backbone's "
            "classes, e.g. ImageNet 0..999); -1 = each image's predicted class.") -> dict:
    return {"target": ("INT", {"default": default, "min": minimum, "max": 99999, "tooltip": tooltip})}


def _canvas() -> dict:
    """The size and count of pictures made from nothing."""
    return {"width": ("INT", {"default": 224, "min": 32, "max": 2048, "step": 8, "tooltip": "Picture width."}),
            "height": ("INT", {"default": 224, "min": 32, "max": 2048, "step": 8, "tooltip": "Picture height."}),
            "batch": ("INT", {"default": 1, "min": 1, "max": 64,
                              "tooltip": "How many pictures, picture i from seed + i."})}


class Classify:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {**_image_and_backbone(),
                             "top_k": ("INT", {"default": 5, "min": 1, "max": 100,
                                               "tooltip": "How many of the most probable classes to list."})},
                "optional": precision_input()}

    RETURN_TYPES = ("STRING", "INT")
    RETURN_NAMES = ("labels", "top_class")
    OUTPUT_TOOLTIPS = ("One line per image: its top classes with probabilities.",
                       "The most probable class of the first image, e.g. for a Saliency or Fooling target.")
    FUNCTION = "classify"
    CATEGORY = CATEGORY
    DESCRIPTION = "What the network sees: the most probable classes of each image, with their probabilities."

    def classify(self, image: torch.Tensor, backbone: Backbone, top_k: int,
                 precision: str = "auto") -> tuple[str, int]:
        top = host.run(classify_task(from_bhwc(image), backbone, top_k), precision)
        lines = [f"image {i}: " + ", ".join(f"{p.name} [{p.index}] {p.probability:.1%}" for p in row)
                 for i, row in enumerate(top)]
        return "\n".join(lines), top[0][0].index


class Saliency:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                **_image_and_backbone(),
                **_target(),
                "method": (list(SALIENCY_METHODS), {"default": "gradient", "tooltip": "gradient: |d score / d "
                           "pixel| (CS231n); smoothgrad: its mean over noisy copies; gradient_x_input; "
                           "integrated_gradients: from a baseline to the image; gradcam: where at a layer."}),
            },
            "optional": {
                "samples": ("INT", {"default": 25, "min": 1, "max": 500, "tooltip": "smoothgrad: noisy copies."}),
                "noise": ("FLOAT", {"default": 0.15, "min": 0.0, "max": 1.0, "step": 0.01,
                                    "tooltip": "smoothgrad: noise std in 0..1 pixel units."}),
                "steps": ("INT", {"default": 64, "min": 1, "max": 1000,
                                  "tooltip": "integrated_gradients: points on the path from the baseline."}),
                "baseline": (list(BASELINES), {"default": "black", "tooltip": "integrated_gradients: the "
                             "picture of 'nothing' the path starts from: black, or the image blurred."}),
                "layer": ([AUTO, *LAYER_MENU], {"default": AUTO, "tooltip": "gradcam: the layer; auto = the last "
                          "one before the classifier (Grad-CAM's choice). Earlier = finer, less about the class."}),
                "blend": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05,
                                    "tooltip": "How strongly the heat map covers the image."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX,
                                 "tooltip": "smoothgrad: seed of the noise; image i uses seed + i."}),
                **precision_input(),
            },
        }

    RETURN_TYPES = ("MASK", "IMAGE")
    RETURN_NAMES = ("saliency", "heatmap")
    OUTPUT_TOOLTIPS = ("Per image, 0..1: how much each pixel counts for the target class (1 = the most).",
                       "The saliency in colour (blue low, red high) over the image.")
    FUNCTION = "explain"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Where the network looks: a saliency map of the pixels that decide the class score, with the "
                   "attribution methods of CS231n and captum.")

    def explain(self, image: torch.Tensor, backbone: Backbone, target: int, method: str, samples: int = 25,
                noise: float = 0.15, steps: int = 64, baseline: str = "black", layer: str = AUTO,
                blend: float = 0.5, seed: int = 0, precision: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
        picture = from_bhwc(image)
        layer = None if layer == AUTO else layer
        task = saliency_task(picture, backbone, target, method, samples=samples, noise=noise, steps=steps,
                             baseline=baseline, layer=layer, seed=seed)
        maps = host.run(task, precision)
        return maps[:, 0], to_bhwc(heatmap(picture, maps, blend))


class ClassVisualize:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "backbone": ("DD_BACKBONE", {"tooltip": "The classifier whose idea of a class to paint."}),
                **_target(0, 0, "The class to paint (index into the backbone's classes, e.g. ImageNet 0..999)."),
                **_canvas(),
                "steps": ("INT", {"default": 100, "min": 0, "max": 5000, "tooltip": "Ascent steps per octave."}),
                "step_size": ("FLOAT", {"default": 0.02, "min": 0.0, "max": 0.5, "step": 0.001,
                                        "tooltip": "Mean pixel change per step (0..1 units)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "tooltip": "Seed of the start noise "
                         "and the jitter."}),
            },
            "optional": {
                "l2_weight": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.1, "tooltip":
                              "Pulls pixels towards grey (CS231n's L2 regulariser): calmer pictures."}),
                "jitter": ("INT", {"default": 16, "min": 0, "max": 256, "tooltip": "Largest random shift per step."}),
                "blur_sigma": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 5.0, "step": 0.1,
                                         "tooltip": "Blur applied every blur_every steps; 0 = off."}),
                "blur_every": ("INT", {"default": 10, "min": 0, "max": 1000, "tooltip": "Blur period in steps."}),
                "octaves": ("INT", {"default": 1, "min": 1, "max": 8, "tooltip": "Start smaller and grow 1.4x per "
                            "octave: larger shapes."}),
                "init_image": ("IMAGE", {"tooltip": "Start from this picture instead of noise (pixels only)."}),
                "parameterization": (["pixels", "fft", "maco"], {"default": "pixels", "tooltip": "pixels: "
                                     "CS231n's ascent on the pixels; fft: lucid's Fourier basis with decorrelated "
                                     "colour and robustness transforms (Adam, learning rate 0.05), more natural "
                                     "shapes and colours; maco: only the phase of a natural photograph's spectrum "
                                     "is optimised, through random crops (Fel et al. 2023; for deep networks and "
                                     "transformers)."}),
                **precision_input(),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("Pictures that the network scores as the class.",)
    FUNCTION = "visualize"
    CATEGORY = CATEGORY
    DESCRIPTION = ("What the network wants to see: gradient ascent on a class score from noise, regularised by "
                   "jitter, blur and an L2 pull to grey (Simonyan et al., CS231n).")

    def visualize(self, backbone: Backbone, target: int, width: int, height: int, batch: int, steps: int,
                  step_size: float, seed: int, l2_weight: float = 1.0, jitter: int = 16, blur_sigma: float = 0.5,
                  blur_every: int = 10, octaves: int = 1, init_image: torch.Tensor | None = None,
                  parameterization: str = "pixels", precision: str = "auto") -> tuple[torch.Tensor]:
        start = None if init_image is None else from_bhwc(init_image, "init_image")
        if parameterization != "pixels":
            task = feature_visualize_task(backbone, channel(LOGITS, target) - l2_weight * pixel_l2(),
                                          size=(height, width), batch=batch, steps=steps, seed=seed,
                                          parameterization=parameterization)
        else:
            task = class_visualize_task(backbone, target, size=(height, width), batch=batch, steps=steps,
                                        step_size=step_size, l2_weight=l2_weight, jitter=jitter,
                                        blur_sigma=blur_sigma, blur_every=blur_every, octaves=octaves, init=start,
                                        seed=seed)
        return (to_bhwc(host.run(task, precision)),)


class FoolingImage:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                **_image_and_backbone(),
                **_target(0, 0, "The class the network should be made to say."),
                "method": (list(FOOLING_METHODS), {"default": "ascent", "tooltip": "ascent: small normalised "
                           "steps until the network says the target (CS231n); fgsm: one signed step of epsilon; "
                           "pgd: signed steps kept within epsilon of the image."}),
                "max_steps": ("INT", {"default": 100, "min": 1, "max": 5000, "tooltip": "Give up after this many."}),
            },
            "optional": {
                "step_size": ("FLOAT", {"default": 0.002, "min": 0.0001, "max": 0.1, "step": 0.0001, "round": 0.00001,
                                        "tooltip": "ascent: mean pixel change per step (0..1 units)."}),
                "epsilon": ("FLOAT", {"default": EPSILON, "min": 0.0001, "max": 1.0, "step": 0.0001,
                                      "round": 0.0001, "tooltip": "fgsm, pgd: the largest change of any pixel "
                                      "(0..1 units; 0.0314, about 8/255, is the usual budget)."}),
                "magnify": ("FLOAT", {"default": 10.0, "min": 1.0, "max": 1000.0, "step": 1.0, "tooltip":
                            "How much the difference image enlarges the change (grey = unchanged)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "tooltip": "pgd: seed of the random "
                         "start; image i uses seed + i."}),
                **precision_input(),
            },
        }

    RETURN_TYPES = ("IMAGE", "IMAGE", "STRING")
    RETURN_NAMES = ("fooled", "difference", "report")
    OUTPUT_TOOLTIPS = ("The changed images.", "The change, magnified around grey.",
                       "Per image: the prediction before and after, steps, the L-inf and L2 size of the change; "
                       "'NOT fooled' when the target was not reached.")
    FUNCTION = "fool"
    CATEGORY = CATEGORY
    DESCRIPTION = ("How little it takes: the smallest change found that makes the network say the target class "
                   "(CS231n fooling images, FGSM, PGD).")

    def fool(self, image: torch.Tensor, backbone: Backbone, target: int, method: str, max_steps: int,
             step_size: float = 0.002, epsilon: float = EPSILON, magnify: float = 10.0,
             seed: int = 0, precision: str = "auto") -> tuple[torch.Tensor, torch.Tensor, str]:
        picture = from_bhwc(image)
        task = fool_task(picture, backbone, target, method=method, max_steps=max_steps, step_size=step_size,
                         epsilon=epsilon, seed=seed)
        fooled, reports = host.run(task, precision)
        difference = (0.5 + magnify * (fooled - picture.to(fooled.device))).clamp(0, 1)
        report = "\n".join(f"image {i}: {r}" for i, r in enumerate(reports))
        return to_bhwc(fooled), to_bhwc(difference), report


class FeatureInversion:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                **_image_and_backbone(),
                "layer": (LAYER_MENU, {"default": "inception3a", "tooltip": "The layer whose features to match: "
                          "early layers give the picture back, deep ones what matters to the class."}),
                "steps": ("INT", {"default": 200, "min": 0, "max": 5000, "tooltip": "Optimizer steps."}),
                "learning_rate": ("FLOAT", {"default": 0.05, "min": 0.0001, "max": 1.0, "step": 0.001,
                                            "tooltip": "Adam's step in 0..1 pixel units."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX,
                                 "tooltip": "Seed of the start noise; image i uses seed + i."}),
            },
            "optional": {
                "tv_weight": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1000.0, "step": 0.05,
                                        "tooltip": "Smoothness prior: against pixel noise."}),
                "l2_weight": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 100.0, "step": 0.05,
                                        "tooltip": "Pull towards grey: against extreme colours."}),
                "jitter": ("INT", {"default": 0, "min": 0, "max": 64,
                                   "tooltip": "Random shift per step, a further prior; 0 = off."}),
                **precision_input(),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("Pictures whose features at the layer match the input's.",)
    FUNCTION = "invert"
    CATEGORY = CATEGORY
    DESCRIPTION = ("What a layer keeps: from noise, an image is optimised until its features at the layer match "
                   "the input's (Mahendran & Vedaldi, CS231n).")

    def invert(self, image: torch.Tensor, backbone: Backbone, layer: str, steps: int, learning_rate: float,
               seed: int, tv_weight: float = 0.5, l2_weight: float = 0.0, jitter: int = 0,
               precision: str = "auto") -> tuple[torch.Tensor]:
        task = invert_task(from_bhwc(image), backbone, layer, steps=steps, learning_rate=learning_rate,
                           tv_weight=tv_weight, l2_weight=l2_weight, jitter=jitter, seed=seed)
        return (to_bhwc(host.run(task, precision)),)


class FeatureVisualize:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "backbone": ("DD_BACKBONE", {"tooltip": "The network whose feature to render."}),
                "layer": (LAYER_MENU, {"default": "inception4c", "tooltip": "The layer of the channel or neuron; "
                          "ignored for a class."}),
                "target": (list(FEATURE_TARGETS), {"default": "channel", "tooltip": "channel: the mean of one channel over "
                           "the layer; neuron: that channel at the centre only; class: a class score (logits)."}),
                "index": ("INT", {"default": 0, "min": 0, "max": 99999, "tooltip": "The channel, or the class."}),
                **_canvas(),
                "steps": ("INT", {"default": 256, "min": 0, "max": 10000, "tooltip": "Adam steps (lucid: 512)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "tooltip": "Seed of the start and of the "
                         "transforms."}),
            },
            "optional": {
                "learning_rate": ("FLOAT", {"default": 0.05, "min": 0.0001, "max": 1.0, "step": 0.001,
                                            "tooltip": "Adam's step on the parameters."}),
                "parameterization": (list(PARAMETERIZATIONS), {"default": "fft", "tooltip": "fft: a 1/f-scaled "
                                     "Fourier basis (lucid); pixels: raw pixels (noisier); maco: the magnitude of "
                                     "natural photographs' spectrum kept, only the phase optimised, seen through "
                                     "random crops with noise (Fel et al. 2023: recognisable on deep networks and "
                                     "vision transformers where fft gives noise). 'transforms' switches the crops."}),
                "decorrelate": ("BOOLEAN", {"default": True, "tooltip": "fft: mix colours by ImageNet's colour "
                                "correlation, so colours move together."}),
                "transforms": ("BOOLEAN", {"default": True, "tooltip": "Pad, jitter, scale and rotate at every step: "
                               "only features that survive being moved are kept."}),
                "negative": ("BOOLEAN", {"default": False, "tooltip": "Minimise instead: what the channel, neuron or "
                             "class is most against."}),
                "diversity": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 10000.0, "step": 1.0, "tooltip":
                              "Push the pictures of the batch apart (lucid's diversity, at the layer): each shows "
                              "another facet of the feature; the batch is optimised together. lucid: 100 to 1000."}),
                **precision_input(),
            },
        }

    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "transparency")
    OUTPUT_TOOLTIPS = ("Pictures of what the channel, neuron or class responds to.",
                       "Per picture, 0..1: how much gradient reached each pixel over the steps (MaCo's "
                       "transparency map: where the feature kept asking for change); e.g. as the alpha of the picture.")
    FUNCTION = "visualize"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Feature visualisation from nothing (lucid / lucent): what a channel, a neuron or a class "
                   "maximises, rendered in a Fourier basis with decorrelated colour and robustness transforms.")

    def visualize(self, backbone: Backbone, layer: str, target: str, index: int, width: int, height: int,
                  batch: int, steps: int, seed: int, learning_rate: float = 0.05, parameterization: str = "fft",
                  decorrelate: bool = True, transforms: bool = True, negative: bool = False, diversity: float = 0.0,
                  precision: str = "auto") -> tuple[torch.Tensor]:
        objective = feature_objective(backbone, target, index, layer)
        objective = -objective if negative else objective
        task = feature_visualize_task(backbone, objective, size=(height, width), batch=batch, steps=steps,
                                      learning_rate=learning_rate, parameterization=parameterization,
                                      decorrelate=decorrelate, transforms=transforms, seed=seed,
                                      diversity=diversity, diversity_layer=backbone.resolve(layer),
                                      return_transparency=True)
        pictures, transparency = host.run(task, precision)
        return to_bhwc(pictures), transparency[:, 0]


class FeatureAccentuation:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The pictures to accentuate the feature in; every image of the batch."}),
                "backbone": ("DD_BACKBONE", {"tooltip": "The network whose feature to accentuate."}),
                "layer": (LAYER_MENU, {"default": "inception4c", "tooltip": "The layer of the channel or neuron; "
                          "ignored for a class or an objective alone."}),
                "target": ([*FEATURE_TARGETS, OBJECTIVE_ONLY], {"default": "channel", "tooltip": "channel, neuron (its "
                           "centre), class (a score of logits), or only the connected objective (a CLIP Embedding "
                           "Target, a direction); a connected objective is added to the others."}),
                "index": ("INT", {"default": 0, "min": 0, "max": 99999, "tooltip": "The channel, or the class."}),
                "pull": ("FLOAT", {"default": ACCENT_PULL, "min": 0.0, "max": 100000.0, "step": 100.0, "tooltip":
                         "How strongly the picture is held to the original: higher keeps more of it, 0 lets the "
                         "feature take over."}),
                "steps": ("INT", {"default": 64, "min": 0, "max": 5000, "tooltip": "Adam steps."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "tooltip": "Seed of the crops; image i "
                         "uses seed + i."}),
            },
            "optional": {
                "objective": ("DD_OBJECTIVE", {"tooltip": "A feature as an objective (e.g. CLIP Embedding Target)."}),
                "learning_rate": ("FLOAT", {"default": 0.05, "min": 0.0001, "max": 1.0, "step": 0.001,
                                            "tooltip": "Adam's step on the picture's spectrum."}),
                "crops": ("BOOLEAN", {"default": True, "tooltip": "See the picture through 6 random crops with "
                          "noise each step (MaCo's): only changes that hold everywhere are kept."}),
                **precision_input(),
            },
        }

    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "transparency")
    OUTPUT_TOOLTIPS = ("The pictures with the feature accentuated.",
                       "Per picture, 0..1: where the feature kept asking for change.")
    FUNCTION = "accentuate"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Feature accentuation (Hamblin, Fel et al. 2024): what in this picture drives a channel, a "
                   "neuron, a class or an objective, made stronger while the picture is held close to itself.")

    def accentuate(self, image: torch.Tensor, backbone: Backbone, layer: str, target: str, index: int, pull: float,
                   steps: int, seed: int, objective: Objective | None = None, learning_rate: float = 0.05,
                   crops: bool = True, precision: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
        if target == OBJECTIVE_ONLY and objective is None:
            raise DreamError("objective: target 'objective' needs a connected objective (e.g. CLIP Embedding "
                             "Target); connect one or choose channel, neuron or class.")
        feature = objective if target == OBJECTIVE_ONLY else feature_objective(backbone, target, index, layer)
        if objective is not None and target != OBJECTIVE_ONLY:
            feature = feature + objective
        task = accentuate_task(from_bhwc(image), backbone, feature, pull=pull, steps=steps,
                               learning_rate=learning_rate, crops=crops, seed=seed, return_transparency=True)
        made, transparency = host.run(task, precision)
        return to_bhwc(made), transparency[:, 0]


class TrustCheck:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "visualization": ("IMAGE", {"tooltip": "The pictures to check (from Feature Visualization, Class "
                                  "Visualization, Feature Accentuation)."}),
                "references": ("IMAGE", {"tooltip": "Natural pictures that excite the same feature (2 or more, "
                               "e.g. photographs of the class); resized to the first one's size."}),
                "backbone": ("DD_BACKBONE", {"tooltip": "The network the visualisation was made for."}),
                "layer": ([AUTO, *LAYER_MENU], {"default": AUTO, "tooltip": "The last layer of the path (the "
                          "feature's layer); auto = the network's last, logits included."}),
            },
        }

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("report",)
    OUTPUT_TOOLTIPS = ("One line per layer: the correlation of the visualisation's channel profile with the natural "
                       "pictures', and theirs with each other; a trustworthy visualisation stays near the second.",)
    FUNCTION = "check"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Can this visualisation be trusted? It should travel through the network the way natural "
                   "pictures of its feature do, layer by layer (Geirhos et al. 2024), not only excite the last one.")

    def check(self, visualization: torch.Tensor, references: torch.Tensor, backbone: Backbone,
              layer: str) -> tuple[str]:
        pictures = from_bhwc(visualization, "visualization")
        natural = resize(from_bhwc(references, "references"), tuple(pictures.shape[-2:]))
        task = path_task(backbone, pictures, natural, up_to=None if layer == AUTO else layer)
        return ("\n".join(str(step) for step in host.run(task, "fp32")),)
