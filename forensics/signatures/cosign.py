"""cosign key-based signatures (cosign `specs/SIGNATURE_SPEC.md`): the signature in the layer's
`dev.cosignproject.cosign/signature` annotation is over the simple-signing payload's exact
bytes, and the payload's `critical.image.docker-manifest-digest` names what was signed."""

from __future__ import annotations

import json
from dataclasses import dataclass

from forensics.read.model import Descriptor, Digest
from forensics.signatures.inventory import BUNDLE_ANNOTATION, CERT_ANNOTATION, SIGNATURE_ANNOTATION
from forensics.signatures.keys import PublicKey, b64decode, obj

SIMPLE_SIGNING_TYPE = "cosign container image signature"


@dataclass
class Payload:
    digest: Digest | None = None  # critical.image.docker-manifest-digest
    reference: str | None = None  # critical.identity.docker-reference
    error: str | None = None  # why it is not a simple-signing payload


def parse_payload(data: bytes | None) -> Payload:
    if data is None:
        return Payload(error="the payload blob is not in the archive")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return Payload(error="the payload is not valid JSON")
    crit = doc.get("critical") if isinstance(doc, dict) else None
    if not isinstance(crit, dict):
        return Payload(error="the payload has no 'critical' object: not a simple-signing payload")
    image = obj(crit.get("image"))
    ident = obj(crit.get("identity"))
    raw = image.get("docker-manifest-digest")
    ref = ident.get("docker-reference")
    out = Payload(digest=Digest.parse(raw), reference=ref[:300] if isinstance(ref, str) else None)
    if out.digest is None:
        out.error = f"critical.image.docker-manifest-digest is {json.dumps(raw)[:100]}, not a sha256 digest"
    return out


def signature(blob: Descriptor) -> bytes | None:
    return b64decode(blob.annotations.get(SIGNATURE_ANNOTATION))


def certificate_pem(blob: Descriptor) -> bytes | None:
    pem = blob.annotations.get(CERT_ANNOTATION)
    return pem.encode("utf-8", "replace") if pem and "BEGIN CERTIFICATE" in pem else None


def has_rekor_bundle(blob: Descriptor) -> bool:
    return bool(blob.annotations.get(BUNDLE_ANNOTATION))


def verify(blob: Descriptor, payload: bytes, keys: list[PublicKey]) -> PublicKey | None:
    """The key the annotation's signature over the payload bytes verifies with."""
    sig = signature(blob)
    if sig is None:
        return None
    return next((k for k in keys if k.verify(sig, payload)), None)
