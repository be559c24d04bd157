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
