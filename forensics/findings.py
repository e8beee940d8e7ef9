"""The finding vocabulary (shared/findings.md), with one explanation per code.

The explanations serve the terminal, the JSON consumers and the HTML report alike,
so they live here once. `RAISED_BY` names the one module that emits each code:
start there when a finding surprises you.
"""

from __future__ import annotations

import hashlib

from forensics.models import Finding, Severity

SEVERITY_ORDER = [Severity.critical, Severity.high, Severity.medium, Severity.low, Severity.info]
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITY_ORDER)}

EXPLANATIONS: dict[str, str] = {
    "archive.malformed": (
        "Part of the archive could not be parsed (truncated tar, bad header, invalid JSON, "
        "corrupt compressed stream). Whatever depends on it could not be verified."
    ),
    "archive.unsafe-path": (
        "An entry name is absolute or climbs out with '..', or a link points outside the root. "
        "Extracting such an archive naively writes outside the target directory."
    ),
    "archive.duplicate-entry": (
        "The same path occurs twice in one tar. Tools disagree on which copy wins, so two "
        "readers of the same archive can see different content."
    ),
    "archive.extra-entry": (
        "An OCI layout (or a Docker 25+/containerd archive) holds entries outside what its format "
        "defines: no reader of the format looks at them, so whatever rides along reaches whoever "
        "unpacks the archive unseen. Medium for an executable (ELF, script, executable mode), low otherwise."
    ),
    "archive.unknown-format": ("Neither a docker-save archive (manifest.json) nor an OCI image layout (index.json)."),
    "archive.limit-exceeded": (
        "A safety limit (entries, path length or depth, decompressed size or ratio, history length) "
        "stopped part of the analysis; the finding names the limit and what was left unanalyzed. "
        "Nothing about that part is verified: a real image from a real tool stays far below every limit."
    ),
    "blob.digest-mismatch": (
        "The sha256 of the bytes differs from the digest they are addressed by. The content "
        "was changed after the name (or descriptor) was written."
    ),
    "blob.size-mismatch": "A descriptor's size differs from the blob's real byte count.",
    "blob.missing": "Something refers to a blob that the archive does not hold.",
    "blob.not-exported": (
        "An index names a platform manifest, attestation or referrer that the export left out, as "
        "containerd and Docker exports do for platforms that were not pulled. Allowed by the image-layout "
        "spec and never a sign of tampering, but nothing in it can be verified."
    ),
    "blob.foreign": (
        "A foreign or non-distributable layer (urls, foreign/nondistributable media type) is referenced "
        "and, as its format intends, not in the archive: its content cannot be verified here."
    ),
    "blob.unreferenced": (
        "The archive holds a blob that nothing refers to. Often harmless (Docker 25+ writes "
        "legacy v1 JSON blobs), but it is also a place to smuggle content."
    ),
    "blob.media-type-mismatch": (
        "The declared media type or compression disagrees with the bytes (says gzip, is zstd)."
    ),
    "layer.diffid-mismatch": (
        "The sha256 of the uncompressed layer differs from rootfs.diff_ids in the config: the "
        "layer is not the one the image ID was computed over."
    ),
    "layer.count-mismatch": "The manifest lists a different number of layers than rootfs.diff_ids.",
    "ref.conflict": (
        "One tag points at different images in different places of the archive "
        "(manifest.json, repositories, index.json annotations)."
    ),
    "ref.pin-mismatch": (
        "The digest you pinned (--expect) is neither the manifest nor the config digest of the "
        "image: this is not the image you deployed by digest."
    ),
    "history.count-mismatch": ("The number of history entries that own a layer differs from the number of layers."),
    "history.empty-layer-mismatch": ("A history entry's empty_layer flag contradicts its layer."),
    "history.unexplained-change": (
        "A layer changes paths that its history line does not account for: the history may "
        "have been rewritten to hide what the step really did."
    ),
    "history.package-file-modified": (
        "A file's content differs from the digest its package manager recorded at install."
    ),
    "history.effect-mismatch": (
        "What the image holds contradicts what its history says produced it: a change that contradicts "
        "the step's own command (a script where it makes a symlink, other bytes than the literal it writes, "
        "a content change where it only changes modes, an account entry unlike the one its useradd makes, "
        "a COPY whose recorded source hash does not match), or a config value (Entrypoint, Cmd, Env, "
        "User, ...) that no step sets or that differs from the last step that sets it. At info: config "
        "values a later step that records nothing (a docker commit on a built image) may have set."
    ),
    "history.time-anomaly": ("Timestamps go backwards, lie in the future, or files are newer than their step."),
    "file.binary-replaced": (
        "A path that held an executable is replaced by a different kind of file (an ELF by a "
        "script): the classic trojan wrapper."
    ),
    "file.setuid-added": "A layer adds a setuid or setgid file.",
    "file.persistence": (
        "A layer writes a known persistence or hijack point (ld.so.preload, cron, "
        "authorized_keys, shell profile) outside a package install."
    ),
    "compare.history-equal-content-differs": (
        "The two images' history lines are identical, yet the files they contain differ: "
        "comparing histories alone would have passed this image."
    ),
    "compare.content-differs": "A path differs in content, mode, owner or presence between the images.",
}

RAISED_BY: dict[str, str] = {
    "archive.malformed": "forensics.read (JSON documents, descriptors), "
    "forensics.untrusted (config values of the wrong JSON type) and "
    "forensics.verify.structure (outer tar, layer streams)",
    "archive.limit-exceeded": "forensics.verify.limits (the limits are archive.layerscan.Limits) and "
    "forensics.read (JSON documents: size and nesting)",
    "archive.unsafe-path": "forensics.verify.structure",
    "archive.duplicate-entry": "forensics.verify.structure",
    "archive.unknown-format": "forensics.read",
    "archive.extra-entry": "forensics.read.extra",
    "blob.digest-mismatch": "forensics.verify.blobs",
    "blob.size-mismatch": "forensics.verify.blobs",
    "blob.missing": "forensics.verify.blobs",
    "blob.not-exported": "forensics.verify.blobs",
    "blob.foreign": "forensics.verify.blobs",
    "blob.unreferenced": "forensics.verify.blobs",
    "blob.media-type-mismatch": "forensics.verify.blobs",
    "layer.diffid-mismatch": "forensics.verify.layers",
    "layer.count-mismatch": "forensics.verify.layers",
    "ref.conflict": "forensics.verify.refs",
    "ref.pin-mismatch": "forensics.verify.refs",
    "history.count-mismatch": "forensics.history.mapping",
    "history.empty-layer-mismatch": "forensics.history.mapping",
    "history.unexplained-change": "forensics.history.explain (layer content), forensics.history.records "
    "(container_config and legacy JSON copies of the record) and "
    "forensics.history.provenance (BuildKit provenance attestations)",
    "history.package-file-modified": "forensics.history.pkgdigests",
    "history.effect-mismatch": "forensics.history.explain (the claims it judges are in history/claims.py), "
    "forensics.history.trees (files in an extracted tree that do not look extracted), "
    "forensics.history.accounts (account entries against the step's account commands), "
    "forensics.history.copyhash (COPY/ADD source hashes) "
    "and forensics.history.config (the image config against the metadata steps)",
    "history.time-anomaly": "forensics.history.timeline and forensics.history.records",
    "file.binary-replaced": "forensics.history.content",
    "file.setuid-added": "forensics.history.content",
    "file.persistence": "forensics.history.content",
    "compare.history-equal-content-differs": "forensics.compare",
    "compare.content-differs": "forensics.compare",
}


def finding(code: str, severity: Severity | str, subject: str, detail: str, **fields) -> Finding:
    if code not in EXPLANATIONS:
        raise ValueError(f"unknown finding code {code!r}: add it to shared/findings.md first")
    return Finding(code=code, severity=Severity(severity), subject=subject, detail=detail, **fields)


def sort_findings(findings: list[Finding]) -> list[Finding]:
    # A total order, so the report does not depend on the order the checks ran in.
    return sorted(
        findings,
        key=lambda f: (
            SEVERITY_RANK[f.severity],
            f.code,
            f.subject,
            f.image if f.image is not None else -1,
            f.layer if f.layer is not None else -1,
            f.history if f.history is not None else -1,
            f.path or "",
            f.detail,
        ),
    )


def assign_ids(findings: list[Finding]) -> None:
    """Give each finding a stable identifier: a digest of its code and of where its evidence is,
    so the same input gives the same identifiers whatever else the run found. Two findings
    about the same thing are told apart by their detail, then by a counter."""
    seen: dict[str, int] = {}
    for f in findings:
        where = "\x00".join(
            str(v) if v is not None else ""
            for v in (f.code, f.image, f.layer, f.history, f.path, f.digest, f.entry, f.subject, f.detail)
        )
        base = "F-" + hashlib.sha256(where.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        n = seen.get(base, 0)
        seen[base] = n + 1
        f.id = base if n == 0 else f"{base}-{n + 1}"


def at_or_above(findings: list[Finding], threshold: Severity) -> list[Finding]:
    limit = SEVERITY_RANK[threshold]
    return [f for f in findings if SEVERITY_RANK[f.severity] <= limit]
