"""Signatures and attestations, found in the archive and verified offline (issue 13).

`load_signing` turns the command line (--key, --trusted-root, --identity, --issuer) into a
`Signing` before the input is read (a bad key file is a usage error); `check` reads the
inventory (inventory.py), verifies what it can (cosign.py, dsse.py, notation.py, bundle.py
with keys.py; keyless.py through sigstore) and returns the records and findings
(check.py). It sees only the model: the artifacts the readers kept."""

from __future__ import annotations

from dataclasses import dataclass, field

from forensics.signatures.keyless import Keyless, KeylessError
from forensics.signatures.keys import KeyFileError, PublicKey


class SigningError(Exception):
    """An option of the signature checks that cannot be used (exit 2, one line)."""


@dataclass
class Signing:
    keys: list[PublicKey] = field(default_factory=list)
    keyless: Keyless | None = None

    @property
    def anything(self) -> bool:
        return bool(self.keys) or self.keyless is not None


def load_signing(
    keys: list[str], trusted_root: str | None = None, identity: str | None = None, issuer: str | None = None
) -> Signing:
    from forensics.signatures import keyless
    from forensics.signatures.keys import load_key

    if (identity or issuer) and not trusted_root:
        raise SigningError("--identity and --issuer say whose keyless signature to require: give --trusted-root too")
    try:
        loaded = [load_key(k) for k in keys]
        kl = keyless.load(trusted_root, identity, issuer) if trusted_root else None
    except (KeyFileError, KeylessError) as exc:
        raise SigningError(str(exc)) from None
    return Signing(keys=loaded, keyless=kl)


def check(res, images, signing: Signing | None):
    """The signature records, attestation records, notes and findings of one archive."""
    from forensics.signatures.check import run

    return run(res, images, signing or Signing())
