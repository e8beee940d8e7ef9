from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
# The shared corpus sits beside the checkout (../shared/corpus); CI clones next to it too.
CORPUS = Path(os.environ.get("FORENSICS_CORPUS", ROOT.parent / "shared" / "corpus"))


def corpus_samples() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*.tar") if Path(str(p) + ".expected.json").exists())


def load_truth(sample: Path) -> dict:
    return json.loads(Path(str(sample) + ".expected.json").read_text())


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}: conformance tests need ../shared/corpus")
    return CORPUS


_cache: dict[tuple, object] = {}


def analyzed(path: Path, **kw):
    """Analyze once per session: the corpus is read by several tests."""
    from forensics.pipeline import analyze

    key = (str(path), tuple(sorted(kw.items())))
    if key not in _cache:
        _cache[key] = analyze(str(path), **kw)
    return _cache[key]
