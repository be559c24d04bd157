"""Objectives: what a dream maximises, as values you can add and scale.

An :class:`Objective` maps the activations of a forward pass, ``{layer: (B, C, H, W)}``, to one
score per batch item, shape ``(B,)``. It knows the layers it reads (``.layers``), so the feature
extractor runs only as deep as the whole sum needs. Objectives compose::

    objective = l2("inception4c") + 0.5 * channel("inception4d", 97) - 0.1 * mean_activation("conv2")

Scores are means, not sums, so they do not grow with the image size and weights stay comparable
across layers of different sizes (the Keras source divides by the activation's size for the same reason).

Some objectives read the image itself, under the reserved name ``"input"`` (0..1 RGB): penalties
such as :func:`total_variation` and :func:`pixel_l2` are subtracted from a layer objective,
``l2("inception4c") - 0.05 * total_variation()``; an objective made only of them runs no network.

Convention: matching objectives (:func:`guide`, :func:`content`, the style package's ``style_match``) are scores,
higher when closer, so they are *added*; penalties (:func:`total_variation`, :func:`pixel_l2`) are
positive measures, so they are *subtracted*.

Objectives made from a reference picture (a style or content image) depend on the size of the
image being optimised and on which batch item it is: drivers call ``objective.at(size, item)``
before working on an item at a size, and sums and multiples pass the call on to their parts.

The package: the type and its algebra (:mod:`.algebra`), layer objectives (:mod:`.layers`), matching
objectives (:mod:`.matching`) and penalties on the image (:mod:`.penalties`).
"""

from .algebra import Activations, Objective, at_least_float32, objective
from .layers import (CHANNEL_MODES, CHOICES, LOSSES, LayerTerm, channel, l2, layer_objective, mean_activation, neuron,
                     ranked_channels, terms_objective)
from .matching import DeviceCopies, content, cosine, direction, diversity, guide
from .penalties import TV_KINDS, pixel_l2, total_variation

__all__ = ["Objective", "objective", "l2", "mean_activation", "channel", "layer_objective", "LOSSES",
           "LayerTerm", "terms_objective", "guide", "cosine", "direction", "diversity", "content", "total_variation",
           "pixel_l2", "TV_KINDS", "ranked_channels", "CHANNEL_MODES", "CHOICES", "neuron", "Activations",
           "DeviceCopies", "at_least_float32"]
