"""The loop every driver runs on.

Two kinds of drivers share it. Ascent drivers (dreams, class visualisation, fooling images) take
normalised gradient steps on the image with :class:`Ascent`; loss drivers (style transfer, feature
inversion) minimise with a ``torch.optim`` optimizer in :func:`~dream_core.optimizers.optimize`. Both give each batch item
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

__all__ = ["Progress", "ProgressFn", "Cancel", "Ascent", "TilePolicy", "item_generator", "Item", "for_each_item",
           "autocast_dtype", "PRECISIONS", "tuned_for"]  # precision's re-exported

ProgressFn = Callable[[int, int, "Tensor | None"], None]
"""``report(done, total, preview)``: after every step; ``preview`` is the current item :math:`(3, h, w)`
in 0..1 on the compute device (read it, never modify it)."""
Cancel = Callable[[], bool]
"""``cancel()`` is asked before every step; returning True stops the work with :class:`DreamCancelled`
(a host's own interrupt exception raised from it passes through unchanged)."""

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
