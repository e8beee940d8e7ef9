"""Every code the project can raise is in shared/findings.md, and each names a real module that raises it.

shared/findings.md also lists codes that open issues introduce before any module
raises them, so the registry is a subset of the vocabulary, not equal to it.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from forensics.findings import EXPLANATIONS, RAISED_BY, finding

FINDINGS_MD = Path(__file__).resolve().parents[2] / "shared" / "findings.md"


def _vocabulary() -> set[str]:
    if not FINDINGS_MD.exists():
        pytest.skip(f"{FINDINGS_MD} not found")
    codes = set(re.findall(r"^\| `([a-z]+\.[a-z-]+)` \|", FINDINGS_MD.read_text(), re.M))
    assert codes, f"no codes parsed from {FINDINGS_MD}"
    return codes


def test_every_registered_code_is_in_the_shared_vocabulary():
    codes = _vocabulary()
    assert set(EXPLANATIONS) == set(RAISED_BY), "each code needs an explanation and a raising module"
    assert set(EXPLANATIONS) <= codes, f"not in shared/findings.md: {sorted(set(EXPLANATIONS) - codes)}"


def test_every_code_raised_in_the_source_is_registered():
    """A code literal passed to finding() anywhere in forensics/ must be registered."""
    src = Path(__file__).resolve().parents[1] / "forensics"
    used = set()
    for path in src.rglob("*.py"):
        used |= set(re.findall(r'finding\(\s*"([a-z]+\.[a-z-]+)"', path.read_text()))
    assert used, "no finding() calls found: the pattern is stale"
    assert used <= set(EXPLANATIONS), f"raised but unregistered: {sorted(used - set(EXPLANATIONS))}"


@pytest.mark.parametrize("code", sorted(RAISED_BY))
def test_raising_module_exists_and_uses_the_code(code):
    for name in re.findall(r"forensics(?:\.[a-z_]+)+", RAISED_BY[code]):
        module = importlib.import_module(name)
        path = Path(module.__file__)
        if path.name == "__init__.py":
            text = "".join(p.read_text() for p in path.parent.rglob("*.py"))
        else:
            text = path.read_text()
        assert f'"{code}"' in text, f"{name} does not raise {code}"


def test_unknown_code_is_refused():
    with pytest.raises(ValueError):
        finding("blob.made-up", "high", "x", "y")
