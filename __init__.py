"""DeepDream Nodes for ComfyUI: the nodes live in ``nodes/``, the maths in ``dream_core/``."""

if __package__:  # ComfyUI imports the folder as a package; pytest imports this file alone when the
    # clone's folder name is no Python name (``deepdream-nodes``): then there is nothing to register
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"  # the frontend extension that narrows layer menus to the connected backbone

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
