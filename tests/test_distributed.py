"""Scale-out with torchrun: 2 CPU processes (gloo) against one, on this machine."""

import subprocess
import sys

import pytest
import torch

import dream_core as dc
from dream_core.distributed import Shard
from dream_core.media import frame_path, save_frame
from test_animate import sliding_square, square_warp_error


def test_shards_cover_every_frame_once():
    """Catches a frame dreamed twice or never, for any count and world size."""
    for world in (1, 2, 3, 5):
        for count in (0, 1, 7, 8, 23):
            chunks = [list(Shard(rank, world).chunk(count)) for rank in range(world)]
            assert sum(chunks, []) == list(range(count))
            spread = sorted(sum((list(Shard(rank, world).interleaved(count)) for rank in range(world)), []))
            assert spread == list(range(count))


def run(args, processes=1):
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] if processes > 1 else []
    result = subprocess.run([sys.executable, *launcher, "-m", "dream_core", *args], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_a_folder_dreamed_by_two_processes_equals_one_process_bit_for_bit(tmp_path):
    pictures = tmp_path / "pictures"
    image = dc.load_image(dc.__file__.replace("dream_core/__init__.py", "assets/example.jpg"))
    for index in range(5):
        save_frame(dc.resize(image[..., 40 * index:40 * index + 160, 50 * index:50 * index + 200], (48, 60)),
                   pictures, index)
    common = ["dream", str(pictures), "--weights", "random", "--steps", "2", "--octaves", "2"]
    run([*common, "-o", str(tmp_path / "one")])
    result = run([*common, "-o", str(tmp_path / "two")], processes=2)
    assert result.stdout.count("wrote") == 1  # the leader reports, once
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == [f"frame_0000{i}.png" for i in range(5)]
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


@pytest.fixture(scope="module")
def sharded_video(tmp_path_factory):
    """An 8-frame sliding square dreamed by one process, and by two with and without warm-up."""
    root = tmp_path_factory.mktemp("video")
    video, top, side, speed = sliding_square(frames=8)
    for index in range(8):
        save_frame(video[index:index + 1], root / "source", index)
    common = ["video", str(root / "source"), "--weights", "random", "--layers", "inception3a", "--steps", "5",
              "--step-size", "0.02", "--jitter", "8", "--carry", "0.8", "--flow", "dis"]
    run([*common, "-o", str(root / "one")])
    run([*common, "-o", str(root / "two"), "--warmup", "4"], processes=2)  # back to frame 0: the whole chain
    run([*common, "-o", str(root / "cold"), "--warmup", "0"], processes=2)
    load = lambda name: torch.cat([dc.load_image(root / name / f"frame_{i:05d}.png") for i in range(8)])
    return root, {name: load(name) for name in ("one", "two", "cold")}, (top, side, speed), common


def test_the_first_chunk_equals_the_single_process_run(sharded_video):
    _, runs, _, _ = sharded_video
    assert torch.equal(runs["two"][:4], runs["one"][:4])


def test_the_seam_shows_without_warmup_and_vanishes_with_enough(sharded_video):
    """Warp error across the seam (frame 3 -> 4) against inside the chunks. Without warm-up the second
    chunk starts from its plain source and the seam shows (here 0.150 against 0.058 inside); a
    warm-up reaching back to frame 0 replays the whole chain, so the result is the single-process
    run bit for bit. Catches warm-up frames that are dreamed but not carried into the chunk."""
    _, runs, geometry, _ = sharded_video
    seam = square_warp_error(runs["cold"][3:5], *geometry, first=3)
    inside = sum(square_warp_error(runs["cold"][t:t + 2], *geometry, first=t) for t in (0, 1, 2, 4, 5, 6)) / 6
    assert seam > 1.5 * inside, (seam, inside)
    assert torch.equal(runs["two"], runs["one"])


def test_a_resumed_run_rewrites_only_what_is_missing(sharded_video):
    root, _, _, common = sharded_video
    folder = root / "two"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    (folder / "frame_00006.png").unlink()
    (folder / ".frame_00006.png.partial.png").write_bytes(b"half a frame from a process that died")
    run([*common, "-o", str(folder), "--warmup", "4"], processes=2)
    after = {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith(".")}
    assert set(after) == set(before) and not list(folder.glob(".*partial*"))
    assert all(after[name] == before[name] for name in before if name != "frame_00006.png")


def test_frame_jobs_run_from_the_library_shard_by_shard(tmp_path):
    """A library user's sharded job (no CLI): two shards of dream_pictures run one after the other write
    what one process writes, and a rerun skips what exists; VideoShare says where each chunk starts."""
    from dream_core.jobs import VideoShare, dream_pictures

    pictures = tmp_path / "in"
    pictures.mkdir()
    for index in range(3):
        dc.save_image(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(index)), pictures / f"p{index}.png")
    paths = sorted(pictures.iterdir())
    backbone = dc.load_backbone("googlenet", "random")
    settings = dict(steps=1, octaves=1, jitter=4)
    dream_pictures(paths, tmp_path / "one", backbone, dc.l2("inception3a"), **settings)
    written = []
    for rank in range(2):
        dream_pictures(paths, tmp_path / "two", backbone, dc.l2("inception3a"), shard=Shard(rank, 2),
                       on_written=lambda rank=rank: written.append(rank), **settings)
    assert written == [0, 0, 1]  # rank 0 takes pictures 0 and 2, rank 1 picture 1
    for path in paths:
        one, two = (dc.load_image(tmp_path / folder / f"{path.stem}.png") for folder in ("one", "two"))
        assert torch.equal(one, two)
    dream_pictures(paths, tmp_path / "two", backbone, dc.l2("inception3a"), on_written=lambda: written.append(9))
    assert written == [0, 0, 1]  # all done: nothing dreamed again

    frames = tmp_path / "frames"
    frames.mkdir()
    frame_path(frames, 4).touch()  # rank 1 of 2 owns frames 4..7 of 8 and wrote the first
    assert VideoShare.of(frames, 8, Shard(1, 2), warmup=3) == VideoShare(range(4, 8), resume=5, begin=5)
    assert VideoShare.of(frames, 8, Shard(0, 2), warmup=3) == VideoShare(range(0, 4), resume=0, begin=0)
    frame_path(frames, 4).unlink()
    assert VideoShare.of(frames, 8, Shard(1, 2), warmup=3) == VideoShare(range(4, 8), resume=4, begin=1)
