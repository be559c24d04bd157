import functools
import types

import pytest
import torch

import dream_core as dc
from workflow_runner import ROOT, import_pack  # noqa: F401  (re-exported for the tests)

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


@pytest.fixture(scope="session")
def pack():
    return import_pack()


@pytest.fixture(scope="session")
def shapes_net() -> dc.Backbone:
    """The five-class shapes CNN of ``tests/shapes.py``, trained once per session."""
    from shapes import train_shapes_net

    return train_shapes_net()


@pytest.fixture
def fake_host(pack, monkeypatch, tmp_path):
    """Stand-ins for comfy.utils, comfy.model_management and folder_paths, recording what the nodes do."""
    host = pack.nodes.host
    record = types.SimpleNamespace(updates=[], interrupt_after=None, checks=0, freed=[])

    class ProgressBar:
        def __init__(self, total):
            record.updates.append(("new", total))

        def update_absolute(self, value, total=None, preview=None):
            record.updates.append((value, total, preview))

    def throw_exception_if_processing_interrupted():
        record.checks += 1
        if record.interrupt_after is not None and record.checks > record.interrupt_after:
            raise InterruptedError("Processing interrupted")  # the host's own exception type

    management = types.SimpleNamespace(
        get_torch_device=lambda: torch.device("cpu"), intermediate_device=lambda: torch.device("cpu"),
        throw_exception_if_processing_interrupted=throw_exception_if_processing_interrupted,
        free_memory=lambda amount, device: record.freed.append((amount, device)), soft_empty_cache=lambda: None,
        vae_dtype=lambda device=None, allowed_dtypes=(): torch.float32)  # what ComfyUI picks on the CPU
    folders = types.SimpleNamespace(
        folder_names_and_paths={"deepdream": ([str(tmp_path / "extra")], set())},
        models_dir=str(tmp_path / "models"), get_input_directory=lambda: str(tmp_path / "input"),
        get_output_directory=lambda: str(tmp_path / "output"), get_temp_directory=lambda: str(tmp_path / "temp"))
    folders.get_folder_paths = lambda name: folders.folder_names_and_paths[name][0]
    folders.get_filename_list = lambda name: sorted(
        p.name for d in folders.get_folder_paths(name) for p in __import__("pathlib").Path(d).glob("*")
        if p.suffix in folders.folder_names_and_paths[name][1])
    folders.get_full_path = lambda name, file: next(
        (str(p) for d in folders.get_folder_paths(name) for p in [__import__("pathlib").Path(d) / file] if p.is_file()),
        None)
    monkeypatch.setattr(host, "comfy_utils", types.SimpleNamespace(ProgressBar=ProgressBar))
    monkeypatch.setattr(host, "model_management", management)
    monkeypatch.setattr(host, "folder_paths", folders)
    return record
