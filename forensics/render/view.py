"""The view model of the HTML report: every decision the page shows is made here.

The templates under `reports/templates/` only loop and branch over what
`build_view` returns; they never compute, format or look anything up. Every
string that comes from the image (created_by, paths, labels, tags, env, JSON
documents) is passed through as plain `str` and escaped by Jinja2's
autoescape; the only `Markup` values are the SVG drawing (built by
forensics.render.svg, which escapes every text itself) and the static CSS/JS
assets shipped in the wheel.

Large images stay usable: file listings are capped per layer (and in total),
the paths of each history step and the items of each finding code are capped,
and every cap says how much it left out (the JSON has everything).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
from dataclasses import dataclass
from typing import Any

from forensics import findings as finding_registry
from forensics.findings import SEVERITY_ORDER, SEVERITY_RANK
from forensics.models import Blob, FileEntry, Finding, Image, Layer, PathChange, Report, Severity
from forensics.render import units


@dataclass(frozen=True)
class Limits:
    files_per_layer: int = 500  # rows of one layer's listing
    files_total: int = 20_000  # rows of all listings together (shrinks the per-layer cap)
    files_per_layer_min: int = 50
    findings_per_code: int = 200
    unexplained_per_step: int = 1_000
    explained_per_step: int = 300
    unexplained_total: int = 10_000  # unexplained changes of all steps together
    explained_total: int = 8_000  # explained changes of all steps together
    blobs: int = 5_000
    document_chars: int = 2_000_000  # one manifest/config in the appendix
    # Links and finding chips in one ledger row: a blob a manifest lists 1,000 times has
    # 1,000 uses and 1,000 findings, and a row holding them all made the ledger quadratic.
    row_links: int = 12


VERDICTS = {
    "clean": ("Clean", "Every digest verified; nothing at medium severity or above."),
    "suspicious": ("Suspicious", "Findings at medium severity need a look."),
    "tampered": ("Tampered", "The archive contradicts its own metadata: high or critical findings."),
    "unreadable": ("Unreadable", "This is not an image archive the tool can analyze."),
}

# The order of the page, on screen and printed: what a reader cites first (verdict, custody,
# findings, images, the history), then the long lists, which print as an appendix.
SECTIONS = [
    ("summary", "Verdict"),
    ("evidence", "Custody"),
    ("findings", "Findings"),
    ("images", "Images"),
    ("history", "History vs layers"),
    ("ledger", "Digest ledger"),
    ("files", "Files"),
    ("structure", "Structure"),
    ("appendix", "Documents"),
]

INTEGRITY_PREFIXES = ("blob.", "layer.", "archive.")
CHANGE_SYMBOL = {"added": "+", "deleted": "\u2212", "modified": "~"}
TYPE_CHAR = {
    "file": "-",
    "dir": "d",
    "symlink": "l",
    "hardlink": "h",
    "char": "c",
    "block": "b",
    "fifo": "p",
    "whiteout": "w",
    "opaque": "o",
    "other": "?",
}


# ---------------------------------------------------------------- formatting


def human_size(n: int | None) -> str:
    return "-" if n is None else units.human_size(n)


def size_text(n: int | None) -> str:
    """Exact bytes (to cite) and a human size (to read)."""
    if n is None:
        return "-"
    return f"{n:,} bytes" if n < 1024 else f"{n:,} bytes ({human_size(n)})"


def short(digest: str | None, n: int = 12) -> str:
    if not digest:
        return "-"
    alg, _, hexpart = digest.partition(":")
    if not hexpart:
        return digest[:n] + ("\u2026" if len(digest) > n else "")
    return f"{alg}:{hexpart[:n]}" + ("\u2026" if len(hexpart) > n else "")


# A digest prints in groups of 16 hex digits with a break opportunity between them, so a
# wrapped digest never leaves a character or two alone on a line, and copying it gives
# the digest whole (no spaces are added).
DIGEST_GROUP = 16
_HEX_DIGEST = re.compile(r"(?:([a-z0-9]+(?:[+._-][a-z0-9]+)*):)?([0-9a-f]{32,})")


def digest_view(value: str | None) -> dict | None:
    """{'full': the digest, 'parts': its groups} for the digest macro of the templates;
    None when there is none. Anything that is not `alg:hex` (or bare hex) is one part."""
    if not value:
        return None
    m = _HEX_DIGEST.fullmatch(value)
    if m is None:
        return {"full": value, "parts": [value]}
    alg, hexpart = m.group(1), m.group(2)
    parts = [hexpart[i : i + DIGEST_GROUP] for i in range(0, len(hexpart), DIGEST_GROUP)]
    if alg:
        parts[0] = f"{alg}:{parts[0]}"
    return {"full": value, "parts": parts}


def explanation(code: str) -> dict:
    """What a finding code means, for the card behind each finding: the one place the report
    asks the registry (forensics.findings.explain_code when the registry has it, else
    EXPLANATIONS). Returns {'summary': sentence, 'sections': [{'label', 'lines': [{'text', 'run'}]}]}."""
    explain_code = getattr(finding_registry, "explain_code", None)
    raw: Any = None
    if callable(explain_code):
        try:
            raw = explain_code(code)
        except (KeyError, ValueError, LookupError):
            raw = None
    if not isinstance(raw, dict):
        text = finding_registry.EXPLANATIONS.get(code)
        return {"summary": text or "No explanation recorded for this code.", "sections": []}
    summary = ""
    sections = []
    for key, value in raw.items():
        # "section" is a heading of the vocabulary document, not teaching
        if key in ("code", "severity", "raised_by", "title", "section"):
            continue
        items = list(value) if isinstance(value, list | tuple) else [value] if value else []
        if not items:
            continue
        if not summary and key in ("summary", "meaning", "what", "explanation", "means"):
            summary = " ".join(str(v) for v in items)
            continue
        # a by-hand step is {"say", "run"}: the sentence, then the command as code (not a dict's repr)
        lines = [
            {"text": str(v.get("say", "")), "run": str(v["run"]) if v.get("run") else None}
            if isinstance(v, dict)
            else {"text": str(v), "run": None}
            for v in items
        ]
        sections.append({"label": str(key).replace("_", " ").capitalize(), "lines": lines})
    summary = summary or finding_registry.EXPLANATIONS.get(code) or "No explanation recorded for this code."
    return {"summary": summary, "sections": sections}


def mode_text(entry_type: str, mode: int) -> tuple[str, str]:
    """('4755', '-rwsr-xr-x') with setuid/setgid/sticky shown the way ls shows them."""
    perm = mode & 0o7777
    chars = [TYPE_CHAR.get(entry_type, "?")]
    for who, special, special_char in ((6, stat.S_ISUID, "s"), (3, stat.S_ISGID, "s"), (0, stat.S_ISVTX, "t")):
        bits = (perm >> who) & 7
        chars.append("r" if bits & 4 else "-")
        chars.append("w" if bits & 2 else "-")
        x = bool(bits & 1)
        if perm & special:
            chars.append(special_char if x else special_char.upper())
        else:
            chars.append("x" if x else "-")
    return f"{perm:04o}", "".join(chars)


def _dumps_upto(v: Any, limit: int, **kw) -> tuple[str, bool]:
    """json.dumps cut after about `limit` characters, and whether it was cut. Encoding
    lazily bounds the time too: an indented value nested 900 deep, repeated 1,000 times,
    is a gigabyte of indentation from 4 MB of JSON."""
    parts: list[str] = []
    size = 0
    for chunk in json.JSONEncoder(ensure_ascii=False, **kw).iterencode(v):
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            return "".join(parts), True
    return "".join(parts), False


def _value_text(v: Any, limit: int = 10_000) -> str:
    if isinstance(v, str):
        return v
    try:
        text, cut = _dumps_upto(v, limit, sort_keys=True)
        return text[:limit] + "\u2026" if cut else text
    except (TypeError, ValueError, RecursionError):
        return str(v)[:limit]


def pretty_document(text: str | None, limit: int) -> tuple[str, str, int]:
    """(text to show, how it was shown, chars left out): re-indented JSON, else raw."""
    if text is None:
        return "", "absent", 0
    how = "raw (not valid JSON)"
    shown = text
    cut = False
    if len(text) <= 8 * limit:
        try:
            shown, cut = _dumps_upto(json.loads(text), limit, indent=2)
            how = "JSON, re-indented"
        except (ValueError, RecursionError):
            pass
    # re-indenting stopped at the limit: what is left out is at least the raw rest
    omitted = max(0, len(shown) - limit, len(text) - limit if cut else 0)
    return shown[:limit], how, omitted


# ---------------------------------------------------------------- anchors


def image_anchor(i: int) -> str:
    return f"image-{i}"


def layer_anchor(i: int, layer: int) -> str:
    return f"layer-{i}-{layer}"


def step_anchor(i: int, step: int) -> str:
    return f"step-{i}-{step}"


_FINDING_ID = re.compile(r"F-[0-9a-f]{6,64}(?:-[0-9]{1,9})?")


def finding_anchor(n: int, f: Finding | None = None) -> str:
    """The stable identifier (Finding.id) when the finding has a well-formed one: the anchor
    to cite; else its position. A result edited by hand cannot inject markup or clash with
    another id of the page: ids of another shape fall back to the position."""
    if f is not None and f.id and _FINDING_ID.fullmatch(f.id):
        return f.id
    return f"finding-{n}"


def finding_anchors(report: Report) -> list[str]:
    """One anchor per finding, unique in the page (a duplicated id keeps its first finding)."""
    seen: set[str] = set()
    out = []
    for n, f in enumerate(report.findings):
        a = finding_anchor(n, f)
        if a in seen:
            a = finding_anchor(n)
        seen.add(a)
        out.append(a)
    return out


# ---------------------------------------------------------------- findings


def _layer_of(report: Report, f: Finding) -> Layer | None:
    """The layer a layer-scoped finding is about (its image, or the only image)."""
    if f.layer is None:
        return None
    if f.image is not None:
        img = next((i for i in report.images if i.index == f.image), None)
    else:
        img = report.images[0] if len(report.images) == 1 else None
    if img is None:
        return None
    return next((layer for layer in img.layers if layer.index == f.layer), None)


def _where(f: Finding, report: Report) -> list[dict]:
    out: list[dict] = []
    if f.image is not None:
        out.append({"label": "image", "value": str(f.image), "href": "#" + image_anchor(f.image), "digest": None})
    if f.layer is not None:
        href = "#" + layer_anchor(f.image, f.layer) if f.image is not None else None
        out.append({"label": "layer", "value": str(f.layer), "href": href, "digest": None})
        layer = _layer_of(report, f)
        if layer is not None:
            if layer.digest:
                out.append(
                    {"label": "layer digest", "value": layer.digest, "href": None, "digest": digest_view(layer.digest)}
                )
            diff_id = layer.diff_id or layer.declared_diff_id
            if diff_id:
                label = "layer diff_id" if layer.diff_id else "layer diff_id (declared)"
                out.append({"label": label, "value": diff_id, "href": None, "digest": digest_view(diff_id)})
    if f.history is not None:
        href = "#" + step_anchor(f.image, f.history) if f.image is not None else None
        out.append({"label": "history step", "value": str(f.history), "href": href, "digest": None})
    if f.path is not None:
        out.append({"label": "path", "value": f.path, "href": None, "digest": None})
    if f.digest is not None:
        out.append({"label": "digest", "value": f.digest, "href": None, "digest": digest_view(f.digest)})
    if f.entry is not None:
        out.append({"label": "archive entry", "value": f.entry, "href": None, "digest": None})
    return out


def _evidence_rows(f: Finding) -> list[dict]:
    rows: list[dict] = []
    ev = f.evidence or {}
    roles = {
        "declared": ("expected (declared)", "expected"),
        "expected": ("expected", "expected"),
        "before": ("before (lower layers)", "expected"),
        "actual": ("actual (computed)", "actual"),
        "computed": ("actual (computed)", "actual"),
        "after": ("after (this layer)", "actual"),
    }
    first = ("declared", "expected", "before")
    second = ("actual", "computed", "after")
    for key in sorted(ev, key=lambda k: (0 if k in first else 1 if k in second else 2, str(k))):
        label, role = roles.get(key, (str(key), "other"))
        value = ev[key]
        text = _file_side_text(value) if key in ("before", "after") else None
        rows.append({"key": label, "value": text or _value_text(value), "role": role})
    return rows


_SIDE_KEYS = {"kind", "type", "size", "sha256", "mode", "uid", "gid", "link"}


def _file_side_text(v: Any) -> str | None:
    """One side of a replaced file, as `ls -l` and sha256sum would say it ("elf file,
    49,152 bytes, sha256:..."), not a JSON object; None for anything else."""
    if not isinstance(v, dict) or not v or not set(v) <= _SIDE_KEYS:
        return None
    what = " ".join(str(v[k]) for k in ("kind", "type") if isinstance(v.get(k), str) and v[k])
    parts = [what] if what else []
    if isinstance(v.get("size"), int) and not isinstance(v.get("size"), bool):
        parts.append(f"{v['size']:,} bytes")
    if isinstance(v.get("mode"), int) and not isinstance(v.get("mode"), bool):
        parts.append(f"mode {v['mode']:04o}")
    if isinstance(v.get("uid"), int) and isinstance(v.get("gid"), int):
        parts.append(f"owner {v['uid']}:{v['gid']}")
    if isinstance(v.get("link"), str):
        parts.append(f"-> {v['link']}")
    sha = v.get("sha256")
    if isinstance(sha, str) and sha:
        parts.append(sha if sha.startswith("sha256:") else "sha256:" + sha)
    return ", ".join(parts) or None


def _finding_item(n: int, f: Finding, report: Report, anchors: list[str]) -> dict:
    return {
        "anchor": anchors[n],
        "id": anchors[n],
        "code": f.code,
        "severity": f.severity.value,
        "subject": f.subject,
        "detail": f.detail,
        "where": _where(f, report),
        "evidence": _evidence_rows(f),
    }


def _finding_groups(report: Report, limits: Limits) -> list[dict]:
    groups: list[dict] = []
    anchors = finding_anchors(report)
    indexed = list(enumerate(report.findings))
    for sev in SEVERITY_ORDER:
        in_sev = [(n, f) for n, f in indexed if f.severity == sev]
        if not in_sev:
            continue
        by_code: dict[str, list[tuple[int, Finding]]] = {}
        for n, f in in_sev:
            by_code.setdefault(f.code, []).append((n, f))
        codes = []
        for code, items in by_code.items():
            codes.append(
                {
                    "code": code,
                    "anchor": f"code-{sev.value}-{code}",
                    "explanation": explanation(code),
                    "count": len(items),
                    "list": [_finding_item(n, f, report, anchors) for n, f in items[: limits.findings_per_code]],
                    "omitted": max(0, len(items) - limits.findings_per_code),
                }
            )
        groups.append({"severity": sev.value, "label": sev.value.capitalize(), "count": len(in_sev), "codes": codes})
    return groups


def _finding_ref(n: int, f: Finding, anchors: list[str]) -> dict:
    return {
        "anchor": anchors[n],
        "id": anchors[n],
        "code": f.code,
        "severity": f.severity.value,
        "subject": f.subject,
        "detail": f.detail,
    }


# ---------------------------------------------------------------- images


def _pin_lines(img: Image) -> list[str]:
    if not img.manifest_digest:
        return []
    pins: list[str] = []
    for ref in img.refs:
        last = ref.rsplit("/", 1)[-1]
        repo = ref.rsplit(":", 1)[0] if ":" in last else ref
        repo = repo.split("@", 1)[0]
        if "/" not in ref and ":" not in ref:
            continue  # a bare tag (OCI ref.name "1.0") names no repository
        line = f"{repo}@{img.manifest_digest}"
        if line not in pins:
            pins.append(line)
    return pins


def _config_rows(img: Image) -> list[dict]:
    c = img.config
    if c is None:
        return []

    def joined(v: list[str] | None) -> list[str] | None:
        return None if v is None else [json.dumps(v, ensure_ascii=False)]

    rows = [
        ("Entrypoint", joined(c.entrypoint)),
        ("Cmd", joined(c.cmd)),
        ("User", [c.user] if c.user else None),
        ("Working dir", [c.workdir] if c.workdir else None),
        ("Exposed ports", c.exposed_ports or None),
        ("Volumes", c.volumes or None),
        ("Env", c.env or None),
        ("Labels", [f"{k}={v}" for k, v in sorted(c.labels.items())] or None),
        (
            "OS / arch",
            ["/".join(x for x in (c.os, c.architecture, c.variant) if x)] if c.os or c.architecture else None,
        ),
        ("Created", [c.created] if c.created else None),
        ("Author", [c.author] if c.author else None),
    ]
    out = []
    for label, values in rows:
        out.append(
            {
                "label": label,
                "vals": values or [],
                "unset": not values,
                "unset_text": "not set: runs as root" if label == "User" else "not set",
                "root": label == "User" and (not c.user or c.user in ("0", "root", "0:0")),
            }
        )
    return out


def _image_view(img: Image) -> dict:
    return {
        "index": img.index,
        "anchor": image_anchor(img.index),
        "title": ", ".join(img.refs) if img.refs else "(untagged)",
        "refs": img.refs,
        "pins": _pin_lines(img),
        "platform": img.platform or "-",
        "manifest_digest": img.manifest_digest,
        "manifest_dg": digest_view(img.manifest_digest),
        "manifest_media_type": img.manifest_media_type,
        "config_digest": img.config_digest,
        "config_dg": digest_view(img.config_digest),
        "declared_config_digest": img.declared_config_digest,
        "declared_config_dg": digest_view(img.declared_config_digest),
        "config_mismatch": bool(
            img.declared_config_digest and img.config_digest and img.declared_config_digest != img.config_digest
        ),
        "n_layers": len(img.layers),
        "n_steps": len(img.history),
        "config": _config_rows(img),
        "coverage": _coverage_view(img.coverage),
    }


def _coverage_view(cov) -> dict | None:
    """Rows for what vouches for the image's files (forensics.history.coverage)."""
    if cov is None or not cov.files:
        return None

    def row(label: str, c, note: str = "", kind: str = "") -> dict:
        share = f"{100 * c.bytes / cov.bytes:.0f}%" if cov.bytes else "-"
        return {
            "label": label,
            "files": c.files,
            "bytes": human_size(c.bytes),
            "share": share,
            "note": note,
            "kind": kind,
        }

    return {
        "total": f"{cov.files} files, {human_size(cov.bytes)}",
        "rows": [
            row("Verified: a package record written by an earlier layer", cov.verified_earlier_record, kind="ok"),
            row(
                "Verified: a record written by the same step",
                cov.verified_same_step,
                "whoever controlled the step could have rewritten both: consistency, not proof",
                "weak",
            ),
            row(
                "Verified: what the command produces (literal bytes, a copy, unchanged)", cov.verified_claim, kind="ok"
            ),
            row("Verified: a COPY/ADD source hash", cov.verified_copy_hash, kind="ok"),
            row("Verified: in a --known-good hash set you supplied", cov.verified_known_good, kind="ok"),
            row("Explained, unverifiable: content from outside the image", cov.unverifiable, kind="weak"),
            row("Contradicted by a record or a claim", cov.contradicted, kind="bad"),
            row("Unexplained", cov.unexplained, kind="bad"),
        ],
        "gaps": [
            {
                "history": g.history,
                "command": g.command or "",
                "files": g.files,
                "bytes": human_size(g.bytes),
                "why": g.why,
            }
            for g in cov.gaps
        ],
        "advice": list(cov.advice),
    }


# ---------------------------------------------------------------- ledger


def _inventory(report: Report) -> dict:
    """Artifacts (signatures, attestations, SBOMs) and the index children not exported."""
    held = {img.manifest_digest for img in report.images if img.manifest_digest}
    artifacts = []
    for a in report.artifacts:
        blobs_ok = all(b.verified for b in a.blobs)
        artifacts.append(
            {
                "anchor": f"artifact-{a.index}",
                "index": a.index,
                "kind": a.kind,
                "type": a.artifact_type or "-",
                "digest": a.manifest_digest,
                "dg": digest_view(a.manifest_digest),
                "size": size_text(a.size),
                "refs": a.refs,
                "why": a.why,
                "subject": a.subject,
                "subject_href": (
                    "#" + image_anchor(next(i.index for i in report.images if i.manifest_digest == a.subject))
                    if a.subject in held
                    else None
                ),
                "subject_note": (
                    "" if a.subject is None else "in this archive" if a.subject_in_archive else "not in this archive"
                ),
                "mark": _mark(
                    a.verified and blobs_ok, f"{sum(b.verified for b in a.blobs)} of {len(a.blobs)} blobs verified"
                ),
                "blobs": [
                    {
                        "role": b.role,
                        "media_type": b.media_type or "-",
                        "digest": b.digest,
                        "dg": digest_view(b.digest),
                        "size": size_text(b.size),
                        "mark": _mark(
                            b.verified,
                            "present and matching"
                            if b.verified
                            else "present, bytes differ"
                            if b.present
                            else "not in the archive",
                        ),
                    }
                    for b in a.blobs
                ],
            }
        )
    absent = [
        {
            "kind": n.kind,
            "platform": n.platform or "-",
            "digest": n.digest,
            "dg": digest_view(n.digest),
            "media_type": n.media_type or "-",
            "index": n.index_digest,
            "refs": ", ".join(n.refs),
        }
        for n in report.not_exported
    ]
    return {"artifacts": artifacts, "absent": absent}


def _blob_findings(report: Report) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    by_digest: dict[str, list[int]] = {}
    by_entry: dict[str, list[int]] = {}
    for n, f in enumerate(report.findings):
        if f.digest:
            by_digest.setdefault(f.digest, []).append(n)
        if f.entry:
            by_entry.setdefault(f.entry, []).append(n)
    return by_digest, by_entry


def _mark(ok: bool | None, text: str = "") -> dict:
    if ok is None:
        return {"state": "na", "symbol": "\u2013", "text": text or "not applicable"}
    return {"state": "pass" if ok else "fail", "symbol": "\u2713" if ok else "\u2717", "text": text}


def _ledger(report: Report, limits: Limits, anchors: list[str]) -> dict:
    by_digest, by_entry = _blob_findings(report)
    layer_of: dict[str, list[tuple[Image, Layer]]] = {}
    for img in report.images:
        for layer in img.layers:
            for key in (layer.path_in_archive, layer.actual_sha256, layer.digest):
                if key:
                    layer_of.setdefault(key, []).append((img, layer))
    config_of: dict[str, Image] = {}
    for img in report.images:
        for key in (img.config_digest, img.declared_config_digest):
            if key:
                config_of.setdefault(key, img)

    rows: list[dict] = []
    seen_names: set[str] = set()

    def row_for(blob: Blob) -> dict:
        uses: list[dict] = []
        declared_digest = blob.declared_digest
        declared_size: int | None = None
        diff = _mark(None)
        descriptor = _mark(None)
        pairs = (
            layer_of.get(blob.name)
            or (layer_of.get(blob.digest) if blob.digest and blob.kind == "layer" else None)
            or []
        )
        for img, layer in pairs:
            uses.append(
                {"text": f"image {img.index} layer {layer.index}", "href": "#" + layer_anchor(img.index, layer.index)}
            )
        if pairs:
            img, layer = pairs[0]
            if layer.digest and blob.digest:
                descriptor = _mark(layer.digest == blob.digest, f"descriptor says {layer.digest}")
                declared_digest = declared_digest or layer.digest
            declared_size = layer.size
            if layer.declared_diff_id or layer.diff_id:
                diff = _mark(
                    bool(layer.diff_id) and layer.diff_id == layer.declared_diff_id,
                    f"diff_id {layer.diff_id or '-'} vs rootfs {layer.declared_diff_id or '-'}",
                )
        elif blob.kind == "config" and blob.digest:
            cfg_img = config_of.get(blob.digest) or (
                config_of.get(blob.declared_digest) if blob.declared_digest else None
            )
            if cfg_img is not None:
                uses.append({"text": f"image {cfg_img.index} config", "href": "#" + image_anchor(cfg_img.index)})
                if cfg_img.declared_config_digest:
                    descriptor = _mark(
                        cfg_img.declared_config_digest == blob.digest, f"manifest says {cfg_img.declared_config_digest}"
                    )
        elif blob.kind == "manifest" and blob.digest:
            for img in report.images:
                if img.manifest_digest == blob.digest:
                    uses.append({"text": f"image {img.index} manifest", "href": "#" + image_anchor(img.index)})
        elif blob.kind in ("artifact", "artifact-blob") and blob.digest:
            for a in report.artifacts:
                if a.manifest_digest == blob.digest or any(b.digest == blob.digest for b in a.blobs):
                    uses.append({"text": f"{a.kind} {a.index}", "href": f"#artifact-{a.index}"})
        name_mark = _mark(None)
        if blob.declared_digest and blob.digest:
            name_mark = _mark(blob.declared_digest == blob.digest, "file name vs content")
        size_mark = _mark(None)
        if declared_size is not None:
            size_mark = _mark(declared_size == blob.size, f"declared {declared_size:,}")
        ns = sorted(
            set(
                (by_digest.get(blob.digest, []) if blob.digest else [])
                + (by_digest.get(blob.declared_digest, []) if blob.declared_digest else [])
                + by_entry.get(blob.name, [])
            )
        )
        refs = [_finding_ref(n, report.findings[n], anchors) for n in ns]
        integrity = [r for r in refs if r["code"].startswith(INTEGRITY_PREFIXES)]
        finding_mark = _mark(not refs, "") if (refs or blob.digest) else _mark(None)
        failing = any(m["state"] == "fail" for m in (name_mark, descriptor, size_mark, diff)) or bool(integrity)
        worst = min((SEVERITY_RANK[Severity(r["severity"])] for r in refs), default=None)
        return {
            "name": blob.name,
            "kind": blob.kind,
            "link": blob.link,
            "declared_digest": declared_digest,
            "digest": blob.digest,
            "declared_dg": digest_view(declared_digest),
            "dg": digest_view(blob.digest),
            "declared_size": declared_size,
            "size": blob.size,
            "size_text": f"{blob.size:,}",
            "declared_size_text": f"{declared_size:,}" if declared_size is not None else "-",
            "marks": [name_mark, descriptor, size_mark, diff, finding_mark],
            "digest_differs": name_mark["state"] == "fail" or descriptor["state"] == "fail",
            "findings": refs,
            "uses": uses,
            "state": "fail" if failing else ("warn" if refs else "pass"),
            "severity": SEVERITY_ORDER[worst].value if worst is not None else None,
        }

    ordered = sorted(
        report.blobs,
        key=lambda b: ({"index": 0, "metadata": 1, "manifest": 2, "config": 3, "layer": 4}.get(b.kind, 5), b.name),
    )
    for blob in ordered:
        seen_names.add(blob.name)
        rows.append(row_for(blob))
    # blobs the metadata names but the archive does not hold: one row per blob, however
    # many layers list it
    missing: dict[tuple, list[tuple[Image, Layer]]] = {}
    for img in report.images:
        for layer in img.layers:
            if layer.present or (layer.path_in_archive and layer.path_in_archive in seen_names):
                continue
            missing.setdefault((layer.path_in_archive, layer.digest), []).append((img, layer))
    for (path, digest), users in missing.items():
        layer = users[0][1]
        ns = sorted(set(by_digest.get(digest, []) if digest else []))
        worst = min((SEVERITY_RANK[report.findings[n].severity] for n in ns), default=SEVERITY_RANK[Severity.high])
        rows.append(
            {
                "name": path or "(no path)",
                "kind": "layer (missing)",
                "link": None,
                "declared_digest": digest,
                "digest": None,
                "declared_dg": digest_view(digest),
                "dg": None,
                "declared_size": layer.size,
                "size": None,
                "size_text": "absent",
                "declared_size_text": f"{layer.size:,}" if layer.size is not None else "-",
                "marks": [
                    _mark(False, "blob absent"),
                    _mark(False, "blob absent"),
                    _mark(None),
                    _mark(None),
                    _mark(False, ""),
                ],
                "digest_differs": True,
                "findings": [_finding_ref(n, report.findings[n], anchors) for n in ns],
                "uses": [
                    {"text": f"image {img.index} layer {lay.index}", "href": "#" + layer_anchor(img.index, lay.index)}
                    for img, lay in users
                ],
                "state": "fail" if worst <= SEVERITY_RANK[Severity.medium] else "warn",
                "severity": SEVERITY_ORDER[worst].value,
            }
        )
    for a in report.artifacts:
        for b in a.blobs:
            if b.present or not b.digest:
                continue
            ns = sorted(set(by_digest.get(b.digest, [])))
            rows.append(
                {
                    "name": "blobs/" + b.digest.replace(":", "/", 1),
                    "kind": f"artifact {b.role} (missing)",
                    "link": None,
                    "declared_digest": b.digest,
                    "digest": None,
                    "declared_dg": digest_view(b.digest),
                    "dg": None,
                    "declared_size": b.size,
                    "size": None,
                    "size_text": "absent",
                    "declared_size_text": f"{b.size:,}" if b.size is not None else "-",
                    "marks": [
                        _mark(False, "blob absent"),
                        _mark(False, "blob absent"),
                        _mark(None),
                        _mark(None),
                        _mark(False, ""),
                    ],
                    "digest_differs": True,
                    "findings": [_finding_ref(n, report.findings[n], anchors) for n in ns],
                    "uses": [{"text": f"{a.kind} {a.index}", "href": f"#artifact-{a.index}"}],
                    "state": "fail",
                    "severity": "low",
                }
            )
    for r in rows:  # bounded rows: a blob used or flagged 1,000 times says so in a number
        r["uses_more"] = max(0, len(r["uses"]) - limits.row_links)
        r["findings_more"] = max(0, len(r["findings"]) - limits.row_links)
        r["uses"], r["findings"] = r["uses"][: limits.row_links], r["findings"][: limits.row_links]
    failing = [r for r in rows if r["state"] != "pass"]
    shown = rows
    omitted = 0
    if len(rows) > limits.blobs:
        keep = {id(r) for r in failing}
        shown = [r for r in rows if id(r) in keep] + [r for r in rows if id(r) not in keep]
        shown = shown[: limits.blobs]
        omitted = len(rows) - len(shown)
    return {
        "columns": [
            {"label": "Name", "title": "the file name (blobs/sha256/HEX) is the sha256 of the bytes"},
            {"label": "Digest", "title": "the digest the manifest (or config) declares is the sha256 of the bytes"},
            {"label": "Size", "title": "the size the manifest declares is the byte count"},
            {"label": "diff_id", "title": "sha256 of the uncompressed layer equals the config's rootfs.diff_ids entry"},
            {"label": "Findings", "title": "no finding points at this entry"},
        ],
        "rows": shown,
        "omitted": omitted,
        "total": len(rows),
        "failing": len([r for r in rows if r["state"] == "fail"]),
        "warning": len([r for r in rows if r["state"] == "warn"]),
    }


# ---------------------------------------------------------------- history


def _side(
    type_: str | None, size: int | None, mode: int | None, uid: int | None, gid: int | None, sha: str | None, link
) -> dict | None:
    """One side (before or after) of a changed path: what ls -l and sha256sum would say."""
    if type_ is None:
        return None
    octal, symbolic = mode_text(type_, mode) if mode is not None else ("", "")
    return {
        "type": type_,
        "size": f"{size:,}" if size is not None and type_ in ("file", "hardlink") else "",
        "mode": f"{octal} {symbolic}" if mode is not None else "",
        "owner": f"{uid}:{gid}" if uid is not None and gid is not None else "",
        "sha256": digest_view(sha),
        "link": link or "",
    }


def _change_row(c: PathChange) -> dict:
    after = None
    before = None
    if c.change != "deleted":
        after = _side(c.type, c.size, c.mode, c.uid, c.gid, c.sha256, c.link)
    if c.change == "deleted":
        before = _side(
            c.before_type or c.type, c.before_size, c.before_mode, c.before_uid, c.before_gid, c.before_sha256, c.link
        )
    elif c.change == "modified":
        before = _side(
            c.before_type or (c.type if c.before_sha256 else None),
            c.before_size,
            c.before_mode,
            c.before_uid,
            c.before_gid,
            c.before_sha256,
            c.before_link,
        )
    return {
        "path": c.path,
        "change": c.change,
        "symbol": CHANGE_SYMBOL.get(c.change, "?"),
        "type": c.type,
        "what": ", ".join(c.what),
        "before": before,
        "after": after,
        "explained_by": c.explained_by or "",
    }


def _step_findings(report: Report, img: Image) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    by_step: dict[int, list[int]] = {}
    by_layer: dict[int, list[int]] = {}
    for n, f in enumerate(report.findings):
        if f.image is not None and f.image != img.index:
            continue
        if f.image is None and len(report.images) != 1:
            continue
        if f.history is not None:
            by_step.setdefault(f.history, []).append(n)
        elif f.layer is not None:
            by_layer.setdefault(f.layer, []).append(n)
    return by_step, by_layer


class _Budget:
    def __init__(self, total: int):
        self.left = total

    def take(self, want: int, cap: int) -> int:
        n = max(0, min(want, cap, self.left))
        self.left -= n
        return n


def _history_view(
    report: Report, img: Image, limits: Limits, budgets: tuple[_Budget, _Budget], anchors: list[str]
) -> dict:
    by_step, by_layer = _step_findings(report, img)
    layers = {layer.index: layer for layer in img.layers}
    steps: list[dict] = []
    any_analysis = False
    for h in img.history:
        a = h.analysis
        any_analysis = any_analysis or a is not None
        ns = set(by_step.get(h.index, []))
        if h.layer_index is not None:
            ns.update(by_layer.get(h.layer_index, []))
        if a is not None:
            ns.update(n for n in a.findings if 0 <= n < len(report.findings))
        refs = [
            _finding_ref(n, report.findings[n], anchors)
            for n in sorted(ns, key=lambda n: (SEVERITY_RANK[report.findings[n].severity], n))
        ]
        worst = min((SEVERITY_RANK[report.findings[n].severity] for n in ns), default=None)
        unexplained = a.unexplained if a else []
        explained = a.explained if a else []
        n_unexp = max(min(len(unexplained), 25), budgets[0].take(len(unexplained), limits.unexplained_per_step))
        n_exp = budgets[1].take(len(explained), limits.explained_per_step)
        if unexplained or (worst is not None and worst <= SEVERITY_RANK[Severity.medium]):
            status = "poisoned"
            content = unexplained or any(r["code"].startswith(("history.", "file.")) for r in refs)
            label = "Poisoned step" if content else "Layer fails verification"
            reasons = []
            if unexplained:
                reasons.append(f"{len(unexplained)} change(s) its instruction does not explain")
            if refs:
                reasons.append(f"{len(refs)} finding(s)")
            reason = "; ".join(reasons)
        elif refs:
            status, label, reason = "flagged", "Flagged", f"{len(refs)} finding(s) at low/info severity"
        elif h.empty_layer:
            status, label, reason = "empty", "No layer", "metadata-only step: no filesystem change"
        elif a is None:
            status, label, reason = "unanalyzed", "Not analyzed", ""
        else:
            status, label, reason = "ok", "Explained", "every change is accounted for"
        counts: list[dict[str, str | int]] = []
        if a is not None:
            for key in ("added", "modified", "deleted", "explained", "unexplained"):
                if key in a.counts:
                    counts.append({"name": key, "value": a.counts[key]})
            for key in sorted(
                k for k in a.counts if k not in ("added", "modified", "deleted", "explained", "unexplained")
            ):
                counts.append({"name": key, "value": a.counts[key]})
        layer = layers.get(h.layer_index) if h.layer_index is not None else None
        steps.append(
            {
                "index": h.index,
                "anchor": step_anchor(img.index, h.index),
                "created": h.created or "-",
                "created_by": h.created_by if h.created_by is not None else "",
                "created_by_missing": h.created_by is None,
                "author": h.author,
                "comment": h.comment,
                "empty_layer": h.empty_layer,
                "layer_index": h.layer_index,
                "layer_href": "#" + layer_anchor(img.index, layer.index) if layer is not None else None,
                "layer_digest": digest_view(layer.digest) if layer is not None else None,
                "layer_diff_id": digest_view(layer.diff_id or layer.declared_diff_id) if layer is not None else None,
                "layer_entries": layer.entries if layer is not None else None,
                "status": status,
                "status_label": label,
                "status_reason": reason,
                "severity": SEVERITY_ORDER[worst].value if worst is not None else None,
                "analysis": a is not None,
                "instruction": None
                if a is None
                else {
                    "kind": a.instruction.kind,
                    "builder": a.instruction.builder,
                    "dest": a.instruction.dest,
                    "sources": a.instruction.sources,
                    "metadata_only": a.instruction.metadata_only,
                },
                "counts": counts,
                "unexplained": [_change_row(c) for c in unexplained[:n_unexp]],
                "unexplained_total": len(unexplained),
                "unexplained_omitted": len(unexplained) - n_unexp,
                "explained": [_change_row(c) for c in explained[:n_exp]],
                "explained_total": len(explained),
                "explained_omitted": len(explained) - n_exp,
                "findings": refs,
                "n_findings": len(refs),
                "poisoned": status == "poisoned",
                "open": status in ("poisoned", "flagged"),
                "summary_counts": _summary_counts(a.counts) if a is not None else "",
            }
        )
    # layers that no history step owns (history shorter than the layers)
    owned = {h.layer_index for h in img.history if h.layer_index is not None}
    orphans = []
    for layer in img.layers:
        if layer.index not in owned:
            layer_ns = by_layer.get(layer.index, [])
            orphans.append(
                {
                    "index": layer.index,
                    "href": "#" + layer_anchor(img.index, layer.index),
                    "digest": digest_view(layer.digest),
                    "entries": layer.entries,
                    "findings": [_finding_ref(n, report.findings[n], anchors) for n in layer_ns],
                }
            )
    return {
        "steps": steps,
        "analysis": any_analysis,
        "poisoned": len([s for s in steps if s["status"] == "poisoned"]),
        "flagged": len([s for s in steps if s["status"] == "flagged"]),
        "orphan_layers": orphans,
    }


def _summary_counts(counts: dict[str, int]) -> str:
    parts = []
    for key, sym in (("added", "+"), ("modified", "~"), ("deleted", "\u2212")):
        if counts.get(key):
            parts.append(f"{sym}{counts[key]}")
    return " ".join(parts) or "no change"


# ---------------------------------------------------------------- file listings


def _flagged_paths(report: Report, img: Image) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for f in report.findings:
        if f.path and f.layer is not None and (f.image is None or f.image == img.index):
            out.setdefault(f.layer, set()).add(f.path)
    for h in img.history:
        if h.analysis is not None and h.layer_index is not None:
            out.setdefault(h.layer_index, set()).update(c.path for c in h.analysis.unexplained)
    return out


def _file_row(e: FileEntry, flagged: bool) -> dict:
    octal, symbolic = mode_text(e.type, e.mode)
    special = bool(e.mode & (stat.S_ISUID | stat.S_ISGID)) and e.type == "file"
    return {
        "path": e.path,
        "raw_name": e.raw_name,
        "link": e.link,
        "type": e.type,
        "mode": octal,
        "mode_symbolic": symbolic,
        "setuid": special,
        "owner": f"{e.uid}:{e.gid}",
        "size": f"{e.size:,}" if e.type == "file" else "",
        "sha256": digest_view(e.sha256),
        "kind": e.kind or "",
        "flagged": flagged,
        "state": "flagged" if flagged else ("setuid" if special else ""),
    }


def _files_view(report: Report, img: Image, cap: int, shared: dict[str, str], limits: Limits) -> list[dict]:
    flagged_by_layer = _flagged_paths(report, img)
    steps_of: dict[int, list[int]] = {}
    for h in img.history:
        if h.layer_index is not None:
            steps_of.setdefault(h.layer_index, []).append(h.index)
    out = []
    for layer in img.layers:
        key = layer.path_in_archive or layer.actual_sha256 or layer.digest or ""
        same_as = shared.get(key) if key else None
        flagged = flagged_by_layer.get(layer.index, set())
        rows: list[dict] = []
        omitted = 0
        if same_as is None:
            if key:
                shared[key] = layer_anchor(img.index, layer.index)
            head = layer.files[:cap]
            rows = [_file_row(e, e.path in flagged) for e in head]
            extra = [
                e
                for e in layer.files[cap:]
                if e.path in flagged or (e.type == "file" and e.mode & (stat.S_ISUID | stat.S_ISGID))
            ][:cap]
            rows += [_file_row(e, e.path in flagged) for e in extra]
            omitted = len(layer.files) - len(rows)
        setuid = sum(1 for e in layer.files if e.type == "file" and e.mode & (stat.S_ISUID | stat.S_ISGID))
        out.append(
            {
                "index": layer.index,
                "anchor": layer_anchor(img.index, layer.index),
                "digest": layer.digest,
                "dg": digest_view(layer.digest),
                "diff_id": digest_view(layer.diff_id or layer.declared_diff_id),
                "media_type": layer.media_type or "-",
                "compression": layer.compression or "-",
                "size": size_text(layer.actual_size if layer.actual_size is not None else layer.size),
                "present": layer.present,
                "total": len(layer.files),
                "entries": layer.entries,
                "rows": rows,
                "omitted": omitted,
                "cap": cap,
                "same_as": same_as,
                "steps": [{"index": s, "href": "#" + step_anchor(img.index, s)} for s in steps_of.get(layer.index, [])],
                "flagged": len([r for r in rows if r["flagged"]]),
                "setuid": setuid,
                "open": bool(flagged) and same_as is None,
            }
        )
    return out


def _per_layer_cap(report: Report, limits: Limits) -> int:
    seen: set[str] = set()
    listed = 0
    for img in report.images:
        for layer in img.layers:
            key = layer.path_in_archive or layer.actual_sha256 or layer.digest or f"{img.index}/{layer.index}"
            if key in seen or not layer.files:
                continue
            seen.add(key)
            listed += 1
    if not listed:
        return limits.files_per_layer
    return max(limits.files_per_layer_min, min(limits.files_per_layer, limits.files_total // listed))


# ---------------------------------------------------------------- evidence


def _row(label: str, value: str, *, mono: bool = False, digest: str | None = None, note: str = "") -> dict:
    """One row of the custody table; a digest row prints through the digest macro."""
    return {"label": label, "value": value, "mono": mono or digest is not None, "dg": digest_view(digest), "note": note}


def _custody_rows(inp) -> list[dict]:
    """The `input` block (forensics.evidence): where the evidence is and that it did not change."""
    if inp.kind is None:  # a result saved before the block existed
        return []
    kinds = {"file": "file", "directory": "directory (OCI layout)", "stream": "stream (stdin), read once"}
    rows = [_row("Input kind", kinds[inp.kind])]
    if inp.resolved:
        rows.append(_row("Resolved path", inp.resolved, mono=True))
    if inp.mtime:
        rows.append(_row("Modified (mtime, UTC)", inp.mtime))
    if inp.inode is not None:
        rows.append(_row("Inode", str(inp.inode), mono=True))
    if inp.listing_sha256:
        rows.append(_row("SHA-256 of the file listing", inp.listing_sha256, digest=inp.listing_sha256))
    if inp.kind != "stream":
        if inp.sha256_end:
            rows.append(
                _row("SHA-256 after the analysis", inp.sha256_end, digest=inp.sha256_end, note="read again: unchanged")
            )
        else:
            rows.append(_row("SHA-256 after the analysis", "not checked"))
    if inp.kept:
        rows.append(
            _row(
                "Kept copy (--keep-input)",
                inp.kept.sha256,
                digest=inp.kept.sha256,
                note=f"{inp.kept.path} ({inp.kept.resolved}), {size_text(inp.kept.size)}",
            )
        )
    return rows


def _case_rows(report: Report) -> list[dict]:
    """The case record (--case, --examiner, --note, where and with what the analysis ran)."""
    c = report.case
    if c is None:
        return []
    rows = []
    for label, value in (("Case", c.case), ("Examiner", c.examiner), ("Note", c.note)):
        if value:
            rows.append(_row(label, value))
    if c.host or c.user:
        rows.append(_row("Host / user", " / ".join(x for x in (c.host or "-", c.user or "-")), mono=True))
    if c.platform:
        rows.append(_row("Platform", c.platform))
    versions = [f"{report.tool.name} {c.tool_version or report.tool.version}"]
    if c.python:
        versions.append(f"Python {c.python}")
    versions += [f"{name} {version}" for name, version in sorted(c.dependencies.items())]
    rows.append(_row("Tool and dependency versions", ", ".join(versions), mono=True))
    if c.command:
        rows.append(_row("Command line", shlex.join(c.command), mono=True))
    return rows


def pin_text(p) -> str:
    """'pinned: manifest digest sha256:... matches', the sentence the terminal and JSON say too."""
    what = p.against or "digest"
    named = f" ({p.name})" if p.name else ""
    return f"pinned{named}: {what} {p.digest} {'matches' if p.matched else 'does not match'}"


def _pins(report: Report) -> list[dict]:
    return [
        {
            "text": pin_text(p),
            "pin": p.pin,
            "matched": p.matched,
            "dg": digest_view(p.digest),
            "against": p.against or "digest",
            "name": p.name,
            "detail": p.detail,
            "image": p.image,
            "image_href": "#" + image_anchor(p.image) if p.image is not None else None,
        }
        for p in report.pins
    ]


def _evidence(report: Report) -> list[dict]:
    inp = report.input
    a = report.analysis
    fmt = report.format + (f", {inp.compression} compressed" if inp.compression and inp.compression != "none" else "")
    rows = [
        _row("Input file", os.path.basename(inp.path.rstrip("/")) or inp.path, mono=True),
        _row("Path as given", inp.path, mono=True),
        _row("Size", size_text(inp.size)),
        _row("SHA-256", inp.sha256, digest=inp.sha256)
        if inp.sha256
        else _row("SHA-256", "(directory input: no single file hash)"),
        _row("Format", fmt),
    ]
    rows += _custody_rows(inp)
    if a is not None:
        rows.append(_row("Analysis (UTC)", f"{a.started} \u2192 {a.finished} ({a.seconds:.2f} s)"))
    rows.append(_row("Tool", f"{report.tool.name} {report.tool.version} (report schema {report.schema_version})"))
    has_command = report.case is not None and bool(report.case.command)
    if a is not None and a.command and not has_command:
        rows.append(_row("Command line", shlex.join(a.command), mono=True))
    if a is not None and a.expect and not report.pins:
        rows.append(_row("Pinned digests (--expect)", ", ".join(a.expect), mono=True))
    return rows


def _summary_digests(report: Report, images: int = 3) -> list[dict]:
    """The digests to cite, on the first screen and the first printed page."""
    out = []
    inp = report.input
    if inp.sha256 or inp.listing_sha256:
        label = "Input sha256" if inp.sha256 else "Input listing sha256"
        out.append({"label": label, "dg": digest_view(inp.sha256 or inp.listing_sha256)})
    for img in report.images[:images]:
        if img.manifest_digest:
            out.append({"label": f"Image {img.index} manifest", "dg": digest_view(img.manifest_digest)})
        if img.config_digest:
            out.append({"label": f"Image {img.index} config (ID)", "dg": digest_view(img.config_digest)})
    return out


# What a printed page's footer may hold: it goes into the stylesheet (an @page margin box),
# so anything but these characters is replaced, whatever a hand-edited result holds.
_FOOTER_SAFE = re.compile(r"[^A-Za-z0-9 .:+_()/,-]")


def print_footer(report: Report) -> str:
    """The text printed at the foot of every page: the input's file name (safe characters
    only, at most 40), its sha256 and the tool's version."""
    inp = report.input
    name = _FOOTER_SAFE.sub("?", os.path.basename(inp.path.rstrip("/")) or inp.path)
    name = name if len(name) <= 40 else name[:37] + "..."
    if inp.sha256:
        which = f"input {inp.sha256}"
    elif inp.listing_sha256:
        which = f"input listing {inp.listing_sha256}"
    else:
        which = "input: no single file hash"
    # two lines: which file, then what proves it is that file (forensics.render.html.print_css)
    return name + "\n" + _FOOTER_SAFE.sub("?", f"{which} - {report.tool.name} {report.tool.version}")[:200]


# ---------------------------------------------------------------- the page


def build_view(report: Report, limits: Limits | None = None) -> dict:
    limits = limits or Limits()
    anchors = finding_anchors(report)
    counts = {s: 0 for s in SEVERITY_ORDER}
    for f in report.findings:
        counts[f.severity] += 1
    verdict_label, verdict_line = VERDICTS.get(report.verdict, (report.verdict, ""))
    budgets = (_Budget(limits.unexplained_total), _Budget(limits.explained_total))
    cap = _per_layer_cap(report, limits)
    shared: dict[str, str] = {}
    images = []
    for img in report.images:
        view = _image_view(img)
        view["history"] = _history_view(report, img, limits, budgets, anchors)
        view["layers"] = _files_view(report, img, cap, shared, limits)
        images.append(view)
    poisoned = [
        {
            "image": im["index"],
            "step": s["index"],
            "href": "#" + s["anchor"],
            "created_by": s["created_by"],
            "reason": s["status_reason"],
            "label": s["status_label"],
        }
        for im in images
        for s in im["history"]["steps"]
        if s["status"] == "poisoned"
    ]
    appendix = []
    for img in report.images:
        for what, text, digest in (
            ("Manifest", img.manifest_text, img.manifest_digest),
            ("Config", img.config_text, img.config_digest),
        ):
            if text is None:
                continue
            shown, how, omitted = pretty_document(text, limits.document_chars)
            appendix.append(
                {
                    "title": f"Image {img.index} {what.lower()}",
                    "digest": digest,
                    "dg": digest_view(digest),
                    "how": how,
                    "text": shown,
                    "omitted": omitted,
                    "anchor": f"doc-{img.index}-{what.lower()}",
                }
            )
    from forensics.render.svg import render_structure_svg

    name = os.path.basename(report.input.path.rstrip("/")) or report.input.path
    return {
        "title": f"{verdict_label.upper()}: {name} \u2014 container image forensics report",
        "input_name": name,
        "verdict": report.verdict,
        "verdict_label": verdict_label,
        "verdict_line": verdict_line,
        "severity_counts": [
            {"name": s.value, "label": s.value.capitalize(), "count": counts[s]} for s in SEVERITY_ORDER
        ],
        "n_findings": len(report.findings),
        "top_findings": [_finding_ref(n, f, anchors) for n, f in list(enumerate(report.findings))[:5]],
        "more_findings": max(0, len(report.findings) - 5),
        "poisoned": poisoned,
        "stats": [
            {"label": "images", "value": len(report.images)},
            {"label": "layers", "value": sum(len(i.layers) for i in report.images)},
            {"label": "archive entries", "value": len(report.blobs)},
            {
                "label": "files indexed",
                "value": f"{sum(len(layer.files) for i in report.images for layer in i.layers):,}",
            },
        ],
        "sections": [{"id": i, "label": label} for i, label in SECTIONS],
        "evidence": _evidence(report),
        "pins": _pins(report),
        "case": _case_rows(report),
        "footer": print_footer(report),
        "summary_digests": _summary_digests(report),
        "finding_groups": _finding_groups(report, limits),
        "images": images,
        "n_images": len(images),
        "ledger": _ledger(report, limits, anchors),
        "inventory": _inventory(report),
        "history_available": any(im["history"]["analysis"] for im in images),
        "file_cap": cap,
        "svg": render_structure_svg(report),
        "appendix": appendix,
        "tool": f"{report.tool.name} {report.tool.version}",
    }
