"""The fast paths (channels_last, autocast, cuDNN autotuning) give the plain path's dream, closely."""

import pytest
import torch

import dream_core as dc
from dream_core import autocast_dtype, tuned_for

SETTINGS = dict(steps=5, octaves=2, jitter=8, seed=3)


def _pair(name="googlenet"):
    plain = dc.load_backbone(name, "random", seed=0, channels_last=False, fuse_batchnorm=False)
    fast = dc.load_backbone(name, "random", seed=0)  # the default: channels_last, batch norms folded
    return plain, fast


def test_channels_last_is_the_default_and_changes_the_layout_only():
    plain = dc.load_backbone("alexnet", "random", channels_last=False)
    fast = dc.load_backbone("alexnet", "random")
    assert fast.memory_format == torch.channels_last and plain.memory_format == torch.contiguous_format
    weight = dict(fast.model.named_parameters())["features.0.weight"]
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(weight, dict(plain.model.named_parameters())["features.0.weight"])


@pytest.mark.parametrize("name", ["googlenet", "inception_v3", "resnet50"])
def test_folded_batchnorm_gives_every_catalogue_layer_unchanged(name):
    # Tolerance: 1e-5 relative to each layer's largest activation (seen: up to 3.1e-6).
    plain = dc.load_backbone(name, "random", fuse_batchnorm=False, channels_last=False)
    fused = dc.load_backbone(name, "random", channels_last=False)
    bn_stages = {n for n, stage in fused.stages if isinstance(stage, torch.nn.BatchNorm2d)}
    assert not [m for n, stage in fused.stages if n not in bn_stages for m in stage.modules()
                if isinstance(m, torch.nn.BatchNorm2d)], "a batch norm inside a stage was not folded"
    assert not any(p.requires_grad for p in fused.model.parameters())
    size = plain.spec.native_size
    image = torch.rand(1, 3, size, size)
    with torch.no_grad():
        expected, got = plain.extractor(plain.spec.layers)(image), fused.extractor(fused.spec.layers)(image)
    for layer in plain.spec.layers:
        scale = expected[layer].abs().max().clamp_min(1e-12)
        assert (expected[layer] - got[layer]).abs().max() / scale < 1e-5, layer


def test_fold_batchnorm_leaves_training_mode_and_lone_norms_alone():
    block = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    assert dc.fold_batchnorm(block) == 0  # training mode: the statistics are not fixed yet
    assert dc.fold_batchnorm(block.eval()) == 1 and isinstance(block[1], torch.nn.Identity)
    assert dc.fold_batchnorm(torch.nn.BatchNorm2d(4).eval()) == 0


def test_default_fast_path_dream_matches_the_plain_dream(image):
    # channels_last + folded batch norms against the plain torchvision model.
    # Tolerance: 1e-3 absolute per pixel (0..1 units) after 10 steps.
    plain, fast = _pair()
    objective = dc.l2("inception3b")
    a = dc.deepdream(image, plain, objective, precision="fp32", **SETTINGS)
    b = dc.deepdream(image, fast, objective, precision="fp32", **SETTINGS)
    assert (a - b).abs().max() < 1e-3


def test_bf16_autocast_dream_stays_near_the_float32_dream(image):
    # Tolerance: mean absolute difference under 0.025 (0..1 units) after 10 steps, where the float32
    # dream itself moves pixels by about 0.045 (seen: 0.014). Close in character, not identical,
    # which is why bf16 is opt-in.
    _, fast = _pair()
    objective = dc.l2("inception3b")
    full = dc.deepdream(image, fast, objective, precision="fp32", **SETTINGS)
    half = dc.deepdream(image, fast, objective, precision="bf16", **SETTINGS)
    assert (full - image).abs().mean() > 0.03
    assert (full - half).abs().mean() < 0.025
    extract = fast.extractor(objective.layers)
    assert objective(extract(half)).item() > 1.2 * objective(extract(image)).item()


def test_gradient_stays_float32_under_autocast(googlenet, image):
    objective = dc.l2("inception3a")
    stepped, scores = dc.ascent_step(image, googlenet.extractor(objective.layers), objective, step_size=0.01,
                                     autocast=torch.bfloat16)
    assert stepped.dtype == torch.float32 and scores.dtype == torch.float32


def test_precision_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype("fp32", cpu) is None and autocast_dtype("fp32", cuda) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("fp16", cuda) is torch.float16 and autocast_dtype("fp16", cpu) is torch.float16
    with pytest.raises(dc.DreamError, match="precision: unknown 'fp8'"):
        autocast_dtype("fp8", cpu)


def test_cudnn_autotuning_is_scoped_to_a_cuda_dream(monkeypatch):
    cudnn = torch.backends.cudnn
    before = cudnn.benchmark
    with tuned_for(torch.device("cuda")):
        assert cudnn.benchmark is True
    assert cudnn.benchmark == before
    with tuned_for(torch.device("cpu")):
        assert cudnn.benchmark == before
    monkeypatch.setattr(cudnn, "deterministic", True)
    with tuned_for(torch.device("cuda")):
        assert cudnn.benchmark == before  # the user's request for determinism wins
