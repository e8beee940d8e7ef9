"""The fuzz harness in the suite: a fixed-seed batch, and every input that ever failed.

`python tests/fuzz/harness.py --minutes 20` runs a longer, fresh batch (see there);
each failing input it finds is written to tests/fuzz/regressions/ and replayed here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

SEED = 9  # fixed: the batch is the same on every run
CASES = 300
EXPORTS_SEED = 5  # its batch held a lone surrogate in a tag that broke --cyclonedx
EXPORTS_CASES = 16


def _report(outcomes) -> str:
    return "\n".join(f"{o.name}: {'; '.join(o.problems)}" for o in outcomes if o.problems)


def test_fixed_seed_batch(tmp_path: Path) -> None:
    keep = tmp_path / "failing"
    outcomes = harness.run(SEED, cases=CASES, keep=keep, workdir=tmp_path, quiet=True)
    assert len(outcomes) == CASES
    assert not any(o.problems for o in outcomes), (
        f"copy the inputs from {keep} into tests/fuzz/regressions/ once fixed:\n" + _report(outcomes)
    )
    # The mutants reach every outcome: clean, findings, unreadable (a batch that only
    # ever produced one exit code would test nothing).
    assert {o.rc for o in outcomes} == {0, 1, 2}


def test_fixed_seed_batch_with_the_exports(tmp_path: Path) -> None:
    """A smaller batch through scan --cyclonedx, timeline, hashes and extract as well."""
    keep = tmp_path / "failing"
    outcomes = harness.run(EXPORTS_SEED, cases=EXPORTS_CASES, keep=keep, workdir=tmp_path, quiet=True, exports=True)
    assert len(outcomes) == EXPORTS_CASES
    assert not any(o.problems for o in outcomes), (
        f"copy the inputs from {keep} into tests/fuzz/regressions/ once fixed:\n" + _report(outcomes)
    )


REGRESSION_INPUTS = sorted(harness.REGRESSIONS.glob("*.tar*"))  # .tar.gz: the input is a gzip archive


@pytest.mark.skipif(not REGRESSION_INPUTS, reason="no regression inputs kept yet")
def test_regressions(tmp_path: Path) -> None:
    inputs = [(p.name, p.read_bytes()) for p in REGRESSION_INPUTS]
    outcomes = harness.run(0, inputs=inputs, workdir=tmp_path, quiet=True, exports=True)
    assert len(outcomes) == len(inputs)
    assert not any(o.problems for o in outcomes), _report(outcomes)
