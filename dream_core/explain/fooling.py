"""How little it takes to change a classifier's mind: fooling images (CS231n's ascent, FGSM, PGD)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..backbones import LOGITS, Backbone
from ..errors import check
from ..images import check_image
from ..loop import Ascent, Cancel, Item, Progress, ProgressFn, for_each_item
from ..objectives import Objective
from ..precision import autocast_dtype
from .predict import Prediction, class_count, classify, label_names

__all__ = ["fool", "FoolingReport", "FOOLING_METHODS"]

FOOLING_METHODS = ("ascent", "fgsm", "pgd")


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
    classes = class_count(backbone, target)
    check(max_steps >= 1, f"max_steps: must be 1 or more, got {max_steps}.")
    check(0 < epsilon <= 1, f"epsilon: must be in (0, 1] pixel units, got {epsilon}.")
    extractor = backbone.extractor([LOGITS])
    wanted = Objective(lambda acts: acts[LOGITS].float().log_softmax(1)[:, target], [LOGITS],
                       f"log_softmax(logits)[{target}]")
    batch_ascent = Ascent(extractor, wanted, step_size=step_size, autocast=autocast_dtype(precision, backbone.device),
                          cancel=cancel)  # one loss scale for the whole batch
    names = label_names(backbone, classes)
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
