"""Dream animation: zoom geometry, morphing, seeds, optical-flow coherence, streaming CLI runs."""

import subprocess
import sys

import pytest
import torch

import dream_core as dc
import dream_core.animate
import dream_core.dream
import dream_core.media
from conftest import ROOT, random_backbone
from dream_core.cli import main

LAYER = "inception3a"


def _slide(background, texture, frames, speed):
    """``texture`` moving right by ``speed`` px per frame over ``background``, from x = 8, centred in y."""
    side, top = texture.shape[-1], (background.shape[-2] - texture.shape[-2]) // 2
    video = []
    for t in range(frames):
        frame = background.clone()
        frame[..., top:top + side, 8 + speed * t:8 + speed * t + side] = texture
        video.append(frame)
    return torch.cat(video), top, side, speed


def sliding_square(frames=8, size=(64, 112), side=32, speed=4, seed=0):
    """A smoothly textured square sliding right by ``speed`` px per frame over a still background, and where it is."""
    generator = torch.Generator().manual_seed(seed)
    background = dc.resize(torch.rand(1, 3, 8, 12, generator=generator), size)
    texture = dc.resize(torch.rand(1, 3, 6, 6, generator=generator), (side, side))
    return _slide(background, texture, frames, speed)


def textured_square(frames=6, size=(96, 128), side=40, speed=3, seed=0):
    """Fine noise texture (a new value every pixel) sliding over a noise-textured background: where a
    flow is a fraction of a pixel short and a fixed colour tolerance rejects what moved."""
    generator = torch.Generator().manual_seed(seed)
    coarse = dc.resize(torch.rand(1, 3, size[0] // 4, size[1] // 4, generator=generator), size)
    background = 0.5 * coarse + 0.5 * torch.rand(1, 3, *size, generator=generator)
    return _slide(background, torch.rand(1, 3, side, side, generator=generator), frames, speed)


def square_warp_error(dreams, top, side, speed, first=0):
    """Mean |D(t+1) - D(t) moved by the true motion| inside the moving square (3 px from its edges);
    ``dreams`` are frames ``first, first + 1, ...`` of :func:`sliding_square`."""
    errors = []
    _, _, height, width = dreams.shape
    for t in range(dreams.shape[0] - 1):
        left = 8 + speed * (first + t + 1)
        flow = torch.zeros(1, 2, height, width)
        flow[:, 0, top:top + side, left:left + side] = -speed  # frame t+1 -> t
        inside = torch.zeros(1, 1, height, width)
        inside[..., top + 3:top + side - 3, left + 3:left + side - 3] = 1
        moved = dc.warp(dreams[t:t + 1], flow)
        errors.append(((dreams[t + 1:t + 2] - moved).abs() * inside).sum() / (3 * inside.sum()))
    return torch.stack(errors).mean().item()


def dream_strength(dreams, video, top, side, speed, first=0):
    """Mean |dream - source| inside the moving square (3 px from its edges): how much the dream did there."""
    changes = []
    for t in range(dreams.shape[0]):
        left = 8 + speed * (first + t)
        region = (..., slice(top + 3, top + side - 3), slice(left + 3, left + side - 3))
        changes.append((dreams[t:t + 1][region] - video[first + t:first + t + 1][region]).abs().mean())
    return torch.stack(changes).mean().item()


def flicker(dreams, video, top, side, speed):
    """The warp error per unit of dream strength: a weaker dream (a hold that damps the steps) does not
    count as a steadier one."""
    return square_warp_error(dreams, top, side, speed) / dream_strength(dreams, video, top, side, speed)


@pytest.fixture(scope="module")
def net():
    return random_backbone("googlenet")


def test_zoom_with_no_steps_is_kornias_crop_and_resize(net):
    """Catches a zoom about the corner instead of the centre, or by 1/zoom."""
    from kornia.geometry.transform import crop_and_resize

    image = dc.resize(dc.load_image(ROOT / "assets" / "example.jpg"), (96, 128))
    frames = dc.dream_zoom(image, net, dc.l2(LAYER), 3, zoom=1.25, steps=0, octaves=1)
    height, width = 96, 128
    w, h = (width - 1) / 1.25, (height - 1) / 1.25  # align_corners: the crop's corner pixels map to the frame's
    x0, y0 = (width - 1 - w) / 2, (height - 1 - h) / 2
    box = torch.tensor([[[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]]])
    assert torch.allclose(frames[0], image[0])
    assert torch.allclose(frames[1:2], crop_and_resize(image, box, (height, width)), atol=1e-5)
    assert torch.allclose(frames[2:3], crop_and_resize(frames[1:2], box, (height, width)), atol=1e-5)


def test_rotation_and_zoom_out_leave_no_black_corners():
    bright = torch.full((1, 3, 40, 60), 0.8)
    for moved in (dc.zoom_transform(bright, 1.0, rotate=30), dc.zoom_transform(bright, 0.7),
                  dc.zoom_transform(bright, 1.0, shift=(15, -9))):
        assert torch.allclose(moved, bright, atol=1e-5)


def test_shift_moves_the_picture_right_and_down():
    image = torch.zeros(1, 3, 20, 20)
    image[..., 5, 5] = 1
    moved = dc.zoom_transform(image, 1.0, shift=(3, 2))
    assert moved[0, 0].argmax().item() == 7 * 20 + 8


def test_zoom_frames_are_seeded_counted_and_sized(net, monkeypatch):
    """Catches one seed for every frame (the same jitter path each frame)."""
    image = dc.resize(dc.load_image(ROOT / "assets" / "example.jpg"), (64, 80))
    run = lambda seed: dc.dream_zoom(image, net, dc.l2(LAYER), 3, zoom=1.1, rotate=3, steps=2, octaves=1, seed=seed)
    first = run(0)
    assert first.shape == (3, 3, 64, 80)
    assert torch.equal(run(0), first) and not torch.equal(run(1), first)
    seeds = []
    real = dream_core.dream.deepdream
    monkeypatch.setattr(dream_core.dream, "deepdream", lambda *a, seed, **kw: seeds.append(seed) or real(*a, seed=seed, **kw))
    run(5)
    assert seeds == [5, 6, 7]


def test_warp_samples_where_the_flow_points():
    """Catches a flow applied with the wrong sign: out[p] = in[p + flow[p]]."""
    image = torch.arange(20.0).view(1, 1, 1, 20).expand(1, 1, 4, 20)
    flow = torch.zeros(1, 2, 4, 20)
    flow[:, 0] = 2.0
    assert torch.allclose(dc.warp(image, flow)[0, 0, 0, :18], torch.arange(2.0, 20.0), atol=1e-4)


def test_layers_end_morphs_to_the_end_objective_on_the_last_frame(net, monkeypatch):
    """Catches a morph that never reaches the end objective (or starts from it)."""
    used = []
    real = dream_core.dream.deepdream
    monkeypatch.setattr(dream_core.dream, "deepdream", lambda image, backbone, objective, **kw:
                        used.append(objective) or real(image, backbone, objective, **kw))
    start, end = dc.l2("inception3a"), dc.mean_activation("inception3b")
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    dc.dream_zoom(image, net, start, 5, objective_end=end, steps=1, octaves=1)
    acts = net.extractor(["inception3a", "inception3b"])(image)
    scores = [objective(acts).item() for objective in used]
    assert scores[0] == pytest.approx(start(acts).item()) and scores[-1] == pytest.approx(end(acts).item())
    quarter = 0.75 * start(acts).item() + 0.25 * end(acts).item()
    assert scores[1] == pytest.approx(quarter, rel=1e-5)


def test_progress_spans_every_frame_and_cancel_stops_within_a_step(net):
    reports, asked = [], []
    image = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    dc.dream_zoom(image, net, dc.l2(LAYER), 3, steps=2, octaves=1,
                  progress=dc.Progress(lambda done, total, preview: reports.append(done), total=60))
    assert reports == [10, 20, 30, 40, 50, 60]
    with pytest.raises(dc.DreamCancelled):
        dc.dream_zoom(image, net, dc.l2(LAYER), 3, steps=2, octaves=1, cancel=lambda: asked.append(1) or len(asked) > 3)
    assert len(asked) == 4


def test_flow_finds_the_motion_and_the_occlusions():
    """Catches flow in the wrong direction and a forward-backward check that passes everything."""
    video, top, side, speed = sliding_square(frames=2)
    backward = dc.estimate_flow(video[1:2], video[0:1], "dis")  # frame 1 -> frame 0
    forward = dc.estimate_flow(video[0:1], video[1:2], "dis")
    left = 8 + speed
    inner = backward[0, 0, top + 6:top + side - 6, left + 6:left + side - 6]
    assert inner.median().item() == pytest.approx(-speed, abs=0.5)
    valid = dc.flow_validity(backward, forward)
    assert valid[..., top + 6:top + side - 6, left + 6:left + side - 6].mean() > 0.9
    assert valid.mean() > 0.8 and valid.mean() < 1.0


def test_flow_keeps_the_dream_on_the_moving_square(net):
    """Temporal coherence on a sliding square (8 frames, 4 px per frame, 5 steps a frame): the warp error of
    consecutive dreamed frames inside the square per unit of dream strength there (see :func:`flicker`).
    Catches warping the wrong way (worse than a blend) and a blend that ignores the flow."""
    video, top, side, speed = sliding_square()
    settings = dict(steps=5, octaves=1, step_size=0.02, jitter=8)
    runs = {name: flicker(dc.dream_video(video, net, dc.l2(LAYER), **options, **settings), video, top, side, speed)
            for name, options in {"alone": dict(carry=0.0, flow="none"), "linear": dict(carry=0.8, flow="none"),
                                  "flowing": dict(carry=0.8, flow="dis")}.items()}
    assert runs["flowing"] < 0.8 * runs["alone"] and runs["flowing"] < 0.5 * runs["linear"], runs


@pytest.mark.parametrize("size, side, speed", [((96, 128), 40, 3), ((256, 384), 96, 4)])
def test_the_dream_sticks_to_textured_motion_with_the_defaults(net, size, side, speed):
    """The node's defaults (blend 0.8, hold, the default flow, 5 steps of 0.01, jitter 32, googlenet's
    default layer) on fine texture moving over texture: the flicker inside the moving object, per unit of
    dream strength, is at most 0.6x that of frames dreamed alone. With the old fixed colour tolerance, 97%
    of the object was dreamed afresh at 96x128. Catches a validity test that rejects sub-pixel flow error."""
    video, top, side, speed = textured_square(6, size, side, speed)
    settings = dict(steps=5, step_size=0.01, jitter=32, octaves=1)
    objective = dc.l2(net.spec.default_layer)
    alone = flicker(dc.dream_video(video, net, objective, carry=0.0, flow="none", **settings), video, top, side, speed)
    carried = flicker(dc.dream_video(video, net, objective, carry=0.8, **settings), video, top, side, speed)
    assert carried <= 0.6 * alone, (alone, carried)


def test_ruder_checks_reject_occlusions_and_motion_boundaries_not_texture():
    """Catches the forward-backward test with a fixed tolerance (large motions fail), a missing motion
    boundary test, or a colour test blind to the texture's gradient."""
    size = (40, 60)
    backward = torch.full((1, 2, *size), 10.0)  # a 10 px motion everywhere (t -> t-1)
    forward = -backward.clone()
    forward[:, 0] += 0.9  # back again 0.9 px off: within 0.01 (|b|^2 + |f|^2) + 0.5 = 4.3 px^2
    assert dc.flow_validity(backward, forward)[..., 5:-15, 5:-15].mean() == 1.0
    forward[:, 0] += 3.0  # 3.9 px off: 15.2 px^2, over the tolerance
    assert dc.flow_validity(backward, forward)[..., 5:-15, 5:-15].mean() == 0.0
    edge = torch.zeros(1, 2, *size)
    edge[..., 30:] = 5.0  # the right half moves: where it meets the left is a motion boundary
    edge_valid = dc.flow_validity(edge, -edge)
    assert edge_valid[..., 10:30, 29:31].mean() == 0.0 and edge_valid[..., 10:30, 5:25].mean() == 1.0
    texture = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0))
    half_pixel = dc.warp(texture, torch.full((1, 2, *size), 0.5))
    assert dc.colour_match(half_pixel, texture)[..., 2:-2, 2:-2].mean() > 0.75  # sub-pixel error on texture (0.82)
    flat = torch.full((1, 3, *size), 0.5)
    assert dc.colour_match(flat + 0.2, flat).mean() == 0.0  # a colour change on a flat area


def test_each_frame_starts_from_the_warped_dream_except_where_occluded(net):
    """With no steps a frame's dream is its start: inside the moving square the last dream, carried
    along; in the strip the square uncovers, the source. Catches an occlusion mask that is ignored
    (the old square smeared over the uncovered background) and flow taken the wrong way round."""
    video, top, side, speed = sliding_square(frames=2)
    painted = 1 - video[:1]  # a "dream" of frame 0 that looks nothing like it
    start, = dc.video_frames([video[1:2]], net, dc.l2(LAYER), carry=1.0, flow="dis", previous=(video[:1], painted),
                             steps=0, octaves=1)
    left = 8 + speed
    inside = (slice(None), slice(None), slice(top + 6, top + side - 6), slice(left + 6, left + side - 6))
    assert (start[inside] - (1 - video[1:2])[inside]).abs().mean() < 0.05  # the painted square moved with it
    uncovered = (slice(None), slice(None), slice(top + 4, top + side - 4), slice(8, 8 + speed))
    from_source = ((start[uncovered] - video[1:2][uncovered]).abs().amax(1) < 1e-6).float().mean()
    assert from_source > 0.35  # occluded before: from the source (measured 0.43; a fixed 0.05 colour tolerance 0.82, no check 0)


def test_video_frames_must_share_a_size_and_opencv_is_named_when_missing(net, monkeypatch):
    frames = [torch.rand(1, 3, 48, 48), torch.rand(1, 3, 40, 48)]
    with pytest.raises(dc.DreamError, match="frame 1: is \\(40, 48\\)"):
        list(dc.video_frames(iter(frames), net, dc.l2(LAYER), flow="none", steps=0, octaves=1))
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(dc.DreamError, match="install the package opencv-python-headless"):
        dc.estimate_flow(frames[0], frames[0], "dis")


# --- the CLI ------------------------------------------------------------------------------------------


def test_zoom_cli_writes_a_gif_and_resumes(tmp_path):
    """Catches a resume that redoes (or loses) the frames already written."""
    output = tmp_path / "zoom.gif"
    common = ["zoom", str(ROOT / "assets" / "example.jpg"), "-o", str(output), "--weights", "random",
              "--size", "64", "--steps", "1"]
    assert main([*common, "--frames", "3"]) == 0
    folder = tmp_path / "zoom_frames"
    first = {path.name: path.read_bytes() for path in folder.iterdir()}
    assert sorted(first) == [f"frame_0000{i}.png" for i in range(3)]
    assert main([*common, "--frames", "5"]) == 0
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name in first} == first
    assert len(list(folder.iterdir())) == 5
    from PIL import Image

    with Image.open(output) as gif:
        assert gif.n_frames == 5 and gif.size == (64, 48)


def test_video_cli_reads_and_writes_mp4_and_refuses_unknown_formats(tmp_path, capsys):
    from dream_core.media import save_frame, write_movie

    video, *_ = sliding_square(frames=4, size=(48, 64), side=16)
    for index in range(4):
        save_frame(video[index:index + 1], tmp_path / "source", index)
    source = write_movie(tmp_path / "source", 4, tmp_path / "source.mp4", 12)
    output = tmp_path / "dreamed.mp4"
    assert main(["video", str(source), "-o", str(output), "--weights", "random", "--steps", "1"]) == 0
    assert len(list((tmp_path / "dreamed_frames").iterdir())) == 4
    assert dc.media.count_frames(output) == 4
    assert next(dc.media.read_frames(output)).shape == (1, 3, 48, 64)
    code = main(["video", str(source), "-o", str(tmp_path / "dreamed.avi"), "--weights", "random"])
    assert code == 2 and ".avi is not a movie format" in capsys.readouterr().err
    assert not (tmp_path / "dreamed_frames_avi").exists()


LONG_ZOOM = """
import re, sys
from pathlib import Path
from dream_core.cli import main

def kb(field):
    return int(re.search(field + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))

peaks = []
for frames in (2, 20, 200):  # the first run pays for what is made once (imports, caches)
    base = kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark restarts from here
    main(["zoom", sys.argv[1], "-o", str(Path(sys.argv[2]) / f"zoom{frames}.gif"), "--weights", "random",
          "--size", "480", "--steps", "0", "--frames", str(frames)])
    peaks.append((kb("VmHWM") - base) / 1024)
print(*peaks[1:])
"""


def test_a_long_zoom_streams_and_assembles_its_gif_with_flat_memory(tmp_path):
    """After a warm-up run, the peak memory of a 200-frame zoom to a GIF exceeds a 20-frame one's by less
    than half of what keeping the extra 180 frames would take as 8-bit RGB (180 x 0.49 MB at 480x360;
    as floats 4x that). Measured: 24 MB and 16 MB above the start (no growth). Catches frames collected
    in memory before they are written."""
    result = subprocess.run([sys.executable, "-c", LONG_ZOOM, str(ROOT / "assets" / "example.jpg"), str(tmp_path)],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    short, long = (float(v) for v in result.stdout.split()[-2:])
    frame_mb = 3 * 480 * 360 / 2**20
    assert long - short < 0.5 * 180 * frame_mb, (short, long)


def test_gif_frames_are_written_one_at_a_time_and_read_back(tmp_path):
    """The GIF writer streams (Pillow's save_all kept every frame until the end: 14 MB more for 200
    frames of 320x240): each frame is there, in order, with its own palette, looping, at the fps."""
    from PIL import Image, ImageSequence

    from dream_core.media import save_frame, write_movie

    colours = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
    for index, colour in enumerate(colours):
        save_frame(torch.tensor(colour).view(1, 3, 1, 1).expand(1, 3, 24, 32), tmp_path, index)
    write_movie(tmp_path, 3, tmp_path / "out.gif", fps=12.5)
    with Image.open(tmp_path / "out.gif") as gif:
        assert gif.info["loop"] == 0 and gif.info["duration"] == 80
        frames = [frame.convert("RGB").getpixel((5, 5)) for frame in ImageSequence.Iterator(gif)]
    assert frames == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


@pytest.mark.parametrize("method", ["raft", "raft_large"])
def test_raft_weights_are_fetched_once_with_their_checksum_into_the_model_folder(tmp_path, monkeypatch, method):
    """RAFT's weights come like a backbone's: downloaded once into the given folder, the sha256 prefix in
    the file name checked. Here "downloaded" from a local file (a random-init state dict) named as
    torchvision names its files; a bad checksum and an unreachable URL are one message naming both
    the URL and where to put the file."""
    import hashlib
    import types

    from torchvision.models.optical_flow import raft_large, raft_small

    served = tmp_path / "served"
    served.mkdir()
    state = served / "state.pth"
    torch.save((raft_large if method == "raft_large" else raft_small)(weights=None).state_dict(), state)
    digest = hashlib.sha256(state.read_bytes()).hexdigest()[:8]
    named = state.rename(served / f"{method}_test-{digest}.pth")
    monkeypatch.setattr(dream_core.animate, "_raft_weights",
                        lambda which: types.SimpleNamespace(url=named.as_uri() if which == method else "unused"))
    frames = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    models = tmp_path / "models"
    flow = dc.estimate_flow(frames[:1], frames[1:], method, weights_dir=models)
    assert flow.shape == (1, 2, 40, 56) and torch.isfinite(flow).all()
    assert (models / named.name).read_bytes() == named.read_bytes()
    named.unlink()  # fetched once: the next call needs no source
    assert dc.estimate_flow(frames[:1], frames[1:], method, weights_dir=models).shape == (1, 2, 40, 56)
    with pytest.raises(dc.DreamError, match=f"flow: '{method}' needs torchvision's RAFT weights .*put file:"):
        dc.estimate_flow(frames[:1], frames[1:], method, weights_dir=tmp_path / "elsewhere")


def test_mp4_without_pyav_is_one_clear_line(tmp_path, monkeypatch):
    from dream_core.media import save_frame, write_movie

    save_frame(torch.rand(1, 3, 16, 16), tmp_path, 0)
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(dc.DreamError, match="needs PyAV: install the package av"):
        write_movie(tmp_path, 1, tmp_path / "out.mp4", 12)
    assert write_movie(tmp_path, 1, tmp_path / "out.gif", 12).exists()  # GIF needs only Pillow


def test_flows_and_warps_run_on_the_dreams_device_not_the_frames(monkeypatch):
    """ComfyUI hands frames over on the CPU; the flow (RAFT), the warp and the checks must run on the
    compute device. Here the backbone says the meta device: every tensor the carry sees is there, and each
    dream comes back on the frames' device."""
    seen = []
    backbone = type("Placed", (), {"device": torch.device("meta")})()

    def fake_dream(start, backbone, objective, **options):
        seen.append(("dream", start.device))
        return torch.zeros(start.shape)  # on the CPU: a meta tensor has no data to hand back

    def fake_flow(source, target, method, weights_dir=None):
        seen.append(("flow", source.device, target.device))
        return torch.zeros(1, 2, *source.shape[-2:], device=source.device)

    monkeypatch.setattr(dream_core.dream, "deepdream", fake_dream)
    monkeypatch.setattr(dream_core.animate, "estimate_flow", fake_flow)
    monkeypatch.setattr(dream_core.animate, "flow_validity", lambda b, f: torch.ones_like(b[:, :1]))
    monkeypatch.setattr(dream_core.animate, "colour_match", lambda moved, source: torch.ones_like(source[:, :1]))
    frames = torch.rand(3, 3, 16, 20)
    dreams = list(dc.video_frames((frames[t:t + 1] for t in range(3)), backbone, dc.l2("relu1"), flow="farneback"))
    assert all(device == torch.device("meta") for entry in seen for device in entry[1:])
    assert [kind for kind, *_ in seen].count("flow") == 4 and all(d.device == frames.device for d in dreams)
