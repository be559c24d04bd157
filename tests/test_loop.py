"""The shared loop: one progress report across calls, ascent runs, and the optimizer loop (a toy
feature-inversion driver written here, as the later loss drivers will be)."""

import pytest
import torch

import dream_core as dc


def test_a_plain_callback_sees_the_steps_of_its_call():
    seen = []
    progress = dc.Progress.of(lambda done, total, preview: seen.append((done, total)))
    progress.begin(3)
    for _ in range(3):
        progress.step()
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_one_bar_spans_many_dreams(googlenet, image):
    # A job of three dreams (as a zoom or video driver makes): one bar from 0 to its total, never backwards.
    seen = []
    job = dc.Progress(lambda done, total, preview: seen.append((done, total, preview is not None)), total=60)
    for frame in range(3):
        dc.deepdream(image, googlenet, dc.l2("inception3a"), steps=2, octaves=2, progress=job.part(frame, 3))
    done = [s[0] for s in seen]
    assert len(seen) == 12 and done == sorted(done) and done[-1] == 60 and {s[1] for s in seen} == {60}
    assert done[3] == 20 and done[7] == 40  # each dream ends its third of the bar
    assert all(s[2] for s in seen)  # every step carries a preview


def test_parts_nest_and_skipped_steps_count_as_done():
    seen = []
    job = dc.Progress(lambda done, total, preview: seen.append(done), total=100)
    half = job.part(1, 2)  # 50..100
    quarter = half.part(0, 2)  # 50..75
    quarter.begin(5)
    quarter.step(steps=5)
    assert seen == [75]
    with pytest.raises(dc.DreamError, match="part 2 of 2 does not exist"):
        job.part(2, 2)


def test_ascent_run_stops_early_and_applies_the_after_step_hook(googlenet, image):
    objective = dc.l2("inception3a")
    seen, hooked = [], []
    progress = dc.Progress(lambda done, total, preview: seen.append(done))
    progress.begin(10)
    ascent = dc.Ascent(googlenet.extractor(objective.layers), objective, step_size=0.02, jitter=4, progress=progress)

    def after(picture, step):
        hooked.append(step)
        return picture

    out = ascent.run(image, 10, dc.item_generator(0, 0), stop=lambda picture, scores: len(hooked) == 3,
                     after_step=after)
    assert hooked == [0, 1, 2] and seen == [1, 2, 10]  # the skipped steps count as done
    assert out.shape == image.shape and not torch.equal(out, image)


def test_ascent_run_is_seeded_by_its_generator(googlenet, image):
    objective = dc.l2("inception3a")
    ascent = dc.Ascent(googlenet.extractor(objective.layers), objective, step_size=0.02, jitter=8)
    first = ascent.run(image, 3, dc.item_generator(5, 1))
    assert torch.equal(first, ascent.run(image, 3, dc.item_generator(6, 0)))  # seed + index
    assert not torch.equal(first, ascent.run(image, 3, dc.item_generator(5, 0)))



def test_ascent_run_in_place_updates_the_given_buffer_with_the_same_bits(googlenet, image):
    """A dream's levels are dreamed in place (one image-sized buffer fewer at 4096 px); the pixels must be
    exactly those of the out-of-place run, so ``image + step`` and ``step + image`` are the same sum."""
    objective = dc.l2("inception3a")
    ascent = dc.Ascent(googlenet.extractor(objective.layers), objective, step_size=0.02, jitter=8)
    expected = ascent.run(image, 3, dc.item_generator(0, 0))
    mine = image.clone()
    out = ascent.run(mine, 3, dc.item_generator(0, 0), in_place=True)
    assert out.data_ptr() == mine.data_ptr() and torch.equal(out, expected)
    assert not torch.equal(expected, image)  # the out-of-place run left its input alone


def test_for_each_item_gives_each_item_its_seed_share_of_progress_and_result_place():
    """The runner every driver stands on: item i draws from seed + i, its steps fill its own share of one
    report, chunks take consecutive items, and results are concatenated in order on ``to``."""
    batch = torch.arange(5.0).view(5, 1)
    seen, reports = [], []

    def run(item):
        seen.append((list(item.indices), [torch.rand((), generator=g).item() for g in item.generators]))
        for _ in range(3 * len(item.indices)):
            item.progress.step()
        return item.take(batch) * 10

    out = dc.for_each_item(5, run, device=torch.device("cpu"), steps=3, seed=7, chunk=2,
                           progress=lambda done, total, preview: reports.append((done, total)))
    assert torch.equal(out, batch * 10)
    assert [indices for indices, _ in seen] == [[0, 1], [2, 3], [4]]
    draws = [draw for _, chunk in seen for draw in chunk]
    assert draws == [torch.rand((), generator=dc.item_generator(7, i)).item() for i in range(5)]
    assert [done for done, _ in reports] == list(range(1, 16)) and {total for _, total in reports} == {15}


def test_an_item_of_a_shared_batch_of_one_is_that_one():
    item = dc.Item(range(3, 4), [dc.item_generator(0, 3)], dc.Progress(), torch.device("cpu"))
    shared, per_item = torch.zeros(1, 2), torch.arange(10.0).view(5, 2)
    assert torch.equal(item.take(shared), shared) and torch.equal(item.take(per_item), per_item[3:4])

def invert(backbone, target_image, layer, steps, optimizer, **kwargs):
    """A toy loss driver: find an image whose features at ``layer`` match ``target_image``'s, from noise."""
    extractor = backbone.extractor([layer, dc.INPUT])
    with torch.no_grad():
        target = extractor(target_image)[layer]
    feature_match = dc.Objective(lambda acts: -(acts[layer] - target).square().flatten(1).mean(1), [layer],
                                 "feature match")
    pixels = torch.rand(target_image.shape, generator=torch.Generator().manual_seed(0))
    start = pixels.clone()
    result = dc.optimize([pixels], lambda: pixels, extractor, feature_match - 1e-3 * dc.total_variation(),
                         steps=steps, optimizer=optimizer, **kwargs)
    distance = lambda picture: (extractor(picture)[layer] - target).square().mean().item()
    return result, distance, start


@pytest.mark.parametrize("optimizer, lr", [("adam", 0.05), ("lbfgs", 1.0)])
def test_optimizer_loop_minimises_the_loss(googlenet, image, optimizer, lr):
    seen = []
    result, distance, start = invert(googlenet, image, "conv2", 12, optimizer, lr=lr,
                              progress=lambda done, total, preview: seen.append((done, total)))
    assert distance(result) < 0.5 * distance(start)
    assert result.min() >= 0 and result.max() <= 1 and not result.requires_grad
    assert seen[-1] == (12, 12) and all(total == 12 for _, total in seen)  # L-BFGS evaluations counted too


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_optimizer_loop_cancels_within_one_evaluation(googlenet, image, optimizer):
    seen = []
    with pytest.raises(dc.DreamCancelled, match="cancelled at step 3 of 20"):
        invert(googlenet, image, "conv2", 20, optimizer, progress=lambda done, total, preview: seen.append(done),
               cancel=lambda: len(seen) >= 3)
    assert seen == [1, 2, 3]


def test_optimizer_loop_jitter_is_seeded(googlenet, image):
    run = lambda seed: invert(googlenet, image, "conv2", 4, "adam", jitter=6,
                              generator=torch.Generator().manual_seed(seed))[0]
    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))


def test_unknown_optimizer_is_explained(googlenet, image):
    with pytest.raises(dc.DreamError, match="optimizer: unknown 'sgd'; choose one of adam, lbfgs"):
        invert(googlenet, image, "conv2", 2, "sgd")


def test_precision_auto_is_native_bf16_else_fp16_on_cuda_and_fp32_elsewhere(monkeypatch):
    """A GPU that only emulates bf16 (T4, V100, RTX 20xx: torch says bf16 is supported *including
    emulation*) gets fp16. Catches auto asking is_bf16_supported() with emulation counted, fp16 where
    bf16 is native, or half precision on the CPU."""
    cuda = torch.device("cuda")
    assert dc.autocast_dtype("auto", torch.device("cpu")) is None

    def pre_ampere(including_emulation=True):
        return including_emulation  # emulated only

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", pre_ampere)
    assert dc.autocast_dtype("auto", cuda) == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # Ampere+
    assert dc.autocast_dtype("auto", cuda) == torch.bfloat16
    assert dc.autocast_dtype("fp32", cuda) is None
