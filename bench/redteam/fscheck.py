"""What an extracted archive's merged filesystem holds at a few paths: used to
check that each truth's poisoned paths really differ from the clean image."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path


def _layers(root: Path) -> list[Path]:
    if (root / "index.json").exists():
        index = json.loads((root / "index.json").read_text())
        d = index["manifests"][0]["digest"].split(":", 1)
        man = json.loads((root / "blobs" / d[0] / d[1]).read_bytes())
        return [root / "blobs" / ly["digest"].split(":")[0] / ly["digest"].split(":")[1] for ly in man["layers"]]
    man = json.loads((root / "manifest.json").read_text())
    return [root / p for p in man[0]["Layers"]]


def state(root: Path, paths: set[str]) -> dict[str, tuple | None]:
    """path -> (type, mode, uid, gid, sha256 or link target) in the final filesystem, None if absent."""
    want = {p.strip("/") for p in paths}
    out: dict[str, tuple | None] = {p: None for p in want}
    for layer in _layers(root):
        with tarfile.open(layer, "r|*") as tf:
            for m in tf:
                name = m.name.lstrip("./").rstrip("/")
                base = name.rsplit("/", 1)[-1]
                if base.startswith(".wh."):
                    parent = name.rsplit("/", 1)[0] if "/" in name else ""
                    gone = base[4:]
                    for p in want:
                        if (
                            gone == ".wh..opq"
                            and p.startswith(parent + "/")
                            or p == (f"{parent}/{gone}" if parent else gone)
                        ):
                            out[p] = None
                    continue
                if name not in want:
                    continue
                if m.isfile():
                    digest = hashlib.sha256(tf.extractfile(m).read()).hexdigest()
                    out[name] = ("file", m.mode, m.uid, m.gid, digest)
                elif m.issym():
                    out[name] = ("symlink", m.mode, m.uid, m.gid, m.linkname)
                else:
                    out[name] = (str(m.type), m.mode, m.uid, m.gid, m.linkname)
    return {"/" + k: v for k, v in out.items()}
