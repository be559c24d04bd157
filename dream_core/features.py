"""Run a network up to the deepest layer needed, and no further.

The trunk of every backbone is a list of stages that run one after the other (see ``backbones``).
:class:`FeatureExtractor` keeps the stages up to the deepest requested layer and drops the rest, so
a dream on ``inception4c`` never pays for ``inception4d`` .. ``inception5b`` nor for the classifier.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch
from torch import Tensor, nn

__all__ = ["FeatureExtractor"]


class FeatureExtractor(nn.Module):
    """Normalise 0..1 RGB, run the trunk to the deepest wanted layer, return the wanted activations.

    Args:
        stages: ``(name, module)`` pairs in execution order.
        layers: the names whose outputs to return; every one must be a stage name.
        mean, std: the network's per-channel input normalisation.
        memory_format: the layout the stages' weights are in; the input is brought to it.

    Shape:
        - Input: :math:`(B, 3, H, W)`, RGB in 0..1.
        - Output: ``{layer: (B, C_layer, H_layer, W_layer)}``.

    Example:
        >>> from dream_core import load_backbone
        >>> extract = load_backbone("alexnet", "random").extractor(["relu2"])
        >>> extract(torch.rand(1, 3, 64, 64))["relu2"].shape
        torch.Size([1, 192, 7, 7])
    """

    def __init__(self, stages: Sequence[tuple[str, nn.Module]], layers: Collection[str],
                 mean: Sequence[float], std: Sequence[float],
                 memory_format: torch.memory_format = torch.contiguous_format) -> None:
        super().__init__()
        names = [name for name, _ in stages]
        missing = set(layers) - set(names)
        if missing:
            raise ValueError(f"layers {sorted(missing)} are not stages of this trunk")
        deepest = max(names.index(layer) for layer in layers)
        self.names = names[: deepest + 1]
        self.stages = nn.ModuleList(module for _, module in stages[: deepest + 1])
        self.layers = frozenset(layers)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.memory_format = memory_format
        self._min_size: int | None = None

    @property
    def deepest(self) -> str:
        return self.names[-1]

    def min_input_size(self) -> int:
        """The smallest square input, in pixels, on which every kept stage still runs.

        Found once by probing with blank images (doubling, then bisecting), so octave pyramids can
        stop above it instead of failing inside a pooling layer.
        """
        if self._min_size is None:
            low, high = 0, 8
            while not self._runs(high):
                low, high = high, high * 2
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (low, middle) if self._runs(middle) else (middle, high)
            self._min_size = high
        return self._min_size

    def _runs(self, size: int) -> bool:
        try:
            with torch.no_grad():
                self(torch.zeros(1, 3, size, size, device=self.mean.device))
        except RuntimeError:
            return False
        return True

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        x = ((image - self.mean) / self.std).contiguous(memory_format=self.memory_format)
        activations: dict[str, Tensor] = {}
        for name, stage in zip(self.names, self.stages):
            x = stage(x)
            if name in self.layers:
                activations[name] = x
        return activations
