"""The fast paths (channels_last, autocast, cuDNN autotuning) give the plain path's dream, closely."""

import pytest
import torch

import dream_core as dc
from dream_core.dream import _tuned_for, autocast_dtype

SETTINGS = dict(steps=5, octaves=2, jitter=8, seed=3)


def _pair(name="googlenet"):
    plain = dc.load_backbone(name, "random", seed=0, channels_last=False)
    fast = dc.load_backbone(name, "random", seed=0, channels_last=True)
    return plain, fast


def test_channels_last_is_the_default_and_changes_the_layout_only():
    plain, fast = _pair()
    assert fast.memory_format == torch.channels_last and plain.memory_format == torch.contiguous_format
    weight = dict(fast.model.named_parameters())["conv1.conv.weight"]
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(weight, dict(plain.model.named_parameters())["conv1.conv.weight"])


def test_channels_last_dream_matches_the_plain_dream(image):
    # Tolerance: 1e-3 absolute per pixel (0..1 units) after 10 steps; seen: 2.4e-7.
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
    assert autocast_dtype("fp16", cuda) is torch.float16
    with pytest.raises(dc.DreamError, match="fp16 needs a CUDA device"):
        autocast_dtype("fp16", cpu)
    with pytest.raises(dc.DreamError, match="precision: unknown 'fp8'"):
        autocast_dtype("fp8", cpu)


def test_cudnn_autotuning_is_scoped_to_a_cuda_dream(monkeypatch):
    cudnn = torch.backends.cudnn
    before = cudnn.benchmark
    with _tuned_for(torch.device("cuda")):
        assert cudnn.benchmark is True
    assert cudnn.benchmark == before
    with _tuned_for(torch.device("cpu")):
        assert cudnn.benchmark == before
    monkeypatch.setattr(cudnn, "deterministic", True)
    with _tuned_for(torch.device("cuda")):
        assert cudnn.benchmark == before  # the user's request for determinism wins
