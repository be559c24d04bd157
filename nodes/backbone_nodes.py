"""Load Dream Backbone, Select Dream Layer."""

from __future__ import annotations

from ..dream_core import (BACKBONES, CHANNEL_MODES, CHOICES, LOSSES, POOLINGS, Backbone, DreamError, LayerTerm,
                          WeightsError, get_spec, load_backbone)
from . import host
from .catalogue import LAYER_MENU, check_layer_channel, validation

DOWNLOAD, RANDOM = "torchvision (download)", "random init"


class LoadBackbone:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "backbone": (list(BACKBONES), {"default": "googlenet", "tooltip": "The CNN to dream with. "
                             "googlenet is DeepDream's architecture (torchvision's batch-normalised Inception v1, "
                             "not the BVLC Caffe weights Google used); vgg19 suits style losses."}),
                "weights": ([DOWNLOAD, RANDOM, *host.weight_files()], {"default": DOWNLOAD, "tooltip":
                            "'torchvision (download)' fetches the ImageNet weights once into models/deepdream "
                            "(checksum checked); 'random init' needs no file and gives abstract textures; "
                            "or a .pth/.safetensors file from models/deepdream."}),
            },
            "optional": {
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1,
                                 "tooltip": "Seed of the random init; ignored for downloaded or file weights."}),
                "pooling": (list(POOLINGS), {"default": "max", "tooltip": "max: as trained; avg: rescaled "
                            "average pooling, smoother style transfers (Gatys). For networks with max pooling."}),
            },
        }

    RETURN_TYPES = ("DD_BACKBONE",)
    RETURN_NAMES = ("backbone",)
    OUTPUT_TOOLTIPS = ("The frozen network; connect it to Select Dream Layer and the dream nodes.",)
    FUNCTION = "load"
    CATEGORY = "DeepDream/loaders"
    DESCRIPTION = ("Loads a CNN for dreaming, frozen and in eval mode. The two most recently used networks "
                   "are kept between runs and across workflows: the same backbone and weights are not loaded "
                   "twice (a weights file is reloaded when it changes).")

    @classmethod
    def IS_CHANGED(cls, backbone: str, weights: str, seed: int = 0, pooling: str = "max"):
        """A weights file's path, size and modification time: a replaced file is loaded again on the next
        queue (ComfyUI otherwise reuses this node's cached output); the other choices are fixed by
        their names."""
        if weights in (DOWNLOAD, RANDOM):
            return ""
        try:
            return host.file_key(host.weight_file(weights)) or ""
        except WeightsError:
            return ""  # load() says what is wrong

    def load(self, backbone: str, weights: str, seed: int = 0, pooling: str = "max") -> tuple[Backbone]:
        if weights == RANDOM:
            source, key = "random", (backbone, RANDOM, seed)
        elif weights == DOWNLOAD:  # checksum-verified: the file's content is fixed by its name
            source, key = "torchvision", (backbone, DOWNLOAD, str(host.weights_dir()))
        else:
            source = host.weight_file(weights)
            key = (get_spec(backbone).name, host.file_key(source))

        def build() -> Backbone:
            with host.gradients():  # weights built here are normal tensors, usable by autograd later
                return load_backbone(backbone, source, seed=seed, weights_dir=host.weights_dir(),
                                     pooling=pooling)

        return (host.cached_backbone((*key, pooling), build),)


class SelectLayer:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "backbone": ("DD_BACKBONE", {"tooltip": "The backbone whose layer to pick."}),
                "layer": (LAYER_MENU, {"default": "inception4c", "tooltip": "The layer whose activations "
                          "to amplify. Early layers paint strokes and textures, deep ones eyes and animals; 'logits' is "
                          "the classifier's output: with a channel, the score of that class. The menu shows the "
                          "connected backbone's layers; a layer it lacks is refused with the list of its layers."}),
                "weight": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.05,
                                     "tooltip": "How much this layer counts; negative suppresses it."}),
                "channel": ("INT", {"default": -1, "min": -1, "max": 4095,
                                    "tooltip": "One channel (feature) of the layer to amplify; -1 = all. Link "
                                    "Classify's top_class here with layer 'logits' to dream the class it sees."}),
                "loss": (list(LOSSES), {"default": "l2", "tooltip": "l2: 0.5 mean(a^2), the classic "
                         "DeepDream loss; mean: mean activation (the InceptionV3 DeepDreamer's)."}),
            },
            "optional": {
                "layers": ("DD_LAYERS", {"tooltip": "Layers chosen so far: chain Select Dream Layer nodes "
                           "to dream several layers with their own weights."}),
                "channel_mode": (list(CHANNEL_MODES), {"default": "all", "tooltip": "all: every channel (or the "
                                 "one 'channel'); strongest / weakest: the top_k channels most / least active in "
                                 "the image: deepen what it shows, or bring out what it hides."}),
                "top_k": ("INT", {"default": 8, "min": 1, "max": 4096, "tooltip": "How many channels for "
                          "strongest / weakest."}),
                "choose": (list(CHOICES), {"default": "once", "tooltip": "Pick the channels once, at the start of "
                           "each image's dream, or again every step."}),
            },
        }

    RETURN_TYPES = ("DD_LAYERS",)
    RETURN_NAMES = ("layers",)
    OUTPUT_TOOLTIPS = ("The chained layers with their weights.",)
    FUNCTION = "select"
    CATEGORY = "DeepDream"
    DESCRIPTION = "Picks a layer (and optionally one channel) to amplify, with a weight; chain several."

    CHANNEL_OF = {"channel": "layer"}  # for the frontend: the channel widget's range follows this layer

    @classmethod
    def VALIDATE_INPUTS(cls, layer: str | None = None, channel: int | None = None):
        return validation(check_layer_channel, layer=layer, channel=channel)

    def select(self, backbone: Backbone, layer: str, weight: float, channel: int, loss: str,
               layers: tuple[LayerTerm, ...] = (), channel_mode: str = "all", top_k: int = 8,
               choose: str = "once") -> tuple[tuple[LayerTerm, ...]]:
        name = backbone.resolve(layer)
        channels = backbone.channels(name)
        if not -1 <= channel < channels:  # a linked channel reaches this check only (and any backbone's layer)
            raise DreamError(f"channel: {name} of {backbone.name} has channels 0..{channels - 1}, or -1 for all; "
                             f"got {channel}.")
        if channel_mode != "all" and (channel >= 0 or top_k > channels):
            raise DreamError(f"channel_mode: {channel_mode} needs channel -1 and top_k at most {channels} "
                             f"(the channels of {name}), got channel {channel}, top_k {top_k}.")
        term = LayerTerm(name, weight, None if channel < 0 else channel, loss, channel_mode, top_k, choose)
        return ((*layers, term),)
