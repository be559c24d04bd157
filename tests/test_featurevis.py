"""Feature visualisation vocabulary from lucid: directions, negative objectives, diversity, lucid's scale."""

import math

import pytest
import torch

import dream_core as dc
from conftest import random_backbone

LAYER = "relu3"
SETTINGS = dict(size=(64, 64), steps=24, learning_rate=0.2)


def score(backbone, objective, pictures):
    with torch.no_grad():
        return objective(backbone.extractor(objective.layers)(pictures))


def test_the_fourier_picture_is_the_inverse_fft_over_lucids_four():
    """Forgetting lucid's /4 makes every learning rate 4x what it is in lucid: a spectrum of 1 at
    frequency 0 (scaled by the longer side, 16) must give sigmoid(16 / (4 * 16)) everywhere."""
    image = dc.FourierImage((1, 16, 16), decorrelate=False)
    image.spectrum.zero_()[..., 0, 0, 0] = 1.0
    assert torch.allclose(image.render(), torch.full((1, 3, 16, 16), torch.sigmoid(torch.tensor(0.25)).item()))


def test_a_direction_and_a_negative_objective_move_the_picture_their_way():
    net = random_backbone("alexnet")
    vector = torch.zeros(net.channels(LAYER))
    vector[5], vector[9] = 1.0, -1.0  # more of unit 5 and less of unit 9 (ReLU features are never negative)
    along = dc.direction(LAYER, vector)
    towards = score(net, along, dc.feature_visualize(net, along, **SETTINGS)).item()
    away = score(net, along, dc.feature_visualize(net, -along, **SETTINGS)).item()
    assert towards > 0.02 and away < -0.02  # measured: 0.051 and -0.035
    unit = dc.channel(LAYER, 5)
    assert score(net, unit, dc.feature_visualize(net, unit, **SETTINGS)).item() > \
        score(net, unit, dc.feature_visualize(net, -unit, **SETTINGS)).item() + 1.0  # measured 7.2 and 0.14


def test_direction_is_the_mean_cosine_over_positions_and_checks_its_width():
    activation = torch.zeros(2, 3, 2, 2)
    activation[0, 0], activation[1, 0] = 2.0, -2.0
    assert dc.direction("x", torch.tensor([1.0, 0, 0]))({"x": activation}).tolist() == [1.0, -1.0]
    with pytest.raises(dc.DreamError, match="the vector has 2 values, x has 3 channels"):
        dc.direction("x", torch.ones(2))({"x": activation})


def gram_similarity(net, pictures):
    """The mean cosine between the items' Gram matrices at LAYER (1 = the same style)."""
    features = score(net, dc.Objective(lambda acts: acts[LAYER], [LAYER], "features"), pictures).flatten(2)
    grams = torch.nn.functional.normalize((features @ features.transpose(1, 2)).flatten(1), dim=1)
    similarity = grams @ grams.T
    count = similarity.shape[0]
    return ((similarity.sum() - similarity.diagonal().sum()) / (count * (count - 1))).item()


def test_diversity_pushes_the_batch_apart():
    """With diversity the batch is optimised together and its items' Gram matrices drift apart; the
    term's scores add up to lucid's value, and an item alone scores 0."""
    net = random_backbone("alexnet")
    unit = dc.channel(LAYER, 5)
    plain = dc.feature_visualize(net, unit, batch=3, **SETTINGS)
    diverse = dc.feature_visualize(net, unit, batch=3, diversity=200.0, **SETTINGS)
    assert gram_similarity(net, diverse) < gram_similarity(net, plain) - 0.01
    grams = torch.randn(3, 4, 5)
    acts = {"x": grams.unsqueeze(-1)}
    normalised = torch.nn.functional.normalize((grams @ grams.transpose(1, 2)).flatten(1), dim=1)
    lucid = -sum((normalised[i] * normalised[j]).sum() for i in range(3) for j in range(3) if i != j) / 3
    assert math.isclose(dc.diversity("x")(acts).sum().item(), lucid.item(), rel_tol=1e-5)
    assert dc.diversity("x")({"x": acts["x"][:1]}).item() == 0.0


# --- MaCo ---------------------------------------------------------------------------------------------------


def _full_spectrum(half: torch.Tensor, width: int) -> torch.Tensor:
    """The whole 2-D spectrum a real picture's half spectrum stands for: column c > W/2 is the conjugate of
    column W - c at the mirrored row."""
    rest = torch.flip(half[..., 1:width - half.shape[-1] + 1], dims=[-1]).conj()
    rest = torch.roll(torch.flip(rest, dims=[-2]), 1, dims=-2)
    return torch.cat([half, rest], dim=-1)


@pytest.mark.parametrize("size", [(32, 48), (31, 45)])
def test_a_maco_picture_is_real_because_its_spectrum_is_hermitian(size):
    """The one-line bug: the phase of the frequency-0 column left free, which no real picture has (irfft2 then
    quietly drops what does not fit). Here the whole spectrum's inverse has no imaginary part."""
    image = dc.MacoImage((2, *size), torch.Generator().manual_seed(0))
    full = _full_spectrum(image.spectrum(), size[1])
    inverse = torch.fft.ifft2(full, norm="ortho")
    assert inverse.imag.abs().max() < 1e-4 * inverse.real.abs().max()
    assert torch.allclose(inverse.real, torch.fft.irfft2(image.spectrum(), s=size, norm="ortho"), atol=1e-5)


def test_maco_optimises_the_phase_and_keeps_the_natural_magnitude(monkeypatch):
    """The one-line bug: the magnitude among the optimised parameters. After the run the picture's spectrum
    still has the natural photographs' magnitude (up to the standardisation's scale)."""
    made = []

    class Recorded(dc.MacoImage):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(dc.param, "MacoImage", Recorded)
    backbone = random_backbone("alexnet")
    dc.feature_visualize(backbone, dc.channel("relu3", 5), size=(48, 48), steps=6, parameterization="maco")
    image, = made
    expected = dc.param._hermitian_columns(dc.natural_magnitude(48, 48), 48, odd=False)
    assert torch.equal(image.magnitude, expected) and not image.magnitude.requires_grad
    amplitude = torch.fft.rfft2(image.spatial().detach(), norm="ortho").abs()[0]
    ratio = amplitude[:, 1:, 1:] / expected[:, 1:, 1:]  # DC left out: the standardisation removes it
    assert ratio.std() < 1e-3 * ratio.mean()


def test_the_transparency_map_is_where_the_gradient_arrived():
    """A neuron at the centre of conv2 reads the middle of the picture: without crops, the map is bright there
    and dark at the border. The one-line bug, the map taken from the picture, is bright everywhere."""
    backbone = random_backbone("alexnet")
    _, maps = dc.feature_visualize(backbone, dc.neuron("conv2", 7), size=(96, 96), steps=5, parameterization="maco",
                                   transforms=False, return_transparency=True)
    centre, border = maps[0, 0, 32:64, 32:64].mean(), torch.cat([maps[0, 0, :12].flatten(), maps[0, 0, -12:].flatten()])
    assert maps.shape == (1, 1, 96, 96) and maps.max() == 1.0
    assert centre > 10 * border.mean()


def test_maco_paints_every_class_of_the_shapes_net(shapes_net):
    """Measured (60 steps, seed 0): MaCo 0.78, 0.95, 0.49, 0.75, 0.86 for the five classes; lucid's FFT 1.0,
    1.0, 0.002, 0.0, 1.0 (it misses checkers and the disc)."""
    probabilities = []
    for target in range(5):
        made = dc.feature_visualize(shapes_net, dc.channel("logits", target), size=(48, 48), steps=60,
                                    parameterization="maco")
        probabilities.append(float(dc.logits(made, shapes_net).softmax(1)[0, target]))
    assert min(probabilities) > 0.3 and sum(probabilities) / 5 > 0.6, probabilities


def test_maco_refuses_lucids_diversity():
    with pytest.raises(dc.DreamError, match="diversity: lucid's, not offered with maco"):
        dc.feature_visualize(random_backbone("alexnet"), dc.channel("relu3", 0), batch=2, diversity=10.0,
                             parameterization="maco")


# --- feature accentuation ------------------------------------------------------------------------------------


def _faint_stripes() -> torch.Tensor:
    from shapes import pictures

    generator = torch.Generator().manual_seed(5)
    return (0.5 + 0.3 * (pictures(1, 2, generator) - 0.5)).clamp(0, 1)  # vertical stripes, low contrast


def test_accentuation_raises_the_feature_and_its_pull_keeps_the_picture(shapes_net):
    """The one-line bug: the pull left out (or ignored). Measured (40 steps): PSNR 34.6 and 34.5 dB with the
    default pull against 25.2 and 28.4 without; the class logit up by 1.9 and 2.8 against 3.3 and 3.3."""
    picture = _faint_stripes()
    score = dc.channel("logits", 1)
    kept = dc.accentuate(picture, shapes_net, score, steps=40)
    free = dc.accentuate(picture, shapes_net, score, steps=40, pull=0)
    before = dc.logits(picture, shapes_net)[:, 1]
    for made in (kept, free):
        assert (dc.logits(made, shapes_net)[:, 1] > before + 1).all()
    assert (dc.psnr(kept, picture) > dc.psnr(free, picture) + 5).all()
    untouched = dc.accentuate(picture, shapes_net, score, steps=0)
    assert (dc.psnr(untouched, picture) > 50).all()  # seeded with the picture itself


def test_accentuation_refuses_a_negative_pull(shapes_net):
    with pytest.raises(dc.DreamError, match="pull: must be 0"):
        dc.accentuate(_faint_stripes(), shapes_net, dc.channel("logits", 1), pull=-1)


def test_the_accentuation_node_gives_a_picture_and_its_map(pack, shapes_net):
    node = pack.NODE_CLASS_MAPPINGS["DD_FeatureAccentuation"]()
    image = _faint_stripes().movedim(1, -1)
    with torch.inference_mode():
        made, transparency = node.accentuate(image, shapes_net, "relu2", "class", 1, 100.0, 20, 0)
        with pytest.raises(pack.dream_core.DreamError, match="objective: target 'objective' needs"):
            node.accentuate(image, shapes_net, "relu2", "objective", 0, 100.0, 2, 0)
    assert made.shape == image.shape and transparency.shape == image.shape[:3] and transparency.max() == 1
    assert not torch.equal(made, image)


def test_accentuation_runs_item_by_item_with_seeds_progress_and_cancel(shapes_net):
    picture = _faint_stripes()  # two items
    score = dc.channel("logits", 1)
    both = dc.accentuate(picture, shapes_net, score, steps=3, seed=4)
    second = dc.accentuate(picture[1:], shapes_net, score, steps=3, seed=5)  # item 1 draws from seed + 1
    assert torch.allclose(both[1:], second, atol=1e-6)
    seen = []
    dc.accentuate(picture, shapes_net, score, steps=3, progress=dc.Progress(lambda d, t, p: seen.append(d), 100))
    assert seen[-1] == 100
    with pytest.raises(dc.DreamCancelled):
        dc.accentuate(picture, shapes_net, score, steps=3, cancel=lambda: True)
