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


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
PACK_NAME = "deepdream-nodes-under-test"  # any folder name: ComfyUI imports the pack as a package


def import_pack():
    """Import the repository as ComfyUI does: as a package whose name is its (arbitrary) folder name."""
    import importlib.util
    import sys

    if PACK_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            PACK_NAME, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACK_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[PACK_NAME]


@pytest.fixture(scope="session")
def pack():
    return import_pack()


@pytest.fixture(scope="session")
def shapes_net() -> dc.Backbone:
    """The five-class shapes CNN of ``tests/shapes.py``, trained once per session."""
    from shapes import train_shapes_net

    return train_shapes_net()
