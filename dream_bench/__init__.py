"""``python -m dream_bench``: how close a dream step is to the forward-backward floor, and how far ahead.

For each case (backbone, layer, size) it measures, in one process on the same model and input:

- ``floor_ms``: bare torch, contiguous float32: forward to the layer, ``backward`` of the L2 loss to
  the image, weights frozen. No dream step can do less with this layout and precision.
- ``step_ms``: one step of our ascent loop on that same plain path (jitter, forward, backward,
  normalise, update, clamp); ``ratio_floor = step_ms / floor_ms``.
- ``naive_ms``: the classic recipe (``naive.py``); ``speedup_vs_naive = naive_ms / step_ms``.
- ``fast_floor_ms``: the floor on the network our default path runs (batch norms folded, channels_last);
- ``fast_ms``: our default step on it (float32); ``ratio_fast = fast_ms / fast_floor_ms``, like with like.
- ``bf16_ms``: channels_last with bf16 autocast, also on the CPU (fast only where the CPU has native bf16).
- ``peak_mem_mb`` / ``floor_peak_mem_mb``: peak memory of one step / one floor pass above the model
  itself, each measured in a fresh subprocess (CPU: resident set high-water mark; CUDA: allocator peak).

Sizes above 1024 px (``--sizes 2048 4096``) time only our tiled step (512 px tiles) and its memory.

Times are medians of ``--repeats`` runs after a warm-up. Without ``--quick`` it also times full
default dreams (4 octaves, 10 steps, 512 px) on googlenet and vgg16, after a warm-up dream, three
times each (median and spread), against the naive dream and against the sum of its floors.

Style transfer (``--style`` for these rows only): one iteration of :func:`~dream_core.optimize` on
vgg19 at 512 px with Gatys' layers (style relu1_1 .. relu5_1, content relu4_2, TV), for Adam and
L-BFGS with Gram statistics and Adam with mean+covariance, against the floor to relu5_1 on the
same network: ``ratio_floor = iteration_ms / floor_ms``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from dream_core.ascent import ascent_step, random_shift
from dream_core.backbones import Backbone, get_spec
from dream_core.dream import deepdream
from dream_core.images import to_pil
from dream_core.optimizers import optimize
from dream_core.objectives import LayerTerm, l2, total_variation
from dream_core.pyramid import octave_sizes
from dream_core.style import content_objective, gatys_layers, style_objective
from dream_core.weights import load_backbone
from .naive import NaiveDreamer

CASES = [("googlenet", "inception4c"), ("vgg16", "relu4_3"), ("resnet50", "layer3"), ("inception_v3", "Mixed_6b")]
DREAM_CASES = [("googlenet", "inception4c"), ("vgg16", "relu4_3")]
LARGE, TILE = 1024, 512  # above LARGE px the step is tiled, as deepdream() does by default
COLUMNS = ["case", "size", "floor_ms", "step_ms", "ratio_floor", "naive_ms", "speedup_vs_naive", "fast_floor_ms",
           "fast_ms", "ratio_fast", "bf16_ms", "ratio_bf16", "peak_mem_mb", "floor_peak_mem_mb"]
DREAM_REPEATS = 3


def floor_pass(backbone: Backbone, layer: str, image: torch.Tensor) -> torch.Tensor:
    """The floor: bare torch normalisation and forward through the trunk to ``layer`` (in the backbone's
    memory format), backward of 0.5 mean(a^2); returns the gradient with respect to ``image``."""
    leaf = image.detach().requires_grad_(True)
    mean, std = _normalisation(backbone.spec.mean, backbone.spec.std, image.device)
    x = ((leaf - mean) / std).contiguous(memory_format=backbone.memory_format)
    for name, stage in backbone.stages:
        x = stage(x)
        if name == layer:
            break
    (0.5 * x.square().mean()).backward()
    return leaf.grad


@functools.cache
def _normalisation(mean: tuple[float, ...], std: tuple[float, ...],
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The floor's normalisation constants, made once per device (not copied there on every timed pass)."""
    return tuple(torch.tensor(values, device=device).view(1, 3, 1, 1) for values in (mean, std))


def median_ms(works: dict[str, Callable[[], object]], device: torch.device, repeats: int,
              warmup: int = 1, spreads: dict[str, list[float]] | None = None) -> dict[str, float]:
    """Median wall time of each piece of work, in ms, timed round-robin (``spreads`` gets each one's
    fastest and slowest run).

    Interleaving (floor, step, naive, floor, step, naive, ...) exposes every variant to the same
    machine noise, so their ratios hold on a busy machine where back-to-back medians drift.
    """
    for work in works.values():
        for _ in range(warmup):
            work()
    times: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(repeats):
        for name, work in works.items():
            _sync(device)
            start = time.perf_counter()
            work()
            _sync(device)
            times[name].append((time.perf_counter() - start) * 1000)
    if spreads is not None:
        spreads.update({name: [min(values), max(values)] for name, values in times.items()})
    return {name: statistics.median(values) for name, values in times.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _build(name: str, device: torch.device, fast: bool) -> Backbone:
    """``fast``: our default (channels_last, batch norms folded); else the plain torchvision model."""
    return load_backbone(name, "random", seed=0, device=device, channels_last=fast, fuse_batchnorm=fast)


def measure_case(name: str, layer: str, size: int, device: torch.device, repeats: int,
                 memory: bool) -> dict:
    if size > LARGE:
        return measure_large_case(name, layer, size, device, repeats, memory)
    plain, fast = _build(name, device, False), _build(name, device, True)
    naive = NaiveDreamer(plain, layer, device)
    objective = l2(layer)
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    generator = torch.Generator().manual_seed(0)

    def step(backbone: Backbone, autocast: torch.dtype | None) -> Callable[[], object]:
        extractor = backbone.extractor([layer])
        return lambda: ascent_step(image, extractor, objective, step_size=0.01,
                                   shift=random_shift(generator, 32), autocast=autocast)

    array = image.cpu().numpy()
    timings = median_ms({"floor_ms": lambda: floor_pass(plain, layer, image),
                         "step_ms": step(plain, None),
                         "naive_ms": lambda: naive.step(array),
                         "fast_floor_ms": lambda: floor_pass(fast, layer, image),
                         "fast_ms": step(fast, None),
                         "bf16_ms": step(fast, torch.bfloat16)}, device, repeats)
    row = {"case": f"{name}/{layer}", "backbone": name, "layer": layer, "size": size, "device": str(device),
           **timings}
    row["ratio_floor"] = row["step_ms"] / row["floor_ms"]
    row["speedup_vs_naive"] = row["naive_ms"] / row["step_ms"]
    row["ratio_fast"] = row["fast_ms"] / row["fast_floor_ms"]
    row["ratio_bf16"] = row["bf16_ms"] / row["fast_floor_ms"]
    row["peak_mem_mb"] = probe_memory("step", name, layer, size, device) if memory else None
    row["floor_peak_mem_mb"] = probe_memory("floor", name, layer, size, device) if memory else None
    return row


def measure_large_case(name: str, layer: str, size: int, device: torch.device, repeats: int, memory: bool) -> dict:
    """Above ``LARGE`` px only our tiled default step is timed: an untiled floor or naive step would need
    memory that grows with the image (tens of GB at 4096 px) and is what tiling exists to avoid."""
    fast = _build(name, device, True)
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    extractor, objective = fast.extractor([layer]), l2(layer)
    timings = median_ms({"fast_ms": lambda: ascent_step(image, extractor, objective, step_size=0.01,
                                                        tile_size=TILE, shift=(5, 7))}, device, repeats)
    row = {key: None for key in COLUMNS}
    row.update({"case": f"{name}/{layer}", "backbone": name, "layer": layer, "size": size, "device": str(device),
                **timings, "tile_size": TILE,
                "peak_mem_mb": probe_memory("step", name, layer, size, device) if memory else None})
    return row


def measure_dream(name: str, layer: str, size: int, device: torch.device, memory: bool) -> dict:
    """One full default dream: ours (default path and plain path), the naive dream, and the sum of floors."""
    plain, fast = _build(name, device, False), _build(name, device, True)
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    levels = {size: torch.rand(1, 3, *size, device=device) for size in octave_sizes((size, size), 4, 1.4)}
    floors = median_ms({str(s): (lambda x=x: floor_pass(plain, layer, x)) for s, x in levels.items()}, device, 3)
    naive = NaiveDreamer(plain, layer, device)
    row = {"case": f"dream/{name}/{layer}", "kind": "dream", "backbone": name, "layer": layer, "size": size,
           "device": str(device), "floors_ms": 10 * sum(floors.values())}
    spreads: dict[str, list[float]] = {}
    row.update(median_ms({"dream_ms": lambda: deepdream(image, fast, l2(layer)),
                          "plain_dream_ms": lambda: deepdream(image, plain, l2(layer), precision="fp32"),
                          "naive_dream_ms": lambda: naive.dream(image)}, device, DREAM_REPEATS, warmup=1,
                         spreads=spreads))
    row.update({f"{name}_spread": values for name, values in spreads.items()})
    row["ratio_floor"] = row["plain_dream_ms"] / row["floors_ms"]
    row["speedup_vs_naive"] = row["naive_dream_ms"] / row["dream_ms"]
    row["peak_mem_mb"] = probe_memory("dream", name, layer, size, device) if memory else None
    row["floor_peak_mem_mb"] = probe_memory("floor", name, layer, size, device) if memory else None
    return row


def high_frequency_share(change: torch.Tensor) -> float:
    """The share of a change's energy above half the Nyquist frequency (|f| > 0.25 cycles per pixel)."""
    spectrum = torch.fft.rfft2(change.float()).abs().square().sum((0, 1))
    fy = torch.fft.fftfreq(change.shape[-2]).abs().view(-1, 1)
    fx = torch.fft.rfftfreq(change.shape[-1]).view(1, -1)
    return float((spectrum * (torch.maximum(fy, fx) > 0.25)).sum() / spectrum.sum())


def measure_grad_norms(sizes: list[int], device: torch.device, backbone: str, weights: str, layer: str | None,
                       save: Path | None) -> list[dict]:
    """A default dream of the bundled example at each size with ``mean_abs`` and ``laplacian``: the
    share of the change's energy above half Nyquist, and the time."""
    from ..images import load_image, save_image
    from ..pyramid import resize_longer_side

    net = load_backbone(backbone, weights, device=device)
    layer = layer or net.spec.default_layer
    photo = load_image(Path(__file__).resolve().parents[2] / "assets" / "example.jpg")
    rows = []
    for size in sizes:
        image = resize_longer_side(photo, size)
        for mode in ("mean_abs", "laplacian"):
            start = time.perf_counter()
            dream = deepdream(image, net, l2(layer), grad_norm=mode)
            rows.append({"case": f"grad_norm/{backbone}/{layer}", "size": size, "grad_norm": mode,
                         "high_frequency_share": high_frequency_share(dream - image),
                         "dream_s": time.perf_counter() - start})
            if save is not None:
                save.mkdir(parents=True, exist_ok=True)
                save_image(dream, save / f"{backbone}_{size}_{mode}.png")
    return rows


def measure_batched(size: int, batch: int, device: torch.device, backbone: str = "googlenet") -> dict:
    """A default dream of ``batch`` items at ``size`` px: one at a time against ``batch_size=batch``
    (after a warm-up of each); the throughput ratio, and their mean difference."""
    net = _build(backbone, device, True)
    layer = net.spec.default_layer
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    dreams = {}

    def dream(chunk: int) -> Callable[[], None]:
        return lambda: dreams.__setitem__(chunk, deepdream(images, net, l2(layer), batch_size=chunk))

    timings = median_ms({"one_at_a_time_ms": dream(1), "batched_ms": dream(batch)}, device, 1)
    return {"case": f"batched/{backbone}/{layer}", "size": size, "batch": batch, "device": str(device), **timings,
            "speedup": timings["one_at_a_time_ms"] / timings["batched_ms"],
            "mean_difference": float((dreams[1] - dreams[batch]).abs().mean())}


STYLE_STEPS = 3  # iterations per timed call: one iteration is seconds on a CPU


def measure_style(size: int, device: torch.device, repeats: int) -> list[dict]:
    """One style-transfer iteration per optimizer and statistic on vgg19, against the floor to the deepest layer."""
    backbone = _build("vgg19", device, True)
    generator = torch.Generator().manual_seed(0)
    content, style_image = (torch.rand(1, 3, size, size, generator=generator).to(device) for _ in range(2))
    content_layer, style_layers = gatys_layers(backbone)
    deepest = max([content_layer, *style_layers], key=list(backbone.spec.layers).index)
    works = {"floor_ms": lambda: floor_pass(backbone, deepest, content)}
    evaluations: dict[str, int] = {}
    for optimizer, statistic in [("adam", "gram"), ("lbfgs", "gram"), ("adam", "mean_cov")]:
        variant = f"{optimizer}/{statistic}"
        objective = (style_objective(backbone, style_image, [LayerTerm(layer) for layer in style_layers],
                                     statistic=statistic)
                     + 0.1 * content_objective(backbone, content, content_layer)
                     - 10 * total_variation()).at((size, size))
        extractor = backbone.extractor(objective.layers)

        def iterations(objective=objective, extractor=extractor, optimizer=optimizer, variant=variant) -> None:
            pixels, calls = content.clone(), []
            optimize([pixels], lambda: pixels.clamp(0, 1), extractor, objective, steps=STYLE_STEPS,
                     optimizer=optimizer, lr=0.02, progress=lambda *_: calls.append(1))
            evaluations[variant] = len(calls)  # L-BFGS may end its last line search past `steps`

        works[variant] = iterations
    timings = median_ms(works, device, repeats)
    floor = timings.pop("floor_ms")
    return [{"case": f"style/vgg19/{variant}", "kind": "style", "size": size, "device": str(device),
             "floor_ms": floor, "evaluations": evaluations[variant], "iteration_ms": total / evaluations[variant],
             "ratio_floor": total / evaluations[variant] / floor, "deepest": deepest}
            for variant, total in timings.items()]


def probe_memory(mode: str, name: str, layer: str, size: int, device: torch.device, tuning: bool = True) -> float:
    """Peak memory (MB) of one ``mode`` run above the loaded model, in a fresh Python process.

    With ``tuning`` a fixed mmap threshold makes glibc return freed tensors to the system at once, so
    the resident-set peak follows live tensors rather than heap fragmentation; without it, the peak
    is what a user sees.
    """
    command = [sys.executable, "-m", "dream_bench", "--probe", mode, name, layer, str(size), str(device)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"} if tuning else dict(os.environ)
    result = subprocess.run(command, capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2], env=env)
    return float(result.stdout.strip().splitlines()[-1])


def _probe(mode: str, name: str, layer: str, size: int, device: torch.device) -> float:
    backbone = _build(name, device, mode != "floor")
    image = torch.rand(1, 3, size, size).to(device)
    work = {"floor": lambda: floor_pass(backbone, layer, image),
            "step": lambda: ascent_step(image, backbone.extractor([layer]), l2(layer), step_size=0.01,
                                        tile_size=TILE if size > LARGE else 0),
            "dream": lambda: deepdream(image, backbone, l2(layer), steps=1),
            # what the DeepDream node runs: default settings on a ComfyUI IMAGE (a channels-last view), with
            # the node's live preview (a 512 px JPEG every 5 steps)
            "default": lambda: deepdream(torch.rand(1, size, size, 3).movedim(-1, 1), backbone, l2(layer),
                                         progress=_preview_every(5))}[mode]
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        work()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    base = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
    work()
    return (_status_kb("VmHWM") - base) / 1024


def _preview_every(steps: int) -> Callable[[int, int, torch.Tensor | None], None]:
    """A progress callback that makes a preview picture as the node does (nodes.host.progress)."""
    calls = 0

    def report(done: int, total: int, preview: torch.Tensor | None) -> None:
        nonlocal calls
        calls += 1
        if preview is not None and (calls % steps == 0 or done == total):
            to_pil(preview, 512).tobytes()

    return report


def _status_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def _spread(values: list[float]) -> str:
    return f"{values[0] / 1000:.1f}..{values[1] / 1000:.1f} s"


def _format(rows: list[dict]) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.2f}" if value < 10 else f"{value:.0f}"
        return "-" if value is None else str(value)

    table = [COLUMNS] + [[cell(row.get(column)) for column in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(text.rjust(width) for text, width in zip(line, widths)) for line in table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dream_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="224 px cases only, no full dreams (under 2 min on 2 cores)")
    parser.add_argument("--json", action="store_true", help="one JSON object per case instead of a table")
    parser.add_argument("--backbones", nargs="+", help="only these backbones")
    parser.add_argument("--sizes", nargs="+", type=int, help="image sizes (default 224 512; --quick: 224)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--style", action="store_true", help="only the style-transfer rows (vgg19, 512 px)")
    parser.add_argument("--grad-norms", action="store_true", help="only the mean_abs / laplacian high-frequency "
                        "rows: a default dream of the example at --sizes (default 1024 2048)")
    parser.add_argument("--large", action="store_true", help="only the large-image rows: peak memory of a default "
                        "dream (4 octaves of 10 steps, 512 px tiles) at --sizes (default 2048 4096), each in a fresh "
                        "process, no allocator tuning")
    parser.add_argument("--batched", action="store_true", help="only the batched-dreaming row: 8 items at 512 px, "
                        "one at a time against one forward pass for all")
    parser.add_argument("--weights", default="random", help="with --grad-norms: 'random' or a weights file")
    parser.add_argument("--layer", help="with --grad-norms: the layer (default: the backbone's)")
    parser.add_argument("--save", type=Path, help="with --grad-norms: write the dreams into this folder")
    parser.add_argument("--probe", nargs=5, metavar=("MODE", "BACKBONE", "LAYER", "SIZE", "DEVICE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        mode, name, layer, size, device = args.probe
        print(_probe(mode, name, layer, int(size), torch.device(device)))
        return 0
    device = torch.device(args.device)
    if args.style:
        return _print_style(measure_style(512, device, args.repeats), args.json)
    if args.large:
        name = (args.backbones or ["googlenet"])[0]
        layer = get_spec(name).default_layer
        for size in args.sizes or [2048, 4096]:
            start = time.perf_counter()
            peak = probe_memory("default", name, layer, size, device, tuning=False)
            row = {"case": f"large/{name}/{layer}", "size": size, "peak_mem_mb": peak,
                   "dream_s": time.perf_counter() - start, "image_mb": 3 * 4 * size * size / 2**20}
            print(json.dumps(row) if args.json else
                  f"{row['case']} default dream at {size} px: peak {peak:.0f} MB above the loaded model "
                  f"({peak / row['image_mb']:.1f} times the float image of {row['image_mb']:.0f} MB), "
                  f"{row['dream_s']:.0f} s with the process start", flush=True)
        return 0
    if args.batched:
        row = measure_batched((args.sizes or [512])[0], 8, device, (args.backbones or ["googlenet"])[0])
        print(json.dumps(row) if args.json else
              f"{row['case']} {row['size']} px, {row['batch']} items: one at a time {row['one_at_a_time_ms'] / 1000:.1f} s, "
              f"batched {row['batched_ms'] / 1000:.1f} s ({row['speedup']:.2f}x); mean difference "
              f"{row['mean_difference']:.1e} (max-pooling ties broken the other way, see deepdream)", flush=True)
        return 0
    if args.grad_norms:
        for row in measure_grad_norms(args.sizes or [1024, 2048], device, (args.backbones or ["googlenet"])[0],
                                      args.weights, args.layer, args.save):
            print(json.dumps(row) if args.json else
                  f"{row['case']} {row['size']} px, {row['grad_norm']}: {row['high_frequency_share']:.3f} of the "
                  f"change's energy above half Nyquist ({row['dream_s']:.0f} s)", flush=True)
        return 0
    sizes = args.sizes or ([224] if args.quick else [224, 512])
    cases = [(n, l) for n, l in CASES if not args.backbones or n in args.backbones]
    rows = []
    for name, layer in cases:
        for size in sizes:
            rows.append(measure_case(name, layer, size, device, args.repeats, not args.no_memory))
            if args.json:
                print(json.dumps(rows[-1]), flush=True)
    if not args.json:
        print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
        print(_format(rows))
    if not args.quick:
        for name, layer in [(n, l) for n, l in DREAM_CASES if not args.backbones or n in args.backbones]:
            row = measure_dream(name, layer, 512, device, not args.no_memory)
            print(json.dumps(row) if args.json else
                  f"full dream {name}/{layer} 512 px, median of {DREAM_REPEATS} after a warm-up: ours "
                  f"{row['dream_ms'] / 1000:.1f} s ({_spread(row['dream_ms_spread'])}; plain path "
                  f"{row['plain_dream_ms'] / 1000:.1f} s = {row['ratio_floor']:.2f}x the sum of floors "
                  f"{row['floors_ms'] / 1000:.1f} s), naive {row['naive_dream_ms'] / 1000:.1f} s "
                  f"({_spread(row['naive_dream_ms_spread'])}) = "
                  f"{row['speedup_vs_naive']:.2f}x slower than ours; peak memory {row['peak_mem_mb']} MB "
                  f"(floor pass {row['floor_peak_mem_mb']} MB)", flush=True)
        _print_style(measure_style(512, device, args.repeats), args.json)
    return 0


def _print_style(rows: list[dict], as_json: bool) -> int:
    for row in rows:
        print(json.dumps(row) if as_json else
              f"style transfer {row['case'].removeprefix('style/')} {row['size']} px: one iteration (forward and "
              f"backward, of {row['evaluations']} timed) "
              f"{row['iteration_ms']:.0f} ms = {row['ratio_floor']:.2f}x the floor to {row['deepest']} "
              f"({row['floor_ms']:.0f} ms)", flush=True)
    return 0
