"""Prompt validation as ComfyUI does it (``execution.validate_inputs``, server 0.3.64), and the layer catalogue.

ComfyUI hands ``VALIDATE_INPUTS`` only the inputs its signature names, with ``None`` for every input
fed by a link, and skips its own min/max and combo checks for exactly those inputs. The stand-in
below follows that code; a linked widget (Classify's class into a channel, a Primitive into
``tile_size``) must pass validation and be checked when the node runs.
"""

import inspect
import json

import pytest
import torch

from conftest import ROOT, import_pack
from workflow_runner import execute

WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN"}


def comfy_validate(cls, inputs: dict) -> list[str]:
    """The errors ComfyUI reports for one node: ``inputs`` maps names to values, or to ``[node, slot]`` links."""
    declared = {**cls.INPUT_TYPES()["required"], **cls.INPUT_TYPES().get("optional", {})}
    validate = getattr(cls, "VALIDATE_INPUTS", None)
    named = inspect.getfullargspec(validate).args if validate else []
    errors = []
    for name, value in inputs.items():
        if isinstance(value, list) or name in named:
            continue
        kind, options = declared[name][0], (declared[name][1] if len(declared[name]) > 1 else {})
        if "min" in options and value < options["min"] or "max" in options and value > options["max"]:
            errors.append(f"{name}: {value} out of range")
        if isinstance(kind, list) and value not in kind:
            errors.append(f"{name}: {value!r} not in list")
    if named:
        passed = {name: (None if isinstance(value, list) else value) for name, value in inputs.items() if name in named}
        answer = validate(**passed)
        if answer is not True:
            errors.append(str(answer))
    return errors


def defaults(cls) -> dict:
    """Every widget at its default, every other input linked."""
    values = {}
    for name, (kind, *rest) in {**cls.INPUT_TYPES()["required"], **cls.INPUT_TYPES().get("optional", {})}.items():
        options = rest[0] if rest else {}
        if isinstance(kind, list):
            values[name] = options.get("default", kind[0])
        elif kind in WIDGETS:
            values[name] = options["default"]
        else:
            values[name] = ["0", 0]
    return values


@pytest.mark.parametrize("node_id", sorted(import_pack().NODE_CLASS_MAPPINGS))
def test_every_node_validates_with_defaults_and_with_every_widget_linked(pack, node_id):
    """A widget fed by a link arrives as None: no node may fail (or crash) on it. Catches a
    VALIDATE_INPUTS that compares None with a number, or one that takes **kwargs or input_types
    (which switches off ComfyUI's own checks for every input)."""
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    assert comfy_validate(cls, defaults(cls)) == []
    linked = {name: ["9", 0] for name in defaults(cls)}
    assert comfy_validate(cls, linked) == []
    validate = getattr(cls, "VALIDATE_INPUTS", None)
    if validate is not None:
        spec = inspect.getfullargspec(validate)
        assert spec.varkw is None and "input_types" not in spec.args
        assert all(default is None for default in spec.defaults), "every checked input may be linked (None)"


def test_comfy_keeps_its_own_checks_for_what_we_do_not_check(pack):
    dream = pack.NODE_CLASS_MAPPINGS["DD_DeepDream"]
    assert comfy_validate(dream, {**defaults(dream), "steps": 5000}) == ["steps: 5000 out of range"]
    assert comfy_validate(dream, {**defaults(dream), "grad_norm": "median"}) == ["grad_norm: 'median' not in list"]


def test_our_checks_cover_the_inputs_comfy_skips(pack):
    """Naming an input in VALIDATE_INPUTS turns off ComfyUI's range and list checks for it: ours must
    refuse what they would have, with a message naming the input."""
    select = pack.NODE_CLASS_MAPPINGS["DD_SelectLayer"]
    base = defaults(select)
    assert comfy_validate(select, {**base, "layer": "mixed4"}) == []  # an alias the README advertises
    assert comfy_validate(select, {**base, "layer": "nope"}) == [
        "layer: 'nope' is not a layer of any backbone; pick one from the menu."]
    assert comfy_validate(select, {**base, "channel": -5}) == [
        "channel: inception4c has at most 512 channels (0..511) in any backbone, or -1 for all; got -5."]
    assert comfy_validate(select, {**base, "layer": "inception3a", "channel": 256}) == [
        "channel: inception3a has at most 256 channels (0..255) in any backbone, or -1 for all; got 256."]
    assert comfy_validate(select, {**base, "layer": "logits", "channel": 999}) == []
    dream = pack.NODE_CLASS_MAPPINGS["DD_DeepDream"]
    assert comfy_validate(dream, {**defaults(dream), "tile_size": 128}) == [
        "tile_size: must be 0 (off) or at least 2 * tile_overlap + 32 = 288, got 128."]
    assert comfy_validate(dream, {**defaults(dream), "tile_size": -64})[0].startswith("tile_size: must be 0")


def test_a_linked_value_is_checked_when_the_node_runs(pack, googlenet):
    select, dream = pack.NODE_CLASS_MAPPINGS["DD_SelectLayer"](), pack.NODE_CLASS_MAPPINGS["DD_DeepDream"]()
    with pytest.raises(pack.dream_core.DreamError, match="inception3a of googlenet has channels 0..255, or -1 for all; "
                       "got 256"):
        select.select(googlenet, "inception3a", 1.0, 256, "l2")
    with pytest.raises(pack.dream_core.DreamError, match="got -7"):
        select.select(googlenet, "inception3a", 1.0, -7, "l2")
    layers, = select.select(googlenet, "inception3a", 1.0, -1, "l2")
    with pytest.raises(pack.dream_core.DreamError, match="tile_size: must be 0 .* got 100"):
        dream.dream(torch.rand(1, 40, 40, 3), googlenet, 1, 0.01, 0, 0, layers, tile_size=100)


def test_classify_top_class_linked_into_the_channel_dreams_that_class(pack):
    """The graph users wire by hand: Classify -> Select Dream Layer.channel (layer logits) -> DeepDream,
    and a Primitive-fed tile_size. Validates as ComfyUI would, then runs; the dream raises the score
    of the class Classify named."""
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "deepdream_example.jpg", "upload": "image"}},
        "2": {"class_type": "DD_LoadBackbone", "inputs": {"backbone": "alexnet", "weights": "random init", "seed": 0}},
        "3": {"class_type": "DD_Classify", "inputs": {"image": ["1", 0], "backbone": ["2", 0], "top_k": 3}},
        "4": {"class_type": "DD_SelectLayer", "inputs": {"backbone": ["2", 0], "layer": "logits", "weight": 1.0,
                                                         "channel": ["3", 1], "loss": "mean"}},
        "5": {"class_type": "DD_DeepDream", "inputs": {"image": ["1", 0], "backbone": ["2", 0], "layers": ["4", 0],
                                                       "steps": 4, "step_size": 0.02, "jitter": 0, "seed": 0,
                                                       "tile_size": ["6", 0]}},
        "6": {"class_type": "PrimitiveInt", "inputs": {"value": 512}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "x"}},
    }
    for node in prompt.values():
        if node["class_type"] in pack.NODE_CLASS_MAPPINGS:
            assert comfy_validate(pack.NODE_CLASS_MAPPINGS[node["class_type"]], node["inputs"]) == []
    saved = []
    results = execute(pack, prompt, saved, fast=False, extra={"PrimitiveInt": lambda value: (value,)})
    top_class = results["3"][1]
    assert isinstance(top_class, int) and results["4"][0][0].channel == top_class
    net = results["2"][0]
    before, after = (pack.dream_core.logits(picture.movedim(-1, 1), net)[0, top_class]
                     for picture in (results["1"][0], saved[0][1]))
    assert after > before


def test_the_catalogue_route_data_comes_from_the_registry_and_the_nodes(pack):
    """What web/layer_menus.js narrows the menus with. Catches a node whose layer menu the frontend
    would not narrow, or a channel count that is not the backbone's."""
    data = json.loads(json.dumps(pack.nodes.layer_catalogue(pack.NODE_CLASS_MAPPINGS)))  # served as JSON
    registry = pack.dream_core.BACKBONES
    assert set(data["backbones"]) == {*registry, "clip_vision"}
    clip = data["backbones"][data["backbone_nodes"]["DD_ClipVisionBackbone"]]  # every CLIP tower, widest widths
    assert clip["layers"]["block47.mlp"] == 8192 and clip["layers"]["block0"] == 1664 and clip["layers"]["embedding"] == 1280
    assert list(clip["layers"])[:3] == ["patches", "block0.mlp", "block0"] and "relu1_1" not in clip["layers"]
    assert clip["default_layer"] in clip["layers"]
    assert data["backbones"]["vgg19"]["layers"]["relu5_1"] == 512
    assert data["backbones"]["inception_v3"]["aliases"]["mixed4"] == "Mixed_6b"
    assert data["backbones"]["googlenet"]["default_layer"] == "inception4c"
    menus = {node_id for node_id, cls in pack.NODE_CLASS_MAPPINGS.items()
             for section in cls.INPUT_TYPES().values() for kind, *_ in section.values()
             if isinstance(kind, list) and "relu1_1" in kind}
    assert set(data["layer_inputs"]) == menus and "DD_SelectLayer" in menus and "DD_ContentLoss" in menus
    assert data["layer_inputs"]["DD_StyleTransfer"] == ["content_layer"]
    assert data["channel_inputs"] == {"DD_SelectLayer": {"channel": "layer"}}
    assert data["layer_menu"] == pack.nodes.catalogue.LAYER_MENU
    assert "mixed4" in data["layer_menu"] and len(set(data["layer_menu"])) == len(data["layer_menu"])


def test_the_route_is_registered_on_the_host_server(pack, monkeypatch):
    """Inside ComfyUI the catalogue is served at /deepdream/layers (aiohttp, as PromptServer routes are)."""
    import asyncio
    import sys
    import types

    routes = {}
    server = types.SimpleNamespace(routes=types.SimpleNamespace(get=lambda path: lambda f: routes.setdefault(path, f)))
    monkeypatch.setitem(sys.modules, "server", types.SimpleNamespace(PromptServer=types.SimpleNamespace(instance=server)))
    web = types.SimpleNamespace(json_response=lambda data: types.SimpleNamespace(text=json.dumps(data)))
    monkeypatch.setitem(sys.modules, "aiohttp", types.SimpleNamespace(web=web))  # the host's web framework
    pack.nodes.host.add_json_route(pack.nodes.LAYERS_ROUTE, lambda: pack.nodes.layer_catalogue(pack.NODE_CLASS_MAPPINGS))
    response = asyncio.run(routes["/deepdream/layers"](None))
    assert json.loads(response.text)["backbones"]["googlenet"]["layers"]["inception4c"] == 512


def test_the_frontend_script_is_shipped_and_asks_the_route():
    assert import_pack().WEB_DIRECTORY == "./web"
    script = (ROOT / "web" / "layer_menus.js").read_text()
    assert '"/deepdream/layers"' in script and "relu1_1" not in script  # the catalogue is never copied into JS
    assert len(script.splitlines()) < 120


def test_load_backbone_is_changed_exactly_when_its_file_is(pack, fake_host, tmp_path):
    """ComfyUI reuses a node's cached output unless IS_CHANGED's answer changes: a replaced weights file
    must change it (and then be reloaded), an untouched one must not."""
    import os

    folder = tmp_path / "extra"
    folder.mkdir()
    loader = pack.NODE_CLASS_MAPPINGS["DD_LoadBackbone"]
    state = pack.dream_core.load_backbone("alexnet", "random", seed=1).model.state_dict()
    torch.save(state, folder / "mine.pth")
    first = loader.IS_CHANGED("alexnet", "mine.pth")
    assert first and loader.IS_CHANGED("alexnet", "mine.pth") == first
    net, = loader().load("alexnet", "mine.pth")
    assert loader().load("alexnet", "mine.pth")[0] is net  # unchanged: nothing reloads
    torch.save(pack.dream_core.load_backbone("alexnet", "random", seed=2).model.state_dict(), folder / "mine.pth")
    os.utime(folder / "mine.pth", ns=(os.stat(folder / "mine.pth").st_atime_ns,
                                      os.stat(folder / "mine.pth").st_mtime_ns + 1_000_000))
    assert loader.IS_CHANGED("alexnet", "mine.pth") != first
    reloaded, = loader().load("alexnet", "mine.pth")
    assert reloaded is not net
    assert not torch.equal(next(reloaded.model.parameters()), next(net.model.parameters()))
    assert loader.IS_CHANGED("googlenet", "random init", 3) == loader.IS_CHANGED("googlenet", "random init", 3)
