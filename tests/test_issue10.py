"""Issue 10 ("evidence an investigator can cite, and a CLI a newcomer can follow"): the
items no other test module holds, each on real inputs through the real command line."""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile import M, Oci, sha
from tests.test_explain import assert_tour_reproduces, needs_tools, tour_checks

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
FORGED = SAMPLES / "relay-forged.oci.tar"
GENUINE = SAMPLES / "relay-genuine.oci.tar"


def run(*args, env: dict | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "forensics", *map(str, args)],
        capture_output=True,
        input=stdin,
        env={**os.environ, **(env or {})},
    )


# ---------------------------------------------------------------- scripts/test.sh (item 8)


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("env", "installs"),
    [({}, False), ({"FORENSICS_BROWSER": "1"}, True), ({"CI": "true"}, True), ({"FORENSICS_BROWSER": "0"}, False)],
)
def test_test_script_installs_chromium_only_when_asked(tmp_path, env, installs):
    """The real script, as root, on a host with apt-get and no chromium: apt-get runs only
    with CI or FORENSICS_BROWSER=1. The venv's python is a stub that records its calls."""
    bin_, venv = tmp_path / "bin", tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    bin_.mkdir()
    log = tmp_path / "calls"
    _stub(venv / "bin" / "python", f'echo "python $*" >> {log}\n')
    _stub(bin_ / "apt-get", f'echo "apt-get $*" >> {log}\n')
    _stub(bin_ / "id", "echo 0\n")
    _stub(bin_ / "dirname", 'case "$1" in */*) echo "${1%/*}";; *) echo .;; esac\n')
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "FORENSICS_BROWSER")}
    cp = subprocess.run(
        ["/bin/bash", str(ROOT / "scripts" / "test.sh"), "-k", "nothing"],
        env={**clean, **env, "PATH": str(bin_), "VENV": str(venv)},
        capture_output=True,
        text=True,
    )
    assert cp.returncode == 0, cp.stderr
    calls = log.read_text().splitlines()
    assert calls[-1] == "python -m pytest -q -p no:cacheprovider -k nothing"
    assert any(c.startswith("apt-get install") and "chromium" in c for c in calls) is installs, calls
    assert ("installing chromium" in cp.stderr) is installs


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = "bash scripts/test.sh"
    assert f"```sh\n{command}\n```" in readme
    lines = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[-1] == f"exec {command}"


def test_browser_test_skips_saying_how_to_run_it(tmp_path):
    """No chromium on PATH: the browser test skips, and its reason says how to run it;
    when asked for (FORENSICS_BROWSER=1) it fails instead of passing unseen."""
    empty = tmp_path / "empty"
    empty.mkdir()
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "tests/test_html_browser.py"]
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "FORENSICS_BROWSER")}
    cp = subprocess.run(cmd, cwd=ROOT, env={**clean, "PATH": str(empty)}, capture_output=True, text=True)
    assert cp.returncode == 0 and "passed" not in cp.stdout, cp.stdout
    assert "skipped" in cp.stdout and "FORENSICS_BROWSER=1 bash scripts/test.sh" in cp.stdout
    cp = subprocess.run(
        cmd, cwd=ROOT, env={**clean, "PATH": str(empty), "FORENSICS_BROWSER": "1"}, capture_output=True, text=True
    )
    assert cp.returncode == 1 and "chromium is not installed" in cp.stdout


# ---------------------------------------------------------------- explain ARCHIVE (teaching)


@needs_tools
@pytest.mark.parametrize("outer", ["none", "gzip"])
def test_tour_of_duplicate_member_names_selects_the_copy_analyzed(tmp_path, outer):
    """A name stored twice: `tar -xO NAME` writes both copies, so the tour's command names
    the copy with --occurrence=N, the last one (what extraction keeps and the analysis
    read), and running it yields the digest the tour states; a second index.json that
    differs is the one the tour hashes."""
    oci = Oci()
    _, _, index = oci.documents()
    second = json.loads(index)
    second["annotations"] = {"note": "the second copy"}
    blob = oci.layers[0].blob
    dup = Oci(
        extra_members=[M("index.json", json.dumps(second).encode()), M("blobs/sha256/" + sha(blob)[7:], blob)]
    ).tar()
    name = "dup.tar" if outer == "none" else "dup.tar.gz"
    (tmp_path / name).write_bytes(dup if outer == "none" else gzip.compress(dup))
    out = assert_tour_reproduces(name, tmp_path, at_least=5)
    commands = [c for c, _ in tour_checks(out)]
    assert sum("--occurrence=2" in c and "index.json" in c for c in commands) == 1
    assert sum("--occurrence=2" in c and sha(blob)[7:] in c for c in commands) == 2  # blob and diff_id
    assert all("--occurrence" not in c for c in commands if "index.json" not in c and sha(blob)[7:] not in c)
    assert sha(json.dumps(second).encode()) in out and sha(index) not in out
