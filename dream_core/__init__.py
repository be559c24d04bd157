"""dream_core: DeepDream and its relatives (gradient ascent on the image) in plain PyTorch + kornia.

    >>> import dream_core as dc
    >>> backbone = dc.load_backbone("googlenet", "random", seed=0)
    >>> image = dc.load_image("assets/example.jpg")
    >>> dream = dc.deepdream(image, backbone, dc.l2("inception4c") + 0.5 * dc.l2("inception4d"))
    >>> dream.shape, bool((dream != image).any())
    (torch.Size([1, 3, 384, 512]), True)

Nothing here imports ComfyUI; the node pack at the repository root wraps these functions.
"""

from .ascent import ascent_step, normalize_gradient, random_shift
from .backbones import BACKBONES, Backbone, BackboneSpec, backbone_names, fold_batchnorm, get_spec
from .dream import deepdream
from .errors import DreamCancelled, DreamError, LayerError, ShapeError, WeightsError
from .features import FeatureExtractor
from .images import check_image, from_bhwc, load_image, prepare_mask, save_image, to_bhwc
from .objectives import Objective, channel, l2, layer_objective, mean_activation, objective
from .pyramid import dream_octaves, gaussian_blur, octave_sizes, resize
from .weights import download_weights, load_backbone, read_state_dict

__all__ = [
    "BACKBONES", "Backbone", "BackboneSpec", "DreamCancelled", "DreamError", "FeatureExtractor",
    "LayerError", "Objective", "ShapeError", "WeightsError", "ascent_step", "backbone_names", "channel",
    "check_image", "deepdream", "download_weights", "dream_octaves", "fold_batchnorm", "from_bhwc", "gaussian_blur",
    "get_spec", "l2", "layer_objective", "load_backbone", "load_image", "mean_activation",
    "normalize_gradient", "objective", "octave_sizes", "prepare_mask", "random_shift",
    "read_state_dict", "resize", "save_image", "to_bhwc",
]
