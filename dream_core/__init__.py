"""dream_core: DeepDream and its relatives (gradient ascent on the image) in plain PyTorch + kornia.

    >>> import dream_core as dc
    >>> backbone = dc.load_backbone("googlenet", "random", seed=0)
    >>> image = dc.load_image("assets/example.jpg")
    >>> dream = dc.deepdream(image, backbone, dc.l2("inception4c") + 0.5 * dc.l2("inception4d"))
    >>> dream.shape, bool((dream != image).any())
    (torch.Size([1, 3, 384, 512]), True)

Nothing here imports ComfyUI; the node pack at the repository root wraps these functions and
imports only from this top level.
"""

from .animate import (DEFAULT_FLOW, FLOWS, HOLD, colour_match, dream_video, dream_zoom, estimate_flow, flow_validity,
                      video_frames, warp, zoom_frames, zoom_transform)
from .ascent import GRAD_NORMS, ascent_step, image_gradient, normalize_gradient, random_shift
from .cutouts import Cutouts
from .backbones import (BACKBONES, LOGITS, POOLINGS, Backbone, BackboneSpec, average_pooling, backbone_from_clip_vision,
                        backbone_from_module,
                        backbone_names, fold_batchnorm, get_spec)
from .dream import check_tile_size, deepdream, deepdream_memory
from .errors import DreamCancelled, DreamError, LayerError, ShapeError, WeightsError
from .explain import (ATTRIBUTION_CHUNK, BASELINES, FOOLING_METHODS, SALIENCY_METHODS, FoolingReport, PathStep, Prediction,
                      attribution,
                      attribution_memory,
                      class_visualize, classify, fool, heatmap, invert_features, logits, path_similarity, psnr,
                      saliency_map)
from .features import INPUT, FeatureExtractor
from .images import check_image, from_bhwc, keep_colors, load_image, prepare_mask, save_image, to_bhwc, to_pil
from .optimizers import LBFGS_HISTORY, OPTIMIZERS, optimize
from .loop import (Ascent, Item, Progress, TilePolicy, for_each_item, item_generator,
                   tuned_for)
from .memory import pass_memory
from .transformers import EMBEDDING, Tokens, transformer_layers
from .precision import PRECISIONS, LossScale, autocast_dtype
from .objectives import (CHANNEL_MODES, CHOICES, LOSSES, TV_KINDS, LayerTerm, Objective, channel, content, cosine, direction, diversity, guide, l2,
                         layer_objective, mean_activation, objective, neuron, pixel_l2, ranked_channels, terms_objective,
                         total_variation)
from .param import (ACCENT_PULL, FEATURE_TARGETS, PARAMETERIZATIONS, FourierImage, MacoImage, accentuate, feature_objective,
                    feature_visualize, maco_cutouts, natural_magnitude, robustness_transform)
from .pyramid import (DETAIL_MODES, OctaveSettings, dream_octaves, gaussian_blur, octave_sizes, resize,
                      resize_longer_side)
from .references import centre_view, guided_objective, image_embedding, reference_activations
from .style import (INITS, STATISTICS, content_objective, gatys_layers, gram_matrix, mean_covariance, scale_sizes,
                    style_match, style_objective, style_statistic, stylize, stylize_memory)
from .tasks import (Task, accentuate_task, path_task, class_visualize_task, classify_task, dream_task, embedding_task, feature_visualize_task,
                    fool_task, guided_dream_task, invert_task, saliency_task, stylize_task, video_file_task, video_task,
                    zoom_task)
from .weights import WEIGHT_EXTENSIONS, default_weights_dir, download_weights, load_backbone, read_state_dict

__all__ = [
    "ACCENT_PULL", "ATTRIBUTION_CHUNK", "BACKBONES", "BASELINES", "CHANNEL_MODES", "CHOICES", "DEFAULT_FLOW", "DETAIL_MODES", "FLOWS", "FOOLING_METHODS", "GRAD_NORMS", "HOLD",
    "INITS", "INPUT", "LBFGS_HISTORY", "LOGITS", "LOSSES", "OPTIMIZERS", "PARAMETERIZATIONS", "POOLINGS",
    "PRECISIONS", "SALIENCY_METHODS", "STATISTICS", "TV_KINDS", "WEIGHT_EXTENSIONS", "Ascent", "Backbone",
    "BackboneSpec", "Cutouts", "DreamCancelled", "EMBEDDING", "Tokens", "DreamError", "FeatureExtractor", "FoolingReport", "FourierImage", "Item", "MacoImage", "natural_magnitude",
    "LayerError", "LayerTerm", "LossScale", "Objective", "OctaveSettings", "Prediction", "Progress", "ShapeError", "Task",
    "TilePolicy",
    "WeightsError", "PathStep", "path_similarity", "accentuate", "FEATURE_TARGETS", "feature_objective", "maco_cutouts", "ascent_step", "attribution", "attribution_memory", "autocast_dtype", "average_pooling", "backbone_from_clip_vision", "backbone_from_module",
    "backbone_names", "centre_view", "channel", "check_image", "check_tile_size", "colour_match", "class_visualize", "classify", "content",
    "content_objective", "cosine", "deepdream", "deepdream_memory", "direction", "diversity", "download_weights", "default_weights_dir", "dream_octaves", "dream_video",
    "dream_zoom", "estimate_flow", "feature_visualize", "flow_validity", "for_each_item", "fold_batchnorm", "fool", "from_bhwc",
    "gatys_layers", "gaussian_blur", "get_spec", "gram_matrix", "guide", "guided_objective", "heatmap", "image_embedding",
    "image_gradient", "invert_features", "item_generator", "keep_colors", "l2", "layer_objective", "load_backbone",
    "load_image", "logits", "mean_activation", "mean_covariance", "neuron", "normalize_gradient", "objective",
    "octave_sizes", "optimize", "pass_memory", "pixel_l2", "prepare_mask", "psnr", "random_shift", "ranked_channels",
    "read_state_dict", "reference_activations", "resize", "resize_longer_side", "robustness_transform",
    "saliency_map", "save_image", "scale_sizes", "style_match", "style_objective", "style_statistic", "stylize",
    "stylize_memory", "terms_objective", "to_bhwc", "to_pil", "total_variation", "transformer_layers", "tuned_for", "video_frames",
    "warp", "zoom_frames", "zoom_transform",
    "accentuate_task", "path_task", "class_visualize_task", "classify_task", "dream_task", "embedding_task", "feature_visualize_task", "fool_task",
    "guided_dream_task", "invert_task", "saliency_task", "stylize_task", "video_file_task", "video_task", "zoom_task",
]
