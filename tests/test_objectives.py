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
    with pytest.raises(dc.DreamError, match=r"channel: \[7\] is outside this layer's channels 0..3"):
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
