"""Make docs/feature_visualization.jpg: lucid-style feature visualisations of MobileNetV2, captioned.

Run from the repository root: ``python tools/make_feature_figure.py WEIGHTS [-o docs/feature_visualization.jpg]``
with WEIGHTS a MobileNetV2 ImageNet state dict (or ``random``, which the tests use).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import dream_core as dc  # noqa: E402
from make_explain_figure import caption  # noqa: E402

# (layer, channel or class, kind): two channels, a neuron, and two ImageNet classes.
PANELS = [("features.10", 30, "channel"), ("features.13", 40, "channel"), ("features.13", 40, "neuron"),
          (dc.LOGITS, 130, "class"), (dc.LOGITS, 949, "class")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("weights", help="MobileNetV2 weights file, or 'random'")
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/feature_visualization.jpg"))
    parser.add_argument("--size", type=int, default=224, help="side of each picture")
    parser.add_argument("--steps", type=int, default=256, help="Adam steps per picture")
    args = parser.parse_args(argv)
    net = dc.load_backbone("mobilenet_v2", args.weights)
    tiles = []
    for layer, index, kind in PANELS:
        objective = dc.neuron(layer, index) if kind == "neuron" else dc.channel(layer, index)
        made = dc.feature_visualize(net, objective, size=(args.size, args.size), steps=args.steps)
        label = f"class {net.class_names[index]}" if kind == "class" else f"{layer} {kind} {index}"
        tiles.append(caption(made, label))
    save_row(tiles, args.output)
    return 0


def save_row(tiles: list, output: Path) -> None:
    """The captioned tiles side by side, as a JPEG."""
    from PIL import Image

    width, height = tiles[0].size
    sheet = Image.new("RGB", (len(tiles) * width, height), "white")
    for position, tile in enumerate(tiles):
        sheet.paste(tile, (position * width, 0))
    sheet.save(output, quality=88)
    print(f"wrote {output}")


if __name__ == "__main__":
    raise SystemExit(main())
