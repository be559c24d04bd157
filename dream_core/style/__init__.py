"""Gatys neural style transfer: the style statistics and their loss (:mod:`.statistics`), style and
content losses from reference pictures (:mod:`.losses`), and the transfer driver (:mod:`.transfer`)."""

from .losses import content_objective, style_objective
from .statistics import STATISTICS, gram_matrix, mean_covariance, style_match, style_statistic
from .transfer import INITS, SMALLEST_SCALE, gatys_layers, scale_sizes, stylize, stylize_memory

__all__ = ["STATISTICS", "INITS", "SMALLEST_SCALE", "content_objective", "gatys_layers", "gram_matrix",
           "mean_covariance", "scale_sizes", "style_match", "style_objective", "style_statistic", "stylize",
           "stylize_memory"]
