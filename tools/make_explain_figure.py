"""Make docs/explain.png: every Explain tool on one photo, with captions; print Classify and the fooling report.

Run from the repository root: ``python tools/make_explain_figure.py WEIGHTS PHOTO [-o docs/explain.jpg]``
with WEIGHTS a MobileNetV2 ImageNet state dict (or ``random``, which the tests use).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import dream_core as dc  # noqa: E402

FOOL_TARGET = 1  # ImageNet "goldfish"
VISUALIZE_TARGET = 130  # ImageNet "flamingo"


def caption(picture: torch.Tensor, text: str):
    """A (1, 3, H, W) picture as a PIL image with ``text`` in a strip below it."""
    from PIL import Image, ImageDraw

    tile = dc.to_pil(picture)
    framed = Image.new("RGB", (tile.width, tile.height + 16), "white")
    framed.paste(tile, (0, 0))
    ImageDraw.Draw(framed).text((4, tile.height + 2), text, fill="black")
    return framed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("weights", help="MobileNetV2 weights file, or 'random'")
    parser.add_argument("photo", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/explain.jpg"))
    parser.add_argument("--size", type=int, default=224, help="side of each square tile")
    parser.add_argument("--steps", type=int, default=100, help="steps of the visualisation and inversion")
    args = parser.parse_args(argv)
    net = dc.load_backbone("mobilenet_v2", args.weights)
    photo = dc.resize(dc.load_image(args.photo), (args.size, args.size))
    top = dc.classify(photo, net, 3)[0]
    print("Classify:", ", ".join(map(str, top)))
    tiles = [caption(photo, f"{top[0].name} {top[0].probability:.0%}")]
    for method, label in [("gradient", "gradient"), ("smoothgrad", "SmoothGrad"),
                          ("integrated_gradients", "integrated gradients"), ("gradcam", "Grad-CAM (features.18)")]:
        saliency = dc.saliency_map(photo, net, None, method, samples=25, steps=64)
        tiles.append(caption(dc.heatmap(photo, saliency, 0.6), label))
    fooled, (report,) = dc.fool(photo, net, FOOL_TARGET, max_steps=100)
    print("Fooling:", report)
    tiles.append(caption(fooled, f"fooled: {report.after.name} {report.after.probability:.0%}"))
    tiles.append(caption((0.5 + 20 * (fooled - photo)).clamp(0, 1), f"change x20 (L-inf {report.linf * 255:.0f}/255)"))
    made = dc.class_visualize(net, VISUALIZE_TARGET, size=(args.size, args.size), steps=args.steps, octaves=3)
    tiles.append(caption(made, f"class visualisation: {net.class_names[VISUALIZE_TARGET]}"))
    inverted = dc.invert_features(photo, net, "features.3", steps=2 * args.steps)
    tiles.append(caption(inverted, "inverted from features.3"))
    from PIL import Image

    columns = 3
    width, height = tiles[0].size
    sheet = Image.new("RGB", (columns * width, -(-len(tiles) // columns) * height), "white")
    for index, tile in enumerate(tiles):
        sheet.paste(tile, ((index % columns) * width, (index // columns) * height))
    sheet.save(args.output, quality=88)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
