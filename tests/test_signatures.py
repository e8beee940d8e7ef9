"""Signatures and attestations, verified offline (issue 13), on layouts tests/sigdata.py signs
with keys made here: the right key verifies, another key or one changed byte does not, a
signature or attestation about a manifest the archive lacks is reported, a docker save says
nothing in it can be signed, and a signed clean image raises nothing above low without keys."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sigdata as sd  # noqa: E402

from forensics.cli import app  # noqa: E402
from forensics.pipeline import analyze  # noqa: E402
from forensics.signatures import SigningError, load_signing  # noqa: E402
from forensics.signatures.dsse import pae  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MEDIUM_UP = ("critical", "high", "medium")


@pytest.fixture(scope="module")
def key():
    return sd.ec_key()


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory, key):
    d = tmp_path_factory.mktemp("keys")
    sd.write_key(d / "cosign.pub", key)
    sd.write_key(d / "other.pub", sd.ec_key())
    return d


def _scan(path: Path, *keys: Path):
    return analyze(str(path), signing=load_signing([str(k) for k in keys]) if keys else None)


def _codes(report, *codes):
    return [f for f in report.findings if f.code in codes]


def _sig(report, fmt="cosign"):
    return next(s for s in report.signatures if s.format == fmt)


def test_pae_matches_the_dsse_spec_example():
    # DSSE protocol.md: PAE("http://example.com/HelloWorld", "hello world")
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_right_key_verifies_every_envelope(tmp_path, key, keys_dir):
    s = sd.build(key, parts=("sig", "att", "bundle"))
    r = _scan(s.layout.write_tar(tmp_path / "signed.tar"), keys_dir / "cosign.pub")
    assert r.verdict == "clean"
    sig = _sig(r)
    assert sig.status == "verified" and sig.images == [0]
    assert sig.signed_digest == s.manifest_digest == r.images[0].manifest_digest
    assert sig.docker_reference == "registry.example/sample/relay"
    assert "cosign.pub" in (sig.verified_with or "")
    assert _sig(r, "sigstore-bundle").status == "verified"
    att = r.attestations[0]
    assert att.status == "verified" and att.predicate_type == sd.SLSA_V1
    assert att.subjects[0].digest == s.manifest_digest and att.subjects[0].held == "manifest"
    assert att.slsa is not None and att.slsa.builder_id == "https://ci.example/builder"
    assert att.slsa.materials == ["pkg:docker/alpine@3.20@sha256:" + "ab" * 32]
    verified = _codes(r, "signature.verified")
    assert len(verified) == 3 and all(f.severity.value == "info" for f in verified)
    assert not [f for f in r.findings if f.severity.value in MEDIUM_UP]


def test_the_layout_directory_verifies_too(tmp_path, key, keys_dir):
    s = sd.build(key, parts=("sig",))
    r = _scan(s.layout.write_dir(tmp_path / "layout"), keys_dir / "cosign.pub")
    assert r.format == "oci-layout" and _sig(r).status == "verified"


def test_another_key_is_invalid(tmp_path, key, keys_dir):
    s = sd.build(key, parts=("sig", "att"))
    r = _scan(s.layout.write_tar(tmp_path / "signed.tar"), keys_dir / "other.pub")
    invalid = _codes(r, "signature.invalid")
    assert len(invalid) == 2 and all(f.severity.value == "critical" for f in invalid)
    assert _sig(r).status == "invalid" and r.attestations[0].status == "invalid"
    assert not _codes(r, "signature.verified")


def test_one_key_of_several_verifies(tmp_path, key, keys_dir):
    s = sd.build(key, parts=("sig",))
    r = _scan(s.layout.write_tar(tmp_path / "signed.tar"), keys_dir / "other.pub", keys_dir / "cosign.pub")
    assert _sig(r).status == "verified" and not _codes(r, "signature.invalid")


def test_one_byte_of_the_payload_changed_is_invalid(tmp_path, key, keys_dir):
    # The forger fixes every digest after the change: only the signature can tell.
    s = sd.build(key, parts=("sig",), tamper_payload=True)
    r = _scan(s.layout.write_tar(tmp_path / "tampered.tar"), keys_dir / "cosign.pub")
    assert not _codes(r, "blob.digest-mismatch", "blob.size-mismatch")
    [f] = _codes(r, "signature.invalid")
    assert f.severity.value == "critical" and "does not verify" in f.detail
    assert _sig(r).status == "invalid"


@pytest.mark.parametrize("rename", [True, False], ids=["re-digested", "bytes-changed-in-place"])
def test_one_byte_of_the_signed_manifest_changed(tmp_path, key, keys_dir, rename):
    s = sd.build(key, parts=("sig", "att"))
    sd.change_manifest_byte(s, rename=rename)
    r = _scan(s.layout.write_tar(tmp_path / "tampered.tar"), keys_dir / "cosign.pub")
    mismatch = _codes(r, "signature.subject-mismatch")
    assert mismatch and all(f.severity.value == "high" for f in mismatch)
    assert s.manifest_digest in mismatch[0].detail
    if not rename:
        assert "its bytes were changed" in mismatch[0].detail
    assert _sig(r).status == "subject-mismatch" and _sig(r).images == []
    assert not _codes(r, "signature.verified")


def test_a_signature_whose_subject_is_absent(tmp_path, key, keys_dir):
    s = sd.build(key, parts=("sig",), sign_other=True)
    r = _scan(s.layout.write_tar(tmp_path / "other.tar"), keys_dir / "cosign.pub")
    [f] = _codes(r, "signature.subject-mismatch")
    assert f.severity.value == "high" and s.signed_digest in f.detail and "holds no manifest" in f.detail
    assert _sig(r).subject_held is not True


def test_an_attestation_with_a_wrong_subject(tmp_path, key, keys_dir):
    s = sd.build(key, parts=("att",), att_subject_other=True)
    for keys in ((), (keys_dir / "cosign.pub",)):
        r = _scan(s.layout.write_tar(tmp_path / "att.tar"), *keys)
        [f] = _codes(r, "signature.subject-mismatch")
        assert f.severity.value == "high" and "not " + s.manifest_digest in f.detail
        assert r.attestations[0].status == "subject-mismatch"
        assert r.attestations[0].subjects[0].held is None


def test_payload_naming_another_digest_than_its_tag_is_invalid(tmp_path, key, keys_dir):
    layout = sd.Layout()
    _, digest = sd.image(layout)
    sd.cosign_signature(layout, key, "sha256:" + "77" * 32, tag=digest)  # tagged for this image, signs another
    r = _scan(layout.write_tar(tmp_path / "swap.tar"), keys_dir / "cosign.pub")
    [f] = _codes(r, "signature.invalid")
    assert "sha256:" + "77" * 32 in f.detail and "another image" in f.detail


def test_signed_archive_without_keys_raises_only_low(tmp_path, key):
    """A signature and an attestation beside their image are artifacts, not a broken second image."""
    s = sd.build(key, parts=("sig", "att", "bundle", "notation"))
    r = _scan(s.layout.write_tar(tmp_path / "signed.tar"))
    assert r.verdict == "clean" and len(r.images) == 1
    assert not [f for f in r.findings if f.severity.value in MEDIUM_UP], [
        (f.code, f.detail) for f in r.findings if f.severity.value in MEDIUM_UP
    ]
    unverified = _codes(r, "signature.unverified")
    assert len(unverified) == 4 and all(f.severity.value == "low" for f in unverified)
    assert all("--key" in f.detail for f in unverified)
    assert {a.kind for a in r.artifacts} == {"signature", "attestation"}
    assert {s.format for s in r.signatures} == {"cosign", "sigstore-bundle", "notation"}


def test_notation_jws_verifies_with_the_signers_key(tmp_path, key):
    nk = sd.rsa_key()
    s = sd.build(key, parts=("notation",), notation_key=nk)
    good, bad = sd.write_key(tmp_path / "n.pub", nk), sd.write_key(tmp_path / "x.pub", sd.rsa_key())
    path = s.layout.write_tar(tmp_path / "n.tar")
    r = _scan(path, Path(good))
    sig = _sig(r, "notation")
    assert sig.status == "verified" and sig.envelope == "jws" and sig.identity == "CN=notation signer"
    assert sig.signed_digest == s.manifest_digest
    assert _sig(_scan(path, Path(bad)), "notation").status == "invalid"


@pytest.mark.parametrize(
    "make", [lambda: sd.ec_key(ec.SECP384R1()), lambda: sd.rsa_key(3072), sd.ed_key], ids=["p384", "rsa", "ed25519"]
)
def test_other_key_types_verify_cosign_signatures(tmp_path, make):
    k = make()
    s = sd.build(k, parts=("sig",))
    r = _scan(s.layout.write_tar(tmp_path / "k.tar"), Path(sd.write_key(tmp_path / "k.pub", k)))
    assert _sig(r).status == "verified"


def test_docker_archive_says_nothing_can_carry_a_signature(keys_dir):
    r = _scan(ROOT / "samples" / "clean.docker.tar", keys_dir / "cosign.pub")
    assert r.format == "docker-archive" and not r.signatures
    assert any("nothing in it can carry" in n for n in r.signature_notes)
    assert not [f for f in r.findings if f.code.startswith("signature.")]


def test_unsigned_oci_archive_notes_it(keys_dir):
    r = _scan(ROOT / "samples" / "relay-genuine.oci.tar", keys_dir / "cosign.pub")
    assert any(n.startswith("no signature or attestation") for n in r.signature_notes)
    assert any("image 0 has no signature" in n for n in r.signature_notes)


def test_html_shows_the_section(tmp_path, key, keys_dir):
    from forensics.render.html import render_html

    s = sd.build(key, parts=("sig", "att"))
    r = _scan(s.layout.write_tar(tmp_path / "signed.tar"), keys_dir / "cosign.pub")
    page = render_html(r)
    section = page[page.index('<section id="signatures">') :]
    section = section[: section.index("</section>")]
    assert "Signatures and attestations" in section and "VERIFIED" in section
    assert s.manifest_digest in section and "https://ci.example/builder" in section
    assert render_html(_scan(ROOT / "samples" / "clean.docker.tar")).count("nothing in it can carry") == 1


def test_hostile_strings_in_a_signature_are_escaped(tmp_path, key, keys_dir):
    from forensics.render.html import render_html
    from forensics.render.signatures import render_signatures_text

    layout = sd.Layout()
    _, digest = sd.image(layout)
    body = sd.payload(digest).replace(b"registry.example/sample/relay", b"<script>x</script>\\u001b[31m")
    layer = {
        "mediaType": sd.SIMPLE_SIGNING,
        **layout.add(body),
        "annotations": {"dev.cosignproject.cosign/signature": sd.b64(sd.sign(key, body))},
    }
    sd._cosign_manifest(layout, digest, "sig", layer)
    r = _scan(layout.write_tar(tmp_path / "h.tar"), keys_dir / "cosign.pub")
    assert _sig(r).status == "verified" and _sig(r).docker_reference.startswith("<script>")
    assert "<script>x" not in render_html(r) and "\x1b" not in render_signatures_text(r)


def _cli(*args):
    return CliRunner().invoke(app, ["scan", *map(str, args)], catch_exceptions=False)


def test_require_signature_exit_codes(tmp_path, key, keys_dir):
    signed = sd.build(key, parts=("sig",)).layout.write_tar(tmp_path / "signed.tar")
    unsigned = ROOT / "samples" / "relay-genuine.oci.tar"
    ok = _cli(signed, "--key", keys_dir / "cosign.pub", "--require-signature", "-q")
    assert ok.exit_code == 0, ok.output
    none = _cli(unsigned, "--key", keys_dir / "cosign.pub", "--require-signature", "--fail-on", "never", "-q")
    assert none.exit_code == 1 and "has no valid signature" in none.output
    other = _cli(signed, "--key", keys_dir / "other.pub", "--require-signature", "--fail-on", "never", "-q")
    assert other.exit_code == 1
    nothing = _cli(signed, "--require-signature", "-q")
    assert nothing.exit_code == 2 and "--key FILE or --trusted-root" in nothing.output
    without = _cli(signed, "-q")  # signature.unverified is low: below the default --fail-on high
    assert without.exit_code == 0


def test_terminal_summary_lists_signatures(tmp_path, key, keys_dir):
    signed = sd.build(key, parts=("sig", "att")).layout.write_tar(tmp_path / "signed.tar")
    out = _cli(signed, "--key", keys_dir / "cosign.pub").output
    assert "Signatures (1) and attestations (1)" in out and "VERIFIED" in out and "SLSA v1" in out


def test_forensics_report_shows_the_signature_block_of_a_saved_result(tmp_path, key, keys_dir):
    signed = sd.build(key, parts=("sig", "att")).layout.write_tar(tmp_path / "signed.tar")
    saved = tmp_path / "scan.json"
    scanned = _cli(signed, "--key", keys_dir / "cosign.pub", "--json", saved)
    shown = CliRunner().invoke(app, ["report", str(saved)], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    block = scanned.output[scanned.output.index("Signatures (1) and attestations (1)") :]
    assert block.strip() and block in shown.output  # what scan showed, from the JSON alone


def test_bad_key_files_are_usage_errors(tmp_path):
    priv = tmp_path / "cosign.key"
    from cryptography.hazmat.primitives import serialization

    priv.write_bytes(
        sd.ec_key().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    junk = tmp_path / "junk.pub"
    junk.write_bytes(b"\x00" * 40)
    for path, words in ((priv, "private key"), (junk, "not a PEM public key"), (tmp_path / "none", "no such file")):
        with pytest.raises(SigningError, match=words):
            load_signing([str(path)])
        res = _cli(ROOT / "samples" / "relay-genuine.oci.tar", "--key", path, "-q")
        assert res.exit_code == 2 and "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


def test_keyless_options_are_checked_before_reading(tmp_path):
    with pytest.raises(SigningError, match="--identity"):
        load_signing([], str(tmp_path / "trusted_root.json"))
    with pytest.raises(SigningError, match="give --trusted-root"):
        load_signing([], None, "me@example.com", "https://issuer.example")
    with pytest.raises(SigningError, match="no such file|trusted_root"):
        load_signing([], str(tmp_path / "absent.json"), "me@example.com", "https://issuer.example")
    bad = tmp_path / "trusted_root.json"
    bad.write_text(json.dumps({"mediaType": "application/x-not-a-root"}))
    with pytest.raises(SigningError, match="not a sigstore trusted_root.json"):
        load_signing([], str(bad), "me@example.com", "https://issuer.example")


def test_keyless_without_sigstore_names_the_extra(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_sigstore(name, *a, **kw):
        if name == "sigstore" or name.startswith("sigstore."):
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_sigstore)
    with pytest.raises(SigningError, match=r"\[sigstore\]"):
        load_signing([], str(tmp_path / "trusted_root.json"), "me@example.com", "https://issuer.example")


def test_signature_modules_declare_what_they_raise_and_see_only_the_model():
    pkg = ROOT / "forensics" / "signatures"
    for path in pkg.glob("*.py"):
        tree = ast.parse(path.read_text())
        imports = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
        }
        bad = {
            m for m in imports if m.startswith(("forensics.archive", "forensics.read")) and m != "forensics.read.model"
        }
        assert not bad, (path.name, bad)
    from forensics.findings import declarations

    assert set(declarations()["forensics.signatures.check"]) == {
        "signature.verified",
        "signature.invalid",
        "signature.subject-mismatch",
        "signature.unverified",
    }


REALTOOLS = ROOT / "tests" / "fixtures" / "realtools"


def test_real_shaped_archive_with_an_openssl_signature():
    """skopeo's layout plus a cosign-shaped signature signed by `openssl dgst -sha256 -sign`,
    an SBOM referrer and a bare in-toto statement referrer (tests/fixtures/realtools)."""
    path = REALTOOLS / "image-with-artifacts.oci.tar"
    bare = analyze(str(path))
    assert bare.verdict == "clean" and not [f for f in bare.findings if f.severity.value in MEDIUM_UP]
    assert [f.severity.value for f in _codes(bare, *sd_codes())] == ["low"]
    r = _scan(path, REALTOOLS / "artifacts-cosign.pub")
    sig = _sig(r)
    assert sig.status == "verified" and sig.images == [0] and sig.docker_reference == "localhost/relcopy"
    [att] = r.attestations
    assert att.source == "referrer" and att.status == "unsigned" and not att.signed
    assert att.predicate_type == "https://example.com/test-result/v1" and att.subjects[0].held == "manifest"
    assert any("unsigned" in n for n in r.signature_notes)


def sd_codes():
    return ("signature.verified", "signature.invalid", "signature.subject-mismatch", "signature.unverified")


# ------------------------------------------------------------------ keyless, against a sigstore made here

ID, ISSUER = "builder@example.com", "https://issuer.example"


@pytest.fixture(scope="module")
def sigstore_made_here(tmp_path_factory):
    pytest.importorskip("sigstore", reason="keyless verification needs the sigstore extra")
    store = sd.Sigstore()
    d = tmp_path_factory.mktemp("keyless")
    (d / "trusted_root.json").write_bytes(store.trusted_root())
    (d / "other_root.json").write_bytes(sd.Sigstore().trusted_root())
    return store, d


def _keyless(path: Path, root: Path, identity=ID, issuer=ISSUER):
    return analyze(str(path), signing=load_signing([], str(root), identity, issuer))


def test_keyless_bundle_verifies_offline_with_the_trusted_root(tmp_path, sigstore_made_here):
    store, d = sigstore_made_here
    s = sd.keyless_layout(store, ID, ISSUER)
    r = _keyless(s.layout.write_tar(tmp_path / "keyless.tar"), d / "trusted_root.json")
    sig = _sig(r, "sigstore-bundle")
    assert sig.status == "verified" and sig.images == [0] and sig.certificate
    assert sig.identity == ID and sig.issuer == ISSUER
    assert "trusted_root.json" in (sig.verified_with or "")
    assert [f.severity.value for f in _codes(r, *sd_codes())] == ["info"]
    assert any("cannot establish that this root is current" in n and "revoked" in n for n in r.signature_notes)


@pytest.mark.parametrize(
    "root, identity, issuer",
    [
        ("trusted_root.json", "someone@example.com", ISSUER),
        ("trusted_root.json", ID, "https://other-issuer.example"),
        ("other_root.json", ID, ISSUER),
    ],
    ids=["other-identity", "other-issuer", "other-root"],
)
def test_keyless_bundle_fails_for_another_signer_or_root(tmp_path, sigstore_made_here, root, identity, issuer):
    store, d = sigstore_made_here
    s = sd.keyless_layout(store, ID, ISSUER)
    r = _keyless(s.layout.write_tar(tmp_path / "keyless.tar"), d / root, identity, issuer)
    [f] = _codes(r, "signature.invalid")
    assert f.severity.value == "critical" and "sigstore:" in _sig(r, "sigstore-bundle").detail


def test_keyless_bundle_over_a_changed_manifest(tmp_path, sigstore_made_here):
    store, d = sigstore_made_here
    s = sd.keyless_layout(store, ID, ISSUER)
    sd.change_manifest_byte(s, rename=False)
    r = _keyless(s.layout.write_tar(tmp_path / "keyless.tar"), d / "trusted_root.json")
    assert _sig(r, "sigstore-bundle").status == "subject-mismatch"
    [f] = _codes(r, "signature.subject-mismatch")
    assert "its bytes were changed" in f.detail and not _codes(r, "signature.verified", "signature.invalid")


def test_keyless_bundle_without_a_root_names_the_options(tmp_path, sigstore_made_here):
    store, d = sigstore_made_here
    path = sd.keyless_layout(store, ID, ISSUER).layout.write_tar(tmp_path / "keyless.tar")
    [f] = _codes(analyze(str(path)), "signature.unverified")
    assert f.severity.value == "low" and "--trusted-root" in f.detail and "--identity" in f.detail
    res = _cli(
        path,
        "--trusted-root",
        d / "trusted_root.json",
        "--identity",
        ID,
        "--issuer",
        ISSUER,
        "--require-signature",
        "-q",
    )
    assert res.exit_code == 0, res.output


def test_buildkit_attestations_are_unsigned_records_with_their_subjects(tmp_path):
    layout = sd.Layout()
    _, digest = sd.image(layout)
    sd.buildkit_attestation(layout, digest, [sd.statement(digest), sd.sbom_statement(digest)])
    r = _scan(layout.write_tar(tmp_path / "buildkit.tar"))
    assert not _codes(r, *sd_codes()) and len(r.images) == 1
    # the generator's SBOM names busybox 1.36.1-r2 (an apk version) over a dpkg busybox 1:1.36.1-1:
    # the SBOM comparison (forensics.sbom) reads the same statement and says so, nothing else does
    assert [(f.code, f.severity) for f in r.findings] == [("attestation.sbom-mismatch", "medium")]
    prov, sbom = r.attestations
    assert prov.source == sbom.source == "buildkit" and prov.status == sbom.status == "unsigned"
    assert prov.subjects[0].held == "manifest" and prov.slsa is not None and prov.slsa.version == "v1"
    assert prov.sbom_predicate is None
    # kept parsed, for the comparison with the packages in the layers (attestation.sbom-mismatch)
    assert sbom.predicate_type == sd.SPDX and sbom.sbom_predicate["packages"][0]["name"] == "busybox"
    assert any("unsigned" in n for n in r.signature_notes)


def test_buildkit_attestation_about_another_image(tmp_path):
    layout = sd.Layout()
    _, digest = sd.image(layout)
    sd.buildkit_attestation(layout, digest, [sd.statement("sha256:" + "42" * 32)])
    r = _scan(layout.write_tar(tmp_path / "buildkit.tar"))
    [f] = _codes(r, "signature.subject-mismatch")
    assert f.severity.value == "high" and "sha256:" + "42" * 32 in f.detail


_NEST = b"[" * 5000 + b"]" * 5000
HOSTILE_BLOBS = {
    sd.SIMPLE_SIGNING: [
        b"[]",
        b'{"critical":[]}',
        b'{"critical":{"image":{"docker-manifest-digest":5}}}',
        _NEST,
        b"\xff\xfe",
    ],
    sd.DSSE: [
        b'{"payloadType":1}',
        b'{"payloadType":"x","payload":"!!","signatures":"x"}',
        b'{"payloadType":"x","payload":"e30=","signatures":[{"sig":5}]}',
        _NEST,
    ],
    sd.BUNDLE: [
        b'{"verificationMaterial":[],"messageSignature":{"signature":"%%"}}',
        b'{"dsseEnvelope":{"payload":"e30="}}',
        b'{"verificationMaterial":{"certificate":{"rawBytes":"AAAA"}},"messageSignature":{"signature":"AAAA"}}',
    ],
    "application/jose+json": [
        b'{"payload":"x","protected":"x","signature":"x"}',
        b'{"payload":"e30","protected":"eyJhbGciOiJQUzI1NiJ9","signature":"AA","header":{"x5c":[5,"AAAA"]}}',
    ],
}


@pytest.mark.parametrize("with_key", [False, True], ids=["no-key", "key"])
def test_hostile_signature_blobs_give_findings_not_tracebacks(tmp_path, key, keys_dir, with_key):
    layout = sd.Layout()
    manifest, digest = sd.image(layout)
    n = 0
    for media_type, blobs in HOSTILE_BLOBS.items():
        for blob in blobs:
            if media_type in (sd.SIMPLE_SIGNING, sd.DSSE):
                notes = {
                    "dev.cosignproject.cosign/signature": "MEUCIQ==",
                    "dev.sigstore.cosign/certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
                }
                sd._cosign_manifest(
                    layout,
                    digest,
                    "sig" if media_type == sd.SIMPLE_SIGNING else "att",
                    {"mediaType": media_type, **layout.add(blob), "annotations": notes},
                )
            else:
                atype = sd.NOTATION if media_type.startswith("application/jose") else sd.BUNDLE
                sd._referrer(layout, atype, media_type, blob, (digest, len(manifest)), {})
            n += 1
    path = layout.write_tar(tmp_path / "hostile.tar")
    r = _scan(path, keys_dir / "cosign.pub") if with_key else _scan(path)
    assert len(r.images) == 1 and len(r.signatures) + len(r.attestations) >= n - 4  # same-digest blobs dedupe
    sig = _codes(r, *sd_codes())
    assert sig and not _codes(r, "signature.verified")
    assert {f.severity.value for f in sig} <= ({"critical", "low", "high"} if with_key else {"low", "high"})
    from forensics.render.html import render_html
    from forensics.render.signatures import render_signatures_text

    assert render_html(r) and render_signatures_text(r)


def test_keyless_dsse_attestation_verifies_and_its_subject_is_held(tmp_path, sigstore_made_here):
    store, d = sigstore_made_here
    good = sd.keyless_layout(store, ID, ISSUER, attest_to="")
    r = _keyless(good.layout.write_tar(tmp_path / "att.tar"), d / "trusted_root.json")
    [att] = r.attestations
    assert att.source == "sigstore-bundle" and att.status == "verified" and att.identity == ID
    assert att.subjects[0].held == "manifest" and att.slsa is not None
    assert [f.severity.value for f in _codes(r, *sd_codes())] == ["info"]
    other = _keyless(good.layout.write_tar(tmp_path / "att.tar"), d / "trusted_root.json", "x@example.com")
    assert other.attestations[0].status == "invalid"
    wrong = sd.keyless_layout(store, ID, ISSUER, attest_to="sha256:" + "43" * 32)
    r = _keyless(wrong.layout.write_tar(tmp_path / "wrong.tar"), d / "trusted_root.json")
    [f] = _codes(r, "signature.subject-mismatch")
    assert f.severity.value == "high" and r.attestations[0].status == "subject-mismatch"


def test_a_signature_over_the_index_covers_its_images(tmp_path, key, keys_dir):
    layout, index, manifest, absent = sd.multiplatform(key)
    path = layout.write_tar(tmp_path / "multi.tar")
    r = _scan(path, keys_dir / "cosign.pub")
    assert len(r.images) == 1 and r.images[0].manifest_digest == manifest
    over_index = next(s for s in r.signatures if s.signed_digest == index)
    assert over_index.status == "verified" and over_index.images == [0]
    # the signature of the platform the export left out: low, since the index names it
    over_absent = next(s for s in r.signatures if s.signed_digest == absent)
    assert over_absent.status == "subject-mismatch"
    [f] = _codes(r, "signature.subject-mismatch")
    assert f.severity.value == "low" and "left it out" in f.detail
    assert _cli(path, "--key", keys_dir / "cosign.pub", "--require-signature", "-q").exit_code == 0


def test_a_keyless_cosign_signature_is_recorded_and_not_judged_by_another_key(tmp_path, key, keys_dir):
    """cosign's legacy keyless form (certificate annotation, Rekor SET, no inclusion proof):
    its identity is recorded; a --key that is not the certificate's does not make it invalid,
    the certificate's own key given and failing does."""
    from cryptography.hazmat.primitives import serialization

    layout = sd.Layout()
    _, digest = sd.image(layout)
    body = sd.payload(digest)
    signer = sd.ec_key()
    cert = sd.self_signed(signer, "keyless")
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    notes = {
        "dev.cosignproject.cosign/signature": sd.b64(sd.sign(signer, body + b" ")),
        "dev.sigstore.cosign/certificate": pem,
    }
    sd._cosign_manifest(
        layout, digest, "sig", {"mediaType": sd.SIMPLE_SIGNING, **layout.add(body), "annotations": notes}
    )
    path = layout.write_tar(tmp_path / "keyless-cosign.tar")
    r = _scan(path, keys_dir / "cosign.pub")
    sig = _sig(r)
    assert sig.certificate and sig.identity == "CN=keyless" and sig.status == "unverified"
    [f] = _codes(r, "signature.unverified")
    assert "cosign verify --offline" in f.detail
    own = tmp_path / "cert-key.pub"
    own.write_bytes(sd.public_pem(signer))
    assert _sig(_scan(path, own)).status == "invalid"  # the signature (over other bytes) fails its own key
