"""`forensics extract`: the bytes of one path from a layer or the merged filesystem, with
their manifest; hostile names never escape DIR, links are never followed, nothing is
overwritten."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import CORPUS, SAMPLES
from exportutil import HOSTILE_NAMES, hostile_image, layer_members, md5, sha256, truth_layers
from typer.testing import CliRunner

from forensics import __version__
from forensics.cli import app
from forensics.export.extract import MANIFEST, file_name

FORGED = SAMPLES / "relay-forged.oci.tar"
runner = CliRunner()


def extract(archive: Path, path: str, dest: Path, *extra: str, code: int = 0):
    res = runner.invoke(app, ["extract", str(archive), path, "-o", str(dest), *extra])
    assert res.exit_code == code, res.output
    return res


def read_out(dest: Path) -> tuple[dict, bytes | None]:
    manifest = json.loads((dest / MANIFEST).read_text())
    data = (dest / manifest["file"]).read_bytes() if manifest["file"] else None
    assert set(os.listdir(dest)) == {MANIFEST} | ({manifest["file"]} if manifest["file"] else set())
    return manifest, data


def test_merged_and_layer_extracts_are_the_tar_members(tmp_path):
    truth = json.loads((SAMPLES / "relay-forged.truth.json").read_text())
    blobs = truth_layers(FORGED)
    extract(FORGED, "/usr/local/bin/relayd", tmp_path / "merged", "--case", "IR-7", "--examiner", "J. Doe")
    manifest, data = read_out(tmp_path / "merged")
    member = layer_members(FORGED, blobs[2])["usr/local/bin/relayd"]
    assert data == member[1] and data.startswith(b"#!/bin/sh")  # the wrapper: what the merged view shows
    assert (manifest["sha256"], manifest["md5"], manifest["size"]) == (sha256(data), md5(data), len(data))
    assert manifest["layer"] == {
        "index": 2,
        "digest": truth["layers"][2]["digest"],
        "diff_id": truth["layers"][2]["diff_id"],
        "history": 3,
    }
    assert (manifest["mode"], manifest["uid"], manifest["gid"]) == (f"{member[0].mode:04o}", 0, 0)
    assert manifest["mtime_epoch"] == member[0].mtime and "build metadata" in manifest["note"]
    assert manifest["input"]["sha256"] == "sha256:" + truth["archive_sha256"]
    assert manifest["tool"] == {"name": "forensics", "version": __version__}
    assert (manifest["case"]["case"], manifest["case"]["examiner"]) == ("IR-7", "J. Doe")
    assert manifest["source"] == "merged" and manifest["image"]["manifest_digest"] == truth["manifest_digest"]
    assert not os.stat(tmp_path / "merged" / manifest["file"]).st_mode & 0o7333  # read-only, never executable

    extract(FORGED, "usr/local/bin/relayd", tmp_path / "layer1", "--layer", "1", "-q")
    manifest, data = read_out(tmp_path / "layer1")
    assert data == layer_members(FORGED, blobs[1])["usr/local/bin/relayd"][1]  # the original ELF
    assert data[:4] == b"\x7fELF" and manifest["layer"]["index"] == 1 and manifest["source"] == "layer"


def test_never_overwrites(tmp_path):
    dest = tmp_path / "ev"
    extract(FORGED, "/etc/shadow", dest, "-q")
    before = {n: (dest / n).read_bytes() for n in os.listdir(dest)}
    res = extract(FORGED, "/etc/shadow", dest, "-q", code=2)
    assert "never overwrites" in res.output
    res = extract(FORGED, "/etc/passwd", dest, "-q", code=2)  # manifest.json is taken
    assert "manifest.json exists" in res.output
    assert {n: (dest / n).read_bytes() for n in os.listdir(dest)} == before


def test_missing_paths_and_directories_say_where_to_look(tmp_path):
    res = extract(FORGED, "/usr/local/lib/relayd.real", tmp_path / "a", "--layer", "1", code=2)
    assert "layer 1 holds no /usr/local/lib/relayd.real (layers holding it: 2)" in res.output
    res = extract(FORGED, "/usr/local/bin", tmp_path / "b", code=2)
    assert "is a directory" in res.output
    res = extract(FORGED, "../../etc/passwd", tmp_path / "c", code=2)
    assert "climbs above" in res.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_hostile_names_never_escape_dir(tmp_path):
    archive = hostile_image(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    outside = set(os.listdir(tmp_path))
    for key, name in HOSTILE_NAMES.items():
        dest = work / key
        extract(archive, "/" + name, dest, "-q")
        manifest, data = read_out(dest)
        assert manifest["path"] == "/" + name and data == f"{key}\n".encode()
        assert "/" not in manifest["file"] and not manifest["file"].startswith(".")
        assert all(32 < ord(c) < 127 and c != "|" for c in manifest["file"])
    # a symlink out of the root is recorded, never followed: no content file
    res = extract(archive, "/srv/out", work / "link")
    assert "no content file (symlink)" in res.output and "sha256:None" not in res.output  # no digest to show
    manifest, data = read_out(work / "link")
    assert data is None and manifest["type"] == "symlink" and manifest["link"] == "../../../../../../etc/passwd"
    assert manifest["sha256"] is None and "never followed" in manifest["note"]
    # a hardlink gives its target's bytes from the same layer
    extract(archive, "/srv/hard", work / "hard", "-q")
    manifest, data = read_out(work / "hard")
    assert data == b"pipe\n" and manifest["content_member"] == "/" + HOSTILE_NAMES["pipe"]
    # an absolute member name is a path of the image like any other, written under DIR
    extract(archive, "/srv/abs", work / "abs", "-q")
    manifest, data = read_out(work / "abs")
    assert data == b"absolute\n" and manifest["path"] == "/srv/abs"
    # an entry whose own name climbs out cannot even be asked for
    extract(archive, "../../escaped", work / "esc", code=2)
    assert set(os.listdir(tmp_path)) == outside  # nothing appeared beside the work folder
    written = {p.relative_to(work) for p in work.rglob("*")}
    assert all(len(p.parts) <= 2 for p in written)


def test_file_names_are_fixed_and_distinct():
    names = {file_name(p) for p in ("/a b", "/a_b", "/a|b", "/a\nb", "/../x", "/.hidden", "/manifest.json")}
    assert len(names) == 7 and MANIFEST not in names
    assert all("/" not in n and not n.startswith(".") for n in names)
    assert file_name("/usr/local/bin/relayd").startswith("usr_local_bin_relayd.")


@pytest.mark.parametrize("rel", ["clean/lantern-skopeo.docker.tar"])
def test_corpus_hardlink_and_unicode_entries(tmp_path, rel):
    sample = CORPUS / rel
    if not sample.exists():
        pytest.skip(f"corpus sample {rel} not found")
    blobs = truth_layers(sample)
    for n, blob in enumerate(blobs):
        members = layer_members(sample, blob)
        links = [(name, ti) for name, (ti, _) in members.items() if ti.islnk()]
        if not links:
            continue
        name, ti = links[0]
        target = members[ti.linkname.lstrip("./").lstrip("/")][1]
        dest = tmp_path / f"l{n}"
        extract(sample, "/" + name, dest, "--layer", str(n), "-q")
        manifest, data = read_out(dest)
        assert data == target and manifest["sha256"] == sha256(target) and manifest["type"] == "hardlink"
        return
    pytest.skip("no hardlink in this sample")


def test_refuses_stdin_and_the_input_directory(tmp_path):
    res = extract(Path("-"), "/etc/shadow", tmp_path / "x", code=2)
    assert "not stdin" in res.output
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    res = extract(layout, "/etc/shadow", layout / "ev", code=2)
    assert "inside the input directory" in res.output and not (layout / "ev").exists()
