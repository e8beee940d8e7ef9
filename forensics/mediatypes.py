"""Media types the readers and verifiers recognise (formats-and-peers.md 3.4).

A manifest is an image only when its config is an image config and every layer
is a layer; anything else is an artifact (signature, attestation, SBOM), whose
blobs are checked but never unpacked. Unknown layer media types MUST be ignored
by a reader (image-spec manifest.md), so they never make a manifest an image.
"""

from __future__ import annotations

INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
MANIFEST_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    }
)
IMAGE_CONFIG_TYPES = frozenset(
    {
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.container.image.v1+json",
    }
)
# layer media type -> the compression its bytes must have
LAYER_COMPRESSION = {
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar": "none",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar": "none",
}
LAYER_TYPES = frozenset(LAYER_COMPRESSION)
LAYER_PREFIXES = ("application/vnd.oci.image.layer.", "application/vnd.docker.image.rootfs.")


def is_layer_type(media_type: str | None) -> bool:
    """A layer media type, known or of the layer families; encrypted layers (ocicrypt)
    cannot be read here, so they are not layers to unpack."""
    mt = media_type or ""
    return mt in LAYER_TYPES or (mt.startswith(LAYER_PREFIXES) and "encrypted" not in mt)


# What an artifact is, from its artifactType, config or blob media types, annotations
# and tags. Signatures are kept apart: the signature checks read them from here.
SIGNATURE_TYPES = (
    "application/vnd.dev.cosign.simplesigning.v1+json",
    "application/vnd.cncf.notary.signature",
    "application/vnd.dev.sigstore.bundle",  # v0.1 .. v0.3, with +json suffix
)
ATTESTATION_TYPES = (
    "application/vnd.in-toto",
    "application/vnd.dsse.envelope",
    "application/vnd.docker.attestation.manifest",
)
SBOM_MARKERS = ("spdx", "cyclonedx", "syft")


def is_foreign_layer(media_type: str | None, urls: list[str]) -> bool:
    mt = media_type or ""
    return bool(urls) or "foreign" in mt or "nondistributable" in mt


def artifact_kind(types: list[str], annotations: dict[str, str], refs: list[str]) -> str:
    """signature, attestation, sbom or artifact: what the media types say first (they
    are what a verifier reads), then cosign's `kind` annotation and tag suffixes."""
    low = [t.lower() for t in types if t]
    if any(t.startswith(SIGNATURE_TYPES) for t in low):
        return "signature"
    if any(m in t for t in low for m in SBOM_MARKERS):
        return "sbom"
    if (
        any(t.startswith(ATTESTATION_TYPES) for t in low)
        or annotations.get("vnd.docker.reference.type") == "attestation-manifest"
    ):
        return "attestation"
    # cosign writes the signature annotation on attestation layers too (empty): after the media types
    if "dev.cosignproject.cosign/signature" in annotations:
        return "signature"
    kind_note = annotations.get("kind", "")  # cosign save: dev.cosignproject.cosign/sigs|atts|sboms
    for suffix, kind in (("sig", "signature"), ("att", "attestation"), ("sbom", "sbom")):
        if kind_note.endswith(f"/{suffix}s") or any(r.endswith(f".{suffix}") for r in refs):
            return kind
    return "artifact"
