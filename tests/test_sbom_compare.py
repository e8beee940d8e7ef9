"""SBOM attestations in the archive held to the packages in its layers (attestation.sbom-mismatch).

Archives are built by tests/sbomimages.py (BuildKit's attestation layout, every digest
right); the corpus's Debian image gets an SBOM made here from its own dpkg status file,
read with tarfile.
"""

from __future__ import annotations

import json

import pytest
import sbomimages as si
from conftest import CORPUS
from test_cyclonedx import layer_file, oci_layers, stanzas
from typer.testing import CliRunner

from forensics.cli import app
from forensics.models import ImagePackages, InstalledPackage
from forensics.pipeline import analyze
from forensics.sbom.compare import compare_statement, sbom_packages

runner = CliRunner()
DEB = CORPUS / "attack" / "deb-tools-pkgfile.oci.tar"
ALPINE = "distro=alpine-3.19.1"
# (name, version, purl) of what tests/sbomimages.alpine_layers() installs
GENUINE = [
    ("musl", "1.2.4_git20230717-r4", f"pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&{ALPINE}"),
    ("busybox", "1.36.1-r15", f"pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&{ALPINE}"),
    ("requests", "2.31.0", "pkg:pypi/requests@2.31.0"),
    ("typing_extensions", "4.8.0", "pkg:pypi/typing-extensions@4.8.0"),
    ("@acme/left-pad", "1.3.0", "pkg:npm/%40acme/left-pad@1.3.0"),
    # what syft also lists and this check does not compare: the image, a Go binary
    ("example.test/hostile", "1", "pkg:oci/hostile@sha256%3Aabc"),
    ("github.com/acme/tool", "v1.2.3", "pkg:golang/github.com/acme/tool@v1.2.3"),
]


def alpine_tar() -> bytes:
    return si.image(si.alpine_layers(), si.HISTORY["alpine"]).tar()


def mismatches(path) -> list:
    return [f for f in analyze(str(path)).findings if f.code == "attestation.sbom-mismatch"]


@pytest.mark.parametrize("make", [si.spdx_statement, si.cyclonedx_statement])
def test_an_sbom_that_matches_the_layers_gives_no_finding(tmp_path, make):
    tar = alpine_tar()
    p = si.attach(tar, [make(si.manifest_digest(tar), GENUINE)], tmp_path / "ok.tar")
    r = analyze(str(p))
    assert [a.kind for a in r.artifacts] == ["attestation"]
    assert not [f for f in r.findings if f.code == "attestation.sbom-mismatch"]
    assert r.verdict == "clean", [(f.code, f.detail) for f in r.findings]


def test_omitted_package_wrong_version_and_stale_entry(tmp_path):
    tar = alpine_tar()
    forged = [x for x in GENUINE if x[0] != "busybox"]  # the package the attacker hides
    forged = [(n, "2.32.0", "pkg:pypi/requests@2.32.0") if n == "requests" else (n, v, u) for n, v, u in forged]
    forged.append(("curl", "8.5.0-r0", f"pkg:apk/alpine/curl@8.5.0-r0?arch=x86_64&{ALPINE}"))
    p = si.attach(tar, [si.spdx_statement(si.manifest_digest(tar), forged)], tmp_path / "forged.tar")
    found = {(f.evidence["kind"], f.evidence["name"]): f for f in mismatches(p)}
    assert set(found) == {("omitted", "busybox"), ("version", "requests"), ("absent", "curl")}
    omitted, version, absent = found[("omitted", "busybox")], found[("version", "requests")], found[("absent", "curl")]
    assert (omitted.severity.value, version.severity.value, absent.severity.value) == ("medium", "medium", "low")
    assert omitted.layer == 0 and omitted.path == "/lib/apk/db/installed"
    assert "1.36.1-r15" in omitted.detail and "never sees it" in omitted.detail
    assert version.layer == 1 and version.evidence["layers"] == ["2.31.0"] and version.evidence["sbom"] == ["2.32.0"]
    assert version.path.endswith("requests-2.31.0.dist-info/RECORD")
    assert absent.layer is None and absent.evidence["ecosystem"] == "apk"
    assert all(f.digest and f.evidence["predicate_type"] == "https://spdx.dev/Document" for f in found.values())
    # through the CLI: the verdict and exit code follow
    res = runner.invoke(app, ["scan", str(p), "-q", "--fail-on", "medium"])
    assert res.exit_code == 1


def test_a_bare_sbom_attached_as_a_referrer_is_compared_too(tmp_path):
    tar = alpine_tar()
    st = si.cyclonedx_statement(si.manifest_digest(tar), [x for x in GENUINE if x[0] != "busybox"])
    p = si.attach_referrer(tar, st["predicate"], "application/vnd.cyclonedx+json", tmp_path / "referrer.tar")
    assert [a.kind for a in analyze(str(p)).artifacts] == ["sbom"]
    [f] = mismatches(p)
    assert (f.evidence["kind"], f.evidence["name"], f.severity.value) == ("omitted", "busybox", "medium")
    assert f.evidence["predicate_type"] == "https://cyclonedx.org/bom"


def test_an_ecosystem_the_sbom_ignores_is_one_finding(tmp_path):
    tar = alpine_tar()
    no_npm = [x for x in GENUINE if not x[2].startswith("pkg:npm/")]
    p = si.attach(tar, [si.cyclonedx_statement(si.manifest_digest(tar), no_npm)], tmp_path / "no-npm.tar")
    [f] = mismatches(p)
    assert f.evidence["kind"] == "ecosystem omitted" and f.evidence["names"] == ["@acme/left-pad"]
    assert f.severity.value == "medium" and "lists no npm package at all" in f.detail


def test_entries_without_purl_are_placed_by_name(tmp_path):
    tar = alpine_tar()
    bare = [
        (n, "9.9" if n == "musl" else v, None) for n, v, u in GENUINE if not u.startswith(("pkg:oci", "pkg:golang"))
    ]
    p = si.attach(tar, [si.spdx_statement(si.manifest_digest(tar), bare)], tmp_path / "bare.tar")
    found = {(f.evidence["kind"], f.evidence["name"]) for f in mismatches(p)}
    assert found == {("version", "musl")}


def test_an_sbom_about_another_image_is_not_held_to_this_one(tmp_path):
    tar = alpine_tar()
    other = "sha256:" + "1" * 64
    st = si.spdx_statement(other, GENUINE[:1])
    p = si.attach(tar, [st], tmp_path / "other.tar", subject_digest=other)
    assert mismatches(p) == []


def test_not_an_sbom_predicate_and_junk_never_raise(tmp_path):
    tar = alpine_tar()
    digest = si.manifest_digest(tar)
    junk = [
        {"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://spdx.dev/Document", "predicate": []},
        {"predicateType": "https://cyclonedx.org/bom", "predicate": {"components": [1, None, {"name": 3}]}},
        b"{not json",
    ]
    for st in junk[:2]:
        st["subject"] = [{"digest": {"sha256": digest.split(":", 1)[1]}}]
    p = si.attach(tar, junk, tmp_path / "junk.tar")
    found = mismatches(p)
    # the unreadable SPDX predicate is one low finding; the CycloneDX one lists nothing: every ecosystem omitted
    assert sorted((f.severity.value, f.evidence["kind"] if "kind" in f.evidence else "unreadable") for f in found) == [
        ("low", "unreadable"),
        ("medium", "ecosystem omitted"),
        ("medium", "ecosystem omitted"),
        ("medium", "ecosystem omitted"),
    ]


def test_compare_statement_takes_a_parsed_statement():
    """The seam for cosign .att attestations: a statement dict and the image's inventory."""
    inv = ImagePackages(
        image=0,
        packages=[
            InstalledPackage(
                manager="rpm", name="bash", version="1:5.2.26-3.fc40", database="/var/lib/rpm/rpmdb.sqlite", layer=0
            ),
            InstalledPackage(
                manager="dpkg", name="zlib1g", version="0:1.2.13", database="/var/lib/dpkg/status", layer=0
            ),
        ],
    )
    st = si.cyclonedx_statement(
        "sha256:" + "2" * 64,
        [
            ("bash", "5.2.26-3.fc40", "pkg:rpm/fedora/bash@5.2.26-3.fc40?arch=x86_64&epoch=1"),  # epoch as a qualifier
            ("zlib1g", "1.2.13", "pkg:deb/debian/zlib1g@1.2.13"),  # epoch 0 is no epoch
        ],
    )
    assert compare_statement(st, inv, image=0) == []
    st["predicate"]["components"][0]["purl"] = "pkg:rpm/fedora/bash@5.2.26-3.fc40?arch=x86_64&epoch=2"
    st["predicate"]["components"][0].pop("version")
    [f] = compare_statement(st, inv, image=0, where="cosign attestation")
    assert f.evidence["attestation"] == "cosign attestation" and f.evidence["layers"] == ["1:5.2.26-3.fc40"]
    assert sbom_packages({"predicateType": "https://slsa.dev/provenance/v1", "predicate": {}}) is None


@pytest.mark.skipif(not DEB.exists(), reason="shared corpus not found")
def test_debian_corpus_image_with_its_own_sbom_and_a_forged_one(tmp_path):
    tar = DEB.read_bytes()
    _, layers = oci_layers(DEB)
    status = next(s for s in (layer_file(t, "/var/lib/dpkg/status") for t in reversed(layers)) if s is not None)
    pkgs = sorted(stanzas(status.decode()))
    digest = si.manifest_digest(tar)
    own = [(n, v, f"pkg:deb/debian/{n}@{v}?arch={a}&distro=debian-12") for n, v, a in pkgs]
    ok = si.attach(tar, [si.spdx_statement(digest, own)], tmp_path / "own.tar")
    assert mismatches(ok) == []
    forged = [(n, "1:1.2.13.dfsg-1+deb12u1", u.replace("@", "@1:9")) if n == "zlib1g" else (n, v, u) for n, v, u in own]
    forged = [x for x in forged if x[0] != "gzip"]
    bad = si.attach(tar, [si.spdx_statement(digest, forged)], tmp_path / "forged.tar")
    found = {(f.evidence["kind"], f.evidence["name"]): f for f in mismatches(bad)}
    assert set(found) == {("omitted", "gzip"), ("version", "zlib1g")}
    assert json.dumps(found[("version", "zlib1g")].evidence["layers"]) == json.dumps(
        [v for n, v, _ in pkgs if n == "zlib1g"]
    )


def test_an_sbom_statement_too_deep_or_too_large_says_why_it_was_not_read(tmp_path, monkeypatch):
    """A statement nested past the JSON reader's depth, or larger than max_json (not kept), is
    no SBOM to compare: the attestation says which limit, in the JSON and on the terminal
    (the terminal used to show only 'attestation ?' for an unsigned one)."""
    tar = alpine_tar()
    man = si.manifest_digest(tar)
    head = b'{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","predicate":'
    deep = head + b"[" * 200_000 + b"]" * 200_000 + b"}"
    large = json.dumps(si.spdx_statement(man, GENUINE)).encode()[:-1] + b" " * (17 << 20) + b"}"
    monkeypatch.setattr(si, "_predicate_type", lambda blob: "https://spdx.dev/Document")  # it would parse them
    for name, blob, why in (
        ("deep", deep, "JSON nested deeper than the reader follows (max_json_depth)"),
        ("large", large, "exceed the limit max_json (16,777,216): not kept, not read"),
    ):
        p = si.attach(tar, [blob], tmp_path / f"{name}.tar", subject_digest=man)
        res = runner.invoke(app, ["scan", str(p), "--json", str(tmp_path / f"{name}.json")])
        assert res.exit_code in (0, 1), res.output
        [att] = json.loads((tmp_path / f"{name}.json").read_text())["attestations"]
        assert att["predicate_type"] is None and why in att["detail"], att["detail"]
        assert why in " ".join(res.output.split())
