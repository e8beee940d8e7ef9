"""Archives written by real tools (tests/fixtures/realtools/README.md says which and how):
each is clean, and gets exactly the info/low findings its shape calls for."""

from __future__ import annotations

from pathlib import Path

import pytest

from forensics.pipeline import analyze

HERE = Path(__file__).parent / "fixtures" / "realtools"
MEDIUM_OR_ABOVE = {"critical", "high", "medium"}

# file -> (images, artifacts, codes expected below medium)
EXPECTED = {
    "buildah-relative-copy.oci.tar": (1, 0, set()),
    "buildah-relative-copy-onelayer.oci.tar": (1, 0, set()),
    "buildah-inherited-workdir.oci.tar": (1, 0, set()),
    "skopeo-index-only.oci.tar": (0, 0, {"blob.not-exported"}),
    "skopeo-index-one-platform.oci.tar": (1, 0, {"blob.not-exported"}),
    "ctr-export-one-platform.docker-oci.tar": (1, 0, {"blob.not-exported"}),
    "image-with-artifacts.oci.tar": (1, 3, {"signature.unverified"}),  # signed, no --key given
}


@pytest.fixture(scope="module")
def reports():
    return {name: analyze(str(HERE / name)) for name in EXPECTED}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_tool_output_is_clean(reports, name):
    r = reports[name]
    loud = [f"{f.severity.value} {f.code}: {f.detail[:200]}" for f in r.findings if f.severity.value in MEDIUM_OR_ABOVE]
    assert not loud, "\n".join(loud)
    assert r.verdict == "clean"
    images, artifacts, codes = EXPECTED[name]
    assert len(r.images) == images and len(r.artifacts) == artifacts
    assert {f.code for f in r.findings} == codes
    for img in r.images:
        assert all(layer.present and layer.diff_id == layer.declared_diff_id for layer in img.layers)


def test_every_step_of_the_relative_copy_build_is_explained(reports):
    for name in ("buildah-relative-copy.oci.tar", "buildah-inherited-workdir.oci.tar"):
        img = reports[name].images[0]
        steps = [h for h in img.history if h.analysis and h.analysis.counts]
        assert steps and all(h.analysis.counts["unexplained"] == 0 for h in steps), name
    by_path = {
        c.path: c.explained_by
        for h in reports["buildah-inherited-workdir.oci.tar"].images[0].history
        if h.analysis
        for c in h.analysis.explained
    }
    assert by_path["/srv/a/one.txt"] == "COPY destination /srv/a"
    assert by_path["/srv/b/one.txt"] == "COPY destination /srv/b"


@pytest.mark.parametrize(
    "name,absent,held",
    [
        ("skopeo-index-only.oci.tar", {"linux/amd64", "linux/arm64/v8"}, None),
        ("skopeo-index-one-platform.oci.tar", {"linux/arm64/v8"}, "linux/amd64"),
        ("ctr-export-one-platform.docker-oci.tar", {"linux/arm64/v8"}, "linux/amd64"),
    ],
)
def test_platforms_left_out_are_listed_once(reports, name, absent, held):
    r = reports[name]
    (f,) = [f for f in r.findings if f.code == "blob.not-exported"]
    assert f.severity.value == "info"
    assert {n.platform for n in r.not_exported} == absent
    assert all(n.kind == "platform" for n in r.not_exported)
    if held:
        assert f"only {held} can be verified" in f.detail
        assert [i.platform for i in r.images] == [held]
    else:
        assert "no image of it can be verified" in f.detail


def test_artifacts_beside_the_image_are_inventoried_not_unpacked(reports):
    r = reports["image-with-artifacts.oci.tar"]
    image = r.images[0].manifest_digest
    kinds = {a.kind: a for a in r.artifacts}
    assert set(kinds) == {"signature", "sbom", "attestation"}
    for a in r.artifacts:
        assert a.verified and all(b.present and b.verified for b in a.blobs)
        assert a.subject == image and a.subject_in_archive
    sig = kinds["signature"]
    assert sig.refs == [f"sha256-{image.split(':')[1]}.sig"]
    assert "dev.cosignproject.cosign/signature" in sig.blobs[1].annotations
    assert kinds["sbom"].artifact_type == "application/spdx+json"
    assert kinds["attestation"].blobs[1].media_type == "application/vnd.in-toto+json"
    # the artifacts' blobs are accounted for, so nothing is unreferenced
    assert not [b for b in r.blobs if b.kind == "unreferenced"]
