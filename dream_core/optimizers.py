"""The loss drivers' loop: minimise (or maximise) an objective of a rendered image with Adam or L-BFGS,
on the same items, progress, cancel and precision as the ascent drivers (:mod:`dream_core.loop`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .ascent import random_shift
from .errors import check
from .features import FeatureExtractor
from .loop import Cancel, Progress, ProgressFn
from .objectives import Objective
from .precision import LossScale, finite_or_zero

__all__ = ["optimize", "OPTIMIZERS", "LBFGS_HISTORY"]

OPTIMIZERS = ("adam", "lbfgs")
LBFGS_HISTORY = 100
"""Steps L-BFGS remembers (neural-style-pt's default): two image-sized tensors each."""


def optimize(
    parameters: Sequence[Tensor],
    render: Callable[[], Tensor],
    extractor: FeatureExtractor,
    objective: Objective,
    *,
    steps: int,
    optimizer: str | Callable[[list[Tensor]], torch.optim.Optimizer] = "adam",
    lr: float = 0.05,
    jitter: int = 0,
    generator: torch.Generator | None = None,
    autocast: torch.dtype | None = None,
    progress: Progress | ProgressFn | None = None,
    cancel: Cancel | None = None,
    ema: float = 0.0,
    transform: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    gradient_sum: Tensor | None = None,
    penalty: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Raise ``objective`` by minimising ``-objective(render())`` over ``parameters`` with an optimizer.

    The loop of the loss drivers (style transfer, feature inversion): each evaluation rolls the
    rendered image by a random jitter, runs the network, and backpropagates to the parameters; it
    asks ``cancel`` first and reports one progress step after. L-BFGS runs its ``steps`` evaluations
    inside one ``optimizer.step(closure)``, so cancel and progress come from the closure.

    Args:
        parameters: the tensors to optimise (``requires_grad`` is switched on).
        render: builds the image :math:`(B, 3, H, W)` from ``parameters``; 0..1 RGB is expected.
        extractor, objective: what to raise; the objective may read the image (``"input"``).
        steps: optimizer steps (Adam) or function evaluations (L-BFGS).
        optimizer: ``"adam"``, ``"lbfgs"`` or a factory ``params -> torch.optim.Optimizer``.
        lr: Adam's learning rate (L-BFGS uses 1 with a strong-Wolfe line search).
        jitter, generator: the random roll before each evaluation, and its stream.
        autocast: the network's precision; the loss and the update stay float32, fp16 gradients are
            loss-scaled.
        progress, cancel: as in :class:`Ascent`.
        ema: decay of an exponential moving average of the parameters over the steps (bias-corrected,
            as crowsonkb's style transfer does with Adam); the result is rendered from the average,
            which smooths the step-to-step noise of Adam. 0 = off; ignored by L-BFGS.
        transform: ``transform(image, generator)``, what the network sees instead of the jittered
            image (robustness transforms of feature visualisation); the result is not transformed. An
            objective seen through cutouts (``objective.views``) is scored on crops of that.
        gradient_sum: a tensor shaped like the image, to which every evaluation adds
            :math:`|\\partial \\text{objective} / \\partial \\text{image}|` (MaCo's transparency map: where
            the objective kept asking for change).
        penalty: ``penalty(image)``, a loss on the rendered picture itself, before jitter, transforms and
            cutouts (feature accentuation's pull back to the picture it started from).

    Returns:
        ``render()`` after the last step, detached and clamped to 0..1.
    """
    check(steps >= 0, f"steps: must be 0 or more, got {steps}.")
    check(callable(optimizer) or optimizer in OPTIMIZERS,
          f"optimizer: unknown {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}.")
    check(0.0 <= ema < 1.0, f"ema: the average's decay must be in 0..1 (0 = off), got {ema}.")
    parameters = [p.requires_grad_(True) for p in parameters]
    if optimizer == "adam":
        optim = torch.optim.Adam(parameters, lr=lr)
    elif optimizer == "lbfgs":
        optim = torch.optim.LBFGS(parameters, lr=1.0, max_iter=steps, max_eval=steps, tolerance_grad=-1,
                                  tolerance_change=-1, history_size=LBFGS_HISTORY, line_search_fn="strong_wolfe")
    else:
        optim = optimizer(parameters)
    progress = Progress.of(progress)
    progress.begin(steps)
    generator = generator or torch.Generator().manual_seed(0)

    loss_scale = LossScale(autocast)
    last_finite = torch.zeros(())  # the loss L-BFGS is told when a pass has none
    skipped = False  # the last pass had no finite loss: Adam takes no step (its momentum would move)

    def closure() -> Tensor:
        nonlocal last_finite, skipped
        progress.check_cancel(cancel)
        while True:  # again at a smaller loss scale when fp16 gradients overflow
            optim.zero_grad(set_to_none=True)
            with torch.enable_grad():
                image = render()
                if gradient_sum is not None:
                    image.retain_grad()
                if transform is not None:
                    seen = transform(image, generator)
                else:
                    shift = random_shift(generator, jitter)
                    seen = torch.roll(image, shift, dims=(2, 3)) if any(shift) else image
                if objective.views is not None:  # cutouts: each item's score is the mean over its crops
                    seen = objective.views.draw(seen.shape, [generator] * seen.shape[0])(seen)
                with torch.autocast(image.device.type, dtype=autocast, enabled=autocast is not None):
                    scores = objective(extractor(seen)).float()
                loss = -(scores if objective.views is None else scores.view(image.shape[0], -1).mean(1)).sum()
                if penalty is not None:
                    loss = loss + penalty(image).float()
                skipped = not bool(torch.isfinite(loss))
                if skipped:  # the forward pass failed (no scale cures that): no step, no NaN for L-BFGS, scale as it was
                    for p in parameters:
                        p.grad = torch.zeros_like(p)
                    loss = last_finite
                    break
                (loss * loss_scale.scale).backward()
            gradients = [p.grad.div_(loss_scale.scale) for p in parameters if p.grad is not None]
            if loss_scale.accept(gradients):
                break
        if gradient_sum is not None and image.grad is not None and not skipped:
            gradient_sum.add_(finite_or_zero(image.grad.detach().abs() / loss_scale.scale))
        last_finite = loss.detach()
        loss_scale.end_step()
        progress.step(image[0].detach())
        return loss.detach()

    if steps and isinstance(optim, torch.optim.LBFGS):
        optim.step(closure)
        if progress.taken < steps:  # converged before max_eval: the rest counts as done
            progress.step(steps=steps)
    else:
        average = _MovingAverage(parameters, ema) if ema else None
        for _ in range(steps):
            closure()
            if not skipped:
                optim.step()
            if average is not None:
                average.update()
        if average is not None and steps:
            average.apply()
    with torch.no_grad():
        return render().detach().clamp(0.0, 1.0)


class _MovingAverage:
    """Bias-corrected exponential moving average of some tensors: ``sum_t d^(T-t) (1-d) x_t / (1 - d^T)``."""

    def __init__(self, tensors: Sequence[Tensor], decay: float) -> None:
        self.tensors, self.decay, self.weight = list(tensors), decay, 1.0
        self.sums = [torch.zeros_like(t, requires_grad=False) for t in self.tensors]

    @torch.no_grad()
    def update(self) -> None:
        for total, tensor in zip(self.sums, self.tensors):
            total.mul_(self.decay).add_(tensor, alpha=1 - self.decay)
        self.weight *= self.decay

    @torch.no_grad()
    def apply(self) -> None:
        """Set the tensors to their average."""
        for total, tensor in zip(self.sums, self.tensors):
            tensor.copy_(total / (1 - self.weight))
