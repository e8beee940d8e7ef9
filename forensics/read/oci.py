"""The OCI image layout (image-spec image-layout.md), as a tar or a directory.

`index.json` is walked down its nested indexes; each manifest that has an image config
and layers is an image, any other is an artifact (kept for the inventory, its blobs
checked, never unpacked). A child of an index with nothing at its path was left out by
the export, which the spec allows. The walk records what each descriptor *declares*
next to the entry it resolves to; judging whether they agree is the verifiers' job.
Entries outside what the layout defines are archive.extra-entry (forensics.read.extra).
"""

from __future__ import annotations

import re

from forensics.findings import Code, finding
from forensics.mediatypes import IMAGE_CONFIG_TYPES, INDEX_TYPES, MANIFEST_TYPES, artifact_kind, is_layer_type
from forensics.read import extra
from forensics.read.builder import Builder
from forensics.read.documents import DIGEST_RE, load_json, parse_descriptor, platform_str
from forensics.read.model import (
    Absent,
    Archive,
    ArtifactRef,
    Descriptor,
    Digest,
    Entry,
    IndexChildren,
    LayerRef,
    Resolved,
    ResolvedImage,
)

RAISES: tuple[Code, ...] = ("archive.malformed",)

MAX_INDEX_DEPTH = 8
EMPTY_CONFIG_TYPE = "application/vnd.oci.empty.v1+json"
COSIGN_TAG_RE = re.compile(r"(?:^|:)sha256-([a-f0-9]{64})\.(?:sig|att|sbom)$")


def detect(archive: Archive) -> bool:
    """An OCI layout alone: index.json, no docker manifest.json beside it."""
    return archive.get("index.json") is not None and archive.get("manifest.json") is None


def read(archive: Archive) -> Resolved:
    b = Builder(archive, "oci-layout" if archive.is_dir else "oci-archive")
    walk_index_json(b)
    b.out += extra.check(archive, b.res.referenced, docker=False)
    return b.done()


def _not_an_image(config: Descriptor | None, layers: list[Descriptor]) -> str | None:
    """Why a manifest is an artifact rather than an image, or None for an image: an image
    has an image config and nothing but layers (a reader MUST ignore unknown layer types)."""
    # A descriptor without a media type is malformed (reported by _descriptor); it is
    # still read as an image part, so that a forger gains no blind spot by dropping it.
    if config is not None and config.media_type is not None and config.media_type not in IMAGE_CONFIG_TYPES:
        return f"its config is {config.media_type}, not an image config"
    # A blob under an unknown media type whose bytes are a layer is still a layer: runtimes
    # that sniff the bytes (containers/storage) unpack and run it, so it is analysed as one
    # (and its media type reported), never set aside as an artifact.
    others = sorted(
        {
            ld.media_type
            for ld in layers
            if ld.media_type is not None
            and not is_layer_type(ld.media_type)
            and not (ld.entry is not None and ld.entry.layer is not None and ld.entry.layer.is_tar)
        }
    )
    if others:
        return "its blobs are " + ", ".join(others[:3]) + ", not layers"
    return None


def _untyped_artifact_type(config: Descriptor | None, blobs: list[Descriptor]) -> str | None:
    """No artifactType: the config media type says what it is (image-spec manifest.md),
    unless it is the image or empty config that cosign and regctl wrap payloads in;
    then the payload's media type does."""
    if (
        config is not None
        and config.media_type
        and config.media_type not in IMAGE_CONFIG_TYPES
        and (config.media_type != EMPTY_CONFIG_TYPE)
    ):
        return config.media_type
    for blob in blobs:
        if blob.media_type:
            return blob.media_type
    return config.media_type if config is not None else None


def _child_kind(d: Descriptor) -> str:
    """What an index entry is for, as its descriptor says."""
    if d.annotations.get("vnd.docker.reference.type") == "attestation-manifest":
        return "attestation"
    if d.media_type in INDEX_TYPES:
        return "index"
    plat = platform_str(d.platform)
    if plat == "unknown/unknown":
        return "attestation"
    if d.artifact_type:
        return "referrer"
    if plat is not None:
        return "platform"
    return "other"


def walk_index_json(b: Builder) -> None:
    entry = b.archive.get("index.json")
    doc = load_json(entry, "index.json", b.out)
    if doc is None and entry is not None and entry.data is not None and entry.data.strip() == b"null":
        b.out.append(
            finding(
                "archive.malformed",
                "high",
                "index.json",
                "index.json holds null: it must be an image index object",
                entry="index.json",
            )
        )
        return
    if doc is None:
        return
    if not isinstance(doc, dict):
        b.out.append(
            finding("archive.malformed", "high", "index.json", "index.json is not a JSON object", entry="index.json")
        )
        return
    b.res.index_doc = doc
    _walk_index(b, doc, "index.json", entry, depth=0, inherited=[])


def _walk_index(
    b: Builder,
    doc: dict,
    where: str,
    doc_entry: Entry | None,
    depth: int,
    inherited: list[str],
    ancestors: frozenset[str] = frozenset(),
    parent: Descriptor | None = None,
) -> None:
    manifests = doc.get("manifests")
    if manifests is None:
        return  # Docker 25 writes "manifests": null for untagged images
    if not isinstance(manifests, list):
        b.out.append(
            finding(
                "archive.malformed",
                "high",
                where,
                f"{where}: 'manifests' is not a list",
                entry=doc_entry.name if doc_entry else None,
            )
        )
        return
    children = IndexChildren(descriptor=parent, refs=list(inherited))
    for i, raw in enumerate(manifests):
        d = parse_descriptor(raw, f"{where} manifests[{i}]", b.out, doc_entry)
        if d is None:
            continue
        if depth > 0:
            d.role, d.parent = "child", parent.digest if parent else None
        b.res.descriptors.append(d)
        b.blob(d)
        refs = list(inherited)
        if depth == 0:  # ref.name is only meaningful on index.json's own descriptors
            for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
                if key in d.annotations and d.annotations[key] not in refs:
                    refs.append(d.annotations[key])
        kind = _child_kind(d)
        if d.valid and d.entry is None and depth > 0 and d.path is not None and b.archive.get(d.path) is None:
            # An index names every platform; exports keep only what was pulled
            # (containerd, Docker 29, skopeo --multi-arch index-only). Only nothing at
            # all at its path counts: a link that leads nowhere is not a left-out blob.
            d.not_exported = True
            children.absent.append(Absent(descriptor=d, kind=kind, platform=platform_str(d.platform)))
            continue
        if not d.valid or d.entry is None or d.digest is None:  # valid: it has a digest and a path
            continue
        children.present.append((kind, platform_str(d.platform)))
        child = load_json(d.entry, f"{d.where} ({d.media_type or 'no media type'})", b.out, digest=d.digest)
        if not isinstance(child, dict):
            if child is not None or (d.entry.data is not None and d.entry.data.strip() == b"null"):
                b.out.append(
                    finding(
                        "archive.malformed",
                        "high",
                        d.digest,
                        f"{d.where} points at a JSON {type(child).__name__ if child is not None else 'null'}, "
                        "not a manifest or index object",
                        entry=d.entry.name,
                        digest=d.digest,
                    )
                )
            continue
        mt = d.media_type or child.get("mediaType")
        if mt in INDEX_TYPES or (mt not in MANIFEST_TYPES and "manifests" in child):
            if d.digest in ancestors:
                b.out.append(
                    finding(
                        "archive.malformed",
                        "high",
                        d.digest,
                        f"{d.where} points back at an index that contains it: a cycle",
                        digest=d.digest,
                        entry=d.entry.name,
                    )
                )
                continue
            if d.digest in b.indexes_walked:
                continue  # a DAG of indexes shares children: walk each once
            b.indexes_walked.add(d.digest)
            if depth >= MAX_INDEX_DEPTH:
                b.out.append(
                    finding(
                        "archive.malformed",
                        "high",
                        d.where,
                        f"image indexes nested deeper than {MAX_INDEX_DEPTH}",
                        digest=d.digest,
                    )
                )
                continue
            _walk_index(b, child, f"index {d.digest[:19]}", d.entry, depth + 1, refs, ancestors | {d.digest}, parent=d)
        elif mt in MANIFEST_TYPES or ("config" in child and "layers" in child):
            _manifest(b, d, d.digest, child, refs)
        # Unknown media types MUST NOT be an error (image-index.md); the blob is still referenced.
    if children.absent:
        b.res.index_children.append(children)


def _manifest(b: Builder, d: Descriptor, digest: str, doc: dict, refs: list[str]) -> None:
    """`digest`: d's own, which a valid descriptor has."""
    for seen in b.res.images:
        if seen.manifest is not None and seen.manifest.digest == digest:
            # Several tags on one manifest are one image with several refs.
            seen.refs += [r for r in refs if r not in seen.refs]
            return
    for art in b.res.artifact_refs:
        if art.manifest.digest == digest:
            art.refs += [r for r in refs if r not in art.refs]
            return
    where = f"manifest {digest[:19]}"
    config = parse_descriptor(doc.get("config"), f"{where} config", b.out, d.entry)
    layers_raw = raw_layers if isinstance(raw_layers := doc.get("layers"), list) else []
    if "layers" in doc and not isinstance(doc.get("layers"), list):
        b.out.append(
            finding(
                "archive.malformed",
                "high",
                digest,
                f"{where}: 'layers' is a JSON {type(doc.get('layers')).__name__}, not a list",
                entry=d.entry.name if d.entry else None,
                digest=digest,
            )
        )
    layer_descs = []
    for i, raw in enumerate(layers_raw):
        ld = parse_descriptor(raw, f"{where} layers[{i}]", b.out, d.entry)
        if ld is not None:
            b.res.descriptors.append(ld)
            b.blob(ld)
            layer_descs.append(ld)
    if config is not None:
        b.res.descriptors.append(config)
        b.blob(config)
    why = _not_an_image(config, layer_descs)
    if why is not None:
        _artifact(b, d, digest, doc, config, layer_descs, refs, why)
        return
    if config is not None:
        config.role = "config"
    for ld in layer_descs:
        ld.role = "layer"
    img = ResolvedImage(index=0, source="oci", refs=refs, manifest=d, manifest_doc=doc, config=config)
    img.layers = [LayerRef(index=i, descriptor=ld) for i, ld in enumerate(layer_descs)]
    if config is not None and config.entry is not None:
        img.config_doc = b.config(config.entry, config.digest)
    b.finish_image(img, platform_str(d.platform))
    b.res.images.append(img)


def _artifact(
    b: Builder,
    d: Descriptor,
    digest: str,
    doc: dict,
    config: Descriptor | None,
    blobs: list[Descriptor],
    refs: list[str],
    why: str,
) -> None:
    if config is not None:
        config.role = "artifact-config"
    for blob in blobs:
        blob.role = "artifact-blob"
    subject = None
    raw_subject = doc.get("subject")
    if isinstance(raw_subject, dict):
        sd = parse_descriptor(raw_subject, f"manifest {digest[:19]} subject", b.out, d.entry)
        subject = sd.digest if sd is not None and sd.valid else None
    if subject is None:  # BuildKit names the manifest an attestation describes here
        ref = d.annotations.get("vnd.docker.reference.digest")
        subject = ref if isinstance(ref, str) and DIGEST_RE.match(ref) else None
    for r in refs if subject is None else []:  # cosign's tag scheme: sha256-<hex>.sig|.att|.sbom
        m = COSIGN_TAG_RE.search(r)
        if m:
            subject = Digest.of_hex(m.group(1))
            break
    atype = doc.get("artifactType") if isinstance(doc.get("artifactType"), str) else None
    types = [atype or "", (config.media_type or "") if config else "", *(blob.media_type or "" for blob in blobs)]
    notes = dict(d.annotations)
    for blob in blobs:
        notes.update(blob.annotations)
    b.res.artifacts.append(d)
    b.res.artifact_refs.append(
        ArtifactRef(
            manifest=d,
            doc=doc,
            kind=artifact_kind(types, notes, refs),
            artifact_type=atype or _untyped_artifact_type(config, blobs),
            config=config,
            blobs=blobs,
            subject=subject,
            refs=list(refs),
            why=why,
        )
    )
