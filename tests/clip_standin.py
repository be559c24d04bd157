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


class TextEncoder(nn.Module):
    """``sd1_clip.SDClipModel``'s outline: a ``transformer`` with a ``text_projection``, clip options with
    the host's default for ``projected_pooled`` (``options_default[2]``), ``encode_token_weights`` returning
    ``(cond, pooled)``: the projected pooled output when asked for, else the unprojected end-of-text state.

    ``trained=False`` leaves the projection as the host leaves one its file did not carry: built
    uninitialised (``comfy.ops`` skips the init), on a fresh page zeros."""

    def __init__(self, width, state_width=None, host_projects=True, trained=True, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.state_width = state_width or width
        self.transformer = nn.Module()
        self.transformer.text_projection = nn.Linear(self.state_width, width, bias=False)
        if not trained:
            nn.init.zeros_(self.transformer.text_projection.weight)
        self.options_default = ("last", None, host_projects)
        self.return_projected_pooled = host_projects

    def set_clip_options(self, options):
        self.return_projected_pooled = options.get("projected_pooled", self.return_projected_pooled)

    def reset_clip_options(self):
        self.return_projected_pooled = self.options_default[2]

    def state(self, text):
        """The end-of-text state of ``text`` (a seeded stand-in for the transformer): :math:`(1, D)`."""
        return torch.randn(1, self.state_width, generator=torch.Generator().manual_seed(sum(map(ord, text))))

    def projected(self, text):
        with torch.no_grad():
            return self.transformer.text_projection(self.state(text))

    def encode_token_weights(self, tokens):
        state = self.state(tokens)
        pooled = self.projected(tokens) if self.return_projected_pooled else state
        return torch.zeros(1, 77, 8), pooled


class ClipText:
    """``comfy.sd.CLIP``: ``tokenize``, ``load_model``, ``cond_stage_model`` in the layout of SDXL (``clip_g``
    pools) or of SD1.x (``clip`` names the one encoder, ``clip_l``, which the host never projects)."""

    def __init__(self, width=24, layout="sdxl", trained=True, seed=0):
        model = types.SimpleNamespace()
        if layout == "sdxl":
            model.clip_g = TextEncoder(width, host_projects=True, trained=trained, seed=seed)
            self.encoder = model.clip_g
        else:
            model.clip, model.clip_l = "clip_l", TextEncoder(width, host_projects=False, trained=trained, seed=seed)
            self.encoder = model.clip_l
        model.set_clip_options = self.encoder.set_clip_options
        model.reset_clip_options = self.encoder.reset_clip_options
        model.encode_token_weights = self.encoder.encode_token_weights
        self.cond_stage_model = model

    def tokenize(self, text):
        return text

    def load_model(self):
        return None

    def pooled(self, text):
        """CLIP Text Encode's pooled output (the host's default option)."""
        self.cond_stage_model.reset_clip_options()
        return self.cond_stage_model.encode_token_weights(text)[1]
