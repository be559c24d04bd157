"""The examples in the docstrings run and print what they say."""

import doctest
import re
import os

import pytest

import dream_core
import dream_core.backbones
import dream_core.features
import dream_core.loop
import dream_core.objectives
import dream_core.pyramid
from conftest import ROOT


@pytest.mark.parametrize("module", [dream_core, dream_core.backbones, dream_core.features, dream_core.loop,
                                    dream_core.objectives, dream_core.pyramid])
def test_docstring_examples(module, monkeypatch):
    monkeypatch.chdir(ROOT)  # the package example reads assets/example.jpg
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
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
    exec(compile(block, f"README.md python block {index}", "exec"), {})
