"""Conformance over ../shared/corpus: formats, digests and planted anomalies as the truth files say."""

from __future__ import annotations

import pytest
from conftest import CORPUS, analyzed, corpus_samples, load_truth

from forensics.archive.scan import InputError

SAMPLES = corpus_samples()
IDS = [str(p.relative_to(CORPUS)) for p in SAMPLES]
FORMAT = {"oci-layout-tar": "oci-archive"}
MEDIUM_OR_ABOVE = {"critical", "high", "medium"}
# The codes this engine (digests, structure, history, content) raises; the truth may hold others.
STRUCTURED = ("layer", "history", "path", "digest", "entry")

if not SAMPLES:
    pytest.skip(f"shared corpus not found at {CORPUS}; skipping conformance", allow_module_level=True)


def _report(sample):
    try:
        return analyzed(sample)
    except InputError as exc:  # pragma: no cover - shown as a failure with the reason
        pytest.fail(f"{sample}: input error {exc}")


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_format_and_input_digest(sample):
    truth = load_truth(sample)
    r = _report(sample)
    assert r.format == FORMAT.get(truth["format"], truth["format"])
    assert r.input.sha256 == truth["file_sha256"]
    assert r.input.size == truth["file_size"]


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_digests_match_truth(sample):
    truth = load_truth(sample)
    r = _report(sample)
    want_images = [i for i in truth.get("images", []) if i.get("config_digest")]
    if not want_images:
        return
    by_config = {img.config_digest: img for img in r.images}
    for want in want_images:
        cfg = want.get("config_actual_sha256") or want["config_digest"]
        assert cfg in by_config, f"image with config {cfg} not found; got {list(by_config)}"
        img = by_config[cfg]
        if want.get("manifest_digest"):
            assert img.manifest_digest == (want.get("manifest_actual_sha256") or want["manifest_digest"])
        assert sorted(img.refs) == sorted(want.get("refs") or []) or set(want.get("refs") or []) <= set(img.refs)
        layers = {ly.index: ly for ly in img.layers}
        for wl in want.get("layers", []):
            got = layers.get(wl["index"])
            assert got is not None, f"layer {wl['index']} missing from the report"
            assert got.present == wl["present"]
            if not wl["present"]:
                continue
            dup = [
                a
                for a in truth["anomalies"]
                if a["code"] == "archive.duplicate-entry" and a.get("entry") == wl.get("path_in_archive")
            ]
            if dup:  # which copy a reader keeps is its choice: the truth describes the first one
                copies = [b.digest for b in r.blobs if b.name == wl["path_in_archive"]]
                assert wl["actual_sha256"] in copies
                continue
            assert got.actual_sha256 == wl["actual_sha256"]
            assert got.actual_size == wl["actual_size"]
            assert got.compression == wl["compression"]
            if wl.get("actual_diff_id") and not any(a["code"] == "archive.malformed" for a in truth["anomalies"]):
                assert got.diff_id == wl["actual_diff_id"]
            if truth["format"] != "docker-archive":
                assert got.digest == wl["digest"]
                assert got.media_type == wl["media_type"]
            assert got.declared_diff_id == wl.get("diff_id")


def _matches(finding, anomaly) -> bool:
    if finding.code != anomaly["code"]:
        return False
    for key in STRUCTURED:
        if key in anomaly and anomaly[key] is not None:
            got = getattr(finding, key)
            if key == "path" and got is not None:
                got = got.rstrip("/")
                if got != anomaly[key].rstrip("/"):
                    return False
            elif got != anomaly[key]:
                return False
    return True


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_planted_anomalies_reported(sample):
    truth = load_truth(sample)
    r = _report(sample)
    missing = [a for a in truth["anomalies"] if not any(_matches(f, a) for f in r.findings)]
    assert not missing, (
        "not reported: "
        + "; ".join(f"{a['code']} {a.get('subject')}" for a in missing)
        + "\nreported: "
        + "; ".join(f"{f.code} {f.subject} layer={f.layer} history={f.history} path={f.path}" for f in r.findings)
    )


@pytest.mark.parametrize(
    "sample",
    [s for s in SAMPLES if not load_truth(s)["anomalies"]],
    ids=[i for s, i in zip(SAMPLES, IDS) if not load_truth(s)["anomalies"]],
)
def test_clean_samples_have_no_false_alarms(sample):
    truth = load_truth(sample)
    r = _report(sample)
    allowed = set(truth.get("may_also_report") or [])
    content = truth.get("content_findings") or []
    extra = []
    for f in r.findings:
        if f.severity.value not in MEDIUM_OR_ABOVE or f.code in allowed:
            continue
        if any(_matches(f, c) for c in content):
            continue
        extra.append(f"{f.severity.value} {f.code} {f.subject}: {f.detail[:200]}")
    assert not extra, "false alarms on a clean sample:\n" + "\n".join(extra)
    assert r.verdict in ("clean", "suspicious") or allowed


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_content_findings_reported(sample):
    truth = load_truth(sample)
    r = _report(sample)
    missing = [c for c in truth.get("content_findings") or [] if not any(_matches(f, c) for f in r.findings)]
    assert not missing, "content findings not reported: " + ", ".join(f"{c['code']} {c.get('path')}" for c in missing)
