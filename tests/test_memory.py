"""Host memory: freed tile activations go back to the system."""

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

FRAGMENTED = textwrap.dedent("""
    import re, pathlib, torch
    from dream_core.memory import release_free_heap
    rss = lambda: int(re.search(r"VmRSS:\\s+(\\d+)", pathlib.Path("/proc/self/status").read_text()).group(1)) // 1024
    base = rss()
    blocks = [torch.ones(2_500_000 + 1000 * i) for i in range(20)]  # ~10 MB each, in the heap
    pinned = torch.ones(1000)  # allocated above them: the heap's top cannot shrink past it
    del blocks
    held = rss() - base
    trimmed = release_free_heap()
    print(held, rss() - base, trimmed)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap; a no-op elsewhere")
def test_release_free_heap_returns_freed_blocks_that_glibc_keeps():
    """Blocks under glibc's mmap threshold stay resident after they are freed (how tile activations
    piled up to ~0.5 GB at 4096 px); releasing the free heap must give them back. The thresholds
    are set only to make the heap keep them on every machine."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**40)}
    result = subprocess.run([sys.executable, "-c", FRAGMENTED], capture_output=True, text=True, timeout=120,
                            cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    held, after, trimmed = result.stdout.split()
    assert trimmed == "True"
    assert int(held) > 150 and int(after) < 30, (held, after)


SHRINK = textwrap.dedent("""
    import re, pathlib, torch
    from dream_core.pyramid import resize
    status = lambda field: int(re.search(field + r":\\s+(\\d+)", pathlib.Path("/proc/self/status").read_text()).group(1))
    image = torch.rand(1, 3, 2048, 2048)
    resize(image, (100, 100))  # kornia's first call, out of the measurement
    base = status("VmRSS")
    pathlib.Path("/proc/self/clear_refs").write_text("5")
    shrunk = resize(image, (1463, 1463))
    print((status("VmHWM") - base) / 1024)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the resident-set high-water mark")
def test_shrinking_a_picture_takes_well_under_the_four_picture_sizes_it_once_took():
    """Each octave's base is the full-size picture shrunk, and its antialiasing blur at full size was
    the peak of a whole 4096 px dream (four picture-sized temporaries: 192 MB at 2048 px, 216 MB with
    the result). One channel at a time it takes 96 MB at 2048 px, the 24 MB result included; on a busy
    machine the resident-set high-water mark read 128 MB once. The bound, 3.5 picture sizes (168 MB),
    lies between what load can add and the regression."""
    result = subprocess.run([sys.executable, "-c", SHRINK], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    picture_mb = 3 * 4 * 2048 * 2048 / 2**20
    assert float(result.stdout.split()[-1]) < 3.5 * picture_mb


def test_the_heap_trim_can_be_switched_off(monkeypatch):
    from dream_core.memory import TRIM_OPT_OUT, release_free_heap

    monkeypatch.setenv(TRIM_OPT_OUT, "1")
    assert release_free_heap() is False
