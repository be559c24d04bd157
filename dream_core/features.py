"""Run a network up to the deepest layer needed, and no further.

The trunk of every backbone is a list of stages that run one after the other (see ``backbones``).
:class:`FeatureExtractor` keeps the stages up to the deepest requested layer and drops the rest, so
a dream on ``inception4c`` never pays for ``inception4d`` .. ``inception5b`` nor for the classifier.
An objective that reads only the image (``INPUT``) runs no stage at all.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["FeatureExtractor", "INPUT", "Stage"]

INPUT = "input"
"""The reserved layer name under which the extractor also returns the image itself, 0..1 RGB
:math:`(B, 3, H, W)`, as it was given (before the network's normalisation)."""


class Stage(nn.Module):
    """A trunk stage whose output is not itself its catalogue activation.

    A CNN stage passes on a map, and that map is the layer. A transformer's stages pass on tokens
    (with what the next stage needs), and a layer is a map made from them (see
    :mod:`dream_core.transformers`): :meth:`activation` says which.
    """

    def activation(self, output: object) -> Tensor:
        """The layer's activation :math:`(B, C, h, w)` (or :math:`(B, C)`) from this stage's output."""
        return output


class FeatureExtractor(nn.Module):
    """Normalise 0..1 RGB, run the trunk to the deepest wanted layer, return the wanted activations.

    Args:
        stages: ``(name, module)`` pairs in execution order.
        layers: the names whose outputs to return; each must be a stage name or :data:`INPUT`. A
            mapping ``{name: stage name}`` returns a stage's output under another name (an alias).
        mean, std: the network's per-channel input normalisation.
        memory_format: the layout the stages' weights are in; the input is brought to it.

    Shape:
        - Input: :math:`(B, 3, H, W)`, RGB in 0..1.
        - Output: ``{layer: (B, C_layer, H_layer, W_layer)}`` (``(B, classes)`` for ``logits``).

    Convention: the extractor holds no weights of its own. Its stages are the backbone's modules, and
    the normalisation constants follow the input's device, so an extractor stays valid when the
    backbone moves between devices.

    Example:
        >>> from dream_core import load_backbone
        >>> extract = load_backbone("alexnet", "random").extractor(["relu2"])
        >>> extract(torch.rand(1, 3, 64, 64))["relu2"].shape
        torch.Size([1, 192, 7, 7])
    """

    def __init__(self, stages: Sequence[tuple[str, nn.Module]], layers: Collection[str] | Mapping[str, str],
                 mean: Sequence[float], std: Sequence[float],
                 memory_format: torch.memory_format = torch.contiguous_format) -> None:
        super().__init__()
        names = [name for name, _ in stages]
        requested = dict(layers) if isinstance(layers, Mapping) else {layer: layer for layer in layers}
        network_layers = set(requested.values()) - {INPUT}
        missing = network_layers - set(names)
        if missing:
            raise ValueError(f"layers {sorted(missing)} are not stages of this trunk")
        deepest = max((names.index(layer) for layer in network_layers), default=-1)
        self.names = names[: deepest + 1]
        self.stages = nn.ModuleList(module for _, module in stages[: deepest + 1])
        self.layers = frozenset(requested)
        self._outputs: dict[str, list[str]] = {}  # stage name -> the names its output is returned under
        for name, stage_name in requested.items():
            self._outputs.setdefault(stage_name, []).append(name)
        self._mean_std = (tuple(mean), tuple(std))
        self._normalisation: dict[torch.device, tuple[Tensor, Tensor]] = {}
        self.memory_format = memory_format
        self._min_size: int | None = None
        self._bytes_per_pixel: float | None = None

    @property
    def deepest(self) -> str:
        return self.names[-1] if self.names else INPUT

    def min_input_size(self) -> int:
        """The smallest square input, in pixels, on which every kept stage still runs.

        Found once by probing with blank images (doubling, then bisecting), so octave pyramids can
        stop above it instead of failing inside a pooling layer.
        """
        if self._min_size is None:
            low, high = 0, 1
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
                self(torch.zeros(1, 3, size, size, device=self.device))
        except RuntimeError:
            return False
        return True

    @property
    def device(self) -> torch.device:
        parameter = next(self.stages.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    def bytes_per_pixel(self) -> float:
        """Memory that a gradient step needs per input pixel (float32), measured once on a probe image.

        Every leaf module's output is counted twice: once kept for the backward pass, once for the
        gradient flowing back through it. A 128 px probe is large enough for the count to scale with
        the area at every catalogue layer.
        """
        if self._bytes_per_pixel is None:
            size = max(128, self.min_input_size())
            total = 0

            def count(module: nn.Module, inputs: object, output: object) -> None:
                nonlocal total
                if isinstance(output, Tensor):
                    total += output.numel() * 4

            leaves = [m for m in self.stages.modules() if next(m.children(), None) is None]
            handles = [leaf.register_forward_hook(count) for leaf in leaves]
            try:
                with torch.no_grad():
                    self(torch.zeros(1, 3, size, size, device=self.device))
            finally:
                for handle in handles:
                    handle.remove()
            self._bytes_per_pixel = (2 * total + 3 * 4 * 2) / (size * size)  # + the input and its gradient
        return self._bytes_per_pixel

    def _normalisation_on(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """The mean and std on ``device``, made there once (not once per step).

        They are made outside inference mode even when the first call is inside it (a host's memory
        probe), so that a later gradient pass may save them.
        """
        if device not in self._normalisation:
            with torch.inference_mode(False):
                self._normalisation[device] = tuple(
                    torch.tensor(values, dtype=torch.float32, device=device).view(1, 3, 1, 1)
                    for values in self._mean_std)
        return self._normalisation[device]

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        activations: dict[str, Tensor] = {INPUT: image} if INPUT in self.layers else {}
        if not self.names:
            return activations
        mean, std = self._normalisation_on(image.device)
        x = ((image - mean) / std).contiguous(memory_format=self.memory_format)
        for name, stage in zip(self.names, self.stages):
            x = stage(x)
            names = self._outputs.get(name, ())
            if names:
                activation = stage.activation(x) if isinstance(stage, Stage) else x
                activations.update(dict.fromkeys(names, activation))
        return activations
