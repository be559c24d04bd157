"""The pack as users wire and install it: lean style graphs, Cancel in every explain method, one meaning of
style weights, a registry-ready package."""

import logging

import pytest
import torch

import dream_core as dc
from conftest import ROOT
from dream_core.cli import main


def _picture(height=48, width=48, seed=0):
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 6, 6, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear").movedim(1, -1)


@pytest.fixture
def vgg():
    from conftest import random_backbone

    return random_backbone("vgg19")


def test_style_loss_with_no_layer_picker_uses_gatys_layers(pack, vgg):
    """Catches a Style Loss that needs a picker, or one whose default is not Gatys' five layers."""
    with torch.inference_mode():
        style, = pack.NODE_CLASS_MAPPINGS["DD_StyleLoss"]().build(_picture(), vgg, 1.0)
    assert style.layers == {f"relu{block}_1" for block in range(1, 6)}
    reference = dc.style_objective(vgg, _picture().movedim(-1, 1), [dc.LayerTerm(f"relu{b}_1") for b in range(1, 6)])
    acts = vgg.extractor(style.layers)(_picture(seed=1).movedim(-1, 1))
    assert torch.allclose(style(acts), reference(acts))


def test_select_style_layer_chains_layers_and_weights_only(pack, vgg):
    picker = pack.NODE_CLASS_MAPPINGS["DD_SelectStyleLayer"]()
    with torch.inference_mode():
        layers, = picker.select(vgg, "relu1_1", 1.0)
        layers, = picker.select(vgg, "relu3_1", 0.5, layers)
    assert [(t.layer, t.weight, t.channel, t.loss) for t in layers] == [("relu1_1", 1.0, None, "l2"), ("relu3_1", 0.5, None, "l2")]
    spec = pack.NODE_CLASS_MAPPINGS["DD_SelectStyleLayer"].INPUT_TYPES()
    assert set(spec["required"]) == {"backbone", "layer", "weight"} and set(spec["optional"]) == {"layers"}


def test_settings_a_style_ignores_are_warned_about_once(pack, vgg, caplog):
    """Select Dream Layer's channel and loss mean nothing to a style: one warning names them, and the
    style is the one of the plain layers."""
    select, style_loss = pack.NODE_CLASS_MAPPINGS["DD_SelectLayer"](), pack.NODE_CLASS_MAPPINGS["DD_StyleLoss"]()
    pack.nodes.host._warned.clear()
    with torch.inference_mode():
        fancy, = select.select(vgg, "relu2_1", 1.0, 5, "mean")
        plain, = select.select(vgg, "relu2_1", 1.0, -1, "l2")
        with caplog.at_level(logging.WARNING, logger="DeepDreamNodes"):
            warned, = style_loss.build(_picture(), vgg, 1.0, fancy)
            style_loss.build(_picture(), vgg, 1.0, fancy)
            quiet, = style_loss.build(_picture(), vgg, 1.0, plain)
    messages = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(messages) == 1 and "channel, loss" in messages[0] and "Style Loss" in messages[0]
    acts = vgg.extractor(warned.layers)(_picture(seed=2).movedim(-1, 1))
    assert torch.equal(warned(acts), quiet(acts))


@pytest.mark.parametrize("method", ["gradient", "smoothgrad", "gradient_x_input", "integrated_gradients", "gradcam"])
def test_every_attribution_method_reports_progress_and_cancels_within_a_chunk(shapes_net, method):
    """Catches a method that runs all its samples or path points without asking cancel or reporting."""
    image = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    seen = []
    dc.attribution(image, shapes_net, 1, method, samples=40, steps=20,
                   progress=lambda done, total, preview: seen.append((done, total)))
    chunks = {"smoothgrad": 3, "integrated_gradients": 2}.get(method, 1)  # 40 and 20 points in chunks of 16
    assert seen == [(i, 2 * chunks) for i in range(1, 2 * chunks + 1)]
    asked = []
    with pytest.raises(dc.DreamCancelled):
        dc.attribution(image, shapes_net, 1, method, samples=40, steps=20,
                       cancel=lambda: asked.append(1) or len(asked) > 1)
    assert len(asked) == 2  # stopped at the second chunk, not after the whole item


def test_saliency_node_has_a_bar_and_cancel(pack, shapes_net, fake_host):
    node = pack.NODE_CLASS_MAPPINGS["DD_Saliency"]()
    image = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        node.explain(image, shapes_net, 1, "smoothgrad", samples=48)
    assert fake_host.updates[0] == ("new", 100) and [u[0] for u in fake_host.updates[1:]] == [33, 67, 100]
    fake_host.interrupt_after, fake_host.checks = 1, 0
    with pytest.raises(InterruptedError), torch.inference_mode():
        node.explain(image, shapes_net, 1, "smoothgrad", samples=48)
    assert fake_host.checks == 2


def test_style_weights_mean_the_same_in_the_cli_and_the_nodes(tmp_path, monkeypatch):
    """--style-weights 0.7 0.3 builds exactly the objective of two Style Loss nodes weighted 0.7 and 0.3
    (not normalised). Catches a CLI that divides by the weights' sum again."""
    built = []
    real = dc.style_objective

    def recording(backbone, style_image, terms, weight=1.0, **options):
        built.append(weight)
        return real(backbone, style_image, terms, weight, **options)

    monkeypatch.setattr("dream_core.cli.style_objective", recording)
    content = tmp_path / "content.png"
    dc.save_image(_picture(40, 40).movedim(-1, 1), content)
    assert main(["style", str(content), str(content), str(content), "-o", str(tmp_path / "out.png"),
                 "--style-weights", "1.4", "0.6", "--weights", "random", "--steps", "1", "--optimizer", "adam",
                 "--backbone", "alexnet"]) == 0
    assert built == [1.4, 0.6]


def test_a_plain_install_ships_every_subpackage():
    """A non-editable `pip install .` packs what pyproject's package search finds: every subpackage of
    dream_core and the benchmark (``packages = ["dream_core"]`` once left a subpackage out, and its
    `python -m` failed)."""
    import fnmatch
    import tomllib

    from setuptools import find_packages

    found = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = set(find_packages(str(ROOT), include=found["include"]))
    on_disk = {str(p.parent.relative_to(ROOT)).replace("/", ".")
               for top in ("dream_core", "dream_bench") for p in (ROOT / top).rglob("__init__.py")}
    assert packages == on_disk and {"dream_bench", "dream_core.backbones", "dream_core.explain"} <= packages
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["dream_core"]
    shipped = {p.relative_to(ROOT / "dream_core").as_posix() for p in (ROOT / "dream_core" / "data").iterdir()}
    assert shipped and all(any(fnmatch.fnmatch(name, pattern) for pattern in data) for name in shipped)


def test_registry_table_has_a_real_icon():
    import tomllib

    from PIL import Image

    comfy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["comfy"]
    assert comfy["Icon"].endswith("/main/docs/icon.jpg")
    with Image.open(ROOT / "docs" / "icon.jpg") as icon:
        assert max(icon.size) <= 400 and icon.size[0] == icon.size[1]
    requirements = (ROOT / "requirements.txt").read_text().split()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(requirements) == sorted(project["dependencies"])  # the manager and pip install the same


def test_a_large_dream_previews_a_small_picture(pack, fake_host, googlenet):
    """The live preview is shrunk on the device to 512 px before it becomes a picture: a 4K dream's
    preview used to make four full-size copies on the CPU every 5 steps. Catches a full-size preview."""
    node, select = pack.NODE_CLASS_MAPPINGS["DD_DeepDream"](), pack.NODE_CLASS_MAPPINGS["DD_SelectLayer"]()
    with torch.inference_mode():
        layers, = select.select(googlenet, "inception3a", 1.0, -1, "l2")
        node.dream(torch.rand(1, 600, 160, 3), googlenet, 1, 0.01, 0, 0, layers,
                   octaves=pack.dream_core.OctaveSettings(octaves=1))
    previews = [u[2] for u in fake_host.updates[1:] if u[2] is not None]
    assert previews and all(max(p[1].size) == 512 for p in previews) and previews[-1][1].size == (137, 512)


@pytest.mark.parametrize("layout", ["contiguous", "comfy_view"])
def test_the_callers_image_is_never_written_to(googlenet, layout):
    """The full-size octave may start in a copy the driver made (one image-sized buffer fewer), never in
    the caller's tensor. Catches an in-place start on the input itself."""
    picture = torch.rand(1, 96, 128, 3, generator=torch.Generator().manual_seed(0))
    image = picture.movedim(-1, 1) if layout == "comfy_view" else picture.movedim(-1, 1).contiguous()
    before = image.clone()
    dreamed = dc.deepdream(image, googlenet, dc.l2("inception3a"), steps=2, octaves=3)
    assert torch.equal(image, before) and not torch.equal(dreamed, before)


def test_the_hosts_unload_models_releases_the_backbone_cache(pack, fake_host, monkeypatch):
    """ComfyUI's Unload Models and /free call model_management.unload_all_models: the pack's own cache of
    loaded backbones must go with it (it would otherwise hold the weights in RAM for the server's life)."""
    host = pack.nodes.host
    unloaded = []
    monkeypatch.setattr(host.model_management, "unload_all_models", lambda: unloaded.append(1), raising=False)
    monkeypatch.setattr(host, "_backbones", type(host._backbones)())
    host.cached_backbone("a", lambda: "backbone a")
    host.release_on_host_unload()
    host.release_on_host_unload()  # wrapped once
    host.model_management.unload_all_models()
    assert unloaded == [1] and len(host._backbones) == 0
