"""Measure how a vision transformer should see a picture larger than its native size.

Issue 22 asks: dream large pictures through the transformer at its native size (tiles or random
crops each step, the jitter moving them), or through position embeddings interpolated to the
picture's patch grid? No real ViT weights can be downloaded here, so a tiny ViT is trained on
synthetic patterns (stripes, checkers; ``tests/shapes.py``) at 32 px, then asked to dream each
pattern's class into pictures of 2x and 3x its size both ways. The judge is another network: the
small CNN of the tests, trained on the same patterns, scores every 32 px window of each dream. A
better dream is one whose every part shows the class to an independent eye.

Run from the repository root: ``python tools/vit_views.py`` (about 4 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import dream_core as dc  # noqa: E402
from tests.shapes import CLASSES, SIZE, pictures, train_on_patterns, train_shapes_net  # noqa: E402


def train_tiny_vit(steps: int) -> dc.Backbone:
    """A 4-block ViT (4 px patches, width 64) trained on the five pattern classes at 32 px."""
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(image_size=SIZE, patch_size=4, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=128,
                            num_classes=len(CLASSES))
    train_on_patterns(vit, torch.optim.AdamW(vit.parameters(), lr=2e-3, weight_decay=0.01), steps=steps, seed=1)
    layers = dc.transformer_layers(64, 128, 4, dc.LOGITS, len(CLASSES))
    stages = list(zip(layers, dc.get_spec("vit_b_16").trunk(vit)))
    return dc.backbone_from_module(vit, stages, mean=(0.5,) * 3, std=(0.5,) * 3, class_names=CLASSES,
                                   name="tiny_vit", native_size=SIZE)


def accuracy(backbone: dc.Backbone, count: int = 40) -> float:
    generator = torch.Generator().manual_seed(99)
    images = torch.cat([pictures(kind, count, generator) for kind in range(len(CLASSES))])
    with torch.no_grad():
        predicted = backbone.extractor([dc.LOGITS])(images)[dc.LOGITS].argmax(1)
    return (predicted == torch.arange(len(CLASSES)).repeat_interleave(count)).float().mean().item()


def window_scores(judge: dc.Backbone, picture: torch.Tensor, target: int) -> tuple[float, float]:
    """The judge's mean probability of ``target`` over the 32 px windows (stride 8), and the share of
    windows it calls ``target``. The judge sees the dream slightly blurred (sigma 1 px, the patterns'
    periods are 6 to 12 px): trained on clean patterns, it takes any pixel noise for checkers."""
    windows = picture.unfold(2, SIZE, 8).unfold(3, SIZE, 8).permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, SIZE, SIZE)
    with torch.no_grad():
        probabilities = judge.extractor([dc.LOGITS])(windows)[dc.LOGITS].softmax(1)
    return probabilities[:, target].mean().item(), (probabilities.argmax(1) == target).float().mean().item()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--steps", type=int, default=20, help="dream steps per octave")
    parser.add_argument("--scales", nargs="+", type=int, default=[2, 3], help="picture sizes in native sizes")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    judge, vit = train_shapes_net(), train_tiny_vit(args.train_steps)
    print(f"accuracy at 32 px: judge CNN {accuracy(judge):.2f}, tiny ViT {accuracy(vit):.2f}")
    views = {"interpolated": {"tile_size": 0}, "native tiles": {}}  # the second is deepdream's default for a ViT
    print("scale  view           judge p(class)  windows called the class")
    for scale in args.scales:
        for view, tiling in views.items():
            probability, share = [], []
            for target in range(3):  # the textures: stripes both ways, checkers
                for seed in range(args.seeds):
                    start = 0.5 + 0.05 * torch.randn(1, 3, SIZE * scale, SIZE * scale,
                                                     generator=torch.Generator().manual_seed(seed))
                    dream = dc.deepdream(start.clamp(0, 1), vit, dc.channel(dc.LOGITS, target), steps=args.steps,
                                         octaves=2, step_size=0.02, jitter=8, smoothing=0.5, seed=seed, **tiling)
                    p, s = window_scores(judge, dc.gaussian_blur(dream, 1.0), target)
                    probability.append(p)
                    share.append(s)
            print(f"{scale}x     {view:<14} {sum(probability) / len(probability):.3f}           "
                  f"{sum(share) / len(share):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
