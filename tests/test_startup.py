"""Imports that a command does not need are not loaded: `forensics version` and
`forensics explain --vocabulary` read no image, so they must not pay for the streaming core,
the readers, the pipeline or the HTML templates (the modules as `python -X importtime` lists
them in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("forensics.pipeline", "forensics.archive", "forensics.read", "jinja2")


def _imported(*args: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "forensics", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")} - {
        "package"
    }
    assert "forensics.cli" in names, "importtime saw the CLI load"  # the check below is not vacuous
    return names


def _heavy(names: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == h or n.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize("args", [("version",), ("explain", "--vocabulary")])
def test_light_commands_load_no_analysis_code(args):
    assert _heavy(_imported(*args)) == []


def test_scan_help_loads_no_analysis_code():
    """--help builds every option of the command, and still reads nothing."""
    assert _heavy(_imported("scan", "--help")) == []


def test_the_check_sees_a_heavy_import(tmp_path):
    """A command that reads an image does load them: the same check names what it found."""
    out = tmp_path / "r.json"
    names = _imported("scan", str(ROOT / "samples" / "clean.docker.tar"), "--json", str(out), "--quiet")
    assert {"forensics.pipeline", "forensics.archive.scan", "forensics.read.model"} <= set(_heavy(names))
