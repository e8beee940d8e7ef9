"""Pydantic models: the contract between read -> verify -> analyze -> render.

Everything here is computed from the bytes read unless a field name says
`declared_`. `forensics schema` prints the JSON Schema of `Report`.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class Severity(str, Enum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"
    info = "info"


class Finding(BaseModel):
    """One observation, in the vocabulary of shared/findings.md.

    The structured fields (image, layer, history, path, digest, entry) say where the
    evidence is; `subject` is the same in one short string for people.
    """

    code: str
    severity: Severity
    subject: str
    detail: str
    image: int | None = None
    layer: int | None = None
    history: int | None = None
    path: str | None = None
    digest: str | None = None
    entry: str | None = None
    evidence: dict[str, Any] | None = None


FileType = Literal["file", "dir", "symlink", "hardlink", "char", "block", "fifo", "whiteout", "opaque", "other"]
ContentKind = Literal["elf", "script", "empty", "data"]


class FileEntry(BaseModel):
    """One entry of a layer tar, as recorded in its header plus what its content is."""

    model_config = ConfigDict(extra="forbid")

    path: str  # normalized absolute path; for whiteouts, the path they delete
    type: FileType
    mode: int
    uid: int
    gid: int
    size: int
    mtime: float
    link: str | None = None  # symlink target or hardlink target (normalized for hardlinks)
    sha256: str | None = None  # hex of the content, regular files only
    kind: ContentKind | None = None  # what the first bytes say (regular files)
    raw_name: str | None = None  # the name as stored, when it differs from `path`


class Layer(BaseModel):
    index: int
    digest: str | None  # as declared by the manifest (docker-archive: computed from the bytes)
    size: int | None  # as declared (docker-archive: computed)
    media_type: str | None
    path_in_archive: str | None
    present: bool
    actual_sha256: str | None = None
    actual_size: int | None = None
    compression: Literal["gzip", "zstd", "none", "unknown"] | None = None
    diff_id: str | None = None  # sha256 of the uncompressed tar, computed
    declared_diff_id: str | None = None  # rootfs.diff_ids[index]
    entries: int = 0
    files: list[FileEntry] = Field(default_factory=list)


ChangeKind = Literal["added", "deleted", "modified"]


class PathChange(BaseModel):
    """One path a layer changed, against the merged filesystem of the layers below."""

    path: str
    change: ChangeKind
    type: FileType  # the type in this layer (for deletions: the type that was deleted)
    what: list[str] = Field(default_factory=list)  # for modified: content, mode, owner, type, link, metadata
    size: int | None = None
    sha256: str | None = None
    before_sha256: str | None = None
    link: str | None = None  # symlink target
    explained_by: str | None = None  # why the step accounts for it; None = unexplained


class StepInstruction(BaseModel):
    """What a history line says, parsed (forensics.history.instructions)."""

    kind: str  # RUN, COPY, ADD, WORKDIR, ENV, ..., UNKNOWN
    builder: str  # classic, buildkit, buildah, kaniko, docker-commit, docker-import, debuerreotype, unknown
    args: str = ""
    dest: str | None = None
    sources: list[str] = Field(default_factory=list)
    metadata_only: bool = False


class StepAnalysis(BaseModel):
    instruction: StepInstruction
    counts: dict[str, int] = Field(default_factory=dict)  # added / deleted / modified / explained / unexplained
    explained: list[PathChange] = Field(default_factory=list)
    unexplained: list[PathChange] = Field(default_factory=list)
    findings: list[int] = Field(default_factory=list)  # indexes into Report.findings


class HistoryEntry(BaseModel):
    index: int
    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool = False
    layer_index: int | None = None
    analysis: StepAnalysis | None = None  # filled by the history analysis


class ConfigSummary(BaseModel):
    os: str | None = None
    architecture: str | None = None
    variant: str | None = None
    created: str | None = None
    author: str | None = None
    user: str | None = None
    workdir: str | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = Field(default_factory=list)
    exposed_ports: list[str] = Field(default_factory=list)
    volumes: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)


class FileBytes(BaseModel):
    files: int = 0
    bytes: int = 0


class PackageCoverage(BaseModel):
    """How far the package records inside the image vouch for the files they claim
    (forensics.history.pkgdigests). Each regular file a record claims is counted once:
    mismatched, else verified against a record an earlier layer wrote, else verified
    against a record written in the same step as the file (or later), else unverifiable.
    A same-step match is no proof: whoever controlled that step could have written the
    record too."""

    mode: Literal["all", "changed"] = "all"  # --verify-packages
    verified_against_earlier_record: FileBytes = Field(default_factory=FileBytes)
    verified_same_step_record: FileBytes = Field(default_factory=FileBytes)
    mismatched: FileBytes = Field(default_factory=FileBytes)
    unverifiable: dict[str, FileBytes] = Field(default_factory=dict)  # reason -> count
    records_absent: int = 0  # recorded regular files not in the image (path-exclude, docs stripped)
    packages: dict[str, int] = Field(default_factory=dict)  # manager -> packages recorded


class Image(BaseModel):
    index: int
    refs: list[str] = Field(default_factory=list)
    platform: str | None = None
    manifest_digest: str | None = None  # only where the archive holds a real manifest blob
    manifest_media_type: str | None = None
    config_digest: str | None = None  # sha256 of the config bytes as found (the image ID)
    declared_config_digest: str | None = None
    config: ConfigSummary | None = None
    layers: list[Layer] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)
    manifest_text: str | None = None
    config_text: str | None = None
    package_coverage: PackageCoverage | None = None  # filled by the history analysis


class Blob(BaseModel):
    name: str  # outer entry name as stored
    digest: str | None  # sha256 of the bytes read (None for links and directories)
    size: int
    kind: str  # index, manifest, config, layer, metadata, link, unreferenced, other
    declared_digest: str | None = None  # what the file name says, for blobs/<alg>/<hex>
    link: str | None = None


class ToolInfo(BaseModel):
    name: str = "forensics"
    version: str


class InputInfo(BaseModel):
    path: str
    size: int  # bytes read from the input (compressed size for a compressed archive)
    sha256: str | None  # of the bytes read; None for a directory input
    compression: Literal["gzip", "zstd", "none"] | None = None


class Analysis(BaseModel):
    started: str
    finished: str
    seconds: float
    command: list[str] = Field(default_factory=list)
    expect: list[str] = Field(default_factory=list)


Format = Literal["docker-archive", "docker-archive+oci", "oci-archive", "oci-layout", "unknown"]
Verdict = Literal["clean", "suspicious", "tampered", "unreadable"]


class Report(BaseModel):
    schema_version: int = SCHEMA_VERSION
    tool: ToolInfo
    input: InputInfo
    format: Format
    verdict: Verdict = "clean"
    images: list[Image] = Field(default_factory=list)
    blobs: list[Blob] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    analysis: Analysis | None = None
