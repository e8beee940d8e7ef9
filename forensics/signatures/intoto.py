"""in-toto statements (in-toto/attestation `spec/v1/statement.md`): their subjects, held to
the manifests, configs and layers of the archive, and a short account of SLSA provenance
(v0.2 and v1: builder, build definition, materials). Statements are plain JSON: no
library is needed to read them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from forensics.models import SlsaSummary
from forensics.read.model import Digest
from forensics.signatures.keys import obj

STATEMENT_TYPES = ("https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1")
SBOM_MARKERS = ("spdx", "cyclonedx", "syft")
MAX_MATERIALS = 64


@dataclass
class Statement:
    predicate_type: str | None
    subjects: list[tuple[str, Digest | None]] = field(default_factory=list)  # (name, sha256 digest)
    predicate: Any = None


def parse(data: bytes | None) -> tuple[Statement | None, str | None]:
    if data is None:
        return None, "not in the archive or not kept"
    try:
        doc = json.loads(data)
    except RecursionError:
        return None, "JSON nested deeper than the reader follows (max_json_depth)"
    except (ValueError, UnicodeDecodeError):
        return None, "not valid JSON"
    if not isinstance(doc, dict) or not isinstance(doc.get("subject"), list):
        return None, "not an in-toto statement (no subject list)"
    subjects: list[tuple[str, Digest | None]] = []
    for s in doc["subject"][:256]:
        if not isinstance(s, dict):
            continue
        raw = s.get("name")
        name = raw if isinstance(raw, str) else ""
        digests = obj(s.get("digest"))
        subjects.append((name[:300], Digest.parse_hex(digests.get("sha256"))))
    ptype = doc.get("predicateType") if isinstance(doc.get("predicateType"), str) else None
    return Statement(ptype, subjects, doc.get("predicate")), None


def is_sbom(predicate_type: str | None) -> bool:
    low = (predicate_type or "").lower()
    return any(m in low for m in SBOM_MARKERS)


def _text(x: object, limit: int = 300) -> str | None:
    if isinstance(x, str):
        return x[:limit]
    if x is None:
        return None
    return json.dumps(x, sort_keys=True, ensure_ascii=False)[:limit]


def _material(m: object) -> str | None:
    if not isinstance(m, dict):
        return None
    uri = next((v for v in (m.get("uri"), m.get("name")) if isinstance(v, str)), "")
    dg = obj(m.get("digest"))
    pair = next(((k, v) for k, v in sorted(dg.items()) if isinstance(k, str) and isinstance(v, str)), None)
    return (uri[:300] + (f"@{pair[0]}:{pair[1][:128]}" if pair else "")) or None


def slsa_summary(predicate_type: str | None, predicate: object) -> SlsaSummary | None:
    """Builder, build type, the build's parameters and its materials, as recorded (unsigned
    for BuildKit, signed for a verified envelope: the record says which)."""
    if "slsa.dev/provenance" not in (predicate_type or "") or not isinstance(predicate, dict):
        return None
    out = SlsaSummary(version=(predicate_type or "").rsplit("/", 1)[-1])
    bd = predicate.get("buildDefinition")
    if isinstance(bd, dict):  # v1
        run = obj(predicate.get("runDetails"))
        builder = obj(run.get("builder"))
        out.builder_id = _text(builder.get("id"))
        out.build_type = _text(bd.get("buildType"))
        params = bd.get("externalParameters")
        mats = bd.get("resolvedDependencies")
    else:  # v0.2
        builder = obj(predicate.get("builder"))
        out.builder_id = _text(builder.get("id"))
        out.build_type = _text(predicate.get("buildType"))
        inv = obj(predicate.get("invocation"))
        params = {k: v for k, v in inv.items() if k in ("configSource", "parameters")}
        mats = predicate.get("materials")
    if isinstance(params, dict):
        out.parameters = {str(k)[:100]: _text(v) or "" for k, v in list(params.items())[:32]}
    for m in mats if isinstance(mats, list) else []:
        if len(out.materials) >= MAX_MATERIALS:
            out.materials_omitted += 1
        elif (s := _material(m)) is not None:
            out.materials.append(s)
    return out
