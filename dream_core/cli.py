"""``python -m dream_core``: the same dreams, style transfers and animations as the nodes, on image and video files."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from . import (BACKBONES, DEFAULT_FLOW, DETAIL_MODES, FLOWS, GRAD_NORMS, HOLD, INITS, OPTIMIZERS, POOLINGS, PRECISIONS, STATISTICS, TV_KINDS,
               Backbone, DreamCancelled, DreamError, LayerTerm, Objective, deepdream, gatys_layers, get_spec,
               layer_objective, load_backbone, load_image, save_image, style_objective, stylize,
               default_weights_dir, zoom_frames)
from .cli_explain import add_commands as add_explain_commands
from .distributed import Shard, written
from .jobs import VideoShare, dream_pictures, dream_video_share, picture_names, read_picture, video_length
from .loop import ProgressFn
from .media import (IMAGE_SUFFIXES, MOVIE_SUFFIXES, frame_folder, frame_path, save_frame, video_rate, write_movie,
                    written_frames)

DEFAULT_WEIGHTS_DIR = default_weights_dir()


def _catalogue() -> str:
    lines = ["backbones and their layers (channels):"]
    for spec in BACKBONES.values():
        layers = ", ".join(f"{name} ({channels})" for name, channels in spec.layers.items())
        lines.append(f"  {spec.name}: {spec.title}; default layer {spec.default_layer}\n    {layers}")
    return "\n".join(lines)


def parse_layer(text: str, loss: str, crop: int) -> Objective:
    """``NAME[@CHANNEL][:WEIGHT]`` -> ``weight * loss(NAME, CHANNEL)``; e.g. ``inception4c@97:0.5``."""
    name, _, weight = text.partition(":")
    name, _, channel = name.partition("@")
    try:
        return layer_objective(name, float(weight) if weight else 1.0, loss,
                               int(channel) if channel else None, crop=crop)
    except ValueError as error:
        if isinstance(error, DreamError):
            raise
        raise DreamError(f"--layers: cannot read {text!r}; write NAME, NAME:WEIGHT or NAME@CHANNEL:WEIGHT.") from None


def _not_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _add_shared(command: argparse.ArgumentParser, backbone: str) -> None:
    """The options every command has: the network, its weights, the size, seed, precision and device."""
    command.add_argument("-o", "--output", type=Path, help="where to write the result (default: next to the input)")
    command.add_argument("--backbone", default=backbone, choices=list(BACKBONES), help=f"network (default {backbone})")
    command.add_argument("--weights", default="torchvision",
                         help="'torchvision' (pretrained, downloaded once), 'random' (seeded init) or a file path")
    command.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS_DIR,
                         help=f"where torchvision weights are kept (default {DEFAULT_WEIGHTS_DIR}; env DEEPDREAM_WEIGHTS)")
    command.add_argument("--size", type=_not_negative, default=0,
                         help="resize so the longer side is SIZE px first (0 = keep)")
    command.add_argument("--mask", type=Path, help="greyscale image: white = may change, black = keep")
    command.add_argument("--precision", default="auto", choices=list(PRECISIONS),
                         help="network precision: auto = half on CUDA (bf16 where supported), fp32 elsewhere; "
                              "bf16/fp16 are faster on GPUs (and CPUs with native bf16), "
                              "with a slightly different picture")
    command.add_argument("--seed", type=int, default=0, help="seed of the jitter or noise, and of random weights")
    command.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="compute device")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, unless its help already says it or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, argparse.SUPPRESS) or action.default is False \
                or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _command(commands, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """A subcommand whose help ends with the backbone catalogue."""
    return commands.add_parser(name, help=summary, description=description, epilog=_catalogue(), formatter_class=_Help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dream_core", description=__doc__, epilog=_catalogue(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    dream = _command(
        commands, "dream", "dream an image file",
        "DeepDream an image: gradient ascent of a layer objective over an octave pyramid.")
    dream.add_argument("input", type=Path, help="image file to dream, or a folder of them (picture i with seed "
                       "+ i; shared between the processes of a torchrun job)")
    _add_shared(dream, "googlenet")
    dream.add_argument("--layers", nargs="+", metavar="NAME[@CH][:W]",
                       help="layers to amplify with weights, e.g. inception4c:1.0 inception4d@97:0.5 "
                            "(default: the backbone's default layer)")
    dream.add_argument("--loss", default="l2", choices=["l2", "mean"], help="layer loss (default l2)")
    dream.add_argument("--crop", type=int, default=0, help="activation pixels ignored at each border (Keras: 2)")
    dream.add_argument("--steps", type=int, default=10, help="steps per octave (default 10)")
    dream.add_argument("--step-size", type=float, default=0.01, help="pixel change per step, 0..1 units (default 0.01)")
    dream.add_argument("--jitter", type=int, default=32, help="largest random roll in pixels (default 32)")
    dream.add_argument("--octaves", type=int, default=4, help="pyramid levels (default 4)")
    dream.add_argument("--octave-scale", type=float, default=1.4, help="size ratio between octaves (default 1.4)")
    dream.add_argument("--detail", default="reinject", choices=DETAIL_MODES, help="how octaves pass detail up")
    dream.add_argument("--blend", type=float, default=0.6, help="blend weight for --detail blend (default 0.6)")
    dream.add_argument("--grad-norm", default="mean_abs", choices=GRAD_NORMS, help="gradient normalisation")
    dream.add_argument("--smoothing", type=float, default=0.0, help="gradient blur sigma at the smallest octave")
    dream.add_argument("--max-loss", type=float, help="stop an octave once the objective exceeds this")
    dream.add_argument("--tile-size", type=int, default=512,
                       help="octaves above 1024 px are dreamed in tiles of this size, bounding memory (0 = never)")

    style = _command(
        commands, "style", "paint an image file in the style of others",
        "Neural style transfer (Gatys et al.): optimise the content picture towards the styles' "
        "feature statistics while keeping its own features at the content layer.")
    style.add_argument("content", type=Path, help="image file to repaint")
    style.add_argument("styles", type=Path, nargs="+", help="style image file(s)")
    _add_shared(style, "vgg19")
    style.add_argument("--style-weights", type=float, nargs="+", metavar="W",
                       help="strength of each style, as Style Loss's weight: not normalised, so 0.7 0.3 "
                            "is one style's strength split 70/30 (default: 1 each)")
    style.add_argument("--style-layers", nargs="+", metavar="NAME[:W]",
                       help="style layers with weights (default: relu1_1 .. relu5_1 on VGG)")
    style.add_argument("--style-scale", type=float, default=1.0, help="style size relative to the image (default 1)")
    style.add_argument("--statistic", default="gram", choices=list(STATISTICS), help="style statistic (default gram)")
    style.add_argument("--content-layer", help="content layer (default relu4_2 on VGG)")
    style.add_argument("--content-weight", type=float, default=0.1, help="content strength (default 0.1)")
    style.add_argument("--tv-weight", type=float, default=10.0, help="total-variation strength (default 10)")
    style.add_argument("--tv", default="l2", choices=list(TV_KINDS), help="total-variation kind (default l2)")
    style.add_argument("--steps", type=int, default=100, help="iterations per scale (default 100)")
    style.add_argument("--optimizer", default="lbfgs", choices=list(OPTIMIZERS), help="optimizer (default lbfgs)")
    style.add_argument("--learning-rate", type=float, default=0.02, help="Adam's step in 0..1 pixel units")
    style.add_argument("--ema", type=float, default=0.0, help="Adam: average the iterates with this decay (0 = off)")
    style.add_argument("--scales", type=int, default=1, help="coarse-to-fine scales, 1.41x apart (0 = from 128 px)")
    style.add_argument("--init", default="content", help="'content', 'noise' or an image file to start from")
    style.add_argument("--original-colors", action="store_true", help="keep the content's colours")
    style.add_argument("--pooling", default="max", choices=list(POOLINGS), help="max or avg pooling (VGG)")

    zoom = _command(
        commands, "zoom", "the endless zoom into a dream: a GIF, an MP4 or a folder of frames",
        "Dream a frame, zoom/rotate/shift it, dream again. Frames are written as they are made into "
        "OUT_frames/ (or OUT when it has no movie suffix); a run that stops resumes where it was.")
    zoom.add_argument("input", type=Path, help="image file of the first frame")
    _add_shared(zoom, "googlenet")
    _add_animation(zoom, steps=5)
    zoom.add_argument("--frames", type=int, default=60, help="frames to make (default 60)")
    zoom.add_argument("--zoom", type=float, default=1.05, help="enlargement per frame (default 1.05)")
    zoom.add_argument("--rotate", type=float, default=0.0, help="degrees per frame, counter-clockwise (default 0)")
    zoom.add_argument("--shift", type=float, nargs=2, default=(0.0, 0.0), metavar=("X", "Y"),
                      help="pixels per frame right and down (default 0 0)")
    zoom.add_argument("--layers-end", nargs="+", metavar="NAME[@CH][:W]",
                      help="morph towards these layers by the last frame")

    video = _command(
        commands, "video", "dream every frame of a video, following its motion",
        "Each frame starts from the last dreamed frame warped along the optical flow. Frames are "
        "read and written one at a time into OUT_frames/ (resumable), then assembled into OUT.")
    video.add_argument("input", type=Path, help="video file (PyAV) or a folder of frames")
    _add_shared(video, "googlenet")
    _add_animation(video, steps=5)
    video.add_argument("--carry", type=float, default=0.8, help="share of the warped last dream (default 0.8)")
    video.add_argument("--hold", type=float, default=HOLD,
                       help=f"share of each step held back where the last dream was carried (default {HOLD})")
    video.add_argument("--flow", default=DEFAULT_FLOW, choices=list(FLOWS),
                       help=f"optical flow: OpenCV's farneback or dis, torchvision's RAFT (weights fetched once into "
                            f"--weights-dir), or none (default {DEFAULT_FLOW})")
    video.add_argument("--warmup", type=int, default=8, help="under torchrun: frames each process dreams before "
                       "its chunk, unwritten, so the seams do not show (default 8)")
    parser.set_defaults(runners=add_explain_commands(commands, _command, _add_shared))
    return parser


def _add_animation(command: argparse.ArgumentParser, steps: int) -> None:
    """Options of both animations: the layers and the per-frame dream."""
    command.add_argument("--layers", nargs="+", metavar="NAME[@CH][:W]", help="layers to amplify (default: the "
                         "backbone's default layer)")
    command.add_argument("--steps", type=int, default=steps, help=f"steps per frame (default {steps})")
    command.add_argument("--step-size", type=float, default=0.01, help="pixel change per step (default 0.01)")
    command.add_argument("--jitter", type=int, default=32, help="largest random roll in pixels (default 32)")
    command.add_argument("--octaves", type=int, default=1, help="pyramid levels per frame (default 1)")
    command.add_argument("--fps", type=float, default=None, help="frames per second of the movie (default: a video's "
                         "own rate, else 12)")


def pick_device(name: str) -> torch.device:
    mps = getattr(torch.backends, "mps", None)
    available = {"cuda": torch.cuda.is_available(), "mps": mps is not None and mps.is_available(), "cpu": True}
    if name == "auto":
        name = next(device for device, present in available.items() if present)
    if not available[name]:
        raise DreamError(f"--device: {name} is not available on this machine; use --device cpu or auto.")
    return Shard.from_env().device(torch.device(name))  # under torchrun: this process's GPU


def _backbone(args: argparse.Namespace, **options) -> Backbone:
    return load_backbone(args.backbone, args.weights, seed=args.seed, weights_dir=args.weights_dir,
                         device=pick_device(args.device), **options)


@contextmanager
def _progress_bar(description: str) -> Iterator[ProgressFn]:
    from tqdm import tqdm

    with tqdm(total=None, desc=description, unit="step") as bar:
        def advance(step: int, total: int, _preview: torch.Tensor | None) -> None:
            bar.total = total
            bar.update(step - bar.n)

        yield advance


def _mask(args: argparse.Namespace) -> torch.Tensor | None:
    return None if args.mask is None else load_image(args.mask, "--mask").mean(1)


def _dream_settings(args: argparse.Namespace, mask: torch.Tensor | None) -> dict:
    return dict(steps=args.steps, step_size=args.step_size, jitter=args.jitter, octaves=args.octaves,
                octave_scale=args.octave_scale, detail=args.detail, blend=args.blend, grad_norm=args.grad_norm,
                smoothing=args.smoothing, mask=mask, max_loss=args.max_loss, tile_size=args.tile_size,
                precision=args.precision)


def _dream_objective(args: argparse.Namespace) -> Objective:
    names = args.layers or [get_spec(args.backbone).default_layer]
    return Objective.sum(parse_layer(text, args.loss, args.crop) for text in names)


def _check_layers(objective: Objective, backbone: str) -> None:
    """Refuse a layer the backbone lacks before any network is built (seconds saved, and a clear line)."""
    spec = get_spec(backbone)
    for layer in objective.layers:
        if spec.aliases.get(layer, layer) not in spec.layers:
            raise DreamError(f"--layers: {layer!r} is not a layer of {backbone}; available: {', '.join(spec.layers)}.")


def _check_writable(path: Path) -> None:
    """Refuse an output that cannot be written before the work is done."""
    from PIL import Image

    folder = path.parent if path.parent != Path("") else Path(".")
    if not folder.is_dir():
        raise DreamError(f"--output: the folder {folder} does not exist; create it or write elsewhere.")
    if not os.access(folder, os.W_OK):
        raise DreamError(f"--output: the folder {folder} is not writable; write elsewhere.")
    if path.suffix.lower() not in Image.registered_extensions():
        raise DreamError(f"--output: {path.name} has no image suffix Pillow can write (.png, .jpg, .webp, ...).")


def run_dream(args: argparse.Namespace) -> Path:
    if args.input.is_dir():
        return run_dream_folder(args)
    output = args.output or args.input.with_name(f"{args.input.stem}_dream.png")
    objective = _dream_objective(args)
    _check_layers(objective, args.backbone)
    _check_writable(output)
    image, mask = read_picture(args.input, args.size), _mask(args)  # every input read before the network is built
    backbone = _backbone(args)
    with _progress_bar(f"dreaming {args.input.name}") as advance:
        dream = deepdream(image, backbone, objective, seed=args.seed, progress=advance, **_dream_settings(args, mask))
    return save_image(dream, output)


def run_dream_folder(args: argparse.Namespace) -> Path:
    """Every picture of a folder (see :func:`~dream_core.jobs.dream_pictures`); under torchrun each process
    takes every N-th picture."""
    shard = Shard.from_env()
    paths = sorted(p for p in args.input.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DreamError(f"input: {args.input} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    folder = args.output or args.input.with_name(f"{args.input.name}_dream")
    objective = _dream_objective(args)
    _check_layers(objective, args.backbone)
    mask = _mask(args)
    backbone = _backbone(args)
    shard.start(backbone.device)
    try:
        with _job_bar(shard, folder, picture_names(paths), f"dreaming {args.input.name}/") as done:
            dream_pictures(paths, folder, backbone, objective, size=args.size, seed=args.seed, shard=shard,
                           on_written=done, **_dream_settings(args, mask))
    finally:
        shard.stop()
    return folder


def parse_style_layer(text: str) -> LayerTerm:
    """``NAME[:WEIGHT]`` -> a style layer term."""
    name, _, weight = text.partition(":")
    try:
        return LayerTerm(name, float(weight) if weight else 1.0)
    except ValueError:
        raise DreamError(f"--style-layers: cannot read {text!r}; write NAME or NAME:WEIGHT.") from None


def run_style(args: argparse.Namespace) -> Path:
    weights = args.style_weights or [1.0] * len(args.styles)
    if len(weights) != len(args.styles):
        raise DreamError(f"--style-weights: {len(weights)} weights for {len(args.styles)} styles; give one per style.")
    content = read_picture(args.content, args.size)
    init = args.init if args.init in INITS else load_image(Path(args.init))
    backbone = _backbone(args, pooling=args.pooling)
    content_layer, default_style_layers = gatys_layers(backbone)
    terms = [parse_style_layer(text) for text in args.style_layers] if args.style_layers else \
        [LayerTerm(layer) for layer in default_style_layers]
    style = Objective.sum(
        style_objective(backbone, load_image(path), terms, weight, statistic=args.statistic,
                        scale=args.style_scale) for path, weight in zip(args.styles, weights))
    with _progress_bar(f"styling {args.content.name}") as advance:
        result = stylize(content, backbone, style, content_weight=args.content_weight,
                         content_layer=args.content_layer or content_layer, tv_weight=args.tv_weight, tv=args.tv,
                         steps=args.steps, optimizer=args.optimizer, learning_rate=args.learning_rate,
                         scales=args.scales, init=init, seed=args.seed, original_colors=args.original_colors,
                         ema=args.ema, mask=_mask(args), precision=args.precision, progress=advance)
    return save_image(result, args.output or args.content.with_name(f"{args.content.stem}_style.png"))


def _layers(texts: list[str] | None, backbone: str) -> Objective:
    return Objective.sum(parse_layer(text, "l2", 0) for text in (texts or [get_spec(backbone).default_layer]))


def _animation_settings(args: argparse.Namespace) -> dict:
    return {"steps": args.steps, "step_size": args.step_size, "jitter": args.jitter, "octaves": args.octaves,
            "precision": args.precision}


DEFAULT_FPS = 12.0


def _finish(folder: Path, count: int, output: Path, fps: float | None, source: Path | None = None) -> Path:
    """The movie from the frames in ``folder`` (with ``source``'s sound and, unless ``fps``, its rate), or the folder."""
    if output.suffix.lower() not in MOVIE_SUFFIXES:
        return folder
    rate = fps or (video_rate(source) if source is not None else None) or DEFAULT_FPS
    return write_movie(folder, count, output, rate, sound_from=source)


def _check_output(output: Path) -> None:
    """Refuse a movie format we cannot write before any work is done."""
    if output.suffix and output.suffix.lower() not in MOVIE_SUFFIXES:
        raise DreamError(f"--output: {output.suffix} is not a movie format; use .gif or .mp4, or a folder name.")


def run_zoom(args: argparse.Namespace) -> Path:
    output = args.output or args.input.with_name(f"{args.input.stem}_zoom.gif")
    _check_output(output)
    objective = _layers(args.layers, args.backbone)
    end = None if args.layers_end is None else _layers(args.layers_end, args.backbone)
    folder = frame_folder(output)
    done = min(written_frames(folder), args.frames)
    start = read_picture(args.input, args.size) if done == 0 else load_image(frame_path(folder, done - 1))
    backbone = _backbone(args)
    with _progress_bar(f"zooming into {args.input.name}") as advance:
        frames = zoom_frames(start, backbone, objective, args.frames, zoom=args.zoom, rotate=args.rotate,
                             shift=tuple(args.shift), objective_end=end, seed=args.seed, start_frame=done,
                             mask=_mask(args), progress=advance, **_animation_settings(args))
        for index, frame in enumerate(frames, start=done):
            save_frame(frame, folder, index)
    return _finish(folder, args.frames, output, args.fps)


def run_video(args: argparse.Namespace) -> Path:
    """Frames streamed in and out; under torchrun each process dreams a contiguous chunk (see
    :func:`~dream_core.jobs.dream_video_share`)."""
    shard = Shard.from_env()
    output = args.output or args.input.with_name(f"{args.input.stem}_dream.mp4")
    _check_output(output)
    objective = _layers(args.layers, args.backbone)
    folder = frame_folder(output)
    total = video_length(args.input, shard)
    share = VideoShare.of(folder, total, shard, args.warmup)
    backbone = _backbone(args)
    shard.start(backbone.device)
    names = [frame_path(folder, i).name for i in range(total)]
    try:
        with _job_bar(shard, folder, names, f"dreaming {args.input.name}") as done:
            dream_video_share(args.input, folder, backbone, objective, share, size=args.size, seed=args.seed,
                              on_written=done, carry=args.carry, hold=args.hold, flow=args.flow,
                              flow_weights_dir=args.weights_dir,
                              masks=None if args.mask is None else _repeat(_mask(args)), **_animation_settings(args))
        return _finish(folder, total, output, args.fps, source=args.input) if shard.leader else folder
    finally:
        shard.stop()


@contextmanager
def _job_bar(shard: Shard, folder: Path, names: list[str], description: str) -> Iterator[Callable[[], None]]:
    """One bar for the whole job, on the leader: frames written by every process (counted in ``folder``),
    with frames per second. Yields the call to make after each frame written here. On leaving, every
    process waits for all; the leader keeps the bar moving meanwhile."""
    from tqdm import tqdm

    with tqdm(total=len(names), desc=description, unit="frame", disable=not shard.leader) as bar:
        def refresh() -> None:
            bar.update(written(folder, names) - bar.n)

        refresh()
        yield refresh
        if shard.distributed and torch.distributed.is_initialized():
            waiting = torch.distributed.barrier(async_op=True)
            while not waiting.is_completed():
                refresh()
                time.sleep(0.5)
            waiting.wait()
        refresh()


def _repeat(mask: torch.Tensor) -> Iterator[torch.Tensor]:
    while True:
        yield mask


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        runners = {"dream": run_dream, "style": run_style, "zoom": run_zoom, "video": run_video, **args.runners}
        output = runners[args.command](args)
    except (DreamError, DreamCancelled) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130
    if output is not None and Shard.from_env().leader:
        print(f"wrote {output}")
    return 0
