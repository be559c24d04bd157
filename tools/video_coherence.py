"""The video coherence table of the README: flicker inside a moving square per unit of dream strength, as a
share of frames dreamed on their own, for each flow (the clips and the measure are tests/test_animate.py's).

    python tools/video_coherence.py     # about 10 minutes on 2 CPU cores
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import dream_core as dc  # noqa: E402
from test_animate import dream_strength, flicker, sliding_square, square_warp_error, textured_square  # noqa: E402

SETTINGS = dict(steps=5, step_size=0.01, jitter=32, octaves=1)  # the nodes' defaults, one octave per frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=SETTINGS["steps"], help="steps per frame (default 5)")
    parser.add_argument("--cases", type=int, default=4, help="how many of the four clips (default all)")
    args = parser.parse_args()
    settings = {**SETTINGS, "steps": args.steps}
    torch.set_num_threads(2)
    net = dc.load_backbone("googlenet", "random", seed=0)
    objective = dc.l2(net.spec.default_layer)
    cases = [("texture", textured_square(6, (96, 128), 40, 3)), ("texture", textured_square(6, (256, 384), 96, 4)),
             ("smooth", sliding_square(6, (64, 112), 32, 5)), ("smooth", sliding_square(6, (192, 336), 96, 6))]
    for kind, (video, top, side, speed) in cases[:args.cases]:
        alone_dream = dc.dream_video(video, net, objective, carry=0.0, flow="none", **settings)
        alone = flicker(alone_dream, video, top, side, speed)
        row = [kind, tuple(video.shape[-2:]), f"alone: strength {dream_strength(alone_dream, video, top, side, speed):.3f}"]
        for flow in ["farneback", "dis", "none"]:
            dream = dc.dream_video(video, net, objective, carry=0.8, flow=flow, **settings)
            raw = square_warp_error(dream, top, side, speed) / square_warp_error(alone_dream, top, side, speed)
            row.append(f"{flow} {flicker(dream, video, top, side, speed) / alone:.2f} (raw {raw:.2f}, strength "
                       f"{dream_strength(dream, video, top, side, speed):.3f})")
        print(*row, sep=" | ", flush=True)


if __name__ == "__main__":
    main()
