"""Measure cutouts: does scoring a CLIP embedding on random crops make a dream a person (here: another
network) recognises, where scoring the one picture makes adversarial texture?

No CLIP weights can be downloaded here, so a small CLIP-like pair is trained: a ViT image tower in the
layout of ComfyUI's CLIP vision model (``tests/clip_standin.py``: patch 4, 32 px, projection 32) and one
learnt "text" embedding per class, trained contrastively (the cross-entropy of scaled cosines between
image and class embeddings, CLIP's loss with class prompts) on the synthetic patterns of
``tests/shapes.py``. Each pattern class's text embedding is then dreamed into pictures of 2x and 3x
the tower's size from grey noise, by the CLIP objective (``cosine(embedding, text)``) alone, with 0
cutouts (the picture seen in native tiles, the dream's default for a ViT; or whole, through interpolated
position embeddings: what scoring "the one picture" means) and with more cutouts. The judge is
independent: the small CNN of the tests, trained on the same patterns, scores every 32 px window of
each dream (does every part show the class at the tower's scale?) and the whole dream shrunk to 32 px
(does the picture as a whole show it, as CLIP sees a picture?). The mean change of the pixels is
printed too, so that a dream that does less is not mistaken for a better one.

Run from the repository root: ``python tools/clip_cutouts.py`` (about 10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import dream_core as dc  # noqa: E402
from clip_standin import VisionModelProjection  # noqa: E402
from tests.shapes import CLASSES, SIZE, pictures, train_on_patterns, train_shapes_net  # noqa: E402
from tools.vit_views import accuracy as judge_accuracy, window_scores  # noqa: E402

WIDTH = 32  # the shared embedding width


class ContrastivePair(nn.Module):
    """Image tower + one text embedding per class: logits are the scaled cosines (CLIP with class prompts)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.tower = VisionModelProjection(image_size=SIZE, patch=4, width=64, heads=4, hidden=128, blocks=4,
                                           projection=WIDTH)
        self.text = nn.Parameter(torch.randn(len(CLASSES), WIDTH))
        self.scale = 10.0

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        image = nn.functional.normalize(self.tower(pixels)[2], dim=-1)
        return self.scale * image @ nn.functional.normalize(self.text, dim=-1).T


def train_pair(steps: int) -> ContrastivePair:
    pair = ContrastivePair()
    train_on_patterns(pair, torch.optim.AdamW(pair.parameters(), lr=2e-3, weight_decay=0.01), steps=steps, seed=1)
    return pair.eval().requires_grad_(False)


def accuracy(pair: ContrastivePair, count: int = 40) -> float:
    generator = torch.Generator().manual_seed(99)
    images = torch.cat([pictures(kind, count, generator) for kind in range(len(CLASSES))])
    with torch.no_grad():
        predicted = pair((images - 0.5) / 0.5).argmax(1)
    return (predicted == torch.arange(len(CLASSES)).repeat_interleave(count)).float().mean().item()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--steps", type=int, default=20, help="dream steps per octave")
    parser.add_argument("--cutouts", nargs="+", type=int, default=[4, 8, 16, 32])
    parser.add_argument("--scales", nargs="+", type=int, default=[2, 3], help="picture sizes in native sizes")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    judge, pair = train_shapes_net(), train_pair(args.train_steps)
    print(f"accuracy at 32 px: judge CNN {judge_accuracy(judge):.2f}, CLIP-like pair {accuracy(pair):.2f}")
    backbone = dc.backbone_from_clip_vision(pair.tower, image_size=SIZE, mean=(0.5,) * 3, std=(0.5,) * 3)
    views = {"whole picture": ({"tile_size": 0}, 0), "native tiles": ({}, 0),
             **{f"{count} cutouts": ({}, count) for count in args.cutouts}}
    print("scale  view           windows: p(class)  called the class  whole picture: p(class)  mean change")
    for scale in args.scales:
        for view, (tiling, count) in views.items():
            probability, share, whole, change = [], [], [], []
            for target in range(4):  # stripes both ways, checkers, disc
                objective = dc.cosine(dc.EMBEDDING, pair.text[target].detach())
                if count:
                    objective = objective.through(dc.Cutouts(count, SIZE))
                for seed in range(args.seeds):
                    start = (0.5 + 0.05 * torch.randn(1, 3, SIZE * scale, SIZE * scale,
                                                      generator=torch.Generator().manual_seed(seed))).clamp(0, 1)
                    dream = dc.deepdream(start, backbone, objective, steps=args.steps, octaves=2, step_size=0.02,
                                         jitter=8, smoothing=0.5, seed=seed, **tiling)
                    p, s = window_scores(judge, dc.gaussian_blur(dream, 1.0), target)
                    probability.append(p)
                    share.append(s)
                    whole.append(window_scores(judge, dc.resize(dream, (SIZE, SIZE)), target)[0])
                    change.append((dream - start).abs().mean().item())
            mean = lambda values: sum(values) / len(values)  # noqa: E731
            print(f"{scale}x     {view:<14} {mean(probability):.3f}              {mean(share):.3f}"
                  f"             {mean(whole):.3f}                    {mean(change):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
