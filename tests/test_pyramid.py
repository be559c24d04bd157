import gc
import logging

import pytest
import torch

import dream_core as dc


def test_octave_sizes_smallest_first_ending_at_the_image():
    assert dc.octave_sizes((256, 384), 3, 2.0) == [(64, 96), (128, 192), (256, 384)]
    assert dc.octave_sizes((300, 200), 4, 1.4) == [(109, 73), (153, 102), (214, 143), (300, 200)]
    assert dc.octave_sizes((50, 60), 1, 1.4) == [(50, 60)]


def test_octaves_are_reduced_above_the_minimum_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="DeepDreamNodes"):
        sizes = dc.octave_sizes((40, 600), 6, 1.4, min_size=32)
    assert sizes == [(40, 600)]
    assert "allows 1 of the 6 octaves" in caplog.text


def test_octave_settings_are_checked():
    with pytest.raises(dc.DreamError, match="octaves: need at least 1, got 0"):
        dc.octave_sizes((64, 64), 0, 1.4)
    with pytest.raises(dc.DreamError, match="octave_scale: must be above 1"):
        dc.octave_sizes((64, 64), 3, 0.9)


def test_reinject_without_steps_gives_back_the_original_exactly(image):
    sizes = dc.octave_sizes(tuple(image.shape[-2:]), 3, 1.5)
    seen = []

    def no_steps(start, level):
        seen.append(tuple(start.shape[-2:]))
        return start

    assert torch.equal(dc.dream_octaves(image, sizes, no_steps, "reinject"), image)
    assert seen == sizes


def test_reinject_carries_the_dreamed_detail_up(image):
    sizes = dc.octave_sizes(tuple(image.shape[-2:]), 2, 2.0)

    def brighten_smallest(start, level):
        return start + 0.1 if level == 0 else start

    out = dc.dream_octaves(image, sizes, brighten_smallest, "reinject")
    assert torch.allclose(out, image + 0.1, atol=1e-5)



@pytest.mark.parametrize("detail", ["reinject", "blend"])
@pytest.mark.parametrize("levels", [1, 3])
def test_levels_dreamed_in_place_neither_touch_the_caller_nor_lose_the_detail(image, detail, levels):
    """Each level may dream its start in place, except the caller's image itself (a lone level). Handing
    the smallest level a base that is used again for the detail would erase the detail."""
    sizes = dc.octave_sizes(tuple(image.shape[-2:]), levels, 1.5)
    caller = image.clone()
    in_place = dc.dream_octaves(caller, sizes, lambda start, level: (start + 0.1 if start is caller else start.add_(0.1))
                                if level == 0 else start, detail)
    out_of_place = dc.dream_octaves(image, sizes, lambda start, level: start + 0.1 if level == 0 else start, detail)
    assert torch.equal(caller, image)
    assert torch.equal(in_place, out_of_place) and (in_place - image).mean() > 0.03

def test_reinject_holds_no_second_buffer_of_the_size_being_dreamed():
    """At 4096 px one more image-sized tensor alive through a level is 192 MB at the peak: the upscaled
    detail, once kept under a name after it was added, lived through the whole full-size octave."""
    image = torch.rand(1, 3, 77, 91)  # a size nothing else in the process has
    sizes = dc.octave_sizes(tuple(image.shape[-2:]), 3, 1.4)
    others = []

    def count_others(start, level):
        others.append(sum(1 for o in gc.get_objects()
                          if issubclass(type(o), torch.Tensor) and o is not start and o.shape == start.shape))
        return start.add_(0.01)

    dc.dream_octaves(image, sizes, count_others, "reinject", overwrite=True)
    assert others == [0, 0, 0]


def test_blend_mixes_the_upscaled_dream_with_the_blurred_base(image):
    sizes = dc.octave_sizes(tuple(image.shape[-2:]), 2, 2.0)
    out = dc.dream_octaves(image, sizes, lambda start, level: torch.zeros_like(start) if level == 0 else start,
                           "blend", blend=0.6)
    assert torch.allclose(out, 0.4 * image, atol=1e-6)
    same = dc.dream_octaves(image, sizes, lambda start, level: start, "blend", blend=0.0)
    assert torch.equal(same, image)


def test_detail_mode_is_checked(image):
    with pytest.raises(dc.DreamError, match="detail: unknown mode 'add'"):
        dc.dream_octaves(image, [tuple(image.shape[-2:])], lambda s, l: s, "add")


def test_resize_shapes_and_noop():
    x = torch.rand(2, 3, 40, 50)
    assert dc.resize(x, (20, 25)).shape == (2, 3, 20, 25)
    assert dc.resize(x, (40, 50)) is x
    assert dc.resize(torch.full((1, 1, 8, 8), 0.5), (16, 16)).allclose(torch.tensor(0.5))


def test_gaussian_blur_keeps_shape_and_mean_and_smooths():
    x = torch.rand(1, 3, 32, 32)
    blurred = dc.gaussian_blur(x, 1.5)
    assert blurred.shape == x.shape
    assert blurred.diff(dim=-1).abs().mean() < 0.5 * x.diff(dim=-1).abs().mean()
    assert dc.gaussian_blur(x, 0) is x
    assert dc.gaussian_blur(torch.rand(1, 1, 3, 3), 5.0).shape == (1, 1, 3, 3)  # tiny input: capped kernel
