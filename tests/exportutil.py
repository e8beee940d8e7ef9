"""Helpers of the export tests: the layers of an archive read with the standard library
only (tarfile, gzip, zstandard), never with the package under test, and a hostile image."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import zstandard
from hostile import M, image_tar

HISTORY = [
    {"created": "2023-11-14T22:13:20Z", "created_by": "/bin/sh -c #(nop) ADD file:base in /"},
    {"created": "2023-11-14T22:14:00.123456789Z", "created_by": "/bin/sh -c echo 'x|y\nforged|line' > /w"},
]


def layer_members(archive: Path, blob: str) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    """name (as stored, `./` and `/` stripped) -> (header, bytes) of one layer blob of a tar archive."""
    with tarfile.open(archive) as outer:
        raw = outer.extractfile(blob).read()  # type: ignore[union-attr]
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    elif raw[:4] == b"\x28\xb5\x2f\xfd":
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    out: dict[str, tuple[tarfile.TarInfo, bytes]] = {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        for m in t.getmembers():
            data = t.extractfile(m).read() if m.isfile() else b""  # type: ignore[union-attr]
            out[m.name.lstrip("./").lstrip("/")] = (m, data)
    return out


def truth_layers(sample: Path) -> list[str]:
    """The blob paths of a sample's layers, from its truth file (samples/) or expected file (corpus)."""
    for cand in (sample.with_suffix("").with_suffix(".truth.json"), Path(str(sample) + ".expected.json")):
        if cand.exists():
            doc = json.loads(cand.read_text())
            layers = doc.get("layers") or doc["images"][0]["layers"]
            return [layer.get("path") or layer["path_in_archive"] for layer in layers]
    raise FileNotFoundError(sample)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


HOSTILE_NAMES = {
    "pipe": "srv/a|b",
    "newline": "srv/x\ny",
    "percent": "srv/%41%7C",
    "escape": "srv/\x1b]0;owned\x07",
}


def hostile_image(tmp_path: Path) -> Path:
    """Two layers whose names try to forge fields and lines, climb out, and link out."""
    base = [M("srv/", type="dir"), M("srv/plain", b"plain\n")]
    evil = [
        M(HOSTILE_NAMES["pipe"], b"pipe\n"),
        M(HOSTILE_NAMES["newline"], b"newline\n"),
        M(HOSTILE_NAMES["percent"], b"percent\n"),
        M(HOSTILE_NAMES["escape"], b"escape\n"),
        M("../../escaped", b"climbs out\n"),
        M("/srv/abs", b"absolute\n"),  # an absolute member name: stays inside the image's root
        M("srv/out", type="symlink", link="../../../../../../etc/passwd"),
        M("srv/hard", type="hardlink", link="srv/a|b"),
    ]
    return image_tar(tmp_path, [base, evil], HISTORY, name="hostile.tar")
