"""DeepDream Nodes for ComfyUI: the nodes live in ``nodes/``, the maths in ``dream_core/``."""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
