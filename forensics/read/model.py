"""The format-neutral image model: what the readers hand to every later stage.

The streaming core (forensics.archive) records what every outer entry is; a reader
(forensics.read.docker, .oci, .dual) says which entry is which blob of which image.
Both end here, in plain slotted classes (one `Entry` per outer entry is on the hot
path of a 100,000-entry archive): the checks in verify/, history/, compare/ and render/
see only these and forensics.models, never a reader's internals.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from forensics.models import FileEntry, Finding, Format
from forensics.paths import norm_outer

_SHA256_RE = re.compile(r"sha256:[0-9a-f]{64}")
_HEX_RE = re.compile(r"[0-9a-f]{64}")
MAX_LINK_HOPS = 40


class Digest(str):
    """A sha256 digest, `sha256:<64 lowercase hex>`; a str, so it serializes as one.

    Built only from a value that is one (`Digest(s)`, `Digest.parse`) or from the hex a
    hash produced (`Digest.of_hex`): the one place a digest string is assembled."""

    __slots__ = ()

    def __new__(cls, value: str) -> Digest:
        if not isinstance(value, str) or not _SHA256_RE.fullmatch(value):
            raise ValueError(f"not a sha256 digest: {str(value)[:80]!r}")
        return super().__new__(cls, value)

    @classmethod
    def of_hex(cls, hexpart: str) -> Digest:
        if not isinstance(hexpart, str) or not _HEX_RE.fullmatch(hexpart):
            raise ValueError(f"not a sha256 hex digest: {str(hexpart)[:80]!r}")
        return super().__new__(cls, "sha256:" + hexpart)

    @classmethod
    def parse(cls, value: object) -> Digest | None:
        """The digest, or None when the value is not one (untrusted input)."""
        return cls(value) if isinstance(value, str) and _SHA256_RE.fullmatch(value) else None

    @classmethod
    def parse_hex(cls, value: object) -> Digest | None:
        return cls.of_hex(value) if isinstance(value, str) and _HEX_RE.fullmatch(value) else None

    @staticmethod
    def named_by(path: str) -> str | None:
        """What a `blobs/sha256/<name>` path declares, as written: a plain str, since a
        forged name need not be a digest (a Digest when it is one)."""
        if not path.startswith("blobs/sha256/"):
            return None
        name = path[len("blobs/sha256/") :]
        return Digest.parse_hex(name) or "sha256:" + name

    @property
    def algorithm(self) -> str:
        return "sha256"

    @property
    def hex(self) -> str:
        return self[7:]


@dataclass(slots=True)
class LimitHit:
    """A safety limit that left part of the input unanalyzed (README "Limits")."""

    limit: str  # the Limits field
    value: int  # its value
    count: int = 0  # entries left unanalyzed (or bytes, for the decompression limits)
    example: str | None = None  # the first entry name left out


@dataclass(slots=True)
class LayerIndex:
    """What the streaming core read of one layer blob: its uncompressed digest and files."""

    compression: str  # gzip, zstd, none
    diff_id: Digest | None
    uncompressed_size: int
    files: list[FileEntry]  # every member, normalized (the layer's file index)
    unsafe: list[tuple[str, str]]  # (raw name, why) escaping the root
    captured: dict[str, bytes]  # raw member name -> content the analysis reads
    record_digests: dict[str, str]  # raw member name -> "md5:<hex>" / "sha1:<hex>"
    error: str | None  # why the layer could not be read to its end
    trailing_garbage: int
    is_tar: bool
    over_limit: dict[str, LimitHit]


def record_digest(value: str | None, algo: str) -> str | None:
    """The `algo` digest out of a `LayerIndex.record_digests` value ("md5:<hex>", "md5+sha1:<hex>:<hex>")."""
    if not value:
        return None
    names, _, hexes = value.partition(":")
    for name, hx in zip(names.split("+"), hexes.split(":")):
        if name == algo:
            return hx
    return None


@dataclass(slots=True)
class Entry:
    """One outer entry of the archive (a tar member, or a file of a layout directory)."""

    seq: int  # position in the archive
    name: str  # as stored
    path: str  # normalized (forensics.paths.norm_outer)
    type: str  # file, dir, symlink, hardlink, other
    size: int  # as the header says
    mode: int
    mtime: float
    linkname: str
    sha256: str | None  # hex of the bytes read
    digest: Digest | None  # the same, as a digest
    nbytes: int  # bytes actually read
    sniffed: str | None  # gzip, zstd, tar, json, elf, script, data, ...
    data: bytes | None  # kept content (JSON documents and small metadata)
    layer: LayerIndex | None
    error: str | None  # the entry could not be read to its end
    json_limit: int | None  # a document not kept: larger than this limit


@dataclass
class Archive:
    """Every outer entry and what the pass saw of the container itself."""

    source: str
    is_dir: bool
    input_size: int = 0
    input_sha256: Digest | None = None
    input_compression: str | None = None
    entries: list[Entry] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # damage to the outer container itself
    truncated: bool = False
    over_limit: dict[str, LimitHit] = field(default_factory=dict)  # outer entries left unanalyzed, by limit
    _by_path: dict[str, list[Entry]] = field(default_factory=dict, repr=False)

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self._by_path.setdefault(entry.path, []).append(entry)

    def get_all(self, path: str) -> list[Entry]:
        return self._by_path.get(norm_outer(path)[0], [])

    def get(self, path: str) -> Entry | None:
        """The copy of a path that extraction would leave: the last one."""
        found = self.get_all(path)
        return found[-1] if found else None

    def follow(self, path: str) -> tuple[Entry | None, str]:
        """The entry a path leads to through in-archive symlinks and hardlinks."""
        current, _ = norm_outer(path)
        for _ in range(MAX_LINK_HOPS):
            entry = self.get(current)
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


@dataclass
class Descriptor:
    where: str  # which document and field declared it, for evidence
    media_type: str | None
    digest: str | None  # as declared (sha256 or sha512), or as a docker path implies
    size: int | None
    annotations: dict[str, str] = field(default_factory=dict)
    platform: dict[str, Any] | None = None
    urls: list[str] = field(default_factory=list)
    data: str | None = None
    artifact_type: str | None = None
    path: str | None = None  # where the blob should be in the archive
    entry: Entry | None = None  # the entry found there (after links)
    valid: bool = True  # the digest is well formed
    # What the blob is for, which decides what its absence means: "top" (an index.json
    # entry), "child" (a manifest or index inside an index), "config", "layer",
    # "artifact-config" / "artifact-blob" (blobs of an artifact manifest).
    role: str = "top"
    parent: str | None = None  # digest of the index a child belongs to
    not_exported: bool = False  # a child of an index with nothing at its path

    @property
    def actual(self) -> str | None:
        """The digest of the bytes found, else the declared one."""
        if self.entry is not None and self.entry.digest:
            return self.entry.digest
        return self.digest

    @property
    def matches(self) -> bool:
        """The blob is there, whole, and its bytes are what the descriptor names."""
        e = self.entry
        return (
            e is not None
            and e.error is None
            and e.digest is not None
            and self.digest == e.digest
            and (self.size is None or self.size == e.nbytes)
        )


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
    """One image: its manifest (OCI), config and layers, as the archive holds them."""

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
    """What a reader made of the archive: its format, images, artifacts, and its findings."""

    format: Format
    archive: Archive  # every reader reads one (forensics.read.builder)
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
