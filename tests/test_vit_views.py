"""How a vision transformer sees a picture: native tiles of exactly its size, every pixel in a patch,
and cutouts (random crops at its size, scored together) for embedding objectives."""

import pytest
import torch

import dream_core as dc
from clip_standin import ClipVision
from dream_core.ascent import image_gradient


@pytest.fixture(scope="module")
def tower_336():
    """ViT-L/14-336's geometry (14 px patches, native 336 px: 24 x 24 patches), tiny otherwise."""
    clip = ClipVision(seed=2, image_size=336, patch=14, width=16, heads=2, hidden=32, blocks=1, projection=8)
    return dc.backbone_from_clip_vision(clip.model, image_size=336)


def pictures(count, size, seed=0):
    return torch.rand(count, 3, *size, generator=torch.Generator().manual_seed(seed))


def seen_sizes(backbone, run):
    """The picture sizes the patch embedding is given while ``run()`` works."""
    seen = []
    hook = backbone.stages[0][1].register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    try:
        run()
    finally:
        hook.remove()
    return seen


def test_a_336_px_tower_is_tiled_at_336_px_not_on_the_32_px_grid(tower_336):
    """The one-line bug: a ViT's tile cores rounded to multiples of 32 (a 336 px tower seen at 320 px)."""
    objective = dc.l2("block0.mlp")
    tower_336.extractor(objective.layers).min_input_size()  # probed before the hook listens
    sizes = seen_sizes(tower_336, lambda: dc.deepdream(pictures(1, (400, 350)), tower_336, objective, steps=1,
                                                       octaves=1, jitter=0))
    assert set(sizes) == {(336, 336)} and len(sizes) == 4


@pytest.mark.parametrize("size", [(350, 345), (50, 47)])
def test_every_pixel_gets_gradient_when_the_picture_is_not_whole_patches(tower_336, size):
    """The patch convolution has no padding: without the reflect padding the rows and columns past the
    last whole patch (350 = 25 * 14, 345 = 24 * 14 + 9) get exactly zero gradient."""
    objective = dc.cosine(dc.EMBEDDING, torch.randn(8, generator=torch.Generator().manual_seed(1)))
    grad, _ = image_gradient(pictures(1, size), tower_336.extractor(objective.layers), objective)
    magnitude = grad.abs().sum(1)[0]
    assert (magnitude.sum(1) > 0).all() and (magnitude.sum(0) > 0).all()


def test_reflect_padding_leaves_whole_patches_alone():
    picture = pictures(1, (28, 42))
    assert dc.transformers.pad_to_patches(picture, 14) is picture
    padded = dc.transformers.pad_to_patches(pictures(1, (30, 40)), 14)
    assert padded.shape[-2:] == (42, 42) and torch.equal(padded[..., 30, :40], padded[..., 28, :40])


def test_cutouts_are_many_different_crops_drawn_again_each_step():
    """The one-line bug: every cutout the same crop (or the same crops every step) scores one view."""
    cutouts, picture = dc.Cutouts(8, 32), pictures(1, (80, 120))
    generator = torch.Generator().manual_seed(0)
    first, second = (cutouts.draw(picture.shape, [generator])(picture) for _ in range(2))
    assert first.shape == (8, 3, 32, 32)
    differences = (first[:, None] - first[None]).abs().flatten(2).mean(2)
    assert differences[~torch.eye(8, dtype=torch.bool)].min() > 1e-3
    assert (first - second).abs().mean() > 1e-3
    again = cutouts.draw(picture.shape, [torch.Generator().manual_seed(0)])(picture)
    assert torch.equal(again, first)  # seeded


def test_an_item_gets_the_same_cutouts_alone_or_in_a_batch():
    cutouts, batch = dc.Cutouts(3, 16), pictures(2, (40, 48))
    together = cutouts.draw(batch.shape, [torch.Generator().manual_seed(s) for s in (5, 6)])(batch)
    alone = cutouts.draw((1, 3, 40, 48), [torch.Generator().manual_seed(6)])(batch[1:])
    assert torch.equal(together[3:], alone)


def test_a_score_through_cutouts_is_the_mean_of_the_crops_scores(tower_336):
    """Each item's score is the mean over its own crops (not the sum, not another item's)."""
    backbone = dc.backbone_from_clip_vision(ClipVision(seed=4).model, image_size=32)
    objective = dc.cosine(dc.EMBEDDING, torch.randn(24, generator=torch.Generator().manual_seed(2)))
    batch = pictures(2, (48, 40))
    draw = lambda: dc.Cutouts(4, 32).draw(batch.shape, [torch.Generator().manual_seed(s) for s in (0, 1)])  # noqa: E731
    _, scores = image_gradient(batch, backbone.extractor(objective.layers), objective, view=draw())
    with torch.no_grad():
        crops = draw()(batch)
        each = objective(backbone.extractor(objective.layers)(crops))
    assert torch.allclose(scores, each.view(2, 4).mean(1), atol=1e-6)


def test_a_dream_through_cutouts_sees_only_crops_of_the_towers_size():
    clip = ClipVision(seed=4)
    backbone = dc.backbone_from_clip_vision(clip.model, image_size=32)
    target = torch.randn(24, generator=torch.Generator().manual_seed(2))
    objective = dc.cosine(dc.EMBEDDING, target).through(dc.Cutouts(6, 32))
    backbone.extractor(objective.layers).min_input_size()
    sizes = seen_sizes(backbone, lambda: dc.deepdream(pictures(1, (90, 70)), backbone, objective, steps=2, octaves=2))
    assert set(sizes) == {(32, 32)}
    sums = [objective + dc.l2("block1"), 2 * objective, objective.at((90, 70))]
    assert all(made.views == objective.views for made in sums)  # composing keeps the cutouts
    with pytest.raises(dc.DreamError, match="different cutouts"):
        objective + dc.cosine(dc.EMBEDDING, target).through(dc.Cutouts(2, 32))


def test_cutouts_settings_are_checked():
    for bad in [dict(count=0, size=32), dict(count=4, size=32, min_fraction=0.0), dict(count=4, size=32, noise=-1)]:
        with pytest.raises(dc.DreamError, match="cutouts:"):
            dc.Cutouts(**bad)


def test_the_optimizer_drivers_score_an_objective_through_its_cutouts_too():
    """Style transfer and feature visualisation run on ``optimize``: a CLIP target connected there is
    scored on its crops as well (the one-line bug: the views ignored outside the ascent loop)."""
    backbone = dc.backbone_from_clip_vision(ClipVision(seed=4).model, image_size=32)
    objective = dc.cosine(dc.EMBEDDING, torch.randn(24, generator=torch.Generator().manual_seed(2)))
    picture = pictures(1, (56, 48)).requires_grad_(True)
    backbone.extractor(objective.layers).min_input_size()
    sizes = seen_sizes(backbone, lambda: dc.optimize([picture], lambda: picture, backbone.extractor(objective.layers),
                                                     objective.through(dc.Cutouts(5, 32)), steps=2, lr=0.01))
    assert set(sizes) == {(32, 32)}


@pytest.mark.parametrize("scale", [1.0, 1 / 4096])
def test_a_gradient_through_cutouts_holds_under_fp16_at_small_scales(scale):
    """The host's GPUs run CLIP in half precision: through cutouts (many crops, one loss-scaled pass) the
    fp16 gradient of a small embedding score keeps its direction and does not underflow to zeros."""
    backbone = dc.backbone_from_clip_vision(ClipVision(seed=4).model, image_size=32)
    objective = scale * dc.cosine(dc.EMBEDDING, torch.randn(24, generator=torch.Generator().manual_seed(2)))
    picture, extractor = pictures(1, (48, 40)), backbone.extractor(objective.layers)
    draw = lambda: dc.Cutouts(6, 32).draw(picture.shape, [torch.Generator().manual_seed(0)])  # noqa: E731
    full, _ = image_gradient(picture, extractor, objective, view=draw())
    with torch.autocast("cpu", dtype=torch.float16):
        half, _ = image_gradient(picture, extractor, objective, autocast=torch.float16, view=draw())
    assert torch.nn.functional.cosine_similarity(full.flatten(), half.float().flatten(), 0) > 0.99
    covered = full != 0  # pixels no crop of this step took have no gradient in either precision
    assert covered.float().mean() > 0.5 and (half[covered] == 0).float().mean() < 0.01
