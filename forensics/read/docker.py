"""The legacy docker-archive of `docker save` (<= 24) and its peers: manifest.json lists,
per image, a config path and layer paths (`<v1id>/layer.tar`, `<diffid>.tar`, ...).

Paths are followed through the archive's own symlinks (skopeo links `<v1id>/layer.tar`
to `<diffid>.tar`); a content-addressed name declares a digest, a `<v1id>` one does not.
"""

from __future__ import annotations

import posixpath
import re

from forensics.findings import Code, finding
from forensics.paths import norm_outer
from forensics.read.builder import Builder
from forensics.read.documents import load_json
from forensics.read.model import Archive, Descriptor, Digest, LayerRef, Resolved, ResolvedImage

RAISES: tuple[Code, ...] = ("archive.malformed",)

NAMED_RE = re.compile(r"(?:^|/)(?:sha256:)?([a-f0-9]{64})(?:\.json|\.tar)?$")


def detect(archive: Archive) -> bool:
    return archive.get("manifest.json") is not None and archive.get("index.json") is None


def read(archive: Archive) -> Resolved:
    b = Builder(archive, "docker-archive")
    read_manifest_json(b, link_to_oci=False)
    return b.done()


def read_manifest_json(b: Builder, link_to_oci: bool) -> None:
    entry = b.archive.get("manifest.json")
    doc = load_json(entry, "manifest.json", b.out)
    if doc is None:
        if entry is not None and entry.data is not None and entry.data.strip() == b"null":
            b.out.append(
                finding(
                    "archive.malformed",
                    "high",
                    "manifest.json",
                    "manifest.json holds null: it lists no image",
                    entry="manifest.json",
                )
            )
        return
    if not isinstance(doc, list):
        b.out.append(
            finding(
                "archive.malformed",
                "high",
                "manifest.json",
                f"manifest.json is a JSON {type(doc).__name__}, not the list of images it must be",
                entry="manifest.json",
            )
        )
        return
    b.res.manifest_json = doc
    oci_images = {img.config.digest: img for img in b.res.images if img.config is not None}
    for i, item in enumerate(doc):
        where = f"manifest.json[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
            b.out.append(
                finding("archive.malformed", "high", where, f"{where} has no Config path", entry="manifest.json")
            )
            continue
        tags = (
            [t for t in item.get("RepoTags") or [] if isinstance(t, str)]
            if isinstance(item.get("RepoTags"), list)
            else []
        )
        config_path = item["Config"]
        cd = _docker_blob(b, config_path, f"{where} Config")
        cd.role = "config"
        img_oci = oci_images.get(cd.digest) if link_to_oci and cd.digest else None
        if img_oci is not None:
            img_oci.repo_tags = tags  # the same image seen through both layouts
            continue
        img = ResolvedImage(index=0, source="docker", refs=list(tags), config=cd, repo_tags=tags)
        if cd.entry is not None:
            img.config_doc = b.config(cd.entry, cd.digest)
        layer_paths = lp_raw if isinstance(lp_raw := item.get("Layers"), list) else []
        for j, lp in enumerate(layer_paths):
            if not isinstance(lp, str):
                b.out.append(
                    finding(
                        "archive.malformed",
                        "high",
                        f"{where} Layers[{j}]",
                        "layer path is not a string",
                        entry="manifest.json",
                    )
                )
                continue
            ld = _docker_blob(b, lp, f"{where} Layers[{j}]")
            ld.role = "layer"
            img.layers.append(LayerRef(index=len(img.layers), descriptor=ld))
        b.finish_image(img, None)
        b.res.images.append(img)


def _docker_blob(b: Builder, path: str, where: str) -> Descriptor:
    """A manifest.json path as a descriptor: the digest comes from the name where it
    is content-addressed (`<hex>.json`, `blobs/sha256/<hex>`), else from the bytes."""
    norm, unsafe = norm_outer(path)
    entry, resolved = (None, norm) if unsafe else b.archive.follow(norm)
    b.res.referenced.add(norm)
    if unsafe:
        b.res.unsafe_refs.append((where, path))
    if entry is not None:
        b.res.referenced.add(resolved)
        # the legacy layout's sibling files belong to the same layer directory
        base_dir = posixpath.dirname(norm)
        if base_dir and posixpath.basename(norm) == "layer.tar":
            for sib in ("json", "VERSION"):
                b.res.referenced.add(f"{base_dir}/{sib}")
    d = Descriptor(where=where, media_type=None, digest=None, size=None, path=norm, entry=entry)
    # Content-addressed names (<hex>.json, <diffid>.tar, blobs/sha256/<hex>, ggcr's
    # sha256:<hex>) declare a digest; `<v1id>/layer.tar` declares none.
    m = NAMED_RE.search(resolved if entry is not None else norm)
    if m:
        d.digest = Digest.of_hex(m.group(1))
        d.annotations["digest-source"] = "name"
    elif entry is not None and entry.digest:
        d.digest = entry.digest
        d.annotations["digest-source"] = "computed"
    return d
