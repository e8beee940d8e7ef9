"""Turn the inventory of one pass into images: which entry is which blob of which image.

Detects the format by content (index.json -> OCI, manifest.json -> docker,
both -> the dual layout of Docker 25+ and containerd exports), walks nested
indexes, and follows docker's in-archive symlinks. It records what each
descriptor *declares* next to the entry it resolves to, and what each blob is for
(a child of an index the export may leave out, a config or layer of an image, a
blob of an artifact); judging whether they agree is the verifiers' job. A manifest
is an image only when it has an image config and layers; the rest are artifacts,
kept for the inventory. Only unreadable documents and an unknown format are
reported here.
"""

from __future__ import annotations

import json
import posixpath
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from forensics.archive.mediatypes import (
    IMAGE_CONFIG_TYPES,
    INDEX_TYPES,
    MANIFEST_TYPES,
    artifact_kind,
    is_layer_type,
)
from forensics.archive.scan import Inventory, OuterEntry, norm_outer
from forensics.findings import Code, finding
from forensics.models import Finding

RAISES: tuple[Code, ...] = ("archive.limit-exceeded", "archive.malformed", "archive.unknown-format")

DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
MAX_INDEX_DEPTH = 8
NAMED_RE = re.compile(r"(?:^|/)(?:sha256:)?([a-f0-9]{64})(?:\.json|\.tar)?$")
MAX_LINK_HOPS = 40
EMPTY_CONFIG_TYPE = "application/vnd.oci.empty.v1+json"
COSIGN_TAG_RE = re.compile(r"(?:^|:)sha256-([a-f0-9]{64})\.(?:sig|att|sbom)$")


@dataclass
class Descriptor:
    where: str  # which document and field declared it, for evidence
    media_type: str | None
    digest: str | None
    size: int | None
    annotations: dict[str, str] = field(default_factory=dict)
    platform: dict[str, Any] | None = None
    urls: list[str] = field(default_factory=list)
    data: str | None = None
    artifact_type: str | None = None
    path: str | None = None  # where the blob should be in the archive
    entry: OuterEntry | None = None  # the entry found there (after links)
    valid: bool = True  # the digest is well formed
    # What the blob is for, which decides what its absence means: "top" (an index.json
    # entry), "child" (a manifest or index inside an index), "config", "layer",
    # "artifact-config" / "artifact-blob" (blobs of an artifact manifest).
    role: str = "top"
    parent: str | None = None  # digest of the index a child belongs to
    not_exported: bool = False  # a child of an index with nothing at its path


@dataclass
class Absent:
    """A child of an index that the export left out (spec-legal: image-layout.md)."""

    descriptor: Descriptor
    kind: str  # platform, attestation, index, referrer, other
    platform: str | None


@dataclass
class IndexChildren:
    """One index and what became of its children: which are held, which were left out."""

    descriptor: Descriptor | None  # None for index.json itself
    refs: list[str]
    present: list[tuple[str, str | None]] = field(default_factory=list)  # (kind, platform)
    absent: list[Absent] = field(default_factory=list)


@dataclass
class ArtifactRef:
    """A manifest that is not an image: inventoried, its blobs checked, never unpacked."""

    manifest: Descriptor
    doc: dict
    kind: str  # signature, attestation, sbom, artifact
    artifact_type: str | None  # artifactType, else the config's or the payload's media type
    config: Descriptor | None
    blobs: list[Descriptor]
    subject: str | None
    refs: list[str]
    why: str  # why it is not an image


@dataclass
class LayerRef:
    index: int
    descriptor: Descriptor  # for docker-archive: built from the manifest.json path
    declared_diff_id: str | None = None


@dataclass
class ResolvedImage:
    index: int
    source: str  # "oci" or "docker"
    refs: list[str] = field(default_factory=list)
    manifest: Descriptor | None = None
    manifest_doc: dict | None = None
    config: Descriptor | None = None
    config_doc: dict | None = None
    layers: list[LayerRef] = field(default_factory=list)
    diff_ids: list[str] = field(default_factory=list)
    platform: str | None = None
    repo_tags: list[str] = field(default_factory=list)  # manifest.json RepoTags


@dataclass
class Resolved:
    format: str
    images: list[ResolvedImage] = field(default_factory=list)
    descriptors: list[Descriptor] = field(default_factory=list)  # every descriptor seen
    index_doc: dict | None = None
    manifest_json: list | None = None
    repositories: dict | None = None
    referenced: set[str] = field(default_factory=set)  # entry paths something points at
    artifacts: list[Descriptor] = field(default_factory=list)  # manifests that are not images
    artifact_refs: list[ArtifactRef] = field(default_factory=list)  # the same, read
    index_children: list[IndexChildren] = field(default_factory=list)  # nested indexes with absent children
    unsafe_refs: list[tuple[str, str]] = field(default_factory=list)  # (where, path) escaping the archive
    findings: list[Finding] = field(default_factory=list)


def load_json(entry: OuterEntry | None, what: str, out: list[Finding], *, digest: str | None = None) -> Any:
    """Parse a kept document; an unreadable one becomes archive.malformed."""
    if entry is None:
        return None
    where = dict(entry=entry.name, digest=digest)
    if entry.data is None and entry.json_limit is not None and entry.layer is None:
        out.append(
            finding(
                "archive.limit-exceeded",
                "high",
                f"{entry.name}: max_json",
                f"{what} {entry.name!r} exceeds the limit max_json ({entry.json_limit:,} bytes of JSON "
                f"held in memory): its {entry.nbytes:,} bytes were hashed but not parsed; nothing it "
                "describes is analyzed",
                evidence={"limit": "max_json", "value": entry.json_limit, "count": entry.nbytes, "first": entry.name},
                **where,
            )
        )
        return None
    if entry.data is None:
        reason = "too large to be a metadata document" if entry.nbytes else "empty"
        if entry.layer is not None:
            reason = f"is a {entry.sniffed} stream, not JSON"
        out.append(
            finding(
                "archive.malformed",
                "high",
                entry.name,
                f"{what} {entry.name!r} is not a JSON document: {reason} ({entry.nbytes} bytes)",
                **where,
            )
        )
        return None
    try:
        return json.loads(entry.data)
    except RecursionError:
        # Python's JSON parser stops at the interpreter's recursion limit (about 1,000 levels);
        # no image document nests deeper than ten.
        out.append(
            finding(
                "archive.limit-exceeded",
                "high",
                f"{entry.name}: max_json_depth",
                f"{what} {entry.name!r} exceeds the limit max_json_depth (JSON nested deeper than "
                f"{sys.getrecursionlimit():,} levels): it was not parsed; nothing it describes is analyzed",
                evidence={"limit": "max_json_depth", "value": sys.getrecursionlimit(), "count": 1, "first": entry.name},
                **where,
            )
        )
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        msg = str(exc)[:200]
    out.append(
        finding("archive.malformed", "high", entry.name, f"{what} {entry.name!r} is not valid JSON: {msg}", **where)
    )
    return None


def follow(inv: Inventory, path: str) -> tuple[OuterEntry | None, str]:
    """The entry a path leads to through in-archive symlinks and hardlinks."""
    current, _ = norm_outer(path)
    for _ in range(MAX_LINK_HOPS):
        entry = inv.get(current)
        if entry is None or entry.type not in ("symlink", "hardlink"):
            return entry, current
        if entry.type == "symlink":
            target = posixpath.normpath(posixpath.join("/" + posixpath.dirname(current), entry.linkname))
        else:
            target = "/" + entry.linkname
        current, unsafe = norm_outer(target.lstrip("/"))
        if unsafe:
            return None, current
    return None, current  # a loop


def _descriptor(raw: Any, where: str, out: list[Finding], doc_entry: OuterEntry | None) -> Descriptor | None:
    if not isinstance(raw, dict):
        out.append(
            finding(
                "archive.malformed",
                "high",
                where,
                f"{where} is not a descriptor object",
                entry=doc_entry.name if doc_entry else None,
            )
        )
        return None
    digest = raw.get("digest")
    size = raw.get("size")
    for key, want in (("size", int), ("mediaType", str), ("digest", str)):
        value = raw.get(key)
        if value is not None and (
            not isinstance(value, want) or isinstance(value, bool) or (key == "size" and value < 0)
        ):
            out.append(
                finding(
                    "archive.malformed",
                    "high",
                    where,
                    f"{where}: {key} is {json.dumps(value)[:80]}, not a valid {key}",
                    entry=doc_entry.name if doc_entry else None,
                )
            )
    d = Descriptor(
        where=where,
        media_type=raw.get("mediaType") if isinstance(raw.get("mediaType"), str) else None,
        digest=digest if isinstance(digest, str) else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        annotations={
            k: v for k, v in (raw.get("annotations") or {}).items() if isinstance(k, str) and isinstance(v, str)
        }
        if isinstance(raw.get("annotations"), dict)
        else {},
        platform=raw.get("platform") if isinstance(raw.get("platform"), dict) else None,
        urls=[u for u in raw.get("urls") or [] if isinstance(u, str)] if isinstance(raw.get("urls"), list) else [],
        data=raw.get("data") if isinstance(raw.get("data"), str) else None,
        artifact_type=raw.get("artifactType") if isinstance(raw.get("artifactType"), str) else None,
    )
    if d.digest is None or not DIGEST_RE.match(d.digest):
        d.valid = False
        out.append(
            finding(
                "archive.malformed",
                "high",
                where,
                f"{where} has an invalid digest {str(digest)[:100]!r}",
                entry=doc_entry.name if doc_entry else None,
            )
        )
    return d


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
    for b in blobs:
        if b.media_type:
            return b.media_type
    return config.media_type if config is not None else None


def _child_kind(d: Descriptor) -> str:
    """What an index entry is for, as its descriptor says."""
    if d.annotations.get("vnd.docker.reference.type") == "attestation-manifest":
        return "attestation"
    if d.media_type in INDEX_TYPES:
        return "index"
    plat = _platform_str(d.platform)
    if plat == "unknown/unknown":
        return "attestation"
    if d.artifact_type:
        return "referrer"
    if plat is not None:
        return "platform"
    return "other"


def _platform_str(p: dict | None) -> str | None:
    if not p or not isinstance(p.get("os"), str) or not isinstance(p.get("architecture"), str):
        return None
    s = f"{p['os']}/{p['architecture']}"
    if isinstance(p.get("variant"), str) and p["variant"]:
        s += f"/{p['variant']}"
    return s


class _Resolver:
    def __init__(self, inv: Inventory) -> None:
        self.inv = inv
        self.out: list[Finding] = []
        self._indexes_walked: set[str] = set()

    def blob(self, d: Descriptor) -> None:
        """Attach the entry at blobs/<alg>/<hex> to a descriptor."""
        if not d.valid:
            return
        alg, hexpart = d.digest.split(":", 1)
        d.path = f"blobs/{alg}/{hexpart}"
        d.entry, resolved = follow(self.inv, d.path)
        self.res.referenced.add(d.path)
        if d.entry is not None:
            self.res.referenced.add(resolved)

    def run(self) -> Resolved:
        inv = self.inv
        has_index = inv.get("index.json") is not None
        has_manifest = inv.get("manifest.json") is not None
        if has_index and has_manifest:
            fmt = "docker-archive+oci"
        elif has_index:
            fmt = "oci-layout" if inv.is_dir else "oci-archive"
        elif has_manifest:
            fmt = "docker-archive"
        else:
            fmt = "unknown"
        self.res = Resolved(format=fmt)
        for meta in ("index.json", "manifest.json", "oci-layout", "repositories"):
            if inv.get(meta) is not None:
                self.res.referenced.add(meta)
        if fmt == "unknown":
            what = (
                f"{len(inv.entries)} entries"
                if inv.entries
                else "an empty directory"
                if inv.is_dir
                else "an archive with no entries"
            )
            self.out.append(
                finding(
                    "archive.unknown-format",
                    "high",
                    inv.source,
                    f"neither manifest.json (docker save) nor index.json (OCI layout) found ({what}); "
                    "this is not an image archive (a container export or a pre-1.10 docker save?)",
                )
            )
        if has_index:
            self._oci()
        if has_manifest:
            self._docker(link_to_oci=has_index)
        repos = inv.get("repositories")
        if repos is not None:
            doc = load_json(repos, "repositories", self.out)
            self.res.repositories = doc if isinstance(doc, dict) else None
        for i, img in enumerate(self.res.images):
            img.index = i
        self.res.findings = self.out
        return self.res

    # --- OCI layout ---------------------------------------------------------------
    def _oci(self) -> None:
        entry = self.inv.get("index.json")
        doc = load_json(entry, "index.json", self.out)
        if doc is None and entry is not None and entry.data is not None and entry.data.strip() == b"null":
            self.out.append(
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
            self.out.append(
                finding(
                    "archive.malformed", "high", "index.json", "index.json is not a JSON object", entry="index.json"
                )
            )
            return
        self.res.index_doc = doc
        self._walk_index(doc, "index.json", entry, depth=0, inherited=[])

    def _walk_index(
        self,
        doc: dict,
        where: str,
        doc_entry: OuterEntry | None,
        depth: int,
        inherited: list[str],
        ancestors: frozenset[str] = frozenset(),
        parent: Descriptor | None = None,
    ) -> None:
        manifests = doc.get("manifests")
        if manifests is None:
            return  # Docker 25 writes "manifests": null for untagged images
        if not isinstance(manifests, list):
            self.out.append(
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
            d = _descriptor(raw, f"{where} manifests[{i}]", self.out, doc_entry)
            if d is None:
                continue
            if depth > 0:
                d.role, d.parent = "child", parent.digest if parent else None
            self.res.descriptors.append(d)
            self.blob(d)
            refs = list(inherited)
            if depth == 0:  # ref.name is only meaningful on index.json's own descriptors
                for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
                    if key in d.annotations and d.annotations[key] not in refs:
                        refs.append(d.annotations[key])
            kind = _child_kind(d)
            if d.valid and d.entry is None and depth > 0 and self.inv.get(d.path) is None:
                # An index names every platform; exports keep only what was pulled
                # (containerd, Docker 29, skopeo --multi-arch index-only). Only nothing at
                # all at its path counts: a link that leads nowhere is not a left-out blob.
                d.not_exported = True
                children.absent.append(Absent(descriptor=d, kind=kind, platform=_platform_str(d.platform)))
                continue
            if not d.valid or d.entry is None:
                continue
            children.present.append((kind, _platform_str(d.platform)))
            child = load_json(d.entry, f"{d.where} ({d.media_type or 'no media type'})", self.out, digest=d.digest)
            if not isinstance(child, dict):
                if child is not None or (d.entry.data is not None and d.entry.data.strip() == b"null"):
                    self.out.append(
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
                    self.out.append(
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
                if d.digest in self._indexes_walked:
                    continue  # a DAG of indexes shares children: walk each once
                self._indexes_walked.add(d.digest)
                if depth >= MAX_INDEX_DEPTH:
                    self.out.append(
                        finding(
                            "archive.malformed",
                            "high",
                            d.where,
                            f"image indexes nested deeper than {MAX_INDEX_DEPTH}",
                            digest=d.digest,
                        )
                    )
                    continue
                self._walk_index(
                    child, f"index {d.digest[:19]}", d.entry, depth + 1, refs, ancestors | {d.digest}, parent=d
                )
            elif mt in MANIFEST_TYPES or ("config" in child and "layers" in child):
                self._oci_manifest(d, child, refs)
            # Unknown media types MUST NOT be an error (image-index.md); the blob is still referenced.
        if children.absent:
            self.res.index_children.append(children)

    def _oci_manifest(self, d: Descriptor, doc: dict, refs: list[str]) -> None:
        for seen in self.res.images:
            if seen.manifest is not None and seen.manifest.digest == d.digest:
                # Several tags on one manifest are one image with several refs.
                seen.refs += [r for r in refs if r not in seen.refs]
                return
        for art in self.res.artifact_refs:
            if art.manifest.digest == d.digest:
                art.refs += [r for r in refs if r not in art.refs]
                return
        where = f"manifest {d.digest[:19]}"
        config = _descriptor(doc.get("config"), f"{where} config", self.out, d.entry)
        layers_raw = doc.get("layers") if isinstance(doc.get("layers"), list) else []
        if "layers" in doc and not isinstance(doc.get("layers"), list):
            self.out.append(
                finding(
                    "archive.malformed",
                    "high",
                    d.digest,
                    f"{where}: 'layers' is a JSON {type(doc.get('layers')).__name__}, not a list",
                    entry=d.entry.name if d.entry else None,
                    digest=d.digest,
                )
            )
        layer_descs = []
        for i, raw in enumerate(layers_raw):
            ld = _descriptor(raw, f"{where} layers[{i}]", self.out, d.entry)
            if ld is not None:
                self.res.descriptors.append(ld)
                self.blob(ld)
                layer_descs.append(ld)
        if config is not None:
            self.res.descriptors.append(config)
            self.blob(config)
        why = _not_an_image(config, layer_descs)
        if why is not None:
            self._artifact(d, doc, config, layer_descs, refs, why)
            return
        if config is not None:
            config.role = "config"
        for ld in layer_descs:
            ld.role = "layer"
        img = ResolvedImage(index=0, source="oci", refs=refs, manifest=d, manifest_doc=doc, config=config)
        img.layers = [LayerRef(index=i, descriptor=ld) for i, ld in enumerate(layer_descs)]
        if config is not None and config.entry is not None:
            img.config_doc = self._config(config.entry, config.digest)
        self._finish_image(img, _platform_str(d.platform))
        self.res.images.append(img)

    def _artifact(
        self, d: Descriptor, doc: dict, config: Descriptor | None, blobs: list[Descriptor], refs: list[str], why: str
    ) -> None:
        if config is not None:
            config.role = "artifact-config"
        for b in blobs:
            b.role = "artifact-blob"
        subject = None
        raw_subject = doc.get("subject")
        if isinstance(raw_subject, dict):
            sd = _descriptor(raw_subject, f"manifest {d.digest[:19]} subject", self.out, d.entry)
            subject = sd.digest if sd is not None and sd.valid else None
        if subject is None:  # BuildKit names the manifest an attestation describes here
            ref = d.annotations.get("vnd.docker.reference.digest")
            subject = ref if isinstance(ref, str) and DIGEST_RE.match(ref) else None
        for r in refs if subject is None else []:  # cosign's tag scheme: sha256-<hex>.sig|.att|.sbom
            m = COSIGN_TAG_RE.search(r)
            if m:
                subject = "sha256:" + m.group(1)
                break
        atype = doc.get("artifactType") if isinstance(doc.get("artifactType"), str) else None
        types = [atype or "", config.media_type if config else "", *(b.media_type or "" for b in blobs)]
        notes = dict(d.annotations)
        for b in blobs:
            notes.update(b.annotations)
        self.res.artifacts.append(d)
        self.res.artifact_refs.append(
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

    def _config(self, entry: OuterEntry, digest: str | None) -> dict | None:
        doc = load_json(entry, "image config", self.out, digest=digest)
        if doc is None and entry.data is not None and entry.data.strip() == b"null":
            doc = "null"  # reported below like any other non-object
        if doc is not None and not isinstance(doc, dict):
            self.out.append(
                finding(
                    "archive.malformed",
                    "high",
                    entry.name,
                    "image config is not a JSON object",
                    entry=entry.name,
                    digest=digest,
                )
            )
            return None
        return doc

    def _finish_image(self, img: ResolvedImage, descriptor_platform: str | None) -> None:
        cfg = img.config_doc or {}
        rootfs = cfg.get("rootfs") if isinstance(cfg.get("rootfs"), dict) else {}
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs.get("diff_ids"), list) else []
        img.diff_ids = [x if isinstance(x, str) else str(x) for x in diff_ids]
        for lr in img.layers:
            if lr.index < len(img.diff_ids):
                lr.declared_diff_id = img.diff_ids[lr.index]
        img.platform = _platform_str(cfg) or descriptor_platform

    # --- docker save --------------------------------------------------------------
    def _docker(self, link_to_oci: bool) -> None:
        entry = self.inv.get("manifest.json")
        doc = load_json(entry, "manifest.json", self.out)
        if doc is None:
            if entry is not None and entry.data is not None and entry.data.strip() == b"null":
                self.out.append(
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
            self.out.append(
                finding(
                    "archive.malformed",
                    "high",
                    "manifest.json",
                    f"manifest.json is a JSON {type(doc).__name__}, not the list of images it must be",
                    entry="manifest.json",
                )
            )
            return
        self.res.manifest_json = doc
        oci_images = {img.config.digest: img for img in self.res.images if img.config is not None}
        for i, item in enumerate(doc):
            where = f"manifest.json[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
                self.out.append(
                    finding("archive.malformed", "high", where, f"{where} has no Config path", entry="manifest.json")
                )
                continue
            tags = (
                [t for t in item.get("RepoTags") or [] if isinstance(t, str)]
                if isinstance(item.get("RepoTags"), list)
                else []
            )
            config_path = item["Config"]
            cd = self._docker_blob(config_path, f"{where} Config")
            cd.role = "config"
            img_oci = oci_images.get(cd.digest) if link_to_oci and cd.digest else None
            if img_oci is not None:
                img_oci.repo_tags = tags  # the same image seen through both layouts
                continue
            img = ResolvedImage(index=0, source="docker", refs=list(tags), config=cd, repo_tags=tags)
            if cd.entry is not None:
                img.config_doc = self._config(cd.entry, cd.digest)
            layer_paths = item.get("Layers") if isinstance(item.get("Layers"), list) else []
            for j, lp in enumerate(layer_paths):
                if not isinstance(lp, str):
                    self.out.append(
                        finding(
                            "archive.malformed",
                            "high",
                            f"{where} Layers[{j}]",
                            "layer path is not a string",
                            entry="manifest.json",
                        )
                    )
                    continue
                ld = self._docker_blob(lp, f"{where} Layers[{j}]")
                ld.role = "layer"
                img.layers.append(LayerRef(index=len(img.layers), descriptor=ld))
            self._finish_image(img, None)
            self.res.images.append(img)

    def _docker_blob(self, path: str, where: str) -> Descriptor:
        """A manifest.json path as a descriptor: the digest comes from the name where it
        is content-addressed (`<hex>.json`, `blobs/sha256/<hex>`), else from the bytes."""
        norm, unsafe = norm_outer(path)
        entry, resolved = (None, norm) if unsafe else follow(self.inv, norm)
        self.res.referenced.add(norm)
        if unsafe:
            self.res.unsafe_refs.append((where, path))
        if entry is not None:
            self.res.referenced.add(resolved)
            # the legacy layout's sibling files belong to the same layer directory
            base_dir = posixpath.dirname(norm)
            if base_dir and posixpath.basename(norm) == "layer.tar":
                for sib in ("json", "VERSION"):
                    self.res.referenced.add(f"{base_dir}/{sib}")
        d = Descriptor(where=where, media_type=None, digest=None, size=None, path=norm, entry=entry)
        # Content-addressed names (<hex>.json, <diffid>.tar, blobs/sha256/<hex>, ggcr's
        # sha256:<hex>) declare a digest; `<v1id>/layer.tar` declares none.
        m = NAMED_RE.search(resolved if entry is not None else norm)
        if m:
            d.digest = "sha256:" + m.group(1)
            d.annotations["digest-source"] = "name"
        elif entry is not None and entry.sha256:
            d.digest = "sha256:" + entry.sha256
            d.annotations["digest-source"] = "computed"
        return d


def resolve(inv: Inventory) -> Resolved:
    return _Resolver(inv).run()
