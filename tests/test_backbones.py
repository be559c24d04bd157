import pytest
import torch

import dream_core as dc
from conftest import random_backbone

ALL = ["googlenet", "inception_v3", "vgg16", "vgg19", "resnet50", "mobilenet_v2", "alexnet"]


def test_registry_has_the_promised_backbones():
    assert set(ALL) <= set(dc.backbone_names())


@pytest.mark.parametrize("name", ALL)
def test_whole_catalogue_resolves_with_matching_channels(name):
    backbone = random_backbone(name)
    size = backbone.spec.native_size
    activations = backbone.extractor(backbone.spec.layers)(torch.rand(1, 3, size, size))
    assert list(activations) == list(backbone.spec.layers)
    for layer, channels in backbone.spec.layers.items():
        assert activations[layer].shape[1] == channels, layer
    assert backbone.spec.default_layer in backbone.spec.layers


@pytest.mark.parametrize("name", ALL)
def test_frozen_and_in_eval_mode(name):
    backbone = random_backbone(name)
    assert not backbone.model.training
    assert not any(p.requires_grad for p in backbone.model.parameters())


@pytest.mark.parametrize("name", ALL)
def test_extraction_stops_at_the_deepest_layer(name):
    backbone = random_backbone(name)
    names = list(backbone.spec.layers)
    middle = names[len(names) // 2]
    extractor = backbone.extractor([names[1], middle])
    assert extractor.deepest == middle and len(extractor.stages) == names.index(middle) + 1

    ran_after = []
    later = [module for stage, module in backbone.stages[names.index(middle) + 1:]]
    head = [m for n, m in backbone.model.named_children() if n in ("fc", "classifier", "avgpool")]
    handles = [m.register_forward_hook(lambda *_, n=i: ran_after.append(n)) for i, m in enumerate(later + head)]
    ran_deepest = []
    handles.append(backbone.stages[names.index(middle)][1].register_forward_hook(lambda *_: ran_deepest.append(1)))
    try:
        activations = extractor(torch.rand(1, 3, 96, 96))
    finally:
        for handle in handles:
            handle.remove()
    assert set(activations) == {names[1], middle}
    assert ran_deepest == [1], "the deepest requested layer must run"
    assert ran_after == [], "layers after the deepest requested one must never run"


def test_conv_and_its_relu_in_one_pass_are_both_kept():
    # VGG's ReLUs are in-place in torchvision; an in-place ReLU would overwrite conv4_3 with relu4_3.
    activations = random_backbone("vgg16").extractor(["conv4_3", "relu4_3"])(torch.rand(1, 3, 64, 64))
    assert (activations["conv4_3"] < 0).any()
    assert torch.equal(activations["relu4_3"], activations["conv4_3"].clamp_min(0))


def test_unknown_layer_lists_the_valid_ones(googlenet):
    with pytest.raises(dc.LayerError) as error:
        googlenet.extractor(["mixed4c"])
    message = str(error.value)
    assert "'mixed4c' is not a layer of googlenet" in message
    assert "inception4c" in message and "inception5b" in message


def test_keras_aliases_for_inception_v3():
    backbone = random_backbone("inception_v3")
    assert backbone.resolve("mixed4") == "Mixed_6b"
    assert backbone.channels("mixed10") == 2048
    image = torch.rand(1, 3, 160, 160)
    acts = backbone.extractor(["mixed4", "Mixed_6b"])(image)  # an objective on the alias reads the alias
    assert set(acts) == {"mixed4", "Mixed_6b"} and acts["mixed4"] is acts["Mixed_6b"]
    assert torch.equal(dc.l2("mixed4")(backbone.extractor(["mixed4"])(image)), dc.l2("Mixed_6b")(acts))


def test_unknown_backbone_message():
    with pytest.raises(dc.DreamError, match="unknown backbone 'vgg11'.*googlenet"):
        dc.get_spec("vgg11")


def test_min_input_size_is_the_smallest_size_that_runs(alexnet):
    extractor = alexnet.extractor(["pool5"])
    smallest = extractor.min_input_size()
    extractor(torch.rand(1, 3, smallest, smallest))
    with pytest.raises(RuntimeError):
        extractor(torch.rand(1, 3, smallest - 1, smallest - 1))


def test_extractors_are_cached_and_stay_valid_when_the_backbone_moves():
    backbone = dc.load_backbone("googlenet", "random", seed=0)
    extractor = backbone.extractor(["conv2"])
    assert backbone.extractor(["conv2"]) is extractor  # cached per layer set
    assert extractor.device == backbone.device
    image = torch.rand(1, 3, 64, 64)
    before = extractor(image)["conv2"]
    backbone.to(memory_format=torch.contiguous_format)  # a move: the modules change in place
    assert backbone.extractor(["conv2"]) is extractor and extractor.memory_format == torch.contiguous_format
    after = extractor(image)["conv2"]
    assert after.is_contiguous() and torch.allclose(before, after, atol=1e-5)


def test_a_backbone_keeps_a_bounded_number_of_extractors():
    """A long-running host asks for many layer sets: the cache keeps the most recently used, not all."""
    backbone = dc.load_backbone("alexnet", "random")
    first = backbone.extractor(["relu1"])
    pairs = [[a, b] for a in backbone.spec.layers for b in backbone.spec.layers if a < b]
    for layers in pairs[:dc.backbones.EXTRACTORS_KEPT + 4]:
        backbone.extractor(layers)
    assert len(backbone._extractors) == dc.backbones.EXTRACTORS_KEPT
    assert backbone.extractor(["relu1"]) is not first  # the oldest was let go
    again = backbone.extractor(["relu1"])
    assert backbone.extractor(["relu1"]) is again  # a used one stays
