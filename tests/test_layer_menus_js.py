"""The frontend's upstream walk (web/backbone_walk.js) under node's own test runner, where node is installed:
Reroute nodes, subgraph inputs, group-node widgets, loops."""

import shutil
import subprocess

import pytest

from conftest import ROOT


def test_the_layer_menus_find_the_backbone_through_reroutes_and_subgraphs():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the walk runs in the browser only")
    done = subprocess.run([node, "--test", str(ROOT / "tests" / "js")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout and "# pass 4" in done.stdout
