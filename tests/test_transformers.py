"""Vision transformers: torchvision's ViT in the registry, and CLIP vision towers from the host's graph."""

import pytest
import torch

import dream_core as dc
from clip_standin import ClipText, ClipVision, preprocess
from conftest import random_backbone


@pytest.fixture(scope="module")
def clip():
    return ClipVision(seed=0)


@pytest.fixture(scope="module")
def clip_backbone(clip):
    return dc.backbone_from_clip_vision(clip.model, image_size=clip.image_size, mean=clip.image_mean,
                                        std=clip.image_std)


def pictures(count, size, seed=0):
    return torch.rand(count, 3, *size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name, shapes", [
    ("vit_b_16", {"patches": (768, 10, 6), "block3.mlp": (3072, 10, 6), "block3": (768, 10, 6)}),
    ("swin_t", {"patches": (96, 40, 24), "block3.mlp": (768, 20, 12), "merge2": (384, 10, 6), "block11": (768, 5, 3)}),
])
def test_registry_transformers_run_torchvisions_own_forward_and_map_any_size(name, shapes):
    """The staged forward (embedding, split blocks, merges, head) is torchvision's at 224 px: logits equal.
    At other sizes every layer is a map of the picture's patch grid, a class token dropped."""
    net = random_backbone(name)
    head = net.model.heads.head if name == "vit_b_16" else net.model.head
    original = head.weight.clone()
    torch.nn.init.normal_(head.weight, std=0.02)  # torchvision starts ViT's head at zero: nothing to compare
    try:
        image = pictures(2, (224, 224))
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (net.spec.mean, net.spec.std))
        with torch.no_grad():
            theirs = net.model((image - mean) / std)
            ours = net.extractor([dc.LOGITS])(image)[dc.LOGITS]
        assert theirs.abs().max() > 0.1 and torch.allclose(ours, theirs, atol=1e-5)
    finally:
        with torch.no_grad():
            head.weight.copy_(original)
    acts = net.extractor(list(shapes))(pictures(1, (160, 96)))
    assert {layer: tuple(a.shape[1:]) for layer, a in acts.items()} == shapes


@pytest.mark.parametrize("name, layer", [("vit_b_16", "block4.mlp"), ("swin_t", "block5.mlp")])
@pytest.mark.parametrize("size", [(96, 128), (160, 112)])
def test_registry_transformers_dream_at_sizes_other_than_their_own(name, layer, size):
    image = pictures(1, size)
    dream = dc.deepdream(image, random_backbone(name), dc.l2(layer), steps=2, octaves=1, jitter=8)
    assert dream.shape == image.shape and (dream - image).abs().mean() > 1e-3


def test_clip_block_maps_are_the_patch_tokens_without_the_class_token(clip, clip_backbone):
    """Catches a class token left in a spatial map (its values would sit on the first patch)."""
    seen = {}
    handle = clip.model.vision_model.encoder.layers[1].register_forward_hook(
        lambda module, inputs, output: seen.setdefault("tokens", output))
    image = pictures(1, (32, 32))
    with torch.no_grad():
        clip.model((image - torch.tensor(clip.image_mean).view(1, 3, 1, 1)) / torch.tensor(clip.image_std).view(1, 3, 1, 1))
        ours = clip_backbone.extractor(["block1"])(image)["block1"]
    handle.remove()
    patches = seen["tokens"][:, 1:]  # (1, 16, width): the 4 x 4 grid in row-major order
    assert ours.shape == (1, 32, 4, 4)
    assert torch.allclose(ours.flatten(2).transpose(1, 2), patches, atol=1e-5)


def test_clip_embedding_is_encode_images_on_the_8_bit_grid(clip, clip_backbone):
    """At the model's own size and on the 8-bit grid, the host's preprocessing changes nothing that ours
    does not: the embeddings agree (ours stays differentiable)."""
    image = torch.randint(0, 256, (2, 32, 32, 3), generator=torch.Generator().manual_seed(1)) / 255.0
    theirs = clip.encode_image(image)["image_embeds"]
    with torch.no_grad():
        ours = clip_backbone.extractor([dc.EMBEDDING])(image.movedim(-1, 1))[dc.EMBEDDING]
    assert torch.nn.functional.cosine_similarity(ours, theirs).min() > 1 - 1e-4


def test_the_gradient_reaches_the_pixels_where_the_hosts_preprocessing_has_none(clip, clip_backbone):
    """The one-line bug: preprocessing with ComfyUI's 8-bit rounding gives an all-zero gradient."""
    target = torch.randn(24, generator=torch.Generator().manual_seed(2))
    objective = dc.cosine(dc.EMBEDDING, target)
    for size in [(32, 32), (48, 40)]:
        leaf = pictures(1, size).requires_grad_(True)
        objective(clip_backbone.extractor(objective.layers)(leaf)).sum().backward()
        assert leaf.grad.abs().mean() > 0
    leaf = pictures(1, (32, 32)).requires_grad_(True)
    rounded = preprocess(leaf.movedim(1, -1), clip.image_size, clip.image_mean, clip.image_std)
    clip.model(rounded)[2].sum().backward()
    assert leaf.grad.abs().max() == 0


def _embedding(backbone, image):
    with torch.no_grad():
        return backbone.extractor([dc.EMBEDDING])(image)[dc.EMBEDDING]


def _cos(a, b):
    return torch.nn.functional.cosine_similarity(a, b.reshape(1, -1)).item()


def test_an_embedding_target_pulls_the_picture_and_a_negative_pushes_it(clip_backbone):
    """A sign flip of the cosine, or a negative prompt added instead of subtracted, turns one of these around."""
    image = pictures(1, (64, 64), seed=3)
    prompt = torch.randn(24, generator=torch.Generator().manual_seed(4))
    start = _cos(_embedding(clip_backbone, image), prompt)
    settings = dict(steps=20, octaves=1, jitter=0, step_size=0.02)
    pulled = dc.deepdream(image, clip_backbone, dc.cosine(dc.EMBEDDING, prompt), **settings)
    pushed = dc.deepdream(image, clip_backbone, -dc.cosine(dc.EMBEDDING, prompt), **settings)
    assert _cos(_embedding(clip_backbone, pulled), prompt) > start + 0.3
    assert _cos(_embedding(clip_backbone, pushed), prompt) < start - 0.3


def test_a_clip_guided_dream_ends_nearer_its_guide_than_an_unguided_one(clip_backbone):
    image, guide = pictures(1, (64, 64), seed=5), pictures(1, (32, 32), seed=6) ** 3
    target = _embedding(clip_backbone, guide)
    settings = dict(steps=20, octaves=1, jitter=0, step_size=0.02)
    guided = dc.deepdream(image, clip_backbone, dc.cosine(dc.EMBEDDING, target) + dc.l2("block1.mlp"), **settings)
    unguided = dc.deepdream(image, clip_backbone, dc.l2("block1.mlp"), **settings)
    # A random tower's embeddings all lean one way (cosine ~0.9 to any other picture's): compare distances.
    assert 1 - _cos(_embedding(clip_backbone, guided), target) < 0.5 * (1 - _cos(_embedding(clip_backbone, unguided), target))


def test_cosine_is_one_for_the_same_direction_and_minus_one_for_the_opposite():
    vector = torch.randn(1, 24)
    assert dc.cosine(dc.EMBEDDING, 3 * vector)({dc.EMBEDDING: vector}).item() == pytest.approx(1.0, abs=1e-6)
    assert dc.cosine(dc.EMBEDDING, -vector)({dc.EMBEDDING: vector}).item() == pytest.approx(-1.0, abs=1e-6)


def test_mismatched_widths_and_towers_without_a_class_token_are_explained(clip, clip_backbone):
    with pytest.raises(dc.DreamError, match="the target has 1280 values, embedding has 24 per image"):
        dc.deepdream(pictures(1, (32, 32)), clip_backbone, dc.cosine(dc.EMBEDDING, torch.zeros(1280)), steps=1,
                     octaves=1)
    siglip = ClipVision(seed=1).model
    siglip.vision_model.embeddings.class_embedding = None
    with pytest.raises(dc.DreamError, match="is not a CLIP ViT vision tower .*class token"):
        dc.backbone_from_clip_vision(siglip)


def test_nodes_dream_a_host_clip_vision_towards_a_prompt_and_away_from_a_negative(pack, fake_host):
    """As in ComfyUI: the CLIP_VISION was loaded under inference mode (its weights are inference tensors)
    and every node runs under it. The prompts are encoded by the node through SDXL's clip_g, projected;
    the prompt's cosine rises, the negative's falls; DeepDream needs no layers for it."""
    nodes = pack.NODE_CLASS_MAPPINGS
    with torch.inference_mode():
        clip, text = ClipVision(seed=3), ClipText(width=24, layout="sdxl", seed=7)
        backbone, = nodes["DD_ClipVisionBackbone"]().build(clip)
        assert nodes["DD_ClipVisionBackbone"]().build(clip)[0] is backbone  # one backbone per loaded model
        target, = nodes["DD_ClipTarget"]().build(backbone, 1.0, cutouts=0, clip=text, text="a red bird",
                                                 negative_text="grey fog")
        image = torch.rand(2, 48, 48, 3, generator=torch.Generator().manual_seed(8))  # a batch of 2
        dream, = nodes["DD_DeepDream"]().dream(image, backbone, steps=20, step_size=0.02, jitter=0, seed=0,
                                               objective=target)
        with pytest.raises(pack.nodes.clip_nodes.DreamError, match="the text embedding has 1280 values, "
                           "clip_vision's image embedding 24"):
            nodes["DD_ClipTarget"]().build(backbone, 1.0, 0, clip=ClipText(width=1280), text="a red bird")
    assert dream.shape == image.shape
    prompt, other = text.encoder.projected("a red bird"), text.encoder.projected("grey fog")
    before, after = (_embedding(backbone, picture.movedim(-1, 1)) for picture in (image, dream))
    for item in range(2):  # the 48 px dream is made in 32 px native tiles, measured whole: a part of the rise
        assert _cos(after[item:item + 1], prompt) > _cos(before[item:item + 1], prompt) + 0.15
        assert _cos(after[item:item + 1], other) < _cos(before[item:item + 1], other)


@pytest.mark.parametrize("layout", ["sdxl", "sd1"])
def test_a_prompt_target_is_the_projected_pooled_output_even_where_the_host_pools_unprojected(pack, layout):
    """SD1.x-style encoders pool unprojected by the host's default (CLIP Text Encode gives the end-of-text
    state, as wide as the image embedding): the one-line bug is that output taken as the target. A CLIP-L
    file that carries its projection (file_projection on) is used through the projection."""
    text = ClipText(width=24, layout=layout, seed=5)
    target = pack.nodes.host.clip_text_embedding(text, "a red bird", "text", file_projection=layout == "sd1")
    assert torch.allclose(target, text.encoder.projected("a red bird"))
    assert not torch.allclose(target, text.encoder.state("a red bird"))
    if layout == "sd1":  # what CLIP Text Encode hands on is not in image space
        assert torch.allclose(text.pooled("a red bird"), text.encoder.state("a red bird"))
    assert text.encoder.return_projected_pooled == (layout == "sdxl")  # the host's option restored


def test_an_sd1_checkpoints_clip_is_refused_with_the_pairings(pack, fake_host, clip_backbone):
    """Refused unless the user vouches for the file's projection, and then still when it is empty."""
    node, error = pack.NODE_CLASS_MAPPINGS["DD_ClipTarget"](), pack.nodes.clip_nodes.DreamError
    with pytest.raises(error, match="pools this CLIP without its text_projection .*use SDXL's clip_g with "
                       "clip_vision_g.safetensors"):
        node.build(clip_backbone, 1.0, 16, clip=ClipText(width=24, layout="sd1"), text="a red bird")
    with pytest.raises(error, match="text_projection is empty"):
        node.build(clip_backbone, 1.0, 16, clip=ClipText(width=24, layout="sd1", trained=False), text="a red bird",
                   file_projection=True)
    with pytest.raises(error, match="clip: connect the CLIP text encoder"):
        node.build(clip_backbone, 1.0, 16, text="a red bird")


def test_an_image_target_is_the_embedding_the_host_makes_of_it(clip, clip_backbone):
    """The guide is embedded as Load CLIP Vision's encode_image does (short side resized, centre crop, 8 bits),
    not at its own size through stretched positions: the one-line bug (the picture embedded whole) fails."""
    picture = torch.rand(2, 3, 50, 70, generator=torch.Generator().manual_seed(3))
    theirs = clip.encode_image(picture.movedim(1, -1))["image_embeds"]
    ours = dc.image_embedding(clip_backbone, picture, dc.EMBEDDING)
    assert torch.nn.functional.cosine_similarity(ours, theirs).min() > 1 - 1e-5
    whole = _embedding(clip_backbone, picture)
    assert torch.nn.functional.cosine_similarity(whole, theirs).min() < 1 - 1e-3


def test_guided_dream_without_layers_matches_the_guide_in_clip_space(pack, fake_host, clip_backbone):
    image = torch.rand(2, 48, 48, 3, generator=torch.Generator().manual_seed(5))  # a batch of 2, as the host sends
    guide = torch.rand(1, 40, 40, 3, generator=torch.Generator().manual_seed(6)) ** 3
    node, error = pack.NODE_CLASS_MAPPINGS["DD_GuidedDream"](), pack.nodes.clip_nodes.DreamError
    with torch.inference_mode():
        dream, = node.dream(image, guide, clip_backbone, 25, 0.03, 0, 0)
        with pytest.raises(error, match="Guided Dream needs the layers"):
            node.dream(image, guide, random_backbone("alexnet"), 1, 0.01, 0, 0)
        with pytest.raises(error, match="Deep Dream needs layers .*an objective"):
            pack.NODE_CLASS_MAPPINGS["DD_DeepDream"]().dream(image, clip_backbone, 1, 0.01, 0, 0)
    seen = lambda picture: dc.image_embedding(clip_backbone, picture.movedim(-1, 1), dc.EMBEDDING)  # noqa: E731
    assert dream.shape == image.shape
    for item in range(2):  # a random tower's embeddings all lean one way: compare distances
        before, after = (_cos(seen(picture[item:item + 1]), seen(guide)) for picture in (image, dream))
        assert 1 - after < 0.5 * (1 - before), item


def test_the_explain_tools_run_on_a_vision_transformer():
    """Pixel saliency and class visualisation work through a transformer's logits (swin_t: torchvision
    starts ViT's head at zero, whose gradient is nothing); Grad-CAM, which needs a map the logits read,
    says why it cannot."""
    swin, image = random_backbone("swin_t"), pictures(1, (64, 64))
    saliency = dc.saliency_map(image, swin, target=3, method="smoothgrad", samples=2)
    assert saliency.shape == (1, 1, 64, 64) and saliency.max().item() == pytest.approx(1.0)
    visualised = dc.class_visualize(swin, 3, size=(48, 48), steps=3)
    assert visualised.shape == (1, 3, 48, 48)
    with pytest.raises(dc.DreamError, match="Grad-CAM needs a convolutional layer: use gradient"):
        dc.saliency_map(image, random_backbone("vit_b_16"), target=3, method="gradcam")


def test_a_vit_sees_larger_octaves_in_native_tiles_and_whole_only_when_told(clip_backbone):
    """tools/vit_views.py measured native-size tiles making the better dream on a trained ViT; the one-line
    bug is the rule not applied (the 512 px CNN tiles, so the ViT sees whole 2x pictures)."""
    native = clip_backbone.largest_view
    assert native == clip_backbone.spec.native_size
    assert random_backbone("swin_t").largest_view is None and random_backbone("alexnet").largest_view is None
    seen = []
    clip_backbone.extractor(["block1.mlp"]).min_input_size()  # probed once, before the hook listens
    embedding = clip_backbone.stages[0][1]
    hook = embedding.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    try:
        size = (2 * native + 16, 2 * native)
        dreamed = dc.deepdream(pictures(1, size), clip_backbone, dc.l2("block1.mlp"), steps=2, octaves=2)
        tiled, seen[:] = list(seen), []
        dc.deepdream(pictures(1, size), clip_backbone, dc.l2("block1.mlp"), steps=2, octaves=2, tile_size=0)
    finally:
        hook.remove()
    assert dreamed.shape[-2:] == size and set(tiled) == {(native, native)}  # edge tiles too: never a sliver
    assert len(tiled) > len(seen)  # the full-size octave in several tiles per step
    assert size in seen  # tile_size=0: the whole picture, through interpolated positions


@pytest.mark.parametrize("scale", [1.0, 1 / 4096])
def test_clip_gradients_under_fp16_match_fp32(clip_backbone, scale):
    """The host's GPUs run CLIP in half precision: the loss-scaled fp16 gradient of a small embedding
    objective (a tile's weight) keeps its direction and does not underflow to zeros."""
    from dream_core.ascent import image_gradient

    target = torch.randn(1, clip_backbone.channels("embedding"), generator=torch.Generator().manual_seed(3))
    objective = scale * (dc.cosine("embedding", target) + dc.l2("block1.mlp"))
    extractor, picture = clip_backbone.extractor(objective.layers), pictures(1, (48, 40))
    full, _ = image_gradient(picture, extractor, objective)
    half, _ = image_gradient(picture, extractor, objective, autocast=torch.float16)
    assert torch.nn.functional.cosine_similarity(full.flatten(), half.float().flatten(), 0) > 0.99
    assert (half == 0).float().mean() < 0.01
