"""scan: formats, digests, every issue-2 finding code on archives built here, CLI contract."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard
from hostile import Layer, M, Oci, default_layer, docker_archive, hexof, jbytes, sha, tar_bytes

from forensics.models import Report
from forensics.pipeline import analyze

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
TRUTHS = sorted(SAMPLES.glob("*.truth.json"))


def run(*args, stdin: bytes | None = None):
    return subprocess.run([sys.executable, "-m", "forensics", *args], capture_output=True, input=stdin)


def codes(report) -> set[str]:
    return {f.code for f in report.findings}


def write(tmp_path, data: bytes, name="a.tar") -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


@pytest.mark.parametrize("truth_path", TRUTHS, ids=[t.name for t in TRUTHS])
def test_samples_match_their_truth(truth_path):
    truth = json.loads(truth_path.read_text())
    archive = SAMPLES / truth["archive"]
    r = analyze(str(archive))
    assert r.format == truth["format"]
    assert r.input.sha256 == "sha256:" + truth["archive_sha256"].removeprefix("sha256:")
    assert r.input.sha256 == "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()
    [img] = r.images
    assert img.config_digest == truth["config_digest"]
    assert img.manifest_digest == truth["manifest_digest"]
    assert img.refs == truth["refs"]
    for got, want in zip(img.layers, truth["layers"], strict=True):
        assert (got.digest, got.size, got.compression, got.diff_id) == (
            want["digest"],
            want["size"],
            want["compression"],
            want["diff_id"],
        )
    assert [h.created_by for h in img.history] == [h["created_by"] for h in truth["history"]]


def test_every_layer_file_is_indexed_with_its_content_digest():
    r = analyze(str(SAMPLES / "relay-genuine.oci.tar"))
    files = {f.path: f for f in r.images[0].layers[1].files}
    relayd = files["/usr/local/bin/relayd"]
    assert relayd.kind == "elf" and relayd.mode == 0o755 and relayd.type == "file"
    import tarfile

    with tarfile.open(SAMPLES / "relay-genuine.oci.tar") as outer:
        blob = outer.extractfile("blobs/sha256/" + r.images[0].layers[1].digest.split(":")[1]).read()
    import io

    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as inner:
        data = inner.extractfile("usr/local/bin/relayd").read()
    assert relayd.sha256 == hashlib.sha256(data).hexdigest() and relayd.size == len(data)


def test_same_image_in_every_container(tmp_path):
    """Plain tar, gzip and zstd of the whole archive, stdin and a directory give one result."""
    raw = (SAMPLES / "clean-zstd.oci.tar").read_bytes()
    base = analyze(str(SAMPLES / "clean-zstd.oci.tar"))
    for name, data in (("a.tar.gz", gzip.compress(raw)), ("a.tar.zst", zstandard.compress(raw))):
        r = analyze(write(tmp_path, data, name))
        assert r.input.compression == name.rsplit(".", 1)[1].replace("gz", "gzip").replace("zst", "zstd")
        assert r.images[0].config_digest == base.images[0].config_digest and not r.findings
    cp = run("scan", "-", "--json", "-", "-q", stdin=raw)
    assert cp.returncode == 0
    doc = Report.model_validate_json(cp.stdout)
    assert doc.input.sha256 == base.input.sha256
    import tarfile

    d = tmp_path / "layout"
    with tarfile.open(SAMPLES / "clean-zstd.oci.tar") as t:
        t.extractall(d, filter="data")
    r = analyze(str(d))
    assert r.format == "oci-layout" and not r.findings
    assert [ly.diff_id for ly in r.images[0].layers] == [ly.diff_id for ly in base.images[0].layers]


# --- every issue-2 code on an archive built for it -----------------------------------


def test_blob_digest_mismatch_and_size_mismatch(tmp_path):
    layer = Layer.of(default_layer())
    oci = Oci(layers=[layer])
    tampered = bytearray(layer.blob)
    tampered[4] ^= 1  # gzip MTIME field: still inflates to the same tar
    oci.layers[0] = Layer(bytes(tampered), layer.diff_id)
    # keep the descriptor digest of the original blob but store the tampered bytes under it
    members = oci.members()
    for m in members:
        if isinstance(m, M) and m.name.endswith(hexof(bytes(tampered))):
            m.name = "blobs/sha256/" + hexof(layer.blob)
    cfg, man, idx = oci.documents()
    man_doc = json.loads(man)
    man_doc["layers"][0]["digest"] = sha(layer.blob)
    man_doc["layers"][0]["size"] = len(layer.blob) + 7
    man2 = jbytes(man_doc)
    members = [m for m in members if not (isinstance(m, M) and m.name in ("index.json", f"blobs/sha256/{hexof(man)}"))]
    idx_doc = json.loads(idx)
    idx_doc["manifests"][0].update(digest=sha(man2), size=len(man2))
    members += [M(f"blobs/sha256/{hexof(man2)}", man2), M("index.json", jbytes(idx_doc))]
    r = analyze(write(tmp_path, tar_bytes(members)))
    found = {f.code: f for f in r.findings}
    assert found["blob.digest-mismatch"].layer == 0
    assert found["blob.size-mismatch"].evidence == {"declared": len(layer.blob) + 7, "actual": len(layer.blob)}
    assert "layer.diffid-mismatch" not in found  # content is the same tar


def test_diffid_and_count_mismatch(tmp_path):
    oci = Oci(mutate_config=lambda c: c["rootfs"].update(diff_ids=[sha(b"other"), sha(b"more")]))
    r = analyze(write(tmp_path, oci.tar()))
    assert {"layer.diffid-mismatch", "layer.count-mismatch"} <= codes(r)


def test_missing_and_unreferenced_blobs(tmp_path):
    stray = gzip.compress(tar_bytes([M("etc/ld.so.preload", b"/tmp/x.so\n")]), mtime=0)
    oci = Oci(extra_blobs=[stray])
    members = [
        m for m in oci.members() if not (isinstance(m, M) and m.name == "blobs/sha256/" + hexof(oci.layers[0].blob))
    ]
    r = analyze(write(tmp_path, tar_bytes(members)))
    missing = [f for f in r.findings if f.code == "blob.missing"]
    assert missing and missing[0].layer == 0 and missing[0].digest == sha(oci.layers[0].blob)
    unref = [f for f in r.findings if f.code == "blob.unreferenced"]
    assert [f.digest for f in unref] == [sha(stray)] and unref[0].severity.value == "medium"


def test_media_type_mismatch(tmp_path):
    tar = default_layer()
    layer = Layer(zstandard.compress(tar), sha(tar), "zstd", media_type="application/vnd.oci.image.layer.v1.tar+gzip")
    r = analyze(write(tmp_path, Oci(layers=[layer]).tar()))
    [f] = [f for f in r.findings if f.code == "blob.media-type-mismatch"]
    assert f.evidence == {"declared": "gzip", "actual": "zstd"}
    assert r.images[0].layers[0].compression == "zstd"


def test_config_renamed_in_docker_archive(tmp_path):
    data = docker_archive()
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = [(ti, t.extractfile(ti).read() if ti.isfile() else b"") for ti in t.getmembers()]
    out = []
    for ti, body in members:
        if ti.name.endswith(".json") and ti.name != "manifest.json":
            body = body.replace(b'"amd64"', b'"arm64"')  # same length, name unchanged
        out.append(M(ti.name, body))
    r = analyze(write(tmp_path, tar_bytes(out)))
    [f] = [f for f in r.findings if f.code == "blob.digest-mismatch"]
    assert f.entry.endswith(".json")


def test_ref_conflict_in_manifest_json(tmp_path):
    layer = default_layer()
    cfg2 = jbytes({"architecture": "arm64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}})
    second = {
        "Config": f"{hexof(cfg2)}.json",
        "RepoTags": ["example.test/hostile:1"],
        "Layers": [f"{hexof(layer)}.tar"],
    }
    data = docker_archive(
        layers=[layer], mutate_manifest=lambda m: m + [second], extra_members=[M(f"{hexof(cfg2)}.json", cfg2)]
    )
    r = analyze(write(tmp_path, data))
    [f] = [f for f in r.findings if f.code == "ref.conflict"]
    assert f.subject == "example.test/hostile:1" and len(f.evidence["manifest.json"]) == 2
    # repositories naming an id no image has is not, by itself, a conflict
    data = docker_archive(extra_members=[M("repositories", jbytes({"example.test/hostile": {"1": "f" * 64}}))])
    assert "ref.conflict" not in codes(analyze(write(tmp_path, data, "b.tar")))


def test_ref_conflict_in_index_annotations(tmp_path):
    oci = Oci(
        mutate_index=lambda i: i["manifests"][0]["annotations"].update({"io.containerd.image.name": "example.test/x:1"})
    )
    cfg, man, idx = oci.documents()
    other_cfg = jbytes({**json.loads(cfg), "os": "windows"})
    man2 = jbytes(
        {
            **json.loads(man),
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha(other_cfg),
                "size": len(other_cfg),
            },
        }
    )
    idx_doc = json.loads(idx)
    idx_doc["manifests"].append(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(man2),
            "size": len(man2),
            "annotations": {"io.containerd.image.name": "example.test/x:1"},
        }
    )
    members = [m for m in oci.members() if not (isinstance(m, M) and m.name == "index.json")]
    members += [
        M(f"blobs/sha256/{hexof(other_cfg)}", other_cfg),
        M(f"blobs/sha256/{hexof(man2)}", man2),
        M("index.json", jbytes(idx_doc)),
    ]
    r = analyze(write(tmp_path, tar_bytes(members)))
    [f] = [f for f in r.findings if f.code == "ref.conflict"]
    assert f.subject == "example.test/x:1"


def test_expect_pin(tmp_path):
    sample = str(SAMPLES / "relay-genuine.oci.tar")
    r = analyze(sample)
    ok = run("scan", sample, "-q", "--expect", r.images[0].manifest_digest, "--expect", r.images[0].config_digest)
    assert ok.returncode == 0, ok.stderr
    bad = run("scan", sample, "--json", "-", "--expect", "sha256:" + "0" * 64)
    assert bad.returncode == 1
    doc = json.loads(bad.stdout)
    [f] = [f for f in doc["findings"] if f["code"] == "ref.pin-mismatch"]
    assert f["severity"] == "critical" and r.images[0].manifest_digest in f["detail"]
    docker = run("scan", str(SAMPLES / "clean.docker.tar"), "--json", "-", "--expect", "sha256:" + "1" * 64)
    assert "only the image ID" in docker.stdout.decode()


def test_unsafe_and_duplicate_outer_entries(tmp_path):
    oci = Oci(extra_members=[M("../../evil", b"x"), M("index.json", b'{"schemaVersion":2,"manifests":[]}')])
    r = analyze(write(tmp_path, oci.tar()))
    assert {"archive.unsafe-path", "archive.duplicate-entry"} <= codes(r)


def test_layer_level_unsafe_paths(tmp_path):
    tar = tar_bytes(
        [
            M("srv/", type="dir"),
            M("srv/out", type="symlink", link="../../../../tmp"),
            M("srv/out/x.sh", b"#!/bin/sh\n"),
            M("../../evil", b"x"),
        ]
    )
    r = analyze(write(tmp_path, Oci(layers=[Layer.of(tar)]).tar()))
    paths = sorted(f.path for f in r.findings if f.code == "archive.unsafe-path")
    assert paths == ["../../evil", "/srv/out", "/srv/out/x.sh"]


def test_malformed_and_unknown_format_exit_codes(tmp_path):
    bad_json = Oci(config_bytes=b"{not json")
    cp = run("scan", write(tmp_path, bad_json.tar()), "--json", "-", "-q")
    assert cp.returncode == 1
    assert any(f["code"] == "archive.malformed" for f in json.loads(cp.stdout)["findings"])
    export = tar_bytes([M("etc/", type="dir"), M("etc/passwd", b"root:x:0:0\n")])
    cp = run("scan", write(tmp_path, export, "export.tar"), "--json", "-")
    # Not evidence of tampering: exit 2 and one line on stderr; the JSON asked for still says why.
    assert cp.returncode == 2 and json.loads(cp.stdout)["verdict"] == "unreadable"
    assert cp.stderr.decode().count("\n") == 1 and "not an image archive" in cp.stderr.decode()
    assert analyze(str(tmp_path / "export.tar")).findings[0].code == "archive.unknown-format"  # the API keeps it
    cp = run("scan", str(tmp_path / "nope.tar"))
    assert cp.returncode == 2 and cp.stderr.decode().count("\n") == 1 and b"Traceback" not in cp.stderr


def test_fail_on_threshold():
    forged = str(SAMPLES / "relay-forged.oci.tar")
    assert run("scan", forged, "-q").returncode == 1
    assert run("scan", forged, "-q", "--fail-on", "critical").returncode == 1  # binary-replaced is critical
    assert run("scan", forged, "-q", "--fail-on", "never").returncode == 0
    assert run("scan", str(SAMPLES / "relay-genuine.oci.tar"), "-q", "--fail-on", "info").returncode == 0


def test_schema_and_help():
    cp = run("schema")
    schema = json.loads(cp.stdout)
    assert {"findings", "images", "blobs", "input", "format"} <= set(schema["properties"])
    help_text = run("scan", "--help").stdout.decode()
    assert "Exit codes" in help_text and "--expect" in help_text


def test_terminal_summary_leads_with_the_verdict():
    cp = run("scan", str(SAMPLES / "relay-forged.oci.tar"))
    out = cp.stdout.decode()
    assert out.startswith("TAMPERED")
    assert out.index("CRITICAL") < out.index("HIGH") < out.index("Image 0")


def test_fast_file_entry_equals_the_validated_one():
    from pydantic import TypeAdapter

    from forensics.archive.layerfs import member_entry, pack, unpack
    from forensics.models import FileEntry

    unsafe: list = []
    fast = member_entry("./usr/bin/tool", "file", 0o4755, 0, 0, 12, 1.5e9, "", "ab" * 32, "elf", unsafe)
    ta = TypeAdapter(FileEntry)
    slow = ta.validate_python(
        {
            "path": "/usr/bin/tool",
            "type": "file",
            "mode": 0o4755,
            "uid": 0,
            "gid": 0,
            "size": 12,
            "mtime": 1.5e9,
            "link": None,
            "sha256": "ab" * 32,
            "kind": "elf",
            "raw_name": "./usr/bin/tool",
        }
    )
    assert fast == slow and ta.dump_json(fast) == ta.dump_json(slow) and not unsafe
    assert unpack(pack([fast])) == [fast]
    with pytest.raises(ValueError):  # the report's schema still refuses what it did
        ta.validate_python({**ta.dump_python(slow), "extra": 1})


def test_packed_entries_come_back_equal_with_modes_and_mtimes_shared():
    import pickle

    from forensics.archive.layerfs import member_entry, pack, unpack

    unsafe: list = []
    files = [
        member_entry(f"./etc/f{i}", "file", 0o644, 0, 0, i, 1_700_000_000, "", f"{i:064x}", "data", unsafe)
        for i in range(3)
    ]
    files.append(member_entry("./etc/pax", "file", 0o644, 0, 0, 1, 1_700_000_000.5, "", None, None, unsafe))
    files.append(member_entry("./etc/one", "file", 0o644, 0, 0, 1, 1.0, "", None, None, unsafe))  # 1.0 == 1
    back = unpack(pickle.loads(pickle.dumps(pack(files))))  # as a worker's result crosses to the parent
    assert back == files
    assert [type(f.mtime) for f in back] == [int, int, int, float, float]  # the JSON tells 1 from 1.0
    assert back[0].mode is back[1].mode is back[4].mode and back[0].mtime is back[2].mtime


def test_diff_schema_is_printed():
    cp = run("schema", "--diff")
    schema = json.loads(cp.stdout)
    assert cp.returncode == 0 and "history" in schema["properties"]
