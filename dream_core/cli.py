"""``python -m dream_core``: the same dreams as the nodes, on image files."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import torch

from . import (BACKBONES, DETAIL_MODES, GRAD_NORMS, PRECISIONS, DreamCancelled, DreamError, Objective, deepdream,
               get_spec, layer_objective, load_backbone, load_image, resize_longer_side, save_image)

DEFAULT_WEIGHTS_DIR = Path(os.environ.get("DEEPDREAM_WEIGHTS", Path.home() / ".cache" / "deepdream-nodes"))


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dream_core", description=__doc__, epilog=_catalogue(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    dream = commands.add_parser(
        "dream", help="dream an image file", epilog=_catalogue(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="DeepDream an image: gradient ascent of a layer objective over an octave pyramid.")
    dream.add_argument("input", type=Path, help="image file to dream")
    dream.add_argument("-o", "--output", type=Path, help="where to write the dream (default: INPUT_dream.png)")
    dream.add_argument("--backbone", default="googlenet", choices=list(BACKBONES), help="network (default googlenet)")
    dream.add_argument("--layers", nargs="+", metavar="NAME[@CH][:W]",
                       help="layers to amplify with weights, e.g. inception4c:1.0 inception4d@97:0.5 "
                            "(default: the backbone's default layer)")
    dream.add_argument("--loss", default="l2", choices=["l2", "mean"], help="layer loss (default l2)")
    dream.add_argument("--crop", type=int, default=0, help="activation pixels ignored at each border (Keras: 2)")
    dream.add_argument("--weights", default="torchvision",
                       help="'torchvision' (pretrained, downloaded once), 'random' (seeded init) or a file path")
    dream.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS_DIR,
                       help=f"where torchvision weights are kept (default {DEFAULT_WEIGHTS_DIR}; env DEEPDREAM_WEIGHTS)")
    dream.add_argument("--size", type=int, default=0, help="resize so the longer side is SIZE px first (0 = keep)")
    dream.add_argument("--steps", type=int, default=10, help="steps per octave (default 10)")
    dream.add_argument("--step-size", type=float, default=0.01, help="pixel change per step, 0..1 units (default 0.01)")
    dream.add_argument("--jitter", type=int, default=32, help="largest random roll in pixels (default 32)")
    dream.add_argument("--octaves", type=int, default=4, help="pyramid levels (default 4)")
    dream.add_argument("--octave-scale", type=float, default=1.4, help="size ratio between octaves (default 1.4)")
    dream.add_argument("--detail", default="reinject", choices=DETAIL_MODES, help="how octaves pass detail up")
    dream.add_argument("--blend", type=float, default=0.6, help="blend weight for --detail blend (default 0.6)")
    dream.add_argument("--grad-norm", default="mean_abs", choices=GRAD_NORMS, help="gradient normalisation")
    dream.add_argument("--smoothing", type=float, default=0.0, help="gradient blur sigma at the smallest octave")
    dream.add_argument("--mask", type=Path, help="greyscale image: white = dream, black = keep")
    dream.add_argument("--max-loss", type=float, help="stop an octave once the objective exceeds this")
    dream.add_argument("--tile-size", type=int, default=512,
                       help="octaves above 1024 px are dreamed in tiles of this size, bounding memory (0 = never)")
    dream.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                       help="network precision: bf16/fp16 are faster on GPUs (and CPUs with native bf16), "
                            "with a slightly different picture")
    dream.add_argument("--seed", type=int, default=0, help="seed of the jitter and of random weights")
    dream.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="compute device")
    return parser


def pick_device(name: str) -> torch.device:
    mps = getattr(torch.backends, "mps", None)
    available = {"cuda": torch.cuda.is_available(), "mps": mps is not None and mps.is_available(), "cpu": True}
    if name == "auto":
        return torch.device(next(device for device, present in available.items() if present))
    if not available[name]:
        raise DreamError(f"--device: {name} is not available on this machine; use --device cpu or auto.")
    return torch.device(name)


def run_dream(args: argparse.Namespace) -> Path:
    from tqdm import tqdm

    spec = get_spec(args.backbone)
    image = load_image(args.input)
    if args.size:
        image = resize_longer_side(image, args.size)
    mask = None if args.mask is None else load_image(args.mask).mean(1)
    objective = Objective.sum(parse_layer(text, args.loss, args.crop) for text in (args.layers or [spec.default_layer]))
    device = pick_device(args.device)
    with tqdm(unit="B", unit_scale=True, desc="weights", disable=args.weights != "torchvision", leave=False) as bar:
        def downloaded(done: int, total: int) -> None:
            bar.total = total or None
            bar.update(done - bar.n)

        backbone = load_backbone(args.backbone, args.weights, seed=args.seed, weights_dir=args.weights_dir,
                                 device=device, progress=downloaded)
    with tqdm(total=1, desc=f"dreaming {args.input.name}", unit="step") as bar:
        def advance(step: int, total: int, _preview: torch.Tensor) -> None:
            bar.total = total
            bar.update(step - bar.n)

        dream = deepdream(image, backbone, objective, steps=args.steps, step_size=args.step_size,
                          jitter=args.jitter, octaves=args.octaves, octave_scale=args.octave_scale,
                          detail=args.detail, blend=args.blend, grad_norm=args.grad_norm,
                          smoothing=args.smoothing, mask=mask, max_loss=args.max_loss, seed=args.seed,
                          tile_size=args.tile_size, precision=args.precision, progress=advance)
    output = args.output or args.input.with_name(f"{args.input.stem}_dream.png")
    return save_image(dream, output)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        output = run_dream(args)
    except (DreamError, DreamCancelled) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130
    print(f"wrote {output}")
    return 0
