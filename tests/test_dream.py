import pytest
import torch

import dream_core as dc

SMALL = dict(steps=4, octaves=2, octave_scale=1.4, jitter=4)


def score(backbone, objective, image):
    return objective(backbone.extractor(objective.layers)(image))


def test_objective_rises_image_stays_valid_and_keeps_its_size(googlenet, image):
    objective = dc.l2("inception3b")
    dream = dc.deepdream(image, googlenet, objective, steps=10, octaves=2, jitter=8, step_size=0.02)
    assert dream.shape == image.shape and dream.dtype == torch.float32
    assert dream.min() >= 0 and dream.max() <= 1
    before, after = score(googlenet, objective, image).item(), score(googlenet, objective, dream).item()
    assert after > 1.5 * before, (before, after)


def test_fixed_seed_reproduces_and_another_seed_differs(googlenet, image):
    objective = dc.l2("inception3a")
    first = dc.deepdream(image, googlenet, objective, seed=7, **SMALL)
    assert torch.equal(first, dc.deepdream(image, googlenet, objective, seed=7, **SMALL))
    assert not torch.equal(first, dc.deepdream(image, googlenet, objective, seed=8, **SMALL))


def test_every_batch_item_is_dreamed_with_its_own_seed(googlenet, image):
    batch = torch.cat([image, image.flip(-1), image])
    dreams = dc.deepdream(batch, googlenet, dc.l2("inception3a"), seed=3, **SMALL)
    assert dreams.shape == batch.shape
    for index in range(3):
        assert not torch.allclose(dreams[index], batch[index], atol=1e-3)
        alone = dc.deepdream(batch[index:index + 1], googlenet, dc.l2("inception3a"), seed=3 + index, **SMALL)
        assert torch.allclose(dreams[index:index + 1], alone, atol=1e-6)
    assert not torch.allclose(dreams[0], dreams[2], atol=1e-3)  # same picture, its own jitter stream


def test_zero_steps_give_back_the_input_exactly(googlenet, image):
    assert torch.equal(dc.deepdream(image, googlenet, dc.l2("inception3a"), steps=0), image)


def test_zero_mask_leaves_the_image_untouched(googlenet, image):
    dream = dc.deepdream(image, googlenet, dc.l2("inception3a"), mask=torch.zeros(64, 80), **SMALL)
    assert torch.equal(dream, image)


@pytest.mark.parametrize("detail", ["reinject", "blend"])
def test_half_mask_changes_only_that_half(googlenet, image, detail):
    mask = torch.zeros(1, 64, 80)
    mask[..., :40] = 1.0
    dream = dc.deepdream(image, googlenet, dc.l2("inception3a"), mask=mask, detail=detail, **SMALL)
    assert torch.equal(dream[..., 40:], image[..., 40:])
    assert (dream[..., :40] - image[..., :40]).abs().mean() > 0.01


def test_mask_of_another_size_is_resized(googlenet, image):
    mask = torch.zeros(32, 40)
    mask[:, 20:] = 1.0
    dream = dc.deepdream(image, googlenet, dc.l2("inception3a"), mask=mask, **SMALL)
    assert torch.equal(dream[..., :36], image[..., :36])
    assert (dream[..., 44:] - image[..., 44:]).abs().mean() > 0.01


def test_progress_counts_every_step_and_previews_the_image(googlenet, image):
    calls = []
    dc.deepdream(torch.cat([image, image]), googlenet, dc.l2("inception3a"), steps=3, octaves=2,
                 progress=lambda step, total, preview: calls.append((step, total, tuple(preview.shape))))
    assert [c[0] for c in calls] == list(range(1, 13)) and {c[1] for c in calls} == {12}
    assert calls[0][2][0] == 3 and calls[-1][2] == (3, 64, 80)


def test_cancel_stops_within_one_step(googlenet, image):
    calls = []
    with pytest.raises(dc.DreamCancelled, match="step 2 of 8"):
        dc.deepdream(image, googlenet, dc.l2("inception3a"), steps=4, octaves=2,
                     progress=lambda step, total, preview: calls.append(step), cancel=lambda: len(calls) >= 2)
    assert calls == [1, 2]


def test_max_loss_stops_early_and_the_bar_still_ends_at_total(googlenet, image):
    objective = dc.l2("inception3a")
    start = score(googlenet, objective, image).item()
    calls = []
    early = dc.deepdream(image, googlenet, objective, steps=10, octaves=1, max_loss=start * 0.5,
                         progress=lambda step, total, preview: calls.append(step))
    assert calls == [10]
    one_step = dc.deepdream(image, googlenet, objective, steps=1, octaves=1)
    assert torch.equal(early, one_step)


def test_image_smaller_than_the_receptive_field_is_dreamed_enlarged(alexnet, caplog):
    image = torch.rand(1, 3, 20, 24)
    with caplog.at_level("WARNING", logger="DeepDreamNodes"):
        dream = dc.deepdream(image, alexnet, dc.l2("pool5"), steps=2)
    assert dream.shape == image.shape and (dream - image).abs().mean() > 1e-3
    assert "20x24 is smaller than the 63 px that pool5 of alexnet needs" in caplog.text


def test_wide_image_with_many_octaves_keeps_its_size(googlenet):
    dream = dc.deepdream(torch.rand(1, 3, 40, 600), googlenet, dc.l2("inception3a"), steps=1, octaves=6)
    assert dream.shape == (1, 3, 40, 600)


@pytest.mark.parametrize("bad, message", [
    (dict(steps=-1), "steps: must be 0 or more"),
    (dict(step_size=float("nan")), "step_size: must be a finite number"),
    (dict(jitter=-2), "jitter: must be 0 or more"),
    (dict(smoothing=-1.0), "smoothing: must be 0"),
    (dict(octaves=0), "octaves: need at least 1"),
    (dict(detail="sharpen"), "detail: unknown mode"),
    (dict(mask=torch.ones(2, 64, 80)), "mask: has 2 masks for 1 images"),
])
def test_bad_settings_are_explained(googlenet, image, bad, message):
    with pytest.raises(dc.DreamError, match=message):
        dc.deepdream(image, googlenet, dc.l2("inception3a"), **{**SMALL, **bad})


def test_bad_images_are_explained(googlenet):
    with pytest.raises(dc.ShapeError, match=r"image: expected shape \(B, 3, H, W\), got \(1, 64, 64, 3\)"):
        dc.deepdream(torch.rand(1, 64, 64, 3), googlenet, dc.l2("conv2"))
    with pytest.raises(dc.DreamError, match="NaN"):
        dc.deepdream(torch.full((1, 3, 64, 64), float("nan")), googlenet, dc.l2("conv2"))
    with pytest.raises(dc.DreamError, match="divide by 255"):
        dc.deepdream(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), googlenet, dc.l2("conv2"))


@pytest.mark.parametrize("steps", [0, 2])
def test_the_callers_image_and_mask_are_never_modified(googlenet, image, steps):
    picture, mask = image.clone(), torch.rand(64, 80)
    kept_picture, kept_mask = picture.clone(), mask.clone()
    dc.deepdream(picture, googlenet, dc.l2("inception3a"), steps=steps, octaves=2, mask=mask)
    assert torch.equal(picture, kept_picture) and torch.equal(mask, kept_mask)


def test_batched_dreaming_equals_one_at_a_time(googlenet):
    """Each item keeps its own roll in the shared forward pass: one step equals the lone step to float
    rounding. Over more steps, max-pooling ties that rounding breaks the other way move single pixels,
    so longer dreams agree only on average (measured at 256 px: mean 5e-9 after 1 step, 7e-6 after 2,
    3e-3 after 12). Catches one shift for the whole chunk, and masks or progress counted per chunk."""
    images = torch.rand(4, 3, 64, 80, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(4, 64, 80)
    mask[:, :, 40:] = 1
    runs = {}
    for chunk in (1, 3):
        seen = []
        dreams = dc.deepdream(images, googlenet, dc.l2("inception4c"), steps=1, octaves=1, mask=mask,
                              batch_size=chunk, progress=lambda done, total, preview: seen.append((done, total)))
        longer = dc.deepdream(images, googlenet, dc.l2("inception4c"), steps=3, octaves=2, batch_size=chunk)
        runs[chunk] = (dreams, seen, longer)
    assert torch.allclose(runs[1][0], runs[3][0], atol=1e-6)
    assert runs[1][1][-1] == runs[3][1][-1] == (4, 4)
    assert torch.equal(runs[3][0][..., :40], images[..., :40])
    assert (runs[1][2] - runs[3][2]).abs().mean() < 1e-3


def test_batching_is_automatic_only_where_it_helps(googlenet, monkeypatch):
    """One at a time on the CPU and for per-item objectives; on CUDA as many as fit in free memory."""
    from types import SimpleNamespace

    from dream_core.dream import _chunk_size

    plain = dc.l2("inception4c")
    per_item = dc.content_objective(googlenet, torch.rand(2, 3, 64, 64), "inception3a")
    assert _chunk_size(0, 8, googlenet, plain, None, lambda: 1) == 1
    assert _chunk_size(4, 8, googlenet, plain, None, lambda: 1) == 4
    assert _chunk_size(4, 8, googlenet, per_item, None, lambda: 1) == 1
    assert _chunk_size(4, 8, googlenet, plain, 3.0, lambda: 1) == 1
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (10 * 2**30, 16 * 2**30))
    gpu = SimpleNamespace(device=torch.device("cuda", 0))
    assert _chunk_size(0, 64, gpu, plain, None, lambda: 2**30) == 8  # 80% of 10 GiB in 1 GiB items
    assert _chunk_size(0, 4, gpu, plain, None, lambda: 2**30) == 4
