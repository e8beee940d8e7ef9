"""Tests for samples/make_samples.py and the committed sample images.

The verification helpers here deliberately re-derive everything from the
archive bytes with tarfile/hashlib/gzip/zstandard instead of importing the
generator, so a bug in the generator cannot vouch for itself.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
GENERATOR = SAMPLES_DIR / "make_samples.py"

SAMPLES = {  # truth-file stem -> archive name
    "clean": "clean.docker.tar",
    "clean-zstd": "clean-zstd.oci.tar",
    "relay-genuine": "relay-genuine.oci.tar",
    "relay-forged": "relay-forged.oci.tar",
}
GENERATED_FILES = sorted(list(SAMPLES.values()) + [f"{n}.truth.json" for n in SAMPLES] + ["README.md"])
LAYER_MEDIA_TYPES = {
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def run_generator(out: Path) -> None:
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, Path]:
    first = tmp_path_factory.mktemp("gen1")
    second = tmp_path_factory.mktemp("gen2")
    run_generator(first)
    run_generator(second)
    return first, second


# --------------------------------------------------------------------------
# Independent readers
# --------------------------------------------------------------------------


def read_outer(path: Path) -> tuple[list[str], dict[str, bytes]]:
    """Member names in archive order, and the regular files' contents."""
    names, files = [], {}
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            names.append(member.name)
            if member.isfile():
                files[member.name] = tar.extractfile(member).read()
    return names, files


def check_tar_trailer(data: bytes) -> None:
    assert len(data) % 512 == 0
    assert data.endswith(bytes(1024))


def layer_members(tar_bytes: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    check_tar_trailer(tar_bytes)
    out = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        assert tar.format in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT)
        for member in tar:
            assert not member.name.startswith("/"), member.name
            assert member.name not in out, f"duplicate {member.name}"
            assert member.uname == "" and member.gname == ""
            data = tar.extractfile(member).read() if member.isfile() else b""
            out[member.name] = (member, data)
    return out


def decompress(blob: bytes, compression: str) -> bytes:
    if compression == "gzip":
        assert blob[:2] == b"\x1f\x8b"
        return gzip.decompress(blob)
    if compression == "zstd":
        assert blob[:4] == b"\x28\xb5\x2f\xfd"
        return zstandard.ZstdDecompressor().decompress(blob)
    return blob


def parse_time(ts: str) -> int:
    return int(dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp())


def load_image(path: Path) -> dict:
    """Verify every digest in an archive; return what the tests need."""
    names, files = read_outer(path)
    check_tar_trailer(path.read_bytes())
    if "oci-layout" in files:
        return load_oci(names, files)
    return load_docker(names, files)


def load_oci(names: list[str], files: dict[str, bytes]) -> dict:
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert names[-1] == "index.json"
    assert "blobs" in names and "blobs/sha256" in names
    for name, data in files.items():  # every blob is content-addressed
        if name.startswith("blobs/sha256/"):
            assert sha256(data) == "sha256:" + name.rsplit("/", 1)[1]

    def blob(desc: dict) -> bytes:
        data = files["blobs/sha256/" + desc["digest"].removeprefix("sha256:")]
        assert len(data) == desc["size"] and sha256(data) == desc["digest"]
        return data

    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    [mdesc] = index["manifests"]
    assert mdesc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    manifest = json.loads(blob(mdesc))
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == mdesc["mediaType"]
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    config_bytes = blob(manifest["config"])
    config = json.loads(config_bytes)
    layers, tars = [], []
    for desc in manifest["layers"]:
        compression = LAYER_MEDIA_TYPES[desc["mediaType"]]
        data = blob(desc)
        tar_bytes = decompress(data, compression)
        tars.append(tar_bytes)
        layers.append(
            {
                "digest": desc["digest"],
                "size": desc["size"],
                "media_type": desc["mediaType"],
                "compression": compression,
                "diff_id": sha256(tar_bytes),
                "path": "blobs/sha256/" + desc["digest"].removeprefix("sha256:"),
            }
        )
    return {
        "format": "oci-archive",
        "refs": [mdesc["annotations"]["org.opencontainers.image.ref.name"]],
        "manifest_digest": mdesc["digest"],
        "config_digest": sha256(config_bytes),
        "config": config,
        "layers": layers,
        "tars": tars,
    }


def load_docker(names: list[str], files: dict[str, bytes]) -> dict:
    [entry] = json.loads(files["manifest.json"])
    config_bytes = files[entry["Config"]]
    assert entry["Config"] == hashlib.sha256(config_bytes).hexdigest() + ".json"
    config = json.loads(config_bytes)
    layers, tars = [], []
    parent = None
    for layer_path in entry["Layers"]:
        v1id, leaf = layer_path.split("/")
        assert leaf == "layer.tar" and v1id in names  # directory entry present
        assert files[f"{v1id}/VERSION"] == b"1.0"
        v1 = json.loads(files[f"{v1id}/json"])
        assert v1["id"] == v1id and v1.get("parent") == parent and v1["created"]
        parent = v1id
        tar_bytes = files[layer_path]
        tars.append(tar_bytes)
        layers.append(
            {
                "digest": sha256(tar_bytes),
                "size": len(tar_bytes),
                "media_type": None,
                "compression": "none",
                "diff_id": sha256(tar_bytes),
                "path": layer_path,
            }
        )
    [ref] = entry["RepoTags"]
    repo, tag = ref.rsplit(":", 1)
    assert json.loads(files["repositories"]) == {repo: {tag: parent}}
    return {
        "format": "docker-archive",
        "refs": entry["RepoTags"],
        "manifest_digest": None,
        "config_digest": sha256(config_bytes),
        "config": config,
        "layers": layers,
        "tars": tars,
    }


def truth(name: str) -> dict:
    return json.loads((SAMPLES_DIR / f"{name}.truth.json").read_text())


# --------------------------------------------------------------------------
# Reproducibility
# --------------------------------------------------------------------------


def test_generator_is_reproducible(generated):
    first, second = generated
    assert sorted(p.name for p in first.iterdir()) == GENERATED_FILES
    for name in GENERATED_FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_committed_samples_match_generator(generated):
    first, _ = generated
    for name in GENERATED_FILES:
        committed = SAMPLES_DIR / name
        assert committed.exists(), f"{name} not committed; run samples/make_samples.py"
        assert committed.read_bytes() == (first / name).read_bytes(), (
            f"samples/{name} drifted from the generator; rerun samples/make_samples.py"
        )


def test_samples_are_small():
    total = sum((SAMPLES_DIR / a).stat().st_size for a in SAMPLES.values())
    assert total < 1_500_000


# --------------------------------------------------------------------------
# Independent verification of each sample
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_digests_and_truth(name):
    path = SAMPLES_DIR / SAMPLES[name]
    image = load_image(path)
    t = truth(name)
    config = image["config"]

    assert config["rootfs"]["type"] == "layers"
    assert config["rootfs"]["diff_ids"] == [layer["diff_id"] for layer in image["layers"]]
    history = config["history"]
    assert sum(not h.get("empty_layer", False) for h in history) == len(image["layers"])
    assert config["created"] == history[-1]["created"]

    assert t["archive"] == SAMPLES[name]
    assert t["archive_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert t["archive_size"] == path.stat().st_size
    for key in ("format", "refs", "manifest_digest", "config_digest", "layers"):
        assert t[key] == image[key], key
    assert t["history"] == [
        {"created": h["created"], "created_by": h["created_by"], "empty_layer": h.get("empty_layer", False)}
        for h in history
    ]
    assert (t["tamper"] is not None) == (name == "relay-forged")

    # Layer tars: well formed and no mtime after the step that made them.
    layer_steps = [h for h in history if not h.get("empty_layer", False)]
    for tar_bytes, step in zip(image["tars"], layer_steps):
        for member, _ in layer_members(tar_bytes).values():
            assert member.mtime <= parse_time(step["created"]), member.name


def test_base_layer_dpkg_database():
    image = load_image(SAMPLES_DIR / SAMPLES["relay-genuine"])
    base = layer_members(image["tars"][0])
    busybox = base["bin/busybox"][1]
    assert busybox.startswith(b"\x7fELF\x02\x01\x01")
    assert base["bin/sh"][0].issym() and base["bin/sh"][0].linkname == "busybox"
    assert b"Status: install ok installed\n" in base["var/lib/dpkg/status"][1]
    assert base["var/lib/dpkg/info/busybox.list"][1].split() == [b"/.", b"/bin", b"/bin/busybox"]
    md5 = hashlib.md5(busybox).hexdigest()
    assert base["var/lib/dpkg/info/busybox.md5sums"][1] == f"{md5}  bin/busybox\n".encode()


def test_forged_matches_genuine_history_but_not_layer_2():
    genuine = load_image(SAMPLES_DIR / SAMPLES["relay-genuine"])
    forged = load_image(SAMPLES_DIR / SAMPLES["relay-forged"])
    g_hist, f_hist = genuine["config"]["history"], forged["config"]["history"]
    assert [h["created_by"] for h in g_hist] == [h["created_by"] for h in f_hist]
    assert [h["created"] for h in g_hist] == [h["created"] for h in f_hist]
    g_ids = genuine["config"]["rootfs"]["diff_ids"]
    f_ids = forged["config"]["rootfs"]["diff_ids"]
    assert g_ids[:2] == f_ids[:2]
    assert g_ids[2] != f_ids[2]
    assert genuine["refs"] == forged["refs"] == ["sample/relay:5.2"]


def test_forged_layer_contents_match_tamper_truth():
    genuine = load_image(SAMPLES_DIR / SAMPLES["relay-genuine"])
    forged = load_image(SAMPLES_DIR / SAMPLES["relay-forged"])
    tamper = truth("relay-forged")["tamper"]
    assert (tamper["history"], tamper["layer"]) == (3, 2)
    assert "adduser" in forged["config"]["history"][3]["created_by"]

    g_layer = layer_members(genuine["tars"][2])
    f_layer = layer_members(forged["tars"][2])
    real_relayd = layer_members(genuine["tars"][1])["usr/local/bin/relayd"][1]
    assert real_relayd.startswith(b"\x7fELF")

    wrapper = f_layer["usr/local/bin/relayd"][1]
    assert wrapper.startswith(b"#!/bin/sh\n") and b"/usr/local/lib/relayd.real" in wrapper
    assert f_layer["usr/local/lib/relayd.real"][1] == real_relayd
    assert f_layer["etc/crontabs/root"][1].strip()
    assert tamper["binary_replaced"] == "/usr/local/bin/relayd"
    assert tamper["persistence"] == "/etc/crontabs/root"

    # Recompute the unexplained paths: entries that differ from the genuine
    # layer, minus directories that already exist in lower layers.
    lower = {n for tar_bytes in forged["tars"][:2] for n in layer_members(tar_bytes)}

    def key(member, data):
        return (member.type, member.mode, member.uid, member.gid, member.mtime, member.linkname, data)

    unexplained = sorted(
        "/" + n + ("/" if m.isdir() else "")
        for n, (m, data) in f_layer.items()
        if (n not in g_layer or key(*g_layer[n]) != key(m, data)) and not (m.isdir() and n in lower)
    )
    assert unexplained == tamper["unexplained_paths"]
    assert {"/usr/local/bin/relayd", "/etc/crontabs/root", "/usr/local/lib/relayd.real"} <= set(unexplained)
    # The genuine step's own output is untouched in the forged layer.
    for n, (m, data) in g_layer.items():
        assert key(*f_layer[n]) == key(m, data), n
