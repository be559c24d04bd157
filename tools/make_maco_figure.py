"""Make docs/maco.jpg: lucid's FFT against MaCo on MobileNetV2's classes, MaCo's transparency map, and a
feature accentuation of a photograph, captioned.

Run from the repository root: ``python tools/make_maco_figure.py WEIGHTS PHOTO [-o docs/maco.jpg]`` with
WEIGHTS a MobileNetV2 ImageNet state dict (or ``random``, which the tests use) and PHOTO a picture.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import dream_core as dc  # noqa: E402
from make_explain_figure import caption  # noqa: E402
from make_feature_figure import save_row  # noqa: E402

CLASSES = (130, 949)  # flamingo, strawberry
ACCENTUATED = 292  # tiger: the stripes a cat's coat already has


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("weights", help="MobileNetV2 weights file, or 'random'")
    parser.add_argument("photo", type=Path, help="the picture to accentuate a class in")
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/maco.jpg"))
    parser.add_argument("--size", type=int, default=224, help="side of each picture")
    parser.add_argument("--steps", type=int, default=256, help="Adam steps per picture")
    args = parser.parse_args(argv)
    net = dc.load_backbone("mobilenet_v2", args.weights)
    side = (args.size, args.size)
    tiles = []
    for index in CLASSES:
        name = net.class_names[index]
        lucid = dc.feature_visualize(net, dc.channel(dc.LOGITS, index), size=side, steps=args.steps)
        maco, transparency = dc.feature_visualize(net, dc.channel(dc.LOGITS, index), size=side, steps=args.steps,
                                                  parameterization="maco", return_transparency=True)
        tiles += [caption(lucid, f"{name}: lucid FFT"), caption(maco, f"{name}: MaCo")]
    tiles.append(caption(transparency.expand(-1, 3, -1, -1), f"{name}: MaCo's transparency"))
    photo = dc.resize(dc.load_image(args.photo), side)
    accent = dc.accentuate(photo, net, dc.channel(dc.LOGITS, ACCENTUATED), steps=args.steps // 4)
    tiles += [caption(photo, "photo"), caption(accent, f"accentuated: {net.class_names[ACCENTUATED]}")]
    save_row(tiles, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
