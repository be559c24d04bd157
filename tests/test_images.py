import pytest
import torch

import dream_core as dc


def test_bhwc_round_trip_is_a_movedim_not_a_transpose():
    image = torch.rand(2, 5, 7, 3)
    chw = dc.from_bhwc(image)
    assert chw.shape == (2, 3, 5, 7)
    assert torch.equal(chw[1, :, 2, 4], image[1, 2, 4])
    assert torch.equal(dc.to_bhwc(chw), image)


def test_rgba_and_grey_become_rgb():
    rgba = torch.rand(1, 4, 4, 4)
    assert torch.equal(dc.from_bhwc(rgba), rgba[..., :3].movedim(-1, 1))
    grey = dc.from_bhwc(torch.rand(1, 4, 4, 1))
    assert torch.equal(grey[:, 0], grey[:, 2])


def test_check_image_clamps_slight_overshoot():
    assert dc.check_image(torch.full((1, 3, 2, 2), 1.0001)).max() == 1.0


def test_prepare_mask_shapes_batches_and_resizes():
    assert dc.prepare_mask(torch.ones(8, 8), 3, (16, 16)).shape == (1, 1, 16, 16)
    assert dc.prepare_mask(torch.ones(3, 8, 8), 3, (8, 8)).shape == (3, 1, 8, 8)
    assert dc.prepare_mask(torch.full((1, 1, 4, 4), 2.0), 1, (4, 4)).max() == 1.0
    with pytest.raises(dc.ShapeError, match=r"mask: expected \(H, W\), \(B, H, W\) or \(B, 1, H, W\), got \(1, 3, 4, 4\)"):
        dc.prepare_mask(torch.ones(1, 3, 4, 4), 1, (4, 4))


def test_files_round_trip(tmp_path):
    image = (torch.rand(1, 3, 6, 9) * 255).round() / 255
    path = dc.save_image(image, tmp_path / "x.png")
    assert torch.allclose(dc.load_image(path), image, atol=1e-6)
    with pytest.raises(dc.DreamError, match="cannot read"):
        dc.load_image(tmp_path / "missing.png")
