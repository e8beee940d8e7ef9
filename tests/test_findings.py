"""The finding vocabulary matches shared/findings.md, and each code names a real module that raises it."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from forensics.findings import EXPLANATIONS, RAISED_BY, finding

FINDINGS_MD = Path(__file__).resolve().parents[2] / "shared" / "findings.md"


def test_codes_match_shared_vocabulary():
    if not FINDINGS_MD.exists():
        pytest.skip(f"{FINDINGS_MD} not found")
    codes = set(re.findall(r"^\| `([a-z]+\.[a-z-]+)` \|", FINDINGS_MD.read_text(), re.M))
    assert codes == set(EXPLANATIONS) == set(RAISED_BY)


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
