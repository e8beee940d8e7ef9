"""SARIF 2.1.0 for code-scanning dashboards: a Report (`scan`) or a Comparison (`diff`) -> a dict.

One rule per finding code, its explanation as help text and GitHub's
`security-severity`. Each result is located at the artifact `image/<path>` (as
grype writes it) or, for a finding about the archive itself, `archive/<entry>`,
and at a logical location naming the image digest and the layer
(`sha256:…/layer/N`). Its `partialFingerprints` digest the code, the path and the
layer's diff_id: no tag, file name or image index, so an alert survives a rename
of the image and a rebuild that keeps the layer. `Finding.id` goes into
`fingerprints` and `properties`, to cite. Suppressed findings (forensics.suppress)
are results with a `suppressions` entry carrying the statement, as SARIF intends:
listed, not counted.

Every string from the image is kept as it is (JSON escapes it); URIs are
percent-encoded from the path's bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

from forensics import __version__
from forensics.compare.model import Comparison
from forensics.findings import EXPLANATIONS, SEVERITY_RANK
from forensics.models import Finding, Image, Report, Severity

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
FINGERPRINT = "forensicsFinding/v1"  # sha256 of code, path (or entry/digest) and diff_id
ID_FINGERPRINT = "forensicsId/v1"  # Finding.id

# GitHub's bands: > 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, below that low; info has none.
SECURITY_SEVERITY: dict[Severity, str | None] = {
    Severity.critical: "9.5",
    Severity.high: "8.0",
    Severity.medium: "5.5",
    Severity.low: "3.0",
    Severity.info: None,
}
LEVEL: dict[Severity, str] = {
    Severity.critical: "error",
    Severity.high: "error",
    Severity.medium: "warning",
    Severity.low: "note",
    Severity.info: "note",
}


def _uri(prefix: str, path: str) -> str:
    try:
        raw = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape, not from a tar name
        raw = path.encode("utf-8", "surrogatepass")
    return prefix + "/" + quote(raw.lstrip(b"/"), safe="/")


def _image_digest(img: Image | None) -> str | None:
    if img is None:
        return None
    return img.manifest_digest or img.config_digest or img.declared_config_digest


def _diff_id(img: Image | None, layer: int | None) -> str | None:
    if img is None or layer is None or not 0 <= layer < len(img.layers):
        return None
    lay = img.layers[layer]
    return lay.diff_id or lay.declared_diff_id or lay.digest


def _fingerprint(f: Finding, diff_id: str | None) -> str:
    where = f.path if f.path is not None else (f.entry or f.digest or "")
    text = "\x00".join((f.code, where, diff_id or ""))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _rule(code: str, severity: Severity) -> dict[str, Any]:
    text = EXPLANATIONS.get(code, code)
    props: dict[str, Any] = {"tags": ["security", "container-image", code.split(".", 1)[0]]}
    score = SECURITY_SEVERITY[severity]
    if score is not None:
        props["security-severity"] = score
    return {
        "id": code,
        "name": "".join(part.capitalize() for part in code.replace("-", ".").split(".")),
        "shortDescription": {"text": code},
        "fullDescription": {"text": text},
        "help": {"text": text},
        "defaultConfiguration": {"level": LEVEL[severity]},
        "properties": props,
    }


def _rules(findings: list[Finding]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One rule per code, at the highest severity the run gives it (a code's findings vary:
    a dashboard ranks the rule by this)."""
    worst: dict[str, Severity] = {}
    for f in findings:
        if f.code not in worst or SEVERITY_RANK[f.severity] < SEVERITY_RANK[worst[f.code]]:
            worst[f.code] = f.severity
    codes = sorted(worst)
    return [_rule(c, worst[c]) for c in codes], {c: i for i, c in enumerate(codes)}


def _result(
    f: Finding,
    index: dict[str, int],
    image: tuple[int, str | None] | None,
    layer: int | None,
    diff_id: str | None,
    suppression: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`image`: (index, digest) of the image the finding is about; `layer` and its `diff_id`."""
    if f.path is not None:
        uri = _uri("image", f.path)
    elif f.entry:
        uri = _uri("archive", f.entry)
    else:
        uri = "archive"
    location: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": uri}}}
    if image is not None and image[1]:
        n, digest = image
        logical: dict[str, Any] = {"fullyQualifiedName": digest, "kind": "module", "name": f"image {n}"}
        if layer is not None:
            logical = {
                "fullyQualifiedName": f"{digest}/layer/{layer}",
                "kind": "module",
                "name": f"layer {layer}",
                "properties": {"diff_id": diff_id, "image": n},
            }
        location["logicalLocations"] = [logical]
    props: dict[str, Any] = {"id": f.id, "severity": f.severity.value, "subject": f.subject}
    score = SECURITY_SEVERITY[f.severity]
    if score is not None:
        props["security-severity"] = score
    for key in ("image", "layer", "history", "path", "digest", "entry"):
        value = getattr(f, key)
        if value is not None:
            props[key] = value
    if f.evidence:
        props["evidence"] = f.evidence
    result: dict[str, Any] = {
        "ruleId": f.code,
        "ruleIndex": index[f.code],
        "level": LEVEL[f.severity],
        "message": {"text": f"{f.subject}: {f.detail}"},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT: _fingerprint(f, diff_id)},
        "properties": props,
    }
    if f.id:
        result["fingerprints"] = {ID_FINGERPRINT: f.id}
    if suppression is not None:
        result["suppressions"] = [suppression]
    return result


def _image_props(img: Image) -> dict[str, Any]:
    return {
        "index": img.index,
        "refs": list(img.refs),
        "platform": img.platform,
        "manifest_digest": img.manifest_digest,
        "config_digest": img.config_digest,
        "diff_ids": [layer.diff_id for layer in img.layers],
    }


def _input_props(report_input) -> dict[str, Any]:
    keep = ("path", "kind", "size", "sha256", "listing_sha256", "sha256_end")
    return {k: getattr(report_input, k) for k in keep if getattr(report_input, k) is not None}


def _driver() -> dict[str, Any]:
    return {"name": "forensics", "version": __version__, "semanticVersion": __version__}


def _log(run: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def report_to_sarif(report: Report) -> dict[str, Any]:
    """The scan result as a SARIF log of one run."""
    images = {img.index: img for img in report.images}
    rules, index = _rules(list(report.findings) + [s.finding for s in report.suppressed])

    def result(f: Finding, suppression: dict[str, Any] | None = None) -> dict[str, Any]:
        img = images.get(f.image) if f.image is not None else None
        if img is None and f.image is None and f.layer is not None and len(report.images) == 1:
            img = report.images[0]
        where = (img.index, _image_digest(img)) if img is not None else None
        return _result(f, index, where, f.layer, _diff_id(img, f.layer), suppression)

    results = [result(f) for f in report.findings]
    for s in report.suppressed:
        why = {
            "kind": "external",
            "status": "accepted",
            "justification": s.statement,
            "properties": {"source": s.source, "entry": s.entry},
        }
        results.append(result(s.finding, why))
    props: dict[str, Any] = {
        "input": _input_props(report.input),
        "format": report.format,
        "verdict": report.verdict,
        "images": [_image_props(img) for img in report.images],
    }
    if report.case is not None:
        props["case"] = report.case.model_dump(exclude_none=True)
    if report.suppression is not None:
        props["suppression"] = report.suppression.model_dump(exclude_none=True)
    run: dict[str, Any] = {
        "tool": {"driver": {**_driver(), "rules": rules}},
        "results": results,
        "columnKind": "unicodeCodePoints",
        "properties": props,
    }
    if report.analysis is not None:
        run["invocations"] = [
            {
                "executionSuccessful": report.verdict != "unreadable",
                "startTimeUtc": report.analysis.started,
                "endTimeUtc": report.analysis.finished,
                "commandLine": " ".join(report.analysis.command),
            }
        ]
    return _log(run)


def comparison_to_sarif(cmp: Comparison) -> dict[str, Any]:
    """`forensics diff` as a SARIF log: the comparison findings, located in B (the image in
    question) at the layer that wrote the path there."""
    rules, index = _rules(cmp.findings)
    b = cmp.b
    where = (b.image, b.manifest_digest or b.config_digest)
    results = []
    for f in cmp.findings:
        ev = f.evidence or {}
        side = ev.get("b") if isinstance(ev.get("b"), dict) else None
        layer = side.get("layer") if side else ev.get("layer_b")
        if not (isinstance(layer, int) and 0 <= layer < len(b.diff_ids)):
            layer = None
        results.append(_result(f, index, where, layer, b.diff_ids[layer] if layer is not None else None))

    def summary(s) -> dict[str, Any]:
        return {
            "input": _input_props(s.input),
            "format": s.format,
            "verdict": s.verdict,
            "image": s.image,
            "refs": list(s.refs),
            "platform": s.platform,
            "manifest_digest": s.manifest_digest,
            "config_digest": s.config_digest,
            "diff_ids": list(s.diff_ids),
        }

    props = {
        "a": summary(cmp.a),
        "b": summary(b),
        "verdict": cmp.verdict,
        "history_equal": cmp.history_equal,
        "content_equal": cmp.content_equal,
        "headline": cmp.headline,
    }
    run = {
        "tool": {"driver": {**_driver(), "rules": rules}},
        "results": results,
        "columnKind": "unicodeCodePoints",
        "properties": props,
    }
    return _log(run)
