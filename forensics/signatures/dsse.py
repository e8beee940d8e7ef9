"""DSSE envelopes (secure-systems-lab/dsse `envelope.md`, `protocol.md`): parsed as untrusted
JSON, verified over the pre-authentication encoding, never over the payload alone.

PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths as ASCII decimal
byte counts. cosign writes an empty `keyid`, so every signature is tried with every key
instead of matched by key id (securesystemslib's caveat)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from forensics.signatures.keys import PublicKey, b64decode


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass
class Envelope:
    payload_type: str
    payload: bytes
    signatures: list[tuple[str, bytes]] = field(default_factory=list)  # (keyid as recorded, signature)

    def verify(self, keys: list[PublicKey]) -> PublicKey | None:
        """The first key one of the signatures verifies with, over the PAE."""
        message = pae(self.payload_type, self.payload)
        for _, sig in self.signatures:
            for key in keys:
                if key.verify(sig, message):
                    return key
        return None


def parse(doc: object) -> tuple[Envelope | None, str | None]:
    """An envelope from its JSON object, or why it is not one."""
    if not isinstance(doc, dict):
        return None, "not a JSON object"
    ptype, body = doc.get("payloadType"), b64decode(doc.get("payload"))
    if not isinstance(ptype, str) or body is None:
        return None, "no payloadType, or a payload that is not base64"
    sigs: list[tuple[str, bytes]] = []
    raw = doc.get("signatures")
    for s in raw if isinstance(raw, list) else []:
        if isinstance(s, dict) and (sig := b64decode(s.get("sig"))) is not None:
            keyid = s.get("keyid")
            sigs.append((keyid if isinstance(keyid, str) else "", sig))
    if not sigs:
        return None, "no signature in the envelope"
    return Envelope(ptype, body, sigs), None


def parse_bytes(data: bytes | None) -> tuple[Envelope | None, str | None]:
    if data is None:
        return None, "its blob is not in the archive or was not kept"
    try:
        return parse(json.loads(data))
    except RecursionError:
        return None, "JSON nested deeper than the reader follows (max_json_depth)"
    except (ValueError, UnicodeDecodeError):
        return None, "not valid JSON"
