"""Measure MaCo against lucid's FFT and pixel ascent, and feature accentuation against a plain dream, on
networks trained here, each judged by an independent network (the README's tables).

Class visualisation: the tests' shapes CNN and the tiny ViT of ``tools/vit_views.py`` (both trained on the
five synthetic pattern classes at 32 px) paint each class from nothing, by pixel ascent (CS231n), lucid's
FFT and MaCo, with 3 seeds; the other network judges each picture (seen blurred by 1 px, as vit_views
does): the share it calls the class, and its mean probability of the class.

Trust check: the path similarity (``dc.path_similarity``) at the CNN's last convolution of each
method's picture (seed 0) to 8 natural pictures of its class.

Accentuation: a faint picture of each class (30% contrast over grey, with noise) is accentuated towards
its class on the CNN, or dreamed (DeepDream, one octave); reported: how much of the picture is kept
(PSNR), the CNN's logit rise, and the judge's (the ViT's) probability of the class before and after.

    python tools/maco_measure.py          # about 6 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import dream_core as dc  # noqa: E402
from tests.shapes import CLASSES, SIZE, pictures, train_shapes_net  # noqa: E402
from vit_views import train_tiny_vit  # noqa: E402


def judged(judge: dc.Backbone, made: torch.Tensor, target: int) -> tuple[float, float]:
    """The judge's share of pictures called ``target``, and its mean probability of ``target``."""
    with torch.no_grad():
        probabilities = dc.logits(dc.gaussian_blur(made, 1.0), judge).softmax(1)
    return (probabilities.argmax(1) == target).float().mean().item(), probabilities[:, target].mean().item()


def class_pictures(subject: dc.Backbone, method: str, target: int, seed: int, steps: int) -> torch.Tensor:
    if method == "pixels":
        return dc.class_visualize(subject, target, size=(SIZE, SIZE), steps=steps, seed=seed, jitter=2)
    return dc.feature_visualize(subject, dc.channel(dc.LOGITS, target), size=(SIZE, SIZE), steps=steps,
                                parameterization=method, seed=seed)


def faint(kind: int, generator: torch.Generator) -> torch.Tensor:
    return (0.5 + 0.3 * (pictures(kind, 1, generator) - 0.5) + 0.05 * torch.randn(1, 3, SIZE, SIZE,
                                                                                    generator=generator)).clamp(0, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-steps", type=int, default=400, help="the tiny ViT's training steps")
    parser.add_argument("--steps", type=int, default=60, help="class visualisation steps")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    cnn, vit = train_shapes_net(), train_tiny_vit(args.train_steps)
    print(f"{'subject':8s} {'method':7s} recognised by the other network (share, mean probability), per class")
    for name, subject, judge in (("CNN", cnn, vit), ("ViT", vit, cnn)):
        for method in ("pixels", "fft", "maco"):
            rows = [judged(judge, torch.cat([class_pictures(subject, method, target, seed, args.steps)
                                             for seed in range(args.seeds)]), target)
                    for target in range(len(CLASSES))]
            share = sum(r[0] for r in rows) / len(rows)
            mean = sum(r[1] for r in rows) / len(rows)
            print(f"{name:8s} {method:7s} {share:.2f} ({mean:.2f}): "
                  + ", ".join(f"{CLASSES[t]} {r[0]:.2f}" for t, r in enumerate(rows)), flush=True)
    print("trust check on the CNN at relu3, seed 0: the picture's correlation with 8 natural pictures of its class "
          "(theirs with each other)")
    references = torch.Generator().manual_seed(1)
    for method in ("pixels", "fft", "maco"):
        cells = []
        for target in range(len(CLASSES)):
            made = class_pictures(cnn, method, target, 0, args.steps)
            step, = dc.path_similarity(cnn, made, pictures(target, 8, references), layers=["relu3"])
            cells.append(f"{CLASSES[target]} {step.similarity:.2f} ({step.natural:.2f})")
        print(f"  {method:7s} " + ", ".join(cells), flush=True)
    print("accentuation on the CNN, faint pictures of each class towards their class (mean over classes and seeds):")
    generator = torch.Generator().manual_seed(7)
    starts = [(kind, faint(kind, generator)) for kind in range(len(CLASSES)) for _ in range(args.seeds)]
    ways = {f"accentuate (pull {dc.ACCENT_PULL:g}, 64 steps)": lambda p, k: dc.accentuate(p, cnn, dc.channel(dc.LOGITS, k)),
            "accentuate, no pull": lambda p, k: dc.accentuate(p, cnn, dc.channel(dc.LOGITS, k), pull=0),
            "deepdream (10 steps of 0.01)": lambda p, k: dc.deepdream(p, cnn, dc.channel(dc.LOGITS, k), steps=10,
                                                                      octaves=1, jitter=2)}
    for label, make in ways.items():
        psnr = rise = before = after = 0.0
        for kind, picture in starts:
            made = make(picture, kind)
            psnr += dc.psnr(made, picture).item()
            rise += (dc.logits(made, cnn)[0, kind] - dc.logits(picture, cnn)[0, kind]).item()
            before += judged(vit, picture, kind)[1]
            after += judged(vit, made, kind)[1]
        n = len(starts)
        print(f"  {label:34s} PSNR {psnr / n:5.1f} dB, CNN logit +{rise / n:5.2f}, ViT probability "
              f"{before / n:.2f} -> {after / n:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
