"""Where a classifier looks: attributions of a class score to the pixels (the gradient, SmoothGrad,
gradient x input, integrated gradients) or to a layer's positions (Grad-CAM), saliency maps and heat maps."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..backbones import LOGITS, Backbone
from ..errors import check
from ..features import Stage
from ..images import check_image, max_normalised
from ..loop import Cancel, Item, Progress, ProgressFn, for_each_item
from ..memory import pass_memory
from ..precision import LossScale, autocast_dtype
from ..pyramid import gaussian_blur, resize
from .predict import item_targets

__all__ = ["attribution", "attribution_memory", "saliency_map", "heatmap", "last_feature_layer", "SALIENCY_METHODS", "BASELINES", "ATTRIBUTION_CHUNK"]

SALIENCY_METHODS = ("gradient", "smoothgrad", "gradient_x_input", "integrated_gradients", "gradcam")
BASELINES = ("black", "blur")
ATTRIBUTION_CHUNK = 16
"""SmoothGrad samples or integrated-gradient path points sent through the network at once."""


def _score_gradient(points: Tensor, backbone: Backbone, target: int, item: Item, loss_scale: LossScale) -> Tensor:
    """:math:`\\partial f_t / \\partial x` at each of ``points`` :math:`(N, 3, H, W)`, in chunks of
    :data:`ATTRIBUTION_CHUNK`: ``cancel`` is asked before each chunk and one progress step reported after it."""
    extractor = backbone.extractor([LOGITS])
    gradients = []
    for chunk in points.split(ATTRIBUTION_CHUNK):
        item.check_cancel()
        leaf = chunk.detach().requires_grad_(True)
        with torch.enable_grad():
            gradients += loss_scale.gradients(lambda: extractor(leaf)[LOGITS][:, target].float(), [leaf],
                                              leaf.device)[1]
        item.progress.step()
    return torch.cat(gradients)


def _points(method: str, samples: int, steps: int) -> int:
    """How many gradients one item's attribution takes (noisy samples, path points, or one)."""
    return {"smoothgrad": samples, "integrated_gradients": steps}.get(method, 1)


def attribution_memory(size: tuple[int, int], backbone: Backbone, method: str = "gradient", samples: int = 25,
                       steps: int = 64) -> int:
    """Bytes an :func:`attribution` of one ``(H, W)`` item needs beyond the weights: a
    :func:`~dream_core.memory.pass_memory` of as many inputs as it sends at once (up to
    :data:`ATTRIBUTION_CHUNK` noisy samples or path points)."""
    return pass_memory(size, backbone, {LOGITS}, inputs=min(_points(method, samples, steps), ATTRIBUTION_CHUNK))


def attribution(image: Tensor, backbone: Backbone, target: int | None = None, method: str = "gradient", *,
                samples: int = 25, noise: float = 0.15, steps: int = 64, baseline: str = "black",
                layer: str | None = None, seed: int = 0, precision: str = "auto",
                progress: Progress | ProgressFn | None = None, cancel: Cancel | None = None) -> Tensor:
    """How much each input pixel (or, for Grad-CAM, each position of ``layer``) counts for class ``target``.

    Each method is its standard definition, as captum implements it, on the model ``x -> logits(x)``
    (``f_t`` the target's score, ``x`` the image in 0..1):

    - ``gradient``: :math:`|\\partial f_t / \\partial x|` (captum ``Saliency``);
    - ``smoothgrad``: the mean of that gradient's magnitude at ``samples`` copies of ``x`` with
      Gaussian noise of std ``noise`` (captum ``NoiseTunnel(Saliency)``, ``nt_type="smoothgrad"``);
    - ``gradient_x_input``: :math:`x \\cdot \\partial f_t / \\partial x` (captum ``InputXGradient``);
    - ``integrated_gradients``: :math:`(x - b) \\int_0^1 \\partial f_t(b + \\alpha (x - b)) d\\alpha`, the
      integral by ``steps``-point Gauss-Legendre quadrature, captum's default; the baseline ``b`` is
      ``black`` (zeros) or ``blur`` (the image blurred, sigma 1/20 of its longer side);
    - ``gradcam``: :math:`\\mathrm{ReLU}(\\sum_k w_k A_k)` with :math:`w_k` the spatial mean of
      :math:`\\partial f_t / \\partial A_k` at ``layer`` (default: the backbone's default layer; captum
      ``LayerGradCam`` with ``relu_attributions=True``).

    Args:
        target: the class; None or -1 = each item's predicted class.
        seed: item ``i`` draws its SmoothGrad noise from ``seed + i``.
        precision: the network's (:func:`~dream_core.precision.autocast_dtype`); fp16 is loss-scaled.
        progress, cancel: one step per chunk of :data:`ATTRIBUTION_CHUNK` gradients (per noisy sample or path
            point batch); cancel is asked before each.

    Returns:
        :math:`(B, 3, H, W)` on the image's device, or :math:`(B, 1, h, w)` at ``layer`` for ``gradcam``.
    """
    picture = check_image(image)
    check(method in SALIENCY_METHODS, f"method: unknown {method!r}; choose one of {', '.join(SALIENCY_METHODS)}.")
    check(baseline in BASELINES, f"baseline: unknown {baseline!r}; choose one of {', '.join(BASELINES)}.")
    check(samples >= 1 and steps >= 1, f"samples and steps: must be 1 or more, got {samples} and {steps}.")
    check(noise >= 0, f"noise: must be 0 or more, got {noise}.")
    smallest = backbone.extractor([LOGITS]).min_input_size()
    check(min(picture.shape[-2:]) >= smallest, f"image: {picture.shape[-2]}x{picture.shape[-1]} is smaller than "
          f"{backbone.name}'s smallest input ({smallest} px a side); enlarge it first (e.g. Upscale Image).")
    targets = item_targets(picture, backbone, target)
    loss_scale = LossScale(autocast_dtype(precision, backbone.device))  # the network's precision, fp16 scaled

    def attribute(item: Item) -> Tensor:
        x, target = item.take(picture), targets[item.index]

        def gradient(points: Tensor) -> Tensor:
            return _score_gradient(points, backbone, target, item, loss_scale)

        if method == "gradient":
            return gradient(x).abs()
        if method == "smoothgrad":
            noisy = x + noise * torch.randn((samples, *x.shape[1:]), generator=item.generator).to(x.device)
            return gradient(noisy).abs().mean(0, keepdim=True)
        if method == "gradient_x_input":
            return x * gradient(x)
        if method == "integrated_gradients":
            start = torch.zeros_like(x) if baseline == "black" else gaussian_blur(x, max(x.shape[-2:]) / 20)
            nodes, weights = np.polynomial.legendre.leggauss(steps)
            alphas = torch.tensor((nodes + 1) / 2, dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)
            path_weights = torch.tensor(weights / 2, dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)
            gradients = gradient(start + alphas * (x - start))
            return (x - start) * (path_weights * gradients).sum(0, keepdim=True)
        item.check_cancel()
        cam = _grad_cam(x, backbone, target, backbone.resolve(layer or last_feature_layer(backbone)), loss_scale)
        item.progress.step()
        return cam

    return for_each_item(len(targets), attribute, device=backbone.device, steps=-(-_points(method, samples, steps) // ATTRIBUTION_CHUNK),
                         seed=seed, progress=progress, cancel=cancel, to=picture.device)


def last_feature_layer(backbone: Backbone) -> str:
    """The deepest layer before ``logits``: where Grad-CAM looks by default."""
    layers = [name for name in backbone.spec.layers if name != LOGITS]
    check(bool(layers), f"layer: {backbone.name} has no layer before its logits.")
    return layers[-1]


def _grad_cam(x: Tensor, backbone: Backbone, target: int, layer: str, loss_scale: LossScale) -> Tensor:
    check(layer != LOGITS, "layer: Grad-CAM needs a convolutional layer, not 'logits'.")
    check(not isinstance(dict(backbone.stages)[layer], Stage),
          f"layer: {layer} of {backbone.name} is a transformer's tokens shown as a map, which the logits do not "
          "read (they read the tokens); Grad-CAM needs a convolutional layer: use gradient, smoothgrad or "
          "integrated_gradients on a transformer.")
    extractor = backbone.extractor([layer, LOGITS])
    leaf, seen = x.detach().requires_grad_(True), {}

    def score() -> Tensor:
        acts = extractor(leaf)
        seen["activation"] = acts[layer]
        return acts[LOGITS][:, target].float()

    with torch.enable_grad():
        _, (gradient,) = loss_scale.gradients(score, lambda: [seen["activation"]], leaf.device)
    weights = gradient.float().mean((2, 3), keepdim=True)
    return torch.relu((weights * seen["activation"].detach().float()).sum(1, keepdim=True))


def saliency_map(image: Tensor, backbone: Backbone, target: int | None = None, method: str = "gradient",
                 **options) -> Tensor:
    """:func:`attribution` as one map per item :math:`(B, 1, H, W)` in 0..1 (each item divided by its maximum).

    Pixel methods reduce the colour channels as CS231n does for the gradient: the largest magnitude
    (``gradient``, ``smoothgrad``), or the magnitude of the sum (``gradient_x_input``,
    ``integrated_gradients``, whose sum over pixels is the score difference); Grad-CAM is upsampled
    bilinearly to the image.
    """
    attributions = attribution(image, backbone, target, method, **options)
    if method in ("gradient", "smoothgrad"):
        maps = attributions.abs().amax(1, keepdim=True)
    elif method == "gradcam":
        maps = resize(attributions, tuple(image.shape[-2:])).clamp_min(0)
    else:
        maps = attributions.sum(1, keepdim=True).abs()
    return max_normalised(maps)


def heatmap(image: Tensor, saliency: Tensor, blend: float = 0.5) -> Tensor:
    """A saliency map :math:`(B, 1, H, W)` coloured (jet: blue low, red high) over ``image``
    :math:`(B, 3, H, W)`: ``(1 - blend) * image + blend * colours``."""
    from kornia.color import ColorMap, apply_colormap

    check(0.0 <= blend <= 1.0, f"blend: must be in 0..1, got {blend}.")
    colours = apply_colormap(saliency.clamp(0, 1), ColorMap("jet", device=saliency.device))
    return torch.lerp(check_image(image).to(saliency.device), colours, blend)
