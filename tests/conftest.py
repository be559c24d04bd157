import functools

import pytest
import torch

import dream_core as dc

torch.set_num_threads(2)


@functools.cache
def random_backbone(name: str, seed: int = 0) -> dc.Backbone:
    """Built once per session: random-init backbones are read-only in the tests."""
    return dc.load_backbone(name, "random", seed=seed)


@pytest.fixture
def googlenet() -> dc.Backbone:
    return random_backbone("googlenet")


@pytest.fixture
def alexnet() -> dc.Backbone:
    return random_backbone("alexnet")


@pytest.fixture
def image() -> torch.Tensor:
    """A smooth-ish random picture, (1, 3, 64, 80)."""
    generator = torch.Generator().manual_seed(1)
    coarse = torch.rand(1, 3, 8, 10, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(64, 80), mode="bilinear", align_corners=False)
