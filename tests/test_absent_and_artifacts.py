"""What an archive holds against what it references, on archives built here byte by byte.

Absent children of an index are blob.not-exported (info) and never change the verdict;
a config or layer missing from a present image, or a missing index.json entry, stays
blob.missing high; foreign layers are blob.foreign (low); manifests that are not images
are inventoried as artifacts with every blob checked, and never analysed as images.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import hostile as H  # noqa: E402
from hostile import M, Oci  # noqa: E402

from forensics.pipeline import analyze  # noqa: E402

MT_COSIGN = "application/vnd.dev.cosign.simplesigning.v1+json"
MT_INTOTO = "application/vnd.in-toto+json"


def _desc(mt: str, data: bytes, **extra) -> dict:
    return {"mediaType": mt, "digest": H.sha(data), "size": len(data), **extra}


def _layout(tmp_path, blobs: list[bytes], index: dict, name: str = "x.oci.tar") -> str:
    members = [
        M("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
        M("blobs/", type="dir"),
        M("blobs/sha256/", type="dir"),
    ]
    seen = {}
    for b in blobs:
        seen.setdefault(H.hexof(b), b)
    members += [M(f"blobs/sha256/{h}", b) for h, b in sorted(seen.items())]
    members.append(M("index.json", H.jbytes(index)))
    path = tmp_path / name
    path.write_bytes(H.tar_bytes(members))
    return str(path)


def _image(seed: str = "a") -> tuple[list[bytes], bytes, Oci]:
    """The blobs of one consistent image and its manifest bytes."""
    oci = Oci(layers=[H.Layer.of(H.tar_bytes([M("etc/", type="dir"), M(f"etc/{seed}", seed.encode())]))])
    config, manifest, _ = oci.documents()
    return [config, manifest, *(layer.blob for layer in oci.layers)], manifest, oci


def _multiarch(tmp_path, drop: set[str] = frozenset(), keep_arm: bool = False) -> tuple[str, dict]:
    amd, amd_man, amd_oci = _image("amd")
    arm, arm_man, _ = _image("arm")
    att = H.jbytes(
        {
            "schemaVersion": 2,
            "mediaType": H.MT_MANIFEST,
            "config": _desc(H.MT_CONFIG, b"{}"),
            "layers": [_desc(MT_INTOTO, b'{"x":1}')],
        }
    )
    children = [
        _desc(H.MT_MANIFEST, amd_man, platform={"os": "linux", "architecture": "amd64"}),
        _desc(H.MT_MANIFEST, arm_man, platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
        _desc(
            H.MT_MANIFEST,
            att,
            platform={"os": "unknown", "architecture": "unknown"},
            annotations={
                "vnd.docker.reference.type": "attestation-manifest",
                "vnd.docker.reference.digest": H.sha(amd_man),
            },
        ),
    ]
    nested = H.jbytes({"schemaVersion": 2, "mediaType": H.MT_INDEX, "manifests": children})
    blobs = [nested, *amd] + (arm if keep_arm else [])
    by_name = {"config": amd[0], "manifest": amd_man, "layer": amd[2], "nested": nested}
    blobs = [b for b in blobs if all(b is not by_name[d] for d in drop)]
    index = {
        "schemaVersion": 2,
        "manifests": [
            _desc(
                H.MT_INDEX,
                nested,
                annotations={
                    "io.containerd.image.name": "example.test/multi:1",
                    "org.opencontainers.image.ref.name": "1",
                },
            )
        ],
    }
    return _layout(tmp_path, blobs, index), {
        "amd": amd_man,
        "arm": arm_man,
        "att": att,
        "nested": nested,
        "amd_config": amd[0],
        "amd_layer": amd[2],
    }


def _codes(r, severity=None):
    return sorted(f.code for f in r.findings if severity is None or f.severity.value == severity)


def test_platforms_left_out_are_one_info_finding_and_the_verdict_stays_clean(tmp_path):
    path, docs = _multiarch(tmp_path)
    r = analyze(path)
    assert r.verdict == "clean"
    assert [f.code for f in r.findings] == ["blob.not-exported"]
    f = r.findings[0]
    assert f.severity.value == "info" and f.digest == H.sha(docs["nested"])
    assert "1 of the 2 platform manifests (linux/arm64/v8)" in f.detail
    assert "1 of the 1 attestation manifest" in f.detail
    assert "example.test/multi:1" in f.detail and "only linux/amd64 can be verified" in f.detail
    assert {(n.digest, n.kind, n.platform) for n in r.not_exported} == {
        (H.sha(docs["arm"]), "platform", "linux/arm64/v8"),
        (H.sha(docs["att"]), "attestation", "unknown/unknown"),
    }
    assert len(r.images) == 1 and r.images[0].platform == "linux/amd64"


def test_config_or_layer_missing_from_a_present_platform_stays_high(tmp_path):
    for part in ("config", "layer"):
        path, docs = _multiarch(tmp_path, drop={part})
        r = analyze(path)
        missing = [f for f in r.findings if f.code == "blob.missing"]
        assert [f.digest for f in missing] == [H.sha(docs[f"amd_{part}"])], part
        assert missing[0].severity.value == "high" and r.verdict == "tampered"


def test_a_missing_index_json_entry_stays_high(tmp_path):
    path, docs = _multiarch(tmp_path, drop={"nested"})
    r = analyze(path)
    missing = [f for f in r.findings if f.code == "blob.missing"]
    assert [(f.digest, f.severity.value) for f in missing] == [(H.sha(docs["nested"]), "high")]
    assert r.verdict == "tampered" and not r.not_exported


def test_a_left_out_platform_whose_layers_stay_behind_is_still_seen(tmp_path):
    # Deleting a platform manifest but leaving its blobs: the layer is referenced by nothing.
    path, docs = _multiarch(tmp_path)
    arm_blobs, _, arm_oci = _image("arm")
    amd, amd_man, _ = _image("amd")
    members_path = _layout(
        tmp_path,
        [docs["nested"], *amd, arm_blobs[2]],
        {"schemaVersion": 2, "manifests": [_desc(H.MT_INDEX, docs["nested"])]},
        "y.oci.tar",
    )
    r = analyze(members_path)
    unref = [f for f in r.findings if f.code == "blob.unreferenced"]
    assert [f.digest for f in unref] == [H.sha(arm_blobs[2])] and unref[0].severity.value == "medium"


def _with_artifact(
    tmp_path,
    layers: list[dict],
    blobs: list[bytes],
    config: bytes = b"{}",
    config_mt: str = H.MT_CONFIG,
    extra: dict | None = None,
) -> tuple[str, bytes, bytes]:
    img, man, _ = _image()
    art = H.jbytes(
        {
            "schemaVersion": 2,
            "mediaType": H.MT_MANIFEST,
            "config": _desc(config_mt, config),
            "layers": layers,
            **(extra or {}),
        }
    )
    index = {
        "schemaVersion": 2,
        "manifests": [
            _desc(H.MT_MANIFEST, man, annotations={"org.opencontainers.image.ref.name": "1"}),
            _desc(H.MT_MANIFEST, art, annotations={"org.opencontainers.image.ref.name": f"sha256-{H.hexof(man)}.sig"}),
        ],
    }
    return _layout(tmp_path, [*img, art, config, *blobs], index), man, art


def test_a_cosign_shaped_signature_is_an_artifact_not_an_image(tmp_path):
    payload = b'{"critical":{"image":{"docker-manifest-digest":"x"}}}'
    path, man, art = _with_artifact(
        tmp_path,
        [_desc(MT_COSIGN, payload, annotations={"dev.cosignproject.cosign/signature": "MEU="})],
        [payload],
        config=H.jbytes({"rootfs": {"type": "layers", "diff_ids": [H.sha(payload)]}, "config": {}}),
    )
    r = analyze(path)
    assert r.verdict == "clean" and not _codes(r, "high") and not _codes(r, "medium")
    assert len(r.images) == 1 and r.images[0].manifest_digest == H.sha(man)
    (a,) = r.artifacts
    assert a.kind == "signature" and a.manifest_digest == H.sha(art) and a.verified
    assert a.subject == H.sha(man) and a.subject_in_archive is True
    assert [(b.role, b.media_type, b.present, b.verified) for b in a.blobs] == [
        ("config", H.MT_CONFIG, True, True),
        ("blob", MT_COSIGN, True, True),
    ]
    assert a.blobs[1].annotations == {"dev.cosignproject.cosign/signature": "MEU="}


def test_an_artifact_blob_that_is_missing_is_reported(tmp_path):
    statement = b'{"_type":"https://in-toto.io/Statement/v1"}'
    path, _, art = _with_artifact(tmp_path, [_desc(MT_INTOTO, statement)], [])
    r = analyze(path)
    missing = [f for f in r.findings if f.code == "blob.missing"]
    assert [(f.digest, f.severity.value) for f in missing] == [(H.sha(statement), "low")]
    assert "artifact" in missing[0].detail and r.verdict == "clean"  # nothing that runs is missing
    assert r.artifacts[0].blobs[1].present is False and r.artifacts[0].blobs[1].verified is False
    assert not any(f.code in ("layer.count-mismatch", "archive.malformed") for f in r.findings)
    from forensics.render.view import build_view

    rows = [row for row in build_view(r)["ledger"]["rows"] if row["declared_digest"] == H.sha(statement)]
    assert [(row["kind"], row["state"], [f["code"] for f in row["findings"]]) for row in rows] == [
        ("artifact blob (missing)", "fail", ["blob.missing"])
    ]


def test_an_artifact_blob_whose_bytes_differ_from_its_digest_is_critical(tmp_path):
    statement = b'{"_type":"https://in-toto.io/Statement/v1"}'
    forged = b'{"_type":"https://in-toto.io/Statement/v1","x":2}'
    img, man, _ = _image()
    art = H.jbytes(
        {
            "schemaVersion": 2,
            "mediaType": H.MT_MANIFEST,
            "config": _desc(H.MT_CONFIG, b"{}"),
            "layers": [_desc(MT_INTOTO, statement)],
        }
    )
    members = [M("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')]
    members += [M(f"blobs/sha256/{H.hexof(b)}", b) for b in [*img, art, b"{}"]]
    members.append(M(f"blobs/sha256/{H.hexof(statement)}", forged))  # the name lies
    members.append(
        M(
            "index.json",
            H.jbytes({"schemaVersion": 2, "manifests": [_desc(H.MT_MANIFEST, man), _desc(H.MT_MANIFEST, art)]}),
        )
    )
    path = tmp_path / "forged.oci.tar"
    path.write_bytes(H.tar_bytes(members))
    r = analyze(str(path))
    bad = {(f.code, f.severity.value) for f in r.findings if f.digest == H.sha(statement)}
    assert ("blob.digest-mismatch", "critical") in bad and ("blob.size-mismatch", "high") in bad
    assert r.verdict == "tampered" and r.artifacts[0].blobs[1].verified is False


def test_an_sbom_referrer_with_empty_config_is_inventoried(tmp_path):
    sbom = b'{"spdxVersion":"SPDX-2.3"}'
    img, man, _ = _image()
    path, _, art = _with_artifact(
        tmp_path,
        [_desc("application/spdx+json", sbom)],
        [sbom],
        config=b"{}",
        config_mt="application/vnd.oci.empty.v1+json",
        extra={"artifactType": "application/spdx+json", "subject": _desc(H.MT_MANIFEST, man)},
    )
    r = analyze(path)
    (a,) = r.artifacts
    assert a.kind == "sbom" and a.artifact_type == "application/spdx+json" and a.subject == H.sha(man)
    assert r.verdict == "clean"


def test_a_referrer_whose_subject_is_not_in_the_archive_says_so(tmp_path):
    sbom = b'{"spdxVersion":"SPDX-2.3"}'
    other = "sha256:" + "ab" * 32
    path, _, _ = _with_artifact(
        tmp_path,
        [_desc("application/spdx+json", sbom)],
        [sbom],
        config_mt="application/vnd.oci.empty.v1+json",
        extra={"subject": {"mediaType": H.MT_MANIFEST, "digest": other, "size": 10}},
    )
    a = analyze(path).artifacts[0]
    assert a.subject == other and a.subject_in_archive is False


def test_a_manifest_with_image_config_and_layers_is_an_image_even_with_a_subject(tmp_path):
    # An attacker cannot turn an image into an unchecked artifact by adding a subject.
    img, man, oci = _image()
    _, victim_man, _ = _image("v")
    oci2 = Oci(
        layers=oci.layers,
        mutate_manifest=lambda m: {**m, "subject": _desc(H.MT_MANIFEST, victim_man)},
        mutate_config=lambda c: {**c, "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}},
    )
    config, manifest, _ = oci2.documents()
    path = _layout(
        tmp_path,
        [config, manifest, *(layer.blob for layer in oci2.layers)],
        {"schemaVersion": 2, "manifests": [_desc(H.MT_MANIFEST, manifest)]},
    )
    r = analyze(path)
    assert not r.artifacts and len(r.images) == 1
    assert "layer.diffid-mismatch" in _codes(r)


def test_foreign_layers_are_low_and_a_config_with_urls_is_not(tmp_path):
    foreign = b"windows base layer bytes"
    fdesc = _desc(
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        foreign,
        urls=["https://mcr.microsoft.com/v2/x/blobs/sha256:1"],
    )
    oci = Oci(
        mutate_manifest=lambda m: {**m, "layers": [fdesc, *m["layers"]]},
        mutate_config=lambda c: {
            **c,
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64, *c["rootfs"]["diff_ids"]]},
        },
    )
    path = tmp_path / "foreign.oci.tar"
    path.write_bytes(oci.tar())
    r = analyze(str(path))
    f = [x for x in r.findings if x.code == "blob.foreign"]
    assert [(x.digest, x.severity.value, x.layer) for x in f] == [(H.sha(foreign), "low", 0)]
    assert "blob.missing" not in _codes(r)

    cfg_urls = Oci(
        mutate_manifest=lambda m: {
            **m,
            "config": {**m["config"], "urls": ["https://x.test/c"], "digest": "sha256:" + "2" * 64},
        }
    )
    path2 = tmp_path / "cfg.oci.tar"
    path2.write_bytes(cfg_urls.tar())
    r2 = analyze(str(path2))
    assert ("blob.missing", "high") in {(x.code, x.severity.value) for x in r2.findings}


def test_the_inventory_is_rendered_escaped_in_terminal_and_html(tmp_path):
    from forensics.render.html import render_html
    from forensics.render.text import render_text

    hostile = "\x1b[31m<script>alert(1)</script>\u202e"
    statement = b'{"_type":"https://in-toto.io/Statement/v1"}'
    img, man, _ = _image()
    art = H.jbytes(
        {
            "schemaVersion": 2,
            "mediaType": H.MT_MANIFEST,
            "artifactType": hostile,
            "config": _desc("application/vnd.oci.empty.v1+json", b"{}"),
            "layers": [_desc(MT_INTOTO, statement)],
        }
    )
    amd, amd_man, _ = _image("amd")
    nested = H.jbytes(
        {
            "schemaVersion": 2,
            "mediaType": H.MT_INDEX,
            "manifests": [
                _desc(H.MT_MANIFEST, man, platform={"os": "linux", "architecture": "amd64"}),
                _desc(H.MT_MANIFEST, amd_man, platform={"os": "linux", "architecture": "s390x"}),
            ],
        }
    )
    path = _layout(
        tmp_path,
        [*img, art, b"{}", statement, nested],
        {
            "schemaVersion": 2,
            "manifests": [
                _desc(H.MT_INDEX, nested, annotations={"org.opencontainers.image.ref.name": hostile}),
                _desc(H.MT_MANIFEST, art, annotations={"org.opencontainers.image.ref.name": hostile}),
            ],
        },
    )
    r = analyze(path)
    assert r.verdict == "clean" and len(r.artifacts) == 1 and r.artifacts[0].artifact_type == hostile
    text = render_text(r)
    assert "Artifacts (1)" in text and "Not in this export (1, unverified): linux/s390x" in text
    assert "\x1b" not in text and "\u202e" not in text and "\\x1b[31m" in text and "\\u202e" in text
    page = render_html(r)
    assert 'id="artifact-0"' in page and 'id="not-exported"' in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_layer_hidden_behind_an_unknown_media_type_is_still_analysed(tmp_path):
    # An attacker who knows "unknown blobs make an artifact" relabels a layer; its bytes are
    # a gzip tar that a sniffing runtime unpacks, so it stays an image and is reported.
    oci = Oci(mutate_manifest=lambda m: {**m, "layers": [{**m["layers"][0], "mediaType": "application/x-notes"}]})
    path = tmp_path / "relabelled.oci.tar"
    path.write_bytes(oci.tar())
    r = analyze(str(path))
    assert not r.artifacts and len(r.images) == 1 and r.images[0].layers[0].files
    mt = [f for f in r.findings if f.code == "blob.media-type-mismatch"]
    assert [(f.severity.value, f.layer) for f in mt] == [("medium", 0)]


def test_an_encrypted_layer_makes_an_artifact_not_a_broken_image(tmp_path):
    blob = b"\x01ocicrypt ciphertext"
    oci = Oci(
        layers=[],
        mutate_manifest=lambda m: {
            **m,
            "layers": [_desc("application/vnd.oci.image.layer.v1.tar+gzip+encrypted", blob)],
        },
        extra_blobs=[blob],
    )
    path = tmp_path / "enc.oci.tar"
    path.write_bytes(oci.tar())
    r = analyze(str(path))
    assert not r.images and r.artifacts[0].kind == "artifact"
    assert not [f for f in r.findings if f.severity.value in ("critical", "high", "medium")]


def test_a_platform_blob_that_is_a_dangling_link_is_not_a_left_out_platform(tmp_path):
    path, docs = _multiarch(tmp_path)
    arm = "blobs/sha256/" + H.hexof(docs["arm"])
    data = H.append_members(Path(path).read_bytes(), [M(arm, type="symlink", link="nowhere")])
    p = tmp_path / "link.oci.tar"
    p.write_bytes(data)
    r = analyze(str(p))
    missing = [f for f in r.findings if f.code == "blob.missing"]
    assert [(f.digest, f.severity.value) for f in missing] == [(H.sha(docs["arm"]), "high")]
    assert {n.kind for n in r.not_exported} == {"attestation"}
