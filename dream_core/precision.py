"""The network's precision: which autocast dtype ``auto`` means, and loss scaling for fp16 backward passes.

A backward pass under fp16 autocast carries the gradients in fp16, whose smallest value is 6e-8: the
gradient of a small score (a tile of a large image, a layer weight of 0.004) underflows to exact
zeros, and a step silently does nothing. :class:`LossScale` multiplies the score before the
backward pass and divides the gradient after, like ``torch.amp.GradScaler``: it grows while the
gradients stay finite and halves (redoing the pass) when they overflow. bf16 has float32's range and
needs none of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .errors import check

__all__ = ["PRECISIONS", "autocast_dtype", "running_in", "LossScale", "finite_or_zero"]

PRECISIONS = {"auto": None, "fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` (``"auto"``, ``"fp32"``, ``"bf16"``, ``"fp16"``) on ``device``.

    ``auto`` (the default) is half precision on CUDA: bf16 where the GPU computes it natively
    (Ampere and later; torch's ``is_bf16_supported`` also says yes for slow emulation on older
    cards, which is not counted), else fp16 with loss scaling; fp32 everywhere else. Inside ComfyUI
    the nodes ask the host instead (``comfy.model_management``), as it chooses for its own models.
    On CPUs bf16 and fp16 are opt-in: bf16 roughly halves a step where the CPU has native bf16
    (AVX512-BF16, AMX) but is several times slower without it, and it changes the picture (see
    ``dream_bench``). The gradient's normalisation and the update always stay float32.

    Example:
        >>> autocast_dtype("auto", torch.device("cpu")) is None
        True
    """
    check(precision in PRECISIONS, f"precision: unknown {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    return PRECISIONS[precision]


def running_in(dtype: torch.dtype | None, device: torch.device) -> torch.autocast:
    """The autocast context for the network's forward pass on ``device`` (off for ``dtype`` None)."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def finite_or_zero(tensor: Tensor) -> Tensor:
    """``tensor`` with NaN and infinities set to 0, in place: a step with no gradient there moves nothing."""
    return torch.nan_to_num_(tensor, nan=0.0, posinf=0.0, neginf=0.0)


class LossScale:
    """Dynamic loss scaling for gradients taken under fp16 autocast; a no-op for other precisions.

    One object serves a whole run (all its steps and tiles), so the scale it has found carries over.
    It cannot collapse: a pass whose *score* is not finite (the forward pass itself overflowed: no scale
    cures that) gives zero gradients and leaves the scale alone; an overflowing backward pass is redone
    at half the scale at most :data:`MAX_HALVINGS` times, and if that does not cure it the scale goes
    back to what it was and the non-finite entries are zeroed. Growth counts optimisation steps
    (:meth:`end_step`), not passes: a step of many tiles is one step.

    Args:
        dtype: the autocast dtype the network runs in (:meth:`gradients` enters it); scaling is on for
            ``torch.float16`` only.
        scale: the first scale (GradScaler's default, 2^16: enough for a score of 1/4096 at
            googlenet's inception4c, and far from overflow at a score of 1).
        growth_interval: steps without an overflow after which the scale doubles.
    """

    MAX_HALVINGS = 8  # 2^16 -> 2^8: a gradient 256 times past fp16's range; beyond, the pass is at fault

    def __init__(self, dtype: torch.dtype | None, scale: float = 2.0**16, growth_interval: int = 20) -> None:
        self.dtype, self.enabled = dtype, dtype == torch.float16
        self.scale = scale if self.enabled else 1.0
        self.growth_interval, self.clean_steps, self.overflowed = growth_interval, 0, False
        self._halvings, self._start = 0, self.scale

    def gradients(self, forward: Callable[[], Tensor], inputs: Sequence[Tensor] | Callable[[], Sequence[Tensor]],
                  device: torch.device) -> tuple[Tensor, list[Tensor]]:
        """``forward()`` (rebuilt on each try, under this scale's autocast dtype on ``device``) and the
        gradients of its sum with respect to ``inputs`` (or to what ``inputs()`` gives once ``forward``
        ran: tensors made inside it), taken at the current scale and unscaled; an overflow halves the
        scale and runs the pass again. A non-finite score gives zero gradients (the step moves nothing)."""
        while True:
            with running_in(self.dtype, device):
                output = forward()
            loss = output.sum()
            wrt = inputs() if callable(inputs) else inputs
            if not torch.isfinite(loss):
                return output, [torch.zeros_like(tensor) for tensor in wrt]
            gradients = list(torch.autograd.grad(loss * self.scale if self.enabled else loss, wrt))
            if self.enabled:
                gradients = [g.div_(self.scale) for g in gradients]
            if self.accept(gradients):
                return output, gradients

    def accept(self, gradients: Sequence[Tensor]) -> bool:
        """Whether ``gradients`` (already unscaled, of a finite score) are to be used. False asks the caller
        to redo the pass at the new, halved scale. Non-finite gradients that halving does not cure are
        zeroed in place and accepted, the scale restored."""
        if all(bool(torch.isfinite(g).all()) for g in gradients):
            self._halvings, self._start = 0, self.scale
            return True
        self.overflowed = True
        if self.enabled and self._halvings < self.MAX_HALVINGS:
            self._halvings += 1
            self.scale /= 2
            return False
        self.scale, self._halvings = self._start, 0  # not the scale's fault: keep the one that worked
        for g in gradients:
            finite_or_zero(g)
        return True

    def end_step(self) -> None:
        """Count one optimisation step: the scale doubles after ``growth_interval`` steps without overflow."""
        if self.overflowed:
            self.clean_steps, self.overflowed = 0, False
            return
        self.clean_steps += 1
        if self.enabled and self.clean_steps >= self.growth_interval:
            self.scale, self.clean_steps = self.scale * 2, 0
            self._start = self.scale
