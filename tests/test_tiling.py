"""Tiled gradients: same gradient as untiled away from tile borders, no seams, bounded memory."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import dream_core as dc
from conftest import ROOT, random_backbone
from dream_core.ascent import _spans, image_gradient
from dream_core import TilePolicy


@pytest.fixture(scope="module")
def picture():
    coarse = torch.rand(1, 3, 25, 33, generator=torch.Generator().manual_seed(5))
    return torch.nn.functional.interpolate(coarse, size=(400, 520), mode="bilinear", align_corners=False)


def _border_distance(height, width, tile, overlap):
    """Distance of each pixel to the nearest interior core edge of the tiling."""
    margin = 32 * -(-overlap // 64)
    core = 32 * ((tile - 2 * margin) // 32)
    distance = torch.full((height, width), float("inf"))
    for length, axis in ((height, 0), (width, 1)):
        coords = torch.arange(length).float()
        for span, _ in _spans(length, core, margin)[1:]:
            edge = (coords - span.start).abs()
            distance = torch.minimum(distance, edge[:, None].expand(height, width) if axis == 0
                                     else edge[None, :].expand(height, width))
    return distance


@pytest.mark.parametrize("layer, tolerance", [("inception3a", 1e-4), ("inception4c", 0.06)])
def test_tiled_gradient_agrees_with_untiled_away_from_tile_borders(picture, layer, tolerance):
    # Tolerance: mean |g_tiled - g| / mean |g| over pixels 16+ px from a tile edge: exact (1e-4, float
    # noise) while the receptive field fits in the 64 px margin (inception3a), under 6% at inception4c.
    backbone = random_backbone("googlenet")
    objective = dc.l2(layer)
    extractor = backbone.extractor(objective.layers)
    whole, whole_scores = image_gradient(picture, extractor, objective, shift=(0, 0))
    tiled, tiled_scores = image_gradient(picture, extractor, objective, tile_size=256, overlap=128)
    away = _border_distance(400, 520, 256, 128) >= 16
    error = (whole - tiled).abs().mean(1)[0] / whole.abs().mean()
    assert error[away].mean() < tolerance
    assert tiled_scores.item() == pytest.approx(whole_scores.item(), rel=0.25)


def test_stitched_gradient_has_no_seams(picture):
    # A seam would show as a band of different gradient magnitude along the tile edges.
    backbone = random_backbone("googlenet")
    objective = dc.l2("inception3b")
    tiled, _ = image_gradient(picture, backbone.extractor(objective.layers), objective, tile_size=256, overlap=128)
    magnitude = tiled.abs().mean(1)[0]
    distance = _border_distance(400, 520, 256, 128)
    on_border, interior = magnitude[distance < 2].mean(), magnitude[distance >= 16].mean()
    assert abs(on_border / interior - 1) < 0.15, (on_border, interior)


def test_tiles_are_used_only_above_the_threshold(picture, googlenet):
    calls = []
    objective = dc.l2("inception3a")
    extractor = googlenet.extractor(objective.layers)
    handle = extractor.stages[0].register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape[-2:])))
    try:
        dc.deepdream(picture, googlenet, objective, steps=1, octaves=1, tile_size=256, tile_overlap=64,
                     tile_above=300)
        tiled_calls = list(calls)
        calls.clear()
        dc.deepdream(picture, googlenet, objective, steps=1, octaves=1, tile_size=256, tile_overlap=64,
                     tile_above=600)
    finally:
        handle.remove()
    assert len(tiled_calls) > 1 and all(max(size) <= 256 for size in tiled_calls)
    assert calls == [(400, 520)]


def test_out_of_memory_falls_back_to_smaller_tiles_once_with_one_warning(caplog):
    policy = TilePolicy(512, 1024, minimum=160)
    tried = []

    image = torch.zeros(1, 3, 900, 900)

    def step(picture, tile_size):
        tried.append(tile_size)
        if tile_size == 0 or tile_size > 256:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return "ok"

    with caplog.at_level("WARNING", logger="DeepDreamNodes"):
        assert policy.run(step, image) == "ok"
        assert policy.run(step, image) == "ok"
    assert tried == [0, 512, 256, 256]
    assert caplog.text.count("out of GPU memory") == 1

    def always_out_of_memory(picture, tile_size):
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(dc.DreamError, match="out of GPU memory at .* even with 512 px tiles; free GPU memory"):
        TilePolicy(512, 1024, minimum=400).run(always_out_of_memory, image)


def test_shared_mask_broadcasts_over_the_batch(googlenet, image):
    batch = torch.cat([image, image.flip(-1), image.flip(-2)])
    mask = torch.zeros(1, 32, 40)
    mask[..., 20:] = 1.0
    dream = dc.deepdream(batch, googlenet, dc.l2("inception3a"), steps=3, octaves=2, mask=mask)
    assert torch.equal(dream[..., :36], batch[..., :36])
    for index in range(3):
        assert (dream[index, :, :, 44:] - batch[index, :, :, 44:]).abs().mean() > 1e-2


def test_tile_size_is_checked(googlenet, image):
    with pytest.raises(dc.DreamError, match="tile_size: must be 0 .off. or at least 2 . tile_overlap . 32 = 288"):
        dc.deepdream(image, googlenet, dc.l2("conv2"), tile_size=100)


PEAK = textwrap.dedent("""
    import gc, re, sys, pathlib, torch, dream_core as dc
    torch.set_num_threads(2)
    size = int(sys.argv[1])
    backbone = dc.load_backbone("googlenet", "random")
    image = torch.rand(1, 3, size, size)
    status = lambda f: int(re.search(rf"{f}:\\s+(\\d+)", pathlib.Path("/proc/self/status").read_text()).group(1))
    dc.deepdream(torch.rand(1, 3, 64, 64), backbone, dc.l2("inception3b"), steps=1, octaves=1)  # warm-up
    gc.collect()
    base = status("VmRSS")
    pathlib.Path("/proc/self/clear_refs").write_text("5")
    dc.deepdream(image, backbone, dc.l2("inception3b"), steps=1, octaves=1, tile_size=512, tile_above=512)
    print((status("VmHWM") - base) / 1024)
""")


def _peak_mb(size):
    # glibc's dynamic mmap threshold makes freed tile activations linger in a fragmented heap, so
    # RSS would measure the allocator, not the tensors; a fixed threshold returns freed memory at once.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    result = subprocess.run([sys.executable, "-c", PEAK, str(size)], capture_output=True, text=True, timeout=300,
                            cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    return float(result.stdout.strip().splitlines()[-1])


def test_memory_at_2048_stays_within_1_5x_of_512():
    small, large = _peak_mb(512), _peak_mb(2048)
    assert large < 1.5 * small, (small, large)


def test_tiled_gradient_with_a_shift_is_the_rolled_back_gradient_of_the_rolled_image(picture):
    # Gathering rolled tiles by index must equal rolling the image, tiling it, and rolling the gradient back.
    backbone = random_backbone("googlenet")
    objective = dc.l2("inception3a")
    extractor = backbone.extractor(objective.layers)
    shift = (37, -75)
    direct, _ = image_gradient(picture, extractor, objective, shift=shift, tile_size=256, overlap=128)
    rolled, _ = image_gradient(torch.roll(picture, shift, (2, 3)), extractor, objective, tile_size=256, overlap=128)
    assert torch.allclose(direct, torch.roll(rolled, (-shift[0], -shift[1]), (2, 3)), atol=1e-6)


def test_octaves_of_a_large_image_are_tiled_above_one_tile():
    """In a dream of an image above tile_above every octave larger than a tile is tiled (memory bounded by
    one tile); a smaller image keeps every octave whole (speed). Catches the untiled 746 px octave of a
    2048 px dream, which cost 670 MB on its own."""
    large, small = TilePolicy(512, 1024, image_side=2048), TilePolicy(512, 1024, image_side=1000)
    assert [large.for_size((s, s)) for s in (2048, 1045, 746, 512)] == [512, 512, 512, 0]
    assert [small.for_size((s, s)) for s in (1000, 714)] == [0, 0]
