"""The node registry: one line per node, from which both ComfyUI mappings are built."""

from __future__ import annotations

from . import host
from .animation_nodes import DreamVideo, DreamVideoStream, DreamZoom
from .backbone_nodes import LoadBackbone, SelectLayer
from .clip_nodes import ClipTarget, ClipVisionBackbone
from .dream_nodes import DeepDream, GuidedDream, OctavePyramid
from .explain_nodes import (Classify, ClassVisualize, FeatureAccentuation, FeatureInversion, FeatureVisualize,
                            FoolingImage, Saliency, TrustCheck)
from .catalogue import layer_catalogue
from .style_nodes import ContentLoss, SelectStyleLayer, StyleLoss, StyleTransfer, TVLoss

NODE_CONFIG = {
    # Loaders
    "DD_LoadBackbone": {"class": LoadBackbone, "name": "Load Dream Backbone"},
    "DD_ClipVisionBackbone": {"class": ClipVisionBackbone, "name": "CLIP Vision Backbone"},
    # Dreaming
    "DD_SelectLayer": {"class": SelectLayer, "name": "Select Dream Layer"},
    "DD_OctavePyramid": {"class": OctavePyramid, "name": "Octave Pyramid"},
    "DD_DeepDream": {"class": DeepDream, "name": "DeepDream"},
    "DD_GuidedDream": {"class": GuidedDream, "name": "Guided Dream"},
    # Animation
    "DD_DreamZoom": {"class": DreamZoom, "name": "Dream Zoom"},
    "DD_DreamVideoStream": {"class": DreamVideoStream, "name": "Dream Video"},
    "DD_DreamVideo": {"class": DreamVideo, "name": "Dream Video Frames"},
    # Style
    "DD_StyleTransfer": {"class": StyleTransfer, "name": "Neural Style Transfer"},
    # Explain
    "DD_Classify": {"class": Classify, "name": "Classify"},
    "DD_Saliency": {"class": Saliency, "name": "Saliency Map"},
    "DD_ClassVisualize": {"class": ClassVisualize, "name": "Class Visualization"},
    "DD_FoolingImage": {"class": FoolingImage, "name": "Fooling Image"},
    "DD_FeatureInversion": {"class": FeatureInversion, "name": "Feature Inversion"},
    "DD_FeatureVisualize": {"class": FeatureVisualize, "name": "Feature Visualization"},
    "DD_FeatureAccentuation": {"class": FeatureAccentuation, "name": "Feature Accentuation"},
    "DD_TrustCheck": {"class": TrustCheck, "name": "Visualization Trust Check"},
    # Objectives
    "DD_SelectStyleLayer": {"class": SelectStyleLayer, "name": "Select Style Layer"},
    "DD_StyleLoss": {"class": StyleLoss, "name": "Style Loss"},
    "DD_ContentLoss": {"class": ContentLoss, "name": "Content Loss"},
    "DD_TVLoss": {"class": TVLoss, "name": "TV Loss"},
    "DD_ClipTarget": {"class": ClipTarget, "name": "CLIP Embedding Target"},
}

LAYERS_ROUTE = "/deepdream/layers"  # the catalogue the frontend extension (web/) narrows the layer menus with

NODE_CLASS_MAPPINGS = {node_id: entry["class"] for node_id, entry in NODE_CONFIG.items()}
NODE_DISPLAY_NAME_MAPPINGS = {node_id: entry["name"] for node_id, entry in NODE_CONFIG.items()}

host.register_model_folder()
host.install_example_inputs()
host.release_on_host_unload()
host.add_json_route(LAYERS_ROUTE, lambda: layer_catalogue(NODE_CLASS_MAPPINGS))

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
