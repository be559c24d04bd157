"""The examples in the docstrings run and print what they say."""

import doctest
import os

import pytest

import dream_core
import dream_core.features
import dream_core.pyramid
from conftest import ROOT


@pytest.mark.parametrize("module", [dream_core, dream_core.features, dream_core.pyramid])
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
