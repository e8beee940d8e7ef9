"""Public keys the user supplies (--key FILE, PEM), and the one primitive every envelope needs:
does this signature over these bytes verify with this key.

Built on `cryptography`: ECDSA P-256 / P-384 (cosign's and sigstore's curves), RSA with
PKCS#1 v1.5 or PSS (notation's PS256..PS512, KMS keys), Ed25519. A key file that cannot be
read is a usage error (KeyFileError), raised before the input is read."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

MAX_KEY_FILE = 1 << 16


class KeyFileError(Exception):
    """A --key file that is not a PEM public key this tool can use."""


@dataclass(frozen=True)
class PublicKey:
    source: str  # the file as given, for the report
    key: object  # a cryptography public key
    kind: str  # ecdsa-p256, ecdsa-p384, rsa-2048, ed25519, ...
    key_id: str  # sha256 of the DER SubjectPublicKeyInfo, hex: how the report names the key

    def verify(self, signature: bytes, data: bytes, *, hash_hint: str | None = None) -> bool:
        """True when `signature` is this key's over `data`. ECDSA: the curve's hash (and
        SHA-256, which cosign uses on every curve); RSA: PKCS#1 v1.5, then PSS; `hash_hint`
        (sha256/sha384/sha512) comes from an envelope that names its algorithm (JWS)."""
        return verify_with(self.key, signature, data, hash_hint=hash_hint)


_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def verify_with(key: object, signature: bytes, data: bytes, *, hash_hint: str | None = None) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            names = [hash_hint] if hash_hint else [{384: "sha384", 521: "sha512"}.get(key.curve.key_size, "sha256")]
            names += [n for n in ("sha256",) if n not in names]
            for name in names:
                try:
                    key.verify(signature, data, ec.ECDSA(_HASHES[name]()))
                    return True
                except InvalidSignature:
                    continue
            return False
        if isinstance(key, rsa.RSAPublicKey):
            names = [hash_hint] if hash_hint else ["sha256", "sha384", "sha512"]
            for name in names:
                h = _HASHES[name]
                for pad in (padding.PKCS1v15(), padding.PSS(mgf=padding.MGF1(h()), salt_length=padding.PSS.AUTO)):
                    try:
                        key.verify(signature, data, pad, h())
                        return True
                    except InvalidSignature:
                        continue
            return False
    except (InvalidSignature, ValueError, UnsupportedAlgorithm, TypeError):
        return False
    return False


def describe(key: object) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ecdsa-{key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"rsa-{key.key_size}"
    return type(key).__name__


def key_id(key: object) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]
    return hashlib.sha256(der).hexdigest()


def load_key(path: str) -> PublicKey:
    """One --key file: a PEM public key (or a certificate, whose key is used)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEY_FILE + 1)
    except FileNotFoundError:
        raise KeyFileError(f"--key {path}: no such file") from None
    except OSError as exc:
        raise KeyFileError(f"--key {path}: cannot read it: {exc.strerror or exc}") from None
    if len(data) > MAX_KEY_FILE:
        raise KeyFileError(f"--key {path}: larger than {MAX_KEY_FILE} bytes, not a PEM public key")
    key: object
    try:
        if b"BEGIN CERTIFICATE" in data:
            from cryptography import x509

            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm, TypeError):
        hint = " (that is a private key: give the public half, e.g. cosign.pub)" if b"PRIVATE KEY" in data else ""
        raise KeyFileError(
            f"--key {path}: not a PEM public key (expected '-----BEGIN PUBLIC KEY-----', "
            f"ECDSA P-256/P-384, RSA or Ed25519){hint}"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise KeyFileError(f"--key {path}: a {describe(key)} key; supported are ECDSA P-256/P-384, RSA and Ed25519")
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
        raise KeyFileError(f"--key {path}: ECDSA on {key.curve.name}; supported curves are P-256, P-384, P-521")
    return PublicKey(source=path, key=key, kind=describe(key), key_id=key_id(key))


def obj(v: object) -> dict[str, Any]:
    """A JSON object of untrusted input, or an empty one."""
    return v if isinstance(v, dict) else {}


def arr(v: object) -> list[Any]:
    return v if isinstance(v, list) else []


def b64decode(text: object) -> bytes | None:
    """Standard or URL-safe base64, padded or not; None for anything else (untrusted input)."""
    if not isinstance(text, str) or len(text) > 1 << 26:
        return None
    s = "".join(text.split())
    s += "=" * (-len(s) % 4)
    try:
        if "-" in s or "_" in s:
            return base64.urlsafe_b64decode(s)
        return base64.b64decode(s, validate=True)
    except ValueError:
        return None


# Fulcio's OIDC issuer extensions: 1.1 holds the raw string (deprecated), 1.8 a DER UTF8String.
_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"


def certificate_identity(cert: object) -> tuple[str | None, str | None]:
    """(subject alternative name, OIDC issuer) of a signing certificate, as recorded in it;
    the certificate's subject when it has no SAN (notation's X.509 signing certificates)."""
    from cryptography import x509

    if not isinstance(cert, x509.Certificate):
        return None, None
    try:
        return _identity(cert)
    except Exception:  # a hostile certificate's extensions are parsed lazily, and may raise anything
        return None, None


def _identity(cert) -> tuple[str | None, str | None]:
    from cryptography import x509

    identity: str | None = None
    issuer: str | None = None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(v) for v in san.get_values_for_type(x509.RFC822Name)]
        names += [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
        identity = names[0] if names else None
    except (x509.ExtensionNotFound, ValueError):
        pass
    if identity is None:
        try:
            identity = cert.subject.rfc4514_string() or None
        except ValueError:
            identity = None
    for ext in cert.extensions:
        oid = ext.oid.dotted_string
        if oid in (_ISSUER_V1, _ISSUER_V2) and isinstance(ext.value, x509.UnrecognizedExtension):
            raw = ext.value.value
            if oid == _ISSUER_V2 and len(raw) > 2 and raw[0] == 0x0C:  # DER UTF8String, short form
                raw = raw[2:] if raw[1] < 0x80 else raw[2 + (raw[1] & 0x7F) :]
            issuer = raw.decode("utf-8", "replace")[:300]
            if oid == _ISSUER_V2:
                break
    return (identity[:300] if identity else None), issuer


def load_certificate(data: bytes | None, *, der: bool = False) -> object | None:
    if not data:
        return None
    from cryptography import x509

    try:
        return x509.load_der_x509_certificate(data) if der else x509.load_pem_x509_certificate(data)
    except ValueError:
        return None
