"""Run every API-format example for real: dream nodes as they are, core nodes as small stand-ins."""

import json

import pytest
import torch

from conftest import ROOT

EXAMPLES = sorted(p.stem for p in (ROOT / "example_workflows").glob("*.json"))
SIZE = (48, 64)


def stand_ins(saved):
    """Minimal versions of the core nodes the examples use; KSampler + VAEDecode give a fixed image."""

    from dream_core import resize

    def load_image(image, upload=None):
        from dream_core import load_image as read

        source = {"deepdream_example.jpg": "example.jpg", "deepdream_guide.jpg": "guide.jpg"}[image]
        picture = resize(read(ROOT / "assets" / source), SIZE).movedim(1, -1)
        return picture, torch.zeros(1, *SIZE)

    def load_video(file):
        from dream_core import media

        assert file == "deepdream_example_pan.mp4"
        frames = [frame for _, frame in zip(range(3), media.read_frames(ROOT / "assets" / "example_pan.mp4"))]
        return torch.cat([resize(frame, SIZE) for frame in frames]).movedim(1, -1)

    def generated(samples, vae):
        return (torch.linspace(0, 1, SIZE[0] * SIZE[1] * 3).reshape(1, *SIZE, 3),)

    return {
        "LoadImage": load_image,
        "SaveImage": lambda images, filename_prefix: saved.append((filename_prefix, images)) or (),
        "PreviewImage": lambda images: (),
        "PreviewAny": lambda source: (),
        "LoadVideo": lambda file, upload=None: (load_video(file),),
        "GetVideoComponents": lambda video: (video, None, 12.0),
        "CreateVideo": lambda images, fps, audio=None: (images,),
        "SaveVideo": lambda video, filename_prefix, format, codec: saved.append((filename_prefix, video)) or (),
        "CheckpointLoaderSimple": lambda ckpt_name: ("model", "clip", "vae"),
        "CLIPTextEncode": lambda clip, text: ("conditioning",),
        "EmptyLatentImage": lambda width, height, batch_size: ("latent",),
        "KSampler": lambda **inputs: ("latent",),
        "VAEDecode": generated,
    }


def execute(pack, prompt, saved, fast=True):
    """Evaluate an API-format prompt in dependency order, inside inference mode as the host does."""
    core = stand_ins(saved)
    results = {}

    def run(node_id):
        if node_id in results:
            return results[node_id]
        node = prompt[node_id]
        inputs = {name: run(value[0])[value[1]] if isinstance(value, list) else value
                  for name, value in node["inputs"].items()}
        if node["class_type"] in core:
            output = core[node["class_type"]](**inputs)
        else:
            cls = pack.NODE_CLASS_MAPPINGS[node["class_type"]]
            declared = {**cls.INPUT_TYPES()["required"], **cls.INPUT_TYPES().get("optional", {})}
            assert set(inputs) <= set(declared), f"{node['class_type']}: unknown inputs {set(inputs) - set(declared)}"
            for name, value in inputs.items():  # widget values must be valid choices
                if isinstance(declared[name][0], list):
                    assert value in declared[name][0], (name, value)
            if fast:  # no network in tests, and a few steps are enough to prove the wiring
                inputs = {**inputs, **({"weights": "random init"} if "weights" in inputs else {}),
                          **({"steps": 2} if "steps" in inputs else {}),
                          **({"max_steps": 2} if "max_steps" in inputs else {}),
                          **({"steps_per_frame": 2} if "steps_per_frame" in inputs else {}),
                          **({"frames": 3} if isinstance(inputs.get("frames"), int) else {}),
                          **({"width": SIZE[1], "height": SIZE[0]} if "width" in inputs else {}),
                          **({"optimizer": "adam"} if "optimizer" in inputs else {})}  # L-BFGS starts tiny
            output = getattr(cls(), cls.FUNCTION)(**inputs)
            assert isinstance(output, tuple) and len(output) == len(cls.RETURN_TYPES)
        results[node_id] = output
        return output

    with torch.inference_mode():
        for node_id in prompt:
            run(node_id)
    return results


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_and_saves_a_dream(pack, name):
    prompt = json.loads((ROOT / "example_workflows" / "api" / f"{name}.json").read_text())
    saved = []
    results = execute(pack, prompt, saved)
    assert len(saved) == 1
    _, images = saved[0]
    assert images.shape[1:] == (*SIZE, 3) and images.dtype == torch.float32
    assert images.shape[0] == {"dream_zoom": 3, "dream_video": 3, "feature_visualization": 4}.get(name, 1)
    assert 0 <= images.min() and images.max() <= 1
    dream_node = next((v for v in prompt.values()
                       if v["class_type"] in ("DD_DeepDream", "DD_GuidedDream", "DD_StyleTransfer", "DD_FoolingImage",
                                              "DD_DreamZoom", "DD_DreamVideo")), None)
    if dream_node is None:  # made from nothing: the pictures differ from each other
        assert not torch.equal(images[0], images[1])
        return
    inputs = dream_node["inputs"]
    source, slot = inputs.get("image") or inputs.get("content_image") or inputs["frames"]
    assert (images - results[source][slot]).abs().mean() > 1e-3, "the dream node returned its input unchanged"


def test_cancel_mid_workflow_saves_nothing(pack, monkeypatch):
    def interrupt():
        raise InterruptedError("Processing interrupted")

    monkeypatch.setattr(pack.nodes.host, "interrupted", interrupt)
    saved = []
    with pytest.raises(InterruptedError):
        execute(pack, json.loads((ROOT / "example_workflows" / "api" / "deepdream_basic.json").read_text()), saved)
    assert saved == []


def _ui_graph(ui):
    nodes = {str(n["id"]): n["type"] for n in ui["nodes"]}
    by_link = {link[0]: link for link in ui["links"]}
    links = set()
    for node in ui["nodes"]:
        for slot in node["inputs"]:
            if slot["link"] is not None:
                _, origin, origin_slot, target, _, _ = by_link[slot["link"]]
                assert target == node["id"]
                links.add((str(target), slot["name"], str(origin), origin_slot))
    return nodes, links


def _api_graph(api):
    nodes = {node_id: node["class_type"] for node_id, node in api.items()}
    links = {(node_id, name, value[0], value[1]) for node_id, node in api.items()
             for name, value in node["inputs"].items() if isinstance(value, list)}
    return nodes, links


@pytest.mark.parametrize("name", EXAMPLES)
def test_ui_file_and_api_twin_hold_the_same_graph(name):
    ui = json.loads((ROOT / "example_workflows" / f"{name}.json").read_text())
    api = json.loads((ROOT / "example_workflows" / "api" / f"{name}.json").read_text())
    assert _ui_graph(ui) == _api_graph(api)
    assert ui["version"] == 0.4 and ui["last_link_id"] == len(ui["links"])
    for node in ui["nodes"]:
        assert len(node["pos"]) == 2 and len(node["size"]) == 2 and "widgets_values" in node
        widget_inputs = {k: v for k, v in api[str(node["id"])]["inputs"].items() if not isinstance(v, list)}
        values = [v for v in node["widgets_values"] if v not in ("fixed", "image", "video")]  # controls, uploads
        assert values == list(widget_inputs.values()), node["type"]


def test_the_promised_examples_exist():
    assert set(EXAMPLES) == {"deepdream_basic", "deepdream_multilayer", "guided_dream", "dream_after_generation",
                             "dream_with_style", "style_transfer", "explain_network", "dream_zoom", "dream_video", "feature_visualization"}
