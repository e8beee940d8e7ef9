"""The inventory and the keys, turned into records and findings.

For each signature: what its payload signs must be what it is attached to (else
signature.invalid), the archive must hold a manifest whose bytes hash to it (else
signature.subject-mismatch), and the signature must verify with a key or trusted root the
user gave (signature.verified; signature.invalid when keys were given and none verifies,
unless another signature of the same manifest verified: several signers are normal). With
nothing to verify with, signature.unverified says which option would check it.
Attestations (in-toto statements) get the same, with their subjects held to the archive's
manifests, configs and layers; BuildKit's are unsigned, so only their subjects are judged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from forensics.findings import Code, finding
from forensics.models import AttestationRecord, AttestationSubject, Finding, Image, SignatureRecord
from forensics.read.model import Digest, Resolved
from forensics.signatures import Signing, bundle, cosign, dsse, intoto, keyless, notation
from forensics.signatures.inventory import Held, Item, blob_bytes_mismatch, held, items
from forensics.signatures.keys import PublicKey, certificate_identity, key_id, load_certificate

RAISES: tuple[Code, ...] = (
    "signature.verified",
    "signature.invalid",
    "signature.subject-mismatch",
    "signature.unverified",
)

KEY_OPTION = "--key FILE (the signer's PEM public key, e.g. cosign.pub)"
ROOT_OPTION = "--trusted-root trusted_root.json with --identity and --issuer"
DOCKER_ARCHIVE_NOTE = (
    "this is a legacy `docker save` archive: it holds no image manifest, so nothing in it can carry "
    "or be checked against a signature (signatures sign a manifest digest); get the image as an OCI "
    "layout with its signatures (cosign save, skopeo copy oci:, oras copy --recursive) to verify them"
)


@dataclass
class Outcome:
    findings: list[Finding] = field(default_factory=list)
    signatures: list[SignatureRecord] = field(default_factory=list)
    attestations: list[AttestationRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Judged:
    """One record on its way to a status: what its crypto check said."""

    rec: SignatureRecord | AttestationRecord
    target: str | None  # the digest it must vouch for
    crypto: str  # verified, failed, not-tried, unsupported
    by: str | None = None  # the key or root it verified with
    option: str = ""  # for not-tried / unsupported: what would check it
    problem: str | None = None  # a malformed payload or envelope: invalid whatever the keys
    other_digest: str | None = None  # the payload names this, not what it is attached to
    subjects_ok: bool = True  # attestations: a subject is held and it names what it is attached to
    subject_problem: str = ""


def _short(d: str | None) -> str:
    return (d or "-")[:19]


def _unread(j: _Judged, item: Item, what: str) -> None:
    """The blob's bytes were not kept: absent (blob.missing says so), too large to hold, or not JSON."""
    e = item.blob.entry
    if e is None or e.error is not None:
        j.crypto, j.option = "unsupported", f"nothing: the {what} blob is not in the archive, or cut short"
    elif e.json_limit is not None and e.nbytes > e.json_limit:
        j.crypto, j.option = "unsupported", f"nothing here: the {what} ({e.nbytes:,} bytes) exceeds the limit max_json"
    else:
        j.problem = f"the {what} is not a JSON document ({e.sniffed or 'data'}, {e.nbytes:,} bytes)"


def _certified_key_given(cert: object, keys: list[PublicKey]) -> bool:
    try:
        kid = key_id(cert.public_key())  # type: ignore[attr-defined]
    except Exception:  # a hostile certificate's key may not load
        return False
    return any(k.key_id == kid for k in keys)


def _key_name(k: PublicKey) -> str:
    return f"--key {k.source} ({k.kind}, sha256 of its public key {k.key_id[:16]}…)"


def _crypto_keys(keys: list[PublicKey], verify) -> tuple[str, str | None]:
    if not keys:
        return "not-tried", None
    k = verify(keys)
    return ("verified", _key_name(k)) if k is not None else ("failed", None)


def _cosign_signature(item: Item, signing: Signing) -> _Judged:
    p = cosign.parse_payload(item.data)
    cert = load_certificate(cosign.certificate_pem(item.blob))
    identity, issuer = certificate_identity(cert)
    rec = SignatureRecord(
        index=0,
        format="cosign",
        envelope="simple-signing",
        artifact=item.artifact,
        manifest_digest=item.ref.manifest.digest,
        attached_to=item.attached_to,
        signed_digest=p.digest,
        docker_reference=p.reference,
        certificate=cert is not None,
        identity=identity,
        issuer=issuer,
    )
    j = _Judged(rec, target=item.attached_to or p.digest, crypto="not-tried", option=KEY_OPTION)
    if item.data is None:
        _unread(j, item, "payload")
        return j
    if p.error:
        j.problem = p.error
        return j
    if cosign.signature(item.blob) is None:
        j.problem = "its layer has no base64 dev.cosignproject.cosign/signature annotation"
        return j
    if item.attached_to and p.digest and p.digest != item.attached_to:
        j.other_digest = p.digest
    payload = item.data
    j.crypto, j.by = _crypto_keys(signing.keys, lambda ks: cosign.verify(item.blob, payload, ks))
    if j.crypto != "verified" and cert is not None and not _certified_key_given(cert, signing.keys):
        # A keyless signature: sigstore-python verifies bundles, which need an inclusion proof
        # that cosign's legacy Rekor annotation does not carry. That another key does not verify
        # it is expected; that the certificate's own key, given, does not is a failure.
        j.crypto = "unsupported"
        j.option = (
            "cosign verify --offline (a keyless cosign signature with a certificate annotation; this "
            "version verifies keyless signatures only as sigstore bundles)"
        )
    return j


def _statement_record(item: Item, st: intoto.Statement | None, why: str | None, h: Held) -> AttestationRecord:
    rec = AttestationRecord(
        index=0,
        source=item.format,  # cosign, sigstore-bundle, buildkit, referrer
        artifact=item.artifact,
        manifest_digest=item.ref.manifest.digest,
        attached_to=item.attached_to,
        signed=item.format not in ("buildkit", "referrer"),
    )
    if st is None:
        e = item.blob.entry
        if e is not None and e.error is None and e.json_limit is not None and e.nbytes > e.json_limit:
            why = f"its {e.nbytes:,} bytes exceed the limit max_json ({e.json_limit:,}): not kept, not read"
        rec.detail = f"the statement cannot be read: {why}"
        return rec
    rec.predicate_type = st.predicate_type[:300] if st.predicate_type else None
    rec.subjects = [AttestationSubject(name=n, digest=d, held=h.what.get(d) if d else None) for n, d in st.subjects]
    rec.slsa = intoto.slsa_summary(st.predicate_type, st.predicate)
    if intoto.is_sbom(st.predicate_type):
        rec.sbom_predicate = st.predicate
        rec.sbom = True
    return rec


def _judge_subjects(j: _Judged, st: intoto.Statement | None, h: Held, attached: str | None) -> None:
    if st is None:
        return
    digests = [d for _, d in st.subjects if d]
    if attached and digests and attached not in digests:
        j.subjects_ok = False
        j.subject_problem = (
            f"its statement names {', '.join(digests[:3])}, not {attached}, the manifest it is attached to"
        )
    elif not any(d in h.what for d in digests):
        j.subjects_ok = False
        first = digests[0] if digests else None
        j.subject_problem = (
            f"none of its statement's subjects is in the archive ({first}: {h.why_not(first)})"
            if first
            else "its statement names no sha256 subject"
        )
        j.target = first


def _dsse_attestation(item: Item, signing: Signing, h: Held) -> tuple[_Judged, intoto.Statement | None]:
    env, why = dsse.parse_bytes(item.data)
    st, st_why = intoto.parse(env.payload) if env is not None else (None, why)
    rec = _statement_record(item, st, st_why, h)
    cert = load_certificate(cosign.certificate_pem(item.blob))
    rec.identity = certificate_identity(cert)[0]
    rec.key_id = next((k for k, _ in env.signatures if k), None) if env is not None else None
    j = _Judged(rec, target=item.attached_to, crypto="not-tried", option=KEY_OPTION)
    if item.data is None:
        _unread(j, item, "envelope")
        return j, None
    if env is None or st is None:
        j.problem = f"the DSSE envelope cannot be read: {why or st_why}"
        return j, None
    j.crypto, j.by = _crypto_keys(signing.keys, env.verify)
    if j.crypto != "verified" and cert is not None and not _certified_key_given(cert, signing.keys):
        j.crypto, j.option = "unsupported", "cosign verify-attestation --offline (a keyless cosign attestation)"
    _judge_subjects(j, st, h, item.attached_to)
    return j, st


def _buildkit(item: Item, h: Held) -> tuple[_Judged, intoto.Statement | None]:
    st, why = intoto.parse(item.data)
    rec = _statement_record(item, st, why, h)
    j = _Judged(rec, target=item.attached_to, crypto="unsigned")
    _judge_subjects(j, st, h, item.attached_to)
    return j, st


def _bundle(item: Item, signing: Signing, h: Held) -> tuple[_Judged, intoto.Statement | None]:
    b = bundle.parse(item.data)
    artifact = h.bytes_of.get(item.attached_to) if item.attached_to else None
    st: intoto.Statement | None = None
    if b.envelope is not None:
        st, why = intoto.parse(b.envelope.payload)
        rec: SignatureRecord | AttestationRecord = _statement_record(item, st, why, h)
        rec.identity, rec.key_id = b.identity, b.key_hint
    else:
        signed = Digest.of_hex(b.message_digest.hex()) if b.message_digest and len(b.message_digest) == 32 else None
        rec = SignatureRecord(
            index=0,
            format="sigstore-bundle",
            envelope="message-signature",
            artifact=item.artifact,
            manifest_digest=item.ref.manifest.digest,
            attached_to=item.attached_to,
            signed_digest=signed,
            key_id=b.key_hint,
            identity=b.identity,
            issuer=b.issuer,
            certificate=b.certificate,
        )
    j = _Judged(rec, target=item.attached_to, crypto="not-tried", option=ROOT_OPTION if b.certificate else KEY_OPTION)
    if item.data is None:
        _unread(j, item, "bundle")
        return j, None
    if b.error:
        j.problem = b.error
        return j, None
    if b.envelope is None and artifact is None and (signing.keys or signing.keyless):
        # What it signs is not here (or its bytes changed): the subject check says which.
        j.crypto, j.option = "unsupported", "nothing: the manifest it signs is not in the archive"
    elif b.certificate and signing.keyless is not None:
        ok, why_k, payload = keyless.verify_bundle(signing.keyless, item.data, artifact)
        j.crypto = "verified" if ok else "failed"
        j.by = (
            f"--trusted-root {signing.keyless.path} (identity {signing.keyless.identity}, issuer {signing.keyless.issuer})"
            if ok
            else None
        )
        rec.detail = why_k
    elif b.envelope is not None:
        env = b.envelope
        j.crypto, j.by = _crypto_keys(signing.keys, env.verify)
    elif b.message_signature is not None:
        if artifact is not None and b.message_digest not in (None, hashlib.sha256(artifact).digest()):
            j.crypto = "unsupported"
            j.option = "nothing here: the bundle signs another artifact than the manifest it is attached to"
        elif artifact is not None:
            sig = b.message_signature
            j.crypto, j.by = _crypto_keys(
                signing.keys, lambda ks: next((k for k in ks if k.verify(sig, artifact)), None)
            )
    if j.crypto in ("failed", "not-tried") and b.certificate and signing.keyless is None:
        j.crypto = "not-tried" if not signing.keys else "unsupported"
        j.option = ROOT_OPTION
    if st is not None:
        _judge_subjects(j, st, h, item.attached_to)
    return j, st


def _notation(item: Item, signing: Signing) -> _Judged:
    rec = SignatureRecord(
        index=0,
        format="notation",
        envelope=item.envelope,
        artifact=item.artifact,
        manifest_digest=item.ref.manifest.digest,
        attached_to=item.attached_to,
        key_id=item.blob.annotations.get("io.cncf.notary.x509chain.thumbprint#S256", "")[:200] or None,
        certificate=True,
    )
    j = _Judged(
        rec,
        target=item.attached_to,
        crypto="not-tried",
        option="--key FILE (the signing certificate's public key, PEM)",
    )
    if item.envelope == "cose":
        j.crypto, j.option = (
            "unsupported",
            "notation verify (COSE envelopes are recorded, not verified, by this version)",
        )
        return j
    jws = notation.parse(item.data)
    rec.signed_digest, rec.identity = jws.target, jws.identity
    if item.data is None:
        _unread(j, item, "envelope")
        return j
    if jws.error:
        j.problem = jws.error
        return j
    if item.attached_to and jws.target and jws.target != item.attached_to:
        j.other_digest = jws.target
    j.target = item.attached_to or jws.target
    j.crypto, j.by = _crypto_keys(signing.keys, lambda ks: notation.verify(jws, ks))
    return j


def _finding(j: _Judged, code: Code, severity: str, detail: str, images: list[int]) -> Finding:
    rec = j.rec
    what = rec.format if isinstance(rec, SignatureRecord) else f"{rec.source} attestation"
    return finding(
        code,
        severity,
        f"{what} {_short(rec.manifest_digest)}",
        detail,
        digest=rec.manifest_digest,
        image=images[0] if len(images) == 1 else None,
        evidence={
            "signature_manifest": rec.manifest_digest,
            "attached_to": rec.attached_to,
            "target": j.target,
            **({"verified_with": j.by} if j.by else {}),
        },
    )


def _settle(j: _Judged, h: Held, res: Resolved, vouched: set[str], asked: bool) -> list[Finding]:
    """The record's status and its finding."""
    rec = j.rec
    noun = "signature" if isinstance(rec, SignatureRecord) else "attestation"
    target = j.target
    images = h.images.get(target, []) if target else []
    rec.images = images
    if j.problem and not asked:
        # Nothing was given to verify with: a garbled signature proves nothing, but is no sign
        # that the image changed; with a key or root it is a signature that does not verify.
        rec.status, rec.detail = "unverified", f"it cannot be read: {j.problem}"
        return [_finding(j, "signature.unverified", "low", f"the {noun} is present but {rec.detail}", images)]
    if j.problem:
        rec.status, rec.detail = "invalid", j.problem
        return [
            _finding(j, "signature.invalid", "critical", f"the {noun} cannot vouch for anything: {j.problem}", images)
        ]
    if j.other_digest:
        rec.status = "invalid"
        rec.detail = f"it is attached to {rec.attached_to} but its signed payload names {j.other_digest}"
        return [
            _finding(
                j, "signature.invalid", "critical", f"the {noun} {rec.detail}: a signature of another image", images
            )
        ]
    if j.crypto == "failed":
        if target in vouched:
            rec.status = "unverified"
            rec.detail = "made with a key or identity not given; another signature of the same manifest verified"
            return [_finding(j, "signature.unverified", "info", f"the {noun} is {rec.detail}", images)]
        rec.status = "invalid"
        rec.detail = rec.detail or "it does not verify with any key or trusted root given"
        return [
            _finding(
                j,
                "signature.invalid",
                "critical",
                f"the {noun} over {target or 'its payload'} does not verify with what was given: the signed bytes "
                f"were changed, or it was made with another key ({rec.detail})",
                images,
            )
        ]
    if target is not None and target not in h.what:
        bad = blob_bytes_mismatch(res, target)
        why = f"the archive's blob at that digest hashes to {bad}: its bytes were changed" if bad else h.why_not(target)
        rec.status = "subject-mismatch"
        rec.detail = f"it names {target}, but {why}"
        severity = "low" if target in h.not_exported and not bad else "high"
        return [_finding(j, "signature.subject-mismatch", severity, f"the {noun} {rec.detail}", images)]
    if not j.subjects_ok:
        rec.status, rec.detail = "subject-mismatch", j.subject_problem
        return [_finding(j, "signature.subject-mismatch", "high", f"the {noun}: {j.subject_problem}", images)]
    if j.crypto == "unsigned":
        rec.status = "unsigned"
        rec.detail = (
            rec.detail or "an unsigned statement: its subjects are in the archive, nothing vouches for its content"
        )
        return []
    if j.crypto == "verified":
        rec.status, rec.verified_with = "verified", j.by
        what = h.what.get(target or "", "manifest")
        rec.detail = f"verified with {j.by} over {what} {target}"
        return [_finding(j, "signature.verified", "info", f"the {noun} {rec.detail}", images)]
    rec.status = "unverified"
    rec.detail = f"not verified: {j.option} would check it"
    return [
        _finding(
            j, "signature.unverified", "low", f"the {noun} over {target or '?'} is present but {rec.detail}", images
        )
    ]


def run(res: Resolved, images: list[Image], signing: Signing) -> Outcome:
    out = Outcome()
    if res.format == "docker-archive":
        out.notes.append(DOCKER_ARCHIVE_NOTE)
        if signing.anything:
            out.notes.append("the keys or trusted root given had nothing to verify")
        return out
    h = held(res)
    judged: list[tuple[_Judged, intoto.Statement | None]] = []
    for item in items(res):
        if item.format == "cosign" and item.role == "signature":
            judged.append((_cosign_signature(item, signing), None))
        elif item.format == "cosign":
            judged.append(_dsse_attestation(item, signing, h))
        elif item.format == "sigstore-bundle":
            judged.append(_bundle(item, signing, h))
        elif item.format == "notation":
            judged.append((_notation(item, signing), None))
        else:
            judged.append(_buildkit(item, h))
    # Several signers of one manifest are normal: one that verifies vouches for it.
    vouched = {
        j.target
        for j, _ in judged
        if j.crypto == "verified" and j.target and not j.problem and not j.other_digest and j.subjects_ok
    }
    for j, st in judged:
        out.findings += _settle(j, h, res, vouched, signing.anything)
        if isinstance(j.rec, SignatureRecord):
            j.rec.index = len(out.signatures)
            out.signatures.append(j.rec)
        else:
            j.rec.index = len(out.attestations)
            out.attestations.append(j.rec)
            if st is not None and j.rec.signed and j.rec.status == "verified":
                out.findings += _provenance(st, j.rec, images)
    out.notes += _notes(res, signing, out)
    return out


def _provenance(st: intoto.Statement, rec: AttestationRecord, images: list[Image]) -> list[Finding]:
    """A verified provenance statement is held to the history as BuildKit's are."""
    if "provenance" not in (st.predicate_type or "") or not isinstance(st.predicate, dict):
        return []
    from forensics.history.provenance import check_provenance

    about = {s.digest for s in rec.subjects if s.digest}
    found: list[Finding] = []
    for img in images:
        if img.manifest_digest in about:
            found += check_provenance(img, [{"predicateType": st.predicate_type, "predicate": st.predicate}])
    return found


def _notes(res: Resolved, signing: Signing, out: Outcome) -> list[str]:
    notes: list[str] = []
    n_sig, n_att = len(out.signatures), len(out.attestations)
    if not n_sig and not n_att:
        notes.append(
            "no signature or attestation in this archive"
            + ("; the keys or trusted root given had nothing to verify" if signing.anything else "")
        )
    if signing.keys:
        notes.append(
            "a signature verified with --key proves that the holder of that key signed the digest, not who "
            "the holder is: check where the key came from"
        )
    if signing.keyless is not None:
        notes.append(keyless.OFFLINE_LIMITS)
    unsigned = [a for a in out.attestations if not a.signed]
    if unsigned:
        notes.append(
            f"{len(unsigned)} attestation statement(s) are unsigned (BuildKit's, bare referrers): they "
            "record what their writer said, nothing vouches for them"
        )
    covered = sorted({i for s in out.signatures if s.status == "verified" for i in s.images})
    for img in res.images:
        if signing.anything and img.index not in covered:
            notes.append(f"image {img.index} has no signature that verifies with what was given")
    return notes


def require_failures(report) -> list[str]:
    """--require-signature: one line per image with no verified signature."""
    covered = {i for s in report.signatures if s.status == "verified" for i in s.images}
    return [
        f"image {img.index} ({', '.join(img.refs) or img.manifest_digest or 'untagged'}) has no valid signature"
        for img in report.images
        if img.index not in covered
    ] or ([] if report.images else ["the archive holds no image to require a signature of"])
