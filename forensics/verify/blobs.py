"""blob.* findings: every blob against its name and every descriptor pointing at it."""

from __future__ import annotations

import json
import posixpath

from forensics.findings import Code, finding
from forensics.mediatypes import LAYER_COMPRESSION, is_foreign_layer, is_layer_type
from forensics.models import Finding
from forensics.read.model import Archive, Descriptor, Digest, Entry, IndexChildren, Resolved

RAISES: tuple[Code, ...] = (
    "blob.digest-mismatch",
    "blob.foreign",
    "blob.media-type-mismatch",
    "blob.missing",
    "blob.not-exported",
    "blob.size-mismatch",
    "blob.unreferenced",
)

SNIFF_AS_COMPRESSION = {"gzip": "gzip", "zstd": "zstd", "tar": "none", "bzip2": "bzip2", "xz": "xz"}
# Files of the docker-save layouts that no descriptor names but that belong there.
DOCKER_METADATA = {"manifest.json", "repositories", "index.json", "oci-layout", "VERSION"}


def _is_foreign(d: Descriptor) -> bool:
    # Only a layer may live outside the archive by design; a config or manifest with
    # `urls` is still a blob the archive must hold.
    return d.role in ("layer", "artifact-blob") and is_foreign_layer(d.media_type, d.urls)


def check_descriptor(d: Descriptor, role: str, *, image: int | None = None, layer: int | None = None) -> list[Finding]:
    out: list[Finding] = []
    where = dict(image=image, layer=layer, digest=d.digest)
    if not d.valid:
        return out  # resolve already reported the invalid digest
    e = d.entry
    if d.digest is None:
        # Only a docker-save path declares no digest (an OCI descriptor without one is not valid):
        # it names nothing, or its bytes could not be hashed (the read reported why).
        if e is None:
            out.append(
                finding(
                    "blob.missing",
                    "high",
                    d.path or d.where,
                    f"{role} {d.path!r} named by {d.where} is not in the archive",
                    entry=d.path,
                    image=image,
                    layer=layer,
                )
            )
        return out
    if e is None:
        if d.not_exported:
            return out  # left out of the export: check_not_exported lists it once per index
        if _is_foreign(d):
            urls = ", ".join(d.urls[:2]) or "none"
            out.append(
                finding(
                    "blob.foreign",
                    "low",
                    d.digest,
                    f"{role} {d.digest} ({d.media_type or 'no media type'}) named by {d.where} is a "
                    f"foreign/non-distributable layer, not in the archive by design (urls: {urls}): "
                    "its content cannot be verified here",
                    entry=d.path,
                    **where,
                )
            )
            return out
        if d.role in ("artifact-config", "artifact-blob"):
            # Part of a signature, attestation or SBOM, never of what runs: its absence makes
            # that artifact unverifiable (the signature checks say so) but contradicts no image.
            sev, why = "low", "part of an artifact manifest the archive holds, so that artifact cannot be verified"
        else:
            sev, why = "high", "the archive does not hold it, so it cannot be verified"
        out.append(
            finding(
                "blob.missing",
                sev,
                d.digest,
                f"{role} {d.digest} named by {d.where} is missing at {d.path}: {why}",
                entry=d.path,
                **where,
            )
        )
        return out
    actual = e.digest
    named_by = d.annotations.get("digest-source", "descriptor")
    if actual and actual != d.digest and named_by != "diffid-name" and not (d.path or "").endswith(".tar"):
        source = "its file name" if named_by == "name" else d.where
        out.append(
            finding(
                "blob.digest-mismatch",
                "critical",
                d.digest,
                f"{role} {e.name}: sha256 of its {e.nbytes} bytes is {actual}, but {source} says {d.digest}",
                entry=e.name,
                evidence={"declared": d.digest, "actual": actual},
                **where,
            )
        )
    if d.size is not None and d.size != e.nbytes:
        out.append(
            finding(
                "blob.size-mismatch",
                "high",
                d.digest,
                f"{role} {e.name}: {d.where} declares size {d.size}, the blob has {e.nbytes} bytes",
                entry=e.name,
                evidence={"declared": d.size, "actual": e.nbytes},
                **where,
            )
        )
    if d.data is not None:
        import base64
        import hashlib

        try:
            raw = base64.b64decode(d.data, validate=True)
            if Digest.of_hex(hashlib.sha256(raw).hexdigest()) != d.digest:
                out.append(
                    finding(
                        "blob.digest-mismatch",
                        "high",
                        d.digest,
                        f"the embedded data of {d.where} does not hash to its digest",
                        **where,
                    )
                )
        except ValueError:
            pass
    return out


def check_media_type(d: Descriptor, role: str, *, image: int, layer: int | None = None) -> list[Finding]:
    e = d.entry
    if e is None or d.media_type is None or d.digest is None:
        return []
    if role == "layer":
        declared = LAYER_COMPRESSION.get(d.media_type)
        actual = SNIFF_AS_COMPRESSION.get(e.sniffed or "", e.sniffed)
        if not is_layer_type(d.media_type):
            # Readers that go by the media type skip it; readers that sniff run it.
            return [
                finding(
                    "blob.media-type-mismatch",
                    "medium",
                    d.digest,
                    f"layer {layer} is declared {d.media_type}, which is not a layer media type, but its "
                    f"bytes are a {actual} layer: runtimes disagree on whether it is part of the image",
                    image=image,
                    layer=layer,
                    digest=d.digest,
                    entry=e.name,
                    evidence={"declared": d.media_type, "actual": actual},
                )
            ]
        if declared is not None and actual != declared:
            return [
                finding(
                    "blob.media-type-mismatch",
                    "medium",
                    d.digest,
                    f"layer {layer} is declared {d.media_type} ({declared}) but its bytes are {actual}",
                    image=image,
                    layer=layer,
                    digest=d.digest,
                    entry=e.name,
                    evidence={"declared": declared, "actual": actual},
                )
            ]
    return []


def _looks_like_v1_json(e: Entry) -> bool:
    if e.data is None:
        return False
    try:
        doc = json.loads(e.data)
    except (ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and "id" in doc and ("parent" in doc or "container_config" in doc or "config" in doc)


def check_unreferenced(inv: Archive, res: Resolved) -> list[Finding]:
    out: list[Finding] = []
    for e in inv.entries:
        if e.type != "file" or e.path in res.referenced:
            continue
        base = posixpath.basename(e.path)
        if e.path in DOCKER_METADATA or base in ("json", "VERSION") and res.format.startswith("docker"):
            continue
        under_blobs = e.path.startswith("blobs/")
        if not under_blobs and not res.format.startswith("docker"):
            continue  # stray files beside an OCI layout are not blobs (archive.extra-entry)
        if not under_blobs and res.format == "docker-archive+oci" and e.layer is None:
            continue  # nor beside a Docker 25+ layout, unless a layer hides there (archive.extra-entry)
        what = {"gzip": "gzip tar", "zstd": "zstd tar", "tar": "tar"}.get(e.sniffed or "", e.sniffed or "data")
        if e.layer is not None:
            sev, note = "medium", "a layer that no image uses: content can hide here"
        elif _looks_like_v1_json(e):
            sev, note = "info", "a legacy v1 image JSON (Docker 25+ writes one per layer)"
        else:
            sev, note = "low", "nothing in the archive refers to it"
        digest = e.digest
        out.append(
            finding(
                "blob.unreferenced",
                sev,
                digest or e.name,
                f"{e.name} ({e.nbytes} bytes, {what}) is referenced by nothing: {note}",
                digest=digest,
                entry=e.name,
            )
        )
    return out


def check_blob_names(inv: Archive, res: Resolved) -> list[Finding]:
    """Every blobs/<alg>/<hex> must hash to its name; referenced ones were checked
    against their descriptors already (with the image and layer they belong to)."""
    out: list[Finding] = []
    for e in inv.entries:
        if e.type != "file" or not e.path.startswith("blobs/sha256/") or e.path in res.referenced:
            continue
        named = Digest.named_by(e.path)
        actual = e.digest
        if actual and named is not None and actual != named:  # named: the prefix was checked above
            out.append(
                finding(
                    "blob.digest-mismatch",
                    "critical",
                    named,
                    f"{e.name}: sha256 of its {e.nbytes} bytes is {actual}, not the digest its name declares",
                    entry=e.name,
                    digest=named,
                    evidence={"declared": named, "actual": actual},
                )
            )
    return out


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


KIND_WORDS = {
    "platform": "platform manifest",
    "attestation": "attestation manifest",
    "index": "nested index",
    "referrer": "referrer",
    "other": "manifest",
}


def check_not_exported(res: Resolved) -> list[Finding]:
    """One info finding per index whose children the export left out.

    The image-layout spec lets blobs be missing; containerd and Docker 29 exports keep
    only the platforms that were pulled. Nothing absent can be verified, and nothing
    present depends on it, so it never weighs on the verdict."""
    out: list[Finding] = []
    for ic in res.index_children:
        out.append(_not_exported(ic))
    return out


def _not_exported(ic: IndexChildren) -> Finding:
    d = ic.descriptor
    name = (ic.refs[0] if ic.refs else None) or (f"index {d.digest}" if d is not None else "index.json")
    parts = []
    for kind in ("platform", "attestation", "index", "referrer", "other"):
        absent = [a for a in ic.absent if a.kind == kind]
        if not absent:
            continue
        total = len(absent) + sum(1 for k, _ in ic.present if k == kind)
        plats = [a.platform for a in absent if a.platform and kind == "platform"]
        shown = f" ({', '.join(plats[:12])}{', …' if len(plats) > 12 else ''})" if plats else ""
        parts.append(f"{len(absent)} of the {_count(total, KIND_WORDS[kind])}{shown}")
    verified = [p for k, p in ic.present if k == "platform" and p]
    only = f"only {', '.join(verified)} can be verified" if verified else "no image of it can be verified"
    verb = "is" if len(ic.absent) == 1 else "are"
    detail = f"{'; '.join(parts)} of {name} {verb} not in this export; {only}"
    return finding(
        "blob.not-exported",
        "info",
        (d.digest if d is not None else None) or "index.json",
        detail,
        digest=d.digest if d is not None else None,
        entry=d.path if d is not None else "index.json",
        evidence={
            "absent": [
                {
                    "digest": a.descriptor.digest,
                    "media_type": a.descriptor.media_type,
                    "kind": a.kind,
                    "platform": a.platform,
                }
                for a in ic.absent
            ],
            "present_platforms": verified,
        },
    )
