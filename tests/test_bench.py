import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import dream_core as dc
from conftest import ROOT, random_backbone
from dream_bench import floor_pass
from dream_bench.naive import NaiveDreamer

KEYS = {"case", "backbone", "layer", "size", "device", "floor_ms", "step_ms", "ratio_floor", "naive_ms",
        "speedup_vs_naive", "fast_floor_ms", "fast_ms", "ratio_fast", "peak_mem_mb"}


def test_quick_json_mode_emits_every_key_for_a_tiny_case():
    result = subprocess.run(
        [sys.executable, "-m", "dream_bench", "--quick", "--json", "--backbones", "googlenet",
         "--sizes", "64", "--repeats", "1"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert KEYS <= set(row)
    assert row["case"] == "googlenet/inception4c" and row["size"] == 64 and row["device"] == "cpu"
    for key in ("floor_ms", "step_ms", "naive_ms", "fast_floor_ms", "fast_ms", "peak_mem_mb"):
        assert row[key] > 0, key
    assert abs(row["ratio_floor"] - row["step_ms"] / row["floor_ms"]) < 1e-9
    assert abs(row["ratio_fast"] - row["fast_ms"] / row["fast_floor_ms"]) < 1e-9  # like with like
    assert abs(row["speedup_vs_naive"] - row["naive_ms"] / row["step_ms"]) < 1e-9


@pytest.mark.parametrize("fast", [False, True])
def test_floor_gradient_is_the_image_gradient_of_the_same_l2(fast):
    # The floor must do the work a step does, no less: same normalisation, layer and loss.
    backbone = dc.load_backbone("googlenet", "random", channels_last=fast, fuse_batchnorm=fast)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    floor = floor_pass(backbone, "inception3a", image)
    ours, _ = dc.image_gradient(image, backbone.extractor(["inception3a"]), dc.l2("inception3a"))
    assert torch.allclose(floor, ours, rtol=1e-4, atol=1e-6 * ours.abs().max().item())
    assert all(p.grad is None for p in backbone.model.parameters())


def test_naive_recipe_is_the_classic_one_and_leaves_our_backbone_alone():
    backbone = random_backbone("googlenet")
    naive = NaiveDreamer(backbone, "inception3a", torch.device("cpu"))
    assert all(p.requires_grad for p in naive.model.parameters())  # as the classic code leaves them
    image = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    stepped = naive.step(image)
    assert stepped.shape == image.shape and stepped.dtype == np.float32
    assert 0 <= stepped.min() and stepped.max() <= 1 and np.abs(stepped - image).mean() > 1e-3
    assert any(p.grad is not None for p in naive.model.parameters())  # weight gradients were computed
    assert not any(p.requires_grad for p in backbone.model.parameters())
    objective = dc.l2("inception3a")
    extract = backbone.extractor(objective.layers)
    before = objective(extract(torch.from_numpy(image))).item()
    dreamed = naive.dream(torch.from_numpy(image), steps=3, octaves=2)
    assert objective(extract(dreamed)).item() > before
