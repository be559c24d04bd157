"""A stock install: ComfyUI-Manager runs ``pip install -r requirements.txt`` and nothing else.

Every shipped workflow runs, with its own settings, in a process that can import only what
``requirements.txt`` installs (with what those packages need) and what ComfyUI itself brings; any
other installed package (our test extras: captum, hypothesis, ...) raises ImportError there.
"""

import json
import subprocess
import sys

from workflow_runner import ROOT

HOST_PACKAGES = {"torch", "torchvision", "numpy", "pillow", "av"}  # ComfyUI's own requirements
OWN = "deepdream-nodes"  # this package, pip-installed for the tests: its modules count, its requirements do not
CHILD = r"""
import importlib.metadata as metadata
import json
import os
import re
import sys
import tempfile

allowed = set(json.loads(sys.argv[1]))
normal = lambda name: re.sub(r"[-_.]+", "-", name).lower()
seen, todo = {normal(OWN)}, [normal(name) for name in allowed]  # our own modules, not our own requirements
while todo:  # what the allowed packages need, transitively (extras left out)
    name = todo.pop()
    if name in seen:
        continue
    seen.add(name)
    try:
        requirements = metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        continue
    todo += [normal(re.match(r"[A-Za-z0-9._-]+", r).group()) for r in requirements if "extra ==" not in r]
owners = metadata.packages_distributions()
stubs = tempfile.mkdtemp()
for top, dists in owners.items():  # each other package is shadowed by one whose import fails
    if top.isidentifier() and not any(normal(owner) in seen for owner in dists):
        os.makedirs(os.path.join(stubs, top))
        with open(os.path.join(stubs, top, "__init__.py"), "w") as stub:
            stub.write(f"raise ModuleNotFoundError('{top} is not installed by requirements.txt', name='{top}')")
sys.path.insert(0, stubs)
sys.path.insert(0, sys.argv[2])
import workflow_runner

pack, saved = workflow_runner.import_pack(), []
for path in sys.argv[3:]:
    workflow_runner.execute(pack, json.loads(open(path).read()), saved)
print(len(saved), "workflows saved")
"""


def requirements() -> set[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return {line.split(">")[0].split("=")[0].split("<")[0].strip() for line in lines if line.strip()}


def run_blocked(workflows: list[str], allowed: set[str]) -> subprocess.CompletedProcess:
    child = CHILD.replace("OWN", repr(OWN))
    return subprocess.run([sys.executable, "-c", child, json.dumps(sorted(allowed)), str(ROOT / "tests"), *workflows],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_every_shipped_workflow_runs_on_a_stock_install():
    workflows = sorted(str(p) for p in (ROOT / "example_workflows" / "api").glob("*.json"))
    done = run_blocked(workflows, requirements() | HOST_PACKAGES)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{len(workflows)} workflows saved" in done.stdout


def test_the_blocker_catches_a_missing_requirement():
    """Without OpenCV in the allowed list the video template's optical flow fails: the check can fail."""
    done = run_blocked([str(ROOT / "example_workflows" / "api" / "dream_video.json")],
                       (requirements() - {"opencv-python-headless"}) | HOST_PACKAGES)
    assert done.returncode != 0 and "OpenCV" in done.stderr
