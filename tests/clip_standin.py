"""A stand-in for ComfyUI's CLIP_VISION: a tiny random CLIP ViT with the attribute names and call shape
of ``comfy.clip_vision.ClipVisionModel`` and ``comfy.clip_model.CLIPVisionModelProjection`` (read with
``fetch`` from Comfy-Org/ComfyUI), written here in plain torch so the tests need no ComfyUI.

What it keeps from the host, because our adapter depends on it: the module names
(``vision_model.embeddings.patch_embedding``, ``class_embedding``, ``position_embedding`` as an
``Embedding``, ``pre_layrnorm``, ``encoder.layers[i].self_attn.{q,k,v,out}_proj`` with ``heads``,
``mlp.fc1`` / ``activation`` (a plain function) / ``fc2``, ``post_layernorm``, ``visual_projection``),
the quick-GELU activation, and ``encode_image``'s preprocessing: resize, centre crop, 8-bit rounding,
normalisation.
"""

from __future__ import annotations

import types

import torch
from torch import nn

MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(width, width) for _ in range(4))

    def forward(self, x):
        batch, tokens, width = x.shape
        q, k, v = (p(x).view(batch, tokens, self.heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        weights = (q @ k.transpose(-1, -2) / (width // self.heads) ** 0.5).softmax(-1)
        return self.out_proj((weights @ v).transpose(1, 2).reshape(batch, tokens, width))


class MLP(nn.Module):
    def __init__(self, width, hidden):
        super().__init__()
        self.fc1, self.activation, self.fc2 = nn.Linear(width, hidden), quick_gelu, nn.Linear(hidden, width)

    def forward(self, x):
        return self.fc2(self.activation(self.fc1(x)))


class Layer(nn.Module):
    def __init__(self, width, heads, hidden):
        super().__init__()
        self.layer_norm1, self.self_attn = nn.LayerNorm(width), Attention(width, heads)
        self.layer_norm2, self.mlp = nn.LayerNorm(width), MLP(width, hidden)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class VisionModelProjection(nn.Module):
    """``CLIPVisionModelProjection``'s layout: ``forward(pixel_values)`` -> (tokens, _, image_embeds, None)."""

    def __init__(self, image_size=32, patch=8, width=32, heads=4, hidden=64, blocks=3, projection=24):
        super().__init__()
        vision = nn.Module()
        vision.embeddings = nn.Module()
        vision.embeddings.patch_embedding = nn.Conv2d(3, width, patch, stride=patch, bias=False)
        vision.embeddings.class_embedding = nn.Parameter(torch.randn(width) * 0.5)
        vision.embeddings.position_embedding = nn.Embedding((image_size // patch) ** 2 + 1, width)
        vision.pre_layrnorm = nn.LayerNorm(width)
        vision.encoder = nn.Module()
        vision.encoder.layers = nn.ModuleList(Layer(width, heads, hidden) for _ in range(blocks))
        vision.post_layernorm = nn.LayerNorm(width)
        self.vision_model = vision
        self.visual_projection = nn.Linear(width, projection, bias=False)

    def forward(self, pixel_values):
        vision = self.vision_model
        embeds = vision.embeddings.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        token = vision.embeddings.class_embedding.expand(pixel_values.shape[0], 1, -1)
        x = torch.cat([token, embeds], dim=1) + vision.embeddings.position_embedding.weight
        x = vision.pre_layrnorm(x)
        for layer in vision.encoder.layers:
            x = layer(x)
        return x, None, self.visual_projection(vision.post_layernorm(x[:, 0])), None


def preprocess(image, size, mean, std):
    """``clip_preprocess``: IMAGE (B, H, W, C) -> resized so the shorter side is ``size``, centre crop,
    rounded to 8 bits, normalised."""
    image = image[..., :3].movedim(-1, 1)
    if image.shape[-2:] != (size, size):
        scale = size / min(image.shape[-2:])
        image = nn.functional.interpolate(image, size=(round(scale * image.shape[2]), round(scale * image.shape[3])),
                                          mode="bicubic", antialias=True)
        top, left = (image.shape[2] - size) // 2, (image.shape[3] - size) // 2
        image = image[:, :, top:top + size, left:left + size]
    image = (255.0 * image).clip(0, 255).round() / 255.0
    return (image - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


class ClipVision:
    """``ClipVisionModel``: ``model``, ``patcher``, ``image_size``, ``image_mean``, ``image_std``, ``encode_image``."""

    def __init__(self, seed=0, **sizes):
        torch.manual_seed(seed)
        self.image_size = sizes.get("image_size", 32)
        self.image_mean, self.image_std = MEAN, STD
        self.model = VisionModelProjection(**sizes).eval()
        self.load_device = torch.device("cpu")
        self.patcher = types.SimpleNamespace(model=self.model, load_device=self.load_device)

    def encode_image(self, image, crop=True):
        pixels = preprocess(image, self.image_size, self.image_mean, self.image_std)
        tokens, _, embeds, _ = self.model(pixel_values=pixels)
        return {"last_hidden_state": tokens, "image_embeds": embeds}
