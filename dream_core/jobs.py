"""Frame jobs: many pictures or a video's frames dreamed into a folder, alone or as one process of a
``torchrun`` job (see :mod:`dream_core.distributed`), resumable.

The output folder is the job's only state: a frame that exists there is done, so a rerun continues
where the last one stopped, and any process can count the whole job's progress. Each picture is
seeded by its index, so which process dreams it does not change it. A video shards into
contiguous chunks; a process starts ``warmup`` frames before its chunk (dreamed, not written) so
the dream is already flowing at its first written frame, and a resumed chunk continues from the
last frame it wrote.

Example (what ``python -m dream_core dream FOLDER`` runs)::

    paths = sorted(Path("pictures").glob("*.jpg"))
    dream_pictures(paths, Path("pictures_dream"), backbone, l2("inception4c"), shard=Shard.from_env())
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from .animate import video_frames
from .backbones import Backbone
from .distributed import Shard
from .dream import deepdream
from .errors import DreamError
from .images import load_image
from .loop import Cancel, Progress, ProgressFn
from .media import VideoSource, count_frames, frame_path, read_frames, save_frame, save_frame_as, video_rate, write_movie
from .objectives import Objective
from .pyramid import resize_longer_side

__all__ = ["read_picture", "picture_names", "dream_pictures", "video_length", "VideoShare", "dream_video_share",
           "dream_video_file"]

Written = Callable[[], None]
"""``on_written()``: called after each frame this process writes (e.g. to move a progress bar)."""


def read_picture(path: Path, size: int = 0) -> Tensor:
    """The picture at ``path``, its longer side resized to ``size`` px (0 = as it is)."""
    image = load_image(path)
    return resize_longer_side(image, size) if size else image


def picture_names(paths: Sequence[Path]) -> list[str]:
    """The output name of each input picture: its stem, as PNG."""
    return [f"{path.stem}.png" for path in paths]


def dream_pictures(paths: Sequence[Path], folder: Path, backbone: Backbone, objective: Objective, *, size: int = 0,
                   seed: int = 0, shard: Shard | None = None, on_written: Written | None = None, **options) -> None:
    """Dream each of ``paths`` into ``folder`` (see :func:`picture_names`), picture ``i`` with seed ``seed + i``.

    This process takes pictures ``rank, rank + world, ...`` of ``shard`` (all of them alone); pictures
    already in ``folder`` are skipped. ``options`` go to :func:`~dream_core.deepdream`.
    """
    shard = shard or Shard()
    names = picture_names(paths)
    for index in shard.interleaved(len(paths)):
        if (folder / names[index]).exists():
            continue
        dream = deepdream(read_picture(paths[index], size), backbone, objective, seed=seed + index, **options)
        save_frame_as(dream, folder, names[index])
        if on_written is not None:
            on_written()


def video_length(source: VideoSource, shard: Shard | None = None) -> int:
    """The number of frames of ``source`` (a video file or a folder of frames). A file that does not
    say is decoded once to count, except in a sharded job, which needs the count to split the work."""
    total = count_frames(source)
    if total is not None:
        return total
    if shard is not None and shard.distributed:
        raise DreamError(f"input: {source} does not say how many frames it has, which sharding needs; "
                         "extract its frames into a folder first.")
    return sum(1 for _ in read_frames(source))


@dataclass(frozen=True)
class VideoShare:
    """The frames of a video one process dreams.

    Args:
        chunk: the frames it writes.
        resume: the first of them not yet written (``chunk.stop`` when all are).
        begin: the first frame it dreams: ``warmup`` frames before its chunk, or, resuming, right after
            the last frame written (which it reads back to carry the dream on from).
    """

    chunk: range
    resume: int
    begin: int

    @classmethod
    def of(cls, folder: Path, total: int, shard: Shard | None = None, warmup: int = 0) -> VideoShare:
        """This process's share of a ``total``-frame video, given what ``folder`` already holds."""
        chunk = (shard or Shard()).chunk(total)
        resume = next((i for i in chunk if not frame_path(folder, i).exists()), chunk.stop)
        if resume == chunk.stop:  # nothing left to do here (done before, or an empty chunk)
            return cls(chunk, resume, chunk.stop)
        return cls(chunk, resume, resume if resume > chunk.start else max(0, chunk.start - warmup))

    @property
    def resuming(self) -> bool:
        return self.chunk.start < self.resume < self.chunk.stop


def dream_video_share(source: VideoSource, folder: Path, backbone: Backbone, objective: Objective, share: VideoShare, *,
                      size: int = 0, seed: int = 0, on_written: Written | None = None, **options) -> None:
    """Dream ``share`` of the video ``source`` into ``folder`` (``frame_path`` names), frames streamed in
    and out. The dream of frame ``begin`` is seeded ``seed + begin`` (so a chunk whose warm-up reaches
    back to frame 0 equals the single-process video). ``options`` go to :func:`~dream_core.video_frames`.
    """
    if share.resume == share.chunk.stop:
        return
    sources = read_frames(source, size)
    previous = None
    for index in range(share.begin):
        frame = next(sources)
        if share.resuming and index == share.begin - 1:
            previous = (frame, load_image(frame_path(folder, index)))
    mine: Iterator[Tensor] = (next(sources) for _ in range(share.begin, share.chunk.stop))
    dreams = video_frames(mine, backbone, objective, seed=seed + share.begin, previous=previous, **options)
    for index, dream in enumerate(dreams, start=share.begin):
        if index >= share.chunk.start and not frame_path(folder, index).exists():  # not warm-up, not done
            save_frame(dream, folder, index)
            if on_written is not None:
                on_written()


def dream_video_file(source: VideoSource, output: Path, folder: Path, backbone: Backbone, objective: Objective, *,
                     fps: float | None = None, seed: int = 0, progress: Progress | ProgressFn | None = None,
                     cancel: Cancel | None = None, **options) -> Path:
    """Dream the video ``source`` into the MP4 ``output`` with its sound and frame rate (or ``fps``), in
    memory that does not grow with its length: frames are decoded, dreamed and written to ``folder`` one
    at a time, and the movie is encoded from there. ``folder`` is the run's state: run again after a
    Cancel or a crash, it continues after the last frame written. One ``progress`` spans the whole
    clip (frames done before count as done). ``options`` go to :func:`~dream_core.video_frames`.
    """
    rate = fps or video_rate(source)
    if rate is None:  # asked before any frame is dreamed
        raise DreamError("fps: the video does not say its frame rate; give fps.")
    total = video_length(source)
    share = VideoShare.of(folder, total)
    if share.begin < total:
        job = Progress.of(progress).part(share.begin, total, total - share.begin)
        dream_video_share(source, folder, backbone, objective, share, seed=seed, progress=job, cancel=cancel,
                          total=total - share.begin, **options)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.stem}.partial{output.suffix}")
    write_movie(folder, total, partial, rate, sound_from=source)
    return partial.replace(output)
