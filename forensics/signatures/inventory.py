"""What in the archive can carry a signature or an attestation, and what each one claims.

Read from the artifacts the readers kept (`Resolved.artifact_refs`: manifests that are not
images), one `Item` per signature or statement blob:

- cosign signatures: manifests tagged `sha256-<hex>.sig` (or `kind: dev.cosignproject.cosign/sigs`
  in a `cosign save` layout), one simple-signing payload per layer, the signature in the
  `dev.cosignproject.cosign/signature` annotation, optional certificate, chain and bundle;
- cosign attestations (`.att`): DSSE envelopes holding in-toto statements;
- sigstore bundles as OCI 1.1 referrers (`subject`, `application/vnd.dev.sigstore.bundle...`);
- notation signatures (`application/vnd.cncf.notary.signature`), JWS or COSE envelopes;
- BuildKit attestation manifests and bare in-toto statement referrers: unsigned.

`Held` says which digests the archive holds bytes for, and why a digest is not held."""

from __future__ import annotations

from dataclasses import dataclass, field

from forensics.mediatypes import INDEX_TYPES
from forensics.read.model import ArtifactRef, Descriptor, Digest, Resolved

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"
NOTATION = "application/vnd.cncf.notary.signature"
JWS = "application/jose+json"
COSE = "application/cose"
IN_TOTO = "application/vnd.in-toto+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERT_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
NOTATION_THUMBPRINT = "io.cncf.notary.x509chain.thumbprint#S256"


@dataclass
class Item:
    """One signature or statement blob, with the manifest that carries it."""

    artifact: int  # index into Resolved.artifact_refs (= Report.artifacts)
    ref: ArtifactRef
    format: str  # cosign, sigstore-bundle, notation, buildkit, referrer
    role: str  # signature or attestation
    envelope: str  # simple-signing, dsse, bundle, jws, cose, statement
    blob: Descriptor
    data: bytes | None  # the blob's bytes, when the archive holds and kept them
    attached_to: Digest | None  # what the tag or OCI 1.1 subject names


def _media(d: Descriptor | None) -> str:
    return (d.media_type or "").lower() if d is not None else ""


def _data(d: Descriptor) -> bytes | None:
    return d.entry.data if d.entry is not None and d.entry.error is None else None


def items(res: Resolved) -> list[Item]:
    out: list[Item] = []
    for n, art in enumerate(res.artifact_refs):
        subject = Digest.parse(art.subject)
        atype = (art.artifact_type or "").lower()
        buildkit = art.manifest.annotations.get("vnd.docker.reference.type") == "attestation-manifest"
        for blob in art.blobs:
            mt = _media(blob)
            kind: tuple[str, str, str] | None = None
            if mt == SIMPLE_SIGNING:
                kind = ("cosign", "signature", "simple-signing")
            elif mt == DSSE_ENVELOPE:
                kind = ("cosign", "attestation", "dsse")
            elif mt.startswith(BUNDLE_PREFIX) or (
                atype.startswith(BUNDLE_PREFIX) and mt != "application/vnd.oci.empty.v1+json"
            ):
                kind = ("sigstore-bundle", "signature", "bundle")
            elif atype == NOTATION or _media(art.config) == NOTATION:
                if mt == JWS:
                    kind = ("notation", "signature", "jws")
                elif mt == COSE:
                    kind = ("notation", "signature", "cose")
            elif mt.startswith(IN_TOTO):  # a bare statement: BuildKit's, or an OCI 1.1 referrer (regctl, oras)
                kind = ("buildkit" if buildkit else "referrer", "attestation", "statement")
            if kind is not None:
                out.append(Item(n, art, *kind, blob=blob, data=_data(blob), attached_to=subject))
    return out


@dataclass
class Held:
    """The digests whose bytes the archive holds, by what they are, and the images each covers."""

    what: dict[str, str] = field(default_factory=dict)  # digest -> manifest, index, config, layer
    images: dict[str, list[int]] = field(default_factory=dict)  # manifest or index digest -> images
    bytes_of: dict[str, bytes] = field(default_factory=dict)  # manifest digest -> its bytes
    not_exported: set[str] = field(default_factory=set)  # named by an index, left out of the export
    wrong: dict[str, str] = field(default_factory=dict)  # digest -> what its blob's bytes hash to

    def why_not(self, digest: str) -> str:
        if digest in self.wrong:
            return f"the archive's blob at that digest hashes to {self.wrong[digest]}: its bytes were changed"
        if digest in self.not_exported:
            return "an index names it, but the export left it out"
        return "the archive holds no manifest with that digest"


def held(res: Resolved) -> Held:
    h = Held()
    by_digest: dict[str, Descriptor] = {}
    for d in res.descriptors:
        e = d.entry
        if e is None or e.digest is None or e.error is not None or d.role not in ("top", "child"):
            continue
        is_index = d.media_type in INDEX_TYPES
        h.what.setdefault(e.digest, "index" if is_index else "manifest")
        if e.data is not None:
            h.bytes_of.setdefault(e.digest, e.data)
        if d.digest and d.digest != e.digest:
            h.wrong[d.digest] = e.digest
        by_digest.setdefault(e.digest, d)
    for img in res.images:
        if img.config is not None and img.config.entry is not None and img.config.entry.digest:
            h.what.setdefault(img.config.entry.digest, "config")
        for lr in img.layers:
            e = lr.descriptor.entry
            if e is not None and e.digest and e.error is None:
                h.what.setdefault(e.digest, "layer")
        m = img.manifest
        if m is None or m.entry is None or m.entry.digest is None:
            continue
        # An image is covered by a signature over its manifest or over any index above it.
        cur: Descriptor | None = m
        seen: set[str] = set()
        while cur is not None and cur.entry is not None and cur.entry.digest and cur.entry.digest not in seen:
            seen.add(cur.entry.digest)
            h.images.setdefault(cur.entry.digest, []).append(img.index)
            cur = by_digest.get(cur.parent) if cur.parent else None
    for ic in res.index_children:
        for a in ic.absent:
            if a.descriptor.digest:
                h.not_exported.add(a.descriptor.digest)
    return h


def blob_bytes_mismatch(res: Resolved, digest: str) -> str | None:
    """What the blob stored under `digest` really hashes to, when it is there and differs."""
    d = Digest.parse(digest)
    if d is None or res.archive is None:
        return None
    e = res.archive.get(f"blobs/sha256/{d.hex}")
    if e is not None and e.digest is not None and e.digest != d:
        return e.digest
    return None
