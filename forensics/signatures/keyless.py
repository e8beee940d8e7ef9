"""Keyless verification of sigstore bundles against a trusted root the user carries in
(`--trusted-root trusted_root.json --identity ID --issuer URL`), through the `sigstore`
package, fully offline: no TUF refresh, no Rekor query. sigstore is an optional extra
(`pip install 'container-image-forensics[sigstore]'`).

What sigstore checks here (sigstore-python `verify/verifier.py`): the certificate chains to
the root's Fulcio CA at a time the log vouches for, its SCT, the identity and issuer you
require, the Rekor inclusion proof against a signed checkpoint and the inclusion promise,
then the signature. What no offline check can establish: that the trusted root you carried
in is still current, and that no key or certificate in it was revoked since."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EXTRA_HINT = "pip install 'container-image-forensics[sigstore]' (in a checkout: pip install -e '.[sigstore]')"
OFFLINE_LIMITS = (
    "keyless verification ran offline against the trusted root given: it cannot establish that "
    "this root is current (a rotated or distrusted key in a newer root is not seen) nor that any "
    "certificate or key was revoked since"
)


class KeylessError(Exception):
    """--trusted-root, --identity or --issuer that cannot be used: a usage error."""


@dataclass
class Keyless:
    path: str
    identity: str
    issuer: str
    verifier: Any  # sigstore.verify.Verifier
    policy: Any  # sigstore.verify.policy.Identity


def load(path: str, identity: str | None, issuer: str | None) -> Keyless:
    if not identity or not issuer:
        raise KeylessError(
            "--trusted-root needs --identity (the certificate's subject, e.g. an e-mail or a workflow URL) "
            "and --issuer (the OIDC issuer, e.g. https://token.actions.githubusercontent.com): a keyless "
            "signature proves nothing until you say whose it must be"
        )
    try:
        from sigstore.models import TrustedRoot
        from sigstore.verify import Verifier
        from sigstore.verify.policy import Identity
    except ImportError:
        raise KeylessError(f"--trusted-root needs the optional sigstore support: {EXTRA_HINT}") from None
    try:
        root = TrustedRoot.from_file(path)
        verifier = Verifier(trusted_root=root)
    except FileNotFoundError:
        raise KeylessError(f"--trusted-root {path}: no such file") from None
    except OSError as exc:
        raise KeylessError(f"--trusted-root {path}: cannot read it: {exc.strerror or exc}") from None
    except Exception as exc:  # sigstore raises its own Error, ValueError or a protobuf decode error
        msg = " ".join(str(exc).split()).split(" [type=")[0][:200]
        raise KeylessError(
            f"--trusted-root {path}: not a sigstore trusted_root.json ({type(exc).__name__}: {msg})"
        ) from None
    return Keyless(path, identity, issuer, verifier, Identity(identity=identity, issuer=issuer))


def verify_bundle(k: Keyless, bundle_json: bytes, artifact: bytes | None) -> tuple[bool, str, bytes | None]:
    """(verified, why, DSSE payload): a bundle holding a DSSE envelope is verified on its own
    and yields its payload; a message signature is verified over `artifact` (the signed
    manifest's bytes)."""
    from sigstore.models import Bundle

    try:
        b = Bundle.from_json(bundle_json)
    except Exception as exc:
        return False, f"sigstore cannot read the bundle: {' '.join(str(exc).split())[:200]}", None
    try:
        if b._dsse_envelope is not None:  # sigstore exposes no public accessor for the variant
            _, payload = k.verifier.verify_dsse(b, k.policy)
            return True, "sigstore verified the DSSE bundle", payload
        if artifact is None:
            return False, "the signed artifact is not in the archive", None
        k.verifier.verify_artifact(artifact, b, k.policy)
        return True, "sigstore verified the bundle over the manifest's bytes", None
    except Exception as exc:  # VerificationError and whatever an adversarial bundle provokes
        return False, f"sigstore: {' '.join(str(exc).split())[:300]}", None
