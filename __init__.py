"""DeepDream Nodes for ComfyUI: the nodes live in ``nodes/``, the maths in ``dream_core/``."""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"  # the frontend extension that narrows layer menus to the connected backbone

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
