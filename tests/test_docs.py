"""The examples in the docstrings run and print what they say."""

import doctest
import importlib
import os
import re
import runpy

import pytest

from conftest import ROOT

EXAMPLE_MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for path in (ROOT / "dream_core").rglob("*.py") if ">>>" in path.read_text())


@pytest.mark.parametrize("name", EXAMPLE_MODULES)
def test_docstring_examples(name, monkeypatch):
    """Every module with an example, found by its ``>>>`` (a module split in two keeps its examples run)."""
    monkeypatch.chdir(ROOT)  # the package example reads assets/example.jpg
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_readme_names_the_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest -q" in readme and "python -m pytest -q" in ci
    assert "python -m dream_core dream assets/example.jpg" in readme
    assert os.access(ROOT / ".ci" / "run", os.X_OK)


def _python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("index", range(len(_python_blocks((ROOT / "README.md").read_text()))))
def test_readme_python_blocks_run_as_written(index, tmp_path, monkeypatch):
    block = _python_blocks((ROOT / "README.md").read_text())[index]
    for path in ("assets",):
        (tmp_path / path).symlink_to(ROOT / path)
    monkeypatch.chdir(tmp_path)  # outputs land here
    script = tmp_path / f"readme_block_{index}.py"
    script.write_text(block)
    runpy.run_path(str(script), run_name="__main__")


def _cli_commands(text):
    """Every ``python -m dream_core dream|style ...`` line of the README's bash blocks (not synopses)."""
    lines = [line for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S) for line in block.splitlines()]
    return [line.split("python -m dream_core ", 1)[1] for line in lines
            if "python -m dream_core " in line and "[" not in line and "python -m dream_bench" not in line]


README_COMMANDS = _cli_commands((ROOT / "README.md").read_text())


def test_the_readme_shows_dream_and_style_commands():
    assert any(c.startswith("dream ") for c in README_COMMANDS) and any(c.startswith("style ") for c in README_COMMANDS)


@pytest.mark.parametrize("command", README_COMMANDS)
def test_readme_commands_run_as_written_at_a_small_size(command, tmp_path, monkeypatch):
    """Each README command, with its variables and missing files replaced by the bundled example, random
    weights and one step (at 96 px unless it sets its own size): what it asks for exists and fits together."""
    import shlex

    from dream_core.cli import main

    monkeypatch.chdir(ROOT)
    words = shlex.split(command.split("&&")[0])
    small = {"--weights": "random", **({} if words[0] == "trust" else {"--steps": "1"}),
             **({} if "--size" in words else {"--size": "96"})}
    argv, skip = [], False
    for index, word in enumerate(words):
        if skip:
            skip = False
            continue
        if word in small:
            skip = True
            continue
        if word == "-o":
            argv += ["-o", str(tmp_path / words[index + 1])]
            skip = True
            continue
        if word.startswith("$") or (word.endswith((".png", ".jpg")) and not (ROOT / word).exists()):
            word = "assets/example.jpg"
        argv.append(word)
    argv += [item for pair in small.items() for item in pair]
    assert main(argv) == 0, argv
    assert list(tmp_path.iterdir()), "nothing was written"


PHOTO = str(ROOT / "assets" / "example.jpg")


@pytest.mark.parametrize("tool, arguments, expected", [
    ("make_explain_figure.py", [PHOTO, "--size", "64", "--steps", "2"], ["Classify:", "Fooling:"]),
    ("make_feature_figure.py", ["--size", "48", "--steps", "2"], []),
    ("make_maco_figure.py", [PHOTO, "--size", "48", "--steps", "4"], []),
])
def test_the_figure_tools_run(tool, arguments, expected, tmp_path):
    """The tools that made the README's pictures (Explain, feature visualisation, MaCo), on random weights."""
    import subprocess
    import sys

    output = tmp_path / "figure.jpg"
    result = subprocess.run([sys.executable, str(ROOT / "tools" / tool), "random", *arguments, "-o", str(output)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert all(line in result.stdout for line in expected) and output.exists()


@pytest.mark.parametrize("tool, expected", [
    ("vit_views.py", ["2x     interpolated", "2x     native tiles"]),
    ("clip_cutouts.py", ["2x     whole picture", "2x     native tiles", "2x     2 cutouts"]),
])
def test_the_measurement_tools_run(tool, expected):
    """The tools whose measurements the README quotes (``Backbone.largest_view``'s native tiles, the CLIP
    cutouts table), at tiny settings."""
    import subprocess
    import sys

    extra = ["--cutouts", "2"] if tool == "clip_cutouts.py" else []
    result = subprocess.run([sys.executable, str(ROOT / "tools" / tool), "--train-steps", "2", "--steps", "1",
                             "--scales", "2", "--seeds", "1", *extra], capture_output=True, text=True, timeout=300,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert all(line in result.stdout for line in expected), result.stdout


def test_the_video_tools_run(tmp_path):
    """tools/video_memory.py and tools/video_coherence.py, whose tables the README quotes, at tiny settings."""
    import subprocess
    import sys

    memory = subprocess.run([sys.executable, str(ROOT / "tools" / "video_memory.py"), "--frames", "3", "--size", "64",
                             "48", "--image-path-up-to", "3"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert memory.returncode == 0, memory.stderr
    assert "stream    3 frames 64x48: peak" in memory.stdout and "image     3 frames 64x48" in memory.stdout
    coherence = subprocess.run([sys.executable, str(ROOT / "tools" / "video_coherence.py"), "--steps", "1", "--cases",
                                "1"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert coherence.returncode == 0, coherence.stderr
    assert "texture | (96, 128) | alone: strength" in coherence.stdout and "farneback" in coherence.stdout


def test_the_maco_measurement_runs():
    """tools/maco_measure.py, whose tables the README quotes, at tiny settings."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(ROOT / "tools" / "maco_measure.py"), "--train-steps", "2",
                             "--steps", "1", "--seeds", "1"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for line in ("CNN      maco", "ViT      fft", "trust check on the CNN", "accentuate, no pull", "deepdream (10 steps"):
        assert line in result.stdout, result.stdout
