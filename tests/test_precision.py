"""Half precision that never underflows (fp16 autocast emulated on the CPU), and precision chosen like the host."""

import sys

import pytest
import torch

import dream_core as dc
from conftest import random_backbone

FP16 = torch.float16
SCALES = [1.0, 1 / 64, 1 / 256, 1 / 4096]


def _picture(size=(128, 160), seed=0):
    coarse = torch.rand(1, 3, 8, 10, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(coarse, size=size, mode="bilinear")


def _cosine(a, b):
    return torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


@pytest.mark.parametrize("tile_size", [0, 288])
def test_fp16_gradient_of_a_small_score_matches_fp32(googlenet, tile_size):
    """The issue's measurement: s * l2(inception4c) under fp16 autocast, s from 1 to 1/4096, whole and
    in tiles (each tile's score is further weighted by its share of the image). Scaled, the gradient
    keeps cosine >= 0.99 to fp32 with under 1% exact zeros. Catches a missing or a non-reapplied
    loss scale (at 1/4096 the unscaled fp16 gradient is entirely zero, checked below)."""
    image = _picture((320, 320) if tile_size else (128, 160))
    extractor = googlenet.extractor(["inception4c"])
    for s in (SCALES if not tile_size else [1.0, 1 / 4096]):  # tiled: the ends of the range (time)
        objective = s * dc.l2("inception4c")
        reference, _ = dc.image_gradient(image, extractor, objective, tile_size=tile_size, overlap=128)
        half, _ = dc.image_gradient(image, extractor, objective, autocast=FP16, tile_size=tile_size, overlap=128)
        assert _cosine(half, reference) >= 0.99, (s, _cosine(half, reference))
        assert (half == 0).float().mean() < 0.01, s


def test_without_the_scale_fp16_gradients_vanish(googlenet):
    """What the loss scale is for (the test above would fail without it): unscaled, the gradient of a
    1/4096 score is all zeros in fp16."""
    image, extractor = _picture(), googlenet.extractor(["inception4c"])
    objective = dc.l2("inception4c") / 4096
    leaf = image.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=FP16):
        score = objective(extractor(leaf)).sum()
    gradient, = torch.autograd.grad(score, leaf)
    assert (gradient == 0).float().mean() > 0.99


def test_the_scale_halves_on_overflow_redoes_the_pass_and_grows_when_finite():
    """Catches a scale that never backs off (inf gradients), never grows, or skips the redo."""
    leaf = torch.ones(4, requires_grad=True)
    passes = []

    def forward():  # the backward of the fp16 cast overflows once scale * 100 > 65504
        passes.append(1)
        return leaf.half().float() * 100

    scale = dc.LossScale(FP16, scale=2.0**16, growth_interval=2)
    _, (gradient,) = scale.gradients(forward, [leaf], leaf.device)
    assert torch.equal(gradient, torch.full((4,), 100.0)) and scale.scale == 2.0**9 and len(passes) == 8
    scale.end_step()  # the step that overflowed does not count towards growth
    for _ in range(3):  # three tiles of one step: one step
        scale.gradients(forward, [leaf], leaf.device)
    scale.end_step()
    assert scale.scale == 2.0**9
    scale.gradients(forward, [leaf], leaf.device)
    scale.end_step()
    assert scale.scale == 2.0**10  # two clean steps in a row: doubled
    assert dc.LossScale(torch.bfloat16).enabled is False and dc.LossScale(None).scale == 1.0


def test_the_scale_cannot_collapse_on_a_pass_that_no_scale_cures():
    """A non-finite score (the forward pass overflowed) skips the pass and leaves the scale alone; a NaN
    gradient of a finite score is retried a few halvings, then zeroed with the scale restored. The old
    scale went from 2^16 to 1 in 17 passes, and the underflow it prevents came back for the whole run."""
    leaf = torch.ones(4, requires_grad=True)
    scale = dc.LossScale(FP16)
    passes = []

    def overflowing_forward():
        passes.append(1)
        return leaf * float("inf")

    score, (gradient,) = scale.gradients(overflowing_forward, [leaf], leaf.device)
    assert len(passes) == 1 and scale.scale == 2.0**16 and torch.equal(gradient, torch.zeros(4))

    def nan_backward():  # sqrt's gradient at 0 is inf, and inf * 0 is NaN: no scale helps
        passes.append(1)
        return (leaf * 0).sqrt() * 0 + leaf

    passes.clear()
    _, (gradient,) = scale.gradients(nan_backward, [leaf], leaf.device)
    assert len(passes) == 1 + dc.LossScale.MAX_HALVINGS and scale.scale == 2.0**16
    assert torch.isfinite(gradient).all()


def test_a_pass_without_a_finite_score_neither_halves_the_scale_nor_restarts_its_growth(shapes_net, monkeypatch):
    """Growth counts clean steps; a skipped pass (non-finite score) is no overflow of the scale, in the
    ascent's LossScale.gradients and in optimize alike (the one-line bug: optimize marking it overflowed)."""
    leaf = torch.ones(4, requires_grad=True)
    scale = dc.LossScale(FP16, growth_interval=2)
    scale.gradients(lambda: leaf * 2, [leaf], leaf.device)
    scale.end_step()
    scale.gradients(lambda: leaf * float("inf"), [leaf], leaf.device)
    scale.end_step()
    assert scale.scale == 2.0**17  # two steps without overflow: doubled

    seen = []

    class Recording(dc.LossScale):
        def end_step(self):
            seen.append(self.overflowed)
            super().end_step()

    import dream_core.optimizers as optimizers

    monkeypatch.setattr(optimizers, "LossScale", Recording)
    objective = dc.Objective(lambda acts: acts["relu2"].mean((1, 2, 3)) * float("nan"), ["relu2"], "nan")
    picture = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    dc.optimize([picture], lambda: picture, shapes_net.extractor(["relu2"]), objective, steps=3, lr=0.01,
                autocast=FP16)
    assert seen == [False, False, False]


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_a_pass_without_a_finite_loss_leaves_the_optimizer_parameters_finite(shapes_net, optimizer):
    """Every third pass of this objective is NaN: L-BFGS must never be handed a NaN loss, Adam must not
    step on it (its momentum would still move the picture)."""
    calls = []

    def sometimes_nan(acts):
        calls.append(1)
        score = acts["relu2"].mean((1, 2, 3))
        return score * float("nan") if len(calls) % 3 == 0 else score

    objective = dc.Objective(sometimes_nan, ["relu2"], "sometimes nan")
    picture = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    out = dc.optimize([picture], lambda: picture, shapes_net.extractor(["relu2"]), objective, steps=6,
                      optimizer=optimizer, lr=0.01)
    assert torch.isfinite(out).all() and torch.isfinite(picture).all()


def test_a_non_finite_or_zero_gradient_never_makes_a_nan_step(googlenet):
    """An objective whose gradient is NaN (or nothing at all) leaves the picture as it was, finite.
    Catches a step that adds NaN, or a loss scale that loops forever on a NaN no scale can cure."""
    image = _picture()
    nan = dc.Objective(lambda acts: acts["inception3a"].mean((1, 2, 3)) * float("nan"), ["inception3a"], "nan")
    flat = dc.Objective(lambda acts: acts["inception3a"].mean((1, 2, 3)) * 0, ["inception3a"], "zero")
    for objective in (nan, flat):
        for autocast in (None, FP16):
            stepped, _ = dc.ascent_step(image, googlenet.extractor(objective.layers), objective, step_size=0.1,
                                        autocast=autocast)
            assert torch.isfinite(stepped).all() and torch.equal(stepped, image)


def _spy_scales(monkeypatch):
    used = []
    real = dc.LossScale.accept

    def accept(self, gradients):
        used.append(self.enabled)
        return real(self, gradients)

    monkeypatch.setattr(dc.LossScale, "accept", accept)
    return used


def _drivers(shapes_net):
    net, image = random_backbone("googlenet"), _picture((64, 64))
    style = dc.style_objective(net, image, [dc.LayerTerm("inception3a")])
    shapes = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return {
        "deepdream": lambda p: dc.deepdream(image, net, dc.l2("inception3a"), steps=1, octaves=1, precision=p),
        "stylize": lambda p: dc.stylize(image, net, style, steps=1, optimizer="adam", precision=p),
        "attribution": lambda p: dc.attribution(shapes, shapes_net, 1, "smoothgrad", samples=2, precision=p),
        "gradcam": lambda p: dc.attribution(shapes, shapes_net, 1, "gradcam", precision=p),
        "class_visualize": lambda p: dc.class_visualize(shapes_net, 1, size=(32, 32), steps=1, precision=p),
        "fool": lambda p: dc.fool(shapes, shapes_net, 2, method="pgd", max_steps=1, precision=p)[0],
        "invert_features": lambda p: dc.invert_features(shapes, shapes_net, "relu2", steps=1, precision=p),
        "feature_visualize": lambda p: dc.feature_visualize(shapes_net, dc.channel("relu2", 0), size=(32, 32),
                                                            steps=1, precision=p),
        "dream_zoom": lambda p: dc.dream_zoom(image, net, dc.l2("inception3a"), 2, steps=1, octaves=1, precision=p),
        "dream_video": lambda p: dc.dream_video(torch.cat([image, image]), net, dc.l2("inception3a"), flow="none",
                                                steps=1, octaves=1, precision=p),
    }


@pytest.mark.parametrize("driver", ["deepdream", "stylize", "attribution", "gradcam", "class_visualize", "fool",
                                    "invert_features", "feature_visualize", "dream_zoom", "dream_video"])
def test_every_driver_takes_a_precision_and_scales_fp16(shapes_net, monkeypatch, driver):
    """Each driver accepts ``precision`` and, in fp16, takes its gradients through an enabled loss scale
    (in fp32, through none). Catches a driver that ignores the precision or bypasses the scale."""
    run = _drivers(shapes_net)[driver]
    used = _spy_scales(monkeypatch)
    out = run("fp16")
    assert used and all(used) and torch.isfinite(out).all()
    used.clear()
    run("fp32")
    assert not any(used)


def test_nodes_ask_the_host_what_auto_means(pack, fake_host, monkeypatch):
    """Inside ComfyUI, auto is the host's own choice for an image model on its device (its VAE rule,
    bf16 before fp16); an explicit choice is kept. Catches a node that hands "auto" to the library
    (which would pick by its own rule) or asks with another preference order."""
    asked = []

    def vae_dtype(device=None, allowed_dtypes=()):
        asked.append((device, list(allowed_dtypes)))
        return torch.float16

    monkeypatch.setattr(pack.nodes.host.model_management, "vae_dtype", vae_dtype, raising=False)
    host = pack.nodes.host
    assert host.resolve_precision("auto") == "fp16" and host.resolve_precision("fp32") == "fp32"
    assert asked == [(torch.device("cpu"), [torch.bfloat16, torch.float16])]
    for answer, name in ((torch.bfloat16, "bf16"), (torch.float32, "fp32")):
        monkeypatch.setattr(pack.nodes.host.model_management, "vae_dtype", lambda device=None, allowed_dtypes=(), a=answer: a)
        assert host.resolve_precision("auto") == name
    seen = []
    tasks = sys.modules[pack.__name__ + ".dream_core.tasks"]
    monkeypatch.setattr(tasks, "classify", lambda picture, net, k, precision: seen.append(precision)
                        or [[dc.Prediction(0, "x", 1.0)]])
    pack.NODE_CLASS_MAPPINGS["DD_Classify"]().classify(torch.rand(1, 64, 64, 3), random_backbone("alexnet"), 1)
    assert seen == ["fp32"]


def test_every_node_that_runs_a_network_has_a_precision(pack):
    runs_a_network = {"DD_DeepDream", "DD_GuidedDream", "DD_StyleTransfer", "DD_DreamZoom", "DD_DreamVideo",
                      "DD_Classify", "DD_Saliency", "DD_ClassVisualize", "DD_FoolingImage", "DD_FeatureInversion",
                      "DD_FeatureVisualize", "DD_FeatureAccentuation", "DD_DreamVideoStream"}
    for node_id in runs_a_network:
        spec = pack.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()
        assert spec["optional"]["precision"][1]["default"] == "auto", node_id


def test_maco_and_accentuation_keep_their_gradient_under_fp16_at_a_tiny_score():
    """At a score of 2^-16 fp16 gradients underflow without the loss scale (measured: a map of zeros for both
    with the scale fixed at 1); with it, the transparency map (the gradient that reached each pixel) covers
    what the fp32 run's covers."""
    backbone = random_backbone("alexnet")
    tiny = dc.channel("conv3", 2) * 2.0**-16  # before the ReLU: a gradient everywhere
    picture = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for run in (lambda precision: dc.feature_visualize(backbone, tiny, size=(64, 64), steps=3, parameterization="maco",
                                                       precision=precision, return_transparency=True),
                lambda precision: dc.accentuate(picture, backbone, tiny, steps=3, precision=precision,
                                                return_transparency=True)):
        (full, full_map), (half, half_map) = run("fp32"), run("fp16")
        assert torch.isfinite(half).all() and (half_map > 0).float().mean() >= (full_map > 0).float().mean() - 0.01
        assert (half_map > 0).float().mean() > 0.5
