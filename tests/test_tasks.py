"""Tasks: each driver's run as a host runs it, with its working set (dream_core.tasks), and the nodes' one
adapter that runs them (nodes.host.run)."""

import inspect
import re

import pytest
import torch

import dream_core as dc
from conftest import ROOT, random_backbone


def test_a_dream_task_runs_the_driver_one_item_at_a_time_with_deepdreams_working_set(image):
    backbone = random_backbone("alexnet")
    objective = dc.l2("relu2")
    task = dc.dream_task(image, backbone, objective, steps=2, octaves=2, seed=3)
    assert task.backbone is backbone
    assert task.memory == dc.deepdream_memory((64, 80), backbone, objective, octaves=2)
    made = task.run(precision="fp32", progress=None, cancel=None)
    assert torch.equal(made, dc.deepdream(image, backbone, objective, steps=2, octaves=2, seed=3, batch_size=1,
                                          precision="fp32"))


def test_the_working_set_defaults_are_the_drivers_own():
    """A task leaves out what the caller did not set, so deepdream_memory's defaults must be deepdream's."""
    dream = inspect.signature(dc.deepdream).parameters
    memory = inspect.signature(dc.deepdream_memory).parameters
    for name in dc.tasks.DREAM_MEMORY_OPTIONS:
        assert memory[name].default == dream[name].default, name


def test_a_zoom_task_makes_room_for_both_ends_of_a_morph(image):
    backbone = random_backbone("alexnet")
    shallow, deep = dc.l2("relu1"), dc.l2("relu5")
    alone = dc.zoom_task(image, backbone, shallow, 2, octaves=1).memory
    morph = dc.zoom_task(image, backbone, shallow, 2, objective_end=deep, octaves=1).memory
    assert morph > alone  # the one-line bug: only the first end's layers read


def test_a_diverse_feature_visualisation_makes_room_for_the_whole_batch():
    backbone = random_backbone("alexnet")
    objective = dc.channel("relu3", 0)
    one = dc.feature_visualize_task(backbone, objective, size=(64, 64), batch=4).memory
    together = dc.feature_visualize_task(backbone, objective, size=(64, 64), batch=4, diversity=10.0,
                                         diversity_layer="relu3").memory
    assert one == dc.pass_memory((64, 64), backbone, {"relu3"})
    assert together == dc.pass_memory((64, 64), backbone, {"relu3"}, inputs=4)


def test_maco_and_accentuation_make_room_for_all_their_crops(image):
    """MaCo sees 6 crops a step, at the picture's shorter side: the one-line bug is a working set of one picture."""
    backbone = random_backbone("alexnet")
    objective = dc.channel("relu3", 0)
    crops = dc.maco_cutouts(backbone, (64, 64))
    expected = dc.pass_memory((64, 64), backbone, {"relu3"}, inputs=crops.count, network_pixels=crops.size ** 2)
    maco = dc.feature_visualize_task(backbone, objective, size=(64, 64), parameterization="maco").memory
    assert crops.count == 6 and crops.size == 64 and maco == expected
    assert maco > dc.feature_visualize_task(backbone, objective, size=(64, 64)).memory
    picture = image[..., :64, :64]
    assert dc.accentuate_task(picture, backbone, objective).memory == expected


def test_a_guided_dream_needs_layers_or_a_clip_embedding(image):
    with pytest.raises(dc.DreamError, match="layers: Guided Dream needs the layers"):
        dc.guided_dream_task(image, random_backbone("alexnet"), image[:1])


def test_the_host_adapter_gives_the_task_the_hosts_settings_and_places_the_result(pack, fake_host, monkeypatch):
    host = pack.nodes.host
    monkeypatch.setattr(host.model_management, "intermediate_device", lambda: torch.device("meta"))
    monkeypatch.setattr(host.model_management, "vae_dtype", lambda device=None, allowed_dtypes=(): torch.float16)
    seen = {}

    def run(precision, progress, cancel):
        seen.update(precision=precision, progress=progress, cancel=cancel, grad=torch.is_grad_enabled(),
                    inference=torch.is_inference_mode_enabled())
        return torch.ones(2), ["kept"], 3

    with torch.inference_mode():
        result = host.run(host.Task(random_backbone("alexnet"), 1 << 20, run), "auto")
    tensor, listed, number = result
    assert tensor.device.type == "meta" and listed == ["kept"] and number == 3
    assert seen["precision"] == "fp16" and seen["grad"] and not seen["inference"]
    assert seen["progress"] is not None and seen["cancel"] is host.interrupted


def test_no_node_repeats_the_host_frame():
    """Device, precision, progress, Cancel and output placement are the adapter's (nodes/host.py: run)."""
    frame = re.compile(r"host\.(progress|interrupted|resolve_precision|output_device|place|compute_device)\b"
                       r"|\.to\(host\.")
    found = [f"{path.name}:{number}: {line.strip()}" for path in sorted((ROOT / "nodes").glob("*.py"))
             if path.name != "host.py"
             for number, line in enumerate(path.read_text().splitlines(), 1) if frame.search(line)]
    assert not found, "\n".join(found)
