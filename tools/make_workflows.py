"""Write example_workflows/*.json (UI format) and their API twins (example_workflows/api/*.json).

Run from the repository root: ``python tools/make_workflows.py``. Each workflow is described once,
below, in API terms; the UI file gets the node layout, links and widget values in input order,
so the two files always hold the same graph.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DOWNLOAD = "torchvision (download)"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}

# Core nodes: (link inputs with types, widget names, outputs).
CORE = {
    "LoadImage": ([], ["image", "upload"], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "SaveImage": ([("images", "IMAGE")], ["filename_prefix"], []),
    "PreviewImage": ([("images", "IMAGE")], [], []),
    "PreviewAny": ([("source", "*")], [], []),
    "MaskToImage": ([("mask", "MASK")], [], [("IMAGE", "IMAGE")]),
    "LoadVideo": ([], ["file", "upload"], [("VIDEO", "VIDEO")]),
    "GetVideoComponents": ([("video", "VIDEO")], [], [("images", "IMAGE"), ("audio", "AUDIO"), ("fps", "FLOAT")]),
    "CreateVideo": ([("images", "IMAGE"), ("audio", "AUDIO")], ["fps"], [("VIDEO", "VIDEO")]),
    "SaveVideo": ([("video", "VIDEO")], ["filename_prefix", "format", "codec"], []),
    "CheckpointLoaderSimple": ([], ["ckpt_name"], [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]),
    "CLIPTextEncode": ([("clip", "CLIP")], ["text"], [("CONDITIONING", "CONDITIONING")]),
    "EmptyLatentImage": ([], ["width", "height", "batch_size"], [("LATENT", "LATENT")]),
    "KSampler": ([("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                  ("latent_image", "LATENT")],
                 ["seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"], [("LATENT", "LATENT")]),
    "VAEDecode": ([("samples", "LATENT"), ("vae", "VAE")], [], [("IMAGE", "IMAGE")]),
    "CLIPVisionLoader": ([], ["clip_name"], [("CLIP_VISION", "CLIP_VISION")]),
}


def node_slots(pack, class_type: str):
    """(link inputs [(name, type)], widgets [(name, default)], outputs [(name, type)]) of a node type of ``pack``."""
    if class_type in CORE:
        links, widgets, outputs = CORE[class_type]
        return links, [(name, None) for name in widgets], outputs
    cls = pack.NODE_CLASS_MAPPINGS[class_type]
    spec = cls.INPUT_TYPES()
    links, widgets = [], []
    for section in ("required", "optional"):
        for name, (kind, *options) in spec.get(section, {}).items():
            if isinstance(kind, list) or kind in WIDGET_TYPES:
                widgets.append((name, (options[0] if options else {}).get("default", kind[0] if isinstance(kind, list) else None)))
            else:
                links.append((name, kind))
    names = getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)
    return links, widgets, list(zip(names, cls.RETURN_TYPES))


IMAGE_IN = "deepdream_example.jpg"
GUIDE_IN = "deepdream_guide.jpg"
VIDEO_IN = "deepdream_example_pan.mp4"
DREAM = {"steps": 10, "step_size": 0.01, "jitter": 32, "seed": 0}
PREVIEW_HEIGHT = {"LoadImage": 240, "LoadVideo": 320}  # room for the preview the frontend draws in these nodes

WORKFLOWS = {
    "deepdream_basic": [
        (1, "LoadImage", {"image": IMAGE_IN, "upload": "image"}),
        (2, "DD_LoadBackbone", {"backbone": "googlenet", "weights": DOWNLOAD, "seed": 0}),
        (3, "DD_SelectLayer", {"backbone": (2, 0), "layer": "inception4c", "weight": 1.0, "channel": -1, "loss": "l2"}),
        (4, "DD_OctavePyramid", {"octaves": 4, "octave_scale": 1.4, "detail": "reinject", "blend": 0.6}),
        (5, "DD_DeepDream", {"image": (1, 0), "backbone": (2, 0), "layers": (3, 0), "octaves": (4, 0), **DREAM}),
        (6, "SaveImage", {"images": (5, 0), "filename_prefix": "deepdream"}),
    ],
    "deepdream_multilayer": [
        (1, "LoadImage", {"image": IMAGE_IN, "upload": "image"}),
        (2, "DD_LoadBackbone", {"backbone": "inception_v3", "weights": DOWNLOAD, "seed": 0}),
        (3, "DD_SelectLayer", {"backbone": (2, 0), "layer": "Mixed_6b", "weight": 1.0, "channel": -1, "loss": "l2"}),
        (4, "DD_SelectLayer", {"backbone": (2, 0), "layers": (3, 0), "layer": "Mixed_6c", "weight": 1.5,
                               "channel": -1, "loss": "l2"}),
        (5, "DD_SelectLayer", {"backbone": (2, 0), "layers": (4, 0), "layer": "Mixed_6d", "weight": 2.0,
                               "channel": -1, "loss": "l2"}),
        (6, "DD_OctavePyramid", {"octaves": 3, "octave_scale": 1.4, "detail": "reinject", "blend": 0.6}),
        (7, "DD_DeepDream", {"image": (1, 0), "backbone": (2, 0), "layers": (5, 0), "octaves": (6, 0), **DREAM}),
        (8, "SaveImage", {"images": (7, 0), "filename_prefix": "deepdream_multilayer"}),
    ],
    "guided_dream": [
        (1, "LoadImage", {"image": IMAGE_IN, "upload": "image"}),
        (2, "LoadImage", {"image": GUIDE_IN, "upload": "image"}),
        (3, "DD_LoadBackbone", {"backbone": "googlenet", "weights": DOWNLOAD, "seed": 0}),
        (4, "DD_SelectLayer", {"backbone": (3, 0), "layer": "inception4c", "weight": 1.0, "channel": -1, "loss": "l2"}),
        (5, "DD_OctavePyramid", {"octaves": 4, "octave_scale": 1.4, "detail": "reinject", "blend": 0.6}),
        (6, "DD_GuidedDream", {"image": (1, 0), "guide_image": (2, 0), "backbone": (3, 0), "layers": (4, 0),
                               "octaves": (5, 0), **DREAM}),
        (7, "SaveImage", {"images": (6, 0), "filename_prefix": "guided_dream"}),
    ],
    "dream_after_generation": [
        (1, "CheckpointLoaderSimple", {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}),
        (2, "CLIPTextEncode", {"clip": (1, 1), "text": "a quiet valley under a cloudy sky, oil painting"}),
        (3, "CLIPTextEncode", {"clip": (1, 1), "text": "blurry, text, watermark"}),
        (4, "EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1}),
        (5, "KSampler", {"model": (1, 0), "positive": (2, 0), "negative": (3, 0), "latent_image": (4, 0),
                         "seed": 0, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
                         "denoise": 1.0}),
        (6, "VAEDecode", {"samples": (5, 0), "vae": (1, 2)}),
        (7, "DD_LoadBackbone", {"backbone": "googlenet", "weights": DOWNLOAD, "seed": 0}),
        (8, "DD_SelectLayer", {"backbone": (7, 0), "layer": "inception4d", "weight": 1.0, "channel": -1, "loss": "l2"}),
        (9, "DD_DeepDream", {"image": (6, 0), "backbone": (7, 0), "layers": (8, 0), **DREAM}),
        (10, "SaveImage", {"images": (9, 0), "filename_prefix": "dream_after_generation"}),
    ],
    "dream_with_style": [
        (1, "LoadImage", {"image": IMAGE_IN, "upload": "image"}),
        (2, "LoadImage", {"image": GUIDE_IN, "upload": "image"}),
        (3, "DD_LoadBackbone", {"backbone": "vgg19", "weights": DOWNLOAD, "seed": 0}),
        (4, "DD_SelectLayer", {"backbone": (3, 0), "layer": "relu4_2", "weight": 1.0, "channel": -1, "loss": "l2"}),
        (5, "DD_StyleLoss", {"style_image": (2, 0), "backbone": (3, 0), "weight": 5.0}),  # Gatys' layers
        (6, "DD_DeepDream", {"image": (1, 0), "backbone": (3, 0), "layers": (4, 0), "objective": (5, 0), **DREAM}),
        (7, "SaveImage", {"images": (6, 0), "filename_prefix": "dream_with_style"}),
    ],
    "style_transfer": [
        (1, "LoadImage", {"image": IMAGE_IN, "upload": "image"}),
        (2, "LoadImage", {"image": GUIDE_IN, "upload": "image"}),
        (3, "DD_LoadBackbone", {"backbone": "vgg19", "weights": DOWNLOAD, "seed": 0, "pooling": "avg"}),
        (4, "DD_StyleLoss", {"style_image": (2, 0), "backbone": (3, 0), "weight": 1.0}),  # Gatys' relu1_1 .. relu5_1
        (5, "DD_StyleTransfer", {"content_image": (1, 0), "backbone": (3, 0), "style": (4, 0)}),
        (6, "SaveImage", {"images": (5, 0), "filename_prefix": "style_transfer"}),
    ],
    "dream_zoom": [
        (1, "LoadImage", {"image": IMAGE_IN, "upload": "image"}),
        (2, "DD_LoadBackbone", {"backbone": "googlenet", "weights": DOWNLOAD, "seed": 0}),
        (3, "DD_SelectLayer", {"backbone": (2, 0), "layer": "inception4c", "weight": 1.0, "channel": -1, "loss": "l2"}),
        (4, "DD_DreamZoom", {"image": (1, 0), "backbone": (2, 0), "layers": (3, 0), "frames": 48, "zoom": 1.05,
                             "rotate": 0.5, "shift_x": 0.0, "shift_y": 0.0, "steps_per_frame": 5, "step_size": 0.01,
                             "jitter": 32, "seed": 0}),
        (5, "CreateVideo", {"images": (4, 0), "fps": 12.0}),
        (6, "SaveVideo", {"video": (5, 0), "filename_prefix": "video/dream_zoom", "format": "auto", "codec": "auto"}),
    ],
    "dream_video": [  # streamed: a long clip at full size in bounded memory, its sound and rate kept
        (1, "LoadVideo", {"file": VIDEO_IN, "upload": "video"}),
        (2, "DD_LoadBackbone", {"backbone": "googlenet", "weights": DOWNLOAD, "seed": 0}),
        (3, "DD_SelectLayer", {"backbone": (2, 0), "layer": "inception4c", "weight": 1.0, "channel": -1, "loss": "l2"}),
        (4, "DD_DreamVideoStream", {"video": (1, 0), "backbone": (2, 0), "layers": (3, 0), "carry": 0.8,
                                    "flow": "farneback", "steps_per_frame": 5, "step_size": 0.01, "jitter": 32,
                                    "seed": 0}),
        (5, "SaveVideo", {"video": (4, 0), "filename_prefix": "video/dream_video", "format": "auto", "codec": "auto"}),
    ],
    "clip_vision_dream": [
        (1, "LoadImage", {"image": IMAGE_IN, "upload": "image"}),
        (2, "CLIPVisionLoader", {"clip_name": "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"}),
        (3, "DD_ClipVisionBackbone", {"clip_vision": (2, 0)}),
        (4, "DD_SelectLayer", {"backbone": (3, 0), "layer": "block20.mlp", "weight": 1.0, "channel": -1, "loss": "l2"}),
        (5, "DD_OctavePyramid", {"octaves": 3, "octave_scale": 1.4, "detail": "reinject", "blend": 0.6}),
        (6, "DD_DeepDream", {"image": (1, 0), "backbone": (3, 0), "layers": (4, 0), "octaves": (5, 0), **DREAM}),
        (7, "SaveImage", {"images": (6, 0), "filename_prefix": "clip_vision_dream"}),
    ],
    "clip_prompt_dream": [
        (1, "LoadImage", {"image": IMAGE_IN, "upload": "image"}),
        (2, "CheckpointLoaderSimple", {"ckpt_name": "sd_xl_base_1.0.safetensors"}),
        (3, "CLIPVisionLoader", {"clip_name": "clip_vision_g.safetensors"}),
        (4, "DD_ClipVisionBackbone", {"clip_vision": (3, 0)}),
        (5, "DD_ClipTarget", {"backbone": (4, 0), "clip": (2, 1), "weight": 1.0, "cutouts": 16,
                              "text": "a coral reef full of bright fish", "negative_text": "grey, dull, blurry",
                              "negative_weight": 0.5}),
        (6, "DD_DeepDream", {"image": (1, 0), "backbone": (4, 0), "objective": (5, 0), **DREAM}),
        (7, "SaveImage", {"images": (6, 0), "filename_prefix": "clip_prompt_dream"}),
    ],
    "feature_visualization": [
        (1, "DD_LoadBackbone", {"backbone": "googlenet", "weights": DOWNLOAD, "seed": 0}),
        (2, "DD_FeatureVisualize", {"backbone": (1, 0), "layer": "inception4c", "target": "channel", "index": 97,
                                    "width": 224, "height": 224, "batch": 4, "steps": 256, "seed": 0}),
        (3, "SaveImage", {"images": (2, 0), "filename_prefix": "feature_visualization"}),
    ],
    "feature_visualization_maco": [  # MaCo on a deep network: a class, and where it kept asking for change
        (1, "DD_LoadBackbone", {"backbone": "resnet50", "weights": DOWNLOAD, "seed": 0}),
        (2, "DD_FeatureVisualize", {"backbone": (1, 0), "layer": "layer4", "target": "class", "index": 130,
                                    "width": 224, "height": 224, "batch": 2, "steps": 256, "seed": 0,
                                    "parameterization": "maco"}),
        (3, "SaveImage", {"images": (2, 0), "filename_prefix": "feature_visualization_maco"}),
        (4, "MaskToImage", {"mask": (2, 1)}),
        (5, "PreviewImage", {"images": (4, 0)}),
    ],
    "explain_network": [
        (1, "LoadImage", {"image": IMAGE_IN, "upload": "image"}),
        (2, "DD_LoadBackbone", {"backbone": "googlenet", "weights": DOWNLOAD, "seed": 0}),
        (3, "DD_Classify", {"image": (1, 0), "backbone": (2, 0), "top_k": 5}),
        (4, "PreviewAny", {"source": (3, 0)}),
        (5, "DD_Saliency", {"image": (1, 0), "backbone": (2, 0), "target": -1, "method": "smoothgrad"}),
        (6, "PreviewImage", {"images": (5, 1)}),
        (7, "DD_FoolingImage", {"image": (1, 0), "backbone": (2, 0), "target": 1, "method": "ascent",
                                "max_steps": 100}),
        (8, "SaveImage", {"images": (7, 0), "filename_prefix": "fooled"}),
        (9, "PreviewImage", {"images": (7, 1)}),
        (10, "PreviewAny", {"source": (7, 2)}),
    ],
}


def api_format(pack, nodes) -> dict:
    api = {}
    for node_id, class_type, inputs in nodes:
        links, widgets, _ = node_slots(pack, class_type)
        values = {name: default for name, default in widgets if default is not None}
        values.update({k: ([str(v[0]), v[1]] if isinstance(v, tuple) else v) for k, v in inputs.items()
                       if k != "upload"})
        api[str(node_id)] = {"class_type": class_type, "inputs": values}
    return api


def ui_format(pack, nodes) -> dict:
    by_id = {node_id: (class_type, inputs) for node_id, class_type, inputs in nodes}
    depth = {}
    for node_id, _, inputs in nodes:  # nodes are listed after their sources
        depth[node_id] = 1 + max((depth[v[0]] for v in inputs.values() if isinstance(v, tuple)), default=-1)
    links, ui_nodes, column_bottom = [], [], {}
    outputs_links: dict[tuple[int, int], list[int]] = {}
    for node_id, class_type, inputs in nodes:
        for slot, (name, kind) in enumerate(node_slots(pack, class_type)[0]):
            if name in inputs:
                origin, origin_slot = inputs[name]
                link_id = len(links) + 1
                links.append([link_id, origin, origin_slot, node_id, slot, kind])
                outputs_links.setdefault((origin, origin_slot), []).append(link_id)
    for order, (node_id, class_type, inputs) in enumerate(nodes):
        link_inputs, widgets, outputs = node_slots(pack, class_type)
        values = []
        for name, default in widgets:
            values.append(inputs.get(name, default))
            if name == "seed":
                values.append("fixed")  # the frontend's control_after_generate widget follows every seed
        height = 60 + 22 * (len(link_inputs) + len(widgets) + len(outputs))
        height += PREVIEW_HEIGHT.get(class_type, 0)  # the frontend shows the picture or video inside the node
        top = column_bottom.get(depth[node_id], 40)
        column_bottom[depth[node_id]] = top + height + 50
        ui_nodes.append({
            "id": node_id, "type": class_type, "pos": [40 + 340 * depth[node_id], top],
            "size": [300, height], "flags": {}, "order": order, "mode": 0,
            "inputs": [{"name": name, "type": kind,
                        "link": next((l[0] for l in links if l[3] == node_id and l[4] == slot), None)}
                       for slot, (name, kind) in enumerate(link_inputs)],
            "outputs": [{"name": name, "type": kind, "links": outputs_links.get((node_id, slot), []),
                         "slot_index": slot} for slot, (name, kind) in enumerate(outputs)],
            "properties": {"Node name for S&R": class_type},
            "widgets_values": values,
        })
    return {"last_node_id": max(by_id), "last_link_id": len(links), "nodes": ui_nodes, "links": links,
            "groups": [], "config": {}, "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}}, "version": 0.4}


def rendered(pack) -> dict[str, tuple[str, str]]:
    """Every template as the text of its UI file and of its API twin."""
    return {name: (json.dumps(ui_format(pack, nodes), indent=2) + "\n", json.dumps(api_format(pack, nodes), indent=2) + "\n")
            for name, nodes in WORKFLOWS.items()}


def main() -> None:
    sys.path.insert(0, str(ROOT.parent))
    pack = importlib.import_module(ROOT.name)  # the pack, imported as ComfyUI imports it
    out = ROOT / "example_workflows"
    (out / "api").mkdir(exist_ok=True)  # a subfolder: ComfyUI lists only the UI files as Templates
    for name, (ui, api) in rendered(pack).items():
        (out / f"{name}.json").write_text(ui)
        (out / "api" / f"{name}.json").write_text(api)


if __name__ == "__main__":
    main()
