"""The archive the Comfy Registry builds (`comfy node pack`: the git-tracked files minus `.comfyignore`),
scanned for what the registry's scanner flags in a published version."""

import fnmatch
import re
import subprocess

import pytest

from conftest import ROOT

# What the registry's YARA rules look for, as code: dynamic code, processes, raw sockets, installs at
# run time, destructive shell, obfuscated payloads.
FLAGGED = {
    "eval/exec": re.compile(r"(?<![.\w])(eval|exec)\s*\("),
    "subprocess": re.compile(r"\bsubprocess\b|\bos\.(system|popen|exec\w*|spawn\w*)\s*\("),
    "socket connect/bind": re.compile(r"\bsocket\b.*\.(connect|bind)\s*\(|\bimport socket\b"),
    "pip install": re.compile(r"pip\s+install"),
    "rm -rf": re.compile(r"rm\s+-rf"),
    "obfuscation": re.compile(r"b64decode|\bmarshal\.loads|\bzlib\.decompress|\\x[0-9a-f]{2}(\\x[0-9a-f]{2}){7}"),
}


def archive_files() -> list[str]:
    """What `comfy node pack` would zip: `git ls-files`, less the `.comfyignore` patterns (folders and globs)."""
    try:
        tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the archive is made from git's file list")
    patterns = [line.strip() for line in (ROOT / ".comfyignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def ignored(path: str) -> bool:
        return any(path.startswith(p) if p.endswith("/") else fnmatch.fnmatch(path, p) for p in patterns)

    return [path for path in tracked.stdout.splitlines() if not ignored(path)]


def test_the_archive_holds_what_runs_in_comfyui_and_nothing_else():
    files = archive_files()
    for needed in ["__init__.py", "nodes/host.py", "dream_core/dream.py", "web/layer_menus.js", "requirements.txt",
                   "pyproject.toml", "example_workflows/deepdream_basic.json", "assets/example.jpg", "LICENSE"]:
        assert needed in files, needed
    for left_out in ["tests/", "tools/", ".ci/", "dream_bench/", "docs/"]:
        assert not any(path.startswith(left_out) for path in files), left_out


def test_no_file_of_the_archive_has_what_the_registrys_scanner_flags():
    found = []
    for path in archive_files():
        if not path.endswith((".py", ".js")):
            continue
        for number, line in enumerate((ROOT / path).read_text(encoding="utf-8").splitlines(), 1):
            found += [f"{path}:{number}: {kind}: {line.strip()}" for kind, pattern in FLAGGED.items()
                      if pattern.search(line)]
    assert not found, "\n".join(found)


def test_the_scan_would_see_each_flagged_pattern():
    """The patterns themselves: each catches its example and leaves this pack's ordinary code alone."""
    examples = {"eval/exec": "exec(code)", "subprocess": "import subprocess", "socket connect/bind": "import socket",
                "pip install": "os.system('pip install x')", "rm -rf": "'rm -rf /'",
                "obfuscation": "base64.b64decode(blob)"}
    for kind, example in examples.items():
        assert FLAGGED[kind].search(example), kind
    assert not any(pattern.search("model.eval().requires_grad_(False)") for pattern in FLAGGED.values())


def test_no_library_module_is_over_450_lines():
    """The house rule: a module that outgrows 450 lines is split by what it holds (backbones/, explain/)."""
    long = [f"{path.relative_to(ROOT)}: {lines}" for path in sorted((ROOT / "dream_core").rglob("*.py"))
            if (lines := len(path.read_text().splitlines())) > 450]
    assert not long, long
