"""Image and mask tensors in and out: validation, layouts, files.

Inside ``dream_core`` an image is :math:`(B, 3, H, W)` float RGB in 0..1 and a mask is
:math:`(B \\text{ or } 1, 1, H, W)` in 0..1. ComfyUI's IMAGE is :math:`(B, H, W, 3)`; convert with
:func:`from_bhwc` / :func:`to_bhwc` (a ``movedim``, never a transpose, which would mirror the picture).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .errors import DreamError, ShapeError
from .pyramid import resize

__all__ = ["check_image", "prepare_mask", "from_bhwc", "to_bhwc", "load_image", "save_image", "to_pil", "keep_colors",
           "eight_bit", "max_normalised"]


def check_image(image: object, name: str = "image") -> Tensor:
    """Validate a :math:`(B, 3, H, W)` image and return it as float32 in 0..1.

    A valid float32 image comes back as it is (no copy: a 4K image is 200 MB); others are converted
    and clamped. Callers must not modify the result in place.

    Raises:
        ShapeError: not a 4-D tensor with 3 channels.
        DreamError: empty, or holding NaN / infinity.
    """
    if not isinstance(image, Tensor):
        raise DreamError(f"{name}: expected a tensor, got {type(image).__name__}.")
    if image.ndim != 4 or image.shape[1] != 3:
        raise ShapeError(f"{name}: expected shape (B, 3, H, W), got {tuple(image.shape)}. "
                         "Give an RGB image (drop the alpha channel, repeat a grey one).", tuple(image.shape))
    if image.numel() == 0:
        raise ShapeError(f"{name}: the image is empty, shape {tuple(image.shape)}.", tuple(image.shape))
    if not image.is_floating_point():
        raise DreamError(f"{name}: expected a float tensor in 0..1, got {image.dtype}; divide by 255 first.")
    if not torch.isfinite(image).all():
        raise DreamError(f"{name}: holds NaN or infinite values; check the node or file it came from.")
    image = image.float()
    return image if bool(image.min() >= 0) and bool(image.max() <= 1) else image.clamp(0.0, 1.0)


def from_bhwc(image: Tensor, name: str = "image") -> Tensor:
    """ComfyUI IMAGE :math:`(B, H, W, C)` -> :math:`(B, 3, H, W)`; RGBA loses alpha, grey becomes RGB."""
    if not isinstance(image, Tensor) or image.ndim not in (3, 4):
        raise ShapeError(f"{name}: expected an IMAGE of shape (B, H, W, C), got "
                         f"{tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__}.")
    image = image if image.ndim == 4 else image.unsqueeze(0)
    channels = image.shape[-1]
    if channels == 1:
        image = image.expand(-1, -1, -1, 3)
    elif channels == 4:
        image = image[..., :3]
    return check_image(image.movedim(-1, 1), name)


def to_bhwc(image: Tensor) -> Tensor:
    """:math:`(B, 3, H, W)` -> ComfyUI IMAGE :math:`(B, H, W, 3)`, contiguous float32 on the same device."""
    return image.movedim(1, -1).contiguous().float()


def prepare_mask(mask: Tensor, batch: int, size: tuple[int, int], name: str = "mask") -> Tensor:
    """Bring a mask to :math:`(B \\text{ or } 1, 1, H, W)` at ``size``, values clamped to 0..1.

    Args:
        mask: :math:`(H, W)`, :math:`(B, H, W)` or :math:`(B, 1, H, W)`, any size (resized bilinearly).
        batch: the image batch size; the mask batch must be 1 (shared) or equal to it.
        size: ``(H, W)`` of the image.
    """
    if not isinstance(mask, Tensor) or mask.ndim not in (2, 3, 4) or (mask.ndim == 4 and mask.shape[1] != 1):
        shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ShapeError(f"{name}: expected (H, W), (B, H, W) or (B, 1, H, W), got {shape}.")
    mask = mask.reshape(-1, 1, *mask.shape[-2:]).float()
    if mask.shape[0] not in (1, batch):
        raise ShapeError(f"{name}: has {mask.shape[0]} masks for {batch} images; give 1 mask or {batch}.",
                         tuple(mask.shape))
    if not torch.isfinite(mask).all():
        raise DreamError(f"{name}: holds NaN or infinite values.")
    return resize(mask, size).clamp(0.0, 1.0)


def keep_colors(image: Tensor, colors_from: Tensor) -> Tensor:
    """The luminance of ``image`` with the colours of ``colors_from`` (neural-style-pt's ``original_colors``).

    In YCbCr (BT.601): Y from ``image``, Cb and Cr from ``colors_from``, back to RGB clamped to 0..1;
    a style transfer so keeps the content's colours and takes only the style's light and texture.

    Shape:
        - image, colors_from: :math:`(B, 3, H, W)` in 0..1, the same size (``colors_from`` may have B = 1).
        - Output: :math:`(B, 3, H, W)`.
    """
    from kornia.color import rgb_to_ycbcr, ycbcr_to_rgb

    if image.shape[-2:] != colors_from.shape[-2:]:
        raise ShapeError(f"keep_colors: the image is {tuple(image.shape[-2:])}, its colour source "
                         f"{tuple(colors_from.shape[-2:])}; give both at one size.", tuple(colors_from.shape))
    luminance = rgb_to_ycbcr(image)[:, :1]
    chroma = rgb_to_ycbcr(colors_from)[:, 1:].expand(image.shape[0], -1, -1, -1)
    return ycbcr_to_rgb(torch.cat([luminance, chroma], dim=1)).clamp(0.0, 1.0)


_WIDE_MODES = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": 65535.0, "F": 1.0}
"""Pillow modes of 16-bit (and float) greyscale files, and their full scale: ``convert("RGB")`` would clip them."""


def load_image(path: str | Path, name: str = "input") -> Tensor:
    """Read an image file as :math:`(1, 3, H, W)` float32 RGB in 0..1.

    Any mode Pillow reads: RGBA loses alpha, palette and greyscale become RGB, and 16-bit greyscale is
    scaled by 65535 (not clipped at 255). 16-bit RGB(A) PNGs, which Pillow reads as 8-bit, are read
    with OpenCV at their 16 bits. ``name`` is the input named in errors (``mask``, ``style``).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            if picture.format == "PNG" and picture.mode in ("RGB", "RGBA") and _png_bit_depth(path) == 16:
                array = _wide_png(path)
            elif picture.mode in _WIDE_MODES:
                grey = np.asarray(picture, dtype=np.float32) / _WIDE_MODES[picture.mode]
                array = np.repeat(np.clip(grey, 0.0, 1.0)[..., None], 3, axis=-1)
            else:
                array = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DreamError(f"{name}: cannot read {path} as an image ({error}).") from None
    return torch.from_numpy(np.ascontiguousarray(array)).movedim(-1, 0).unsqueeze(0)


def _png_bit_depth(path: str | Path) -> int:
    """The bits per sample a PNG's header gives (byte 24: after the signature and the IHDR chunk's length,
    type, width and height)."""
    with open(path, "rb") as file:
        header = file.read(25)
    return header[24] if len(header) == 25 else 8


def _wide_png(path: str | Path) -> np.ndarray:
    """A 16-bit colour PNG as :math:`(H, W, 3)` float32 RGB in 0..1 (OpenCV keeps the 16 bits)."""
    import cv2

    pixels = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint16 or pixels.ndim != 3:
        raise ValueError("a 16-bit PNG OpenCV cannot read")
    return pixels[..., 2::-1].astype(np.float32) / 65535.0  # BGR(A) -> RGB


def to_pil(image: Tensor, longest: int | None = None):
    """:math:`(3, H, W)` or :math:`(1, 3, H, W)` in 0..1, on any device -> an 8-bit RGB ``PIL.Image``.

    With ``longest``, a larger picture is first shrunk (antialiased, on its device) to that longer side:
    a live preview of a 4K dream then costs a 512 px picture, not four full-size copies on the CPU.
    """
    from PIL import Image

    image = image.detach()
    image = image.squeeze(0) if image.ndim == 4 else image
    height, width = image.shape[-2:]
    if longest is not None and max(height, width) > longest:  # area averaging: no full-size temporary
        scale = longest / max(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        image = torch.nn.functional.interpolate(image.unsqueeze(0).float(), size=size, mode="area")[0]
    pixels = image.float().clamp(0, 1).mul(255).add_(0.5).to(torch.uint8)  # rounded; only 8 bits leave the device
    return Image.fromarray(pixels.movedim(0, -1).cpu().numpy())


def max_normalised(maps: Tensor) -> Tensor:
    """Each item of ``maps`` :math:`(B, ...)` divided by its largest value (an all-zero map stays zero)."""
    return maps / maps.flatten(1).amax(1).clamp_min(1e-12).view(-1, *[1] * (maps.ndim - 1))


def eight_bit(image: Tensor) -> Tensor:
    """``image`` as an 8-bit file holds it: rounded as :func:`to_pil` rounds, read back as :func:`load_image`
    reads (the same float32 bits)."""
    return image.float().clamp(0, 1).mul(255).add_(0.5).to(torch.uint8).float() / 255


def save_image(image: Tensor, path: str | Path, **options) -> Path:
    """Write :math:`(3, H, W)` or :math:`(1, 3, H, W)` in 0..1 as an 8-bit image; the format follows the suffix,
    ``options`` go to Pillow's writer (``compress_level=1``: a PNG written 3x faster, 15% larger)."""
    path = Path(path)
    try:
        to_pil(image).save(path, **options)
    except (OSError, ValueError) as error:
        raise DreamError(f"output: cannot write {path} ({error}).") from error
    return path
