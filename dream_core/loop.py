"""The loop every driver runs on.

Two kinds of drivers share it. Ascent drivers (dreams, class visualisation, fooling images) take
normalised gradient steps on the image with :class:`Ascent`; loss drivers (style transfer, feature
inversion) minimise with a ``torch.optim`` optimizer in :func:`optimize`. Both give each batch item
its own seeded jitter stream (:func:`item_generator`), ask ``cancel`` before every step (every
L-BFGS evaluation included), report to one :class:`Progress` that can span many calls, and run the
network under the chosen autocast precision. Ascent steps also get the tile policy with its
out-of-memory fallback and early stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .ascent import TILE_ALIGN, ascent_step, random_shift
from .errors import DreamCancelled, DreamError, check
from .features import FeatureExtractor
from .objectives import Objective
from .precision import PRECISIONS, LossScale, autocast_dtype

log = logging.getLogger("DeepDreamNodes")

__all__ = ["Progress", "ProgressFn", "Cancel", "Ascent", "TilePolicy", "optimize", "item_generator",
           "Item", "for_each_item", "autocast_dtype", "PRECISIONS", "OPTIMIZERS", "LBFGS_HISTORY", "tuned_for"]  # precision's re-exported

ProgressFn = Callable[[int, int, "Tensor | None"], None]
"""``report(done, total, preview)``: after every step; ``preview`` is the current item :math:`(3, h, w)`
in 0..1 on the compute device (read it, never modify it)."""
Cancel = Callable[[], bool]
"""``cancel()`` is asked before every step; returning True stops the work with :class:`DreamCancelled`
(a host's own interrupt exception raised from it passes through unchanged)."""

OPTIMIZERS = ("adam", "lbfgs")
LBFGS_HISTORY = 100
"""Steps L-BFGS remembers (neural-style-pt's default): two image-sized tensors each."""


class Progress:
    """Where a job made of many calls stands, reported as ``report(done, total, preview)``.

    A driver given a Progress calls :meth:`begin` once with the number of steps it will take, then
    :meth:`step` after each. A job of several calls (frames x octaves x steps, scales x steps) hands
    each call a part of itself, ``job.part(i, n)``, so one report runs from 0 to ``total`` across all
    of them. With ``total=None`` the total is the step count of the first :meth:`begin`, so a plain
    callback sees ``(step, steps, preview)``.

    Example:
        >>> seen = []
        >>> job = Progress(lambda done, total, preview: seen.append(done), total=100)
        >>> for frame in range(2):
        ...     call = job.part(frame, 2)
        ...     call.begin(5)
        ...     for _ in range(5):
        ...         call.step()
        >>> seen
        [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    """

    def __init__(self, report: ProgressFn | None = None, total: int | None = None) -> None:
        self.report, self.total = report, total
        self.root, self.start, self.stop = self, 0.0, 1.0
        self.steps = self.taken = 0

    @classmethod
    def of(cls, progress: Progress | ProgressFn | None) -> Progress:
        """``progress`` itself, or a new Progress reporting to a plain callback (or to nothing)."""
        return progress if isinstance(progress, Progress) else cls(progress)

    def part(self, index: int, count: int, length: int = 1) -> Progress:
        """Parts ``index`` .. ``index + length - 1`` of ``count`` equal parts of this progress's span."""
        check(0 <= index and length >= 1 and index + length <= count,
              f"progress: part {index} of {count} does not exist." if length == 1 else
              f"progress: parts {index}..{index + length - 1} of {count} do not exist.")
        child = Progress()
        width = (self.stop - self.start) / count
        child.root, child.start = self.root, self.start + index * width
        child.stop = self.start + (index + length) * width
        return child

    def begin(self, steps: int) -> None:
        """Say how many steps this part takes (0 for none)."""
        self.steps, self.taken = steps, 0
        if self.root.total is None:
            self.root.total = steps

    def step(self, preview: Tensor | None = None, steps: int = 1) -> None:
        """Count ``steps`` more steps done (skipped steps count as done) and report."""
        self.taken = min(self.steps, self.taken + steps)
        if self.root.report is not None:
            self.root.report(self.done, self.root.total or 0, preview)

    @property
    def done(self) -> int:
        """Steps done in the whole job, in units of its ``total``."""
        fraction = self.taken / self.steps if self.steps else 1.0
        return round((self.root.total or 0) * (self.start + (self.stop - self.start) * fraction))

    def check_cancel(self, cancel: Cancel | None) -> None:
        """Raise :class:`DreamCancelled` if ``cancel()`` says so (called before every step)."""
        if cancel is not None and cancel():
            raise DreamCancelled(f"cancelled at step {self.done} of {self.root.total}")


def item_generator(seed: int, index: int) -> torch.Generator:
    """The CPU random stream of batch item ``index``: seeded ``seed + index``, so an item dreams the
    same alone or in a batch, on every device."""
    return torch.Generator().manual_seed((seed + index) % 2**64)


@contextmanager
def tuned_for(device: torch.device) -> Iterator[None]:
    """cuDNN autotuning for the length of a run (unless the user asked for determinism), restored after."""
    if device.type != "cuda" or torch.backends.cudnn.deterministic:
        yield
        return
    with torch.backends.cudnn.flags(enabled=True, benchmark=True, deterministic=False,
                                    allow_tf32=torch.backends.cudnn.allow_tf32):
        yield



@dataclass(frozen=True)
class Item:
    """What one run of a driver works on: a batch item, or a chunk of items dreamed together.

    Args:
        indices: the items' places in the batch.
        generators: their random streams, one per item (:func:`item_generator`).
        progress: their part of the job, begun with their steps.
        device: where they are computed.
        cancel: the job's cancel (see :meth:`check_cancel`).
    """

    indices: range
    generators: list[torch.Generator]
    progress: Progress
    device: torch.device
    cancel: Cancel | None = None

    @property
    def index(self) -> int:
        """The (first) item's place in the batch."""
        return self.indices.start

    @property
    def generator(self) -> torch.Generator:
        """The (first) item's random stream."""
        return self.generators[0]

    def check_cancel(self) -> None:
        """Raise :class:`DreamCancelled` if the job is cancelled (for runs that step outside a loop)."""
        self.progress.check_cancel(self.cancel)

    def take(self, batch: Tensor) -> Tensor:
        """These items of ``batch`` :math:`(B, ...)`, or all of a batch of one (shared by every item), on
        the device."""
        picked = batch if batch.shape[0] == 1 else batch[self.indices.start:self.indices.stop]
        return picked.to(self.device)


def for_each_item(count: int, run: Callable[[Item], Tensor], *, device: torch.device, steps: int, seed: int = 0,
                  progress: Progress | ProgressFn | None = None, cancel: Cancel | None = None, chunk: int = 1,
                  to: torch.device | None = None) -> Tensor:
    """``run(item)`` for the ``count`` items of a batch, one at a time (or ``chunk`` at a time), concatenated.

    What every driver does around its single-item logic happens here: item ``i`` gets the random
    stream of ``seed + i`` and its share of the job's progress (``steps`` per item; a run may split
    it further with ``item.progress.part``) and the job's ``cancel``, which the run's loop asks before
    every step; cuDNN is tuned for the run, and each result moves to ``to`` (if given) as soon as it
    is made, so the batch never sits on the GPU whole.
    """
    job = Progress.of(progress)
    job.begin(count * steps)
    results = []
    with tuned_for(device):
        for start in range(0, count, chunk):
            indices = range(start, min(count, start + chunk))
            part = job.part(start, count, len(indices))
            part.begin(len(indices) * steps)
            result = run(Item(indices, [item_generator(seed, i) for i in indices], part, device, cancel))
            results.append(result if to is None else result.to(to))
    return torch.cat(results)

class TilePolicy:
    """Which tile size a step at a given size uses, and the smaller tiles to fall back to on out-of-memory.

    Images up to ``tile_above`` px (longer side) run whole, every octave of them: fast. In a dream of a
    larger image (``image_side`` above ``tile_above``) every octave larger than one tile runs in
    ``tile_size`` tiles, so its peak memory is one tile's working set plus a few image-sized buffers,
    whatever the image size. When a step runs out of GPU memory, it is retried untiled ->
    ``tile_size`` tiles -> half that, down to ``minimum``, and the smaller size is kept for the rest
    of the run; the first fallback is logged.
    """

    def __init__(self, tile_size: int = 0, tile_above: int = 0, minimum: int = 0, image_side: int = 0) -> None:
        self.tile_size, self.tile_above, self.minimum = tile_size, tile_above, minimum
        self.threshold = tile_size if image_side > tile_above else tile_above
        self.forced: int | None = None  # set by a fallback, then used for every size
        self.warned = False

    def for_size(self, size: tuple[int, int]) -> int:
        if self.forced is not None:
            return self.forced
        return self.tile_size if self.tile_size and max(size) > self.threshold else 0

    def run(self, step: Callable[..., tuple[Tensor, Tensor]], image: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        """``step(image, *args, tile_size=..., **kwargs)`` with this policy's tile size, retried on out-of-memory."""
        size = tuple(image.shape[-2:])
        while True:
            tile = self.for_size(size)
            try:
                return step(image, *args, tile_size=tile, **kwargs)
            except torch.OutOfMemoryError:
                smaller = (self.tile_size or 512) if tile == 0 else tile // 2
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if smaller < self.minimum:
                    raise DreamError(f"out of GPU memory at {size[0]}x{size[1]} even with {tile or 'no'} px tiles; "
                                     "free GPU memory (other models, other runs) or dream a smaller image.") from None
                if not self.warned:
                    log.warning("out of GPU memory at %dx%d; continuing with %d px tiles (slower, same picture).",
                                size[0], size[1], smaller)
                    self.warned = True
                self.forced = smaller


Stop = Callable[[Tensor, Tensor], bool]
"""``stop(image, scores)`` after a step: True ends the run early (the rest of its steps count as done)."""


@dataclass
class Ascent:
    """Normalised gradient-ascent steps on the image: the machinery every ascent driver shares.

    Args:
        extractor: runs the network to the layers ``objective`` reads.
        objective: the score to raise, one per batch item.
        step_size: the mean absolute pixel change per step (with ``grad_norm="mean_abs"``).
        jitter: the largest random roll in pixels, drawn before every step.
        grad_norm: ``"mean_abs"`` or ``"std"``.
        autocast: the network's precision (see :func:`autocast_dtype`); the update stays float32, and
            fp16 gradients are loss-scaled (:class:`~dream_core.precision.LossScale`, one per run).
        tiles: when to compute the gradient in tiles, and the out-of-memory fallback.
        tile_overlap: context around each tile.
        tile_align: tile edges fall on multiples of this (32 for CNNs; 1 for a transformer's native tiles).
        progress: one step reported per ascent step.
        cancel: asked before every step.
        max_loss: stop a run once every item's score is above this.
    """

    extractor: FeatureExtractor
    objective: Objective
    step_size: float = 0.01
    jitter: int = 0
    grad_norm: str = "mean_abs"
    autocast: torch.dtype | None = None
    tiles: TilePolicy = field(default_factory=TilePolicy)
    tile_overlap: int = 128
    tile_align: int = TILE_ALIGN
    progress: Progress = field(default_factory=Progress)
    cancel: Cancel | None = None
    max_loss: float | None = None
    loss_scale: LossScale | None = None

    def __post_init__(self) -> None:
        self.loss_scale = self.loss_scale or LossScale(self.autocast)

    def run(self, image: Tensor, steps: int, generator: torch.Generator | Sequence[torch.Generator], *,
            smoothing: float = 0.0,
            mask: Tensor | None = None, stop: Stop | None = None,
            after_step: Callable[[Tensor, int], Tensor] | None = None, in_place: bool = False) -> Tensor:
        """Take up to ``steps`` steps from ``image`` :math:`(B, 3, H, W)`; returns the new image.

        Args:
            generator: the jitter stream (see :func:`item_generator`), or one per batch item (each item
                rolled by its own shift within one forward pass).
            smoothing: sigma (pixels) of the gradient blur; 0 = off.
            mask: :math:`(B \\text{ or } 1, 1, H, W)` in 0..1, scales the step per pixel.
            stop: ends the run early when it returns True (after ``max_loss``).
            after_step: ``after_step(image, step) -> image``, e.g. a blur every few steps.
            in_place: ``image`` is the caller's to overwrite, so the first step may update it in place
                too; every later step updates the run's own image in place (one image-sized buffer
                fewer at full size). A ``progress`` preview is valid only during its call.
        """
        generators = [generator] if isinstance(generator, torch.Generator) else list(generator)
        views = self.objective.views
        for step in range(steps):
            self.progress.check_cancel(self.cancel)
            if views is None:  # a roll per step; cutouts place themselves
                shifts = [random_shift(g, self.jitter) for g in generators]
                view = None
            else:
                shifts = [(0, 0)] * len(generators)
                view = views.draw(image.shape, generators * image.shape[0] if len(generators) == 1 else generators)
            image, scores = self.tiles.run(
                ascent_step, image, self.extractor, self.objective, step_size=self.step_size,
                shift=shifts[0] if len(shifts) == 1 else shifts, grad_norm=self.grad_norm, smoothing=smoothing,
                mask=mask, autocast=self.autocast, tile_overlap=self.tile_overlap, tile_align=self.tile_align,
                loss_scale=self.loss_scale, in_place=in_place or step > 0, view=view)
            self.loss_scale.end_step()
            if after_step is not None:
                image = after_step(image, step)
            reached = ((self.max_loss is not None and bool((scores > self.max_loss).all()))
                       or (stop is not None and stop(image, scores)))
            self.progress.step(image[0], steps=(steps - step if reached else 1) * image.shape[0])
            if reached:
                break
        return image


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
                skipped = not bool(torch.isfinite(loss))
                if skipped:  # the forward pass failed: no step, and no NaN for L-BFGS
                    loss_scale.overflowed = True
                    for p in parameters:
                        p.grad = torch.zeros_like(p)
                    loss = last_finite
                    break
                (loss * loss_scale.scale).backward()
            gradients = [p.grad.div_(loss_scale.scale) for p in parameters if p.grad is not None]
            if loss_scale.accept(gradients):
                break
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
