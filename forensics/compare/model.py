"""Pydantic models of `forensics diff A B`: what the JSON output holds.

A is the reference (a registry image, yesterday's image), B the one under
question (a local rebuild, today's image). "added" means only in B, "removed"
only in A. Every string quoted from either image is attacker-controlled.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, computed_field

from forensics.models import CaseRecord, ContentKind, FileType, Finding, InputInfo

COMPARISON_SCHEMA_VERSION = 1

# The attributes a path is compared on, in the order they are reported.
WHAT_ORDER = ("type", "content", "size", "mode", "owner", "link", "mtime")


class PathState(BaseModel):
    """One path of a merged filesystem (after all layers, or after one step)."""

    type: FileType  # hardlinks are reported as "file": a hardlink and a copy hold the same bytes
    mode: int  # permission bits (mode & 0o7777)
    uid: int
    gid: int
    size: int | None = None  # regular files only (hardlinks: their target's size)
    sha256: str | None = None  # regular files only, hardlinks resolved
    link: str | None = None  # symlink target
    mtime: float | None = None
    kind: ContentKind | None = None  # elf / script / empty / data, from the first bytes
    layer: int | None = None  # layer that last wrote the path
    history: int | None = None  # history entry owning that layer


class PathDiff(BaseModel):
    path: str
    change: Literal["added", "removed", "changed"]  # added: only in B; removed: only in A
    what: list[str] = Field(default_factory=list)  # subset of WHAT_ORDER (changed only)
    a: PathState | None = None
    b: PathState | None = None
    detail: str = ""  # the difference in one line, for people
    noise: str | None = None  # the noise rule (pattern) that classes it as rebuild noise
    expected: str | None = None  # the rule (pattern) that expects it to differ: still a real difference


class ContentDiff(BaseModel):
    added: list[PathDiff] = Field(default_factory=list)
    removed: list[PathDiff] = Field(default_factory=list)
    changed: list[PathDiff] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> int:
        return len(self.added) + len(self.removed) + len(self.changed)

    def all(self) -> list[PathDiff]:
        return sorted(self.added + self.removed + self.changed, key=lambda d: d.path)


class NoiseRule(BaseModel):
    pattern: str  # glob over absolute paths: * within a name, ** across directories
    reason: str
    when: Literal["always", "empty", "timestamps", "expected"] = "always"
    # always: any difference at a matching path is noise;
    # empty: only when each side is absent, a directory or an empty file (mount-point stubs);
    # timestamps: only when the contents are equal once the timestamps the format holds are masked;
    # expected: never noise, the difference is labelled "expected to differ" and counted
    normalizer: str | None = None  # for when == "timestamps": shadow-lastchg, gzip-mtime, pyc-header
    origin: Literal["default", "option"] = "default"


class HistoryLine(BaseModel):
    status: Literal["equal", "changed", "added", "removed"]  # added: only in B
    a_index: int | None = None  # history index in A
    b_index: int | None = None
    a: str | None = None  # created_by, trimmed (as container-diff compares it)
    b: str | None = None
    created_differs: bool = False  # equal lines whose `created` timestamps differ


class HistoryComparison(BaseModel):
    equal: bool  # every trimmed created_by line equal, in order
    lines: list[HistoryLine] = Field(default_factory=list)
    only_in_a: list[str] = Field(default_factory=list)  # container-diff: set differences of the lines
    only_in_b: list[str] = Field(default_factory=list)
    created_differs: int = 0  # equal lines with different `created` (a rebuild always has)
    container_diff: str = ""  # the history analyzer's text, for reference


class StepComparison(BaseModel):
    """One step (a layer-owning history entry) of A paired with one of B."""

    status: Literal["equal", "differs", "noise", "only-in-a", "only-in-b"]
    a_history: int | None = None
    b_history: int | None = None
    a_layer: int | None = None
    b_layer: int | None = None
    created_by: str | None = None  # A's line (B's when only in B)
    b_created_by: str | None = None  # B's line when it differs from A's
    label: str = ""  # short form: `RUN ...`, `COPY ...`
    history_equal: bool = True
    paths: list[PathDiff] = Field(default_factory=list)  # what the step changed differently (real)
    noise: list[PathDiff] = Field(default_factory=list)
    paths_total: int = 0  # before capping
    noise_total: int = 0
    first_divergence: bool = False  # the step `Comparison.divergence` describes


class Divergence(BaseModel):
    step: int  # A's history index (B's when the step is only in B); B's is b_step
    b_step: int | None = None
    created_by: str | None = None
    label: str = ""
    layer_a: int | None = None
    layer_b: int | None = None
    paths: list[PathDiff] = Field(default_factory=list)  # ranked, most telling first (capped)
    paths_total: int = 0
    summary: str = ""  # "`/usr/bin/x` is a 62-byte shell script in B, a 70.0 KiB ELF in A"


class SideSummary(BaseModel):
    """One of the two inputs, summarized: the full reports come from `forensics scan --json`."""

    input: InputInfo
    format: str
    verdict: str
    image: int  # index of the chosen image in the archive
    images: int  # how many images the archive holds
    refs: list[str] = Field(default_factory=list)
    platform: str | None = None
    manifest_digest: str | None = None
    config_digest: str | None = None
    layers: int = 0
    diff_ids: list[str | None] = Field(default_factory=list)
    missing_layers: list[int] = Field(default_factory=list)  # merged filesystem incomplete without them
    history_entries: int = 0
    files: int = 0  # paths in the merged filesystem
    findings: list[Finding] = Field(default_factory=list)
    finding_counts: dict[str, int] = Field(default_factory=dict)


class Comparison(BaseModel):
    schema_version: int = COMPARISON_SCHEMA_VERSION
    tool: str = "forensics"
    version: str = ""
    a: SideSummary
    b: SideSummary
    same_image: bool = False  # same config digest, or same diff_ids: the same layers, whatever the format
    times: bool = False  # mtimes compared (--times)
    history: HistoryComparison
    history_equal: bool
    content: ContentDiff = Field(default_factory=ContentDiff)
    noise: ContentDiff = Field(default_factory=ContentDiff)
    noise_rules: list[NoiseRule] = Field(default_factory=list)
    steps: list[StepComparison] = Field(default_factory=list)
    divergence: Divergence | None = None
    content_equal: bool
    verdict: Literal["same", "differs"]
    headline: str
    findings: list[Finding] = Field(default_factory=list)
    findings_omitted: int = 0  # compare.content-differs findings beyond the cap (the content lists hold all)
    notes: list[str] = Field(default_factory=list)
    case: CaseRecord | None = None  # --case, --examiner, --note and where the comparison ran
