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

from .ascent import GRAD_NORMS, ascent_step, image_gradient, normalize_gradient, random_shift
from .backbones import (BACKBONES, LOGITS, Backbone, BackboneSpec, backbone_from_module, backbone_names,
                        fold_batchnorm, get_spec)
from .dream import check_tile_size, deepdream, deepdream_memory
from .errors import DreamCancelled, DreamError, LayerError, ShapeError, WeightsError
from .features import INPUT, FeatureExtractor
from .images import check_image, from_bhwc, load_image, prepare_mask, save_image, to_bhwc, to_pil
from .loop import (OPTIMIZERS, PRECISIONS, Ascent, Progress, TilePolicy, autocast_dtype, item_generator, optimize,
                   tuned_for)
from .objectives import (LOSSES, TV_KINDS, LayerTerm, Objective, channel, gram_matrix, gram_style, guide, l2,
                         layer_objective, mean_activation, objective, pixel_l2, terms_objective, total_variation)
from .pyramid import (DETAIL_MODES, OctaveSettings, dream_octaves, gaussian_blur, octave_sizes, resize,
                      resize_longer_side)
from .references import guided_objective, reference_activations, style_objective
from .weights import WEIGHT_EXTENSIONS, download_weights, load_backbone, read_state_dict

__all__ = [
    "BACKBONES", "DETAIL_MODES", "GRAD_NORMS", "INPUT", "LOGITS", "LOSSES", "OPTIMIZERS", "PRECISIONS", "TV_KINDS",
    "WEIGHT_EXTENSIONS", "Ascent", "Backbone", "BackboneSpec", "DreamCancelled", "DreamError", "FeatureExtractor",
    "LayerError", "LayerTerm", "Objective", "OctaveSettings", "Progress", "ShapeError", "TilePolicy", "WeightsError",
    "ascent_step", "autocast_dtype", "backbone_from_module", "backbone_names", "channel", "check_image",
    "check_tile_size", "deepdream", "deepdream_memory", "download_weights", "dream_octaves", "fold_batchnorm",
    "from_bhwc", "gaussian_blur", "get_spec", "gram_matrix", "gram_style", "guide", "guided_objective",
    "image_gradient", "item_generator", "l2", "layer_objective", "load_backbone", "load_image", "mean_activation",
    "normalize_gradient", "objective", "octave_sizes", "optimize", "pixel_l2", "prepare_mask", "random_shift",
    "read_state_dict", "reference_activations", "resize", "resize_longer_side", "save_image", "style_objective",
    "terms_objective", "to_bhwc", "to_pil", "total_variation", "tuned_for",
]
