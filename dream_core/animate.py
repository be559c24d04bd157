"""Dream animation: the endless zoom into a dream, and dreamed video that stays coherent.

Both are generators that yield one frame at a time, so a caller can stream hundreds of frames to
disk with flat memory; :func:`dream_zoom` and :func:`dream_video` collect them into a batch for the
nodes. Every frame is a :func:`~dream_core.dream.deepdream` call reporting to one shared
:class:`~dream_core.loop.Progress` (frames x octaves x steps) and asking ``cancel`` before every step.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
from torch import Tensor

from .backbones import Backbone
from .errors import DreamError, check
from .images import check_image, eight_bit, prepare_mask
from .loop import Cancel, Progress, ProgressFn
from .objectives import Objective

__all__ = ["zoom_transform", "zoom_frames", "dream_zoom", "video_frames", "dream_video", "estimate_flow",
           "warp", "flow_validity", "colour_match", "raft_weights_path", "FLOWS", "DEFAULT_FLOW", "HOLD"]

FLOWS = ("none", "farneback", "dis", "raft", "raft_large")
DEFAULT_FLOW = "farneback"
"""The flow of the library, the CLI and the node, chosen by measurement (README, Dream animation)."""
COLOUR_TOLERANCE = 0.05
"""The colour difference (0..1, mean over RGB) that a carried pixel may show on a flat area; see
:func:`colour_match`."""
HOLD = 0.75
"""The default ``hold`` of :func:`video_frames`, chosen by measurement (README, Dream animation)."""
FLOW_ERROR = 1.0
"""The flow error (pixels) :func:`colour_match` allows for: on texture, a flow that is off by this much
samples a neighbour, whose colour differs by up to this times the local colour gradient."""


def zoom_transform(image: Tensor, zoom: float = 1.05, rotate: float = 0.0, shift: tuple[float, float] = (0.0, 0.0)) -> Tensor:
    """The next frame of a zoom: ``image`` :math:`(B, 3, H, W)` enlarged ``zoom`` times about its centre,
    rotated by ``rotate`` degrees (counter-clockwise) and moved by ``shift`` = ``(x, y)`` pixels.

    Resampled bilinearly by kornia, with reflected borders, so a rotation or an outward zoom shows
    no black corners. With ``zoom > 1`` and no rotation or shift it is the crop of the central
    :math:`1/\\text{zoom}` of the frame, enlarged back to :math:`(H, W)`.
    """
    from kornia.geometry.transform import get_rotation_matrix2d, warp_affine

    check(zoom > 0 and math.isfinite(zoom), f"zoom: must be above 0, got {zoom}.")
    batch, _, height, width = image.shape
    options = {"device": image.device, "dtype": torch.float32}
    centre = torch.tensor([[(width - 1) / 2, (height - 1) / 2]], **options).expand(batch, 2)
    matrix = get_rotation_matrix2d(centre, torch.full((batch,), float(rotate), **options),
                                   torch.full((batch, 2), float(zoom), **options))
    matrix[:, 0, 2] += shift[0]
    matrix[:, 1, 2] += shift[1]
    return warp_affine(image.float(), matrix, (height, width), padding_mode="reflection", align_corners=True)


def zoom_frames(image: Tensor, backbone: Backbone, objective: Objective, frames: int, *, zoom: float = 1.05,
                rotate: float = 0.0, shift: tuple[float, float] = (0.0, 0.0), objective_end: Objective | None = None,
                seed: int = 0, start_frame: int = 0, progress: Progress | ProgressFn | None = None,
                cancel: Cancel | None = None, **dream_options) -> Iterator[Tensor]:
    """Yield ``frames`` dreamed frames :math:`(1, 3, H, W)` of an endless zoom, one at a time.

    Frame 0 is ``image`` (its first item) dreamed; each next frame is the last one moved by
    :func:`zoom_transform` and dreamed again, with seed ``seed + frame``. With ``objective_end`` the
    objective morphs linearly from ``objective`` (frame 0) to ``objective_end`` (the last frame).
    ``start_frame`` resumes a run: ``image`` is then the frame before it, already dreamed.
    ``dream_options`` go to :func:`~dream_core.dream.deepdream` (steps, step_size, jitter, octaves, mask...).
    """
    from .dream import deepdream

    check(frames >= 1, f"frames: must be 1 or more, got {frames}.")
    check(0 <= start_frame <= frames, f"start_frame: must be in 0..{frames}, got {start_frame}.")
    frame = check_image(image)[:1]
    job = Progress.of(progress)
    job.begin(frames)
    for index in range(start_frame, frames):
        if index > 0:
            frame = zoom_transform(frame, zoom, rotate, shift)
        share = index / (frames - 1) if frames > 1 else 0.0
        wanted = objective if objective_end is None or share == 0 else \
            (objective_end if share == 1 else (1 - share) * objective + share * objective_end)
        frame = deepdream(frame, backbone, wanted, seed=seed + index, progress=job.part(index, frames),
                          cancel=cancel, **dream_options)
        yield frame


def dream_zoom(image: Tensor, backbone: Backbone, objective: Objective, frames: int, **options) -> Tensor:
    """:func:`zoom_frames` collected into a batch :math:`(\\text{frames}, 3, H, W)`."""
    return torch.cat(list(zoom_frames(image, backbone, objective, frames, **options)))


def _grey(image: Tensor):
    """:math:`(1, 3, H, W)` in 0..1 -> an 8-bit greyscale numpy array, what OpenCV's flows read."""
    grey = (0.299 * image[0, 0] + 0.587 * image[0, 1] + 0.114 * image[0, 2]).clamp(0, 1)
    return (grey * 255 + 0.5).to(torch.uint8).cpu().numpy()


def estimate_flow(source: Tensor, target: Tensor, method: str = DEFAULT_FLOW, *,
                  weights_dir: str | Path | None = None) -> Tensor:
    """Dense optical flow :math:`(1, 2, H, W)` from ``source`` to ``target`` (both :math:`(1, 3, H, W)`):
    the pixel at ``p`` in ``source`` is at ``p + flow[p]`` in ``target`` (x first, in pixels).

    ``farneback`` and ``dis`` are OpenCV's; ``raft`` and ``raft_large`` are torchvision's RAFT (small,
    large), on the frames' device, their weights fetched once into ``weights_dir`` with the checksum
    checked (see :func:`raft_weights_path`).
    """
    check(method in FLOWS and method != "none", f"flow: unknown {method!r}; choose one of {', '.join(FLOWS[1:])}.")
    if method.startswith("raft"):
        return _raft_flow(source, target, method, weights_dir)
    try:
        import cv2
    except ImportError:
        raise DreamError(f"flow: '{method}' needs OpenCV: install the package "
                         "opencv-python-headless (in requirements.txt), or choose flow 'none'.") from None
    first, second = _grey(source), _grey(target)
    if method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(first, second, None, 0.5, 4, 15, 5, 5, 1.1, 0)
    else:
        flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(first, second, None)
    return torch.from_numpy(flow).permute(2, 0, 1).unsqueeze(0).to(source.device)


def _raft_weights(method: str):
    from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights

    return Raft_Large_Weights.C_T_SKHT_V2 if method == "raft_large" else Raft_Small_Weights.C_T_V2


def raft_weights_path(method: str = "raft", weights_dir: str | Path | None = None) -> Path:
    """Where ``flow="raft"`` (RAFT small) or ``"raft_large"`` keeps torchvision's weights: in ``weights_dir``
    (the nodes' ``models/deepdream``), default ``$DEEPDREAM_WEIGHTS`` or ``~/.cache/deepdream-nodes``."""
    from .weights import default_weights_dir

    return Path(weights_dir or default_weights_dir()) / _raft_weights(method).url.rsplit("/", 1)[1]


@functools.lru_cache(maxsize=1)
def _raft_model(method: str, device: torch.device, path: Path, modified: float) -> torch.nn.Module:
    from torchvision.models.optical_flow import raft_large, raft_small

    model = (raft_large if method == "raft_large" else raft_small)(weights=None)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval().requires_grad_(False).to(device)


def _raft_flow(source: Tensor, target: Tensor, method: str, weights_dir: str | Path | None) -> Tensor:
    """RAFT needs sides of at least 128 px, multiples of 8: the flow is computed there and scaled back."""
    from .pyramid import resize
    from .weights import download_weights

    path = raft_weights_path(method, weights_dir)
    if not path.is_file():
        url = _raft_weights(method).url
        try:
            download_weights(url, path.parent)
        except DreamError as error:
            raise DreamError(f"flow: '{method}' needs torchvision's RAFT weights ({error}); put {url} at {path} "
                             "by hand, or choose dis or farneback.") from None
    model = _raft_model(method, source.device, path, path.stat().st_mtime)
    height, width = source.shape[-2:]
    size = (max(128, -(-height // 8) * 8), max(128, -(-width // 8) * 8))
    first, second = (resize(image.float(), size) * 2 - 1 for image in (source, target))
    with torch.no_grad():
        flow = model(first, second, num_flow_updates=12)[-1]
    scale = torch.tensor([width / size[1], height / size[0]], device=flow.device).view(1, 2, 1, 1)
    return resize(flow, (height, width)) * scale


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Sample ``image`` :math:`(B, C, H, W)` at ``p + flow[p]``, ``flow`` :math:`(B \\text{ or } 1, 2, H, W)`;
    with ``flow`` from frame t to t-1, this moves frame t-1's content to where it is in frame t.
    Borders are replicated."""
    height, width = image.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(height, device=flow.device, dtype=torch.float32),
                            torch.arange(width, device=flow.device, dtype=torch.float32), indexing="ij")
    x = (xs + flow[:, 0]) / max(width - 1, 1) * 2 - 1
    y = (ys + flow[:, 1]) / max(height - 1, 1) * 2 - 1
    grid = torch.stack([x, y], dim=-1).expand(image.shape[0], -1, -1, -1)  # one flow serves the whole batch
    return torch.nn.functional.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border",
                                           align_corners=True)


def flow_validity(backward: Tensor, forward: Tensor) -> Tensor:
    """Where the flow can be trusted :math:`(1, 1, H, W)` in {0, 1}, by Ruder et al.'s tests ("Artistic
    style transfer for videos", 2016), with ``backward`` (t -> t-1) and ``forward`` (t-1 -> t):

    - forward-backward consistency with a tolerance that grows with the motion: following ``backward``
      then ``forward`` must come back, :math:`|b + f(p + b)|^2 \\le 0.01 (|b|^2 + |f(p + b)|^2) + 0.5`
      (occluded and uncovered pixels fail it);
    - no motion boundary: :math:`|\\nabla b_x|^2 + |\\nabla b_y|^2 \\le 0.01 |b|^2 + 0.002`;
    - landing inside the frame.
    """
    from kornia.filters import spatial_gradient

    there = warp(forward, backward)  # the forward flow at the point each pixel came from
    length = lambda v: v.square().sum(1, keepdim=True)  # noqa: E731
    consistent = length(backward + there) <= 0.01 * (length(backward) + length(there)) + 0.5
    steep = spatial_gradient(backward, mode="diff").square().sum((1, 2)).unsqueeze(1)
    smooth = steep <= 0.01 * length(backward) + 0.002
    height, width = backward.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(height, device=backward.device), torch.arange(width, device=backward.device),
                            indexing="ij")
    inside = ((xs + backward[:, 0] >= 0) & (xs + backward[:, 0] <= width - 1)
              & (ys + backward[:, 1] >= 0) & (ys + backward[:, 1] <= height - 1)).unsqueeze(1)
    return (consistent & smooth & inside).float()


def colour_match(moved: Tensor, frame: Tensor) -> Tensor:
    """Where ``moved`` (the frame before, warped onto ``frame``) shows ``frame``'s colours :math:`(1, 1, H, W)`.

    The tolerance scales with what a sub-pixel flow error costs on texture: :data:`COLOUR_TOLERANCE`
    plus :data:`FLOW_ERROR` times the colour gradient of ``frame`` at the pixel. Flat areas are held to
    0.05 (a smooth flow spilling across an occlusion edge still agrees with itself there, the colours
    do not); fine texture moved by a flow 0.6 px short is not rejected, as a fixed 0.05 did (97% of
    a moving textured square, measured).
    """
    from kornia.filters import spatial_gradient

    # The pixel's own gradient, not its neighbourhood's: next to an occlusion edge the edge's gradient
    # would excuse the wrong colours of the strip it uncovers.
    local = spatial_gradient(frame.float(), mode="diff").square().sum(2).sqrt().mean(1, keepdim=True)
    return ((moved - frame).abs().mean(1, keepdim=True) <= COLOUR_TOLERANCE + FLOW_ERROR * local).float()


def video_frames(frames: Iterable[Tensor], backbone: Backbone, objective: Objective, *, carry: float = 0.8,
                 hold: float = HOLD, flow: str = DEFAULT_FLOW, flow_weights_dir: str | Path | None = None,
                 seed: int = 0, masks: Iterable[Tensor | None] | None = None,
                 total: int | None = None, previous: tuple[Tensor, Tensor] | None = None,
                 progress: Progress | ProgressFn | None = None, cancel: Cancel | None = None,
                 **dream_options) -> Iterator[Tensor]:
    """Dream a stream of video frames :math:`(1, 3, H, W)` so that the dream sticks to what moves.

    Frame t starts from the previous *dreamed* frame, warped along the optical flow from frame t to
    frame t-1 of the source (``flow``; ``none`` = not warped, the linear blend of pytorch-deepdream),
    blended with the source frame t (``carry`` = the share of the warped dream, as in the node and
    the CLI; 0 dreams every frame on its own). Where the flow fails the forward-backward
    checks (:func:`flow_validity`), or the source frame t-1 warped the same way does not match frame t's
    colours (:func:`colour_match`: occlusions, things entering the frame), frame t starts from its
    source. Where the dream was carried, each step moves ``1 - hold * carry`` as far as elsewhere (the
    step mask's share of Ruder et al.'s temporal loss, which pulls a frame towards the warped last
    one where the flow is trusted): what was dreamed stays put, while new and uncovered parts catch
    up at full strength. Frame t is dreamed with seed ``seed + t``. RAFT's weights are kept in
    ``flow_weights_dir``.

    Args:
        frames: the source frames, consumed one at a time (a generator streams a long video).
        masks: optional per-frame masks (or None entries), passed to the dream.
        total: the number of frames, for the progress report (default: unknown, each frame a part of 1).
        previous: ``(source, dream)`` of the frame before the first, to resume a run.
    """
    from .dream import deepdream

    check(0.0 <= carry <= 1.0, f"carry: the share of the last dream must be in 0..1, got {carry}.")
    check(0.0 <= hold <= 1.0, f"hold: the share of the step held back where the dream was carried must be in 0..1, "
                              f"got {hold}.")
    check(flow in FLOWS, f"flow: unknown {flow!r}; choose one of {', '.join(FLOWS)}.")
    job = Progress.of(progress)
    job.begin(total or 1)
    device = backbone.device  # flows, warps and checks run where the dream does, not where the frames live
    last_source, last_dream = (t.to(device) for t in previous) if previous is not None else (None, None)
    mask_stream = iter(masks) if masks is not None else None
    for index, frame in enumerate(frames):
        frame = check_image(frame, f"frame {index}")[:1]
        source = frame.to(device)
        mask = next(mask_stream, None) if mask_stream is not None else None
        if mask is not None:
            mask = prepare_mask(mask, 1, tuple(source.shape[-2:])).to(device)
        start = source
        if last_dream is not None:
            if last_dream.shape != source.shape:
                raise DreamError(f"frame {index}: is {tuple(source.shape[-2:])}, the frame before "
                                 f"{tuple(last_dream.shape[-2:])}; a video's frames must share one size.")
            carried, valid = _carry(last_dream, last_source, source, flow, flow_weights_dir)
            start = torch.lerp(source, carried, carry * valid)
            steps = 1 - hold * carry * valid
            mask = steps if mask is None else mask * steps
        part = job.part(index, total) if total else job.part(0, 1)
        dream = deepdream(start, backbone, objective, seed=seed + index, mask=mask, progress=part, cancel=cancel,
                          **dream_options)
        # Carried as a frame file holds it: a resumed run carries on from exactly what an uninterrupted one did.
        last_source, last_dream = source, eight_bit(dream.to(device))
        yield dream.to(frame.device)


def _carry(last_dream: Tensor, last_source: Tensor, source: Tensor, flow: str,
           weights_dir: str | Path | None = None) -> tuple[Tensor, Tensor]:
    """The last dream moved to where its content is in ``source``, and where that can be trusted."""
    if flow == "none":
        return last_dream, torch.ones_like(source[:, :1])
    backward = estimate_flow(source, last_source, flow, weights_dir=weights_dir)  # frame t -> t-1
    forward = estimate_flow(last_source, source, flow, weights_dir=weights_dir)  # frame t-1 -> t
    carried, moved_source = warp(torch.cat([last_dream, last_source]), backward).split(1)  # one sampling grid
    return carried.to(source.dtype), flow_validity(backward, forward) * colour_match(moved_source, source)


def dream_video(frames: Tensor, backbone: Backbone, objective: Objective,
                masks: Tensor | None = None, **options) -> Tensor:
    """:func:`video_frames` on a batch of frames :math:`(T, 3, H, W)` (masks :math:`(T \\text{ or } 1, H, W)`),
    collected into a batch of the same size."""
    frames = check_image(frames, "frames")
    per_frame: Callable[[int], Tensor | None] = (lambda _: None) if masks is None else \
        (lambda t: masks[t if masks.shape[0] > 1 else 0])
    stream = (frames[t:t + 1] for t in range(frames.shape[0]))
    mask_stream = (per_frame(t) for t in range(frames.shape[0]))
    return torch.cat(list(video_frames(stream, backbone, objective, masks=mask_stream, total=frames.shape[0],
                                       **options)))
