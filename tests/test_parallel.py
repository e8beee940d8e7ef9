"""The pass with worker processes (forensics.archive.parallel) gives the serial pass's report.

Every corpus sample, a generated multi-layer image (OCI and docker-save, gzip and zstd, as
a tar and as a layout directory) is analyzed both ways and the reports compared whole
(apart from the run's own timing); a spy checks that the parallel path really ran. Hostile
inputs (a limit hit in a worker, a member past the end of the file) must fall back to the
serial pass, so their reports are the serial ones too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hostile as H  # noqa: E402
from conftest import CORPUS, corpus_samples  # noqa: E402
from hostile import Layer, M, Oci  # noqa: E402

from forensics.archive import parallel  # noqa: E402
from forensics.archive.layerscan import Limits  # noqa: E402
from forensics.archive.scan import scan_input  # noqa: E402
from forensics.pipeline import analyze  # noqa: E402
from forensics.serialize import to_json  # noqa: E402

MAKE_IMAGE = CORPUS.parent / "bench" / "make_image.py"


@pytest.fixture
def spy(monkeypatch):
    """Counts the parallel passes that produced the inventory (not fell back)."""
    used = {"tar": 0, "dir": 0, "fallback": 0}
    for kind in ("tar", "dir"):
        real = getattr(parallel, f"scan_{kind}")

        def wrapped(*a, _real=real, _kind=kind, **kw):
            inv = _real(*a, **kw)
            used[_kind if inv is not None else "fallback"] += 1
            return inv

        monkeypatch.setattr(parallel, f"scan_{kind}", wrapped)
    return used


def _report(path, monkeypatch, workers: int, **kw) -> dict:
    monkeypatch.setenv(parallel.WORKERS_ENV, str(workers))
    doc = json.loads(to_json(analyze(str(path), command=["test"], **kw)))
    doc["analysis"] = None  # the run's own times
    return doc


def _same(path, monkeypatch, **kw) -> None:
    serial = _report(path, monkeypatch, 1, **kw)
    par = _report(path, monkeypatch, 2, **kw)
    assert serial.keys() == par.keys()
    for key in serial:
        assert par[key] == serial[key], f"{path}: {key} differs"


SAMPLES = corpus_samples()


@pytest.mark.skipif(not SAMPLES, reason="shared corpus not found")
def test_corpus_reports_identical(monkeypatch, spy):
    for sample in SAMPLES:
        _same(sample, monkeypatch)
    # truncated.oci-layout.tar is cut inside a member: the one sample that must fall back
    assert spy["tar"] >= len(SAMPLES) - 1
    assert spy["fallback"] <= 1


def _make(tmp_path: Path, compression: str) -> tuple[Path, Path]:
    oci, docker = tmp_path / f"{compression}.oci.tar", tmp_path / f"{compression}.docker.tar"
    subprocess.run(
        [sys.executable, str(MAKE_IMAGE), "--size", "6M", "--layers", "5", "--compression", compression]
        + ["--oci", str(oci), "--docker", str(docker), "--tmpdir", str(tmp_path), "-q"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return oci, docker


@pytest.mark.skipif(not MAKE_IMAGE.is_file(), reason="make_image.py not found")
@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_generated_multilayer_identical(tmp_path, monkeypatch, spy, compression):
    oci, docker = _make(tmp_path, compression)
    layout = tmp_path / "layout"
    with tarfile.open(oci) as t:
        t.extractall(layout, filter="data")
    for path in (oci, docker):
        _same(path, monkeypatch)
        _same(path, monkeypatch, history=False)
    _same(layout, monkeypatch)
    assert spy == {"tar": 4, "dir": 1, "fallback": 0}
    rep = _report(oci, monkeypatch, 2)
    assert len(rep["images"][0]["layers"]) >= 5
    assert all(layer["diff_id"] == layer["declared_diff_id"] for layer in rep["images"][0]["layers"])


def _many(n: int, prefix: str) -> bytes:
    return H.tar_bytes([M(f"{prefix}/f{i:05d}", b"x%d" % i) for i in range(n)])


def test_layer_allowance_is_shared_across_workers(tmp_path, monkeypatch, spy):
    """Three layers of 80 entries against an allowance of 100: the workers draw from one
    pool, so together they keep at most 100; the serial pass then decides what is kept."""
    img = tmp_path / "many.tar"
    img.write_bytes(Oci(layers=[Layer.of(_many(80, f"d{k}")) for k in range(3)]).tar())
    limits = Limits(entries_floor=100, input_bytes_per_entry=1 << 40)
    ctx, entries, chars = parallel._pools(limits, img.stat().st_size)
    assert entries.value == 100
    assert parallel.scan_tar(str(img), str(img), img.stat().st_size, lambda n, s: False, limits, None, 2) is None
    assert entries.value == 100  # a fresh pool each scan
    serial = scan_input(str(img), limits=limits)
    monkeypatch.setenv(parallel.WORKERS_ENV, "2")
    par = scan_input(str(img), limits=limits)
    assert spy["fallback"] >= 1 and spy["tar"] == 0
    kept = [len(e.layer.files) for e in par.entries if e.layer]
    assert kept == [len(e.layer.files) for e in serial.entries if e.layer] and sum(kept) == 100
    hits = [(k, h.count) for e in par.entries if e.layer for k, h in e.layer.over_limit.items()]
    assert {k for k, _ in hits} == {"input_bytes_per_entry"} and sum(n for _, n in hits) == 140


def test_pool_bounds_what_workers_keep():
    """The pool a worker draws from is shared: a second draw sees what the first took."""
    _, entries, _ = parallel._pools(Limits(entries_floor=1500, input_bytes_per_entry=1 << 40), 0)
    assert parallel._PoolBudget._draw(entries, parallel.ENTRY_BATCH) == 1024
    assert parallel._PoolBudget._draw(entries, parallel.ENTRY_BATCH) == 476
    assert parallel._PoolBudget._draw(entries, parallel.ENTRY_BATCH) == 0


def test_member_past_the_end_falls_back(tmp_path, monkeypatch, spy):
    """A blob whose header promises more bytes than the file holds: the serial pass reports it."""
    good = Oci(layers=[Layer.of(_many(10, "a")), Layer.of(_many(10, "b"))]).tar()
    img = tmp_path / "cut.tar"
    img.write_bytes(H.strip_end(good)[:-700])
    _same(img, monkeypatch)
    assert spy["tar"] == 0 and spy["fallback"] == 1
    rep = _report(img, monkeypatch, 2)
    assert any(f["code"] == "archive.malformed" for f in rep["findings"])


def test_serial_when_forced_or_small(tmp_path, monkeypatch, spy):
    img = tmp_path / "small.tar"
    img.write_bytes(Oci().tar())
    monkeypatch.delenv(parallel.WORKERS_ENV, raising=False)
    assert parallel.workers_for(img.stat().st_size) == 1  # small: not worth the processes
    assert parallel.workers_for(None) == 1  # a stream
    scan_input(str(img))
    monkeypatch.setenv(parallel.WORKERS_ENV, "1")
    assert parallel.workers_for(1 << 40) == 1
    scan_input(str(img))
    assert spy == {"tar": 0, "dir": 0, "fallback": 0}


def test_allowance_replayed_at_the_offset_read(tmp_path, monkeypatch, spy):
    """The pool is sized by the whole input, but the serial allowance grows with the bytes
    read so far. The parent replays it in archive order at the offsets the workers had read
    to (a lower bound of what the serial pass had read, which reads ahead): a refusal there
    hands the decision to the serial pass."""
    img = tmp_path / "grow.tar"
    img.write_bytes(Oci(layers=[Layer.of(_many(80, f"d{k}")) for k in range(3)], extra_blobs=[b"z" * 200_000]).tar())
    limits = Limits(entries_floor=100, input_bytes_per_entry=img.stat().st_size // 250)
    _, entries, _ = parallel._pools(limits, img.stat().st_size)
    assert entries.value >= 240  # every worker gets what it asks for
    serial = scan_input(str(img), limits=limits)
    monkeypatch.setenv(parallel.WORKERS_ENV, "2")
    par = scan_input(str(img), limits=limits)
    assert spy == {"tar": 0, "dir": 0, "fallback": 1}
    kept = [len(e.layer.files) for e in par.entries if e.layer]
    assert kept == [len(e.layer.files) for e in serial.entries if e.layer]
    assert par.entries == serial.entries
