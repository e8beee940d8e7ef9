"""`forensics timeline`: the TSK body file read by mactime, Timesketch JSONL, CSV; names
that try to forge fields or lines; every time labelled as settable build metadata."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from conftest import CORPUS, SAMPLES, analyzed
from exportutil import HISTORY, HOSTILE_NAMES, hostile_image, layer_members, md5, truth_layers
from typer.testing import CliRunner

from forensics.cli import app
from forensics.export.timeline import COLUMNS, SETTABLE, body_field, mode_string, parse_time

FORGED = SAMPLES / "relay-forged.oci.tar"
runner = CliRunner()
MACTIME = shutil.which("mactime")
DAY = 86400
needs_mactime = pytest.mark.skipif(MACTIME is None, reason="mactime (Debian sleuthkit) is not installed")


def timeline(tmp_path: Path, archive: Path, fmt: str, *extra: str) -> Path:
    out = tmp_path / f"t.{fmt}"
    res = runner.invoke(app, ["timeline", str(archive), "--format", fmt, "-o", str(out), "-q", *extra])
    assert res.exit_code == 0, res.output
    return out


def body_rows(path: Path) -> list[list[str]]:
    rows = [line.split("|") for line in path.read_text(encoding="utf-8").split("\n") if line]
    assert all(len(r) == 11 for r in rows), [r for r in rows if len(r) != 11][:3]
    return rows


def mactime(path: Path) -> list[list[str]]:
    """mactime's comma-delimited rows (header dropped), times in ISO 8601 UTC. The range leaves
    out the atime, ctime and crtime a layer tar does not record (0 in the body file)."""
    assert MACTIME is not None
    res = subprocess.run(
        [MACTIME, "-b", str(path), "-d", "-y", "-z", "UTC", "1970-01-02..2099-12-31"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rows = list(csv.reader(res.stdout.splitlines()))
    assert rows[0] == ["Date", "Size", "Type", "Mode", "UID", "GID", "Meta", "File Name"], rows[0]
    return rows[1:]


def entry_count(report) -> int:
    return sum(len(layer.files) for img in report.images for layer in img.layers)


@needs_mactime
def test_bodyfile_of_the_forged_sample_is_read_by_mactime(tmp_path):
    out = timeline(tmp_path, FORGED, "bodyfile")
    rows = body_rows(out)
    report = analyzed(FORGED)
    img = report.images[0]
    # every entry of every layer, every history and config time, every finding: one row each
    assert len(rows) == entry_count(report) + len(img.history) + 1 + len(report.findings)
    got = mactime(out)
    # mactime keeps every row with a time (only mtime is known: m...), none lost to parsing
    assert len(got) == sum(1 for r in rows if int(r[8]) >= DAY)
    assert {r[2] for r in got} == {"m..."}
    relayd = [r for r in got if r[7].startswith("/usr/local/bin/relayd [layer 2 ")]
    assert len(relayd) == 1
    date, size, _, mode, uid, gid, meta, name = relayd[0]
    entry = next(f for f in img.layers[2].files if f.path == "/usr/local/bin/relayd")
    assert (int(size), mode, int(uid), int(gid)) == (entry.size, "r/rrwxr-xr-x", entry.uid, entry.gid)
    assert datetime.fromisoformat(date.replace("Z", "+00:00")).timestamp() == int(entry.mtime)
    assert meta.startswith("0-2-") and SETTABLE in name and "tar mtime" in name
    # the findings are events too, at the time of the entry they are about
    assert any(r[7].startswith("finding ") and "file.binary-replaced" in r[7] and r[0] == date for r in got)


def test_bodyfile_md5_is_the_md5_of_the_member_bytes(tmp_path):
    rows = body_rows(timeline(tmp_path, FORGED, "bodyfile"))
    layers = [layer_members(FORGED, blob) for blob in truth_layers(FORGED)]
    checked = 0
    for md5_field, name, inode, mode, *_ in rows:
        if not inode.count("-") == 2 or not mode.startswith("r/"):
            continue
        layer = int(inode.split("-")[1])
        path = name.split(" [layer ", 1)[0].lstrip("/")
        _, data = layers[layer][path]
        if md5_field != "0":  # "0" where the scan took no md5, as TSK writes it
            assert md5_field == md5(data), path
            checked += 1
    assert checked >= 3  # the base layer's /bin and /etc are hashed with md5 in the pass


@needs_mactime
@pytest.mark.parametrize("rel", ["clean/lantern-skopeo.docker.tar", "clean/lantern-gzip.oci.tar"])
def test_bodyfile_of_corpus_images_is_read_by_mactime(tmp_path, rel):
    sample = CORPUS / rel
    if not sample.exists():
        pytest.skip(f"corpus sample {rel} not found")
    out = timeline(tmp_path, sample, "bodyfile", "--no-history")
    rows = body_rows(out)
    report = analyzed(sample, history=False)
    cfgs = sum(1 for img in report.images if img.config and img.config.created)
    assert len(rows) == entry_count(report) + sum(len(i.history) for i in report.images) + cfgs
    assert len(mactime(out)) == sum(1 for r in rows if int(r[8]) >= DAY)


@pytest.mark.parametrize("rel", ["clean/lantern-and-base-dockerd.docker.tar", "clean/lantern-zstd.oci-layout.tar"])
def test_jsonl_of_corpus_images_has_every_entry_and_history_time(tmp_path, rel):
    sample = CORPUS / rel
    if not sample.exists():
        pytest.skip(f"corpus sample {rel} not found")
    events = [json.loads(x) for x in timeline(tmp_path, sample, "jsonl").read_text().splitlines()]
    assert all({"message", "datetime", "timestamp_desc"} <= e.keys() for e in events)
    report = analyzed(sample)
    entries = [e for e in events if e["data_type"] == "container:layer:entry"]
    assert len(entries) == entry_count(report)
    digests = {(i.index, la.index): la.digest for i in report.images for la in i.layers}
    assert all(e["layer_digest"] == digests[(e["image"], e["layer"])] for e in entries)
    history = [e for e in events if e["data_type"] == "container:history:created"]
    assert len(history) == sum(1 for i in report.images for h in i.history if h.created)
    findings = [e for e in events if e["data_type"] == "forensics:finding"]
    assert len(findings) == len(report.findings)


def test_jsonl_has_timesketch_fields_and_the_history_times(tmp_path):
    lines = timeline(tmp_path, FORGED, "jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    for ev in events:
        assert {"message", "datetime", "timestamp_desc"} <= ev.keys()
        assert datetime.fromisoformat(ev["datetime"]).utcoffset() is not None  # ISO 8601 with its zone
        assert ev["timestamp"] == round(datetime.fromisoformat(ev["datetime"]).timestamp() * 1_000_000)
        assert "settable" in ev["timestamp_desc"]  # every time is labelled as build metadata
    truth = json.loads((SAMPLES / "relay-forged.truth.json").read_text())
    history = [e for e in events if e["data_type"] == "container:history:created"]
    assert [e["step"] for e in history] == list(range(len(truth["history"])))
    for e, h in zip(history, truth["history"]):
        assert datetime.fromisoformat(e["datetime"]) == datetime.fromisoformat(h["created"].replace("Z", "+00:00"))
    entries = [e for e in events if e["data_type"] == "container:layer:entry"]
    relayd = [e for e in entries if e["path"] == "/usr/local/bin/relayd"]
    assert [(e["layer"], e["step"]) for e in relayd] == [(1, 2), (2, 3)]
    assert relayd[1]["layer_digest"] == truth["layers"][2]["digest"]
    assert relayd[1]["diff_id"] == truth["layers"][2]["diff_id"]
    findings = [e for e in events if e["data_type"] == "forensics:finding"]
    assert {e["code"] for e in findings} >= {"file.binary-replaced", "file.persistence", "history.unexplained-change"}
    assert all("forensics:finding" in e["tag"] and e["code"] in e["tag"] for e in findings)
    assert len(events) == len(lines) == entry_count(analyzed(FORGED)) + len(truth["history"]) + 1 + len(findings)


def test_csv_header_and_rows_match_the_jsonl(tmp_path):
    rows = list(csv.reader(timeline(tmp_path, FORGED, "csv").read_text().splitlines()))
    assert tuple(rows[0]) == COLUMNS
    assert rows[0][:4] == ["datetime", "timestamp", "timestamp_desc", "message"]
    jsonl = [json.loads(x) for x in timeline(tmp_path, FORGED, "jsonl").read_text().splitlines()]
    assert len(rows) - 1 == len(jsonl)
    assert all(len(r) == len(COLUMNS) for r in rows)
    assert [r[0] for r in rows[1:]] == [e["datetime"] for e in jsonl]


def test_hostile_names_forge_no_field_and_no_line(tmp_path):
    archive = hostile_image(tmp_path)
    report = analyzed(archive, history=False)
    # the read's own findings (the entry that climbs out, the link out of the root) are events too
    assert {f.code for f in report.findings} == {"archive.unsafe-path"}
    n_events = entry_count(report) + len(HISTORY) + 1 + len(report.findings)
    body = timeline(tmp_path, archive, "bodyfile", "--no-history")
    rows = body_rows(body)  # 11 fields on every line
    assert len(rows) == n_events
    names = [r[1] for r in rows]
    assert any(n.startswith("/srv/a%7Cb [layer 1") for n in names)
    assert any(n.startswith("/srv/x\\ny [layer 1") for n in names)
    assert any(n.startswith("/srv/%2541%257C [layer 1") for n in names)
    assert any(n.startswith("/srv/\\x1b]0;owned\\x07 [layer 1") for n in names)
    assert not any("\x1b" in line for line in body.read_text().splitlines())
    history = next(n for n in names if n.startswith("history[1]"))
    assert "x%7Cy forged%7Cline" in history  # the created_by's own | (its newline made a space)
    if MACTIME is not None:
        got = mactime(body)
        assert len(got) == n_events  # mactime splits every row into its 11 fields
        shown = [r[7] for r in got]
        assert any(n.startswith("/srv/a|b [layer 1") for n in shown)  # mactime decodes %7C back
        assert any(n.startswith("/srv/%41%7C [layer 1") for n in shown)  # and %25 to a literal %
        assert any(n.startswith("/srv/x\\ny [layer 1") for n in shown)  # the newline stays escaped
    jsonl = timeline(tmp_path, archive, "jsonl", "--no-history").read_text().splitlines()
    assert len(jsonl) == n_events
    paths = {json.loads(x).get("path") for x in jsonl}
    assert {"/" + HOSTILE_NAMES[k] for k in HOSTILE_NAMES} <= paths  # JSON keeps the exact name
    rows_csv = timeline(tmp_path, archive, "csv", "--no-history").read_text().split("\n")
    assert len([r for r in rows_csv if r]) == n_events + 1  # one record per line


def test_escapes_and_mode_strings():
    assert body_field("a|b%c\nd\\e") == "a%7Cb%25c\\nd\\\\e"
    assert mode_string("file", 0o4755) == "r/rrwsr-xr-x"
    assert mode_string("dir", 0o1777) == "d/drwxrwxrwt"
    assert mode_string("symlink", 0o777) == "l/lrwxrwxrwx"
    assert mode_string("whiteout", 0) == "-/----------"
    assert parse_time("2023-11-14T22:14:00.123456789Z") == pytest.approx(1700000040.123456)
    assert parse_time("2023-11-14T23:13:20+01:00") == 1700000000
    assert parse_time("yesterday") is None


def test_output_checks_and_bad_format(tmp_path):
    res = runner.invoke(app, ["timeline", str(FORGED), "--format", "xml"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["timeline", str(FORGED), "-f", "jsonl", "-o", str(FORGED)])
    assert res.exit_code == 2 and "evidence is never written to" in res.output


@pytest.mark.parametrize("command", [["timeline", "-f", "csv", "-q"], ["timeline", "-f", "bodyfile", "-q"]])
def test_a_reader_that_stops_early_ends_the_command_quietly(command):
    """`forensics timeline … | head -1`: no 'cannot write' error, no traceback, and the shell's
    SIGPIPE code (141) so that `set -o pipefail` still sees the output was cut."""
    import os
    import sys

    sample = CORPUS / "clean/lantern-skopeo.docker.tar"  # its output is larger than a pipe's buffer
    if not sample.exists():
        pytest.skip("corpus sample clean/lantern-skopeo.docker.tar not found")
    exe = Path(sys.executable).with_name("forensics")
    proc = subprocess.Popen(
        [str(exe), *command[:1], str(sample), *command[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader is gone: every later write is EPIPE
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert first and err == b""


def test_an_mtime_that_is_no_date_is_placed_at_zero_and_says_so(tmp_path):
    """A pax header may hold any number as the mtime (1e300, -1e14): such an entry goes on the
    timeline at 0 with the number in its message, not as a 300-digit body-file time or a
    Timesketch datetime of 1970 beside a timestamp of 10**306 microseconds."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from hostile import Layer, M, Oci, tar_bytes

    items = [("huge", "1e300"), ("neg", "-99999999999999"), ("fine", "1700000000")]
    tars = [tar_bytes([M("etc/", type="dir"), M(f"etc/{n}", b"x", pax={"mtime": t})]) for n, t in items]
    assert b"mtime=1e300" in tars[0]  # the pax record as the header holds it
    archive = tmp_path / "mtimes.tar"
    archive.write_bytes(Oci(layers=[Layer.of(t) for t in tars]).tar())
    recs = {
        r["path"]: r
        for r in map(json.loads, timeline(tmp_path, archive, "jsonl").read_text().splitlines())
        if r.get("data_type") == "container:layer:entry" and r.get("path", "").startswith("/etc/")
    }
    assert recs["/etc/huge"]["timestamp"] == 0 and recs["/etc/huge"]["datetime"].startswith("1970-01-01T00:00:00")
    assert "mtime 1e+300 is no date" in recs["/etc/huge"]["message"]
    assert recs["/etc/neg"]["timestamp"] == 0 and "mtime -1e+14 is no date" in recs["/etc/neg"]["message"]
    assert recs["/etc/fine"]["timestamp"] == 1_700_000_000_000_000 and "no date" not in recs["/etc/fine"]["message"]
    body = {r[1].split(" [")[0]: r for r in body_rows(timeline(tmp_path, archive, "bodyfile"))}
    assert body["/etc/huge"][8] == "0" and body["/etc/fine"][8] == "1700000000"
    assert all(len(r[8]) <= 11 for r in body.values())
