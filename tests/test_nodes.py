import inspect
import re
import subprocess
import sys
import types

import pytest
import torch

from conftest import ROOT, import_pack, random_backbone

WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN"}


def nodes(pack):
    return list(pack.NODE_CLASS_MAPPINGS.items())


def test_pack_imports_from_any_folder_name_without_comfy_and_stays_light(tmp_path):
    (tmp_path / "Some Folder-Name").symlink_to(ROOT, target_is_directory=True)
    code = (
        "import importlib, sys\n"
        "pack = importlib.import_module('Some Folder-Name')\n"
        "heavy = [m for m in ('comfy', 'torchvision', 'folder_paths') if m in sys.modules]\n"
        "print(sorted(pack.NODE_CLASS_MAPPINGS), heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    ids = ["DD_ClassVisualize", "DD_Classify", "DD_ClipTarget", "DD_ClipVisionBackbone", "DD_ContentLoss", "DD_DeepDream", "DD_DreamVideo",
           "DD_DreamVideoStream", "DD_DreamZoom",
           "DD_FeatureAccentuation", "DD_FeatureInversion", "DD_FeatureVisualize",
           "DD_FoolingImage", "DD_GuidedDream", "DD_LoadBackbone", "DD_OctavePyramid", "DD_Saliency",
           "DD_SelectLayer", "DD_SelectStyleLayer", "DD_StyleLoss", "DD_StyleTransfer", "DD_TVLoss", "DD_TrustCheck"]
    assert result.stdout.strip() == f"{ids} []"


def test_ids_and_display_names(pack):
    assert set(pack.NODE_CLASS_MAPPINGS) == set(pack.NODE_DISPLAY_NAME_MAPPINGS)
    assert pack.NODE_DISPLAY_NAME_MAPPINGS["DD_LoadBackbone"] == "Load Dream Backbone"
    assert pack.NODE_DISPLAY_NAME_MAPPINGS["DD_SelectLayer"] == "Select Dream Layer"


@pytest.mark.parametrize("node_id", sorted(import_pack().NODE_CLASS_MAPPINGS))
def test_declared_inputs_match_the_function_signature(pack, node_id):
    cls = pack.NODE_CLASS_MAPPINGS[node_id]
    spec = cls.INPUT_TYPES()
    parameters = inspect.signature(getattr(cls, cls.FUNCTION)).parameters
    names = [name for name in parameters if name != "self"]
    required, optional = list(spec["required"]), list(spec.get("optional", {}))
    assert sorted(names) == sorted(required + optional + list(spec.get("hidden", {})))
    for name in required:
        assert parameters[name].default is inspect.Parameter.empty, f"{name} is required but has a default"
    for name in optional:
        assert parameters[name].default is not inspect.Parameter.empty, f"{name} is optional without a default"
    assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES) == len(cls.OUTPUT_TOOLTIPS)
    assert cls.CATEGORY.startswith("DeepDream") and len(cls.DESCRIPTION) > 30


@pytest.mark.parametrize("node_id", sorted(import_pack().NODE_CLASS_MAPPINGS))
def test_every_input_has_a_tooltip_and_sane_bounds(pack, node_id):
    spec = pack.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()
    for section in (spec["required"], spec.get("optional", {})):  # hidden inputs are the host's, not shown
        for name, (kind, *options) in section.items():
            opts = options[0] if options else {}
            assert len(opts.get("tooltip", "")) > 10, f"{node_id}.{name} lacks a tooltip"
            if kind in ("INT", "FLOAT"):
                assert opts["min"] <= opts["default"] <= opts["max"], name
            if kind == "FLOAT":
                assert "step" in opts and opts["step"] <= max(abs(opts["default"]), 1.0), f"{name} needs a step"
            if isinstance(kind, list):
                assert opts.get("default", kind[0]) in kind


def test_seed_inputs_are_named_seed(pack):
    for node_id in ("DD_DeepDream", "DD_GuidedDream"):
        assert "seed" in pack.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()["required"]


@pytest.fixture
def nodes_run(pack):
    """Instances of every node, and a batch-of-2 graph built under inference mode, as the host runs it."""
    mapping = pack.NODE_CLASS_MAPPINGS
    with torch.inference_mode():
        backbone, = mapping["DD_LoadBackbone"]().load("googlenet", "random init", 0)
        layers, = mapping["DD_SelectLayer"]().select(backbone, "inception3a", 1.0, -1, "l2")
        layers, = mapping["DD_SelectLayer"]().select(backbone, "inception3b", 0.5, 7, "mean", layers)
        octaves, = mapping["DD_OctavePyramid"]().build(2, 1.4, "reinject", 0.6)
    return mapping, backbone, layers, octaves


def _image(batch=2, height=64, width=72):
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(batch, 3, 8, 9, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear").movedim(1, -1)


def _assert_dreamed(out, image):
    assert out.shape == image.shape and out.dtype == torch.float32 and out.device.type == "cpu"
    assert out.min() >= 0 and out.max() <= 1
    for index in range(image.shape[0]):
        assert (out[index] - image[index]).abs().mean() > 1e-3, f"batch item {index} was not dreamed"


def test_deepdream_node_under_inference_mode(nodes_run):
    mapping, backbone, layers, octaves = nodes_run
    image = _image()
    with torch.inference_mode():
        out, = mapping["DD_DeepDream"]().dream(image, backbone, 3, 0.01, 8, 0, layers, octaves, smoothing=1.0)
    _assert_dreamed(out, image)
    assert [term.layer for term in layers] == ["inception3a", "inception3b"] and layers[1].channel == 7


def test_guided_dream_node_under_inference_mode(nodes_run):
    mapping, backbone, layers, octaves = nodes_run
    image = _image()
    with torch.inference_mode():
        out, = mapping["DD_GuidedDream"]().dream(image, _image(1, 50, 40), backbone, 3, 0.01, 8, 0, layers, octaves)
    _assert_dreamed(out, image)


def test_style_loss_node_chains_into_a_dream(nodes_run):
    mapping, backbone, layers, octaves = nodes_run
    image = _image()
    with torch.inference_mode():
        style, = mapping["DD_StyleLoss"]().build(_image(1, 48, 48), backbone, 2.0, layers)
        both, = mapping["DD_StyleLoss"]().build(_image(1, 48, 48), backbone, 1.0, layers, objective=style)
        out, = mapping["DD_DeepDream"]().dream(image, backbone, 3, 0.01, 8, 0, layers, octaves, objective=both)
    _assert_dreamed(out, image)
    assert both.layers == {"inception3a", "inception3b"} and both.description.count("style(") == 2


def test_a_backbone_built_under_inference_mode_elsewhere_still_dreams(pack, nodes_run):
    mapping, _, layers, octaves = nodes_run
    with torch.inference_mode():
        backbone = pack.dream_core.load_backbone("googlenet", "random")  # not through the loader's escape
        assert next(backbone.model.parameters()).is_inference()
        out, = mapping["DD_DeepDream"]().dream(_image(1), backbone, 2, 0.01, 8, 0, layers, octaves)
    assert out.shape == (1, 64, 72, 3)


def test_mask_node_input_keeps_the_masked_out_part(nodes_run):
    mapping, backbone, layers, octaves = nodes_run
    image = _image()
    mask = torch.zeros(1, 32, 36)
    mask[..., :18] = 1.0
    with torch.inference_mode():
        out, = mapping["DD_DeepDream"]().dream(image, backbone, 3, 0.01, 8, 0, layers, octaves, mask)
    assert torch.equal(out[:, :, 40:], image[:, :, 40:])
    assert (out[:, :, :32] - image[:, :, :32]).abs().mean() > 1e-3


def test_select_layer_refuses_a_layer_the_backbone_lacks(pack, nodes_run):
    mapping, backbone, _, _ = nodes_run
    with pytest.raises(pack.dream_core.LayerError, match="'Mixed_6b' is not a layer of googlenet; available: conv1"):
        mapping["DD_SelectLayer"]().select(backbone, "Mixed_6b", 1.0, -1, "l2")
    with pytest.raises(pack.dream_core.DreamError, match="inception3a of googlenet has channels 0..255, or -1 for all; got 300"):
        mapping["DD_SelectLayer"]().select(backbone, "inception3a", 1.0, 300, "l2")


def test_layer_combo_offers_only_existing_layers(pack):
    combo = pack.NODE_CLASS_MAPPINGS["DD_SelectLayer"].INPUT_TYPES()["required"]["layer"][0]
    every = {name for spec in pack.dream_core.BACKBONES.values() for name in (*spec.layers, *spec.aliases)}
    clip = {name for layers in pack.nodes.catalogue.CLIP_TOWERS.values() for name in layers}
    assert set(combo) == every | clip and len(combo) == len(set(combo)) and {"mixed4", "block47.mlp"} <= set(combo)


def test_loader_caches_the_backbone(pack):
    loader = pack.NODE_CLASS_MAPPINGS["DD_LoadBackbone"]()
    first, = loader.load("alexnet", "random init", 1)
    assert loader.load("alexnet", "random init", 1)[0] is first
    assert loader.load("alexnet", "random init", 2)[0] is not first


def test_progress_is_one_bar_in_percent_with_previews(nodes_run, fake_host):
    mapping, backbone, layers, octaves = nodes_run
    with torch.inference_mode():
        mapping["DD_DeepDream"]().dream(_image(1), backbone, 5, 0.01, 8, 0, layers, octaves)
    assert fake_host.updates[0] == ("new", 100)  # one bar in percent of the node's whole run
    steps = fake_host.updates[1:]
    assert [u[0] for u in steps] == list(range(10, 101, 10)) and {u[1] for u in steps} == {100}
    previews = [u for u in steps if u[2] is not None]
    assert [u[0] for u in previews] == [50, 100]  # every 5th step
    kind, picture, size = previews[-1][2]
    assert kind == "JPEG" and picture.size == (72, 64) and size == 512


def test_cancel_stops_within_one_step_and_nothing_is_returned(nodes_run, fake_host):
    mapping, backbone, layers, octaves = nodes_run
    fake_host.interrupt_after = 3
    outputs = []
    with pytest.raises(InterruptedError), torch.inference_mode():
        outputs.append(mapping["DD_DeepDream"]().dream(_image(1), backbone, 5, 0.01, 8, 0, layers, octaves))
    assert fake_host.checks == 4 and outputs == []
    assert [u[0] for u in fake_host.updates[1:]] == [10, 20, 30]  # no step ran after the interrupt


def test_model_folder_is_registered_keeping_configured_paths(pack, fake_host, tmp_path):
    host = pack.nodes.host
    host.register_model_folder()
    paths, extensions = host.folder_paths.folder_names_and_paths["deepdream"]
    assert paths == [str(tmp_path / "extra")] and {".pth", ".safetensors"} <= extensions
    assert host.weights_dir() == tmp_path / "extra"
    (tmp_path / "extra").mkdir()
    torch.save(pack.dream_core.load_backbone("alexnet", "random", seed=4).model.state_dict(), tmp_path / "extra" / "mine.pth")
    (tmp_path / "extra" / "notes.txt").write_text("not weights")
    combo = pack.NODE_CLASS_MAPPINGS["DD_LoadBackbone"].INPUT_TYPES()["required"]["weights"][0]
    assert combo == ["torchvision (download)", "random init", "mine.pth"]
    loaded, = pack.NODE_CLASS_MAPPINGS["DD_LoadBackbone"]().load("alexnet", "mine.pth")
    assert loaded.source == str(tmp_path / "extra" / "mine.pth")
    with pytest.raises(pack.dream_core.WeightsError, match="'gone.pth' is not in the deepdream model folder"):
        pack.NODE_CLASS_MAPPINGS["DD_LoadBackbone"]().load("alexnet", "gone.pth")


def test_example_inputs_are_copied_to_the_input_folder(pack, fake_host, tmp_path):
    pack.nodes.host.install_example_inputs()
    assert (tmp_path / "input" / "deepdream_example.jpg").read_bytes() == (ROOT / "assets" / "example.jpg").read_bytes()
    assert (tmp_path / "input" / "deepdream_guide.jpg").is_file()


def test_pyproject_declares_the_comfy_registry_table():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "comfyui" not in project["project"]["name"].lower()
    assert {"PublisherId", "DisplayName", "Icon"} <= set(project["tool"]["comfy"])
    assert not {"torch", "torchvision", "numpy", "pillow"} & {d.split(">")[0].split("=")[0]
                                                              for d in project["project"]["dependencies"]}


def test_invert_mask_dreams_where_load_image_says_transparent(nodes_run):
    mapping, backbone, layers, octaves = nodes_run
    image = _image(1)
    alpha_mask = torch.zeros(1, 64, 72)  # Load Image: 1 = transparent
    alpha_mask[..., 36:] = 1.0
    with torch.inference_mode():
        kept, = mapping["DD_DeepDream"]().dream(image, backbone, 3, 0.01, 8, 0, layers, octaves, alpha_mask,
                                                invert_mask=True)
    assert torch.equal(kept[:, :, 36:], image[:, :, 36:])
    assert (kept[:, :, :32] - image[:, :, :32]).abs().mean() > 1e-3


def test_tiled_large_image_through_the_node(nodes_run):
    mapping, backbone, layers, octaves = nodes_run
    image = _image(1, 1100, 160)  # taller than 1024: tiled with 320 px tiles
    with torch.inference_mode():
        out, = mapping["DD_DeepDream"]().dream(image, backbone, 1, 0.01, 8, 0, layers, None, tile_size=320)
    assert out.shape == image.shape and (out - image).abs().mean() > 1e-3


def test_style_loss_node_weight_scales_the_objective(nodes_run, pack):
    mapping, backbone, layers, _ = nodes_run
    style_image = _image(1, 48, 48)
    with torch.inference_mode():
        one, = mapping["DD_StyleLoss"]().build(style_image, backbone, 1.0, layers)
        three, = mapping["DD_StyleLoss"]().build(style_image, backbone, 3.0, layers)
    acts = backbone.extractor(one.layers)(_image(1).movedim(-1, 1))
    assert one(acts).item() < 0 and torch.allclose(three(acts), 3.0 * one(acts))


def test_nodes_import_only_the_public_api():
    for path in (ROOT / "nodes").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"from \.\.dream_core\.|import dream_core\.", text), f"{path.name} imports a submodule"


def test_tile_size_and_channel_are_refused_before_the_run(pack):
    dream = pack.NODE_CLASS_MAPPINGS["DD_DeepDream"]
    assert dream.VALIDATE_INPUTS(tile_size=0) is True and dream.VALIDATE_INPUTS(tile_size=512) is True
    message = dream.VALIDATE_INPUTS(tile_size=128)
    assert message == "tile_size: must be 0 (off) or at least 2 * tile_overlap + 32 = 288, got 128."
    assert pack.NODE_CLASS_MAPPINGS["DD_GuidedDream"].VALIDATE_INPUTS(tile_size=256) == message.replace("128", "256")
    select = pack.NODE_CLASS_MAPPINGS["DD_SelectLayer"]
    assert select.VALIDATE_INPUTS(layer="inception3a", channel=255) is True
    assert select.VALIDATE_INPUTS(layer="inception3a", channel=-1) is True
    assert select.VALIDATE_INPUTS(layer="inception3a", channel=256) == (
        "channel: inception3a has at most 256 channels (0..255) in any backbone, or -1 for all; got 256.")
    assert select.VALIDATE_INPUTS(layer="logits", channel=999) is True


def test_dream_on_a_class_logit_through_the_nodes(nodes_run):
    mapping, backbone, _, octaves = nodes_run
    with torch.inference_mode():
        layers, = mapping["DD_SelectLayer"]().select(backbone, "logits", 1.0, 7, "mean")
        out, = mapping["DD_DeepDream"]().dream(_image(1), backbone, 3, 0.01, 8, 0, layers, octaves)
    logit = lambda picture: backbone.extractor(["logits"])(picture.movedim(-1, 1))["logits"][0, 7].item()
    assert logit(out) > logit(_image(1))


@pytest.fixture
def gpu_host(pack, fake_host, monkeypatch):
    """The recording host with a GPU as its compute device and ComfyUI's model management simulated:
    a patcher not yet loaded is moved (counted, not really moved: the test machine has no GPU)."""
    host = pack.nodes.host
    record = fake_host
    record.loads, record.moves, record.patchers, loaded = [], 0, [], []

    class ModelPatcher:
        def __init__(self, model, load_device, offload_device):
            self.model, self.load_device, self.offload_device = model, load_device, offload_device
            record.patchers.append(self)

    def load_models_gpu(models, memory_required=0, force_full_load=False):
        record.loads.append((models, memory_required, force_full_load))
        for patcher in models:
            if patcher not in loaded:
                record.moves += 1
                loaded.append(patcher)

    host.model_management.get_torch_device = lambda: torch.device("cuda", 0)
    host.model_management.unet_offload_device = lambda: torch.device("cpu")
    host.model_management.load_models_gpu = load_models_gpu
    monkeypatch.setattr(host, "ModelPatcher", ModelPatcher)
    monkeypatch.setattr(host, "_patchers", __import__("weakref").WeakKeyDictionary())
    return record


def test_the_host_asks_for_the_working_set_of_a_4k_dream_not_its_pixels(nodes_run, gpu_host):
    mapping, backbone, layers, octaves = nodes_run
    image = torch.rand(1, 4096, 4096, 3)
    with torch.inference_mode():
        out, = mapping["DD_DeepDream"]().dream(image, backbone, 0, 0.01, 32, 0, layers)  # default settings, no steps
    assert out.shape == image.shape
    (models, memory, full), = gpu_host.loads
    assert models[0].model is backbone.model and models[0].load_device == torch.device("cuda", 0) and full
    assert 200 * 2**20 < memory < 4 * 2**30  # the old request (weights + pixels * 4 KiB) was 64 GiB


def test_two_runs_in_a_row_move_the_weights_once_and_never_back(nodes_run, gpu_host, monkeypatch):
    mapping, backbone, layers, octaves = nodes_run
    moved_by_us = []
    monkeypatch.setattr(backbone, "to", lambda *args, **kwargs: moved_by_us.append(args))
    with torch.inference_mode():
        for _ in range(2):
            mapping["DD_DeepDream"]().dream(_image(1), backbone, 1, 0.01, 8, 0, layers, octaves)
    assert len(gpu_host.loads) == 2 and gpu_host.moves == 1 and len(gpu_host.patchers) == 1
    assert moved_by_us == []  # model management moves it, and only when another model needs the room


def test_an_older_host_without_model_patcher_frees_room_then_moves_once(pack, nodes_run, gpu_host, monkeypatch):
    mapping, backbone, layers, octaves = nodes_run
    monkeypatch.setattr(pack.nodes.host, "ModelPatcher", None)
    moves = []
    monkeypatch.setattr(backbone, "to", lambda device=None, **kwargs: moves.append(device))
    with torch.inference_mode():
        mapping["DD_DeepDream"]().dream(_image(1), backbone, 1, 0.01, 8, 0, layers, octaves)
    weights = sum(p.numel() * 4 for p in backbone.model.parameters())
    (amount, device), = gpu_host.freed
    assert device == torch.device("cuda", 0) and weights < amount < weights + 2**30
    assert moves == [torch.device("cuda", 0)]


def test_loaded_backbones_outlive_the_node_and_the_cache_keeps_two(pack, monkeypatch, tmp_path):
    host = pack.nodes.host
    monkeypatch.setattr(host, "_backbones", __import__("collections").OrderedDict())
    monkeypatch.setattr(host, "FALLBACK_WEIGHTS_DIR", tmp_path)
    Loader = pack.NODE_CLASS_MAPPINGS["DD_LoadBackbone"]
    first, = Loader().load("alexnet", "random init", 1)
    assert Loader().load("alexnet", "random init", 1)[0] is first  # a new node instance: another workflow
    torch.save(first.model.state_dict(), tmp_path / "mine.pth")
    from_file, = Loader().load("alexnet", "mine.pth")
    assert Loader().load("alexnet", "mine.pth")[0] is from_file and Loader().load("alexnet", "random init", 1)[0] is first
    import os
    stat = (tmp_path / "mine.pth").stat()
    os.utime(tmp_path / "mine.pth", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the file was replaced
    assert Loader().load("alexnet", "mine.pth")[0] is not from_file
    Loader().load("alexnet", "random init", 2)  # a third backbone: the least recently used is released
    assert len(host._backbones) == host.CACHED_BACKBONES == 2
    assert Loader().load("alexnet", "random init", 1)[0] is not first


# --- style nodes ----------------------------------------------------------------------------------------


@pytest.fixture
def style_graph(nodes_run):
    """A Style Loss on the nodes_run backbone, built under inference mode as the host runs it."""
    mapping, backbone, layers, _ = nodes_run
    with torch.inference_mode():
        style, = mapping["DD_StyleLoss"]().build(_image(1, 48, 48), backbone, 1.0, layers)
    return mapping, backbone, style


def _transfer(mapping, backbone, style, image, **options):
    settings = dict(content_weight=0.1, content_layer="auto", tv_weight=1.0, steps=8, optimizer="lbfgs",
                    learning_rate=0.02, init="content", seed=0, original_colors=False, scales=1)
    with torch.inference_mode():
        return mapping["DD_StyleTransfer"]().transfer(image, backbone, style, **{**settings, **options})[0]


@pytest.mark.parametrize("options", [{}, {"optimizer": "adam", "ema": 0.5, "scales": 2, "original_colors": True},
                                     {"init": "noise", "content_layer": "inception3b"}])
def test_style_transfer_node_under_inference_mode(style_graph, options):
    mapping, backbone, style = style_graph
    image = _image()
    _assert_dreamed(_transfer(mapping, backbone, style, image, **options), image)


def test_style_transfer_node_mask_and_init_image(style_graph, pack):
    mapping, backbone, style = style_graph
    image, mask = _image(), torch.zeros(1, 64, 72)
    mask[..., 36:] = 1
    out = _transfer(mapping, backbone, style, image, mask=mask)
    assert torch.allclose(out[:, :, :30], image[:, :, :30], atol=1e-6)
    start = _image(1, 32, 36)
    out = _transfer(mapping, backbone, style, image, steps=0, init="image", init_image=start)
    assert torch.allclose(out[1], torch.nn.functional.interpolate(
        start.movedim(-1, 1), size=(64, 72), mode="bilinear", antialias=True).movedim(1, -1)[0].clamp(0, 1), atol=1e-5)
    with pytest.raises(pack.dream_core.DreamError, match="init_image"):
        _transfer(mapping, backbone, style, image, init="image")


def test_style_transfer_node_progress_and_cancel(style_graph, fake_host):
    mapping, backbone, style = style_graph
    _transfer(mapping, backbone, style, _image(), steps=5, optimizer="adam")
    assert fake_host.updates[0] == ("new", 100)
    assert [u[0] for u in fake_host.updates[1:]] == list(range(10, 101, 10))  # 2 items x 5 steps in percent
    assert [u[0] for u in fake_host.updates[1:] if u[2] is not None] == [50, 100]
    fake_host.updates.clear()
    fake_host.interrupt_after, fake_host.checks = 3, 0
    with pytest.raises(InterruptedError):
        _transfer(mapping, backbone, style, _image(), steps=5)  # L-BFGS: cancel asked inside its closure
    assert fake_host.checks == 4 and [u[0] for u in fake_host.updates[1:]] == [10, 20, 30]


def test_style_transfer_asks_the_host_for_its_optimizer_state(style_graph, gpu_host):
    mapping, backbone, style = style_graph
    image = _image(1)
    _transfer(mapping, backbone, style, image, steps=0, optimizer="lbfgs")
    _transfer(mapping, backbone, style, image, steps=0, optimizer="adam")
    (_, lbfgs, _), (_, adam, _) = gpu_host.loads
    assert lbfgs - adam == (2 * 100 - 3) * 3 * 4 * 64 * 72  # L-BFGS remembers 100 steps of two images


def test_content_and_tv_loss_nodes_work_in_a_dream(nodes_run):
    """Catches a Content Loss that does not hold the dream to the content, or a TV Loss with the wrong sign."""
    mapping, backbone, layers, octaves = nodes_run
    image = _image()
    with torch.inference_mode():
        free, = mapping["DD_DeepDream"]().dream(image, backbone, 4, 0.02, 0, 0, layers, octaves)
        held, = mapping["DD_ContentLoss"]().build(image, backbone, "inception3a", 500.0)
        kept, = mapping["DD_DeepDream"]().dream(image, backbone, 4, 0.02, 0, 0, layers, octaves, objective=held)
        smooth, = mapping["DD_TVLoss"]().build("l2", 1000.0)
        smoothed, = mapping["DD_DeepDream"]().dream(image, backbone, 4, 0.02, 0, 0, layers, octaves, objective=smooth)
    tv = lambda picture: __import__("dream_core").total_variation()({"input": picture.movedim(-1, 1)}).sum()
    assert (kept - image).abs().mean() < (free - image).abs().mean()
    assert tv(smoothed) < tv(free)
    assert held.description.startswith("500 * content(inception3a)") and "total_variation(l2)" in smooth.description


def test_style_loss_node_options_reach_the_objective(style_graph, nodes_run):
    mapping, backbone, _ = style_graph
    _, _, layers, _ = nodes_run
    mask = torch.ones(1, 10, 10)
    with torch.inference_mode():
        style, = mapping["DD_StyleLoss"]().build(_image(1, 48, 48), backbone, 1.0, layers, style_scale=0.5,
                                                 statistic="mean_cov", mask=mask)
    assert "mean_cov, scale 0.5, masked" in style.description
    picture = _image(1).movedim(-1, 1)
    assert style.at((64, 72)).__call__(backbone.extractor(style.layers)(picture)).item() < 0


# --- explain nodes ----------------------------------------------------------------------------------------


def _shapes_batch():
    """Two 32 px pictures the shapes net classifies as horizontal stripes and disc, as a ComfyUI IMAGE."""
    from shapes import pictures

    generator = torch.Generator().manual_seed(21)
    return torch.cat([pictures(0, 1, generator), pictures(3, 1, generator)]).movedim(1, -1)


def test_classify_node_lists_every_image(pack, shapes_net):
    with torch.inference_mode():
        labels, top = pack.NODE_CLASS_MAPPINGS["DD_Classify"]().classify(_shapes_batch(), shapes_net, 2)
    lines = labels.splitlines()
    expected = pack.dream_core.classify(_shapes_batch().movedim(-1, 1), shapes_net, 2)
    assert len(lines) == 2 and lines[0].startswith("image 0: horizontal stripes [0]") and top == 0
    assert lines[1] == "image 1: " + ", ".join(f"{p.name} [{p.index}] {p.probability:.1%}" for p in expected[1])


@pytest.mark.parametrize("method", ["gradient", "smoothgrad", "gradient_x_input", "integrated_gradients", "gradcam"])
def test_saliency_node_under_inference_mode(pack, shapes_net, method):
    image = _shapes_batch()
    with torch.inference_mode():
        mask, heat = pack.NODE_CLASS_MAPPINGS["DD_Saliency"]().explain(
            image, shapes_net, -1, method, samples=3, steps=4, layer="relu2")
    assert mask.shape == (2, 32, 32) and 0 <= mask.min() and mask.max() == 1
    assert heat.shape == image.shape and 0 <= heat.min() and heat.max() <= 1
    assert (heat - image).abs().mean() > 0.01


def test_class_visualize_node_progress_and_cancel(pack, shapes_net, fake_host):
    node = pack.NODE_CLASS_MAPPINGS["DD_ClassVisualize"]()
    with torch.inference_mode():
        made, = node.visualize(shapes_net, 1, 40, 32, 2, 5, 0.02, 0, jitter=2)
    assert made.shape == (2, 32, 40, 3) and not torch.equal(made[0], made[1])
    assert [u[0] for u in fake_host.updates[1:]] == list(range(10, 101, 10))
    fake_host.updates.clear()
    fake_host.interrupt_after, fake_host.checks = 3, 0
    with pytest.raises(InterruptedError), torch.inference_mode():
        node.visualize(shapes_net, 1, 32, 32, 2, 5, 0.02, 0)
    assert fake_host.checks == 4 and [u[0] for u in fake_host.updates[1:]] == [10, 20, 30]


@pytest.mark.parametrize("method", ["ascent", "fgsm", "pgd"])
def test_fooling_image_node_under_inference_mode(pack, shapes_net, method):
    image = _shapes_batch()
    with torch.inference_mode():
        fooled, difference, report = pack.NODE_CLASS_MAPPINGS["DD_FoolingImage"]().fool(
            image, shapes_net, 2, method, 30, epsilon=0.2)
    assert fooled.shape == difference.shape == image.shape
    assert 0 <= fooled.min() and fooled.max() <= 1 and 0 <= difference.min() and difference.max() <= 1
    lines = report.splitlines()
    assert len(lines) == 2 and all("fooled" in line and "L-inf" in line for line in lines)
    if method != "ascent":
        assert (fooled - image).abs().max() <= 0.2 + 1e-6


def test_feature_inversion_node_under_inference_mode(pack, shapes_net):
    image = _shapes_batch()
    with torch.inference_mode():
        inverted, = pack.NODE_CLASS_MAPPINGS["DD_FeatureInversion"]().invert(image, shapes_net, "relu1", 30, 0.05, 0)
    assert inverted.shape == image.shape and 0 <= inverted.min() and inverted.max() <= 1


# --- animation nodes --------------------------------------------------------------------------------------


def test_dream_zoom_node_under_inference_mode(nodes_run, fake_host):
    mapping, backbone, layers, octaves = nodes_run
    with torch.inference_mode():
        frames, = mapping["DD_DreamZoom"]().zoom(_image(2), backbone, 3, 1.1, 5.0, 2.0, -1.0, 2, 0.01, 8, 0, layers,
                                                 layers_end=layers[:1], mask=torch.ones(64, 72))
    assert frames.shape == (3, 64, 72, 3) and 0 <= frames.min() and frames.max() <= 1
    assert not torch.equal(frames[1], frames[2])
    assert [u[0] for u in fake_host.updates[1:]][-1] == 100


def test_dream_video_node_under_inference_mode(nodes_run, fake_host):
    mapping, backbone, layers, octaves = nodes_run
    video = _image(3)
    with torch.inference_mode():
        frames, = mapping["DD_DreamVideo"]().dream(video, backbone, 0.8, "dis", 2, 0.01, 8, 0, layers,
                                                   mask=torch.ones(1, 64, 72))
    assert frames.shape == video.shape and 0 <= frames.min() and frames.max() <= 1
    _assert_dreamed(frames, video)
    fake_host.interrupt_after, fake_host.checks = 3, 0
    with pytest.raises(InterruptedError), torch.inference_mode():
        mapping["DD_DreamVideo"]().dream(video, backbone, 0.8, "none", 2, 0.01, 8, 0, layers)
    assert fake_host.checks == 4


def test_select_layer_channel_modes_dream_under_inference_mode(pack, nodes_run):
    mapping, backbone, _, octaves = nodes_run
    with torch.inference_mode():
        layers, = mapping["DD_SelectLayer"]().select(backbone, "inception3a", 1.0, -1, "l2", channel_mode="strongest",
                                                    top_k=4, choose="every_step")
        out, = mapping["DD_DeepDream"]().dream(_image(), backbone, 2, 0.01, 8, 0, layers, octaves)
    assert layers[0].channel_mode == "strongest" and "strongest 4 every step" in layers[0].objective().description
    _assert_dreamed(out, _image())
    with pytest.raises(pack.dream_core.DreamError, match="channel_mode: strongest needs channel -1"):
        mapping["DD_SelectLayer"]().select(backbone, "inception3a", 1.0, 3, "l2", channel_mode="strongest")



@pytest.mark.parametrize("target", ["channel", "neuron", "class"])
def test_feature_visualize_node_under_inference_mode(pack, shapes_net, target):
    node = pack.NODE_CLASS_MAPPINGS["DD_FeatureVisualize"]()
    with torch.inference_mode():
        made, transparency = node.visualize(shapes_net, "relu2", target, 1, 40, 32, 2, 4, 0)
    assert made.shape == (2, 32, 40, 3) and 0 <= made.min() and made.max() <= 1 and not torch.equal(made[0], made[1])
    assert transparency.shape == (2, 32, 40) and 0 <= transparency.min() and transparency.max() <= 1  # a MASK


def test_maco_in_the_explain_nodes(pack, shapes_net):
    """Class Visualization and Feature Visualization offer maco; the map is a MASK that reached 1 somewhere."""
    nodes = pack.NODE_CLASS_MAPPINGS
    with torch.inference_mode():
        made, = nodes["DD_ClassVisualize"]().visualize(shapes_net, 1, 48, 48, 1, 60, 0.02, 0, parameterization="maco")
        pictures, transparency = nodes["DD_FeatureVisualize"]().visualize(shapes_net, "relu2", "class", 3, 48, 48, 1,
                                                                          30, 0, parameterization="maco")
    probabilities = pack.dream_core.logits(made.movedim(-1, 1), shapes_net).softmax(1)
    assert made.shape == (1, 48, 48, 3) and probabilities[0, 1] > 0.5
    assert pictures.shape == (1, 48, 48, 3) and transparency.shape == (1, 48, 48) and transparency.max() == 1


def test_class_visualize_node_fft_parameterization(pack, shapes_net):
    with torch.inference_mode():
        made, = pack.NODE_CLASS_MAPPINGS["DD_ClassVisualize"]().visualize(shapes_net, 1, 48, 48, 1, 40, 0.02, 0,
                                                                          parameterization="fft")
    probabilities = pack.dream_core.logits(made.movedim(-1, 1), shapes_net).softmax(1)
    assert made.shape == (1, 48, 48, 3) and probabilities[0, 1] > 0.9


@pytest.mark.parametrize("node_id", sorted(import_pack().NODE_CLASS_MAPPINGS))
def test_every_float_default_is_a_value_its_widget_can_show(pack, node_id):
    """The frontend rounds a FLOAT widget to its ``round`` (else its ``step``): a default off that grid is
    shown as one value and used as another (Fooling Image's 8/255 once showed 0.03137)."""
    for section in pack.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES().values():
        for name, (kind, *options) in section.items():
            if kind == "FLOAT":
                grid = options[0].get("round", options[0]["step"])
                default = options[0]["default"]
                assert abs(default / grid - round(default / grid)) < 1e-6, (node_id, name, default, grid)


def test_the_dream_nodes_dream_one_item_at_a_time_whatever_memory_is_free(pack, fake_host, monkeypatch):
    """The library batches by free CUDA memory when asked for batch_size 0, and a batched dream differs
    from a lone one by rounding: the nodes must not let free memory choose the picture."""
    import dream_core as dc

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (80 << 30, 80 << 30))
    assert dc.dream._chunk_size(0, 4, types.SimpleNamespace(device=torch.device("cuda")), dc.l2("relu1"), None,
                                lambda: 1 << 20) == 4  # the library's automatic choice follows free memory
    calls = []
    tasks = sys.modules[pack.__name__ + ".dream_core.tasks"]  # where the nodes' tasks call the driver
    real = tasks.deepdream
    monkeypatch.setattr(tasks, "deepdream", lambda *a, **k: calls.append(k) or real(*a, **k))
    layers, = pack.NODE_CLASS_MAPPINGS["DD_SelectLayer"]().select(random_backbone("alexnet"), "relu1", 1.0, -1, "l2")
    image = torch.rand(2, 40, 40, 3, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        pack.NODE_CLASS_MAPPINGS["DD_DeepDream"]().dream(image, random_backbone("alexnet"), 1, 0.01, 0, 0, layers)
        pack.NODE_CLASS_MAPPINGS["DD_GuidedDream"]().dream(image, image, random_backbone("alexnet"), 1, 0.01, 0, 0,
                                                           layers)
    assert [call["batch_size"] for call in calls] == [1, 1]
