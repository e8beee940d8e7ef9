"""Signed OCI layouts for tests/test_signatures.py, made here with keys the tests create.

The image is the relay sample (samples/make_samples.py), in an OCI layout (tar or directory)
beside what signs it, each in the shape its tool writes (checked against public fixtures):

- a cosign signature: a manifest tagged `sha256-<hex>.sig` whose config is cosign's empty
  image config and whose one layer is the simple-signing payload
  (`{"critical":{"identity":{"docker-reference":...},"image":{"docker-manifest-digest":...},
  "type":"cosign container image signature"},"optional":null}`), media type
  `application/vnd.dev.cosign.simplesigning.v1+json`, with the base64 ECDSA signature over
  the payload bytes in `dev.cosignproject.cosign/signature` (cosign `specs/SIGNATURE_SPEC.md`);
- a cosign attestation: a manifest tagged `sha256-<hex>.att` whose layer is a DSSE envelope
  (`application/vnd.dsse.envelope.v1+json`, `predicateType` annotation) holding an in-toto v1
  statement with SLSA v1 provenance, signed over PAE (DSSE `protocol.md`);
- a sigstore bundle v0.3 as an OCI 1.1 referrer (`subject`, artifactType
  `application/vnd.dev.sigstore.bundle.v0.3+json`, empty config), a message signature over
  the manifest bytes with a public-key hint;
- a notation signature referrer (`application/vnd.cncf.notary.signature`, a JWS in JSON
  serialization, `application/jose+json`, PS256 with an x5c certificate).

Each part can be made wrong in one way the tests name: a byte of the payload changed (and
every digest fixed up after it, as a forger would), a byte of the signed manifest changed,
a signature of a manifest the archive does not hold, an attestation about another image.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
REF = "sample/relay"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_EMPTY = "application/vnd.oci.empty.v1+json"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
NOTATION = "application/vnd.cncf.notary.signature"
IN_TOTO = "application/vnd.in-toto+json"
SLSA_V1 = "https://slsa.dev/provenance/v1"


def generator():
    name = "make_samples_for_signature_tests"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SAMPLES / "make_samples.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def jdump(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# ------------------------------------------------------------------ keys


def ec_key(curve=None):
    return ec.generate_private_key(curve or ec.SECP256R1())


def rsa_key(bits: int = 2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def ed_key():
    return ed25519.Ed25519PrivateKey.generate()


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_key(path: Path, key) -> str:
    path.write_bytes(public_pem(key))
    return str(path)


def sign(key, data: bytes, *, pss: bool = False) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        h = hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA256()
        return key.sign(data, ec.ECDSA(h))
    if isinstance(key, rsa.RSAPrivateKey):
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32) if pss else padding.PKCS1v15()
        return key.sign(data, pad, hashes.SHA256())
    return key.sign(data)


def pae(ptype: str, body: bytes) -> bytes:
    t = ptype.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def self_signed(key, cn: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(t)
        .not_valid_after(t + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


# ------------------------------------------------------------------ the layout


@dataclass
class Layout:
    """Blobs by digest and index.json entries, written as a tar or a directory."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: list[dict] = field(default_factory=list)

    def add(self, data: bytes) -> dict:
        self.blobs[sha(data)] = data
        return {"digest": sha(data), "size": len(data)}

    def index(self) -> bytes:
        return jdump({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": self.manifests})

    def write_tar(self, path: Path) -> Path:
        g = generator()
        t = 1768039205
        entries = [
            g.outer_file("oci-layout", jdump({"imageLayoutVersion": "1.0.0"}), t),
            g.outer_dir("blobs", t),
            g.outer_dir("blobs/sha256", t),
        ]
        entries += [g.outer_file(f"blobs/sha256/{d[7:]}", self.blobs[d], t) for d in sorted(self.blobs)]
        entries.append(g.outer_file("index.json", self.index(), t))
        path.write_bytes(g.build_tar(entries, sort=False))
        return path

    def write_dir(self, path: Path) -> Path:
        (path / "blobs" / "sha256").mkdir(parents=True)
        (path / "oci-layout").write_bytes(jdump({"imageLayoutVersion": "1.0.0"}))
        for d, data in self.blobs.items():
            (path / "blobs" / "sha256" / d[7:]).write_bytes(data)
        (path / "index.json").write_bytes(self.index())
        return path


@dataclass
class Signed:
    layout: Layout
    manifest: bytes  # the image manifest the archive holds
    manifest_digest: str
    signed_digest: str  # what the signatures name
    parts: list[str]


def image(layout: Layout, *, manifest_extra: bytes = b"") -> tuple[bytes, str]:
    """The relay image (gzip layers), its manifest added to the layout under REF:5.2."""
    g = generator()
    img = g.build_image(g.relay_steps(forged=False))
    layers = []
    for tar in img.layer_tars:
        blob = g.gzip_bytes(tar)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layout.add(blob)})
    manifest = jdump(
        {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, **layout.add(img.config)},
            "layers": layers,
        }
    )
    manifest += manifest_extra
    layout.manifests.append(
        {
            "mediaType": MT_MANIFEST,
            **layout.add(manifest),
            "annotations": {"org.opencontainers.image.ref.name": f"{REF}:5.2"},
        }
    )
    return manifest, sha(manifest)


def payload(digest: str) -> bytes:
    return jdump(
        {
            "critical": {
                "identity": {"docker-reference": f"registry.example/{REF}"},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    )


def _cosign_manifest(layout: Layout, tag_digest: str, suffix: str, layer: dict) -> None:
    """A cosign signature image: cosign's near-empty image config whose diff_ids are the layer's digest."""
    config = jdump(
        {
            "architecture": "",
            "config": {},
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
        }
    )
    man = jdump(
        {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, **layout.add(config)},
            "layers": [layer],
        }
    )
    tag = f"sha256-{tag_digest[7:]}.{suffix}"
    layout.manifests.append(
        {
            "mediaType": MT_MANIFEST,
            **layout.add(man),
            "annotations": {"org.opencontainers.image.ref.name": f"{REF}:{tag}"},
        }
    )


def cosign_signature(
    layout: Layout, key, signed: str, *, tag: str | None = None, tamper_payload: bool = False
) -> bytes:
    body = payload(signed)
    sig = sign(key, body)
    if tamper_payload:  # one byte, after signing; every digest re-computed, as a forger would
        body = body.replace(b"sample/relay", b"sample/relaz", 1)
    layer = {
        "mediaType": SIMPLE_SIGNING,
        **layout.add(body),
        "annotations": {"dev.cosignproject.cosign/signature": b64(sig)},
    }
    _cosign_manifest(layout, tag or signed, "sig", layer)
    return body


def statement(subject_digest: str) -> dict:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": f"registry.example/{REF}", "digest": {"sha256": subject_digest[7:]}}],
        "predicateType": SLSA_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": "https://mobyproject.org/buildkit@v1",
                "externalParameters": {"request": {"frontend": "dockerfile.v0"}},
                "resolvedDependencies": [
                    {"uri": "pkg:docker/alpine@3.20", "digest": {"sha256": "ab" * 32}},
                ],
            },
            "runDetails": {"builder": {"id": "https://ci.example/builder"}},
        },
    }


def cosign_attestation(layout: Layout, key, tag_digest: str, subject_digest: str) -> dict:
    st = jdump(statement(subject_digest))
    env = {
        "payloadType": IN_TOTO,
        "payload": b64(st),
        "signatures": [{"keyid": "", "sig": b64(sign(key, pae(IN_TOTO, st)))}],
    }
    layer = {
        "mediaType": DSSE,
        **layout.add(jdump(env)),
        "annotations": {"dev.cosignproject.cosign/signature": "", "predicateType": SLSA_V1},
    }
    _cosign_manifest(layout, tag_digest, "att", layer)
    return env


def _referrer(
    layout: Layout, artifact_type: str, blob_type: str, blob: bytes, subject: tuple[str, int], notes: dict
) -> None:
    empty = b"{}"
    man = jdump(
        {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": MT_EMPTY, **layout.add(empty)},
            "layers": [{"mediaType": blob_type, **layout.add(blob)}],
            "subject": {"mediaType": MT_MANIFEST, "digest": subject[0], "size": subject[1]},
            "annotations": notes,
        }
    )
    layout.manifests.append({"mediaType": MT_MANIFEST, "artifactType": artifact_type, **layout.add(man)})


def sigstore_bundle(layout: Layout, key, manifest: bytes) -> dict:
    """A v0.3 bundle, key-based (publicKey hint), message signature over the manifest bytes."""
    doc = {
        "mediaType": BUNDLE,
        "verificationMaterial": {"publicKey": {"hint": "test-key"}, "tlogEntries": []},
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": b64(hashlib.sha256(manifest).digest())},
            "signature": b64(sign(key, manifest)),
        },
    }
    _referrer(
        layout,
        BUNDLE,
        BUNDLE,
        jdump(doc),
        (sha(manifest), len(manifest)),
        {
            "dev.sigstore.bundle.content": "message-signature",
            "org.opencontainers.image.created": "2026-01-10T10:00:05Z",
        },
    )
    return doc


def notation_signature(layout: Layout, key, cert: x509.Certificate, manifest: bytes) -> dict:
    protected = jdump(
        {
            "alg": "PS256",
            "crit": ["io.cncf.notary.signingScheme"],
            "cty": "application/vnd.cncf.notary.payload.v1+json",
            "io.cncf.notary.signingScheme": "notary.x509",
            "io.cncf.notary.signingTime": "2026-01-10T10:00:05Z",
        }
    )
    body = jdump({"targetArtifact": {"mediaType": MT_MANIFEST, "digest": sha(manifest), "size": len(manifest)}})
    signing_input = f"{b64url(protected)}.{b64url(body)}".encode()
    jws = {
        "payload": b64url(body),
        "protected": b64url(protected),
        "header": {
            "x5c": [b64(cert.public_bytes(serialization.Encoding.DER))],
            "io.cncf.notary.signingAgent": "tests/sigdata",
        },
        "signature": b64url(sign(key, signing_input, pss=True)),
    }
    thumb = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    _referrer(
        layout,
        NOTATION,
        "application/jose+json",
        jdump(jws),
        (sha(manifest), len(manifest)),
        {"io.cncf.notary.x509chain.thumbprint#S256": json.dumps([thumb])},
    )
    return jws


def build(
    key,
    *,
    parts: tuple[str, ...] = ("sig",),
    tamper_payload: bool = False,
    sign_other: bool = False,
    att_subject_other: bool = False,
    notation_key=None,
) -> Signed:
    """A layout holding the image and the parts asked for, signed with `key`."""
    layout = Layout()
    manifest, digest = image(layout)
    other = "sha256:" + "5e" * 32  # a manifest this archive does not hold
    signed = other if sign_other else digest
    if "sig" in parts:
        cosign_signature(layout, key, signed, tamper_payload=tamper_payload)
    if "att" in parts:
        cosign_attestation(layout, key, digest, other if att_subject_other else digest)
    if "bundle" in parts:
        sigstore_bundle(layout, key, manifest)
    if "notation" in parts:
        nk = notation_key or rsa_key()
        notation_signature(layout, nk, self_signed(nk, "notation signer"), manifest)
    return Signed(layout, manifest, digest, signed, list(parts))


def change_manifest_byte(s: Signed, *, rename: bool) -> None:
    """One byte of the signed image manifest changed after signing. `rename`: the forger also
    re-digests it and points index.json at the new digest (the signature's tag still names the
    old one); otherwise the blob keeps its name and its bytes no longer hash to it."""
    old = s.manifest_digest
    data = s.layout.blobs[old]
    new = data.replace(b'"schemaVersion":2', b'"schemaVersion":2 ', 1)
    assert new != data
    if rename:
        del s.layout.blobs[old]
        s.layout.blobs[sha(new)] = new
        for m in s.layout.manifests:
            if m["digest"] == old:
                m["digest"], m["size"] = sha(new), len(new)
    else:
        s.layout.blobs[old] = new


# ------------------------------------------------------------------ keyless: a sigstore made here
#
# A self-made sigstore instance, enough for sigstore-python's offline verifier (verify/verifier.py
# steps 0-8): a Fulcio-like CA, a CT log that signs the leaf's precertificate SCT (RFC 6962
# digitally-signed struct, embedded in the leaf), a Rekor-like log that signs the entry's
# inclusion promise (SET over the RFC 8785 form of body, integratedTime, logID, logIndex) and a
# checkpoint (signed note) of a one-leaf tree, and the trusted_root.json that names their keys.

OIDC_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
OIDC_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
SCT_LIST_OID = "1.3.6.1.4.1.11129.2.4.2"
SIGNED_AT = dt.datetime(2026, 1, 10, 10, 0, 5, tzinfo=dt.UTC)


def _spki(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _der_len(n: int) -> bytes:
    return bytes([n]) if n < 0x80 else bytes([0x82, n >> 8, n & 0xFF])


def _der_octets(data: bytes) -> bytes:
    return b"\x04" + _der_len(len(data)) + data


def _der_utf8(text: str) -> bytes:
    raw = text.encode()
    return b"\x0c" + _der_len(len(raw)) + raw


@dataclass
class Sigstore:
    ca: object = field(default_factory=ec_key)
    ct: object = field(default_factory=ec_key)
    rekor: object = field(default_factory=ec_key)

    def ca_cert(self) -> x509.Certificate:
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tests"),
                x509.NameAttribute(NameOID.COMMON_NAME, "test-fulcio"),
            ]
        )
        t = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.ca.public_key())
            .serial_number(7)
            .not_valid_before(t)
            .not_valid_after(t + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.ca.public_key()), critical=False)
            .sign(self.ca, hashes.SHA256())
        )

    def trusted_root(self) -> bytes:
        start = {"start": "2025-01-01T00:00:00Z"}

        def log(key, url):
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": b64(_spki(key)), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": start},
                "logId": {"keyId": b64(hashlib.sha256(_spki(key)).digest())},
            }

        return jdump(
            {
                "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "tlogs": [log(self.rekor, "https://rekor.invalid")],
                "certificateAuthorities": [
                    {
                        "subject": {"organization": "tests", "commonName": "test-fulcio"},
                        "uri": "https://fulcio.invalid",
                        "certChain": {
                            "certificates": [{"rawBytes": b64(self.ca_cert().public_bytes(serialization.Encoding.DER))}]
                        },
                        "validFor": start,
                    }
                ],
                "ctlogs": [log(self.ct, "https://ctfe.invalid")],
                "timestampAuthorities": [],
            }
        )

    def leaf(self, signer, identity: str, issuer: str) -> x509.Certificate:
        def builder():
            return (
                x509.CertificateBuilder()
                .subject_name(x509.Name([]))
                .issuer_name(self.ca_cert().subject)
                .public_key(signer.public_key())
                .serial_number(0x5157)
                .not_valid_before(SIGNED_AT - dt.timedelta(minutes=1))
                .not_valid_after(SIGNED_AT + dt.timedelta(minutes=9))
                .add_extension(
                    x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
                )
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca.public_key()), critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(identity)]), critical=True)
                .add_extension(
                    x509.UnrecognizedExtension(x509.ObjectIdentifier(OIDC_ISSUER_V1), issuer.encode()), critical=False
                )
                .add_extension(
                    x509.UnrecognizedExtension(x509.ObjectIdentifier(OIDC_ISSUER_V2), _der_utf8(issuer)), critical=False
                )
            )

        tbs = builder().sign(self.ca, hashes.SHA256()).tbs_certificate_bytes  # the precertificate's TBS
        ts = int(SIGNED_AT.timestamp() * 1000)
        issuer_key_id = hashlib.sha256(_spki(self.ca)).digest()
        signed = (
            bytes([0, 0])
            + ts.to_bytes(8, "big")
            + (1).to_bytes(2, "big")  # precert_entry
            + issuer_key_id
            + len(tbs).to_bytes(3, "big")
            + tbs
            + (0).to_bytes(2, "big")
        )
        sig = self.ct.sign(signed, ec.ECDSA(hashes.SHA256()))
        sct = (
            bytes([0])
            + hashlib.sha256(_spki(self.ct)).digest()
            + ts.to_bytes(8, "big")
            + (0).to_bytes(2, "big")
            + bytes([4, 3])  # sha256, ecdsa
            + len(sig).to_bytes(2, "big")
            + sig
        )
        sct_list = (len(sct) + 2).to_bytes(2, "big") + len(sct).to_bytes(2, "big") + sct
        ext = x509.UnrecognizedExtension(x509.ObjectIdentifier(SCT_LIST_OID), _der_octets(sct_list))
        return builder().add_extension(ext, critical=False).sign(self.ca, hashes.SHA256())

    def bundle(self, artifact: bytes, identity: str, issuer: str, *, statement: bytes | None = None) -> bytes:
        """A v0.3 keyless bundle by a fresh key certified for `identity`: a message signature over
        `artifact`, or (`statement`) a DSSE envelope of an in-toto statement, logged as dsse 0.0.1."""
        import rfc8785

        signer = ec_key()
        cert = self.leaf(signer, identity, issuer)
        pem = cert.public_bytes(serialization.Encoding.PEM)
        content: dict
        if statement is None:
            sig = signer.sign(artifact, ec.ECDSA(hashes.SHA256()))
            body = jdump(
                {
                    "apiVersion": "0.0.1",
                    "kind": "hashedrekord",
                    "spec": {
                        "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(artifact).hexdigest()}},
                        "signature": {"content": b64(sig), "publicKey": {"content": b64(pem)}},
                    },
                }
            )
            content = {
                "messageSignature": {
                    "messageDigest": {"algorithm": "SHA2_256", "digest": b64(hashlib.sha256(artifact).digest())},
                    "signature": b64(sig),
                }
            }
        else:
            sig = signer.sign(pae(IN_TOTO, statement), ec.ECDSA(hashes.SHA256()))
            envelope = {"payload": b64(statement), "payloadType": IN_TOTO, "signatures": [{"sig": b64(sig)}]}
            body = jdump(
                {
                    "apiVersion": "0.0.1",
                    "kind": "dsse",
                    "spec": {
                        "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(jdump(envelope)).hexdigest()},
                        "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(statement).hexdigest()},
                        "signatures": [{"signature": b64(sig), "verifier": b64(pem)}],
                    },
                }
            )
            content = {"dsseEnvelope": envelope}
        log_id = hashlib.sha256(_spki(self.rekor)).digest()
        integrated = int(SIGNED_AT.timestamp())
        set_sig = self.rekor.sign(
            rfc8785.dumps({"body": b64(body), "integratedTime": integrated, "logID": log_id.hex(), "logIndex": 0}),
            ec.ECDSA(hashes.SHA256()),
        )
        root = hashlib.sha256(b"\x00" + body).digest()  # a tree of one leaf
        note = f"rekor.invalid - 1\n1\n{b64(root)}\n"
        note_sig = self.rekor.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = note + "\n" + f"\u2014 rekor.invalid {b64(log_id[:4] + note_sig)}\n"
        return jdump(
            {
                "mediaType": BUNDLE,
                "verificationMaterial": {
                    "certificate": {"rawBytes": b64(cert.public_bytes(serialization.Encoding.DER))},
                    "tlogEntries": [
                        {
                            "logIndex": "0",
                            "logId": {"keyId": b64(log_id)},
                            "kindVersion": {"kind": json.loads(body)["kind"], "version": "0.0.1"},
                            "integratedTime": str(integrated),
                            "inclusionPromise": {"signedEntryTimestamp": b64(set_sig)},
                            "inclusionProof": {
                                "logIndex": "0",
                                "rootHash": b64(root),
                                "treeSize": "1",
                                "hashes": [],
                                "checkpoint": {"envelope": checkpoint},
                            },
                            "canonicalizedBody": b64(body),
                        }
                    ],
                },
                **content,
            }
        )


def keyless_layout(store: Sigstore, identity: str, issuer: str, *, attest_to: str | None = None) -> Signed:
    """The image with a keyless sigstore bundle referrer: a message signature over its manifest,
    or with `attest_to`, an attestation (DSSE, SLSA provenance) whose statement names that digest
    ("" for the image's own)."""
    layout = Layout()
    manifest, digest = image(layout)
    st = None if attest_to is None else jdump(statement(attest_to or digest))
    _referrer(
        layout,
        BUNDLE,
        BUNDLE,
        store.bundle(manifest, identity, issuer, statement=st),
        (digest, len(manifest)),
        {"dev.sigstore.bundle.content": "message-signature" if st is None else "dsse-envelope"},
    )
    return Signed(layout, manifest, digest, digest, ["keyless-bundle"])


SPDX = "https://spdx.dev/Document"


def sbom_statement(subject_digest: str) -> dict:
    return {
        "_type": "https://in-toto.io/Statement/v0.1",
        "subject": [{"name": f"pkg:docker/{REF}@5.2", "digest": {"sha256": subject_digest[7:]}}],
        "predicateType": SPDX,
        "predicate": {
            "spdxVersion": "SPDX-2.3",
            "name": "sbom",
            "packages": [{"name": "busybox", "versionInfo": "1.36.1-r2", "SPDXID": "SPDXRef-busybox"}],
        },
    }


def buildkit_attestation(layout: Layout, attached: str, statements: list[dict]) -> None:
    """What `docker buildx build --attest` writes beside a platform manifest: an image-config
    manifest whose layers are in-toto statements, named in the index with
    vnd.docker.reference.type=attestation-manifest and platform unknown/unknown."""
    layers = []
    for st in statements:
        layers.append(
            {
                "mediaType": IN_TOTO,
                **layout.add(jdump(st)),
                "annotations": {"in-toto.io/predicate-type": st["predicateType"]},
            }
        )
    config = jdump(
        {
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in layers]},
        }
    )
    man = jdump(
        {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, **layout.add(config)},
            "layers": layers,
        }
    )
    layout.manifests.append(
        {
            "mediaType": MT_MANIFEST,
            **layout.add(man),
            "annotations": {
                "vnd.docker.reference.digest": attached,
                "vnd.docker.reference.type": "attestation-manifest",
            },
            "platform": {"architecture": "unknown", "os": "unknown"},
        }
    )


def multiplatform(key) -> tuple[Layout, str, str, str]:
    """An image index (tagged) over the relay image (linux/amd64) and a linux/arm64 manifest the
    export left out, with cosign signatures over the index and over the absent manifest, as
    `cosign sign --recursive` makes them. Returns (layout, index, manifest, absent) digests."""
    layout = Layout()
    manifest, digest = image(layout)
    top = layout.manifests.pop()  # the image goes under the index instead
    absent = "sha256:" + "a4" * 32
    index = jdump(
        {
            "schemaVersion": 2,
            "mediaType": MT_INDEX,
            "manifests": [
                {
                    "mediaType": MT_MANIFEST,
                    "digest": digest,
                    "size": top["size"],
                    "platform": {"architecture": "amd64", "os": "linux"},
                },
                {
                    "mediaType": MT_MANIFEST,
                    "digest": absent,
                    "size": 1234,
                    "platform": {"architecture": "arm64", "os": "linux"},
                },
            ],
        }
    )
    layout.manifests.append(
        {"mediaType": MT_INDEX, **layout.add(index), "annotations": {"org.opencontainers.image.ref.name": f"{REF}:5.2"}}
    )
    cosign_signature(layout, key, sha(index))
    cosign_signature(layout, key, absent)
    return layout, sha(index), digest, absent
