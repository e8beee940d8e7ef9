"""Pydantic models: the contract between read -> verify -> analyze -> render.

Everything here is computed from the bytes read unless a field name says
`declared_`. `forensics schema` prints the JSON Schema of `Report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class Severity(StrEnum):
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
    # A stable identifier to cite ("F-3f9c0a1b2d"): a digest of what the finding is about,
    # so the same input gives the same identifiers (forensics.findings.assign_ids).
    id: str | None = None
    image: int | None = None
    layer: int | None = None
    history: int | None = None
    path: str | None = None
    digest: str | None = None
    entry: str | None = None
    evidence: dict[str, Any] | None = None


FileType = Literal["file", "dir", "symlink", "hardlink", "char", "block", "fifo", "whiteout", "opaque", "other"]
ContentKind = Literal["elf", "script", "empty", "data"]


# FileEntry and PathChange are slotted dataclasses, not BaseModels: there is one per layer
# entry and one per changed path (375,000 of each in a large image), and a model's
# per-instance __dict__ is about 550 bytes against 130 for the slots. Pydantic validates
# and serializes them as fields of the report models exactly as it did the models.
@dataclass(slots=True)
class FileEntry:
    """One entry of a layer tar, as recorded in its header plus what its content is."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

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


@dataclass(slots=True)
class PathChange:
    """One path a layer changed, against the merged filesystem of the layers below."""

    path: str
    change: ChangeKind
    type: FileType  # the type in this layer (for deletions: the type that was deleted)
    what: list[str] = field(default_factory=list)  # for modified: content, mode, owner, type, link, metadata
    size: int | None = None
    sha256: str | None = None
    before_sha256: str | None = None
    link: str | None = None  # symlink target
    explained_by: str | None = None  # why the step accounts for it; None = unexplained
    # How far the explanation goes: "verified" (what the command produces there was
    # checked: literal bytes, a symlink target, a copied file's content, unchanged
    # content), "package" (the package manager's doing: a file of a package the step
    # installs, its bookkeeping, its maintainer scripts), "unverified" (the command names
    # this very path, its bytes come from outside: a download, a COPY of one file),
    # "tree" (only a tree or opaque claim covers it: an archive extracted, a program the
    # analysis cannot see into), "builder" (build-container noise, parent directories).
    # None when unexplained.
    assurance: Literal["verified", "package", "unverified", "tree", "builder"] | None = None
    # What the entry is in this layer (added, modified) and what it was in the merged lower
    # layers (modified, deleted), so a report can cite both sides: "49,152 -> 200 bytes".
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    before_type: FileType | None = None
    before_size: int | None = None
    before_mode: int | None = None
    before_uid: int | None = None
    before_gid: int | None = None
    before_link: str | None = None


class StepInstruction(BaseModel):
    """What a history line says, parsed (forensics.history.instructions)."""

    kind: str  # RUN, COPY, ADD, WORKDIR, ENV, ..., UNKNOWN
    builder: str  # classic, buildkit, buildah, kaniko, docker-commit, docker-import, debuerreotype, unknown
    args: str = ""
    dest: str | None = None
    sources: list[str] = Field(default_factory=list)
    metadata_only: bool = False


class CopyHashStatus(BaseModel):
    """The COPY/ADD source hash in `created_by`, recomputed from the layer (history.copyhash)."""

    status: Literal["verified", "mismatch", "cannot-recompute"]
    recorded: str  # file:<hex>, dir:<hex>, multi:<hex> or :<hex> (a bare hex)
    matched_as: str | None = None  # verified (or a mismatch of extra files): which algorithm, what it assumed
    # verified: the layer paths the hash covers; mismatch: those it does not match, or, when the hash
    # matched one file of a `COPY f /dir/`, the other entries the layer holds there
    paths: list[str] = Field(default_factory=list)
    tried: list[str] = Field(default_factory=list)  # mismatch: what was recomputed (prefixes of the hashes)
    reason: str | None = None  # cannot-recompute: why


class StepAnalysis(BaseModel):
    instruction: StepInstruction
    counts: dict[str, int] = Field(default_factory=dict)  # added / deleted / modified / explained / unexplained
    explained: list[PathChange] = Field(default_factory=list)
    unexplained: list[PathChange] = Field(default_factory=list)
    findings: list[int] = Field(default_factory=list)  # indexes into Report.findings
    copy_hash: CopyHashStatus | None = None  # COPY/ADD steps that record a source hash


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


class CoverageGap(BaseModel):
    """Files one step put in the image whose content nothing in the image vouches for."""

    history: int | None  # the step (None: a layer no history entry owns)
    command: str | None = None
    files: int = 0
    bytes: int = 0
    why: str = ""


class Coverage(BaseModel):
    """What vouches for each regular file of the image's final filesystem (forensics.history.coverage).

    verified_earlier_record: a package digest recorded by an earlier layer than the file's.
    verified_same_step: a digest recorded by the same step that wrote the file (dpkg md5sums,
    pip RECORD): whoever controlled that step could have rewritten both, so this is
    consistency, not proof. verified_claim: what the command produces was checked (literal
    bytes, a copy of a file in the image, content unchanged). verified_copy_hash: a COPY/ADD
    source hash recomputed from the layer. unverifiable: the step's own path or tree with
    content from outside (a download, an archive, a COPY of the build context, a program the
    analysis cannot see into). contradicted: a digest or claim says otherwise (a finding).
    unexplained: no step accounts for it (a finding).
    """

    files: int = 0
    bytes: int = 0
    verified_earlier_record: FileBytes = Field(default_factory=FileBytes)
    verified_same_step: FileBytes = Field(default_factory=FileBytes)
    verified_claim: FileBytes = Field(default_factory=FileBytes)
    verified_copy_hash: FileBytes = Field(default_factory=FileBytes)
    unverifiable: FileBytes = Field(default_factory=FileBytes)
    contradicted: FileBytes = Field(default_factory=FileBytes)
    unexplained: FileBytes = Field(default_factory=FileBytes)
    absent_platforms: int = 0  # platform manifests named by the index but not in the archive
    gaps: list[CoverageGap] = Field(default_factory=list)  # the largest unverifiable steps first
    advice: list[str] = Field(default_factory=list)  # how to close what is left, in sentences
    # In a --known-good hash set you supplied (forensics.hashsets), where nothing stronger
    # vouches for the file: its bytes are ones you already know, whoever put them there.
    verified_known_good: FileBytes = Field(default_factory=FileBytes)


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
    coverage: Coverage | None = None  # filled by the history analysis
    package_coverage: PackageCoverage | None = None  # filled by the history analysis


class Blob(BaseModel):
    name: str  # outer entry name as stored
    digest: str | None  # sha256 of the bytes read (None for links and directories)
    size: int
    kind: str  # index, manifest, config, layer, artifact, artifact-blob, metadata, link, unreferenced, other
    declared_digest: str | None = None  # what the file name says, for blobs/<alg>/<hex>
    link: str | None = None


class ArtifactBlob(BaseModel):
    """One blob of an artifact: checked against its descriptor, never unpacked."""

    role: Literal["config", "blob"]
    media_type: str | None = None
    digest: str | None = None  # as declared
    size: int | None = None  # as declared
    present: bool = False
    verified: bool = False  # present, and its bytes hash to the digest with the declared size
    annotations: dict[str, str] = Field(default_factory=dict)


class Artifact(BaseModel):
    """A manifest that is not an image (a signature, an attestation, an SBOM, any OCI
    artifact): listed with what it is about; it has no layers or rootfs to check."""

    index: int
    kind: Literal["signature", "attestation", "sbom", "artifact"]
    artifact_type: str | None = None  # artifactType, else the config media type
    manifest_digest: str | None = None
    manifest_media_type: str | None = None
    size: int | None = None  # of the manifest, as declared
    verified: bool = False  # the manifest's own bytes match its descriptor
    subject: str | None = None  # the manifest it refers to (OCI 1.1 subject, BuildKit reference)
    subject_in_archive: bool | None = None  # None when it names no subject
    refs: list[str] = Field(default_factory=list)
    why: str = ""  # why it is not an image
    blobs: list[ArtifactBlob] = Field(default_factory=list)


class NotExported(BaseModel):
    """A child of an index that the export left out: named, but not in the archive."""

    index_digest: str | None  # the index that names it (None: index.json)
    refs: list[str] = Field(default_factory=list)
    digest: str | None = None
    media_type: str | None = None
    kind: str  # platform, attestation, index, referrer, other
    platform: str | None = None


SignatureStatus = Literal["verified", "invalid", "subject-mismatch", "unverified", "unsigned"]


class SignatureRecord(BaseModel):
    """One signature found in the archive (forensics.signatures): what it claims, whether the
    archive holds what it claims, and what checking it established."""

    index: int
    format: Literal["cosign", "sigstore-bundle", "notation"]
    envelope: str  # simple-signing, dsse, message-signature, jws, cose
    artifact: int | None = None  # index into Report.artifacts
    manifest_digest: str | None = None  # of the signature manifest
    attached_to: str | None = None  # the digest its tag or OCI 1.1 subject names
    signed_digest: str | None = None  # the digest the signed payload names
    subject_held: bool | None = None  # the archive holds a manifest whose bytes hash to it
    images: list[int] = Field(default_factory=list)  # the images it covers (their manifest or index)
    docker_reference: str | None = None  # simple-signing critical.identity.docker-reference
    key_id: str | None = None  # as recorded (keyid, publicKey hint, x5c thumbprint)
    identity: str | None = None  # certificate subject alternative name, as recorded
    issuer: str | None = None  # certificate OIDC issuer extension, as recorded
    certificate: bool = False  # carries a certificate (keyless, or notation x5c)
    status: SignatureStatus = "unverified"
    verified_with: str | None = None  # the --key file, or the trusted root
    detail: str = ""


class AttestationSubject(BaseModel):
    name: str = ""
    digest: str | None = None
    held: Literal["manifest", "index", "config", "layer"] | None = None  # what the archive holds under it


class SlsaSummary(BaseModel):
    version: str = ""
    builder_id: str | None = None
    build_type: str | None = None
    parameters: dict[str, str] = Field(default_factory=dict)  # externalParameters / invocation, as text
    materials: list[str] = Field(default_factory=list)  # uri@alg:hex
    materials_omitted: int = 0


class AttestationRecord(BaseModel):
    """One in-toto statement (cosign .att, sigstore bundle, BuildKit attestation manifest, a bare referrer)."""

    index: int
    source: Literal["cosign", "sigstore-bundle", "buildkit", "referrer"]  # referrer: a bare statement (unsigned)
    artifact: int | None = None
    manifest_digest: str | None = None
    attached_to: str | None = None
    predicate_type: str | None = None
    subjects: list[AttestationSubject] = Field(default_factory=list)
    images: list[int] = Field(default_factory=list)  # the images the manifest it is attached to covers
    signed: bool = False  # in a signed envelope (BuildKit statements are not)
    status: SignatureStatus = "unverified"
    verified_with: str | None = None
    key_id: str | None = None
    identity: str | None = None
    slsa: SlsaSummary | None = None
    # An SBOM predicate, parsed, for the comparison with the layers' packages (attestation.sbom-mismatch).
    # In memory only: the archive holds it already, and copied into the report a 16 MB SBOM made
    # a 39 MB JSON; `sbom` says one was there.
    sbom_predicate: Any = Field(default=None, exclude=True)
    sbom: bool = False
    detail: str = ""


class ToolInfo(BaseModel):
    name: str = "forensics"
    version: str


class KeptCopy(BaseModel):
    """The file --keep-input wrote: the exact bytes of the stream that was analyzed."""

    path: str  # as given
    resolved: str  # absolute, symlinks followed
    size: int
    sha256: str  # read back from the file once written; equals InputInfo.sha256


class InputInfo(BaseModel):
    """The evidence: what was read, and the proof it did not change while it was analyzed
    (forensics.evidence)."""

    path: str  # as given on the command line
    size: int  # bytes read from the input (compressed size for a compressed archive)
    sha256: str | None  # of the bytes read, at the start; None for a directory input
    compression: Literal["gzip", "zstd", "none"] | None = None
    kind: Literal["file", "directory", "stream"] | None = None
    resolved: str | None = None  # absolute, symlinks followed, `..` removed; None for a stream
    mtime: str | None = None  # of the file or directory when the run started (UTC, ISO 8601)
    inode: int | None = None
    # Directory: sha256 of the listing of every file of the layout (name, type, content
    # sha256 or link target), from the bytes read.
    listing_sha256: str | None = None
    # `sha256` (a file) or `listing_sha256` (a directory) computed again from the input
    # after the analysis; None for a stream, which cannot be read twice.
    sha256_end: str | None = None
    kept: KeptCopy | None = None  # --keep-input


class CaseRecord(BaseModel):
    """Who ran the analysis, for which case, where and with what: the chain-of-custody block."""

    case: str | None = None  # --case
    examiner: str | None = None  # --examiner
    note: str | None = None  # --note
    host: str | None = None
    user: str | None = None
    platform: str | None = None  # OS and machine
    python: str | None = None
    tool_version: str | None = None
    dependencies: dict[str, str] = Field(default_factory=dict)  # distribution -> version
    command: list[str] = Field(default_factory=list)


class PinResult(BaseModel):
    """One --expect / --expect-file pin, held to the archive: matched or not, and against what."""

    pin: str  # as given: "sha256:<64 hex>" or "NAME@sha256:<64 hex>"
    name: str | None = None  # the ref it names, if any
    digest: str  # the expected digest
    matched: bool
    against: str | None = None  # what it matched: "manifest digest", "image ID", "index digest" ...
    image: int | None = None
    detail: str = ""
    # Where the pin comes from ("--expect" or FILE:LINE of --expect-file) and its outcome:
    # matched, mismatch, or absent (a lock file's pin for a ref this archive does not carry).
    source: str | None = None
    status: Literal["matched", "mismatch", "absent"] | None = None


class Analysis(BaseModel):
    started: str
    finished: str
    seconds: float
    command: list[str] = Field(default_factory=list)
    expect: list[str] = Field(default_factory=list)


class IgnoreRule(BaseModel):
    """One `[[ignore]]` entry of a suppression file (forensics.suppress), and what it did."""

    source: str  # the file, resolved
    entry: int  # its position in the file, from 1
    line: int | None = None  # where `[[ignore]]` starts
    code: str
    paths: list[str] = Field(default_factory=list)  # globs; empty: any path
    digest: str | None = None  # an image, manifest, config or layer digest
    statement: str
    expires: str | None = None  # ISO date; the entry is ignored from that day on
    status: Literal["applied", "unmatched", "expired"] = "applied"
    matched: int = 0  # findings it suppressed


class SuppressionFile(BaseModel):
    path: str  # as resolved
    how: Literal["--ignore", "beside the input", "working directory"]
    sha256: str  # of the bytes read, for the record
    entries: int = 0


class Suppression(BaseModel):
    """Suppression files read for this run: every one is named in every output, since a
    file that sits beside the evidence may have come with it."""

    files: list[SuppressionFile] = Field(default_factory=list)
    rules: list[IgnoreRule] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)  # expired and unmatched entries, in sentences


class SuppressedFinding(BaseModel):
    """A finding an ignore entry matched: out of the verdict and --fail-on, still listed."""

    finding: Finding
    statement: str
    source: str  # the suppression file
    entry: int  # the entry's position in it (IgnoreRule.entry)


class InstalledPackage(BaseModel):
    """A package the image's databases record as installed, in its final filesystem
    (forensics.history.inventory); what `scan --cyclonedx` lists."""

    manager: Literal["dpkg", "apk", "rpm", "pip", "npm"]
    name: str
    version: str  # as the database records it (rpm: [epoch:]version-release)
    arch: str | None = None
    database: str  # the record's file: dpkg status, apk installed, the rpmdb, a RECORD, a package.json
    layer: int | None = None  # the layer from which the record has held this version without interruption
    files: list[str] = Field(default_factory=list)  # the regular files it owns in the final filesystem


class ImagePackages(BaseModel):
    image: int
    os_id: str | None = None  # /etc/os-release ID (debian, alpine, fedora), as the image says
    os_version: str | None = None  # VERSION_ID
    os_name: str | None = None  # PRETTY_NAME
    packages: list[InstalledPackage] = Field(default_factory=list)


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
    artifacts: list[Artifact] = Field(default_factory=list)
    not_exported: list[NotExported] = Field(default_factory=list)  # unverified: not in this export
    findings: list[Finding] = Field(default_factory=list)
    pins: list[PinResult] = Field(default_factory=list)
    case: CaseRecord | None = None
    analysis: Analysis | None = None
    suppressed: list[SuppressedFinding] = Field(default_factory=list)  # forensics.suppress: out of the verdict
    suppression: Suppression | None = None  # the suppression files read, None when none was
    packages: list[ImagePackages] = Field(default_factory=list)  # forensics.history.inventory, per image
    signatures: list[SignatureRecord] = Field(default_factory=list)  # forensics.signatures
    attestations: list[AttestationRecord] = Field(default_factory=list)
    signature_notes: list[str] = Field(default_factory=list)  # what was and could not be checked
