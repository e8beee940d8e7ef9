"""Every archive a real tool wrote for the tests (tests/fixtures/*) is clean as a whole:
nothing at medium or above from any check, whatever check its folder was made for.
A clean image from a real tool with a medium finding is a false alarm, like a missed forgery."""

from __future__ import annotations

from pathlib import Path

import pytest

from forensics.pipeline import analyze

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ARCHIVES = sorted(p for p in FIXTURES.glob("*/*.tar*") if "forged" not in p.name)


@pytest.mark.parametrize("archive", ARCHIVES, ids=[f"{p.parent.name}/{p.name}" for p in ARCHIVES])
def test_real_tool_fixture_has_nothing_at_medium_or_above(archive):
    report = analyze(str(archive))
    alarms = [
        (f.code, f.severity.value, f.detail[:160])
        for f in report.findings
        if f.severity.value in ("critical", "high", "medium")
    ]
    assert not alarms
    assert report.verdict == "clean"
