"""`--json` is written in pieces (serialize.write_json): the same bytes as to_json, to the byte."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hostile as H  # noqa: E402
from conftest import corpus_samples  # noqa: E402
from hostile import M  # noqa: E402

from forensics.models import Report  # noqa: E402
from forensics.pipeline import analyze  # noqa: E402
from forensics.serialize import from_json, to_json, write_json  # noqa: E402


def _streamed(report, size: int | None = None) -> bytes:
    buf = io.BytesIO()
    write_json(report, buf.write)
    return buf.getvalue()


def test_corpus_streams_the_same_bytes():
    samples = corpus_samples()
    for sample in samples:
        report = analyze(str(sample), command=["t"])
        assert _streamed(report) == (to_json(report) + "\n").encode(), sample


def test_many_files_and_text_that_is_not_unicode(tmp_path):
    """Item by item past 32 models in a list; a lone surrogate escape from a config (pydantic
    refuses to encode it) falls back to json.dumps for that piece alone, where to_json falls
    back for the whole report (and then writes a float mtime as an int): the same values."""

    def mutate(cfg):
        cfg["config"]["Labels"] = {"note": "\ud800 lone"}
        cfg["history"][0]["created_by"] = "COPY srv /srv \udcff"

    files = [M(f"srv/f{i:04d}", b"%d" % i) for i in range(300)]
    img = tmp_path / "img.tar"
    img.write_bytes(H.Oci(layers=[H.Layer.of(H.tar_bytes(files))], mutate_config=mutate).tar())
    report = analyze(str(img), command=["t"])
    assert report.images[0].config.labels == {"note": "\ud800 lone"}
    plain = H.Oci(layers=[H.Layer.of(H.tar_bytes(files))]).tar()
    (tmp_path / "plain.tar").write_bytes(plain)
    clean = analyze(str(tmp_path / "plain.tar"), command=["t"])
    assert _streamed(clean) == (to_json(clean) + "\n").encode()
    text = _streamed(report)
    back = from_json(Report, text)
    assert back == from_json(Report, to_json(report))
    assert back.images[0].config.labels == {"note": "\ud800 lone"}
    assert back.images[0].history[0].created_by.endswith("\udcff")
    assert len(back.images[0].layers[0].files) == len(report.images[0].layers[0].files) == 300


def test_cli_json_file_and_stdout(tmp_path):
    img = H.image_tar(tmp_path, [[M("etc/x", b"1")]], [{"created_by": "COPY x /etc/x"}])
    out = tmp_path / "r.json"
    cmd = [sys.executable, "-m", "forensics", "scan", str(img), "-q", "--fail-on", "never"]
    subprocess.run(cmd + ["--json", str(out)], check=True)
    stdout = subprocess.run(cmd + ["--json", "-"], check=True, stdout=subprocess.PIPE).stdout
    a, b = from_json(Report, out.read_bytes()), from_json(Report, stdout)
    assert a.images == b.images and a.findings == b.findings and out.read_bytes().endswith(b"}\n")


def test_cli_writes_what_to_json_writes_to_the_byte(tmp_path):
    """emit streams --json (file and stdout) with write_json: each output is, to the byte, the
    to_json text of the report it holds, for a scan (a Report) and a diff (a Comparison)."""
    from forensics.compare.model import Comparison

    samples = Path(__file__).resolve().parent.parent / "samples"
    forged, genuine = str(samples / "relay-forged.oci.tar"), str(samples / "relay-genuine.oci.tar")
    base = [sys.executable, "-m", "forensics"]
    for cls, args in ((Report, ["scan", forged]), (Comparison, ["diff", genuine, forged])):
        out = tmp_path / "out.json"
        assert subprocess.run(base + args + ["-q", "--json", str(out)]).returncode in (0, 1)
        cp = subprocess.run(base + args + ["--json", "-"], stdout=subprocess.PIPE)
        assert cp.returncode in (0, 1)
        stdout = cp.stdout
        for data in (out.read_bytes(), stdout):
            assert data == (to_json(from_json(cls, data)) + "\n").encode(), args[0]
        assert len(stdout) > 10_000 and stdout.count(b"\n}\n") == 1


def test_a_field_kept_in_memory_only_is_left_out_as_to_json_leaves_it(tmp_path):
    """AttestationRecord.sbom_predicate (exclude=True): the streamed writer once wrote its
    separator and no field, an invalid document, for any archive with an SBOM attestation."""
    import json

    import sigdata as sd

    layout = sd.Layout()
    _, digest = sd.image(layout)
    sd.buildkit_attestation(layout, digest, [sd.statement(digest), sd.sbom_statement(digest)])
    report = analyze(str(layout.write_tar(tmp_path / "sbom.tar")), command=["t"])
    assert report.attestations[1].sbom_predicate is not None  # kept for the SBOM comparison
    streamed = _streamed(report)
    assert streamed == (to_json(report) + "\n").encode()
    doc = json.loads(streamed)
    assert [a["sbom"] for a in doc["attestations"]] == [False, True]
    assert all("sbom_predicate" not in a for a in doc["attestations"])


def test_text_that_is_not_unicode_inside_a_run_of_files(tmp_path):
    """A layer's entries are written in runs (one pydantic call per run); a run holding a
    string pydantic refuses to encode is written item by item, the others stay runs: the
    text parses back to the same entries, and without it the bytes are to_json's, at any
    indent."""
    files = [M(f"srv/f{i:04d}", b"%d" % i) for i in range(1200)]
    img = tmp_path / "img.tar"
    img.write_bytes(H.Oci(layers=[H.Layer.of(H.tar_bytes(files))]).tar())
    for indent in (0, 1, 2):
        clean = analyze(str(img), command=["t"])
        buf = io.BytesIO()
        write_json(clean, buf.write, indent=indent)
        assert buf.getvalue() == (to_json(clean, indent=indent) + "\n").encode()
    report = analyze(str(img), command=["t"])
    entries = report.images[0].layers[0].files
    assert len(entries) > 1000
    entries[700].link = "\ud800 lone"  # as a surrogate from a config would reach a string field
    back = from_json(Report, _streamed(report))
    assert back.images[0].layers[0].files == entries
