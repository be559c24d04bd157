"""Explaining a classifier with image gradients: what it predicts, where it looks, what it wants to
see, how little it takes to fool it, and what one of its layers keeps.

The tools of CS231n's network-visualisation assignment (saliency maps, fooling images, class
visualisation, feature inversion) and the attribution methods captum made standard (SmoothGrad,
gradient x input, integrated gradients, Grad-CAM), for any backbone with a ``logits`` layer, on the
same extractor and loop as the dreams. Images are :math:`(B, 3, H, W)` in 0..1; "the model" is the
backbone's logits as a function of that image (its normalisation included).

One module per tool family: :mod:`.predict` (logits, classify), :mod:`.attribution` (attribution,
saliency maps, heat maps), :mod:`.visualize` (class visualisation), :mod:`.fooling` (fooling images),
:mod:`.inversion` (feature inversion), :mod:`.trust` (whether a visualisation follows the natural path).
"""

from .attribution import (ATTRIBUTION_CHUNK, BASELINES, SALIENCY_METHODS, attribution, attribution_memory, heatmap,
                          last_feature_layer, saliency_map)
from .fooling import FOOLING_METHODS, FoolingReport, fool
from .inversion import invert_features, psnr
from .predict import Prediction, classify, logits
from .trust import PathStep, path_similarity
from .visualize import class_visualize

__all__ = ["Prediction", "classify", "logits", "attribution", "attribution_memory", "saliency_map", "heatmap",
           "class_visualize", "fool", "FoolingReport", "invert_features", "psnr", "last_feature_layer",
           "SALIENCY_METHODS", "BASELINES", "FOOLING_METHODS", "ATTRIBUTION_CHUNK", "PathStep", "path_similarity"]
