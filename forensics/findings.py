"""The finding registry: the vocabulary (shared/findings.md) as a type, one explanation per
code, and where each code is raised, read from the code itself.

`Code` lists every code the project may raise. Each module that raises findings declares the
codes it raises next to its checks, `RAISES: tuple[Code, ...] = (...)`; `RAISED_BY` is derived
from those declarations (tests/test_findings.py walks every `finding(...)` call and holds it to
its module's declaration and to the vocabulary). The explanations serve the terminal, the JSON
consumers and the HTML report alike, so they live here once; the longer teaching entry behind
each code (`explain_code`) is in forensics/explain/teaching.py.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path
from typing import Literal, get_args

from forensics.models import Finding, Severity

SEVERITY_ORDER = [Severity.critical, Severity.high, Severity.medium, Severity.low, Severity.info]
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITY_ORDER)}

Code = Literal[
    "archive.malformed",
    "archive.unsafe-path",
    "archive.duplicate-entry",
    "archive.unknown-format",
    "archive.extra-entry",
    "archive.limit-exceeded",
    "blob.digest-mismatch",
    "blob.size-mismatch",
    "blob.missing",
    "blob.not-exported",
    "blob.foreign",
    "blob.unreferenced",
    "blob.media-type-mismatch",
    "layer.diffid-mismatch",
    "layer.count-mismatch",
    "ref.conflict",
    "ref.pin-mismatch",
    "history.count-mismatch",
    "history.empty-layer-mismatch",
    "history.unexplained-change",
    "history.package-file-modified",
    "history.effect-mismatch",
    "history.time-anomaly",
    "file.binary-replaced",
    "file.setuid-added",
    "file.persistence",
    "file.known-bad",
    "signature.verified",
    "signature.invalid",
    "signature.subject-mismatch",
    "signature.unverified",
    "attestation.sbom-mismatch",
    "compare.history-equal-content-differs",
    "compare.content-differs",
]
# In the vocabulary's order, which the generated docs/findings.md follows.
CODES: tuple[Code, ...] = get_args(Code)

# The vocabulary's sections, by the code's first word.
SECTIONS: dict[str, str] = {
    "archive": "Archive",
    "blob": "Blobs and digests",
    "layer": "Blobs and digests",
    "ref": "Blobs and digests",
    "history": "History against layers",
    "file": "Content",
    "signature": "Signatures and attestations",
    "attestation": "Signatures and attestations",
    "compare": "Comparison of two images",
}


def section(code: str) -> str:
    return SECTIONS[code.split(".", 1)[0]]


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
    "archive.unknown-format": ("Neither a docker-save archive (manifest.json) nor an OCI image layout (index.json)."),
    "archive.extra-entry": (
        "The archive holds entries outside what its format defines (files outside blobs/ in an OCI "
        "layout). No reader of the format looks at them, so nothing verifies them: a place to carry content."
    ),
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
    "file.known-bad": (
        "A file's sha256 is in a known-bad hash set you supplied (--known-bad): some layer of the image "
        "ships exactly those bytes, whatever the file is called and even if a later layer deletes it."
    ),
    "signature.verified": (
        "A signature or attestation over a manifest the archive holds verifies with a key or trusted root you supplied."
    ),
    "signature.invalid": (
        "A signature or envelope does not verify, or signs a payload that names another digest than the "
        "manifest it is attached to."
    ),
    "signature.subject-mismatch": (
        "A signature or attestation names a manifest the archive does not hold, or whose bytes do not hash to it."
    ),
    "signature.unverified": (
        "Signatures or attestations are present, but nothing (a key, a trusted root) was given to verify them with."
    ),
    "attestation.sbom-mismatch": (
        "An SBOM attestation lists packages the layers do not hold, or misses packages they do, or gives "
        "another version than their databases record."
    ),
    "compare.history-equal-content-differs": (
        "The two images' history lines are identical, yet the files they contain differ: "
        "comparing histories alone would have passed this image."
    ),
    "compare.content-differs": "A path differs in content, mode, owner or presence between the images.",
}


def _declared(tree: ast.Module) -> tuple[str, ...] | None:
    """The module's `RAISES = (...)` (annotated or not), which must be a literal tuple of strings."""
    for node in tree.body:
        target: ast.expr
        if isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id == "RAISES" and value is not None:
            codes = ast.literal_eval(value)
            if not isinstance(codes, tuple) or not all(isinstance(c, str) for c in codes):
                raise TypeError("RAISES must be a tuple of code strings")
            return codes
    return None


@cache
def declarations() -> dict[str, tuple[str, ...]]:
    """Module name -> the codes it declares it raises, read from the package's source (no import:
    the checks import this module)."""
    root = Path(__file__).resolve().parent
    out: dict[str, tuple[str, ...]] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        declared = _declared(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if declared is not None:
            out[".".join(parts)] = declared
    return out


def raised_by() -> dict[str, list[str]]:
    """Code -> the modules that declare raising it; a code of the vocabulary that no module raises
    yet (its issue is open) is absent."""
    out: dict[str, list[str]] = {}
    for module, codes in declarations().items():
        for code in codes:
            out.setdefault(code, []).append(module)
    return out


def __getattr__(name: str):
    # RAISED_BY is derived lazily: reading the sources is for the tests, docs and `explain`, not for a scan.
    if name == "RAISED_BY":
        by = raised_by()
        return {code: ", ".join(by[code]) for code in CODES if code in by}
    raise AttributeError(name)


def explain_code(code: str) -> dict:
    """Everything the project says about one code, as plain data (the HTML shows it behind each
    finding, `forensics explain CODE` prints it): meaning, why it matters, how an attacker produces
    it, how to confirm it by hand, known false-positive causes, and the modules that raise it.
    Raises KeyError for a code outside the vocabulary."""
    from forensics.explain.teaching import TEACHING

    if code not in EXPLANATIONS:
        raise KeyError(code)
    t = TEACHING[code]
    return {
        "code": code,
        "section": section(code),
        "meaning": EXPLANATIONS[code],
        "severity": t.severity,
        "why": t.why,
        "attack": t.attack,
        "confirm": [{"say": s, "run": c} for s, c in t.confirm],
        "false_positives": list(t.false_positives),
        "raised_by": raised_by().get(code, []),
    }


def closest_codes(text: str, n: int = 3) -> list[str]:
    """The codes nearest to a mistyped one: a prefix or substring first, then by spelling."""
    import difflib

    low = text.strip().lower()
    hits: list[str] = [c for c in CODES if low and (c.startswith(low) or low in c)]
    hits += [c for c in difflib.get_close_matches(low, CODES, n=n, cutoff=0.5) if c not in hits]
    return hits[:n]


def finding(code: Code, severity: Severity | str, subject: str, detail: str, **fields) -> Finding:
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
