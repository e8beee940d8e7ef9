"""The SBOM attestations of an archive: in-toto statements whose predicate is an SPDX or
CycloneDX document, found where BuildKit puts them (an attestation manifest beside each
platform manifest, `vnd.docker.reference.digest` naming it, one statement per layer) or
in any artifact whose in-toto blobs name an image of the archive as their subject. A bare
SPDX or CycloneDX document attached as a referrer (`oras attach --artifact-type
application/spdx+json`, `subject` naming the image) is read as the predicate of such a
statement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from forensics.read.model import Digest, Resolved

SPDX = "https://spdx.dev/Document"
CYCLONEDX = "https://cyclonedx.org/bom"
# Media types of a bare SBOM document -> the predicate type its in-toto statement would declare.
BARE = {
    "application/spdx+json": SPDX,
    "text/spdx+json": SPDX,
    "application/vnd.cyclonedx+json": CYCLONEDX,
}


@dataclass
class Statement:
    statement: dict  # the parsed in-toto statement
    where: str  # for evidence: the attestation manifest and blob
    digest: str | None  # of the statement's blob
    verified: bool  # the blob's bytes match its descriptor


def is_sbom(predicate_type: object) -> bool:
    return isinstance(predicate_type, str) and predicate_type.startswith((SPDX, CYCLONEDX))


def sbom_statements(res: Resolved) -> dict[str, list[Statement]]:
    """SBOM statements by the manifest digest they describe."""
    out: dict[str, list[Statement]] = {}
    for art in res.artifact_refs:
        for b in art.blobs:
            bare = BARE.get(str(b.media_type).split(";", 1)[0].strip().lower())
            if ("in-toto" not in str(b.media_type) and bare is None) or b.entry is None or b.entry.data is None:
                continue
            try:
                st = json.loads(b.entry.data)
            except (ValueError, RecursionError):
                continue
            if bare is not None:
                st = {"predicateType": bare, "predicate": st, "subject": []}
            if not isinstance(st, dict) or not is_sbom(st.get("predicateType")):
                continue
            raw = st.get("subject")
            subjects: list = raw if isinstance(raw, list) else []
            named: set[str | None] = {
                Digest.parse_hex(s["digest"].get("sha256"))
                for s in subjects
                if isinstance(s, dict) and isinstance(s.get("digest"), dict)
            }
            found = Statement(st, f"attestation {art.manifest.digest} blob {b.digest}", b.digest, b.matches)
            for key in sorted(k for k in {art.subject, *named} if k is not None):
                out.setdefault(key, []).append(found)
    return out
