import pytest
import torch

import dream_core as dc
from conftest import ROOT
from dream_core.ascent import ascent_step
from dream_bench import high_frequency_share


def test_normalize_gradient_per_item():
    grad = torch.randn(3, 3, 8, 8) * torch.tensor([1e-9, 1.0, 1e6]).view(3, 1, 1, 1)
    mean_abs = dc.normalize_gradient(grad, "mean_abs")
    assert torch.allclose(mean_abs.abs().mean((1, 2, 3)), torch.ones(3), atol=1e-5)
    std = dc.normalize_gradient(grad, "std")
    assert torch.allclose(std.std((1, 2, 3)), torch.ones(3), atol=1e-4)
    assert torch.equal(dc.normalize_gradient(torch.zeros(1, 3, 4, 4)), torch.zeros(1, 3, 4, 4))
    assert dc.normalize_gradient(grad.half()).dtype == torch.float32
    with pytest.raises(dc.DreamError, match="grad_norm: unknown mode 'l2'"):
        dc.normalize_gradient(grad, "l2")


def test_random_shift_is_seeded_and_bounded():
    def draw(seed):
        generator = torch.Generator().manual_seed(seed)
        return [dc.random_shift(generator, 4) for _ in range(50)]

    assert draw(1) == draw(1) and draw(1) != draw(2)
    assert {d for shift in draw(3) for d in shift} == set(range(-4, 5))
    assert dc.random_shift(torch.Generator(), 0) == (0, 0)


def test_step_moves_by_step_size_and_clamps(googlenet, image):
    objective = dc.l2("inception3a")
    extractor = googlenet.extractor(objective.layers)
    mid_grey = 0.4 + 0.2 * image  # far from 0 and 1: a small step is never clamped
    stepped, scores = ascent_step(mid_grey, extractor, objective, step_size=0.01)
    assert scores.shape == (1,) and not scores.requires_grad
    # With mean_abs normalisation the mean absolute pixel change is exactly step_size.
    assert (stepped - mid_grey).abs().mean().item() == pytest.approx(0.01, rel=1e-4)
    wild, _ = ascent_step(image, extractor, objective, step_size=10.0)
    assert wild.min() >= 0 and wild.max() <= 1


def test_jitter_is_undone():
    # On a translation-equivariant network (circular padding) a rolled forward pass gives the rolled
    # gradient; rolling it back must give exactly the unshifted update. Without the roll-back the
    # update would land displaced by the shift.
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular").requires_grad_(False)
    extractor = dc.FeatureExtractor([("conv", conv)], ["conv"], (0.5,) * 3, (0.5,) * 3)
    objective = dc.l2("conv")
    image = torch.rand(1, 3, 16, 16)
    plain, _ = ascent_step(image, extractor, objective, step_size=0.01)
    shifted, _ = ascent_step(image, extractor, objective, step_size=0.01, shift=(3, -5))
    assert torch.allclose(plain, shifted, atol=1e-6)
    assert not torch.allclose(plain, torch.roll(shifted, (3, -5), (2, 3)), atol=1e-3)


def test_mask_scales_the_step(googlenet, image):
    objective = dc.l2("conv2")
    extractor = googlenet.extractor(objective.layers)
    full, _ = ascent_step(image, extractor, objective, step_size=0.005)
    half_strength, _ = ascent_step(image, extractor, objective, step_size=0.005,
                                   mask=torch.full((1, 1, *image.shape[-2:]), 0.5))
    assert torch.allclose(half_strength - image, 0.5 * (full - image), atol=1e-6)


def test_smoothing_smooths_the_update(googlenet, image):
    objective = dc.l2("conv2")
    extractor = googlenet.extractor(objective.layers)
    rough, _ = ascent_step(image, extractor, objective, step_size=0.005)
    smooth, _ = ascent_step(image, extractor, objective, step_size=0.005, smoothing=2.0)
    roughness = lambda x: (x - image).diff(dim=-1).abs().mean() / (x - image).abs().mean()
    assert roughness(smooth) < 0.5 * roughness(rough)


def test_laplacian_bands_round_trip_at_odd_sizes():
    """Catches a pyramid that loses the odd row or column (kornia's pyramids pitfall)."""
    from dream_core.ascent import laplacian_bands, merge_bands

    image = torch.randn(2, 3, 511, 769, generator=torch.Generator().manual_seed(0))
    levels = laplacian_bands(image)
    assert [tuple(level.shape[-2:]) for level in levels] == [(511, 769), (256, 385), (128, 193), (64, 97), (32, 49)]
    assert torch.allclose(merge_bands(levels), image, atol=1e-5)


def test_laplacian_normalisation_moves_energy_to_coarse_bands(googlenet):
    """Each band gets unit RMS before the usual mean-|g| scaling, so the dream's change holds less energy
    above half Nyquist than with mean_abs (here 0.07 against 0.65 at 256 px, random googlenet). Catches bands normalised
    by the whole gradient's RMS (a no-op) or left out of the merge."""
    image = dc.resize(dc.load_image(ROOT / "assets" / "example.jpg"), (192, 256))
    share = {}
    for mode in ("mean_abs", "laplacian"):
        dream = dc.deepdream(image, googlenet, dc.l2("inception4c"), steps=5, octaves=1, grad_norm=mode)
        share[mode] = high_frequency_share(dream - image)
    assert share["laplacian"] < 0.6 * share["mean_abs"], share
    grad = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(dc.normalize_gradient(grad, "laplacian").abs().mean(), torch.tensor(1.0))
