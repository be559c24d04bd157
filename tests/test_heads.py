"""Classifier heads: every catalogue ends in ``logits``; any nn.Module can be a backbone."""

from collections import OrderedDict

import pytest
import torch
from torch import nn

import dream_core as dc
from conftest import random_backbone

ALL = ["googlenet", "inception_v3", "vgg16", "vgg19", "resnet50", "mobilenet_v2", "alexnet"]


@pytest.mark.parametrize("name", ALL)
def test_logits_stage_gives_the_torchvision_model_output(name):
    backbone = random_backbone(name)
    size = backbone.spec.native_size
    image = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = backbone.extractor([dc.LOGITS])(image)[dc.LOGITS]
        mean = torch.tensor(backbone.spec.mean).view(1, 3, 1, 1)
        std = torch.tensor(backbone.spec.std).view(1, 3, 1, 1)
        theirs = backbone.model((image - mean) / std)  # torchvision's own forward, head included
    assert ours.shape == (2, 1000)
    assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4 * theirs.abs().max().item())
    k = 3
    assert torch.allclose(dc.channel(dc.LOGITS, k)({dc.LOGITS: ours}), ours[:, k])


def test_imagenet_class_names_come_from_the_installed_torchvision():
    names = random_backbone("googlenet").class_names
    assert len(names) == 1000 and names[0] == "tench" and names[207] == "golden retriever"
    assert random_backbone("resnet50").class_names == names


def test_a_class_score_rises_under_a_dream(googlenet, image):
    objective = dc.channel(dc.LOGITS, 42)
    dream = dc.deepdream(image, googlenet, objective, steps=5, octaves=1, jitter=4, step_size=0.02)
    extract = googlenet.extractor(objective.layers)
    assert objective(extract(dream)).item() > objective(extract(image)).item()


def test_a_dream_on_a_trunk_layer_never_runs_the_head(googlenet, image):
    ran = []
    head = dict(googlenet.stages)[dc.LOGITS]
    handle = head.register_forward_hook(lambda *args: ran.append(True))
    try:
        dc.deepdream(image, googlenet, dc.l2("inception4e"), steps=1, octaves=1)
    finally:
        handle.remove()
    assert ran == []


# A tiny classifier trained here, in seconds, on synthetic patterns: the way tests (and users) bring
# their own network.

CLASSES = ["horizontal stripes", "vertical stripes"]


def striped(count, generator, vertical):
    """``count`` 32 px pictures of stripes with random period, phase and colours."""
    axis = torch.arange(32, dtype=torch.float32)
    period = 4 + 6 * torch.rand(count, 1, generator=generator)
    phase = 6.3 * torch.rand(count, 1, generator=generator)
    wave = 0.5 + 0.5 * torch.sin(2 * torch.pi * axis / period + phase)  # (count, 32)
    wave = wave[:, None, :] if vertical else wave[:, :, None]
    colour = torch.rand(count, 3, 1, 1, generator=generator)
    picture = colour * wave.unsqueeze(1).expand(count, 1, 32, 32)
    return (picture + 0.05 * torch.randn(count, 3, 32, 32, generator=generator)).clamp(0, 1)


@pytest.fixture(scope="module")
def stripes_net():
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 8, 5, padding=2), relu1=nn.ReLU(), pool1=nn.MaxPool2d(2),
        conv2=nn.Conv2d(8, 16, 5, padding=2), relu2=nn.ReLU(),
        logits=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2))))
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(150):
        images = torch.cat([striped(32, generator, False), striped(32, generator, True)])
        labels = torch.tensor([0] * 32 + [1] * 32)
        loss = nn.functional.cross_entropy(net((images - 0.5) / 0.5), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return dc.backbone_from_module(net, mean=(0.5,) * 3, std=(0.5,) * 3, class_names=CLASSES, name="stripes",
                                   native_size=32)


def predict(backbone, images):
    with torch.no_grad():
        return backbone.extractor([dc.LOGITS])(images)[dc.LOGITS].argmax(1)


def test_a_module_becomes_a_backbone_with_its_catalogue(stripes_net):
    assert stripes_net.spec.layers == {"conv1": 8, "relu1": 8, "pool1": 8, "conv2": 16, "relu2": 16, "logits": 2}
    assert stripes_net.class_names == CLASSES and stripes_net.spec.default_layer == "relu2"
    assert not stripes_net.model.training and not any(p.requires_grad for p in stripes_net.model.parameters())
    generator = torch.Generator().manual_seed(1)
    held_out = torch.cat([striped(20, generator, False), striped(20, generator, True)])
    accuracy = (predict(stripes_net, held_out) == torch.tensor([0] * 20 + [1] * 20)).float().mean()
    assert accuracy > 0.9
    assert len(stripes_net.extractor(["relu1"]).stages) == 2  # still stops at the deepest layer asked for


@pytest.mark.parametrize("target", [0, 1])
def test_dreaming_a_class_logit_of_the_trained_net_makes_that_class(stripes_net, target):
    noise = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    objective = dc.channel(dc.LOGITS, target) - 0.1 * dc.total_variation()
    dream = dc.deepdream(noise, stripes_net, objective, steps=30, octaves=1, jitter=2, step_size=0.02)
    assert (predict(stripes_net, dream) == target).all()


def test_a_module_whose_stages_do_not_chain_is_explained():
    net = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, 8, 3), fc=nn.Linear(5, 2)))
    with pytest.raises(dc.DreamError, match="custom: the stages do not run one after the other on a 224 px image"):
        dc.backbone_from_module(net)
