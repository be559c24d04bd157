"""Vision transformers as backbones: each encoder block's MLP units and output as spatial maps.

A transformer's trunk passes tokens, not maps. Its stages here pass :class:`Tokens` (the token
sequence and the patch grid it came from), and each stage's catalogue activation is a map
:math:`(B, C, h, w)`: the patch tokens in grid order, the class token dropped, so every objective
written for CNNs (channels, L2, guides, styles) works on a transformer unchanged. Each block is two
catalogue layers:

- ``block{i}.mlp``: the MLP's hidden units after the activation function, 4x the width: where a
  transformer's interpretable features are (Ghiasi et al. 2022, "What do vision transformers learn?");
- ``block{i}``: the block's output, the residual stream.

The first layer, ``patches``, is the embedded patches with their position embeddings; the last is
the class token's head: ``logits`` (ImageNet classes) or, for CLIP, ``embedding`` (the projected
image embedding, :math:`(B, E)`). A hierarchical transformer (Swin) keeps its tokens on a grid,
halves it between stages (layers ``merge{k}``) and pools them all for its ``logits``. Position embeddings are interpolated (bicubic) to the picture's
patch grid, so a transformer dreams at any size, as the CNNs do; at the native size they are used
as trained.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .features import Stage

__all__ = ["Tokens", "PatchEmbedding", "pad_to_patches", "embedding_table", "GridTokens", "BlockMLP", "BlockOutput",
           "ClassTokenHead", "PooledHead", "SelfAttention", "transformer_layers", "hierarchical_layers", "block_stages",
           "clip_vision_stages", "EMBEDDING"]

EMBEDDING = "embedding"
"""The last layer of a CLIP vision backbone: the projected image embedding :math:`(B, E)`."""


@dataclass(frozen=True)
class Tokens:
    """Transformer features between trunk stages.

    Attributes:
        values: :math:`(B, T, D)`, the first ``prefix`` tokens not patches (the class token), the
            rest the patches of ``grid`` in row-major order; or, in a hierarchical transformer (Swin),
            the patches as a grid :math:`(B, h, w, D)`.
        grid: ``(h, w)`` patches.
        prefix: how many tokens come before the patches.
        hidden: within a block, the MLP's hidden units :math:`(B, T, 4D)` (see :class:`BlockMLP`).
    """

    values: Tensor
    grid: tuple[int, int]
    prefix: int
    hidden: Tensor | None = None

    def as_map(self, values: Tensor | None = None) -> Tensor:
        """``values`` (default: the tokens) as a map :math:`(B, C, h, w)` of the patches."""
        values = self.values if values is None else values
        if values.ndim == 4:
            return values.permute(0, 3, 1, 2)
        return values[:, self.prefix:].transpose(1, 2).unflatten(2, self.grid)


class PatchEmbedding(Stage):
    """Normalised image -> :class:`Tokens`: patches, the class token first (if the model has one), plus
    the position embeddings interpolated to the picture's grid; then ``norm`` (CLIP's pre-layernorm).

    A picture that is not a whole number of patches is first padded (reflect) at the bottom and right
    to the next whole patch, so every pixel is seen and gets a gradient (the patch convolution has no
    padding: without this the rows and columns past the last whole patch get exactly zero).

    The position table and class token come from callables given the compute device, and are cast to
    the tokens' device and dtype at every call: a host that streams weights in (ComfyUI's dynamic VRAM
    keeps them on the CPU and casts them per call) may hold them anywhere, in any precision, so a host
    module's table is read through its own forward (see :func:`embedding_table`), never raw.

    Args:
        patches: the patch convolution (kernel = stride = patch size).
        positions: ``positions(device)``, the trained position embeddings :math:`(T_0, D)` (class first).
        class_token: ``class_token(device)``, the class token :math:`(D,)`, or None.
        norm: applied to the tokens (identity by default).
    """

    def __init__(self, patches: nn.Module, positions: Callable[[torch.device], Tensor],
                 class_token: Callable[[torch.device], Tensor] | None,
                 norm: nn.Module | None = None) -> None:
        super().__init__()
        self.patches, self.norm = patches, norm or nn.Identity()
        self._positions, self._class_token = positions, class_token

    @property
    def patch_size(self) -> int:
        stride = self.patches.stride
        return stride[0] if isinstance(stride, tuple) else stride

    def forward(self, image: Tensor) -> Tokens:
        patches = self.patches(pad_to_patches(image, self.patch_size))
        grid = tuple(patches.shape[-2:])
        values = patches.flatten(2).transpose(1, 2)
        prefix = 0
        if self._class_token is not None:
            token = self._class_token(values.device).to(values.device, values.dtype).reshape(1, 1, -1)
            values, prefix = torch.cat([token.expand(values.shape[0], 1, -1), values], dim=1), 1
        positions = self._positions(values.device).to(values.device, values.dtype)
        values = values + interpolate_positions(positions, prefix, grid)
        return Tokens(self.norm(values), grid, prefix)

    def activation(self, output: Tokens) -> Tensor:
        return output.as_map()


def embedding_table(embedding: nn.Module, device: torch.device) -> Tensor:
    """All rows of an ``nn.Embedding`` (or a host's casting subclass) on ``device``, through its own
    forward: the host casts and patches its weight there."""
    return embedding(torch.arange(embedding.num_embeddings, device=device))


def pad_to_patches(image: Tensor, patch: int) -> Tensor:
    """:math:`(B, C, H, W)` padded by reflection at the bottom and right to whole ``patch`` multiples
    (unchanged when it already is one); a side shorter than the padding is padded by replication."""
    bottom, right = -image.shape[-2] % patch, -image.shape[-1] % patch
    if not (bottom or right):
        return image
    mode = "reflect" if bottom < image.shape[-2] and right < image.shape[-1] else "replicate"
    return nn.functional.pad(image, (0, right, 0, bottom), mode=mode)


def interpolate_positions(positions: Tensor, prefix: int, grid: tuple[int, int]) -> Tensor:
    """Position embeddings :math:`(T_0, D)` (``prefix`` tokens, then a square grid) for a ``grid`` of
    patches: the square part resized bicubically (unchanged at its own size); shape :math:`(1, T, D)`."""
    positions = positions.reshape(-1, positions.shape[-1])
    head, square = positions[:prefix], positions[prefix:]
    side = round(square.shape[0] ** 0.5)
    if (side, side) != tuple(grid):
        resized = nn.functional.interpolate(square.T.reshape(1, -1, side, side).float(), size=grid, mode="bicubic",
                                            align_corners=False)
        square = resized.reshape(square.shape[1], -1).T.to(positions.dtype)
    return torch.cat([head, square]).unsqueeze(0)


class SelfAttention(nn.Module):
    """Multi-head self-attention from separate query, key, value and output projections (the CLIP
    layout of ComfyUI and transformers), computed with ``scaled_dot_product_attention``."""

    def __init__(self, query: nn.Module, key: nn.Module, value: nn.Module, output: nn.Module, heads: int) -> None:
        super().__init__()
        self.query, self.key, self.value, self.output, self.heads = query, key, value, output, heads

    def forward(self, x: Tensor) -> Tensor:
        split = lambda t: t.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # noqa: E731  (B, heads, T, d)
        attended = nn.functional.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)),
                                                              split(self.value(x)))
        return self.output(attended.transpose(1, 2).flatten(2))


class _Call(nn.Module):
    """A plain function as a module (a block's activation function, a head's token selection)."""

    def __init__(self, function: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: Tensor) -> Tensor:
        return self.function(x)


class BlockMLP(Stage):
    """The first half of a pre-norm encoder block: ``x + attention(norm1(x))``, and the MLP's hidden units
    ``act(fc1(norm2(.)))``; the catalogue activation (``block{i}.mlp``) is those hidden units."""

    def __init__(self, norm1: nn.Module, attention: nn.Module, norm2: nn.Module, fc1: nn.Module,
                 act: nn.Module | Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.norm1, self.attention, self.norm2, self.fc1 = norm1, attention, norm2, fc1
        self.act = act if isinstance(act, nn.Module) else _Call(act)

    def forward(self, tokens: Tokens) -> Tokens:
        values = tokens.values + self.attention(self.norm1(tokens.values))
        return Tokens(values, tokens.grid, tokens.prefix, self.act(self.fc1(self.norm2(values))))

    def activation(self, output: Tokens) -> Tensor:
        return output.as_map(output.hidden)


class BlockOutput(Stage):
    """The second half of an encoder block: the residual stream plus ``fc2`` of the hidden units."""

    def __init__(self, fc2: nn.Module) -> None:
        super().__init__()
        self.fc2 = fc2

    def forward(self, tokens: Tokens) -> Tokens:
        return Tokens(tokens.values + self.fc2(tokens.hidden), tokens.grid, tokens.prefix)

    def activation(self, output: Tokens) -> Tensor:
        return output.as_map()


class ClassTokenHead(Stage):
    """``head(norm(class token))``: the classifier's logits, or CLIP's projected image embedding."""

    def __init__(self, norm: nn.Module, head: nn.Module | Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.norm = norm
        self.head = head if isinstance(head, nn.Module) else _Call(head)

    def forward(self, tokens: Tokens) -> Tensor:
        return self.head(self.norm(tokens.values[:, 0]))


class GridTokens(Stage):
    """A module whose output is a grid of tokens :math:`(B, h, w, D)`: Swin's patch embedding (from the
    normalised image) and its patch merging between stages (the grid halves, the width doubles)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor | Tokens) -> Tokens:
        values = self.module(x.values if isinstance(x, Tokens) else x)
        return Tokens(values, tuple(values.shape[1:3]), 0)

    def activation(self, output: Tokens) -> Tensor:
        return output.as_map()


class PooledHead(Stage):
    """``head(tokens)`` on the whole grid of tokens (Swin's norm, average pooling and classifier)."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, tokens: Tokens) -> Tensor:
        return self.head(tokens.values)


def hierarchical_layers(widths: Sequence[int], depths: Sequence[int], head: str, head_width: int) -> dict[str, int]:
    """The catalogue of a hierarchical transformer: ``patches``, then per stage its blocks (``block{i}.mlp``
    and ``block{i}``, numbered across stages) after a ``merge{k}`` from the second stage on, then the head."""
    layers, block = {"patches": widths[0]}, 0
    for stage, (width, depth) in enumerate(zip(widths, depths)):
        if stage:
            layers[f"merge{stage}"] = width
        for _ in range(depth):
            layers[f"block{block}.mlp"], layers[f"block{block}"] = 4 * width, width
            block += 1
    return {**layers, head: head_width}


def transformer_layers(width: int, hidden: int, blocks: int, head: str, head_width: int) -> dict[str, int]:
    """The catalogue of a transformer: ``patches``, then ``block{i}.mlp`` and ``block{i}`` per block, then
    the head (``logits`` or ``embedding``), with their channel counts."""
    layers = {"patches": width}
    for index in range(blocks):
        layers[f"block{index}.mlp"] = hidden
        layers[f"block{index}"] = width
    return {**layers, head: head_width}


def block_stages(parts: Sequence[tuple[nn.Module, nn.Module, nn.Module, nn.Module, object, nn.Module]]) -> list[nn.Module]:
    """The two stages of each block from its ``(norm1, attention, norm2, fc1, act, fc2)``."""
    return [stage for norm1, attention, norm2, fc1, act, fc2 in parts
            for stage in (BlockMLP(norm1, attention, norm2, fc1, act), BlockOutput(fc2))]


def clip_vision_stages(model: nn.Module) -> tuple[list[nn.Module], dict[str, int]]:
    """The stages and catalogue of a CLIP vision tower in the layout of ComfyUI's
    ``CLIPVisionModelProjection`` (and transformers' ``CLIPVisionModelWithProjection``): ``vision_model``
    with ``embeddings`` (patch convolution, class token, position table), ``pre_layrnorm``,
    ``encoder.layers`` (``layer_norm1``, ``self_attn`` q/k/v/out projections, ``layer_norm2``, ``mlp``
    fc1/activation/fc2) and ``post_layernorm``; then ``visual_projection``."""
    vision = model.vision_model
    embeddings = vision.embeddings
    if getattr(embeddings, "class_embedding", None) is None:
        raise ValueError("a vision tower without a class token (SigLIP) has no pooled image embedding")
    blocks = list(vision.encoder.layers)
    parts = []
    for block in blocks:
        attention = block.self_attn
        heads = getattr(attention, "heads", None) or attention.num_heads
        act = getattr(block.mlp, "activation", None) or block.mlp.activation_fn
        parts.append((block.layer_norm1, SelfAttention(attention.q_proj, attention.k_proj, attention.v_proj,
                                                       attention.out_proj, heads),
                      block.layer_norm2, block.mlp.fc1, act, block.mlp.fc2))
    projection = model.visual_projection
    width = embeddings.patch_embedding.out_channels
    stages = [PatchEmbedding(embeddings.patch_embedding,
                             lambda device: embedding_table(embeddings.position_embedding, device),
                             lambda device: embeddings.class_embedding, vision.pre_layrnorm),
              *block_stages(parts), ClassTokenHead(vision.post_layernorm, projection)]
    layers = transformer_layers(width, blocks[0].mlp.fc1.out_features, len(blocks), EMBEDDING,
                                getattr(projection, "out_features", width))
    return stages, layers
