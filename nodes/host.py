"""The bridge to ComfyUI: the only module that imports ``comfy`` or ``folder_paths``.

Everything here has a plain fallback, so the nodes (and their tests) run without the host:
CPU device, no progress bar, no interrupt, weights in ``$DEEPDREAM_WEIGHTS`` or ``~/.cache/deepdream-nodes``.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from ..dream_core import WeightsError
from ..dream_core.backbones import Backbone
from ..dream_core.images import to_pil
from ..dream_core.weights import WEIGHT_EXTENSIONS

try:  # inside ComfyUI
    import comfy.model_management as model_management
    import comfy.utils as comfy_utils
    import folder_paths
except ImportError:  # tests, scripts: the fallbacks below
    model_management = comfy_utils = folder_paths = None

log = logging.getLogger("DeepDreamNodes")

MODEL_FOLDER = "deepdream"
FALLBACK_WEIGHTS_DIR = Path(os.environ.get("DEEPDREAM_WEIGHTS", Path.home() / ".cache" / "deepdream-nodes"))
PREVIEW_EVERY = 5  # steps between live previews; the bar itself moves every step
PREVIEW_SIZE = 512


def register_model_folder() -> None:
    """Register ``models/deepdream``, keeping paths that ``extra_model_paths.yaml`` already added."""
    if folder_paths is None:
        return
    if MODEL_FOLDER in folder_paths.folder_names_and_paths:
        paths, _ = folder_paths.folder_names_and_paths[MODEL_FOLDER]
    else:
        paths = [os.path.join(folder_paths.models_dir, MODEL_FOLDER)]
    folder_paths.folder_names_and_paths[MODEL_FOLDER] = (paths, set(WEIGHT_EXTENSIONS))


EXAMPLE_INPUTS = {"deepdream_example.jpg": "example.jpg", "deepdream_guide.jpg": "guide.jpg"}


def install_example_inputs() -> None:
    """Copy the bundled pictures into the host's input folder, so the example workflows run as shipped."""
    if folder_paths is None:
        return
    assets = Path(__file__).resolve().parents[1] / "assets"
    target = Path(folder_paths.get_input_directory())
    for name, source in EXAMPLE_INPUTS.items():
        if not (target / name).exists():
            try:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(assets / source, target / name)
            except OSError as error:  # a read-only input folder must not stop the pack from loading
                log.warning("DeepDreamNodes: could not copy the example image %s to %s (%s).", name, target, error)


def weights_dir() -> Path:
    """Where downloads go: the first ``deepdream`` model folder."""
    if folder_paths is None:
        return FALLBACK_WEIGHTS_DIR
    return Path(folder_paths.get_folder_paths(MODEL_FOLDER)[0])


def weight_files() -> list[str]:
    """The weight files a user can pick, relative to the model folders."""
    if folder_paths is None:
        if not FALLBACK_WEIGHTS_DIR.is_dir():
            return []
        return sorted(p.name for p in FALLBACK_WEIGHTS_DIR.iterdir() if p.suffix in WEIGHT_EXTENSIONS)
    return list(folder_paths.get_filename_list(MODEL_FOLDER))


def weight_file(name: str) -> Path:
    """The full path of a file listed by :func:`weight_files`."""
    path = folder_paths.get_full_path(MODEL_FOLDER, name) if folder_paths is not None else FALLBACK_WEIGHTS_DIR / name
    if path is None or not Path(path).is_file():
        raise WeightsError(f"weights: {name!r} is not in the deepdream model folder ({weights_dir()}); "
                           "put the file there and refresh, or pick another.")
    return Path(path)


def compute_device() -> torch.device:
    return model_management.get_torch_device() if model_management is not None else torch.device("cpu")


def output_device() -> torch.device:
    return model_management.intermediate_device() if model_management is not None else torch.device("cpu")


@contextmanager
def gradients() -> Iterator[None]:
    """Leave the host's ``torch.inference_mode()`` and switch gradients on.

    Tensors made inside are normal tensors that autograd may save. Inference tensors from outside
    (the IMAGE and MASK inputs) may be read here but never saved for backward: ``dream_core`` rolls or
    gathers a copy of the image before the forward pass; weights are fixed by
    :func:`make_trainable_copy_if_inference`.
    """
    with torch.inference_mode(False), torch.enable_grad():
        yield


def make_trainable_copy_if_inference(backbone: Backbone) -> None:
    """Replace inference-mode parameters and buffers by normal copies, in place (call inside :func:`gradients`).

    A backbone built while the host was in inference mode has inference tensors as weights; a
    convolution's backward saves its weight and would raise. Our loader builds inside
    :func:`gradients`, so this only acts on backbones made elsewhere.
    """
    for module in backbone.model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            if param.is_inference():
                setattr(module, name, torch.nn.Parameter(param.clone(), requires_grad=False))
        for name, buffer in list(module.named_buffers(recurse=False)):
            if buffer.is_inference():
                module.register_buffer(name, buffer.clone())


@contextmanager
def backbone_on(backbone: Backbone, device: torch.device, pixels: int) -> Iterator[Backbone]:
    """Move the backbone to ``device`` for one run, asking the host to make room first, and back after.

    Between runs the cached backbone lives on the CPU, so it never holds GPU memory the host needs.
    """
    if model_management is not None and device.type != "cpu":
        weights = sum(p.numel() * p.element_size() for p in backbone.model.parameters())
        # Rough: the weights plus about 4 KB of activations and gradients per image pixel.
        model_management.free_memory(weights + pixels * 4096, device)
    backbone.to(device)
    try:
        yield backbone
    finally:
        if device.type != "cpu":
            backbone.to("cpu")
            if model_management is not None:
                model_management.soft_empty_cache()


@contextmanager
def dreaming(backbone: Backbone, pixels: int) -> Iterator[torch.device]:
    """Everything a node needs around work with gradients: the grad-mode escape, the backbone on the
    host's device (room made first, moved back after), and weights that autograd may save."""
    device = compute_device()
    with gradients(), backbone_on(backbone, device, pixels):
        make_trainable_copy_if_inference(backbone)
        yield device


def progress_callback() -> Callable[[int, int, torch.Tensor], None] | None:
    """``(step, total, preview)`` -> the host's progress bar, with a JPEG preview every few steps."""
    if comfy_utils is None:
        return None
    bar = None

    def report(step: int, total: int, preview: torch.Tensor) -> None:
        nonlocal bar
        if bar is None:
            bar = comfy_utils.ProgressBar(total)
        picture = None
        if step % PREVIEW_EVERY == 0 or step == total:
            picture = ("JPEG", to_pil(preview), PREVIEW_SIZE)
        bar.update_absolute(step, total, picture)

    return report


def interrupted() -> bool:
    """The cancel callback: the host raises its own exception when the user presses Cancel."""
    if model_management is not None:
        model_management.throw_exception_if_processing_interrupted()
    return False


def download_progress() -> Callable[[int, int], None] | None:
    """Weights download -> the host's progress bar (in MB)."""
    if comfy_utils is None:
        return None
    bar = None

    def report(done: int, total: int) -> None:
        nonlocal bar
        if total:
            bar = bar or comfy_utils.ProgressBar(max(1, total >> 20))
            bar.update_absolute(done >> 20, max(1, total >> 20))

    return report


__all__ = [
    "register_model_folder", "install_example_inputs", "weights_dir", "weight_files", "weight_file", "compute_device",
    "output_device", "gradients", "make_trainable_copy_if_inference", "backbone_on", "dreaming", "progress_callback",
    "interrupted", "download_progress",
]
