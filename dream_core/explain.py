"""Explaining a classifier with image gradients: what it predicts, where it looks, what it wants to
see, how little it takes to fool it, and what one of its layers keeps.

The tools of CS231n's network-visualisation assignment (saliency maps, fooling images, class
visualisation, feature inversion) and the attribution methods captum made standard (SmoothGrad,
gradient x input, integrated gradients, Grad-CAM), for any backbone with a ``logits`` layer, on the
same extractor and loop as the dreams. Images are :math:`(B, 3, H, W)` in 0..1; "the model" is the
backbone's logits as a function of that image (its normalisation included).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from .backbones import LOGITS, Backbone
from .errors import DreamError, check
from .features import Stage
from .images import check_image
from .loop import Ascent, Cancel, Item, Progress, ProgressFn, for_each_item, optimize
from .memory import pass_memory
from .objectives import Objective, channel, content, pixel_l2, total_variation
from .precision import LossScale, autocast_dtype, running_in
from .pyramid import gaussian_blur, octave_sizes, resize
from .references import reference_activations

__all__ = ["Prediction", "classify", "logits", "attribution", "attribution_memory", "saliency_map", "heatmap", "class_visualize",
           "fool", "FoolingReport", "invert_features", "psnr", "last_feature_layer", "SALIENCY_METHODS", "BASELINES", "FOOLING_METHODS",
           "ATTRIBUTION_CHUNK"]

SALIENCY_METHODS = ("gradient", "smoothgrad", "gradient_x_input", "integrated_gradients", "gradcam")
BASELINES = ("black", "blur")
FOOLING_METHODS = ("ascent", "fgsm", "pgd")
ATTRIBUTION_CHUNK = 16
"""SmoothGrad samples or integrated-gradient path points sent through the network at once."""


@dataclass(frozen=True)
class Prediction:
    """One class of a prediction: its index, its name and its probability."""

    index: int
    name: str
    probability: float

    def __str__(self) -> str:
        return f"{self.name} ({self.probability:.1%})"


def logits(image: Tensor, backbone: Backbone, precision: str = "fp32") -> Tensor:
    """The classifier's scores :math:`(B, \\text{classes})` for ``image``, without gradients; an image smaller
    than the network's smallest input is enlarged first."""
    picture = check_image(image).to(backbone.device)
    _check_classifier(backbone)
    extractor = backbone.extractor([LOGITS])
    smallest, height, width = extractor.min_input_size(), *picture.shape[-2:]
    if min(height, width) < smallest:  # too small for the network's strides: classify it enlarged
        scale = smallest / min(height, width)
        picture = resize(picture, (max(smallest, round(height * scale)), max(smallest, round(width * scale))))
    with torch.no_grad(), running_in(autocast_dtype(precision, picture.device), picture.device):
        return extractor(picture)[LOGITS].float()


def classify(image: Tensor, backbone: Backbone, top_k: int = 5, precision: str = "auto") -> list[list[Prediction]]:
    """The ``top_k`` most probable classes of each item, most probable first.

    Example:
        >>> from dream_core import load_backbone
        >>> net = load_backbone("alexnet", "random")
        >>> top = classify(torch.rand(2, 3, 64, 64), net, top_k=3)
        >>> len(top), len(top[0]), isinstance(top[0][0].name, str)
        (2, 3, True)
    """
    check(top_k >= 1, f"top_k: must be 1 or more, got {top_k}.")
    probabilities = logits(image, backbone, precision).softmax(1).cpu()
    names = _names(backbone, probabilities.shape[1])
    values, indices = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    return [[Prediction(int(i), names[int(i)], float(v)) for v, i in zip(row_values, row_indices)]
            for row_values, row_indices in zip(values, indices)]


def _names(backbone: Backbone, count: int) -> list[str]:
    names = backbone.class_names or []
    return list(names) if len(names) == count else [f"class {i}" for i in range(count)]


def _check_classifier(backbone: Backbone) -> None:
    if LOGITS not in backbone.spec.layers:
        raise DreamError(f"backbone: {backbone.name} has no 'logits' layer, so it cannot classify; use a "
                         "registry backbone or name the classifier stage 'logits' in backbone_from_module.")


def _class_count(backbone: Backbone, target: int) -> int:
    """The backbone's number of classes, after checking it has a classifier and ``target`` is one of them."""
    _check_classifier(backbone)
    classes = backbone.spec.layers[LOGITS]
    check(0 <= target < classes, f"target: {backbone.name} has classes 0..{classes - 1}, got {target}.")
    return classes


def _targets(image: Tensor, backbone: Backbone, target: int | None) -> list[int]:
    """Per-item class indices: ``target`` for all, or each item's predicted class for None or -1 (the
    only case that needs a forward pass)."""
    if target is None or target == -1:
        return logits(image, backbone).argmax(1).tolist()
    _class_count(backbone, target)
    return [target] * image.shape[0]


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
    targets = _targets(picture, backbone, target)
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
    return maps / maps.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)


def heatmap(image: Tensor, saliency: Tensor, blend: float = 0.5) -> Tensor:
    """A saliency map :math:`(B, 1, H, W)` coloured (jet: blue low, red high) over ``image``
    :math:`(B, 3, H, W)`: ``(1 - blend) * image + blend * colours``."""
    from kornia.color import ColorMap, apply_colormap

    check(0.0 <= blend <= 1.0, f"blend: must be in 0..1, got {blend}.")
    colours = apply_colormap(saliency.clamp(0, 1), ColorMap("jet", device=saliency.device))
    return torch.lerp(check_image(image).to(saliency.device), colours, blend)


def class_visualize(backbone: Backbone, target: int, *, size: tuple[int, int] | None = None, batch: int = 1,
                    steps: int = 100, step_size: float = 0.02, l2_weight: float = 1.0, jitter: int = 16,
                    blur_sigma: float = 0.5, blur_every: int = 10, octaves: int = 1, octave_scale: float = 1.4,
                    init: Tensor | None = None, seed: int = 0, precision: str = "auto",
                    progress: Progress | ProgressFn | None = None, cancel: Cancel | None = None) -> Tensor:
    """Pictures the network takes for class ``target``: gradient ascent on its score from noise.

    CS231n's regularised recipe (Simonyan et al.) on our ascent loop: each step raises
    ``f_target - l2_weight * mean((x - 0.5)^2)`` by a normalised gradient step under random jitter,
    then clamps to 0..1, and every ``blur_every`` steps blurs the picture a little (sigma
    ``blur_sigma``). With ``octaves`` above 1 it starts small and grows by ``octave_scale``, which
    gives larger shapes.

    Args:
        size: ``(H, W)``; default: the backbone's native square.
        batch: pictures to make, item ``i`` from the noise of ``seed + i`` (or each from ``init``).
        init: start from this image :math:`(1 \\text{ or } B, 3, H, W)` instead of noise (resized).

    Returns:
        :math:`(\\text{batch}, 3, H, W)` in 0..1 on the backbone's device.
    """
    _class_count(backbone, target)
    check(batch >= 1 and steps >= 0, f"batch and steps: need batch >= 1 and steps >= 0, got {batch}, {steps}.")
    check(blur_every >= 0 and blur_sigma >= 0, "blur_every and blur_sigma: must be 0 (off) or more.")
    height, width = size or (backbone.spec.native_size,) * 2
    starts = None if init is None else check_image(init, "init_image")
    sizes = octave_sizes((height, width), octaves, octave_scale, max(32, backbone.extractor([LOGITS]).min_input_size()))
    objective = channel(LOGITS, target) - l2_weight * pixel_l2()

    def blur(picture: Tensor, step: int) -> Tensor:
        return gaussian_blur(picture, blur_sigma) if blur_every and blur_sigma and step % blur_every == 0 else picture

    def visualize(item: Item) -> Tensor:
        x = torch.rand((1, 3, *sizes[0]), generator=item.generator) if starts is None else item.take(starts)
        ascent = Ascent(backbone.extractor(objective.layers), objective, step_size=step_size, jitter=jitter,
                        autocast=autocast_dtype(precision, backbone.device), cancel=cancel)
        x = x.to(item.device)
        for level, level_size in enumerate(sizes):
            part = item.progress.part(level, len(sizes))
            part.begin(steps)
            x = replace(ascent, progress=part).run(resize(x, level_size).clamp(0, 1), steps, item.generator,
                                                   after_step=blur)
        return x

    return for_each_item(batch, visualize, device=backbone.device, steps=len(sizes) * steps, seed=seed,
                         progress=progress, cancel=cancel)


@dataclass(frozen=True)
class FoolingReport:
    """What a fooling attempt did to one image."""

    before: Prediction
    after: Prediction
    target: Prediction
    reached: bool
    steps: int
    linf: float
    l2: float

    def __str__(self) -> str:
        outcome = "fooled" if self.reached else "NOT fooled"
        return (f"{outcome}: {self.before} -> {self.after} (target {self.target.name}) in {self.steps} steps; "
                f"change L-inf {self.linf:.4f} ({self.linf * 255:.1f}/255), L2 {self.l2:.3f}")


def fool(image: Tensor, backbone: Backbone, target: int, *, method: str = "ascent", max_steps: int = 100,
         step_size: float = 0.002, epsilon: float = 8 / 255, seed: int = 0, precision: str = "auto",
         progress: Progress | ProgressFn | None = None,
         cancel: Cancel | None = None) -> tuple[Tensor, list[FoolingReport]]:
    """The smallest change this method finds that makes the network say ``target``, per item.

    - ``ascent`` (CS231n): normalised gradient steps of ``step_size`` on the target's log-probability
      until the prediction is the target or ``max_steps``.
    - ``fgsm``: one step of ``epsilon`` along the sign of that gradient (Goodfellow et al.).
    - ``pgd``: sign steps of ``2.5 * epsilon / max_steps`` from a seeded random start in the
      L-inf ball of radius ``epsilon``, projected back into it after each step (Madry et al.); stops
      once the target is reached. Its change never exceeds ``epsilon``.

    Returns:
        The fooled images :math:`(B, 3, H, W)` and one :class:`FoolingReport` per item; an item that
        did not reach the target says so (``reached=False``).
    """
    picture = check_image(image)
    check(method in FOOLING_METHODS, f"method: unknown {method!r}; choose one of {', '.join(FOOLING_METHODS)}.")
    classes = _class_count(backbone, target)
    check(max_steps >= 1, f"max_steps: must be 1 or more, got {max_steps}.")
    check(0 < epsilon <= 1, f"epsilon: must be in (0, 1] pixel units, got {epsilon}.")
    extractor = backbone.extractor([LOGITS])
    wanted = Objective(lambda acts: acts[LOGITS].float().log_softmax(1)[:, target], [LOGITS],
                       f"log_softmax(logits)[{target}]")
    batch_ascent = Ascent(extractor, wanted, step_size=step_size, autocast=autocast_dtype(precision, backbone.device),
                          cancel=cancel)  # one loss scale for the whole batch
    names = _names(backbone, classes)
    reports = []

    def predicted(x: Tensor) -> int:
        with torch.no_grad():
            return int(extractor(x)[LOGITS].argmax(1))

    def attack(item: Item) -> Tensor:
        x, taken = item.take(picture), 0

        def reached(candidate: Tensor, _scores: Tensor) -> bool:
            nonlocal taken
            taken += 1
            return predicted(candidate) == target

        ascent = replace(batch_ascent, progress=item.progress)
        if method == "ascent" and predicted(x) == target:
            item.progress.step(steps=max_steps)
            fooled = x
        elif method == "ascent":
            fooled = ascent.run(x, max_steps, item.generator, stop=reached)
        elif method == "fgsm":  # one sign step of epsilon
            item.progress.begin(1)
            fooled, taken = replace(ascent, step_size=epsilon, grad_norm="sign").run(x, 1, item.generator), 1
        else:  # pgd: sign steps from a random start in the epsilon ball, projected back into it
            start = (torch.rand(x.shape, generator=item.generator) * 2 - 1).to(x.device) * epsilon

            def project(candidate: Tensor, _step: int) -> Tensor:
                return torch.min(torch.max(candidate, x - epsilon), x + epsilon).clamp(0, 1)

            fooled = replace(ascent, step_size=2.5 * epsilon / max_steps, grad_norm="sign").run(
                (x + start).clamp(0, 1), max_steps, item.generator, stop=reached, after_step=project)
        reports.append(report(x, fooled, taken))
        return fooled

    def report(original: Tensor, fooled: Tensor, steps: int) -> FoolingReport:
        before, after = (classify(x, backbone, 1)[0][0] for x in (original, fooled))
        with torch.no_grad():
            target_probability = float(extractor(fooled)[LOGITS].float().softmax(1)[0, target])
        change = (fooled - original).flatten()
        return FoolingReport(before, after, Prediction(target, names[target], target_probability),
                             after.index == target, steps, float(change.abs().max()), float(change.norm()))

    fooled = for_each_item(picture.shape[0], attack, device=backbone.device, steps=max_steps, seed=seed,
                           progress=progress, cancel=cancel, to=picture.device)
    return fooled, reports


def invert_features(image: Tensor, backbone: Backbone, layer: str, *, steps: int = 200,
                    learning_rate: float = 0.05, tv_weight: float = 0.5, l2_weight: float = 0.0, jitter: int = 0,
                    optimizer: str = "adam", seed: int = 0, precision: str = "auto",
                    progress: Progress | ProgressFn | None = None, cancel: Cancel | None = None) -> Tensor:
    """An image whose features at ``layer`` match ``image``'s: what that layer keeps (Mahendran & Vedaldi).

    From seeded noise (item ``i`` from ``seed + i``), minimise the relative feature distance
    (:func:`~dream_core.objectives.content`) plus ``tv_weight`` times the total variation and
    ``l2_weight`` times the distance of the pixels from mid-grey, with Adam or L-BFGS.
    Early layers give back the picture; deep ones keep the parts that matter to the class.

    Returns:
        :math:`(B, 3, H, W)` in 0..1 on ``image``'s device.
    """
    pictures = check_image(image)
    layer = backbone.resolve(layer)
    check(tv_weight >= 0 and l2_weight >= 0, "tv_weight and l2_weight: must be 0 or more.")
    autocast = autocast_dtype(precision, backbone.device)

    def invert(item: Item) -> Tensor:
        original = item.take(pictures)
        target = reference_activations(backbone, original, [layer])[layer]
        objective = content(layer, target) - tv_weight * total_variation() - l2_weight * pixel_l2()
        pixels = torch.rand(original.shape, generator=item.generator).to(item.device)
        return optimize([pixels], lambda: pixels.clamp(0, 1), backbone.extractor(objective.layers), objective,
                        steps=steps, optimizer=optimizer, lr=learning_rate, jitter=jitter, generator=item.generator,
                        autocast=autocast, progress=item.progress, cancel=cancel)

    return for_each_item(pictures.shape[0], invert, device=backbone.device, steps=steps, seed=seed,
                         progress=progress, cancel=cancel, to=image.device)


def psnr(image: Tensor, reference: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB of 0..1 images, per item: ``10 log10(1 / MSE)``."""
    mse = (image - reference).square().flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(1 / mse)

