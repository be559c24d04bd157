"""Layer objectives: what a dream amplifies at a layer (its L2 or mean, one channel, one neuron, the
strongest or weakest channels), and the weighted layer terms the Select Dream Layer node chains."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor

from ..errors import DreamError, check
from .algebra import Activations, Objective, at_least_float32, objective

__all__ = ["l2", "mean_activation", "channel", "neuron", "ranked_channels", "layer_objective", "LayerTerm", "terms_objective", "LOSSES", "CHANNEL_MODES", "CHOICES"]

def _select(activation: Tensor, channels: Sequence[int] | int | None, crop: int, layer: str = "this layer") -> Tensor:
    """The part of ``activation`` (B, C, H, W) that a layer objective scores, in float32 (also under autocast)."""
    if channels is not None:
        index = [channels] if isinstance(channels, int) else list(channels)
        count = activation.shape[1]
        if not index or not all(-count <= c < count for c in index):
            raise DreamError(f"channel: {index} is outside the channels of {layer}, 0..{count - 1}.")
        activation = activation[:, index]
    if crop:
        if min(activation.shape[-2:]) <= 2 * crop:
            raise DreamError(f"crop: cropping {crop} from each border leaves nothing of a "
                             f"{tuple(activation.shape[-2:])} activation; lower it or use a larger image.")
        activation = activation[..., crop:-crop, crop:-crop]
    return activation.float()


@objective
def l2(layer: str, channels: Sequence[int] | int | None = None, crop: int = 0) -> Callable[[Activations], Tensor]:
    """``0.5 * mean(a**2)`` of the layer (or of some channels): the classic DeepDream loss.

    Its gradient with respect to the activation is the activation itself, which is what
    ``act.backward(act)`` in the PyTorch source and Google's original compute. ``crop`` drops that many
    activation pixels at each border to avoid edge artefacts, as the Keras source does with 2.
    """
    return lambda acts: 0.5 * _select(acts[layer], channels, crop, layer).square().flatten(1).mean(1)


@objective
def mean_activation(layer: str, channels: Sequence[int] | int | None = None,
                    crop: int = 0) -> Callable[[Activations], Tensor]:
    """``mean(a)`` of the layer: the loss of the InceptionV3 DeepDreamer source; favours what fires positively."""
    return lambda acts: _select(acts[layer], channels, crop, layer).flatten(1).mean(1)


@objective
def channel(layer: str, index: int) -> Callable[[Activations], Tensor]:
    """The mean activation of one channel: visualises what that feature detects."""
    return lambda acts: _select(acts[layer], index, 0, layer).flatten(1).mean(1)


@objective
def neuron(layer: str, index: int) -> Callable[[Activations], Tensor]:
    """The activation of channel ``index`` at the centre position of the layer: one neuron, as lucid's
    ``neuron`` objective (a channel objective is that neuron at every position)."""
    def score(acts: Activations) -> Tensor:
        activation = acts[layer]
        return _select(activation[..., activation.shape[-2] // 2, activation.shape[-1] // 2][..., None, None],
                       index, 0, layer).flatten(1).mean(1)

    return score


LOSSES: dict[str, Callable[..., Objective]] = {"l2": l2, "mean": mean_activation}
CHANNEL_MODES = ("all", "strongest", "weakest")
CHOICES = ("once", "every_step")


def ranked_channels(layer: str, k: int, mode: str = "strongest", choose: str = "once", loss: str = "l2") -> Objective:
    """``loss`` over the ``k`` channels of ``layer`` with the highest (``strongest``) or lowest
    (``weakest``) mean activation in each item: neural-dream's channel modes. Amplifying the
    strongest deepens what the picture already shows; the weakest brings out what it hides.

    With ``choose="once"`` each item's channels are picked on the first call and kept for the rest of
    the dream (every octave: drivers call ``at(size, item)``, which keeps one choice per item); with
    ``"every_step"`` they are picked again at every step.
    """
    check(mode in CHANNEL_MODES[1:], f"channel_mode: unknown {mode!r}; choose strongest or weakest.")
    check(choose in CHOICES, f"choose: unknown {choose!r}; choose one of {', '.join(CHOICES)}.")
    check(k >= 1, f"top_k: must be 1 or more, got {k}.")
    check(loss in LOSSES, f"loss: unknown loss {loss!r}; choose one of {', '.join(LOSSES)}.")
    description = f"{loss}({layer}, {mode} {k} {'chosen once' if choose == 'once' else 'every step'})"

    def fresh() -> Objective:
        chosen: list[Tensor] = []

        def score(acts: Activations) -> Tensor:
            activation = at_least_float32(acts[layer])
            check(k <= activation.shape[1], f"top_k: {layer} has {activation.shape[1]} channels, fewer than {k}.")
            if not chosen or choose == "every_step":
                ranking = activation.detach().mean((2, 3))
                chosen[:] = [ranking.topk(k, dim=1, largest=mode == "strongest").indices]
            index = chosen[0][..., None, None].expand(-1, -1, *activation.shape[-2:])
            picked = activation.gather(1, index)
            return 0.5 * picked.square().mean((1, 2, 3)) if loss == "l2" else picked.mean((1, 2, 3))

        return Objective(score, [layer], description)

    per_item: dict[int, Objective] = {}

    def at(size: tuple[int, int], item: int) -> Objective:
        return per_item.setdefault(item, fresh())

    whole = fresh()
    return Objective(whole.fn, [layer], description, at)


def layer_objective(layer: str, weight: float = 1.0, loss: str = "l2",
                    channels: Sequence[int] | int | None = None, crop: int = 0) -> Objective:
    """``weight * loss(layer)``, with the loss chosen by name (``"l2"`` or ``"mean"``)."""
    if loss not in LOSSES:
        raise DreamError(f"loss: unknown loss {loss!r}; choose one of {', '.join(LOSSES)}.")
    return weight * LOSSES[loss](layer, channels, crop=crop)



@dataclass(frozen=True)
class LayerTerm:
    """One weighted layer of a layer objective (what the Select Dream Layer node makes and chains):
    all its channels, one ``channel``, or the ``top_k`` strongest or weakest (``channel_mode``)."""

    layer: str
    weight: float = 1.0
    channel: int | None = None
    loss: str = "l2"
    channel_mode: str = "all"
    top_k: int = 8
    choose: str = "once"

    def objective(self) -> Objective:
        if self.channel_mode == "all":
            return layer_objective(self.layer, self.weight, self.loss, self.channel)
        check(self.channel is None, "channel: pick one channel or a channel mode, not both.")
        return self.weight * ranked_channels(self.layer, self.top_k, self.channel_mode, self.choose, self.loss)


def terms_objective(terms: Sequence[LayerTerm]) -> Objective:
    """The sum of ``term.objective()`` over ``terms``."""
    if not terms:
        raise DreamError("layers: no layer selected; connect a Select Dream Layer node.")
    return Objective.sum(term.objective() for term in terms)
