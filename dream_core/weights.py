"""Where a backbone's weights come from: a file, torchvision's checked download, or a seeded random init.

Files are read safely (safetensors, or ``torch.load(weights_only=True)``), must carry torchvision's
state-dict keys, and are checked key by key so that a wrong file is named and explained instead of
failing deep inside ``load_state_dict``.
"""

from __future__ import annotations

import http.client
import os
import pickle
import re
import urllib.error
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from .backbones import POOLINGS, Backbone, BackboneSpec, get_spec
from .errors import WeightsError, check

__all__ = ["load_backbone", "read_state_dict", "download_weights", "WEIGHT_EXTENSIONS"]

WEIGHT_EXTENSIONS = (".pth", ".pt", ".safetensors", ".bin")


def load_backbone(
    name: str,
    weights: str | Path = "random",
    *,
    seed: int = 0,
    weights_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
    channels_last: bool = True,
    fuse_batchnorm: bool = True,
    pooling: str = "max",
) -> Backbone:
    """Build a registered backbone, frozen and in eval mode.

    Args:
        name: a registry key (``dream_core.backbone_names()``).
        weights: ``"random"`` for a seeded random init, ``"torchvision"`` for the pretrained
            ImageNet weights (downloaded into ``weights_dir`` when not already there), or the path
            of a ``.pth``/``.pt``/``.bin``/``.safetensors`` file with torchvision's keys.
        seed: seed of the random init; the global RNG is left as it was.
        weights_dir: where ``"torchvision"`` weights are looked for and downloaded to.
        device: where the network lives.
        channels_last: store the weights NHWC, the faster layout on CPU and GPU for the same result.
        fuse_batchnorm: fold batch norms into the convolutions before them: the same function, about
            12% less time per GoogLeNet step on CPU (see ``dream_bench``).
        pooling: ``"max"`` as trained, or ``"avg"``: rescaled average pooling, the smoother choice
            for style transfer with VGG (see :func:`dream_core.backbones.average_pooling`).
    """
    spec = get_spec(name)
    check(pooling in POOLINGS, f"pooling: unknown {pooling!r}; choose one of {', '.join(POOLINGS)}.")
    layout = torch.channels_last if channels_last else torch.contiguous_format
    if weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = spec.build()
            _he_init(model)
        return Backbone(spec, model, f"random init (seed {seed})", fuse_batchnorm, pooling).to(device, layout)
    if weights == "torchvision":
        if weights_dir is None:
            raise WeightsError("weights_dir: say where torchvision weights are kept (and downloaded to).")
        path = download_weights(spec.weights_url, weights_dir)
    else:
        path = Path(weights)
    with torch.device("meta"):  # no time spent on a random init that the file overwrites
        model = spec.build()
    _assign_state_dict(model, read_state_dict(path), spec, source=str(path))
    return Backbone(spec, model, str(path), fuse_batchnorm, pooling).to(device, layout)


def _he_init(model: nn.Module) -> None:
    """Re-draw conv weights with He (fan-in) init and zero biases.

    torchvision's GoogLeNet/Inception init (std 0.01) shrinks activations ~100x per layer, to 1e-8 by
    inception4c; He init keeps them near unit scale, so random backbones give textures, not noise.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict without running pickled code: safetensors, or torch's weights-only loader."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights: no file at {path}. Give the path of a {'/'.join(WEIGHT_EXTENSIONS)} file.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            with warnings.catch_warnings():  # torch's advice about pickle protocols is not for our users
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt, truncated, or a pickle with code in it: one line of ours, no torch advice
        if isinstance(error, pickle.UnpicklingError) and "Weights only load failed" in str(error):
            reason = ("is not a plain state dict of tensors (other Python objects, which could run code, or not a "
                      "checkpoint at all); it was refused unread, nothing in it ran")
        else:
            detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
            reason = f"is not a readable weights file (empty, truncated or not weights: {detail})"
        raise WeightsError(f"weights: {path} {reason}. Give a state dict of tensors "
                           f"({'/'.join(WEIGHT_EXTENSIONS)}).") from None
    for wrapper in ("state_dict", "model"):  # checkpoints that wrap the state dict
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"weights: {path} holds a {type(state).__name__}, not a state dict of tensors.")
    return {key.removeprefix("module."): value for key, value in state.items()}


def _assign_state_dict(model: nn.Module, state: Mapping[str, Tensor], spec: BackboneSpec, source: str) -> None:
    """Load ``state`` into ``model`` (built on the meta device), explaining every mismatch."""
    state = {k: v for k, v in state.items() if not k.startswith(spec.ignore_keys)}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_some(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_some(unexpected)}")
        raise WeightsError(
            f"weights: {source} does not fit {spec.name}: {'; '.join(parts)}. "
            f"Use a {spec.name} state dict with torchvision's key names.")
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        raise WeightsError(f"weights: {source} has tensors of the wrong shape for {spec.name}: {_some(wrong)}.")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()},
                          assign=True)


def _some(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return f"{shown} (and {len(items) - limit} more)" if len(items) > limit else shown


def default_weights_dir() -> Path:
    """Where downloads go when no folder is given: ``$DEEPDREAM_WEIGHTS``, else ``~/.cache/deepdream-nodes``."""
    return Path(os.environ.get("DEEPDREAM_WEIGHTS", Path.home() / ".cache" / "deepdream-nodes"))


def download_weights(url: str, directory: str | Path) -> Path:
    """Fetch ``url`` into ``directory`` unless the file is already there, checking its sha256.

    The transfer is torch's own (``torch.hub.download_url_to_file``: a progress bar on the console, the file
    written beside its final name and moved there only once complete, the part deleted on any failure or
    Ctrl-C). As in torchvision, the file name carries the first hex digits of the file's sha256
    (``googlenet-1378be20.pth``): they are the hash torch checks, so a truncated or altered download is
    refused. torch sets no read timeout: a stalled connection waits until the server closes it.
    """
    directory = Path(directory)
    target = directory / url.rsplit("/", 1)[-1]
    if target.is_file():
        return target
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WeightsError(f"weights: cannot create the weights folder {directory} ({error}).") from error
    expected = re.search(r"-([0-9a-f]{6,64})\.", target.name)
    try:
        torch.hub.download_url_to_file(url, str(target), hash_prefix=expected and expected.group(1))
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or error
        raise WeightsError(
            f"weights: could not download {url} into {directory} ({reason}); nothing was kept. Try again, or "
            f"without a network download it elsewhere and put it at {target}, or choose a weights file.") from None
    except RuntimeError as error:  # torch's "invalid hash value (expected ..., got ...)"
        raise WeightsError(
            f"weights: checksum mismatch for {url}: sha256 should start with {expected.group(1)} ({error}): the "
            "download was cut short or altered on the way. It was deleted; try again.") from None
    return target
