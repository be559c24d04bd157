"""Frames in and out for the animations: folders of images, GIF (Pillow), MP4 (PyAV), one frame at a time.

A run writes its frames into a folder as it goes (``frame_00000.png``, ...), so it can be resumed and
never holds the whole animation in memory; the movie is assembled from that folder at the end, with
the source's sound carried over. A video source is a path, or an open binary file (what a host's
video object streams from).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import torch
from torch import Tensor

from .errors import DreamError
from .images import load_image, save_image, to_pil
from .pyramid import resize_longer_side

__all__ = ["read_frames", "count_frames", "frame_folder", "written_frames", "frame_path", "save_frame", "save_frame_as",
           "write_movie", "video_rate", "video_size", "VideoSource", "MOVIE_SUFFIXES", "IMAGE_SUFFIXES"]

VideoSource = Union[Path, BinaryIO]
"""A folder of frames, a video file, or an open binary video (read from its start each time)."""

MOVIE_SUFFIXES = (".gif", ".mp4")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _av():
    try:
        import av
    except ImportError:
        raise DreamError("video: reading or writing MP4 needs PyAV: install the package av "
                         "(ComfyUI already requires it), or use a folder of frames, or a .gif.") from None
    return av


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _is_folder(source: VideoSource) -> bool:
    return isinstance(source, Path) and source.is_dir()


def _open(source: VideoSource):
    """``source`` opened by PyAV for reading, from its start; a file that is no video is named."""
    av = _av()
    if not isinstance(source, Path):
        source.seek(0)
    try:
        return av.open(source if not isinstance(source, Path) else str(source))
    except av.error.FFmpegError as error:
        raise DreamError(f"input: cannot read {_name(source)} as a video ({error}).") from None


def _name(source: VideoSource) -> str:
    return str(source) if isinstance(source, Path) else getattr(source, "name", "the video")


def count_frames(source: VideoSource) -> int | None:
    """How many frames ``source`` (a folder of images or a video) holds, if its header says."""
    if _is_folder(source):
        return len(_images_in(source))
    with _open(source) as container:
        return container.streams.video[0].frames or None


def video_rate(source: VideoSource) -> Fraction | None:
    """Frames per second of a video (exact: 30000/1001 for NTSC), None for a folder or when unknown."""
    if _is_folder(source):
        return None
    with _open(source) as container:
        rate = container.streams.video[0].average_rate
        return Fraction(rate) if rate else None


def video_size(source: VideoSource) -> tuple[int, int]:
    """``(H, W)`` of a video's frames (of the first picture of a folder)."""
    if _is_folder(source):
        return tuple(next(read_frames(source)).shape[-2:])
    with _open(source) as container:
        stream = container.streams.video[0]
        return stream.height, stream.width


def read_frames(source: VideoSource, size: int = 0) -> Iterator[Tensor]:
    """Yield the frames of ``source`` as :math:`(1, 3, H, W)` in 0..1, one at a time; ``size`` > 0
    resizes each so its longer side is ``size``."""
    if isinstance(source, Path) and not source.exists():
        raise DreamError(f"input: {source} does not exist; give a video file or a folder of frames.")
    if _is_folder(source):
        paths = _images_in(source)
        if not paths:
            raise DreamError(f"input: {source} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
        frames = (load_image(path) for path in paths)
    else:
        frames = _decode(source)
    for frame in frames:
        yield resize_longer_side(frame, size) if size else frame


def _decode(source: VideoSource) -> Iterator[Tensor]:
    with _open(source) as container:
        for frame in container.decode(video=0):
            array = frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0
            yield torch.from_numpy(array).movedim(-1, 0).unsqueeze(0)


def frame_folder(output: Path) -> Path:
    """Where a run's frames go: ``output`` itself when it has no movie suffix, else ``<output>_frames/``."""
    return output.with_name(f"{output.stem}_frames") if output.suffix.lower() in MOVIE_SUFFIXES else output


def frame_path(folder: Path, index: int) -> Path:
    return folder / f"frame_{index:05d}.png"


def written_frames(folder: Path) -> int:
    """How many frames a previous run already wrote (``frame_00000.png`` onwards, without a gap)."""
    count = 0
    while frame_path(folder, count).exists():
        count += 1
    return count


def write_movie(folder: Path, count: int, output: Path, fps: float | Fraction,
                sound_from: VideoSource | None = None) -> Path:
    """Assemble frames ``0 .. count-1`` of ``folder`` into ``output`` (.gif or .mp4), reading one frame at a time.

    An MP4 gets the audio of ``sound_from`` (a video), copied as it is where MP4 can hold its codec,
    else re-encoded to AAC; ``fps`` may be exact (``Fraction(30000, 1001)``).
    """
    paths = [frame_path(folder, index) for index in range(count)]
    if output.suffix.lower() == ".gif":
        return _write_gif(paths, output, fps)
    if output.suffix.lower() != ".mp4":
        raise DreamError(f"output: {output.suffix or 'no suffix'} is not a movie format; use .gif or .mp4, "
                         "or a folder name for the frames alone.")
    av = _av()
    with av.open(str(output), mode="w") as container, ExitStack() as sources:
        stream = sound = None
        for index, path in enumerate(paths):
            picture = to_pil(load_image(path))
            if stream is None:  # every stream is added before the first packet is written
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(100_000))
                stream.width, stream.height = picture.width // 2 * 2, picture.height // 2 * 2  # yuv420p: even sides
                stream.pix_fmt = "yuv420p"
                if sound_from is not None and not _is_folder(sound_from):
                    sound = _Sound(sources.enter_context(_open(sound_from)), container)
            frame = av.VideoFrame.from_image(picture.crop((0, 0, stream.width, stream.height)))
            frame.pts, frame.time_base = index, 1 / stream.codec_context.framerate
            for packet in stream.encode(frame):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
        if sound is not None:
            sound.copy()
    return output


class _Sound:
    """The audio streams of an open source video, added to an output container: copied packet by packet
    where MP4 holds the codec, else decoded and encoded to AAC, a frame at a time."""

    COPIED = ("aac", "mp3", "opus", "ac3", "alac", "flac")

    def __init__(self, source, container) -> None:
        self.source, self.container, self.streams = source, container, []
        for audio in source.streams.audio:
            copy = audio.codec_context.name in self.COPIED
            made = (container.add_stream_from_template(template=audio) if copy
                    else container.add_stream("aac", rate=audio.rate))
            self.streams.append((audio, made, copy))

    def copy(self) -> None:
        for audio, made, copy in self.streams:
            for packet in self.source.demux(audio):
                if packet.dts is None:  # the demuxer's flush packet
                    continue
                if copy:
                    packet.stream = made
                    self.container.mux(packet)
                    continue
                for frame in packet.decode():
                    frame.pts = None
                    self.container.mux(made.encode(frame))
            if not copy:
                self.container.mux(made.encode(None))


def _write_gif(paths: list[Path], output: Path, fps: float) -> Path:
    """A looping GIF written one frame at a time, each with its own 256-colour palette.

    Pillow's ``save(save_all=True)`` keeps every frame in memory until the end (14 MB for 200 frames
    of 320x240, growing with the count), so its frame writer is used directly.
    """
    from PIL import GifImagePlugin, Image

    duration = round(1000 / fps)
    with open(output, "wb") as file:
        for index, path in enumerate(paths):
            with Image.open(path) as picture:
                frame = picture.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
            if index == 0:
                header, _ = GifImagePlugin.getheader(frame, info={"loop": 0})
                file.writelines(header)
            file.writelines(GifImagePlugin.getdata(frame, duration=duration, include_color_table=True))
        file.write(b";")  # the GIF trailer
    return output


def save_frame(frame: Tensor, folder: Path, index: int) -> Path:
    """Write one frame as ``frame_<index>.png`` in ``folder`` (created if needed)."""
    return save_frame_as(frame, folder, frame_path(folder, index).name)


def save_frame_as(frame: Tensor, folder: Path, name: str) -> Path:
    """Write ``frame`` as ``folder/name`` atomically (a temporary file, then a rename), so a process that
    dies mid-write leaves no half-written frame that a resumed run would skip."""
    folder.mkdir(parents=True, exist_ok=True)
    fast = {"compress_level": 1} if name.endswith(".png") else {}  # a frame is a run's state: write it quickly
    temporary = save_image(frame, folder / f".{name}.partial{Path(name).suffix}", **fast)
    return temporary.replace(folder / name)

