"""read -> model -> verify -> analyze: one function from an input path to a Report."""

from __future__ import annotations

import dataclasses
import functools
import gc
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

from forensics import __version__
from forensics.archive.layerscan import Limits
from forensics.evidence import Custody
from forensics.findings import SEVERITY_RANK, assign_ids, sort_findings
from forensics.hashsets import HashSet
from forensics.history import accounts, analyze_images, inventory, unitlinks
from forensics.history.coverage import set_absent_platforms
from forensics.history.early import EarlyHistory
from forensics.history.npmcache import Tarballs
from forensics.models import (
    Analysis,
    Artifact,
    ArtifactBlob,
    Blob,
    ConfigSummary,
    FileEntry,
    Finding,
    HistoryEntry,
    Image,
    ImagePackages,
    Layer,
    NotExported,
    Report,
    Severity,
    ToolInfo,
    Verdict,
)
from forensics.packages import is_db_path, is_maintainer_script
from forensics.packages.langdb import capture_name as lang_capture
from forensics.paths import norm_layer_path
from forensics.read import read_input
from forensics.read.model import Archive, Digest, LimitHit, Resolved, ResolvedImage
from forensics.read.seekable import SeekableSource
from forensics.read.source import NoSource
from forensics.signatures import Signing
from forensics.signatures import check as check_signatures
from forensics.untrusted import Doc
from forensics.verify import blobs, knownbad, layers, refs, structure
from forensics.verify.limits import check_limits, limit_finding

ProgressFn = Callable[[int, int | None], None]
P = ParamSpec("P")
R = TypeVar("R")


# Every package-database path contains one of these; the regexes run only on those names.
_DB_HINTS = ("dpkg", "apk/", "rpm")
_OTHER_TAILS = accounts.TAILS + unitlinks.TAILS + inventory.TAILS


def _capture(name: str, size: int) -> bool:
    """Keep the content of package databases, account files and unit files: the history analysis reads them.
    Called for every file of every layer on the hashing thread, so it must be cheap."""
    if any(h in name for h in _DB_HINTS):
        path = norm_layer_path(name)[0]
        if is_db_path(path) or is_maintainer_script(path):
            return True
    if lang_capture(name, size):  # pip RECORD, egg installed-files.txt, npm package.json
        return True
    # Account files, sysusers.d snippets and unit files: one endswith test before any call.
    return name.endswith(_OTHER_TAILS) and (
        accounts.wants_capture(name, size) or unitlinks.wants_capture(name, size) or inventory.wants_capture(name, size)
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _config_summary(cfg: dict | None, doc: Doc) -> ConfigSummary | None:
    if not isinstance(cfg, dict):
        return None
    c = doc.obj(cfg, "config", "config") or {}
    return ConfigSummary(
        os=doc.text(cfg, "os", "os"),
        architecture=doc.text(cfg, "architecture", "architecture"),
        variant=doc.text(cfg, "variant", "variant"),
        created=doc.text(cfg, "created", "created", "medium"),
        author=doc.text(cfg, "author", "author"),
        user=doc.text(c, "User", "config.User"),
        workdir=doc.text(c, "WorkingDir", "config.WorkingDir"),
        entrypoint=doc.texts(c, "Entrypoint", "config.Entrypoint"),
        cmd=doc.texts(c, "Cmd", "config.Cmd"),
        env=doc.texts(c, "Env", "config.Env") or [],
        exposed_ports=doc.key_set(c, "ExposedPorts", "config.ExposedPorts") or [],
        volumes=doc.key_set(c, "Volumes", "config.Volumes") or [],
        labels=doc.text_map(c, "Labels", "config.Labels") or {},
    )


def _history(cfg: dict | None, doc: Doc, max_history: int) -> list[HistoryEntry]:
    raw = doc.objs(cfg, "history", "history", "medium") or []
    if len(raw) > max_history:
        doc.findings.append(
            limit_finding(
                LimitHit("max_history", max_history, len(raw) - max_history),
                doc.where,
                image=doc.image,
                entry=doc.entry,
            )
        )
        raw = raw[:max_history]
    out: list[HistoryEntry] = []
    layer = 0
    for i, h in enumerate(raw):
        at = f"history[{i}]"
        empty = doc.flag(h, "empty_layer", f"{at}.empty_layer", "medium") is True
        out.append(
            HistoryEntry(
                index=i,
                created=doc.text(h, "created", f"{at}.created", "medium"),
                created_by=doc.text(h, "created_by", f"{at}.created_by", "medium"),
                author=doc.text(h, "author", f"{at}.author"),
                comment=doc.text(h, "comment", f"{at}.comment"),
                empty_layer=empty,
                layer_index=None if empty else layer,
            )
        )
        if not empty:
            layer += 1
    return out


def _text(data: bytes | None) -> str | None:
    return data.decode("utf-8", "replace") if data is not None else None


class _Allowance:
    """Layer entries the history stage may analyze, counted per layer *reference*: a
    manifest listing one 5,000-file layer 100 times would otherwise make 500,000 entries
    of analysis and JSON out of 5,000 read. The same allowance as the reader's."""

    def __init__(self, limits: Limits, input_size: int) -> None:
        self.value = min(limits.max_entries, max(limits.entries_floor, input_size // limits.input_bytes_per_entry))
        self.left = self.value
        self.hit: LimitHit | None = None

    def take(self, files: list[FileEntry], name: str) -> list[FileEntry]:
        if len(files) <= self.left:
            self.left -= len(files)
            return files
        if self.hit is None:
            self.hit = LimitHit("analyzed_entries", self.value, 0, name)
        self.hit.count += len(files)
        return []


def _build_image(
    img: ResolvedImage,
    files_by_entry: dict[str, list[FileEntry]],
    found: list[Finding],
    limits: Limits,
    allowance: _Allowance,
) -> Image:
    """The image's model; the config's wrongly typed fields are appended to `found`."""
    layers_out: list[Layer] = []
    for lr in img.layers:
        d, e = lr.descriptor, lr.descriptor.entry
        docker = img.source == "docker"
        scan = e.layer if e is not None else None
        layers_out.append(
            Layer(
                index=lr.index,
                digest=(d.actual if docker else d.digest),
                size=(e.nbytes if docker and e is not None else d.size),
                media_type=d.media_type,
                path_in_archive=d.path,
                present=e is not None and e.error is None,  # a truncated blob is not the blob
                actual_sha256=e.digest if e is not None else None,
                actual_size=e.nbytes if e is not None else None,
                compression=(scan.compression if scan else ("unknown" if e is not None else None)),
                diff_id=scan.diff_id if scan else None,
                declared_diff_id=lr.declared_diff_id,
                entries=len(scan.files) if scan else 0,
                files=allowance.take(files_by_entry.get(e.path, []), e.name) if e is not None else [],
            )
        )
    where = f"config {img.config.entry.name}" if img.config and img.config.entry else "config"
    doc = Doc(where, image=img.index, entry=img.config.entry.name if img.config and img.config.entry else None)
    config, history = _config_summary(img.config_doc, doc), _history(img.config_doc, doc, limits.max_history)
    found += doc.done()
    return Image(
        index=img.index,
        refs=img.refs,
        platform=img.platform,
        manifest_digest=img.manifest.actual if img.manifest else None,
        manifest_media_type=img.manifest.media_type if img.manifest else None,
        config_digest=img.config.actual if img.config else None,
        declared_config_digest=img.config.digest if img.config else None,
        config=config,
        layers=layers_out,
        history=history,
        manifest_text=_text(img.manifest.entry.data) if img.manifest and img.manifest.entry else None,
        config_text=_text(img.config.entry.data) if img.config and img.config.entry else None,
    )


def _blob_kinds(res: Resolved) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for d in res.descriptors:
        if d.path and d.entry is not None:
            kinds.setdefault(d.entry.path, "manifest")
    for img in res.images:
        if img.manifest and img.manifest.entry:
            kinds[img.manifest.entry.path] = "manifest"
        if img.config and img.config.entry:
            kinds[img.config.entry.path] = "config"
        for lr in img.layers:
            if lr.descriptor.entry:
                kinds[lr.descriptor.entry.path] = "layer"
    for d in res.descriptors:
        if d.entry is not None and d.media_type and "index" in d.media_type:
            kinds[d.entry.path] = "index"
    for art in res.artifact_refs:
        for b in [art.config, *art.blobs]:
            if b is not None and b.entry is not None and kinds.get(b.entry.path) in (None, "manifest"):
                kinds[b.entry.path] = "artifact-blob"  # unless an image uses the same bytes
    for d in res.artifacts:
        if d.entry is not None:
            kinds[d.entry.path] = "artifact"
    return kinds


def _artifacts(res: Resolved) -> list[Artifact]:
    held = {d.actual for d in res.descriptors if d.entry is not None and d.role in ("top", "child")}
    out: list[Artifact] = []
    for n, art in enumerate(res.artifact_refs):
        blobs = [
            ArtifactBlob(
                role="config" if b is art.config else "blob",
                media_type=b.media_type,
                digest=b.digest,
                size=b.size,
                present=b.entry is not None,
                verified=b.matches,
                annotations=dict(list(b.annotations.items())[:16]),
            )
            for b in ([art.config] if art.config is not None else []) + art.blobs
        ]
        out.append(
            Artifact(
                index=n,
                kind=art.kind,
                artifact_type=art.artifact_type,
                manifest_digest=art.manifest.digest,
                manifest_media_type=art.manifest.media_type
                or (art.doc["mediaType"] if isinstance(art.doc.get("mediaType"), str) else None),
                size=art.manifest.size,
                verified=art.manifest.matches,
                subject=art.subject,
                subject_in_archive=(art.subject in held) if art.subject else None,
                refs=art.refs,
                why=art.why,
                blobs=blobs,
            )
        )
    return out


def _not_exported(res: Resolved) -> list[NotExported]:
    return [
        NotExported(
            index_digest=ic.descriptor.digest if ic.descriptor else None,
            refs=ic.refs,
            digest=a.descriptor.digest,
            media_type=a.descriptor.media_type,
            kind=a.kind,
            platform=a.platform,
        )
        for ic in res.index_children
        for a in ic.absent
    ]


def _blobs(inv: Archive, res: Resolved) -> list[Blob]:
    kinds = _blob_kinds(res)
    out: list[Blob] = []
    for e in inv.entries:
        if e.type == "dir":
            continue
        if e.type in ("symlink", "hardlink"):
            out.append(Blob(name=e.name, digest=None, size=0, kind="link", link=e.linkname))
            continue
        kind = kinds.get(e.path)
        if kind is None:
            if (
                e.path in ("index.json", "manifest.json", "oci-layout", "repositories")
                or e.path.endswith(("/json", "/VERSION"))
                or e.path == "VERSION"
            ):
                kind = "metadata"
            elif e.path in res.referenced:
                kind = "referenced"
            else:
                kind = "unreferenced"
        declared = Digest.named_by(e.path)
        out.append(
            Blob(
                name=e.name,
                digest=e.digest,
                size=e.nbytes,
                kind=kind,
                declared_digest=declared,
            )
        )
    return out


def _verify(inv: Archive, res: Resolved, expect: list[refs.Pin]) -> tuple[list[Finding], dict[str, list[FileEntry]]]:
    f: list[Finding] = list(res.findings) + check_limits(inv, res)
    if res.format == "unknown":
        # Not an image archive: nothing to verify against, but say if it was cut short.
        return f + [x for x in structure.check_outer(inv, res) if x.code == "archive.malformed"], {}
    f += structure.check_outer(inv, res)
    f += blobs.check_blob_names(inv, res)
    checked: set[int] = set()
    for img in res.images:
        if img.manifest is not None:
            f += blobs.check_descriptor(img.manifest, "manifest", image=img.index)
            checked.add(id(img.manifest))
        if img.config is not None:
            f += blobs.check_descriptor(img.config, "config", image=img.index)
            checked.add(id(img.config))
        for lr in img.layers:
            f += blobs.check_descriptor(lr.descriptor, "layer", image=img.index, layer=lr.index)
            f += blobs.check_media_type(lr.descriptor, "layer", image=img.index, layer=lr.index)
            checked.add(id(lr.descriptor))
        f += layers.check_layers(img)
    roles = {
        "artifact-config": "artifact config",
        "artifact-blob": "artifact blob",
        "layer": "layer",
        "config": "config",
    }
    for d in res.descriptors:
        if id(d) not in checked:
            f += blobs.check_descriptor(
                d, "index" if d.media_type and "index" in d.media_type else roles.get(d.role, "blob")
            )
    f += blobs.check_not_exported(res)
    f += blobs.check_unreferenced(inv, res)
    f += structure.check_layer_stream(res)
    f += refs.check_conflicts(res, inv)
    f += refs.check_pins(res, expect)

    files_by_entry: dict[str, list[FileEntry]] = {}
    for img in res.images:
        for lr in img.layers:
            e = lr.descriptor.entry
            if e is None or e.layer is None or e.path in files_by_entry:
                continue
            entries, escaping = e.layer.files, e.layer.unsafe
            files_by_entry[e.path] = entries
            f += structure.check_layer_entries(lr.index, e.name, entries, escaping, image_index=img.index)
    return f, files_by_entry


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: dict[tuple, Finding] = {}
    for x in findings:
        key = (x.code, x.subject, x.path, x.entry if x.layer is None else None, x.detail)
        prev = seen.get(key)
        if prev is None or (prev.layer is None and x.layer is not None):
            seen[key] = x
    return list(seen.values())


def member_source(source: str):
    """How the history stage reads file contents again: from a file or a directory, not stdin."""
    return NoSource() if source == "-" else SeekableSource(source)


def verdict_for(findings: list[Finding], fmt: str) -> Verdict:
    if fmt == "unknown" or any(x.code == "archive.unknown-format" for x in findings):
        return "unreadable"
    worst = min((SEVERITY_RANK[x.severity] for x in findings), default=99)
    if worst <= SEVERITY_RANK[Severity.high]:
        return "tampered"
    if worst <= SEVERITY_RANK[Severity.medium]:
        return "suspicious"
    return "clean"


# The analysis allocates millions of small objects that live to its end (a FileEntry and a
# PathChange per layer entry, their strings), none of them in cycles; at the default gen-0
# threshold (700 allocations) the cyclic collector traverses them about 2,400 times on a
# 375,000-entry image, 2 of its 7 parent CPU-s. Collections still run, a hundred times less often.
GC_GEN0 = 70_000


def _fewer_collections(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        old = gc.get_threshold()
        gc.set_threshold(max(old[0], GC_GEN0), *old[1:])
        try:
            return fn(*args, **kwargs)
        finally:
            gc.set_threshold(*old)

    return run


@_fewer_collections
def analyze(
    source: str,
    *,
    expect: Sequence[str | refs.Pin] | None = None,
    progress: ProgressFn | None = None,
    limits: Limits | None = None,
    history: bool = True,
    command: list[str] | None = None,
    verify_packages: str = "all",
    custody: Custody | None = None,
    signing: Signing | None = None,
    known_bad: HashSet | None = None,
    known_good: HashSet | None = None,
    on_read: Callable[[Resolved], None] | None = None,
    md5_in_pass: bool = False,
    npm_tarballs: Tarballs | None = None,
) -> Report:
    """Scan, resolve, verify and (optionally) analyze history; raises InputError if unreadable.

    `custody` fingerprints the input before it is read (and keeps a stream, if asked);
    its end check (Custody.finish) is the caller's, after its last read of the input.
    `known_bad` / `known_good` are the user's hash sets (forensics.hashsets); `on_read` is
    handed the model once read (forensics.export needs the layer blobs and the md5s taken
    in the pass, which the report does not carry); `md5_in_pass` takes those md5s even
    without the history analysis. `npm_tarballs`: package tarballs from outside the image
    that installed npm packages are held to (scan --npm-cache, forensics.history.npmcache)."""
    # Pins are parsed before anything is read: a malformed one is bad usage (PinError), not evidence.
    pins = [p if isinstance(p, refs.Pin) else refs.parse_pin(p) for p in expect or []]
    started, t0 = _now(), time.monotonic()
    custody = custody or Custody.start_of(source)
    # md5/sha1 for package records only when all are checked, or for an export that lists md5s
    # (`forensics hashes`: a dpkg/apk layer's md5s in the pass, not in a second read)
    if (not history or verify_packages != "all") and not md5_in_pass:
        limits = dataclasses.replace(limits or Limits(), record_digests=False)
    lim = limits or Limits()
    # The history replay of each layer as soon as the layers below it are read, while the
    # workers read the rest (forensics.history.early); the images are built again below.
    early = (
        EarlyHistory(
            lambda rimg: _build_image(rimg, {}, [], lim, _Allowance(lim, 0)),
            lambda size: _Allowance(lim, size),
        )
        if history
        else None
    )
    res = read_input(source, capture=_capture, limits=limits, progress=progress, keep=custody.keep, early=early)
    inv = res.archive
    if on_read is not None:
        on_read(res)
    findings, files_by_entry = _verify(inv, res, pins)
    allowance = _Allowance(limits or Limits(), inv.input_size)
    images = [_build_image(img, files_by_entry, findings, limits or Limits(), allowance) for img in res.images]
    if allowance.hit is not None:
        findings.append(limit_finding(allowance.hit, "the layer list"))
    packages: list[ImagePackages] = []  # the inventory (forensics.history.inventory), for --cyclonedx
    if history:
        stage = getattr(progress, "stage", None)
        if stage is not None:
            stage(f"comparing the history with {sum(len(i.layers) for i in images)} layers")
        findings += analyze_images(
            images,
            res,
            member_source(source),
            verify_packages,
            packages,
            known_good=known_good,
            early=early,
            npm_tarballs=npm_tarballs,
        )
    findings += knownbad.check(images, known_bad)
    signed = check_signatures(res, images, signing)  # forensics.signatures: --key, --trusted-root
    findings += signed.findings
    findings = sort_findings(_dedupe(findings))
    assign_ids(findings)
    for n, f in enumerate(findings):  # let each history step point at its findings
        if f.image is not None and f.history is not None and f.image < len(images):
            hist = images[f.image].history
            step = hist[f.history].analysis if f.history < len(hist) else None
            if step is not None:
                step.findings.append(n)
    report = Report(
        tool=ToolInfo(version=__version__),
        input=custody.input_info(inv),
        format=res.format,
        images=images,
        blobs=_blobs(inv, res),
        artifacts=_artifacts(res),
        not_exported=_not_exported(res),
        findings=findings,
        pins=refs.pin_results(res, pins),
        signatures=signed.signatures,
        attestations=signed.attestations,
        signature_notes=signed.notes,
        analysis=Analysis(
            started=started,
            finished=_now(),
            seconds=round(time.monotonic() - t0, 3),
            command=command if command is not None else list(sys.argv),
            expect=[p.text for p in pins],
        ),
        packages=packages,
    )
    report.verdict = verdict_for(findings, res.format)
    _count_absent_platforms(report)
    return report


def _count_absent_platforms(report: Report) -> None:
    """Platform manifests an index names but the export left out are unverified content
    of that image's coverage (the image is the one whose refs the index carries)."""
    absent = [n for n in report.not_exported if n.kind == "platform"]
    for img in report.images:
        if img.coverage is None:
            continue
        mine = [n for n in absent if set(n.refs) & set(img.refs)] or (absent if len(report.images) == 1 else [])
        if mine:
            set_absent_platforms(img.coverage, len(mine))
