"""notation signatures (notaryproject `specs/signature-envelope-jws.md`): a JWS in its JSON
serialization whose payload names the signed manifest (`targetArtifact`), with the signing
certificate chain in the `x5c` header. With a --key (the public key of the signing
certificate), the JWS is verified over `protected.payload`; trusting the chain itself is a
notation trust policy, which this tool does not evaluate. COSE envelopes are recorded only."""

from __future__ import annotations

import json
from dataclasses import dataclass

from forensics.read.model import Digest
from forensics.signatures.keys import PublicKey, arr, b64decode, certificate_identity, load_certificate, obj

# JWS alg -> the hash it signs with
ALGS = {
    "PS256": "sha256",
    "PS384": "sha384",
    "PS512": "sha512",
    "ES256": "sha256",
    "ES384": "sha384",
    "ES512": "sha512",
}


@dataclass
class Jws:
    alg: str | None = None
    target: Digest | None = None  # payload targetArtifact.digest
    identity: str | None = None  # the leaf certificate's subject, as recorded
    signing_input: bytes = b""
    signature: bytes | None = None
    error: str | None = None


def parse(data: bytes | None) -> Jws:
    if data is None:
        return Jws(error="the envelope blob is not in the archive")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return Jws(error="the JWS envelope is not valid JSON")
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) for k in ("payload", "protected", "signature")):
        return Jws(error="not a JWS JSON serialization (payload, protected, signature)")
    out = Jws(signing_input=f"{doc['protected']}.{doc['payload']}".encode("ascii", "replace"))
    out.signature = b64decode(doc["signature"])
    try:
        header = json.loads(b64decode(doc["protected"]) or b"")
        payload = json.loads(b64decode(doc["payload"]) or b"")
    except (ValueError, RecursionError, UnicodeDecodeError):
        out.error = "the protected header or the payload is not base64url JSON"
        return out
    out.alg = header.get("alg") if isinstance(header, dict) and isinstance(header.get("alg"), str) else None
    target = payload.get("targetArtifact") if isinstance(payload, dict) else None
    out.target = Digest.parse(target.get("digest")) if isinstance(target, dict) else None
    unprotected = obj(doc.get("header"))
    chain = arr(unprotected.get("x5c"))
    if chain:
        cert = load_certificate(b64decode(chain[0]), der=True)
        out.identity = certificate_identity(cert)[0]
    if out.alg not in ALGS:
        out.error = f"JWS alg {str(out.alg)[:20]!r} is not one notation allows"
    elif out.target is None:
        out.error = "the payload names no targetArtifact digest"
    return out


def verify(jws: Jws, keys: list[PublicKey]) -> PublicKey | None:
    if jws.signature is None or jws.alg not in ALGS:
        return None
    return next((k for k in keys if k.verify(jws.signature, jws.signing_input, hash_hint=ALGS[jws.alg or ""])), None)
