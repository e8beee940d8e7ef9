"""Resource limits (archive.layerscan.Limits): what exceeds one is archive.limit-exceeded,
naming the limit and what was left unanalyzed, in bounded memory and time.

The three blow-ups of issue 9 run as real subprocesses with --json and --html, their
peak RSS read with getrusage in a wrapper (never timed); the limits themselves are
checked through the API with small values.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hostile as H  # noqa: E402
from hostile import Layer, M, Oci  # noqa: E402

from forensics.archive.layerscan import Limits  # noqa: E402
from forensics.pipeline import analyze  # noqa: E402

LIMIT = "archive.limit-exceeded"
RSS_LIMIT_MB = 300
_WRAPPER = """
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:], stdout=subprocess.DEVNULL)
open(sys.argv[1], "w").write(f"{rc} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
"""


def _missing_layer_1000() -> bytes:
    def m(man: dict) -> None:
        man["layers"] = [{"mediaType": H.MT_LAYER["gzip"], "digest": "sha256:" + "ab" * 32, "size": 100}] * 1000

    return Oci(mutate_manifest=m).tar()


def _deep_path() -> bytes:
    return Oci(layers=[Layer.of(H.tar_bytes([M("d/" * 40_000 + "f", b"x")]))]).tar()


def _many_entries() -> bytes:
    return Oci(layers=[Layer.of(H.tar_bytes([M(f"f{i}", b"") for i in range(100_000)]))]).tar()


def _run(tmp_path: Path, data: bytes) -> tuple[int, float, dict, int]:
    """(exit code, peak RSS MB, the JSON result, HTML size) of `forensics scan`."""
    inp, out, html, rss = tmp_path / "in.tar", tmp_path / "r.json", tmp_path / "r.html", tmp_path / "rss"
    inp.write_bytes(data)
    subprocess.run(
        [
            sys.executable,
            "-c",
            _WRAPPER,
            str(rss),
            sys.executable,
            "-m",
            "forensics",
            "scan",
            str(inp),
            "--json",
            str(out),
            "--html",
            str(html),
        ],
        check=True,
        timeout=600,
    )
    rc, kb = (int(x) for x in rss.read_text().split())
    return rc, kb / 1024, json.loads(out.read_text()), html.stat().st_size


def _apk_packages(n: int) -> bytes:
    """An apk database of `n` one-line stanzas: 15 bytes a package, 3 KB each once parsed."""
    db = b"".join(b"P:p%d\nV:1-r0\n\n" % i for i in range(n))
    layer = H.tar_bytes([M("lib/apk/db/installed", db)])
    return Oci(layers=[Layer.of(layer)]).tar()


def _many_packages() -> bytes:
    return _apk_packages(1_000_000)  # 15 MB, under max_capture: 74 s and 3 GB before max_packages


@pytest.mark.parametrize(
    "build, limit",
    [
        (_many_packages, "max_packages"),
        (_missing_layer_1000, None),  # no limit: the ledger is one row for the blob, not 1,000 x 1,000 chips
        (_deep_path, "max_path_length"),  # 80,000 characters: the length limit comes first
        (_many_entries, "input_bytes_per_entry"),
    ],
    ids=["a-million-apk-packages", "missing-layer-1000-times", "path-of-40000-components", "100000-tiny-entries"],
)
def test_blow_ups_stay_bounded(tmp_path: Path, build, limit) -> None:
    rc, rss, doc, html_size = _run(tmp_path, build())
    assert rc == 1  # blob.missing, or the limit (high: the default gate must not pass what was not analyzed)
    assert rss < RSS_LIMIT_MB, f"peak RSS {rss:.0f} MB"
    assert html_size < 8 << 20, html_size
    limits = {f["evidence"]["limit"] for f in doc["findings"] if f["code"] == LIMIT}
    assert limits == ({limit} if limit else set()), doc["findings"][:3]


def _report(tar: bytes, **limits):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "in.tar"
        p.write_bytes(tar)
        return analyze(str(p), limits=Limits(**limits), command=[])


def _limit_findings(report, name: str) -> list:
    return [f for f in report.findings if f.code == LIMIT and f.evidence["limit"] == name]


def test_path_length_and_depth(tmp_path: Path) -> None:
    tar = H.tar_bytes([M("ok", b"1"), M("a/" * 20 + "deep", b"2"), M("l" * 300, b"3")])
    r = _report(Oci(layers=[Layer.of(tar)]).tar(), max_path_depth=10, max_path_length=200)
    paths = {f.path for f in r.images[0].layers[0].files}
    assert "/ok" in paths and len(paths) == 1
    (depth,), (length,) = _limit_findings(r, "max_path_depth"), _limit_findings(r, "max_path_length")
    assert depth.layer == 0 and depth.evidence["count"] == 1 and depth.evidence["first"].startswith("a/a/")
    assert "not analyzed" in length.detail and length.severity.value == "high"
    # the layer was still read to its end: its diff_id is verified
    assert r.images[0].layers[0].diff_id == r.images[0].layers[0].declared_diff_id


def test_entries_per_layer_and_per_input_size() -> None:
    tar = H.tar_bytes([M(f"f{i}") for i in range(50)])
    r = _report(Oci(layers=[Layer.of(tar)]).tar(), max_layer_entries=20)
    assert len(r.images[0].layers[0].files) == 20
    assert _limit_findings(r, "max_layer_entries")[0].evidence["count"] == 30
    r = _report(Oci(layers=[Layer.of(tar)]).tar(), entries_floor=10, input_bytes_per_entry=1 << 30)
    assert len(r.images[0].layers[0].files) == 10
    assert r.format == "oci-archive" and r.images  # the outer entries have their own allowance


def test_history_length() -> None:
    def cfg(c: dict) -> None:
        c["history"] += [{"created_by": f"ENV A={i}", "empty_layer": True} for i in range(30)]

    r = _report(Oci(mutate_config=cfg).tar(), max_history=5)
    assert len(r.images[0].history) == 5
    assert _limit_findings(r, "max_history")[0].evidence["count"] == 26


def test_real_samples_stay_below_every_limit() -> None:
    for sample in sorted((Path(__file__).resolve().parent.parent / "samples").glob("*.tar")):
        r = analyze(str(sample), command=[])
        assert not [f for f in r.findings if f.code == LIMIT], sample.name


def test_a_layer_listed_again_counts_again() -> None:
    """Found by the fuzzer: one 5,000-file layer listed 50 times by a 37 KB archive made
    250,000 entries of analysis and JSON (607 MB)."""
    tar = H.tar_bytes([M(f"f{i}") for i in range(100)])
    layers = [Layer.of(tar)] * 30
    r = _report(Oci(layers=layers).tar(), entries_floor=1000, input_bytes_per_entry=1 << 30)
    analyzed = [len(layer.files) for layer in r.images[0].layers]
    assert sum(analyzed) <= 1000 and analyzed[0] == 100 and analyzed[-1] == 0
    (hit,) = _limit_findings(r, "analyzed_entries")
    assert hit.evidence["count"] == 100 * 30 - sum(analyzed)
    assert all(layer.diff_id == layer.declared_diff_id for layer in r.images[0].layers)  # still verified


def test_package_database_past_max_packages_is_counted_not_read() -> None:
    from forensics.packages.model import MAX_PACKAGES

    report = _report(_apk_packages(MAX_PACKAGES + 1234))
    [f] = _limit_findings(report, "max_packages")
    assert f.severity == "high" and f.path == "/lib/apk/db/installed" and f.layer == 0
    assert f.evidence == {"limit": "max_packages", "value": MAX_PACKAGES, "count": 1234, "first": f"p{MAX_PACKAGES}"}
    [listed] = report.packages
    assert len(listed.packages) == MAX_PACKAGES  # what was read is still listed (and goes to the SBOM)
    # below the limit: nothing
    assert not _limit_findings(_report(_apk_packages(MAX_PACKAGES)), "max_packages")
