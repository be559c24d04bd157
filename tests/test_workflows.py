"""Run every API-format example for real: dream nodes as they are, core nodes as small stand-ins."""

import importlib.util
import json

import pytest
import torch

from workflow_runner import ROOT, SIZE, execute, frames_of

EXAMPLES = sorted(p.stem for p in (ROOT / "example_workflows").glob("*.json"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_and_saves_a_dream(pack, name):
    prompt = json.loads((ROOT / "example_workflows" / "api" / f"{name}.json").read_text())
    saved = []
    results = execute(pack, prompt, saved)
    assert len(saved) == 1
    _, images = saved[0]
    assert images.shape[1:] == (*SIZE, 3) and images.dtype == torch.float32
    assert images.shape[0] == {"dream_zoom": 3, "dream_video": 3, "feature_visualization": 4,
                               "feature_visualization_maco": 2}.get(name, 1)
    assert 0 <= images.min() and images.max() <= 1
    dream_node = next((v for v in prompt.values()
                       if v["class_type"] in ("DD_DeepDream", "DD_GuidedDream", "DD_StyleTransfer", "DD_FoolingImage",
                                              "DD_DreamZoom", "DD_DreamVideo", "DD_DreamVideoStream")), None)
    if dream_node is None:  # made from nothing: the pictures differ from each other
        assert not torch.equal(images[0], images[1])
        return
    inputs = dream_node["inputs"]
    source, slot = inputs.get("image") or inputs.get("content_image") or inputs.get("frames") or inputs["video"]
    assert (images - frames_of(results[source][slot])).abs().mean() > 1e-3, "the dream node returned its input unchanged"


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
                             "dream_with_style", "style_transfer", "explain_network", "dream_zoom", "dream_video", "feature_visualization",
                             "feature_visualization_maco", "clip_vision_dream", "clip_prompt_dream"}


@pytest.mark.parametrize("name", EXAMPLES)
def test_no_node_of_a_template_covers_another(name):
    """Boxes as laid out (title bar included, previews of Load Image / Load Video counted in the size)
    never overlap. Catches the Load Video preview hiding Load Dream Backbone."""
    title = 30
    boxes = [(n["pos"][0], n["pos"][1] - title, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
             for n in json.loads((ROOT / "example_workflows" / f"{name}.json").read_text())["nodes"]]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (name, a, b)


def test_style_templates_are_lean():
    """At most 6 nodes for a style transfer, and no Select Dream Layer whose settings a style ignores."""
    style = json.loads((ROOT / "example_workflows" / "api" / "style_transfer.json").read_text())
    assert len(style) <= 6 and all(n["class_type"] != "DD_SelectLayer" for n in style.values())


def _make_workflows():
    spec = importlib.util.spec_from_file_location("make_workflows", ROOT / "tools" / "make_workflows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_shipped_templates_are_what_the_tool_makes(pack, name):
    """A node that gains an input leaves every saved template a widget short (Feature Visualization once
    received "auto" in its `negative`): the shipped files must be the tool's output for today's nodes."""
    ui, api = _make_workflows().rendered(pack)[name]
    assert (ROOT / "example_workflows" / f"{name}.json").read_text() == ui, "run python tools/make_workflows.py"
    assert (ROOT / "example_workflows" / "api" / f"{name}.json").read_text() == api


WIDGET_TYPES = {"INT": int, "FLOAT": (int, float), "STRING": str, "BOOLEAN": bool}


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_widget_value_lines_up_with_its_input_by_order_and_type(pack, name):
    """What the frontend does on load: it hands widgets_values out in the order of INPUT_TYPES' widget
    inputs, a control widget ("control after generate") after every seed. Each value must fit its widget."""
    for node in json.loads((ROOT / "example_workflows" / f"{name}.json").read_text())["nodes"]:
        cls = pack.NODE_CLASS_MAPPINGS.get(node["type"])
        if cls is None:  # a core node
            continue
        spec = cls.INPUT_TYPES()
        widgets = []
        for section in ("required", "optional"):
            for input_name, (kind, *options) in spec.get(section, {}).items():
                if isinstance(kind, list) or kind in WIDGET_TYPES:
                    widgets.append((input_name, kind))
                    if input_name == "seed":
                        widgets.append(("control_after_generate", ["fixed", "increment", "decrement", "randomize"]))
        assert len(node["widgets_values"]) == len(widgets), (node["type"], widgets)
        for (input_name, kind), value in zip(widgets, node["widgets_values"]):
            if isinstance(kind, list):
                assert value in kind, (node["type"], input_name, value)
            else:
                assert isinstance(value, WIDGET_TYPES[kind]) and not (kind != "BOOLEAN" and isinstance(value, bool)), \
                    (node["type"], input_name, value)
