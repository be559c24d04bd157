"""The layer catalogue as the nodes show it, and the checks of what a user picks from it.

One menu holds every registry backbone's layers and their aliases (``mixed4``), so a saved workflow
stays valid whatever backbone it is later connected to; the frontend extension (``web/``) narrows
it to the connected backbone's layers with :func:`layer_catalogue`, which the server hands out. The
checks here run twice: in ``VALIDATE_INPUTS``, where ComfyUI passes ``None`` for an input fed by a
link (its value exists only at run time), and again when the node runs, with the same message.
"""

from __future__ import annotations

from collections.abc import Callable

from ..dream_core import BACKBONES, EMBEDDING, DreamError, LayerTerm, transformer_layers
from . import host

CLIP_TOWERS = {  # the CLIP vision configs ComfyUI loads (comfy/clip_vision_config_*.json): width, MLP, blocks, projection
    "clip_vision ViT-L/14": transformer_layers(1024, 4096, 24, EMBEDDING, 768),
    "clip_vision ViT-H/14": transformer_layers(1280, 5120, 32, EMBEDDING, 1024),
    "clip_vision ViT-bigG/14": transformer_layers(1664, 8192, 48, EMBEDDING, 1280),
}
"""The layers of the CLIP vision towers a CLIP Vision Backbone can wrap (not in the registry: they come
from the graph), so their layers are in the menu and their channels checked."""

CLIP_MENU = "clip_vision"
"""The frontend's catalogue entry for a CLIP Vision Backbone upstream: every tower's layers, each with
its largest width (which tower the loaded file is, only the run knows)."""

_CATALOGUES = [*({**spec.layers, **{alias: spec.layers[name] for alias, name in spec.aliases.items()}}
                 for spec in BACKBONES.values()), *CLIP_TOWERS.values()]

_CLIP_LAYERS = {name: max(tower[name] for tower in CLIP_TOWERS.values() if name in tower)
                for name in max(CLIP_TOWERS.values(), key=len)}
"""Every CLIP tower's layers (the deepest has them all, in its order), each at its widest: the
registry's ViT and Swin share names such as ``block3`` and must not set these widths."""

LAYER_MENU = list(dict.fromkeys(name for catalogue in _CATALOGUES for name in catalogue))
"""Every layer and alias of every registry backbone and CLIP tower, in catalogue order."""


def layer_widths(layer: str) -> list[int]:
    """The channel counts ``layer`` (or an alias of it) has in the registry's backbones and the CLIP towers;
    empty if none has it."""
    return [catalogue[layer] for catalogue in _CATALOGUES if layer in catalogue]


def check_layer_channel(layer: str, channel: int) -> None:
    """Refuse a layer no registry backbone has, or a channel that no backbone's ``layer`` has.

    Run again with the backbone itself when the node runs (:meth:`Backbone.channels`): this check
    knows only the registry, so it is the one a linked value gets at validation time too.
    """
    widths = layer_widths(layer)
    if not widths:
        raise DreamError(f"layer: {layer!r} is not a layer of any backbone; pick one from the menu.")
    if not -1 <= channel < max(widths):
        raise DreamError(f"channel: {layer} has at most {max(widths)} channels (0..{max(widths) - 1}) in any "
                         f"backbone, or -1 for all; got {channel}.")


def validation(check: Callable[..., None], **values) -> bool | str:
    """``VALIDATE_INPUTS``'s answer for ``check(**values)``: True, or the check's message.

    A ``None`` value is an input fed by a link: it is checked when the node runs, not here. A check
    of several values runs only when all of them are known.
    """
    if any(value is None for value in values.values()):
        return True
    try:
        check(**values)
    except DreamError as error:
        return str(error)
    return True


def layer_weights_only(terms: tuple[LayerTerm, ...], node: str) -> tuple[LayerTerm, ...]:
    """``terms`` for a node that reads only each layer and its weight; what else a Select Dream Layer
    node set (channel, loss, channel mode) is named in a warning, once, and dropped."""
    plain = tuple(LayerTerm(term.layer, term.weight) for term in terms)
    ignored = sorted({name for term in terms for name, value in
                      (("channel", term.channel), ("loss", term.loss), ("channel_mode", term.channel_mode))
                      if value != getattr(LayerTerm, name)})
    if ignored:
        host.warn_once(f"{node} reads only the layers and their weights; the {', '.join(ignored)} set on Select "
                       "Dream Layer is ignored (use Select Style Layer, which has no such settings).")
    return plain


def layer_catalogue(node_classes: dict[str, type]) -> dict:
    """What the frontend needs to narrow the layer menus: each backbone's layers (name -> channels)
    and aliases, and, per node type, which of its inputs are layer menus and which input is the
    channel of which layer. Read from the registry and the node definitions, never kept by hand."""
    layer_inputs, channel_inputs = {}, {}
    for node_id, cls in node_classes.items():
        inputs = {name: spec for section in cls.INPUT_TYPES().values() for name, spec in section.items()}
        menus = [name for name, (kind, *_) in inputs.items() if isinstance(kind, list) and set(LAYER_MENU) <= set(kind)]
        if menus:
            layer_inputs[node_id] = menus
        channel_of = getattr(cls, "CHANNEL_OF", None)
        if channel_of:
            channel_inputs[node_id] = channel_of
    return {
        "layer_menu": LAYER_MENU,
        "backbones": {**{name: {"layers": dict(spec.layers), "aliases": dict(spec.aliases),
                                "default_layer": spec.default_layer} for name, spec in BACKBONES.items()},
                      CLIP_MENU: {"layers": _CLIP_LAYERS,
                                  "aliases": {}, "default_layer": "block16.mlp"}},
        "backbone_nodes": {"DD_ClipVisionBackbone": CLIP_MENU},  # nodes whose backbone has no menu of its own
        "layer_inputs": layer_inputs,
        "channel_inputs": channel_inputs,
    }


__all__ = ["LAYER_MENU", "layer_widths", "check_layer_channel", "validation", "layer_weights_only", "layer_catalogue"]
