"""The backbone registry: which CNNs can dream, their layers, and how they want their input.

Each :class:`BackboneSpec` describes one torchvision network without building it: its layer
catalogue (every stage of the convolutional trunk, in execution order, with its channel count), its
input normalisation, native resolution and pretrained-weights URL. :class:`Backbone` is a built,
frozen network plus its spec; it hands out feature extractors that stop at the deepest layer asked for.

Convention: a layer's name is the name of the trunk stage whose *output* it is. The trunk is the
network flattened into stages that run one after the other; VGG and AlexNet stages get Caffe-style
names (``conv4_3``, ``relu4_3``, ``pool4``), the others keep torchvision's attribute names
(``inception4c``, ``Mixed_6b``, ``layer3``). Every registry catalogue ends with ``logits``, the
classifier's output :math:`(B, 1000)`, so ``channel("logits", k)`` is the score of ImageNet class ``k``.
Any ``nn.Module`` becomes a backbone with :func:`backbone_from_module`.

The package: the spec (:mod:`.spec`), the registry of torchvision networks (:mod:`.registry`), the
runtime :class:`Backbone` (:mod:`.backbone`), the surgery that keeps a catalogue (:mod:`.surgery`:
batch-norm folding, the pooling swap) and the adapters for networks from elsewhere (:mod:`.adapters`).
"""

from .adapters import CLIP_MEAN, CLIP_STD, backbone_from_clip_vision, backbone_from_module
from .backbone import EXTRACTORS_KEPT, Backbone
from .registry import BACKBONES, backbone_names, get_spec
from .spec import HALF, IMAGENET_MEAN, IMAGENET_STD, LOGITS, BackboneSpec
from .surgery import POOLINGS, ScaledAvgPool2d, average_pooling, fold_batchnorm

__all__ = ["BackboneSpec", "Backbone", "BACKBONES", "LOGITS", "POOLINGS", "get_spec", "backbone_names",
           "fold_batchnorm", "average_pooling", "backbone_from_module", "backbone_from_clip_vision",
           "EXTRACTORS_KEPT", "IMAGENET_MEAN", "IMAGENET_STD", "HALF", "CLIP_MEAN", "CLIP_STD", "ScaledAvgPool2d"]
