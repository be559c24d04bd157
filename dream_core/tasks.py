"""Tasks: every driver as a host runs it.

A host (ComfyUI's nodes, a server) does the same around every driver: make room on its device for
the run's working set, choose a precision, show progress, honour Cancel, and keep the result where
it keeps outputs. A :class:`Task` carries what that needs from the driver: the backbone it runs on,
the bytes one run needs beside the weights (its driver's entry in :mod:`dream_core.memory`), and the
run itself, which takes the host's ``precision``, ``progress`` and ``cancel``. So the memory policy
(how many items go at once, which layers a run reads) lives here, next to the drivers, and a host
has one way to run them all.

Dreams run one item at a time (``batch_size=1``): a batched step differs from a lone one by float
rounding, and the picture must not depend on what else the host has loaded.

Example::

    task = dream_task(image, backbone, l2("inception4c"), steps=10)
    backbone.to(device)                     # a host makes room for task.memory bytes first
    dream = task.run(precision="fp32", progress=None, cancel=None)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

from torch import Tensor

from pathlib import Path

from .animate import dream_video, dream_zoom
from .backbones import LOGITS, Backbone
from .dream import deepdream, deepdream_memory
from .errors import DreamError
from .explain import (attribution_memory, class_visualize, classify, fool, invert_features, path_similarity,
                      saliency_map)
from .jobs import dream_video_file
from .media import VideoSource, video_size
from .memory import pass_memory
from .objectives import LayerTerm, Objective, cosine, terms_objective
from .cutouts import Cutouts
from .param import accentuate, feature_visualize, maco_cutouts
from .references import guided_objective, image_embedding
from .style import stylize, stylize_memory
from .transformers import EMBEDDING

__all__ = ["Task", "accentuate_task", "path_task", "dream_task", "guided_dream_task", "zoom_task", "video_task", "video_file_task", "stylize_task", "classify_task",
           "saliency_task", "class_visualize_task", "fool_task", "invert_task", "feature_visualize_task",
           "embedding_task"]

T = TypeVar("T")

DREAM_MEMORY_OPTIONS = ("octaves", "octave_scale", "tile_size", "tile_overlap", "tile_above")
"""The :func:`~dream_core.deepdream` settings its working set depends on."""


@dataclass(frozen=True)
class Task(Generic[T]):
    """A driver's run, waiting for a host: place ``backbone`` with ``memory`` bytes free beside its weights,
    then call ``run(precision=..., progress=..., cancel=...)`` (inside ``torch.enable_grad()``)."""

    backbone: Backbone
    memory: int
    run: Callable[..., T]


def _size(image: Tensor) -> tuple[int, int]:
    return tuple(image.shape[-2:])


def _dream_memory(size: tuple[int, int], backbone: Backbone, reads: Objective | frozenset[str], options: dict,
                  views=None) -> int:
    """:func:`~dream_core.deepdream_memory` for a dream called with ``options`` (its defaults are deepdream's)."""
    settings = {key: options[key] for key in DREAM_MEMORY_OPTIONS if key in options}
    return deepdream_memory(size, backbone, reads, views=views, **settings)


def dream_task(image: Tensor, backbone: Backbone, objective: Objective, **options) -> Task[Tensor]:
    """:func:`~dream_core.deepdream` of ``image`` :math:`(B, 3, H, W)`; ``options`` are deepdream's."""
    options.setdefault("batch_size", 1)
    return Task(backbone, _dream_memory(_size(image), backbone, objective, options),
                partial(deepdream, image, backbone, objective, **options))


def guided_dream_task(image: Tensor, backbone: Backbone, guide: Tensor, layers: Sequence[LayerTerm] | None = None,
                      objective: Objective | None = None, **options) -> Task[Tensor]:
    """A dream of ``image`` towards ``guide`` :math:`(1, 3, h, w)`: each feature at ``layers`` pulled to its
    best match in the guide, or, without layers on a CLIP backbone, the guide's CLIP image embedding matched
    (as the model's host embeds it); plus ``objective``. The guide is read in the run, with the backbone in place.
    """
    if layers:
        own = terms_objective(layers).layers
        make_guide = partial(guided_objective, backbone, guide, layers)
    elif EMBEDDING in backbone.spec.layers:
        own = frozenset({EMBEDDING})

        def make_guide() -> Objective:
            return cosine(EMBEDDING, image_embedding(backbone, guide, EMBEDDING, "guide_image"))
    else:
        raise DreamError(f"layers: Guided Dream needs the layers at which to match the guide ({backbone.name} has "
                         "no CLIP image embedding to match it in); connect Select Dream Layer.")
    reads, views = (own, None) if objective is None else (own | objective.layers, objective.views)
    options.setdefault("batch_size", 1)

    def run(**host) -> Tensor:
        wanted = make_guide() if objective is None else make_guide() + objective
        return deepdream(image, backbone, wanted, **options, **host)

    return Task(backbone, _dream_memory(_size(image), backbone, reads, options, views), run)


def zoom_task(image: Tensor, backbone: Backbone, objective: Objective, frames: int, *,
              objective_end: Objective | None = None, **options) -> Task[Tensor]:
    """:func:`~dream_core.dream_zoom`: the working set of one frame's dream, reading both ends of a morph."""
    reads = objective if objective_end is None else objective + objective_end
    return Task(backbone, _dream_memory(_size(image), backbone, reads, options),
                partial(dream_zoom, image, backbone, objective, frames, objective_end=objective_end, **options))


def video_task(frames: Tensor, backbone: Backbone, objective: Objective, **options) -> Task[Tensor]:
    """:func:`~dream_core.dream_video` of frames :math:`(T, 3, H, W)`: the working set of one frame's dream."""
    return Task(backbone, _dream_memory(_size(frames), backbone, objective, options),
                partial(dream_video, frames, backbone, objective, **options))


def video_file_task(source: VideoSource, output: Path, folder: Path, backbone: Backbone, objective: Objective,
                    **options) -> Task[Path]:
    """:func:`~dream_core.jobs.dream_video_file`: a video streamed from file to file, resumable from ``folder``;
    the working set of one frame's dream, whatever the clip's length."""
    return Task(backbone, _dream_memory(video_size(source), backbone, objective, options),
                partial(dream_video_file, source, output, folder, backbone, objective, **options))


def stylize_task(content: Tensor, backbone: Backbone, style: Objective, **options) -> Task[Tensor]:
    """:func:`~dream_core.stylize`, with the working set of its optimizer."""
    memory = stylize_memory(_size(content), backbone, style, options.get("optimizer", "lbfgs"),
                            options.get("content_layer"))
    return Task(backbone, memory, partial(stylize, content, backbone, style, **options))


def classify_task(image: Tensor, backbone: Backbone, top_k: int = 5) -> Task[list]:
    """:func:`~dream_core.classify`: one forward pass (no progress, nothing to cancel)."""
    def run(precision: str, **_) -> list:
        return classify(image, backbone, top_k, precision)

    return Task(backbone, pass_memory(_size(image), backbone, {LOGITS}), run)


def saliency_task(image: Tensor, backbone: Backbone, target: int | None = None, method: str = "gradient",
                  **options) -> Task[Tensor]:
    """:func:`~dream_core.saliency_map`, with the working set of the samples it sends at once."""
    memory = attribution_memory(_size(image), backbone, method, options.get("samples", 25), options.get("steps", 64))
    return Task(backbone, memory, partial(saliency_map, image, backbone, target, method, **options))


def class_visualize_task(backbone: Backbone, target: int, *, size: tuple[int, int], **options) -> Task[Tensor]:
    """:func:`~dream_core.class_visualize` at ``size`` ``(H, W)``: one item at a time."""
    return Task(backbone, pass_memory(size, backbone, {LOGITS}),
                partial(class_visualize, backbone, target, size=size, **options))


def fool_task(image: Tensor, backbone: Backbone, target: int, **options) -> Task[tuple]:
    """:func:`~dream_core.fool`: one item at a time."""
    return Task(backbone, pass_memory(_size(image), backbone, {LOGITS}),
                partial(fool, image, backbone, target, **options))


def invert_task(image: Tensor, backbone: Backbone, layer: str, **options) -> Task[Tensor]:
    """:func:`~dream_core.invert_features` at ``layer``: one item at a time."""
    layer = backbone.resolve(layer)
    return Task(backbone, pass_memory(_size(image), backbone, {layer}),
                partial(invert_features, image, backbone, layer, **options))


def feature_visualize_task(backbone: Backbone, objective: Objective, *, size: tuple[int, int], batch: int = 1,
                           diversity: float = 0.0, diversity_layer: str | None = None,
                           **options) -> Task[Tensor]:
    """:func:`~dream_core.feature_visualize`: one item at a time, or the whole batch when ``diversity``
    pushes its pictures apart (they are optimised together)."""
    reads = objective.layers | ({backbone.resolve(diversity_layer)} if diversity and diversity_layer else set())
    maco = options.get("parameterization") == "maco" and options.get("transforms", True)
    memory = (_crops_memory(size, backbone, reads, maco_cutouts(backbone, size)) if maco
              else pass_memory(size, backbone, reads, batch if diversity else 1))
    return Task(backbone, memory, partial(feature_visualize, backbone, objective, size=size, batch=batch,
                                          diversity=diversity, diversity_layer=diversity_layer, **options))


def accentuate_task(image: Tensor, backbone: Backbone, objective: Objective, *, crops: bool = True,
                    **options) -> Task:
    """:func:`~dream_core.accentuate`: one item at a time, all its crops in one pass."""
    size = _size(image)
    memory = (_crops_memory(size, backbone, objective.layers, maco_cutouts(backbone, size)) if crops
              else pass_memory(size, backbone, objective.layers))
    return Task(backbone, memory, partial(accentuate, image, backbone, objective, crops=crops, **options))


def _crops_memory(size: tuple[int, int], backbone: Backbone, layers, crops: Cutouts) -> int:
    """A pass over all of one picture's ``crops`` at once (MaCo's, accentuation's)."""
    return pass_memory(size, backbone, layers, inputs=crops.count, network_pixels=crops.size ** 2)


def path_task(backbone: Backbone, pictures: Tensor, references: Tensor, **options) -> Task[list]:
    """:func:`~dream_core.path_similarity`: one forward pass of the pictures and the references together."""
    inputs = pictures.shape[0] + references.shape[0]

    def run(**_) -> list:
        return path_similarity(backbone, pictures, references, **options)

    return Task(backbone, pass_memory(_size(pictures), backbone, list(backbone.spec.layers), inputs=inputs), run)


def embedding_task(backbone: Backbone, image: Tensor, layer: str = EMBEDDING, name: str = "image") -> Task[Tensor]:
    """:func:`~dream_core.image_embedding`: one pass at the backbone's native size, no gradient."""
    native = backbone.spec.native_size
    return Task(backbone, pass_memory((native, native), backbone, [layer]),
                lambda **_: image_embedding(backbone, image, layer, name))
