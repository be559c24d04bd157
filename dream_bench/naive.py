"""The classic per-step DeepDream recipe, faithfully re-implemented as the benchmark's baseline.

What the classic implementations do each step, and what ``dream_core`` avoids: the *whole* network
runs to the logits with a forward hook catching the layer, the parameters still require grad (so
backward also computes every weight gradient), the jitter is ``np.roll`` on a numpy array, and the
image makes a ``.cpu().numpy()`` round trip every step.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from dream_core.backbones import Backbone
from dream_core.pyramid import dream_octaves, octave_sizes


class NaiveDreamer:
    """A private, grad-requiring copy of ``backbone``'s network with a hook on ``layer``."""

    def __init__(self, backbone: Backbone, layer: str, device: torch.device) -> None:
        self.model = copy.deepcopy(backbone.model).to(device=device, memory_format=torch.contiguous_format)
        self.model.requires_grad_(True)  # as the classic code leaves it
        self.layer = dict(zip(backbone.spec.layers, backbone.spec.trunk(self.model)))[layer]
        self.mean = torch.tensor(backbone.spec.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(backbone.spec.std, device=device).view(1, 3, 1, 1)
        self.device = device
        self.rng = np.random.default_rng(0)

    def step(self, image: np.ndarray, step_size: float = 0.01, jitter: int = 32) -> np.ndarray:
        """One step on a ``(1, 3, H, W)`` float32 array in 0..1."""
        ox, oy = self.rng.integers(-jitter, jitter + 1, 2)
        image = np.roll(np.roll(image, ox, -1), oy, -2)
        x = torch.from_numpy(image).to(self.device).requires_grad_(True)
        caught = {}
        hook = self.layer.register_forward_hook(lambda module, args, out: caught.setdefault("act", out))
        try:
            self.model.zero_grad()
            self.model((x - self.mean) / self.std)
        finally:
            hook.remove()
        activation = caught["act"]
        activation.backward(activation.data)  # the source's act.backward(act): the gradient of 0.5 * |a|^2
        grad = x.grad.cpu().numpy()
        image = image + step_size / (np.abs(grad).mean() + 1e-8) * grad
        image = np.roll(np.roll(image, -ox, -1), -oy, -2)
        return np.clip(image, 0.0, 1.0).astype(np.float32)

    def dream(self, image: torch.Tensor, steps: int = 10, octaves: int = 4, octave_scale: float = 1.4) -> torch.Tensor:
        """The full classic dream over the same octave pyramid as ``deepdream``."""

        def dream_level(start: torch.Tensor, level: int) -> torch.Tensor:
            array = start.detach().cpu().numpy().astype(np.float32)
            for _ in range(steps):
                array = self.step(array)
            return torch.from_numpy(array)

        sizes = octave_sizes(tuple(image.shape[-2:]), octaves, octave_scale)
        return dream_octaves(image.cpu(), sizes, dream_level)
