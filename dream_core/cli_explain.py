"""The command line's feature visualisation (see :mod:`dream_core.cli`): ``visualize`` (lucid's FFT, MaCo
or pixels, with MaCo's transparency map), ``accentuate`` a feature in a picture, and the ``trust`` check."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch

from .explain import path_similarity
from .images import load_image, save_image
from .param import ACCENT_PULL, FEATURE_TARGETS, PARAMETERIZATIONS, accentuate, feature_objective, feature_visualize
from .pyramid import resize

CANVAS = 224  # the side of a visualisation when --size is 0


def add_commands(commands, command: Callable, add_shared: Callable) -> dict[str, Callable[[argparse.Namespace], Path]]:
    """The three subcommands, added to ``commands``; returns their runners by name."""
    visualize = command(commands, "visualize", "paint what a channel, neuron or class responds to",
                        "Feature visualisation from nothing: lucid's Fourier picture, MaCo (only the phase of a "
                        "natural spectrum optimised; for deep networks and transformers) or pixels.")
    add_shared(visualize, "googlenet")
    _add_feature(visualize)
    visualize.add_argument("--parameterization", default="fft", choices=list(PARAMETERIZATIONS),
                           help="fft (lucid), maco (Fel et al. 2023) or pixels")
    visualize.add_argument("--steps", type=int, default=256, help="Adam steps (default 256)")
    accent = command(commands, "accentuate", "make a feature stronger in a picture, keeping the picture",
                     "Feature accentuation (Hamblin, Fel et al. 2024): the picture seeds the optimisation and is "
                     "pulled back to itself.")
    accent.add_argument("input", type=Path, help="image file")
    add_shared(accent, "googlenet")
    _add_feature(accent)
    accent.add_argument("--pull", type=float, default=ACCENT_PULL, help="how strongly the picture is kept")
    accent.add_argument("--steps", type=int, default=64, help="Adam steps (default 64)")
    trust = command(commands, "trust", "check a visualisation against natural pictures of its feature",
                    "Per layer, how a visualisation's channel profile correlates with natural pictures', next to "
                    "theirs with each other (Geirhos et al. 2024). Prints the report; -o writes it too.")
    trust.add_argument("visualization", type=Path, help="the visualisation's image file")
    trust.add_argument("references", type=Path, nargs="+", help="2 or more natural pictures of the feature")
    add_shared(trust, "googlenet")
    trust.add_argument("--up-to", help="the last layer of the path (default: the network's last)")
    return {"visualize": run_visualize, "accentuate": run_accentuate, "trust": run_trust}


def _add_feature(command: argparse.ArgumentParser) -> None:
    command.add_argument("--layer", help="layer of the channel or neuron (default: the backbone's default layer)")
    command.add_argument("--target", default="channel", choices=FEATURE_TARGETS, help="channel, neuron (its centre) or "
                         "class (logits)")
    command.add_argument("--index", type=int, default=0, help="the channel, or the class (default 0)")
    command.add_argument("--transparency", action="store_true",
                         help="also write the transparency map (where the feature kept asking for change) as "
                              "OUT_transparency.png")


def _save(pictures, transparency, output: Path, args: argparse.Namespace) -> Path:
    if args.transparency:
        save_image(transparency.expand(-1, 3, -1, -1), output.with_name(f"{output.stem}_transparency.png"))
    return save_image(pictures, output)


def run_visualize(args: argparse.Namespace) -> Path:
    from .cli import _backbone, _progress_bar

    output = args.output or Path(f"{args.backbone}_{args.target}_{args.index}.png")
    backbone = _backbone(args)
    side = args.size or CANVAS
    with _progress_bar("visualising") as advance:
        pictures, transparency = feature_visualize(
            backbone, feature_objective(backbone, args.target, args.index, args.layer), size=(side, side), steps=args.steps, seed=args.seed,
            parameterization=args.parameterization, precision=args.precision, progress=advance,
            return_transparency=True)
    return _save(pictures, transparency, output, args)


def run_accentuate(args: argparse.Namespace) -> Path:
    from .cli import _backbone, _progress_bar
    from .jobs import read_picture

    output = args.output or args.input.with_name(f"{args.input.stem}_accentuated.png")
    picture = read_picture(args.input, args.size)
    backbone = _backbone(args)
    with _progress_bar(f"accentuating {args.input.name}") as advance:
        made, transparency = accentuate(picture, backbone, feature_objective(backbone, args.target, args.index, args.layer),
                                        pull=args.pull, steps=args.steps,
                                        seed=args.seed, precision=args.precision, progress=advance,
                                        return_transparency=True)
    return _save(made, transparency, output, args)


def run_trust(args: argparse.Namespace) -> Path | None:
    from .cli import _backbone
    from .jobs import read_picture

    picture = read_picture(args.visualization, args.size)
    references = [resize(load_image(path), tuple(picture.shape[-2:])) for path in args.references]
    steps = path_similarity(_backbone(args), picture, torch.cat(references), up_to=args.up_to)
    report = "\n".join(str(step) for step in steps)
    print(report)
    if args.output is None:
        return None
    args.output.write_text(report + "\n")
    return args.output
