"""Peak memory and time per frame of Dream Video (streamed from file to file) against Dream Video Frames (an
IMAGE batch), for clips of 30 and 300 frames at 1280x720: the measurement behind the README's table.

Each case runs in a fresh process (peak resident set: ru_maxrss), through the nodes as ComfyUI calls them
(inference mode, no host). The clip (a bar moving over a gradient, with a tone) is made here.

    python tools/video_memory.py                     # 30 and 300 frames, both paths where they fit
    python tools/video_memory.py --frames 30 --size 640 360 --steps 1
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_clip(path: Path, frames: int, width: int, height: int, fps: Fraction = Fraction(25),
              audio: str | None = "aac") -> Path:
    """A clip of a red bar moving over a grey ramp, with a 440 Hz tone (``audio``: its codec, None for none;
    PCM needs a container that holds it, e.g. .mkv)."""
    import av
    import numpy as np

    ramp = np.linspace(40, 200, width, dtype=np.float32)[None, :, None]
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = container.add_stream(audio, rate=16000) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for index in range(frames):
            picture = np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8).copy()
            bar = max(2, width // 16)
            left = (3 * index) % (width - bar)
            picture[height // 4:3 * height // 4, left:left + bar] = (230, 60, 40)
            for packet in video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        container.mux(video.encode())
        if sound is None:
            return path
        samples = int(16000 * frames / fps)
        tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 16000)).astype(np.float32)[None]
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start:start + 1024]), format="flt",
                                               layout="mono")
            chunk.sample_rate = 16000
            container.mux(sound.encode(chunk))
        container.mux(sound.encode())
    return path


def run_case(path: str, node: str, backbone_name: str, layer: str, steps: int, flow: str) -> dict:
    """One measurement, in this (fresh) process."""
    sys.path.insert(0, str(ROOT / "tests"))
    import torch

    from workflow_runner import import_pack

    pack = import_pack()
    nodes = pack.NODE_CLASS_MAPPINGS
    backbone, = nodes["DD_LoadBackbone"]().load(backbone_name, "random init")
    layers, = nodes["DD_SelectLayer"]().select(backbone, layer, 1.0, -1, "l2")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()

    class Video:  # what Load Video hands on: a stream source
        def get_stream_source(self):
            return path

    with torch.inference_mode():
        if node == "stream":
            movie, = nodes["DD_DreamVideoStream"]().dream(Video(), backbone, 0.8, flow, steps, 0.01, 32, 0, layers)
            frames = None
        else:
            from dream_core import media

            clip = torch.cat(list(media.read_frames(Path(path)))).movedim(1, -1)
            frames, = nodes["DD_DreamVideo"]().dream(clip, backbone, 0.8, flow, steps, 0.01, 32, 0, layers)
    seconds = time.perf_counter() - start
    return {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "before_mb": before,
            "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[30, 300])
    parser.add_argument("--size", type=int, nargs=2, default=[1280, 720], metavar=("W", "H"))
    parser.add_argument("--backbone", default="alexnet")
    parser.add_argument("--layer", default="relu2")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--flow", default="farneback")
    parser.add_argument("--image-path-up-to", type=int, default=30,
                        help="run the IMAGE-batch node only for clips up to this many frames (it holds them all)")
    parser.add_argument("--case", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        path, node, backbone, layer, steps, flow = args.case
        print(json.dumps(run_case(path, node, backbone, layer, int(steps), flow)))
        return
    with tempfile.TemporaryDirectory() as folder:
        for frames in args.frames:
            clip = make_clip(Path(folder) / f"clip_{frames}.mp4", frames, *args.size)
            for node in ("stream", "image"):
                if node == "image" and frames > args.image_path_up_to:
                    continue
                result = subprocess.run([sys.executable, __file__, "--case", str(clip), node, args.backbone,
                                         args.layer, str(args.steps), args.flow], capture_output=True, text=True,
                                        check=True, cwd=ROOT)
                measured = json.loads(result.stdout.strip().splitlines()[-1])
                print(f"{node:6s} {frames:4d} frames {args.size[0]}x{args.size[1]}: peak {measured['peak_mb']:.0f} MB "
                      f"(after loading {measured['before_mb']:.0f} MB), {measured['seconds'] / frames:.2f} s/frame",
                      flush=True)


if __name__ == "__main__":
    main()
