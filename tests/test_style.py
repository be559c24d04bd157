"""Style transfer: the content, style and TV terms, and ``stylize``, on random-init VGG19 at small sizes.

Each test names the one-line bug it exists to catch.
"""

import math

import pytest
import torch

import dream_core as dc
import dream_core.style.transfer as style_module
from conftest import ROOT, random_backbone

SIZE = (48, 64)


@pytest.fixture(scope="module")
def vgg():
    return random_backbone("vgg19")


def stripes(size=SIZE, period=8, vertical=False, colours=((0.9, 0.2, 0.1), (0.1, 0.3, 0.9))):
    """Two-colour stripes :math:`(1, 3, H, W)`: a style with a clear texture."""
    height, width = size
    position = torch.arange(width if vertical else height)
    band = ((position // (period // 2)) % 2).float()
    band = band.view(1, 1, 1, width) if vertical else band.view(1, 1, height, 1)
    first, second = (torch.tensor(c).view(1, 3, 1, 1) for c in colours)
    return (first * (1 - band) + second * band).expand(1, 3, height, width).contiguous()


def content_picture(size=SIZE):
    generator = torch.Generator().manual_seed(3)
    coarse = torch.rand(1, 3, 6, 8, generator=generator)
    return dc.resize(coarse, size).clamp(0, 1)


def style_of(vgg, picture, **options):
    return dc.style_objective(vgg, picture, [dc.LayerTerm(layer) for layer in dc.gatys_layers(vgg)[1]], **options)


def style_loss(vgg, style_picture, picture):
    """Gatys' style loss of ``picture``, computed here without the objective under test: the mean over
    the style layers of the relative squared Gram distance to ``style_picture``."""
    layers = dc.gatys_layers(vgg)[1]
    extractor = vgg.extractor(layers)
    mine, theirs = extractor(picture), extractor(style_picture)
    distance = lambda a, b: ((a - b).square().sum() / b.square().sum()).item()
    return sum(distance(dc.gram_matrix(mine[n]), dc.gram_matrix(theirs[n])) for n in layers) / len(layers)


# --- the terms --------------------------------------------------------------------------------------


def test_each_new_term_passes_gradcheck():
    """Catches a wrong hand-written formula or backward (the Gram's one-matmul backward without its
    ``+ G^T``, a detach)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 4, 5, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    other = torch.rand(1, 4, 5, 6, generator=generator, dtype=torch.float64)
    mask = torch.rand(1, 1, 5, 6, generator=generator, dtype=torch.float64)
    terms = {
        "content": dc.content("a", other),
        "gram": dc.style_match("a", dc.style_statistic(other, "gram"), "gram"),
        "gram_masked": dc.style_match("a", dc.style_statistic(other, "gram"), "gram", mask),
        "mean_cov": dc.style_match("a", dc.style_statistic(other, "mean_cov"), "mean_cov"),
        "mean_cov_masked": dc.style_match("a", dc.style_statistic(other, "mean_cov"), "mean_cov", mask),
    }
    for name, term in terms.items():
        assert torch.autograd.gradcheck(lambda t: term({"a": t}), (x,)), name
    assert torch.autograd.gradcheck(lambda t: dc.gram_matrix(t).square().sum() + dc.mean_covariance(t)[1].sum(), (x,))
    image = torch.rand(2, 3, 6, 7, generator=generator, dtype=torch.float64, requires_grad=True)
    for kind in dc.TV_KINDS:
        assert torch.autograd.gradcheck(lambda t: dc.total_variation(kind)({"input": t}), (image,)), kind


def test_content_is_zero_on_its_target_and_grows_with_the_difference():
    """Catches a content score with the wrong sign (it must be highest, 0, at the target)."""
    target = torch.rand(1, 8, 4, 4)
    score = dc.content("a", target)
    assert score({"a": target}).item() == 0
    near, far = score({"a": target + 0.1}).item(), score({"a": target + 0.5}).item()
    assert far < near < 0


def test_total_variation_is_zero_on_a_flat_image_and_large_on_noise():
    flat, noise = torch.full((1, 3, 16, 16), 0.3), torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for kind in dc.TV_KINDS:
        tv = dc.total_variation(kind)
        assert tv({"input": flat}).item() == 0
        assert tv({"input": noise}).item() > 0.05, kind


def test_masked_gram_is_the_gram_of_the_masked_positions():
    """Catches a mask that is ignored, or a mean over all positions instead of the masked ones."""
    activation = torch.rand(1, 5, 6, 8)
    left = torch.zeros(1, 1, 6, 8)
    left[..., :4] = 1
    assert torch.allclose(dc.gram_matrix(activation, torch.ones(1, 1, 6, 8)), dc.gram_matrix(activation), atol=1e-6)
    assert torch.allclose(dc.gram_matrix(activation, left), dc.gram_matrix(activation[..., :4]), atol=1e-6)
    mean, cov = dc.mean_covariance(activation, left)
    features = activation[..., :4].flatten(2)[0]
    assert torch.allclose(mean[0], features.mean(1), atol=1e-6)
    assert torch.allclose(cov[0], torch.cov(features, correction=0), atol=1e-6)


def test_mean_cov_distance_is_the_wasserstein_distance_of_diagonal_gaussians():
    """For diagonal covariances W2^2 = |m1 - m2|^2 + sum (sqrt(a) - sqrt(b))^2: catches a lost factor 2
    in the cross term, or a covariance left uncentred."""
    generator = torch.Generator().manual_seed(1)
    channels, positions = 3, 4096
    scales_a, scales_b = torch.tensor([0.5, 1.0, 2.0]), torch.tensor([1.5, 0.3, 1.0])
    means_a, means_b = torch.tensor([1.0, -1.0, 0.0]), torch.tensor([0.0, 0.5, 2.0])

    def gaussian(means, scales):
        z = torch.randn(channels, positions, generator=generator, dtype=torch.float64)
        z = (z - z.mean(1, keepdim=True)) / z.std(1, correction=0, keepdim=True)
        z = torch.linalg.qr(z.T)[0].T * math.sqrt(positions)  # exactly uncorrelated, unit variance
        return (means.double().view(-1, 1) + scales.double().view(-1, 1) * z).view(1, channels, 64, 64)

    a, b = gaussian(means_a, scales_a), gaussian(means_b, scales_b)
    target = dc.style_statistic(b, "mean_cov")
    score = dc.style_match("x", target, "mean_cov")({"x": a}).item()
    expected = ((means_a - means_b) ** 2).sum() + ((scales_a - scales_b) ** 2).sum()
    normaliser = (means_b**2).sum() + (scales_b**2).sum()
    assert score == pytest.approx(-(expected / normaliser).item(), rel=1e-4)
    assert dc.style_match("x", target, "mean_cov")({"x": b}).item() == pytest.approx(0, abs=1e-6)


def test_unknown_statistic_init_and_optimizer_are_named(vgg):
    with pytest.raises(dc.DreamError, match="statistic"):
        style_of(vgg, stripes(), statistic="moments")
    style = style_of(vgg, stripes())
    with pytest.raises(dc.DreamError, match="init"):
        dc.stylize(content_picture(), vgg, style, init="blank", steps=1)
    with pytest.raises(dc.DreamError, match="optimizer"):
        dc.stylize(content_picture(), vgg, style, optimizer="sgd", steps=1)
    with pytest.raises(dc.DreamError, match="tv_weight"):
        dc.stylize(content_picture(), vgg, style, tv_weight=-1, steps=1)


# --- reference objectives ---------------------------------------------------------------------------


def test_style_scale_sees_the_style_at_a_multiple_of_the_image_size(vgg):
    """Catches a style_scale that is ignored or applied to the wrong side."""
    picture = stripes((64, 64), period=8)
    at_own_size = style_of(vgg, picture)
    scaled = style_of(vgg, picture, scale=1.0)
    halved = style_of(vgg, dc.resize(picture, (32, 32)))
    image = content_picture((64, 64))
    acts = vgg.extractor(at_own_size.layers)(image)
    assert torch.allclose(scaled.at((64, 64))(acts), at_own_size(acts))
    assert torch.allclose(style_of(vgg, picture, scale=0.5).at((64, 64))(acts), halved(acts))
    assert not torch.allclose(scaled.at((64, 64))(acts), halved(acts))


def test_sums_of_reference_objectives_pass_at_on_to_their_parts(vgg):
    """Catches a sum or multiple that forgets its parts' ``at`` (the sized part would be seen as given)."""
    picture = stripes((64, 64))
    sized = style_of(vgg, picture, scale=0.5)
    combined = -0.1 * dc.total_variation() + 2.0 * sized + 1.0  # the sized part on the right of the sum
    image = content_picture((64, 64))
    acts = vgg.extractor(combined.layers)(image)
    expected = 2.0 * sized.at((64, 64))(acts) - 0.1 * dc.total_variation()(acts) + 1.0
    assert torch.allclose(combined.at((64, 64))(acts), expected)
    assert not torch.allclose(combined(acts), expected)  # unsized, the style is seen at its own 64 px


def test_content_objective_takes_each_items_content(vgg):
    """Catches item ``i`` matched against item 0's content."""
    contents = torch.cat([content_picture(), stripes()])
    objective = dc.content_objective(vgg, contents, "relu4_2")
    extractor = vgg.extractor(objective.layers)
    for index in range(2):
        own = objective.at(SIZE, index)(extractor(contents[index:index + 1])).item()
        other = objective.at(SIZE, index)(extractor(contents[1 - index:2 - index])).item()
        assert own == 0 and other < 0
    with pytest.raises(dc.DreamError, match="content_image: has 2 items"):
        objective.at(SIZE, 2)


# --- stylize ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_style_loss_falls_by_ninety_percent(vgg, optimizer):
    """Catches a style objective that is raised the wrong way (a flipped sign) or not optimised at all."""
    content = content_picture()
    style_picture = dc.resize(dc.load_image(ROOT / "assets" / "guide.jpg"), SIZE)
    before = style_loss(vgg, style_picture, content)
    result = dc.stylize(content, vgg, style_of(vgg, style_picture), steps=40, optimizer=optimizer,
                        learning_rate=0.03, content_weight=0.01, tv_weight=0.0)
    assert result.shape == content.shape
    assert style_loss(vgg, style_picture, result) < 0.1 * before


def test_content_init_starts_at_zero_content_loss_and_zero_steps_return_the_content(vgg):
    """Catches an init that is not the content (e.g. noise by default) or a content target off by a resize."""
    content = content_picture()
    objective = dc.content_objective(vgg, content, "relu4_2")
    assert objective.at(SIZE, 0)(vgg.extractor(["relu4_2"])(content)).item() == 0
    assert torch.equal(dc.stylize(content, vgg, style_of(vgg, stripes()), steps=0), content)


def test_content_weight_keeps_the_content(vgg):
    """Catches an ignored content weight: a stronger content term ends nearer the content."""
    content = content_picture()
    style = style_of(vgg, stripes())
    loose = dc.stylize(content, vgg, style, steps=15, content_weight=0.0, tv_weight=0.0)
    tight = dc.stylize(content, vgg, style, steps=15, content_weight=50.0, tv_weight=0.0)
    assert (tight - content).abs().mean() < 0.5 * (loose - content).abs().mean()


def test_original_colors_keep_the_contents_chroma(vgg):
    """Catches chroma taken from the result (or luminance from the content): in YCbCr the result's
    Cb, Cr equal the content's (to the clamping of out-of-gamut pixels), its Y the stylised one's."""
    from kornia.color import rgb_to_ycbcr

    content = content_picture()
    style = style_of(vgg, stripes())
    plain = dc.stylize(content, vgg, style, steps=10, content_weight=0.01)
    kept = dc.stylize(content, vgg, style, steps=10, content_weight=0.01, original_colors=True)
    chroma = lambda picture: rgb_to_ycbcr(picture)[:, 1:]
    assert (chroma(kept) - chroma(content)).abs().mean() < 0.01
    assert (chroma(plain) - chroma(content)).abs().mean() > 0.03
    assert (rgb_to_ycbcr(kept)[:, 0] - rgb_to_ycbcr(plain)[:, 0]).abs().mean() < 0.02


def test_blend_weights_one_to_zero_give_the_single_style(vgg):
    """Catches blend weights that are ignored (a 0-weight style would still pull)."""
    content = content_picture()
    first, second = stripes(), stripes(vertical=True, colours=((0.1, 0.8, 0.2), (0.9, 0.9, 0.1)))
    alone = dc.stylize(content, vgg, style_of(vgg, first), steps=8)
    blend = dc.stylize(content, vgg, style_of(vgg, first, weight=1.0) + style_of(vgg, second, weight=0.0), steps=8)
    mixed = dc.stylize(content, vgg, style_of(vgg, first, weight=0.5) + style_of(vgg, second, weight=0.5), steps=8)
    assert torch.allclose(blend, alone, atol=1e-5)
    assert (mixed - alone).abs().mean() > 1e-3


def test_regional_styles_change_statistics_only_inside_their_masks(vgg):
    """Two styles, one per half: each half ends nearer its own style than the other's. Catches a
    mask that is ignored (both styles everywhere) or applied to the wrong style."""
    content = torch.full((1, 3, 64, 64), 0.5) + 0.05 * torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    left = torch.zeros(1, 1, 64, 64)
    left[..., :32] = 1
    red = stripes((64, 64), colours=((0.9, 0.1, 0.1), (0.5, 0.0, 0.0)))
    blue = stripes((64, 64), vertical=True, colours=((0.1, 0.2, 0.9), (0.9, 0.9, 1.0)))
    style = style_of(vgg, red, mask=left) + style_of(vgg, blue, mask=1 - left)
    result = dc.stylize(content, vgg, style, steps=40, content_weight=0.0, tv_weight=0.0)
    layer = "relu2_1"
    extractor = vgg.extractor([layer])
    gram = lambda picture: dc.gram_matrix(extractor(picture)[layer])
    distance = lambda picture, target: ((gram(picture) - gram(target)).square().sum() / gram(target).square().sum()).item()
    halves = {"left": result[..., :32], "right": result[..., 32:]}
    styles = {"red": red[..., :32], "blue": blue[..., :32]}
    assert distance(halves["left"], styles["red"]) < 0.5 * distance(halves["left"], styles["blue"])
    assert distance(halves["right"], styles["blue"]) < 0.5 * distance(halves["right"], styles["red"])
    assert result[0, 0, :, :32].mean() > result[0, 2, :, :32].mean()  # the red half is red
    assert result[0, 2, :, 32:].mean() > result[0, 0, :, 32:].mean()


def test_transfer_mask_keeps_the_content_outside(vgg):
    """Catches a mask that only weights the loss: outside it the content must stay exactly."""
    content = content_picture()
    mask = torch.zeros(SIZE)
    mask[:, 32:] = 1
    result = dc.stylize(content, vgg, style_of(vgg, stripes()), steps=5, mask=mask)
    assert torch.allclose(result[..., :28], content[..., :28], atol=1e-6)
    assert (result[..., 36:] - content[..., 36:]).abs().mean() > 1e-3


def test_each_scale_starts_from_the_previous_result(vgg, monkeypatch):
    """Catches scales that restart from the content (the coarse work thrown away) or end at the wrong size."""
    calls = []
    real = style_module.optimize

    def spy(parameters, render, *args, **kwargs):
        start = parameters[0].detach().clone()
        result = real(parameters, render, *args, **kwargs)
        calls.append((start, result))
        return result

    monkeypatch.setattr(style_module, "optimize", spy)
    content = content_picture((64, 96))
    result = dc.stylize(content, vgg, style_of(vgg, stripes()), steps=3, scales=3, content_weight=0.1)
    sizes = [tuple(start.shape[-2:]) for start, _ in calls]
    assert sizes == dc.scale_sizes((64, 96), 3) == [(32, 48), (45, 68), (64, 96)]
    assert torch.equal(calls[0][0], dc.resize(content, (32, 48)))
    for (_, previous), (start, _) in zip(calls, calls[1:]):
        assert torch.equal(start, dc.resize(previous, tuple(start.shape[-2:])))
    assert result.shape == content.shape and torch.equal(result, calls[-1][1])


def test_automatic_scales_start_near_128_px():
    sizes = dc.scale_sizes((512, 768), 0)
    assert sizes[-1] == (512, 768) and 128 <= max(sizes[0]) < 128 * math.sqrt(2)
    assert all(b[1] / a[1] == pytest.approx(math.sqrt(2), rel=0.02) for a, b in zip(sizes, sizes[1:]))


def test_noise_init_is_seeded_per_item(vgg):
    """Catches one noise for the whole batch, or noise that ignores the seed."""
    content = torch.cat([content_picture()] * 2)
    style = style_of(vgg, stripes())
    run = lambda seed: dc.stylize(content, vgg, style, steps=0, init="noise", seed=seed)
    first = run(0)
    assert not torch.equal(first[0], first[1])
    assert torch.equal(run(0), first) and not torch.equal(run(1)[0], first[0])
    assert torch.equal(run(1)[0], first[1])  # item 1 of seed 0 is item 0 of seed 1


def test_init_image_is_the_start(vgg):
    start = stripes()
    assert torch.equal(dc.stylize(content_picture(), vgg, style_of(vgg, stripes()), steps=0, init=start), start)


def test_batch_items_transfer_as_they_would_alone(vgg):
    """Catches items optimised jointly (L-BFGS line searches coupling the batch)."""
    contents = torch.cat([content_picture(), stripes(vertical=True)])
    style = style_of(vgg, stripes())
    both = dc.stylize(contents, vgg, style, steps=6)
    second = dc.stylize(contents[1:], vgg, style, steps=6)
    assert torch.allclose(both[1:], second, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_cancel_stops_within_one_iteration_and_progress_counts_every_one(vgg, optimizer):
    """Catches cancel asked only between scales or L-BFGS runs (a long wait after pressing Cancel)."""
    asked, reports = [], []

    def cancel():
        asked.append(1)
        return len(asked) > 4

    with pytest.raises(dc.DreamCancelled):
        dc.stylize(content_picture(), vgg, style_of(vgg, stripes()), steps=20, optimizer=optimizer, scales=2,
                   cancel=cancel, progress=lambda done, total, preview: reports.append((done, total)))
    assert len(asked) == 5 and len(reports) == 4
    assert reports[-1] == (4, 2 * 20)


def test_ema_renders_the_bias_corrected_average_of_the_iterates():
    """Catches an average without bias correction (pulled towards 0) or one that is never applied."""
    target = torch.full((1, 3, 4, 4), 0.8)
    objective = dc.Objective(lambda acts: -(acts["input"] - target).square().sum((1, 2, 3)), ["input"], "match")
    extractor = dc.FeatureExtractor([], ["input"], (0, 0, 0), (1, 1, 1))
    sgd = lambda params: torch.optim.SGD(params, lr=0.1)
    pixels = torch.zeros(1, 3, 4, 4)
    averaged = dc.optimize([pixels], lambda: pixels, extractor, objective, steps=3, optimizer=sgd, ema=0.5)
    iterates, x = [], torch.zeros(())
    for _ in range(3):
        x = x - 0.1 * 2 * (x - 0.8)
        iterates.append(x)
    expected = (0.25 * 0.5 * iterates[0] + 0.5 * 0.5 * iterates[1] + 0.5 * iterates[2]) / (1 - 0.5**3)
    assert torch.allclose(averaged, torch.full_like(averaged, expected.item()))


# --- average pooling ---------------------------------------------------------------------------------


def test_average_pooling_replaces_every_max_pool_with_a_rescaled_average():
    """Catches average pooling without its rescale (the deep layers would see half the magnitude
    per pooling) and max poolings left in place."""
    averaged = dc.load_backbone("vgg19", "random", pooling="avg")
    assert not [m for m in averaged.model.modules() if isinstance(m, torch.nn.MaxPool2d)]
    pools = [m for m in averaged.model.modules() if isinstance(m, torch.nn.AvgPool2d)]
    assert len(pools) == 5
    x = torch.rand(1, 4, 8, 8)
    assert torch.allclose(pools[0](x), 2 * torch.nn.functional.avg_pool2d(x, 2))
    picture = content_picture((64, 64))
    with torch.no_grad():  # the same weights: only the poolings differ
        before_pool = averaged.extractor(["relu1_2"])(picture)["relu1_2"]
        after_pool = averaged.extractor(["pool1"])(picture)["pool1"]
    assert torch.allclose(after_pool, 2 * torch.nn.functional.avg_pool2d(before_pool, 2), atol=1e-6)
    assert "avg pooling" in repr(averaged)
    with pytest.raises(dc.DreamError, match="no max pooling"):
        dc.load_backbone("mobilenet_v2", "random", pooling="avg")
    with pytest.raises(dc.DreamError, match="pooling"):
        dc.load_backbone("vgg19", "random", pooling="min")
