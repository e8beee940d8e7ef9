"""The same input gives the same JSON, byte for byte, whatever the string-hash seed: only
the `analysis` and `case` blocks (times, command line, host) may differ between two runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CORPUS
from hostile import M, image_tar

ROOT = Path(__file__).resolve().parents[1]


def _scan_json(path: Path, out: Path, seed: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    subprocess.run(
        [sys.executable, "-m", "forensics", "scan", str(path), "--json", str(out), "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=False,
    )
    doc = json.loads(out.read_text())
    doc.pop("analysis")
    doc.pop("case", None)  # the chain-of-custody block names the command line and the host
    return doc


def _same_under_two_seeds(path: Path, tmp_path: Path) -> None:
    a = _scan_json(path, tmp_path / "a.json", "1")
    b = _scan_json(path, tmp_path / "b.json", "2")
    assert a["images"] and a["images"][0]["history"], "the analysis ran"
    assert json.dumps(a) == json.dumps(b)


def test_deleted_tree_is_listed_in_one_order(tmp_path):
    """`rm -rf` of a directory deletes a whole subtree: the overlay walks it from sets of
    children, whose order follows the hash seed unless the walk sorts it."""
    base = [M("opt/", type="dir"), M("opt/kit/", type="dir")]
    base += [M(f"opt/kit/doc{i:02d}.txt", f"doc {i}\n".encode()) for i in range(40)]
    base += [M(f"opt/kit/sub{i}/", type="dir") for i in range(5)]
    base += [M(f"opt/kit/sub{i}/f", b"x") for i in range(5)]
    step = [M("opt/", type="dir"), M("opt/.wh.kit")]
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:0123 in / "},
        {"created_by": "/bin/sh -c rm -rf /opt/kit"},
    ]
    path = image_tar(tmp_path, [base, step], history)
    _same_under_two_seeds(path, tmp_path)
    deleted = [
        c["path"]
        for c in json.loads((tmp_path / "a.json").read_text())["images"][0]["history"][1]["analysis"]["explained"]
    ]
    assert len(deleted) == 51 and deleted == sorted(deleted)


@pytest.mark.parametrize(
    "name", ["clean/lantern-and-base-dockerd.docker.tar", "clean/lantern-ctr-export.docker-oci.tar"]
)
def test_corpus_sample_is_deterministic(name, tmp_path):
    sample = CORPUS / name
    if not sample.exists():
        pytest.skip(f"{sample} not found")
    _same_under_two_seeds(sample, tmp_path)
