"""blob.* findings: every blob against its name and every descriptor pointing at it."""

from __future__ import annotations

import json
import posixpath

from forensics.archive.resolve import Descriptor, Resolved
from forensics.archive.scan import Inventory, OuterEntry
from forensics.findings import finding
from forensics.models import Finding

LAYER_COMPRESSION = {
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar": "none",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar": "none",
}
SNIFF_AS_COMPRESSION = {"gzip": "gzip", "zstd": "zstd", "tar": "none", "bzip2": "bzip2", "xz": "xz"}
# Files of the docker-save layouts that no descriptor names but that belong there.
DOCKER_METADATA = {"manifest.json", "repositories", "index.json", "oci-layout", "VERSION"}


def _digest_of(e: OuterEntry) -> str | None:
    return "sha256:" + e.sha256 if e.sha256 else None


def _is_foreign(d: Descriptor) -> bool:
    return bool(d.urls) or (d.media_type or "").find("foreign") >= 0 or "nondistributable" in (d.media_type or "")


def check_descriptor(d: Descriptor, role: str, *, image: int | None = None, layer: int | None = None) -> list[Finding]:
    out: list[Finding] = []
    where = dict(image=image, layer=layer, digest=d.digest)
    if not d.valid:
        return out  # resolve already reported the invalid digest
    e = d.entry
    if e is None and d.digest is None:  # a docker-save path that names nothing
        out.append(finding("blob.missing", "high", d.path or d.where,
                           f"{role} {d.path!r} named by {d.where} is not in the archive", entry=d.path,
                           image=image, layer=layer))
        return out
    if e is None:
        if _is_foreign(d):
            sev, why = "low", "a foreign/non-distributable layer, absent by design (urls: " + ", ".join(d.urls[:2]) + ")"
        else:
            sev, why = "high", "the archive does not hold it, so it cannot be verified"
        out.append(finding("blob.missing", sev, d.digest,
                           f"{role} {d.digest} named by {d.where} is missing at {d.path}: {why}",
                           entry=d.path, **where))
        return out
    actual = _digest_of(e)
    named_by = d.annotations.get("digest-source", "descriptor")
    if actual and actual != d.digest and named_by != "diffid-name" and not d.path.endswith(".tar"):
        source = "its file name" if named_by == "name" else d.where
        out.append(finding("blob.digest-mismatch", "critical", d.digest,
                           f"{role} {e.name}: sha256 of its {e.nbytes} bytes is {actual}, but {source} says {d.digest}",
                           entry=e.name, evidence={"declared": d.digest, "actual": actual}, **where))
    if d.size is not None and d.size != e.nbytes:
        out.append(finding("blob.size-mismatch", "high", d.digest,
                           f"{role} {e.name}: {d.where} declares size {d.size}, the blob has {e.nbytes} bytes",
                           entry=e.name, evidence={"declared": d.size, "actual": e.nbytes}, **where))
    if d.data is not None:
        import base64
        import hashlib
        try:
            raw = base64.b64decode(d.data, validate=True)
            if "sha256:" + hashlib.sha256(raw).hexdigest() != d.digest:
                out.append(finding("blob.digest-mismatch", "high", d.digest,
                                   f"the embedded data of {d.where} does not hash to its digest", **where))
        except ValueError:
            pass
    return out


def check_media_type(d: Descriptor, role: str, *, image: int, layer: int | None = None) -> list[Finding]:
    e = d.entry
    if e is None or d.media_type is None:
        return []
    if role == "layer":
        declared = LAYER_COMPRESSION.get(d.media_type)
        actual = SNIFF_AS_COMPRESSION.get(e.sniffed or "", e.sniffed)
        if declared is not None and actual != declared:
            return [finding("blob.media-type-mismatch", "medium", d.digest,
                            f"layer {layer} is declared {d.media_type} ({declared}) but its bytes are {actual}",
                            image=image, layer=layer, digest=d.digest, entry=e.name,
                            evidence={"declared": declared, "actual": actual})]
    return []


def _looks_like_v1_json(e: OuterEntry) -> bool:
    if e.data is None:
        return False
    try:
        doc = json.loads(e.data)
    except (ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and "id" in doc and ("parent" in doc or "container_config" in doc or "config" in doc)


def check_unreferenced(inv: Inventory, res: Resolved) -> list[Finding]:
    out: list[Finding] = []
    for e in inv.entries:
        if e.type != "file" or e.path in res.referenced:
            continue
        base = posixpath.basename(e.path)
        if e.path in DOCKER_METADATA or base in ("json", "VERSION") and res.format.startswith("docker"):
            continue
        under_blobs = e.path.startswith("blobs/")
        if not under_blobs and not res.format.startswith("docker"):
            continue  # stray files beside an OCI layout are not blobs
        what = {"gzip": "gzip tar", "zstd": "zstd tar", "tar": "tar"}.get(e.sniffed or "", e.sniffed or "data")
        if e.layer is not None:
            sev, note = "medium", "a layer that no image uses: content can hide here"
        elif _looks_like_v1_json(e):
            sev, note = "info", "a legacy v1 image JSON (Docker 25+ writes one per layer)"
        else:
            sev, note = "low", "nothing in the archive refers to it"
        digest = _digest_of(e)
        out.append(finding("blob.unreferenced", sev, digest or e.name,
                           f"{e.name} ({e.nbytes} bytes, {what}) is referenced by nothing: {note}",
                           digest=digest, entry=e.name))
    return out


def check_blob_names(inv: Inventory, res: Resolved) -> list[Finding]:
    """Every blobs/<alg>/<hex> must hash to its name; referenced ones were checked
    against their descriptors already (with the image and layer they belong to)."""
    out: list[Finding] = []
    for e in inv.entries:
        if e.type != "file" or not e.path.startswith("blobs/sha256/") or e.path in res.referenced:
            continue
        named = "sha256:" + posixpath.basename(e.path)
        actual = _digest_of(e)
        if actual and actual != named:
            out.append(finding("blob.digest-mismatch", "critical", named,
                               f"{e.name}: sha256 of its {e.nbytes} bytes is {actual}, not the digest its name declares",
                               entry=e.name, digest=named, evidence={"declared": named, "actual": actual}))
    return out
