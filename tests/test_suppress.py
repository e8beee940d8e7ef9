"""Suppressions (`scan --ignore FILE`, `.forensics-ignore.toml`), on the bundled forged sample and
archives built here: the verdict and the exit code change, the suppressed findings stay listed."""

from __future__ import annotations

import json
import shutil
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import CORPUS, SAMPLES, analyzed
from hostile import Layer, M, Oci, tar_bytes
from test_sarif import valid
from typer.testing import CliRunner

from forensics.cli import app
from forensics.export.sarif import report_to_sarif
from forensics.suppress import IgnoreFileError, apply, load, parse

FORGED = SAMPLES / "relay-forged.oci.tar"
runner = CliRunner()

# The three findings of the forged sample: the replaced binary, the cron job, the history line.
ALL_THREE = """
[[ignore]]
code = "file.binary-replaced"
paths = ["/usr/local/bin/*"]
statement = "relayd wrapper, reviewed in ticket 123"

[[ignore]]
code = "file.persistence"
paths = ["/etc/crontabs/*"]
statement = "our cron job"
expires = 2999-12-31

[[ignore]]
code = "history.unexplained-change"
statement = "history rewritten by our squash step"
"""


def scan(*args) -> object:
    return runner.invoke(app, ["scan", *map(str, args)])


def write(tmp_path: Path, text: str, name: str = "ignore.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_suppression_changes_verdict_and_exit_code_and_keeps_the_findings_listed(tmp_path):
    before = scan(FORGED, "--json", tmp_path / "before.json")
    assert before.exit_code == 1 and before.stdout.startswith("TAMPERED")
    ign = write(tmp_path, ALL_THREE)
    out, html = tmp_path / "r.json", tmp_path / "r.html"
    res = scan(FORGED, "--ignore", ign, "--json", out, "--html", html)
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("CLEAN")
    assert (
        "Suppressed: 3 findings, not in the verdict (with them: TAMPERED); --show-suppressed lists them" in res.stdout
    )
    assert f"suppressions applied from {ign.resolve()} (--ignore, sha256:" in res.stderr
    assert "3 findings suppressed" in res.stderr and "CLEAN with the suppressions, TAMPERED without" in res.stderr
    data = json.loads(out.read_text())
    assert data["verdict"] == "clean" and data["findings"] == []
    sup = {s["finding"]["code"]: s for s in data["suppressed"]}
    assert set(sup) == {"file.binary-replaced", "file.persistence", "history.unexplained-change"}
    assert sup["file.persistence"]["statement"] == "our cron job" and sup["file.persistence"]["entry"] == 2
    assert sup["file.binary-replaced"]["finding"]["id"] == next(
        f["id"]
        for f in json.loads((tmp_path / "before.json").read_text())["findings"]
        if f["code"] == "file.binary-replaced"
    )
    assert data["suppression"]["files"][0]["how"] == "--ignore"
    assert [r["status"] for r in data["suppression"]["rules"]] == ["applied"] * 3
    # the HTML lists them apart, with their statements
    page = html.read_text()
    HTMLParser().feed(page)
    assert 'id="suppressed"' in page and "relayd wrapper, reviewed in ticket 123" in page
    # every finding with its statement, on request
    res = scan(FORGED, "--ignore", ign, "--show-suppressed")
    assert res.exit_code == 0
    assert "CRITICAL file.binary-replaced" in res.stdout and "statement: our cron job" in res.stdout
    # --fail-on still sees only what is left
    assert scan(FORGED, "--ignore", ign, "--fail-on", "info", "-q").exit_code == 0


def test_partial_suppression_keeps_the_verdict(tmp_path):
    ign = write(tmp_path, ALL_THREE.split('[[ignore]]\ncode = "file.persistence"')[0])
    res = scan(FORGED, "--ignore", ign, "--json", "-")
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    assert data["verdict"] == "tampered" and len(data["findings"]) == 2 and len(data["suppressed"]) == 1
    # the history steps still point at the findings they own
    steps = [h["analysis"] for h in data["images"][0]["history"] if h["analysis"]]
    owned = sorted(i for a in steps for i in a["findings"])
    assert owned and all(0 <= i < len(data["findings"]) for i in owned)
    assert all(data["findings"][i]["history"] is not None for i in owned)


def test_quiet_still_says_a_suppression_was_applied(tmp_path):
    res = scan(FORGED, "--ignore", write(tmp_path, ALL_THREE), "-q")
    assert res.exit_code == 0 and res.stdout == ""
    assert "suppressions applied from" in res.stderr


def test_default_file_beside_the_input_is_read_and_announced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evidence = tmp_path / "case"
    evidence.mkdir()
    shutil.copy(FORGED, evidence / "image.tar")
    write(evidence, ALL_THREE, ".forensics-ignore.toml")
    res = scan(evidence / "image.tar")
    assert res.exit_code == 0
    assert f"{(evidence / '.forensics-ignore.toml').resolve()} (beside the input" in res.stderr
    # a broken default file stops the scan with a usage error that says how to skip it
    (evidence / ".forensics-ignore.toml").write_text("[[ignore]]\ncode = 1\n")
    res = scan(evidence / "image.tar")
    assert res.exit_code == 2 and "beside the input; --no-ignore skips it" in res.stderr
    # --no-ignore: the evidence's own file is not read
    res = scan(evidence / "image.tar", "--no-ignore")
    assert res.exit_code == 1 and res.stderr == "" and "Suppressed" not in res.stdout


def test_default_file_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, ALL_THREE, ".forensics-ignore.toml")
    res = scan(FORGED, "--json", "-")
    assert res.exit_code == 0 and "(working directory, sha256:" in res.stderr
    assert json.loads(res.stdout)["suppression"]["files"][0]["how"] == "working directory"


def test_a_file_inside_an_input_layout_directory_is_never_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    layer = tar_bytes([M("etc/", type="dir"), M("etc/ld.so.preload", b"/lib/x.so\n")])
    history = [{"created": "2023-11-14T22:13:20Z", "created_by": "/bin/sh -c echo built"}]
    layout = tmp_path / "parent" / "layout"
    layout.mkdir(parents=True)
    Oci(layers=[Layer.of(layer)], mutate_config=lambda c: c.update(history=history)).write_dir(layout)
    (layout / ".forensics-ignore.toml").write_text('[[ignore]]\ncode = "file.persistence"\nstatement = "x"\n')
    res = scan(layout)
    assert res.exit_code == 1 and "suppressions applied" not in res.stderr
    # beside the directory (its parent) is beside the input
    write(tmp_path / "parent", '[[ignore]]\ncode = "file.persistence"\nstatement = "x"\n', ".forensics-ignore.toml")
    res = scan(layout, "--json", "-")
    assert "(beside the input" in res.stderr
    assert "file.persistence" in {s["finding"]["code"] for s in json.loads(res.stdout)["suppressed"]}


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (
            '[[ignore]]\ncode = "file.persistence"\npath = "/etc/x"\nstatement = "s"\n',
            "line 1: entry 1: unknown key 'path'",
        ),
        ('[[ignore]]\ncode = "file.persistence"\n', "line 1: entry 1: 'statement' is required"),
        ('\n\n[[ignore]]\nstatement = "s"\n', "line 3: entry 1: 'code' is required"),
        ('[[ignore]]\ncode = "file.persistance"\nstatement = "s"\n', "'file.persistance' is not a finding code"),
        ('[[ignore]]\ncode = "blob.missing"\ndigest = "sha256:4f"\nstatement = "s"\n', "'digest' must be sha256:"),
        ('[[ignore]]\ncode = "blob.missing"\nstatement = "s"\nexpires = "soon"\n', "'expires' must be a date"),
        ('[[ignore]]\ncode = "blob.missing"\nstatement = "s"\npaths = "/a"\nstatement = "t"\n', "not valid TOML"),
        ('[ignore]\ncode = "blob.missing"\n', "array of tables"),
        ('[[ignores]]\ncode = "blob.missing"\n', "unknown top-level key 'ignores'"),
    ],
)
def test_malformed_file_is_a_usage_error_naming_line_and_key(tmp_path, text, expect):
    ign = write(tmp_path, text)
    res = scan(FORGED, "--ignore", ign)
    assert res.exit_code == 2
    assert res.stdout == "" and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith("forensics: error: ") and expect in res.stderr, res.stderr


def test_hostile_file_contents_are_errors_not_tracebacks(tmp_path):
    for raw in (b"\xff\xfe[[ignore]]", b"\x1b]0;x\x07 = 1\n", b"a" * (2 << 20)):
        p = tmp_path / "bad.toml"
        p.write_bytes(raw)
        res = scan(FORGED, "--ignore", p)
        assert res.exit_code == 2 and "\x1b" not in res.output and res.stderr.count("\n") == 1, res.output
    assert scan(FORGED, "--ignore", tmp_path / "absent.toml").exit_code == 2
    assert scan(FORGED, "--ignore", tmp_path / "bad.toml", "--no-ignore").exit_code == 2


def test_expired_entry_is_ignored_with_a_warning_and_unmatched_is_reported(tmp_path):
    text = (
        '[[ignore]]\ncode = "file.binary-replaced"\nstatement = "old waiver"\nexpires = 2020-01-01\n\n'
        '[[ignore]]\ncode = "blob.missing"\nstatement = "nothing is missing"\ndigest = "sha256:' + "0" * 64 + '"\n'
    )
    res = scan(FORGED, "--ignore", write(tmp_path, text), "--json", "-")
    assert res.exit_code == 1
    assert "line 1: entry 1 (file.binary-replaced) expired on 2020-01-01: not applied" in res.stderr
    assert "line 6: entry 2 (blob.missing) matched no finding" in res.stderr
    data = json.loads(res.stdout)
    assert data["suppressed"] == [] and data["verdict"] == "tampered"
    assert [r["status"] for r in data["suppression"]["rules"]] == ["expired", "unmatched"]
    # the entry holds through its day, not after it
    rules = parse('[[ignore]]\ncode = "file.binary-replaced"\nstatement = "s"\nexpires = 2027-06-30\n', "f")
    from forensics.suppress import Loaded

    for today, status in ((date(2027, 6, 30), "applied"), (date(2027, 7, 1), "expired")):
        report = analyzed(FORGED).model_copy(deep=True)
        apply(report, Loaded(rules=rules), today=today)
        assert report.suppression.rules[0].status == status


def test_digest_scopes_an_entry_to_one_layer_or_image(tmp_path):
    report = analyzed(FORGED)
    img = report.images[0]
    f = next(f for f in report.findings if f.code == "file.binary-replaced")
    other = img.layers[0].diff_id
    for digest, hit in ((img.layers[f.layer].diff_id, True), (img.manifest_digest, True), (other, False)):
        text = f'[[ignore]]\ncode = "file.binary-replaced"\ndigest = "{digest}"\nstatement = "s"\n'
        copy = report.model_copy(deep=True)
        apply(copy, load([(str(write(tmp_path, text)), "--ignore")]))
        assert bool(copy.suppressed) is hit, digest


def test_sarif_lists_suppressed_results_with_their_statement(tmp_path):
    report = analyzed(FORGED).model_copy(deep=True)
    apply(report, load([(str(write(tmp_path, ALL_THREE)), "--ignore")]))
    run = valid(report_to_sarif(report))["runs"][0]
    assert len(run["results"]) == 3
    justifications = {r["suppressions"][0]["justification"] for r in run["results"]}
    assert "our cron job" in justifications
    assert run["properties"]["suppression"]["files"][0]["sha256"]


def test_corpus_image_with_a_suppression(tmp_path):
    sample = CORPUS / "clean" / "lantern-dockerd-save.docker.tar"
    if not sample.exists():
        pytest.skip(f"shared corpus sample not found under {CORPUS}")
    codes = {f.code for f in analyzed(sample).findings}
    assert codes, "the sample's low setuid finding is what this test suppresses"
    text = "".join(f'[[ignore]]\ncode = "{c}"\nstatement = "known in the base image"\n' for c in sorted(codes))
    res = scan(sample, "--ignore", write(tmp_path, text), "--json", "-")
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert data["findings"] == [] and {s["finding"]["code"] for s in data["suppressed"]} == codes


def test_parse_errors_name_the_file():
    with pytest.raises(IgnoreFileError, match=r"^/x/ign.toml: line 2: entry 1"):
        parse('# waivers\n[[ignore]]\ncode = "nope.code"\nstatement = "s"\n', "/x/ign.toml")
