"""SARIF 2.1.0 output (`scan --sarif`, `diff --sarif`), validated against the OASIS schema.

tests/data/sarif-schema-2.1.0.json is the OASIS TC's schema, vendored (see
tests/data/README.md for its source and licence).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from conftest import CORPUS, SAMPLES, analyzed
from hostile import Layer, M, Oci, tar_bytes
from typer.testing import CliRunner

from forensics.cli import app
from forensics.export.sarif import FINGERPRINT, ID_FINGERPRINT, report_to_sarif
from forensics.findings import EXPLANATIONS
from forensics.models import CaseRecord

SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())
VALIDATOR = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
FORGED = SAMPLES / "relay-forged.oci.tar"
GENUINE = SAMPLES / "relay-genuine.oci.tar"
runner = CliRunner()
RUN = [{"created": "2023-11-14T22:13:20Z", "created_by": "/bin/sh -c echo built"}]


def valid(doc: dict) -> dict:
    errors = sorted(VALIDATOR.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])
    return doc


def test_schema_is_the_oasis_one_and_rejects_a_broken_log():
    assert SCHEMA["id"].endswith("/sarif-schema-2.1.0.json")
    assert list(VALIDATOR.iter_errors({"version": "2.1.0", "runs": [{"results": []}]}))  # no tool
    assert list(VALIDATOR.iter_errors({"version": "2.0.0", "runs": []}))


def test_scan_sarif_of_the_forged_sample(tmp_path):
    out = tmp_path / "r.sarif"
    res = runner.invoke(app, ["scan", str(FORGED), "--sarif", str(out), "-q"])
    assert res.exit_code == 1, res.output
    doc = valid(json.loads(out.read_text()))
    report = analyzed(FORGED)
    [run] = doc["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted({f.code for f in report.findings})
    for r in rules:
        assert r["help"]["text"] == EXPLANATIONS[r["id"]]
    by_id = {r["id"]: r for r in rules}
    assert by_id["file.binary-replaced"]["properties"]["security-severity"] == "9.5"
    results = run["results"]
    assert len(results) == len(report.findings)
    img = report.images[0]
    digest = img.manifest_digest
    replaced = next(r for r in results if r["ruleId"] == "file.binary-replaced")
    f = next(f for f in report.findings if f.code == "file.binary-replaced")
    assert replaced["level"] == "error"
    [loc] = replaced["locations"]
    assert loc["physicalLocation"]["artifactLocation"]["uri"] == "image" + f.path
    [logical] = loc["logicalLocations"]
    assert logical["fullyQualifiedName"] == f"{digest}/layer/{f.layer}"
    assert logical["properties"]["diff_id"] == img.layers[f.layer].diff_id
    assert replaced["fingerprints"][ID_FINGERPRINT] == f.id
    assert replaced["properties"]["id"] == f.id
    assert len({r["partialFingerprints"][FINGERPRINT] for r in results}) == len(results)
    assert rules[replaced["ruleIndex"]]["id"] == "file.binary-replaced"
    props = run["properties"]
    assert props["input"]["sha256"] == report.input.sha256
    assert props["images"][0]["manifest_digest"] == digest
    assert props["images"][0]["config_digest"] == img.config_digest
    assert props["verdict"] == "tampered"


def test_info_findings_are_notes_without_a_score():
    # a real ctr export of one platform: the others are blob.not-exported, info
    report = analyzed(Path(__file__).parent / "fixtures" / "realtools" / "ctr-export-one-platform.docker-oci.tar")
    assert {f.severity.value for f in report.findings} == {"info"}
    run = valid(report_to_sarif(report))["runs"][0]
    assert run["results"]
    for r in run["results"]:
        assert r["level"] == "note" and "security-severity" not in r["properties"]
        f = next(f for f in report.findings if f.id == r["properties"]["id"])
        assert r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "archive/" + f.entry
    assert "security-severity" not in run["tool"]["driver"]["rules"][0]["properties"]


@pytest.mark.parametrize(
    "rel",
    [
        "clean/lantern-dockerd-save.docker.tar",
        "clean/lantern-agent-multiarch.oci.tar",
        "attack/relay-forged.docker.tar",
    ],
)
def test_corpus_images_give_valid_sarif(rel):
    sample = CORPUS / rel
    if not sample.exists():
        pytest.skip(f"shared corpus sample {rel} not found under {CORPUS}")
    report = analyzed(sample)
    doc = valid(report_to_sarif(report))
    run = doc["runs"][0]
    assert len(run["results"]) == len(report.findings)
    assert run["properties"]["input"]["sha256"] == report.input.sha256
    assert {i["config_digest"] for i in run["properties"]["images"]} == {i.config_digest for i in report.images}


def test_case_record_goes_into_run_properties():
    report = analyzed(FORGED).model_copy(update={"case": CaseRecord(case="IR-2026-7", examiner="kim", note="x")})
    props = valid(report_to_sarif(report))["runs"][0]["properties"]
    assert props["case"]["case"] == "IR-2026-7" and props["case"]["examiner"] == "kim"


def _tagged(tmp_path, ref: str) -> Path:
    layer = tar_bytes([M("etc/", type="dir"), M("etc/ld.so.preload", b"/lib/x.so\n")])
    path = tmp_path / (ref.replace("/", "_").replace(":", "_") + ".tar")

    def history(cfg):
        cfg["history"] = [{"created": "2023-11-14T22:13:20Z", "created_by": "/bin/sh -c echo built"}]

    path.write_bytes(Oci(layers=[Layer.of(layer)], ref=ref, mutate_config=history).tar())
    return path


def test_fingerprints_survive_a_rename_of_the_image(tmp_path):
    a = analyzed(_tagged(tmp_path, "registry.test/app:1"))
    b = analyzed(_tagged(tmp_path, "other.test/renamed:latest"))
    assert a.images[0].refs != b.images[0].refs and a.findings

    def prints(report):
        return sorted(
            r["partialFingerprints"][FINGERPRINT] for r in valid(report_to_sarif(report))["runs"][0]["results"]
        )

    assert prints(a) == prints(b)


def test_hostile_path_is_percent_encoded(tmp_path):
    name = "etc/cron.d/a b\x1b]0;x\x07%"
    layer = tar_bytes([M("etc/", type="dir"), M("etc/cron.d/", type="dir"), M(name, b"* * * * * root id\n")])
    path = tmp_path / "hostile.tar"
    path.write_bytes(Oci(layers=[Layer.of(layer)], mutate_config=lambda c: c.update(history=RUN)).tar())
    doc = valid(report_to_sarif(analyzed(path)))
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in doc["runs"][0]["results"]]
    assert "image/etc/cron.d/a%20b%1B%5D0%3Bx%07%25" in uris
    text = json.dumps(doc, ensure_ascii=True)
    assert "\x1b" not in text


def test_diff_sarif_locates_in_b(tmp_path):
    out = tmp_path / "d.sarif"
    res = runner.invoke(app, ["diff", str(GENUINE), str(FORGED), "--sarif", str(out), "-q"])
    assert res.exit_code == 1, res.output
    doc = valid(json.loads(out.read_text()))
    run = doc["runs"][0]
    codes = {r["ruleId"] for r in run["results"]}
    assert codes == {"compare.history-equal-content-differs", "compare.content-differs"}
    b = analyzed(FORGED)
    relayd = next(
        r for r in run["results"] if r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("relayd")
    )
    name = relayd["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
    assert name.startswith(b.images[0].manifest_digest + "/layer/")
    assert run["properties"]["b"]["input"]["sha256"] == b.input.sha256
    assert run["properties"]["a"]["input"]["sha256"] == analyzed(GENUINE).input.sha256
    # to stdout: the SARIF alone, no terminal summary mixed in
    res = runner.invoke(app, ["diff", str(GENUINE), str(FORGED), "--sarif", "-"])
    valid(json.loads(res.output))


def test_sarif_to_stdout_and_refusals(tmp_path):
    res = runner.invoke(app, ["scan", str(FORGED), "--sarif", "-"])
    assert res.exit_code == 1
    valid(json.loads(res.output))
    res = runner.invoke(app, ["scan", str(FORGED), "--sarif", "-", "--json", "-"])
    assert res.exit_code == 2 and "stdout" in res.output
    res = runner.invoke(app, ["scan", str(FORGED), "--sarif", str(FORGED)])
    assert res.exit_code == 2 and "refusing" in res.output
