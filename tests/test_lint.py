"""The habits the suite enforces: `ruff check`, `ruff format --check` and `mypy`, with the
configuration in pyproject.toml, are clean on the package, the tests and the benchmarks.

The tools run from this interpreter's environment (`python -m ruff`, `python -m mypy`: the
test extra installs them); a tool that is not installed skips with the reason. Each gate is
also shown to bite: the same command on a file with a known fault fails, so a clean run is
the code's doing, not a tool that checks nothing."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["forensics", "tests", "bench"]


def _tool(module: str) -> list[str]:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed in {sys.prefix}: pip install -e '.[test]'")
    return [sys.executable, "-m", module]


def _run(cmd: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def _report(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}"


def test_ruff_check_is_clean():
    proc = _run([*_tool("ruff"), "check", "--no-cache", *TARGETS])
    assert proc.returncode == 0, _report(proc)


def test_ruff_format_is_clean():
    proc = _run([*_tool("ruff"), "format", "--check", "--no-cache", *TARGETS])
    assert proc.returncode == 0, _report(proc)


def test_mypy_is_clean():
    proc = _run(_tool("mypy"))  # files = forensics, from pyproject.toml
    assert proc.returncode == 0 and "Success: no issues found" in proc.stdout, _report(proc)


def test_the_gates_bite(tmp_path: Path):
    """The project's own configuration, on a late-bound loop variable (B023), an unformatted
    line and an Optional used as its value: each tool reports it."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(xs: list[int]) -> list[object]:\n"
        "    out = []\n"
        "    for x in xs:\n"
        "        out.append(lambda: x)\n"
        "    return out\n"
        "\n"
        "\n"
        "def g(s: str | None) -> int:\n"
        "    return len( s )\n"
    )
    config = ["--config", str(ROOT / "pyproject.toml")]
    lint = _run([*_tool("ruff"), "check", "--no-cache", *config, str(bad)], cwd=tmp_path)
    assert lint.returncode == 1 and "B023" in lint.stdout, _report(lint)
    fmt = _run([*_tool("ruff"), "format", "--check", "--no-cache", *config, str(bad)], cwd=tmp_path)
    assert fmt.returncode == 1, _report(fmt)
    types = _run(
        [*_tool("mypy"), "--config-file", str(ROOT / "pyproject.toml"), "--no-incremental", str(bad)], cwd=tmp_path
    )
    assert types.returncode == 1 and "[arg-type]" in types.stdout, _report(types)
