"""Scale-out with torch.distributed as it is: ``torchrun`` starts the processes, each takes its share of
the frames by rank, and the output folder is the only shared state.

Every frame is seeded by its index, so which process dreams it does not change it: a folder of
pictures dreamed by N processes equals the single-process run bit for bit on the CPU. A coherent
video shards into contiguous chunks; each process first dreams ``warmup`` frames before its chunk
(not written) so the dream is already flowing when its first frame is written.
"""

from __future__ import annotations

import datetime
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["Shard", "written"]


@dataclass(frozen=True)
class Shard:
    """This process's place in a ``torchrun`` job: rank ``rank`` of ``world`` (0 of 1 when run alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Shard:
        """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as torchrun sets them."""
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def leader(self) -> bool:
        """Rank 0: it shows the progress of the whole job and assembles the movie."""
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        """One GPU per process on a multi-GPU node: CUDA device ``local_rank``."""
        if requested.type == "cuda" and requested.index is None and self.distributed:
            return torch.device("cuda", self.local_rank % max(torch.cuda.device_count(), 1))
        return requested

    def start(self, device: torch.device) -> None:
        """Join the process group (gloo on CPU, nccl on CUDA), with a day's timeout for the final barrier."""
        if self.distributed and not torch.distributed.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                                 timeout=datetime.timedelta(days=1))

    def wait_for_all(self) -> None:
        """Barrier: every process has written its frames (then the leader may assemble the movie)."""
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.barrier()

    def stop(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    def interleaved(self, count: int) -> range:
        """Items ``rank, rank + world, ...`` of ``count``: independent items (pictures), evenly spread."""
        return range(self.rank, count, self.world)

    def chunk(self, count: int) -> range:
        """A contiguous run of ``count`` frames, the ranks' chunks in order: frames that depend on the last one.

        Example:
            >>> [list(Shard(rank, 3).chunk(8)) for rank in range(3)]
            [[0, 1, 2], [3, 4, 5], [6, 7]]
        """
        size = math.ceil(count / self.world)
        return range(min(count, self.rank * size), min(count, (self.rank + 1) * size))


def written(folder: Path, names: list[str]) -> int:
    """How many of ``names`` exist in ``folder``: the whole job's progress, seen by any process."""
    return sum((folder / name).exists() for name in names)

