"""Sigstore bundles (protobuf-specs `sigstore_bundle.proto`, JSON form; media types
`application/vnd.dev.sigstore.bundle+json;version=0.1|0.2` and `...bundle.v0.3+json`), read as
untrusted JSON: what verification material they carry (a public key hint, a certificate or
a chain) and their content (a message signature or a DSSE envelope). With a --key the
content is verified here; keyless verification goes through sigstore (keyless.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from forensics.signatures import dsse
from forensics.signatures.keys import b64decode, certificate_identity, load_certificate, obj


@dataclass
class BundleDoc:
    media_type: str | None = None
    key_hint: str | None = None
    identity: str | None = None
    issuer: str | None = None
    certificate: bool = False
    tlog_entries: int = 0
    message_digest: bytes | None = None  # SHA2_256 of the signed artifact
    message_signature: bytes | None = None
    envelope: dsse.Envelope | None = None
    error: str | None = None


def parse(data: bytes | None) -> BundleDoc:
    if data is None:
        return BundleDoc(error="the bundle blob is not in the archive")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return BundleDoc(error="the bundle is not valid JSON")
    if not isinstance(doc, dict):
        return BundleDoc(error="the bundle is not a JSON object")
    out = BundleDoc(media_type=doc.get("mediaType") if isinstance(doc.get("mediaType"), str) else None)
    vm = obj(doc.get("verificationMaterial"))
    pk = vm.get("publicKey")
    if isinstance(pk, dict) and isinstance(pk.get("hint"), str):
        out.key_hint = pk["hint"][:200]
    raw_cert = None
    if isinstance(vm.get("certificate"), dict):
        raw_cert = vm["certificate"].get("rawBytes")
    elif isinstance(vm.get("x509CertificateChain"), dict):
        certs = vm["x509CertificateChain"].get("certificates")
        raw_cert = (
            certs[0].get("rawBytes") if isinstance(certs, list) and certs and isinstance(certs[0], dict) else None
        )
    if raw_cert is not None:
        out.certificate = True
        out.identity, out.issuer = certificate_identity(load_certificate(b64decode(raw_cert), der=True))
    out.tlog_entries = len(vm["tlogEntries"]) if isinstance(vm.get("tlogEntries"), list) else 0
    ms = doc.get("messageSignature")
    if isinstance(ms, dict):
        md = obj(ms.get("messageDigest"))
        out.message_digest = b64decode(md.get("digest")) if md.get("algorithm") in ("SHA2_256", None) else None
        out.message_signature = b64decode(ms.get("signature"))
        if out.message_signature is None:
            out.error = "messageSignature.signature is not base64"
    elif isinstance(doc.get("dsseEnvelope"), dict):
        out.envelope, why = dsse.parse(doc["dsseEnvelope"])
        if out.envelope is None:
            out.error = f"dsseEnvelope: {why}"
    else:
        out.error = "the bundle holds neither a messageSignature nor a dsseEnvelope"
    return out
