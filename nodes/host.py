"""The bridge to ComfyUI: the only module that imports ``comfy`` or ``folder_paths``.

Everything here has a plain fallback, so the nodes (and their tests) run without the host:
CPU device, no progress bar, no interrupt, weights in ``$DEEPDREAM_WEIGHTS`` or ``~/.cache/deepdream-nodes``.

Every node hands its library work to :func:`run` as a ``dream_core`` task: the one place that does device,
memory, precision, progress, Cancel and output placement. GPU memory follows ComfyUI's model management:
a backbone is handed to it as a ``ModelPatcher`` (as core's CLIP vision loader does), loaded with
``load_models_gpu`` asking only for the task's working set, and then left on the GPU between runs. When
ComfyUI needs the memory for another model it offloads the backbone to the CPU itself; the next
dream loads it back. Loaded backbones are kept in a small module-level cache (see :func:`cached_backbone`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TypeVar

import torch

from ..dream_core import (WEIGHT_EXTENSIONS, Backbone, DreamError, Progress, Task, WeightsError,
                          backbone_from_clip_vision, default_weights_dir, to_pil)

try:  # inside ComfyUI
    import comfy.model_management as model_management
    import comfy.utils as comfy_utils
    import folder_paths
except ImportError:  # tests, scripts: the fallbacks below
    model_management = comfy_utils = folder_paths = None
try:
    from comfy.model_patcher import ModelPatcher
except ImportError:
    ModelPatcher = None

log = logging.getLogger("DeepDreamNodes")
T = TypeVar("T")

MODEL_FOLDER = "deepdream"
FALLBACK_WEIGHTS_DIR = default_weights_dir()
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


EXAMPLE_INPUTS = {"deepdream_example.jpg": "example.jpg", "deepdream_guide.jpg": "guide.jpg",
                  "deepdream_example_pan.mp4": "example_pan.mp4"}


def install_example_inputs() -> None:
    """Copy the bundled pictures and video into the host's input folder, so the example workflows run as shipped."""
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
    """The full path of a file listed by :func:`weight_files`; a name that leaves the folder is refused."""
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise WeightsError(f"weights: {name!r} points outside the deepdream model folder; refused. "
                           "Pick a file listed in the menu.")
    path = folder_paths.get_full_path(MODEL_FOLDER, name) if folder_paths is not None else FALLBACK_WEIGHTS_DIR / name
    if path is None or not Path(path).is_file():
        raise WeightsError(f"weights: {name!r} is not in the deepdream model folder ({weights_dir()}); "
                           "put the file there and refresh, or pick another.")
    return Path(path)


def compute_device() -> torch.device:
    return model_management.get_torch_device() if model_management is not None else torch.device("cpu")


def resolve_precision(choice: str) -> str:
    """A node's ``precision`` for ``dream_core``: ``auto`` becomes what ComfyUI picks for an image model
    on its device (its VAE rule: bf16 where the device has it, else fp16 where that works, else fp32;
    ``--force-fp32`` and the VAE precision flags respected); any other choice is kept."""
    if choice != "auto" or model_management is None:
        return choice
    chosen = model_management.vae_dtype(compute_device(), [torch.bfloat16, torch.float16])
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(chosen, "fp32")


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


CACHED_BACKBONES = 2
_backbones: OrderedDict[Hashable, Backbone] = OrderedDict()
_patchers: weakref.WeakKeyDictionary[Backbone, object] = weakref.WeakKeyDictionary()


def cached_backbone(key: Hashable, build: Callable[[], Backbone]) -> Backbone:
    """The backbone cached under ``key``, or ``build()`` cached under it.

    The cache lives as long as the server, so a loaded backbone survives prompts of other workflows
    (ComfyUI's classic cache drops a node's outputs as soon as a prompt without that node runs). It
    holds the :data:`CACHED_BACKBONES` most recently used; an older one is released when a new one
    is loaded. While cached, its weights sit on the GPU only until ComfyUI offloads them for another
    model.
    """
    if key in _backbones:
        _backbones.move_to_end(key)
        return _backbones[key]
    backbone = build()
    _backbones[key] = backbone
    while len(_backbones) > CACHED_BACKBONES:
        _backbones.popitem(last=False)
    return backbone


def release_cached_backbones() -> None:
    """Forget every cached backbone (their memory goes back once nothing else holds them)."""
    _backbones.clear()


def release_on_host_unload() -> None:
    """Make ComfyUI's Unload Models (and ``/free``) release the backbone cache too: the host calls
    ``model_management.unload_all_models`` for both, and knows nothing of a pack's own cache, which would
    otherwise keep the weights in RAM for the server's life. Wrapped once; the host's function still runs."""
    unload = getattr(model_management, "unload_all_models", None)
    if unload is None or getattr(unload, "releases_dream_backbones", False):
        return

    def unload_all_models(*args, **kwargs):
        release_cached_backbones()
        return unload(*args, **kwargs)

    unload_all_models.releases_dream_backbones = True
    model_management.unload_all_models = unload_all_models


def file_key(path: Path | None) -> str | None:
    """A file as a cache key: its path, size and modification time (ns), so a replaced file is read again."""
    if path is None or not path.is_file():
        return None
    stat = path.stat()
    return f"{path}|{stat.st_size}|{stat.st_mtime_ns}"


_warned: set[str] = set()


def warn_once(message: str) -> None:
    """Log ``message`` the first time it comes up in this server's life (settings a node ignores)."""
    if message not in _warned:
        _warned.add(message)
        log.warning("DeepDreamNodes: %s", message)


_clip_backbones: weakref.WeakKeyDictionary[object, Backbone] = weakref.WeakKeyDictionary()


def is_dynamic(patcher) -> bool:
    """Whether a host patcher streams its weights in at each call (ComfyUI's dynamic VRAM,
    ``ModelPatcherDynamic``): it keeps them where they are and refuses a full load; hands off."""
    return bool(getattr(patcher, "is_dynamic", lambda: False)())


def clip_vision_backbone(clip_vision) -> Backbone:
    """The backbone of a ``CLIP_VISION`` (core's Load CLIP Vision), made once per loaded model. It wraps the
    host's module in place, so it is placed by that model's own patcher (see :func:`place`), never a second
    copy of the weights."""
    backbone = _clip_backbones.get(clip_vision)
    if backbone is None:
        with gradients():
            backbone = backbone_from_clip_vision(clip_vision.model, image_size=clip_vision.image_size,
                                                 mean=clip_vision.image_mean, std=clip_vision.image_std)
        _clip_backbones[clip_vision] = backbone
        if ModelPatcher is not None and getattr(clip_vision, "patcher", None) is not None:
            _patchers[backbone] = clip_vision.patcher
    return backbone


def _patcher_on(patcher, device: torch.device):
    """``patcher``, or a clone of it that loads to ``device``: the host loads a CLIP vision model to its
    text-encoder device, the CPU under ``--lowvram``/``--novram``, while a dream computes on the GPU."""
    if patcher.load_device == device:
        return patcher
    moved = patcher.clone()
    moved.load_device = device
    if hasattr(moved, "register_load_device"):  # a dynamic patcher keeps state per load device
        moved.register_load_device(device)
    warn_once(f"the CLIP vision model loads to {patcher.load_device} in this ComfyUI (its text-encoder device); "
              f"dreaming moves it to {device}, where the dream computes.")
    return moved


def place(backbone: Backbone, device: torch.device, memory: int) -> None:
    """Put ``backbone`` on ``device`` with ``memory`` bytes of working space free beside its weights.

    Inside ComfyUI on a GPU, through model management: a weights move happens only when the backbone
    is not already loaded there, and ComfyUI unloads its own models only as far as this run needs. A
    host model under a dynamic patcher keeps its weights where the host holds them (it casts them in
    at each call); the backbone then computes on ``device`` all the same.
    """
    backbone.computes_on = None
    if model_management is None or device.type == "cpu":
        backbone.to(device)
        return
    if ModelPatcher is None:  # an older host: make room for what is not there yet, then move
        moving = backbone.device != device
        weights = sum(p.numel() * p.element_size() for p in backbone.model.parameters()) if moving else 0
        model_management.free_memory(weights + memory, device)
        backbone.to(device)
        return
    patcher = _patchers.get(backbone)
    if patcher is None:
        patcher = _patchers[backbone] = ModelPatcher(backbone.model, load_device=device,
                                                     offload_device=model_management.unet_offload_device())
    patcher = _patchers[backbone] = _patcher_on(patcher, device)
    dynamic = is_dynamic(patcher)
    model_management.load_models_gpu([patcher], memory_required=memory, force_full_load=not dynamic)
    if dynamic:
        backbone.computes_on = device


def _pooling_encoder(model):
    """The text encoder whose pooled output a host CLIP returns: the one of a single-encoder CLIP (SD1.x,
    SD2.x, SDXL refiner: ``model.clip`` names it), SDXL's ``clip_g``, Flux's ``clip_l``; None if unknown."""
    name = getattr(model, "clip", None)
    if isinstance(name, str) and hasattr(model, name):
        return getattr(model, name)
    for name in ("clip_g", "clip_l", "clip_h"):
        if getattr(model, name, None) is not None:
            return getattr(model, name)
    return None


PAIRINGS = ("SDXL's clip_g with clip_vision_g.safetensors (1280), SD2.x's OpenCLIP ViT-H text encoder with "
            "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors (1024), or a CLIP-L text file that carries its "
            "text_projection with a ViT-L/14 vision file (768)")


def _holds_weights(projection) -> bool:
    """Whether a ``text_projection`` holds numbers at all: not all zero, all finite (an uninitialised layer
    on a fresh page is zeros; elsewhere it is whatever memory it was given, which no check can tell)."""
    weight = getattr(projection, "weight", None)
    if weight is None or weight.is_meta:
        return False
    with torch.no_grad():
        return bool(torch.isfinite(weight).all()) and bool(weight.any())


def clip_text_embedding(clip, text: str, name: str, file_projection: bool = False) -> torch.Tensor:
    """A prompt's CLIP text embedding :math:`(1, E)` in the space of the CLIP image embedding: the pooled
    output through the encoder's trained ``text_projection``, encoded by the host's own CLIP object.

    CLIP Text Encode's pooled output is not that for most CLIPs: SD1.x checkpoints and Flux's ``clip_l``
    return the unprojected end-of-text state (as wide as a ViT-L image embedding, and meaningless next to
    it), and an SD1.x file has no projection at all: the host builds the layer uninitialised and records
    nothing of what its file held (its weights are inference tensors, without even a version count). So
    the host's own choice for the model (its ``return_projected_pooled`` default) is what vouches for the
    projection; ``file_projection`` is the user's word that a CLIP-L file the host pools unprojected
    carries its ``text_projection.weight``.
    """
    model = getattr(clip, "cond_stage_model", None)
    encoder = _pooling_encoder(model) if model is not None else None
    projection = getattr(getattr(encoder, "transformer", None), "text_projection", None)
    if projection is None:
        raise DreamError(f"{name}: this CLIP has no CLIP text encoder with a text projection; use {PAIRINGS}.")
    host_projects = bool(getattr(encoder, "options_default", (None, None, False))[2])
    if not host_projects and not file_projection:
        raise DreamError(f"{name}: ComfyUI pools this CLIP without its text_projection (SD1.x checkpoints carry "
                         f"none), so its prompts are not in CLIP image space; use {PAIRINGS} (a CLIP-L file with "
                         "the projection: switch on file_projection).")
    if not host_projects and not _holds_weights(projection):
        raise DreamError(f"{name}: file_projection is on, but this CLIP's text_projection is empty: its file "
                         f"carries none (SD1.x checkpoints do not); use {PAIRINGS}.")
    tokens = clip.tokenize(text)
    model.reset_clip_options()
    model.set_clip_options({"projected_pooled": True})
    try:
        clip.load_model()
        pooled = model.encode_token_weights(tokens)[1]
    finally:
        model.reset_clip_options()
    width = getattr(projection, "out_features", None)
    if pooled is None or (width is not None and pooled.shape[-1] != width):
        raise DreamError(f"{name}: this CLIP's pooled output joins several encoders (SD3); use {PAIRINGS}.")
    return pooled[:1].float().cpu()


PROGRESS_TOTAL = 100  # the bar counts percent of the whole node run


def progress() -> Progress | None:
    """One host progress bar from 0 to 100% for a node's whole run, with a JPEG preview every few steps.

    A node that makes several ``dream_core`` calls hands each a part of it (``Progress.part``).
    """
    if comfy_utils is None:
        return None
    bar = comfy_utils.ProgressBar(PROGRESS_TOTAL)
    calls = 0

    def report(done: int, total: int, preview: torch.Tensor | None) -> None:
        nonlocal calls
        calls += 1
        picture = None
        if preview is not None and (calls % PREVIEW_EVERY == 0 or done == total):
            picture = ("JPEG", to_pil(preview, PREVIEW_SIZE), PREVIEW_SIZE)
        bar.update_absolute(done, total, picture)

    return Progress(report, PROGRESS_TOTAL)


def interrupted() -> bool:
    """The cancel callback: the host raises its own exception when the user presses Cancel."""
    if model_management is not None:
        model_management.throw_exception_if_processing_interrupted()
    return False


def run(task: Task[T], precision: str) -> T:
    """Run a library task as every node does (see :mod:`dream_core.tasks`): out of the host's inference mode
    with gradients on, the backbone on the compute device with the task's working set free (ComfyUI unloads
    other models only as far as that needs), weights that autograd may save (a dynamic patcher's are left
    alone: they are cast into new tensors at every call), the precision ComfyUI would pick, its progress bar
    with previews, and Cancel. The result's tensors come back on the host's output device."""
    with gradients():
        place(task.backbone, compute_device(), task.memory)
        if not is_dynamic(_patchers.get(task.backbone)):
            make_trainable_copy_if_inference(task.backbone)
        result = task.run(precision=resolve_precision(precision), progress=progress(), cancel=interrupted)
    return _on_output_device(result)


def _on_output_device(result):
    if isinstance(result, torch.Tensor):
        return result.to(output_device())
    if isinstance(result, tuple):
        return tuple(_on_output_device(part) for part in result)
    return result


def video_source(video) -> Path | BinaryIO:
    """Where a host ``VIDEO`` (core's Load Video: ``VideoFromFile``) streams from: its file, or the bytes it
    holds; read a frame at a time, never decoded whole (``get_components`` would)."""
    source = video.get_stream_source() if hasattr(video, "get_stream_source") else None
    if source is None:
        raise DreamError("video: this input cannot be streamed (not a VIDEO from Load Video); connect Load Video, "
                         "or use Dream Video Frames with an IMAGE batch.")
    return Path(source) if isinstance(source, (str, os.PathLike)) else source


def source_key(source: Path | BinaryIO) -> str:
    """A video source as part of a run's key: a file by :func:`file_key`, bytes by their hash."""
    if isinstance(source, Path):
        return file_key(source) or str(source)
    return hashlib.sha256(source.getbuffer()).hexdigest()


def video_output(path: Path):
    """The ``VIDEO`` a node hands on for an MP4 file (for Save Video, Get Video Components), or the path
    outside the host."""
    try:
        from comfy_api.latest import InputImpl
    except ImportError:
        return path
    return InputImpl.VideoFromFile(str(path))


def run_key(prompt: dict | None, node_id: str | None, *parts: object) -> str:
    """A name for a run's resumable state: the node's inputs as the workflow wires them (every node
    upstream, by class and widget values: the same graph gives the same key after a restart) and
    ``parts`` (what the graph cannot say, e.g. the source file's size and date). Outside the host, without
    a workflow, ``parts`` alone."""
    memo: dict[str, str] = {}

    def canonical(node: str) -> str:
        if node not in memo:
            entry = prompt[node]
            inputs = {name: [canonical(value[0]), value[1]] if _is_link(value, prompt) else value
                      for name, value in sorted(entry.get("inputs", {}).items())}
            memo[node] = _digest([entry.get("class_type"), inputs])
        return memo[node]

    graph = canonical(str(node_id)) if prompt and str(node_id) in prompt else None
    return _digest([graph, *parts])[:16]


def _is_link(value: object, prompt: dict) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and value[0] in prompt


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()


def work_folder(*names: str) -> Path:
    """A folder for state that must outlive a Cancel or a restart (a video's frames): under the host's
    output folder, ``deepdream/...``; outside the host under the system's temporary folder."""
    return _pack_folder("get_output_directory", names)


def temp_folder(*names: str) -> Path:
    """A folder for a node's results that the host clears on start (its ``temp`` folder)."""
    return _pack_folder("get_temp_directory", names)


def _pack_folder(host_folder: str, names: tuple[str, ...]) -> Path:
    base = getattr(folder_paths, host_folder)() if folder_paths is not None else tempfile.gettempdir()
    return Path(base).joinpath("deepdream", *names)


def add_json_route(path: str, payload: Callable[[], object]) -> None:
    """Serve ``payload()`` as JSON at ``GET path`` on ComfyUI's server (for the frontend extension in ``web/``)."""
    try:
        from aiohttp import web
        from server import PromptServer
    except ImportError:  # outside ComfyUI
        return
    server = getattr(PromptServer, "instance", None)
    if server is None:
        return

    async def handler(request):
        return web.json_response(payload())

    server.routes.get(path)(handler)


__all__ = [
    "register_model_folder", "install_example_inputs", "release_cached_backbones", "release_on_host_unload",
    "weights_dir", "weight_files", "weight_file", "compute_device", "resolve_precision",
    "output_device", "gradients", "make_trainable_copy_if_inference", "cached_backbone", "file_key", "warn_once", "place",
    "run", "progress", "interrupted", "add_json_route", "clip_vision_backbone", "is_dynamic",
    "clip_text_embedding", "video_source", "source_key", "video_output", "run_key", "work_folder", "temp_folder",
]
