"""A guided tour of one archive, built on its analysis (a `Report`): index -> manifest -> config ->
layers -> history, each digest with the shell command that recomputes it by hand and what the
documents say it should be.

The tour reads only the report (the blob list, each image's manifest and config text, layers
and history): the commands name the archive's members as they are stored, so they reproduce the
digests the analysis computed, bytes for bytes. Everything here is data; `render.py` prints it.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from forensics.models import Blob, Finding, Image, Layer, Report

DECOMPRESS = {"gzip": "gzip -dc", "zstd": "zstd -dcq"}


@dataclass
class Check:
    """One digest recomputed in front of the reader."""

    say: str  # what the command computes
    command: str  # one shell line; its output's first field is `digest` without `sha256:`
    digest: str  # what the analysis computed from the bytes
    stated: str | None = None  # what the documents say it should be
    stated_by: str = ""  # where that is written

    @property
    def matches(self) -> bool | None:
        return None if self.stated is None else self.stated == self.digest


@dataclass
class Stop:
    title: str
    says: list[str] = field(default_factory=list)  # what the document says, one fact a line
    checks: list[Check] = field(default_factory=list)
    note: str = ""  # a sentence of teaching for this stop


@dataclass
class Tour:
    source: str
    format: str
    verdict: str
    stops: list[Stop] = field(default_factory=list)
    findings: list[tuple[str, str, int]] = field(default_factory=list)  # (severity, code, count)


class Access:
    """How to read a member of this input by hand: a tar (plain or compressed) or a directory."""

    def __init__(self, report: Report):
        self.path = report.input.path
        self.kind = report.input.kind
        self.outer = report.input.compression if report.input.compression in DECOMPRESS else None

    def read(self, member: str, occurrence: int | None = None) -> str:
        """`occurrence`: the Nth of several entries stored under this name (1-based); without
        --occurrence, `tar -xO` writes every copy, one after the other, and the digest is wrong."""
        q = shlex.quote(member if not member.startswith("-") else "./" + member)
        if self.kind == "directory":
            return f"cat {shlex.quote(self.path.rstrip('/') + '/' + member)}"
        which = f"--occurrence={occurrence} " if occurrence else ""
        if self.outer:
            return f"{DECOMPRESS[self.outer]} {shlex.quote(self.path)} | tar {which}-xOf - {q}"
        return f"tar {which}-xOf {shlex.quote(self.path)} {q}"

    def sha256(self, member: str, occurrence: int | None = None) -> str:
        if self.kind == "directory":
            return f"sha256sum {shlex.quote(self.path.rstrip('/') + '/' + member)}"
        return f"{self.read(member, occurrence)} | sha256sum"

    def diff_id(self, member: str, compression: str | None, occurrence: int | None = None) -> str:
        inflate = DECOMPRESS.get(compression or "")
        if self.kind == "directory" and inflate:
            return f"{inflate} {shlex.quote(self.path.rstrip('/') + '/' + member)} | sha256sum"
        if inflate:
            return f"{self.read(member, occurrence)} | {inflate} | sha256sum"
        return self.sha256(member, occurrence)


def _norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def _obj(doc: dict, key: str) -> dict:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _list(doc: dict, key: str) -> list:
    value = doc.get(key)
    return value if isinstance(value, list) else []


def _doc(text: str | None) -> dict:
    try:
        doc = json.loads(text) if text else None
    except (ValueError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _s(value, limit: int = 200) -> str:
    """A value from the image, short enough for one line (it is the attacker's text)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


class _Blobs:
    def __init__(self, blobs: list[Blob]):
        self.by_name: dict[str, Blob] = {}
        self.by_digest: dict[str, Blob] = {}
        self._nth: dict[int, int] = {}  # id(blob) -> which copy of its stored name, 1-based
        copies: dict[str, int] = {}
        for b in blobs:
            copies[b.name] = copies.get(b.name, 0) + 1
            self._nth[id(b)] = copies[b.name]
            if b.digest is None:  # links and directories hold no bytes to hash
                continue
            # a name stored twice: the last copy is the one extraction keeps and the analysis read
            self.by_name[_norm(b.name)] = b
            self.by_digest.setdefault(b.digest, b)
        self._copies = copies

    def named(self, name: str | None) -> Blob | None:
        return self.by_name.get(_norm(name)) if name else None

    def occurrence(self, b: Blob) -> int | None:
        """The --occurrence that selects this copy, when its name is stored more than once."""
        return self._nth.get(id(b)) if self._copies.get(b.name, 0) > 1 else None


def build_tour(report: Report) -> Tour:
    acc = Access(report)
    blobs = _Blobs(report.blobs)
    tour = Tour(source=report.input.path, format=report.format, verdict=report.verdict)
    tour.stops.append(_input_stop(report))
    tour.stops += _top_stops(report, acc, blobs)
    for img in report.images:
        tour.stops += _image_stops(img, acc, blobs, report.findings)
    counts: dict[tuple[str, str], int] = {}
    for f in report.findings:
        key = (f.severity.value, f.code)
        counts[key] = counts.get(key, 0) + 1
    tour.findings = [(s, c, n) for (s, c), n in counts.items()]
    return tour


def _input_stop(report: Report) -> Stop:
    inp = report.input
    stop = Stop(
        "The input",
        [
            f"{inp.kind or 'input'} of {inp.size:,} bytes, {report.format}"
            + (f", {inp.compression}-compressed as a whole" if inp.compression not in (None, "none") else ""),
            f"{len(report.blobs)} entries, {len(report.images)} image(s)",
        ],
        note="The digest of the whole input is what you record as evidence before anything else.",
    )
    if inp.kind == "file" and inp.sha256:
        stop.checks.append(Check("the sha256 of the file as read", f"sha256sum {shlex.quote(inp.path)}", inp.sha256))
    return stop


def _top_stops(report: Report, acc: Access, blobs: _Blobs) -> list[Stop]:
    out = []
    index = blobs.named("index.json")
    if index is not None:
        stop = Stop(
            "index.json (the OCI image index: the entry point)",
            note="index.json names manifests by digest, media type and platform; a name (ref) is an annotation.",
        )
        stop.checks.append(
            Check(
                "the sha256 of index.json (it has no digest to match: nothing names it)",
                acc.sha256(index.name, blobs.occurrence(index)),
                index.digest or "",
            )
        )
        for img in report.images:
            if img.manifest_digest:
                stop.says.append(
                    f"names image {img.index}: {img.manifest_media_type or 'manifest'} {img.manifest_digest}"
                    + (f", platform {img.platform}" if img.platform else "")
                    + (f", refs {_s(', '.join(img.refs))}" if img.refs else "")
                )
        for a in report.artifacts:
            stop.says.append(f"names a {a.kind}: {a.manifest_digest or '-'} ({_s(a.artifact_type or '-')})")
        for n in report.not_exported:
            stop.says.append(
                f"names {n.kind} {n.digest or '-'} ({n.platform or n.media_type or '-'}): not in this export"
            )
        out.append(stop)
    for b in report.blobs:
        if b.kind == "index" and b.digest:
            stop = Stop(
                f"nested index {b.digest}", note="An index inside blobs/, named by index.json: it lists the platforms."
            )
            stop.checks.append(
                Check(
                    "the sha256 of the nested index",
                    acc.sha256(b.name, blobs.occurrence(b)),
                    b.digest,
                    b.declared_digest,
                    "its name",
                )
            )
            out.append(stop)
    manifest_json = blobs.named("manifest.json")
    if manifest_json is not None:
        stop = Stop(
            "manifest.json (the docker-save index)",
            note="docker load reads manifest.json: per image, the config file, the layer files in order and the tags.",
        )
        stop.checks.append(
            Check(
                "the sha256 of manifest.json (nothing names it)",
                acc.sha256(manifest_json.name, blobs.occurrence(manifest_json)),
                manifest_json.digest or "",
            )
        )
        for img in report.images:
            cfg = next((b for b in report.blobs if b.kind == "config" and b.digest == img.config_digest), None)
            stop.says.append(
                f"image {img.index}: config {_s(cfg.name) if cfg else '-'}, {len(img.layers)} layer file(s)"
                + (f", tags {_s(', '.join(img.refs))}" if img.refs else ", untagged")
            )
        out.append(stop)
    return out


def _image_stops(img: Image, acc: Access, blobs: _Blobs, findings: list[Finding]) -> list[Stop]:
    out = []
    label = f"image {img.index}" + (f" ({img.platform})" if img.platform else "")
    manifest = _doc(img.manifest_text)
    if img.manifest_digest:
        stop = Stop(
            f"{label}: manifest {img.manifest_digest}",
            note="The manifest pins the config and every layer blob by digest and size: its own digest is "
            "what you pin when you deploy by digest.",
        )
        blob = blobs.by_digest.get(img.manifest_digest)
        if blob is not None:
            stop.checks.append(
                Check(
                    "the sha256 of the manifest",
                    acc.sha256(blob.name, blobs.occurrence(blob)),
                    blob.digest or "",
                    img.manifest_digest,
                    "the descriptor that names it",
                )
            )
        stop.says.append(f"mediaType {_s(manifest.get('mediaType', img.manifest_media_type or '-'))}")
        cfg = _obj(manifest, "config")
        if cfg:
            stop.says.append(
                f"config: {_s(cfg.get('mediaType', '-'))}, {_s(cfg.get('digest', '-'))}, {_s(cfg.get('size', '-'))} bytes"
            )
        layers = _list(manifest, "layers")
        for i, d in enumerate(layers[:200]):
            if isinstance(d, dict):
                stop.says.append(
                    f"layer {i}: {_s(d.get('mediaType', '-'))}, {_s(d.get('digest', '-'))}, {_s(d.get('size', '-'))} bytes"
                )
        if len(layers) > 200:
            stop.says.append(f"… {len(layers) - 200} more layers")
        if _obj(manifest, "subject"):
            stop.says.append(f"subject {_s(_obj(manifest, 'subject').get('digest', '-'))}")
        out.append(stop)
    config = _doc(img.config_text)
    stop = Stop(
        f"{label}: config {img.config_digest or '-'} (the image ID)",
        note="The config's own sha256 is the image ID. It lists rootfs.diff_ids, the sha256 of each layer's "
        "uncompressed tar, and the history, the build steps as recorded (editable metadata).",
    )
    cblob = blobs.by_digest.get(img.config_digest or "")
    if cblob is not None:
        stop.checks.append(
            Check(
                "the sha256 of the config",
                acc.sha256(cblob.name, blobs.occurrence(cblob)),
                cblob.digest or "",
                img.declared_config_digest,
                "the manifest (or the file name)",
            )
        )
    if img.config is not None:
        c = img.config
        stop.says.append(
            f"platform {_s('/'.join(x for x in (c.os, c.architecture, c.variant) if x) or '-')}, created {_s(c.created or '-')}"
        )
        for key, value in (("user", c.user), ("entrypoint", c.entrypoint), ("cmd", c.cmd), ("workdir", c.workdir)):
            if value:
                stop.says.append(f"{key} {_s(value)}")
    diff_ids = _list(_obj(config, "rootfs"), "diff_ids")
    for i, d in enumerate(diff_ids[:200]):
        stop.says.append(f"rootfs.diff_ids[{i}] {_s(d)}")
    stop.says.append(
        f"history: {len(img.history)} entries, {sum(1 for h in img.history if not h.empty_layer)} owning a layer"
    )
    out.append(stop)
    for layer in img.layers:
        out.append(_layer_stop(label, layer, acc, blobs))
    out.append(_history_stop(label, img, findings))
    return out


def _layer_stop(label: str, layer: Layer, acc: Access, blobs: _Blobs) -> Stop:
    stop = Stop(
        f"{label}: layer {layer.index} {layer.digest or '-'}",
        [
            f"{layer.media_type or 'no media type (docker save)'}, {layer.compression or '-'}, {layer.size if layer.size is not None else '-'} bytes declared"
        ],
        note="A layer has two digests: the blob's (compressed bytes, named by the manifest) and its diff_id "
        "(the uncompressed tar, named by the config's rootfs.diff_ids).",
    )
    blob = blobs.named(layer.path_in_archive)
    if not layer.present or blob is None:
        stop.says.append("not in the archive: nothing to recompute")
        return stop
    if layer.actual_sha256:
        stop.checks.append(
            Check(
                "the sha256 of the blob",
                acc.sha256(blob.name, blobs.occurrence(blob)),
                layer.actual_sha256,
                layer.digest,
                "the manifest",
            )
        )
    if layer.diff_id and layer.compression in ("gzip", "zstd", "none"):
        stop.checks.append(
            Check(
                "the diff_id: the sha256 of the uncompressed tar"
                + ("" if layer.compression != "none" else " (an uncompressed layer: the same bytes)"),
                acc.diff_id(blob.name, layer.compression, blobs.occurrence(blob)),
                layer.diff_id,
                layer.declared_diff_id,
                f"rootfs.diff_ids[{layer.index}]",
            )
        )
    stop.says.append(f"{layer.entries:,} entries in its tar")
    return stop


def _history_stop(label: str, img: Image, findings: list[Finding]) -> Stop:
    stop = Stop(
        f"{label}: history",
        note="Each entry without empty_layer owns the next layer, in order. created_by is what the builder "
        "wrote, and anyone can rewrite it: the analysis holds it to what the layer really changed.",
    )
    for h in img.history:
        owns = (
            f"layer {h.layer_index}" if h.layer_index is not None else ("empty_layer" if h.empty_layer else "no layer")
        )
        line = f"[{h.index}] {owns}: {_s(h.created_by or '-', 300)}"
        a = h.analysis
        if a is not None and a.counts:
            line += " — " + ", ".join(f"{k} {v}" for k, v in a.counts.items() if v)
        if a is not None and a.findings:
            cited = [findings[i] for i in a.findings[:5] if 0 <= i < len(findings)]
            line += "; findings " + ", ".join(f"{f.id or '-'} {f.code}" for f in cited)
            line += f" and {len(a.findings) - 5} more" if len(a.findings) > 5 else ""
        stop.says.append(line)
    return stop
