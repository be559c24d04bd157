import pytest
import torch

import dream_core as dc
from dream_core.ascent import ascent_step


def fake_acts():
    generator = torch.Generator().manual_seed(0)
    return {"a": torch.randn(2, 4, 6, 6, generator=generator), "b": torch.randn(2, 3, 5, 5, generator=generator)}


def test_l2_is_half_mean_square_per_item():
    acts = fake_acts()
    assert torch.allclose(dc.l2("a")(acts), 0.5 * acts["a"].pow(2).mean((1, 2, 3)))
    assert dc.l2("a")(acts).shape == (2,)


def test_l2_gradient_is_the_activation_over_its_size():
    # The classic act.backward(act): d(0.5 * sum a^2)/da = a; the mean divides by the element count.
    act = torch.randn(1, 4, 6, 6, requires_grad=True)
    dc.l2("a")({"a": act}).sum().backward()
    assert torch.allclose(act.grad, act.detach() / act[0].numel())


def test_mean_channel_and_crop():
    acts = fake_acts()
    assert torch.allclose(dc.mean_activation("a")(acts), acts["a"].mean((1, 2, 3)))
    assert torch.allclose(dc.channel("a", 2)(acts), acts["a"][:, 2].mean((1, 2)))
    assert torch.allclose(dc.l2("a", [0, 3])(acts), 0.5 * acts["a"][:, [0, 3]].pow(2).mean((1, 2, 3)))
    assert torch.allclose(dc.l2("a", crop=2)(acts), 0.5 * acts["a"][..., 2:-2, 2:-2].pow(2).mean((1, 2, 3)))


def test_algebra_composes_values_layers_and_descriptions():
    acts = fake_acts()
    a, b = dc.l2("a"), dc.mean_activation("b")
    combined = 2 * a - b / 4 + 1
    assert combined.layers == {"a", "b"}
    assert torch.allclose(combined(acts), 2 * a(acts) - b(acts) / 4 + 1)
    assert torch.allclose(sum([a, b])(acts), a(acts) + b(acts))
    assert torch.allclose((-a)(acts), -a(acts))
    assert torch.allclose((1 - a)(acts), 1 - a(acts))
    assert "l2(a)" in repr(combined) and "mean_activation(b)" in repr(combined)
    assert dc.channel("a", 3).description == "channel(a, 3)"


def test_only_scalars_scale_an_objective():
    with pytest.raises(TypeError):
        dc.l2("a") * dc.l2("b")
    with pytest.raises(TypeError):
        dc.l2("a") * "2"


def test_layer_objective_by_name_and_weight():
    acts = fake_acts()
    assert torch.allclose(dc.layer_objective("a", -0.5, "mean")(acts), -0.5 * acts["a"].mean((1, 2, 3)))
    with pytest.raises(dc.DreamError, match="unknown loss 'l1'; choose one of l2, mean"):
        dc.layer_objective("a", loss="l1")


def test_bad_channel_and_crop_are_explained():
    with pytest.raises(dc.DreamError, match=r"channel: \[7\] is outside the channels of a, 0..3"):
        dc.channel("a", 7)(fake_acts())
    with pytest.raises(dc.DreamError, match="crop: cropping 3 from each border leaves nothing"):
        dc.l2("a", crop=3)(fake_acts())


@pytest.mark.parametrize("make", [
    lambda: dc.l2("inception3b"),
    lambda: dc.mean_activation("inception3b"),
    lambda: dc.channel("inception3b", 5),
    lambda: dc.l2("inception3a", crop=1) + 0.5 * dc.l2("inception3b", [1, 2]),
])
def test_every_objective_rises_under_ascent(googlenet, image, make):
    objective = make()
    extractor = googlenet.extractor(objective.layers)
    current = image
    for _ in range(5):
        current, _ = ascent_step(current, extractor, objective, step_size=0.02)
    assert objective(extractor(current)).item() > objective(extractor(image)).item()


# Objectives on the image itself ("input").

def test_total_variation_kinds_by_hand():
    # One channel, a 2x3 image: dy, dx over the top-left 1x2 block.
    image = torch.tensor([[0.0, 0.2, 0.6], [0.5, 0.2, 0.6]]).expand(1, 3, 2, 3)
    dy, dx = torch.tensor([0.5, 0.0]), torch.tensor([0.2, 0.4])
    acts = {dc.INPUT: image}
    assert torch.allclose(dc.total_variation("l2")(acts), (dy**2 + dx**2).mean().expand(1))
    assert torch.allclose(dc.total_variation("l1")(acts), (dy.abs() + dx.abs()).mean().expand(1))
    assert torch.allclose(dc.total_variation("keras")(acts), ((dy**2 + dx**2) ** 1.25).mean().expand(1))
    with pytest.raises(dc.DreamError, match="unknown kind 'tv3'; choose one of l2, l1, keras"):
        dc.total_variation("tv3")


def test_pixel_l2_measures_the_distance_from_mid_grey():
    image = torch.stack([torch.full((3, 4, 4), 0.5), torch.full((3, 4, 4), 0.9)])
    assert torch.allclose(dc.pixel_l2()({dc.INPUT: image}), torch.tensor([0.0, 0.16]))


def test_an_image_only_objective_runs_no_network_and_smooths_under_ascent(googlenet, image):
    objective = -dc.total_variation() - 0.1 * dc.pixel_l2()
    extractor = googlenet.extractor(objective.layers)
    assert len(extractor.stages) == 0 and set(extractor(image)) == {dc.INPUT}
    noisy = (image + 0.2 * torch.randn(image.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    current = noisy
    for _ in range(10):
        current, _ = ascent_step(current, extractor, objective, step_size=0.01)
    tv = dc.total_variation()
    assert tv({dc.INPUT: current}) < 0.7 * tv({dc.INPUT: noisy})  # a flipped sign would roughen it


def test_image_and_layer_objectives_compose_and_the_extractor_returns_both(googlenet, image):
    objective = dc.l2("conv2") - 0.5 * dc.total_variation("l1")
    acts = googlenet.extractor(objective.layers)(image)
    assert set(acts) == {"conv2", dc.INPUT} and acts[dc.INPUT] is image
    expected = dc.l2("conv2")(acts) - 0.5 * dc.total_variation("l1")(acts)
    assert torch.allclose(objective(acts), expected)


# The guide (controlled dream) and the Gram style.

def test_guide_pulls_each_feature_towards_its_best_matching_guide_feature():
    generator = torch.Generator().manual_seed(0)
    guide_act = torch.randn(1, 6, 3, 4, generator=generator)
    features = torch.randn(2, 6, 5, 5, generator=generator, requires_grad=True)
    dc.guide("a", guide_act)({"a": features}).sum().backward()
    g = guide_act.flatten(2)[0]  # (C, M)
    x = features.detach().flatten(2)  # (B, C, N)
    best = torch.einsum("bcn,cm->bnm", x, g).argmax(-1)  # the argmax by brute force
    expected = g[:, best].movedim(1, 0) / (6 * 25)  # d mean(x . g_best) / dx
    assert torch.allclose(features.grad.flatten(2), expected, atol=1e-7)
    worst = torch.einsum("bcn,cm->bnm", x, g).argmin(-1)
    assert not torch.allclose(features.grad.flatten(2), g[:, worst].movedim(1, 0) / (6 * 25))


def _closeness(features, guide_features):
    """Mean over image positions of the best cosine similarity to any guide position, both centred
    on the guide's mean feature (a random net's features are all positive, so raw cosines are all high)."""
    mean = guide_features.mean((2, 3), keepdim=True)
    x = torch.nn.functional.normalize((features - mean).flatten(2)[0], dim=0)
    g = torch.nn.functional.normalize((guide_features - mean).flatten(2)[0], dim=0)
    return (x.T @ g).max(1).values.mean().item()


def stripes(height, width, period=8, vertical=False):
    axis = torch.arange(width if vertical else height, dtype=torch.float32)
    wave = 0.5 + 0.4 * torch.sin(2 * torch.pi * axis / period)
    picture = wave.view(1, -1).expand(height, width) if vertical else wave.view(-1, 1).expand(height, width)
    return torch.stack([picture, 1 - picture, picture * 0.5]).unsqueeze(0).contiguous()


def test_a_guided_dream_moves_the_features_towards_its_guide(googlenet, image):
    # Seen: guided 0.542 / 0.534 against unguided 0.520 / 0.475 and the other guide's 0.532 / 0.487.
    layer = "inception3a"
    extractor = googlenet.extractor([layer])
    guides = {"vertical": stripes(64, 64, period=6, vertical=True), "horizontal": stripes(64, 64, period=10)}
    settings = dict(steps=20, octaves=1, jitter=0, step_size=0.02)
    dreams = {name: dc.deepdream(image, googlenet, dc.guided_objective(googlenet, guide, [dc.LayerTerm(layer)]),
                                 **settings) for name, guide in guides.items()}
    unguided = dc.deepdream(image, googlenet, dc.l2(layer), **settings)
    for name, guide in guides.items():
        with torch.no_grad():
            closeness = lambda picture, guide=guide: _closeness(extractor(picture)[layer], extractor(guide)[layer])
            other = next(dream for other_name, dream in dreams.items() if other_name != name)
            assert closeness(dreams[name]) > closeness(unguided) + 0.01, name
            assert closeness(dreams[name]) > closeness(other) + 0.005, name
            assert closeness(dreams[name]) > closeness(image) + 0.05, name


def test_gram_of_one_texture_agrees_at_two_sizes_and_differs_between_textures(googlenet):
    extractor = googlenet.extractor(["inception3a"])
    gram = lambda picture: dc.gram_matrix(extractor(picture)["inception3a"])
    small, large = gram(stripes(128, 128)), gram(stripes(256, 256))
    other = gram(stripes(128, 128, period=5, vertical=True))
    relative = lambda a, b: ((a - b).norm() / b.norm()).item()
    assert relative(large, small) < 0.1  # dividing by C only (not H*W) would make them 4x apart
    assert relative(other, small) > 3 * relative(large, small)


def test_ascending_the_style_score_brings_the_gram_towards_the_style(googlenet, image):
    layer = "inception3a"
    style = dc.style_objective(googlenet, stripes(96, 96, period=6), [dc.LayerTerm(layer)])
    extractor = googlenet.extractor([layer])
    target = dc.gram_matrix(extractor(stripes(96, 96, period=6))[layer])
    distance = lambda picture: (dc.gram_matrix(extractor(picture)[layer]) - target).norm().item()
    styled = dc.deepdream(image, googlenet, style, steps=10, octaves=1, jitter=4, step_size=0.02)
    assert distance(styled) < 0.8 * distance(image)  # a flipped sign would push it away
    assert style(extractor(styled)).item() > style(extractor(image)).item()


def test_style_weight_and_layer_weights_scale_the_objective(googlenet, image):
    terms = [dc.LayerTerm("conv2"), dc.LayerTerm("inception3a", 3.0)]
    style_image = stripes(64, 64)
    acts = googlenet.extractor(["conv2", "inception3a"])(image)
    one = dc.style_objective(googlenet, style_image, terms, weight=1.0)(acts)
    assert torch.allclose(dc.style_objective(googlenet, style_image, terms, weight=2.5)(acts), 2.5 * one)
    alone = dc.style_objective(googlenet, style_image, terms[:1])(acts)
    third = dc.style_objective(googlenet, style_image, [dc.LayerTerm("inception3a")])(acts)
    assert torch.allclose(one, (alone + 3.0 * third) / 2)


def test_ranked_channels_pick_the_strongest_or_weakest_once_or_every_step():
    """Catches argmax for argmin, a choice that drifts when it should stay, and one that never moves."""
    means = torch.tensor([0.1, 0.9, 0.5, 0.3]).view(1, 4, 1, 1)
    acts = {"a": means.expand(1, 4, 3, 3).clone()}
    strongest = dc.ranked_channels("a", 2, "strongest", loss="mean")
    weakest = dc.ranked_channels("a", 2, "weakest", loss="mean")
    assert strongest(acts).item() == pytest.approx((0.9 + 0.5) / 2)
    assert weakest(acts).item() == pytest.approx((0.1 + 0.3) / 2)
    moved = {"a": acts["a"].roll(1, dims=1)}  # means now 0.3, 0.1, 0.9, 0.5: channels 2 and 3 are the strongest
    assert strongest(moved).item() == pytest.approx((0.1 + 0.9) / 2)  # chosen once: channels 1 and 2 kept
    every = dc.ranked_channels("a", 2, "strongest", "every_step", loss="mean")
    every(acts)
    assert every(moved).item() == pytest.approx((0.9 + 0.5) / 2)
    first = strongest.at((8, 8), 0)
    assert strongest.at((16, 16), 0) is first and strongest.at((8, 8), 1) is not first  # once per image


def test_a_dream_on_the_strongest_channels_raises_them(googlenet, image):
    objective = dc.ranked_channels("inception3a", 8, "strongest")
    extractor = googlenet.extractor(["inception3a"])
    before = extractor(image)["inception3a"].mean((2, 3))[0]
    chosen = before.topk(8).indices
    dream = dc.deepdream(image, googlenet, objective, steps=5, octaves=1)
    gain = extractor(dream)["inception3a"].mean((2, 3))[0] - before
    others = torch.ones(before.shape[0], dtype=torch.bool)
    others[chosen] = False
    assert gain[chosen].mean() > 2 * gain[others].mean()
