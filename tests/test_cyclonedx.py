"""`scan --cyclonedx`: CycloneDX 1.6 JSON, validated by cyclonedx-python-lib's own JSON validator.

What the SBOM says is checked against the image's bytes read here with tarfile (the
package databases, the files' sha256), never against the analyzer's own output alone.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import pytest
import sbomimages as si
import zstandard
from conftest import CORPUS, SAMPLES
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from hostile import M
from packageurl import PackageURL
from typer.testing import CliRunner

from forensics.cli import app
from forensics.pipeline import analyze

runner = CliRunner()
VALIDATOR = JsonStrictValidator(SchemaVersion.V1_6)
FORGED = SAMPLES / "relay-forged.oci.tar"
DEB = CORPUS / "attack" / "deb-tools-pkgfile.oci.tar"


def valid(text: str) -> dict:
    err = VALIDATOR.validate_str(text)
    assert err is None, str(err)[:2000]
    assert text.isascii()
    return json.loads(text)


def sbom_of(path: Path, tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "sbom.cdx.json"
    res = runner.invoke(app, ["scan", str(path), "--cyclonedx", str(out), "-q", *extra])
    assert res.exit_code in (0, 1), res.output
    return valid(out.read_text())


def props(c: dict) -> dict[str, str]:
    return {p["name"]: p["value"] for p in c.get("properties", [])}


def by_purl(doc: dict) -> dict[str, dict]:
    return {c["purl"]: c for c in doc.get("components", []) if "purl" in c}


def occurrences(c: dict) -> dict[str, str]:
    return {o["location"]: o["additionalContext"] for o in c.get("evidence", {}).get("occurrences", [])}


def oci_layers(archive: Path) -> tuple[dict, list[bytes]]:
    """(manifest, uncompressed layer tars) of a single-image OCI archive, read with tarfile."""
    with tarfile.open(archive) as tf:
        blob = lambda d: tf.extractfile(f"blobs/sha256/{d.split(':', 1)[1]}").read()  # noqa: E731
        index = json.loads(tf.extractfile("index.json").read())
        man_digest = index["manifests"][0]["digest"]
        man = json.loads(blob(man_digest))
        tars = []
        for layer in man["layers"]:
            data = blob(layer["digest"])
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            elif data[:4] == b"\x28\xb5\x2f\xfd":
                data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
            tars.append(data)
    return {"digest": man_digest, **man}, tars


def layer_file(tar: bytes, path: str) -> bytes | None:
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        for ti in tf.getmembers():
            if ti.isfile() and "/" + ti.name.lstrip("./") == path:
                return tf.extractfile(ti).read()
    return None


def stanzas(status: str) -> set[tuple[str, str, str]]:
    """(Package, Version, Architecture) of each installed package of a dpkg status file."""
    out = set()
    for st in status.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", st, re.M))
        if fields.get("Status", "").endswith(" installed"):
            out.add((fields["Package"], fields["Version"], fields["Architecture"]))
    return out


def test_the_validator_is_the_libs_and_rejects_a_broken_bom():
    assert VALIDATOR.validate_str(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1})) is None
    bad = {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": [{"type": "library"}]}
    assert VALIDATOR.validate_str(json.dumps(bad)) is not None  # a component needs a name


def test_forged_sample_sbom(tmp_path):
    doc = sbom_of(FORGED, tmp_path)
    assert doc["specVersion"] == "1.6"
    man, tars = oci_layers(FORGED)
    meta = doc["metadata"]["component"]
    assert meta["type"] == "container"
    assert meta["purl"].startswith("pkg:oci/") and meta["purl"].split("@", 1)[1].startswith(man["digest"])
    assert meta["hashes"] == [{"alg": "SHA-256", "content": man["digest"].split(":", 1)[1]}]
    status = layer_file(tars[0], "/var/lib/dpkg/status").decode()
    os_release = layer_file(tars[0], "/etc/os-release").decode()
    os_id = re.search(r"^ID=(\S+)", os_release, re.M).group(1).strip('"')
    [(name, version, arch)] = stanzas(status)
    libs = [c for c in doc["components"] if c["type"] == "library"]
    assert len(libs) == 1
    [c] = libs
    assert c["name"] == name and c["version"] == version
    assert c["purl"].startswith(f"pkg:deb/{os_id}/{name}@") and f"arch={arch}" in c["purl"]
    assert props(c)["forensics:layer:index"] == "0"
    assert props(c)["forensics:layer:diff_id"] == "sha256:" + hashlib.sha256(tars[0]).hexdigest()
    [(path, context)] = occurrences(c).items()
    assert context.startswith("sha256:" + hashlib.sha256(layer_file(tars[0], path)).hexdigest())
    # the OS is a component and the parent of its packages in the dependency graph
    [os_c] = [x for x in doc["components"] if x["type"] == "operating-system"]
    deps = {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}
    assert deps[meta["bom-ref"]] == [os_c["bom-ref"]] and deps[os_c["bom-ref"]] == [c["bom-ref"]]


@pytest.mark.skipif(not DEB.exists(), reason="shared corpus not found")
def test_debian_corpus_image_every_dpkg_package_with_its_purl(tmp_path):
    doc = sbom_of(DEB, tmp_path)
    man, tars = oci_layers(DEB)
    status = next(s for s in (layer_file(t, "/var/lib/dpkg/status") for t in reversed(tars)) if s is not None)
    installed = stanzas(status.decode())
    assert len(installed) > 80
    comps = by_purl(doc)
    deb = [PackageURL.from_string(p) for p in comps if p.startswith("pkg:deb/")]
    assert {(u.namespace, u.name, u.version, u.qualifiers["arch"], u.qualifiers["distro"]) for u in deb} == {
        ("debian", n, v, a, "debian-12") for n, v, a in installed
    }
    assert len(deb) == len(installed)
    assert [c["name"] for c in doc["components"] if c["type"] == "operating-system"] == ["debian"]
    # zgrep was replaced by a later layer: its evidence names that layer and the bytes there
    gzip_c = next(c for p, c in comps.items() if p.startswith("pkg:deb/debian/gzip@"))
    zgrep = occurrences(gzip_c)["/usr/bin/zgrep"]
    last = max(i for i, t in enumerate(tars) if layer_file(t, "/usr/bin/zgrep") is not None)
    assert last > 0
    assert (
        zgrep
        == f"sha256:{hashlib.sha256(layer_file(tars[last], '/usr/bin/zgrep')).hexdigest()} written by layer {last}"
    )
    assert props(gzip_c)["forensics:layer:index"] == "0"  # its record is the base image's


def test_every_ecosystem_and_the_layer_each_package_came_from(tmp_path):
    p = tmp_path / "alpine.tar"
    p.write_bytes(si.image(si.alpine_layers(busybox_upgrade="1.36.1-r16"), si.HISTORY["alpine"]).tar())
    doc = sbom_of(p, tmp_path)
    comps = by_purl(doc)
    distro = "distro=alpine-3.19.1"
    want = {
        f"pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&{distro}": "0",
        f"pkg:apk/alpine/busybox@1.36.1-r16?arch=x86_64&{distro}": "2",  # upgraded in layer 2
        "pkg:pypi/requests@2.31.0": "1",
        "pkg:pypi/typing-extensions@4.8.0": "1",  # purl-spec: lower case, '_' as '-'
        "pkg:npm/%40acme/left-pad@1.3.0": "1",
    }
    assert {k: props(comps[k])["forensics:layer:index"] for k in want} == want
    assert len([c for c in doc["components"] if c["type"] == "library"]) == len(want)
    sha = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()  # noqa: E731
    npm = occurrences(comps["pkg:npm/%40acme/left-pad@1.3.0"])
    assert npm["/usr/lib/node_modules/@acme/left-pad/index.js"] == f"{sha(si.LEFTPAD)} written by layer 1"
    assert occurrences(comps[f"pkg:apk/alpine/busybox@1.36.1-r16?arch=x86_64&{distro}"]) == {
        "/bin/busybox": f"{sha(si.BUSYBOX)} written by layer 2"
    }
    # /etc/os-release is a link to ../usr/lib/os-release: followed
    [os_c] = [c for c in doc["components"] if c["type"] == "operating-system"]
    assert (os_c["name"], os_c["version"], os_c["description"]) == ("alpine", "3.19.1", "Alpine Linux v3.19")
    deps = {d["ref"]: set(d.get("dependsOn", [])) for d in doc["dependencies"]}
    meta = doc["metadata"]["component"]["bom-ref"]
    assert deps[os_c["bom-ref"]] == {comps[k]["bom-ref"] for k in want if k.startswith("pkg:apk/")}
    assert deps[meta] == {os_c["bom-ref"]} | {comps[k]["bom-ref"] for k in want if not k.startswith("pkg:apk/")}


def test_rpm_epoch_is_a_qualifier_and_distro_comes_from_os_release(tmp_path):
    p = tmp_path / "fedora.tar"
    p.write_bytes(si.image(si.fedora_layers(tmp_path), si.HISTORY["one"]).tar())
    doc = sbom_of(p, tmp_path)
    [c] = [c for c in doc["components"] if c["type"] == "library"]
    assert c["purl"] == "pkg:rpm/fedora/bash@5.2.26-3.fc40?arch=x86_64&distro=fedora-40&epoch=1"
    assert c["version"] == "1:5.2.26-3.fc40"  # as the database records it
    assert set(occurrences(c)) == {"/usr/bin/bash", "/etc/bashrc"}


def test_without_os_release_deb_packages_are_debian_without_distro(tmp_path):
    p = tmp_path / "deb.tar"
    p.write_bytes(si.image(si.debian_layers(), si.HISTORY["one"]).tar())
    doc = sbom_of(p, tmp_path)
    assert set(by_purl(doc)) >= {
        "pkg:deb/debian/hello@2.10-3?arch=amd64",
        "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all",
    }
    assert not [c for c in doc["components"] if c["type"] == "operating-system"]
    hello = by_purl(doc)["pkg:deb/debian/hello@2.10-3?arch=amd64"]
    assert set(occurrences(hello)) == {"/usr/bin/hello"}
    assert "evidence" not in by_purl(doc)["pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all"]  # owns no file here


def test_hostile_names_stay_escaped_and_valid(tmp_path):
    status = "Package: evil\x1b[31m\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\u202e\n\n".encode()
    layer = [
        *si.dirs("usr", "usr/bin", "var", "var/lib", "var/lib/dpkg", "var/lib/dpkg/info"),
        M("usr/bin/x\u202e", b"x", mode=0o755),
        M("var/lib/dpkg/status", status),
        M("var/lib/dpkg/info/evil\x1b[31m.list", "/usr/bin/x\u202e\n".encode()),
    ]
    p = tmp_path / "hostile.tar"
    p.write_bytes(si.image([layer], si.HISTORY["one"]).tar())
    out = tmp_path / "s.json"
    res = runner.invoke(app, ["scan", str(p), "--cyclonedx", str(out), "-q"])
    assert res.exit_code in (0, 1), res.output
    text = out.read_text()
    doc = valid(text)
    [c] = [c for c in doc["components"] if c["type"] == "library"]
    assert c["name"] == "evil\x1b[31m" and "\\u001b" in text  # kept, as a JSON escape
    assert list(occurrences(c)) == ["/usr/bin/x\u202e"] and "\\u202e" in text


def test_names_that_are_not_unicode_text(tmp_path):
    """package.json may escape a lone surrogate; a purl is UTF-8: U+FFFD there, the name kept."""
    layer = [
        *si.dirs("usr", "usr/lib", "usr/lib/node_modules", "usr/lib/node_modules/evil"),
        M("usr/lib/node_modules/evil/package.json", b'{"name": "\\ud800evil", "version": "1.0\\udcff"}'),
    ]
    p = tmp_path / "surrogate.tar"
    p.write_bytes(si.image([layer], si.HISTORY["one"]).tar())
    doc = sbom_of(p, tmp_path)
    [c] = [c for c in doc["components"] if c["type"] == "library"]
    assert c["name"] == "\ud800evil" and c["version"] == "1.0\udcff"
    assert PackageURL.from_string(c["purl"]).name == "\ufffd\ufffd\ufffdevil"


def test_several_images_are_containers_under_the_archive(tmp_path):
    path = CORPUS / "clean" / "lantern-and-base-dockerd.docker.tar"
    if not path.exists():
        pytest.skip("shared corpus not found")
    doc = sbom_of(path, tmp_path)
    meta = doc["metadata"]["component"]
    report = analyze(str(path))
    assert meta["type"] == "file" and meta["hashes"][0]["content"] == report.input.sha256.split(":", 1)[1]
    containers = [c for c in doc["components"] if c["type"] == "container"]
    assert len(containers) == len(report.images) == 2
    deps = {d["ref"]: set(d.get("dependsOn", [])) for d in doc["dependencies"]}
    assert deps[meta["bom-ref"]] == {c["bom-ref"] for c in containers}


def test_outputs_are_checked_before_the_input_is_read(tmp_path):
    p = tmp_path / "img.tar"
    p.write_bytes(si.image(si.debian_layers(), si.HISTORY["one"]).tar())
    before = p.read_bytes()
    res = runner.invoke(app, ["scan", str(p), "--cyclonedx", str(p)])
    assert res.exit_code == 2 and "refusing to write --cyclonedx" in res.output
    res = runner.invoke(app, ["scan", str(p), "--cyclonedx", "-", "--json", "-"])
    assert res.exit_code == 2 and "both would go to stdout" in res.output
    res = runner.invoke(app, ["scan", str(p), "--cyclonedx", str(tmp_path / "s.json"), "--no-history"])
    assert res.exit_code == 2 and "--no-history" in res.output
    assert p.read_bytes() == before and not (tmp_path / "s.json").exists()


def test_stdout_sbom_is_the_only_output_and_case_is_recorded(tmp_path):
    p = tmp_path / "img.tar"
    p.write_bytes(si.image(si.debian_layers(os_release=True), si.HISTORY["one"]).tar())
    res = runner.invoke(app, ["scan", str(p), "--cyclonedx", "-", "--case", "IR-7", "--examiner", "J. Doe"])
    assert res.exit_code == 0, res.output
    doc = valid(res.stdout)
    meta = props(doc["metadata"])
    assert meta["forensics:case"] == "IR-7" and meta["forensics:examiner"] == "J. Doe"
    assert meta["forensics:input:sha256"] == "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()
    assert "pkg:deb/debian/hello@2.10-3?arch=amd64&distro=debian-12" in by_purl(doc)


def test_a_forged_tag_or_os_release_that_is_not_unicode_text(tmp_path):
    """The index's ref annotation may escape a lone surrogate, and /etc/os-release may hold
    bytes that are not UTF-8: each reaches a purl (the image's, the distro qualifier), which
    is UTF-8: U+FFFD there, not an internal error (found by the fuzz harness' exports)."""
    status = b"Package: hello\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.10-3\n\n"
    layer = [
        *si.dirs("etc", "var", "var/lib", "var/lib/dpkg"),
        M("etc/os-release", b"ID=deb\xffian\nVERSION_ID=1\xfe2\n"),
        M("var/lib/dpkg/status", status),
    ]
    img = si.image([layer], si.HISTORY["one"])
    img.ref = "\ud800reg.test/x\udcff:1\ud801"
    p = tmp_path / "surrogate-ref.tar"
    p.write_bytes(img.tar())
    assert b"\\ud800reg.test" in p.read_bytes()  # the archive's own bytes carry the escape
    doc = sbom_of(p, tmp_path)
    purl = PackageURL.from_string(doc["metadata"]["component"]["purl"])
    assert purl.type == "oci" and "\ufffd" in purl.qualifiers["repository_url"]
    [hello] = [c for c in doc["components"] if c["type"] == "library"]
    hp = PackageURL.from_string(hello["purl"])
    assert hp.name == "hello" and hp.version == "2.10-3"  # an os-release that is not text is not used


def test_names_made_only_of_blanks_and_slashes(tmp_path):
    """packageurl strips whitespace and '/' from a name and then cannot write the purl:
    a forged tag or package name made only of those gets a placeholder name in the purl,
    the component keeps the name as found (found by the fuzz harness' exports)."""
    layer = [
        *si.dirs("usr", "usr/lib", "usr/lib/node_modules", "usr/lib/node_modules/evil"),
        M("usr/lib/node_modules/evil/package.json", b'{"name": " /\\t\\u2028/ ", "version": "1.0"}'),
    ]
    img = si.image([layer], si.HISTORY["one"])
    img.ref = "\t\x0b\x0c"
    p = tmp_path / "blank-names.tar"
    p.write_bytes(img.tar())
    doc = sbom_of(p, tmp_path)
    assert PackageURL.from_string(doc["metadata"]["component"]["purl"]).name == "image"
    [c] = [c for c in doc["components"] if c["type"] == "library"]
    assert c["name"] == " /\t\u2028/ " and PackageURL.from_string(c["purl"]).name == "unnamed"
