"""`forensics explain`: the teaching entry of a code, the guided tour of an archive, and the
vocabulary document. The by-hand commands are run for real (tar, sha256sum, gzip, zstd, jq) and
must print the digests the tool states."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from forensics.explain.vocabulary import vocabulary_markdown
from forensics.findings import CODES, explain_code
from forensics.pipeline import analyze
from tests.conftest import CORPUS, ROOT, SAMPLES
from tests.hostile import Layer, M, Oci, default_layer, tar_bytes

TOOLS = ("bash", "tar", "sha256sum", "gzip", "zstd", "jq")
needs_tools = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS), reason=f"the by-hand commands need {', '.join(TOOLS)}"
)


def cli(*args: str, cwd: Path = ROOT, columns: int = 80) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "forensics", *args], capture_output=True, text=True, cwd=cwd, env=env)


def sh(command: str, cwd: Path) -> str:
    r = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, f"{command}: {r.stderr}"
    return r.stdout


def tour_checks(out: str) -> list[tuple[str, str]]:
    """(command, stated digest) for every `$` line of a tour."""
    lines = out.splitlines()
    checks = []
    for i, line in enumerate(lines):
        if line.lstrip().startswith("$ "):
            digest = lines[i + 1].split()[0]
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), lines[i + 1]
            checks.append((line.split("$ ", 1)[1], digest))
    return checks


def assert_tour_reproduces(target: str, cwd: Path, at_least: int) -> str:
    r = cli("explain", target, cwd=cwd, columns=100)
    assert r.returncode == 0, r.stderr
    checks = tour_checks(r.stdout)
    assert len(checks) >= at_least, r.stdout
    for command, digest in checks:
        got = sh(command, cwd).split()[0]
        assert "sha256:" + got == digest, f"{command} printed {got}, the tour states {digest}"
    return r.stdout


def corpus(rel: str) -> Path:
    p = CORPUS / rel
    if not p.exists():
        pytest.skip(f"{p} not found")
    return p


@needs_tools
@pytest.mark.parametrize(
    "sample",
    ["relay-forged.oci.tar", "clean.docker.tar", "clean-zstd.oci.tar"],
)
def test_every_tour_command_yields_the_stated_digest_on_the_samples(sample):
    out = assert_tour_reproduces(f"samples/{sample}", ROOT, at_least=5)
    # the whole input, index or manifest.json, config, and a blob and a diff_id per layer
    report = analyze(str(SAMPLES / sample), history=False)
    layers = sum(len(i.layers) for i in report.images)
    assert len(tour_checks(out)) >= 3 + 2 * layers - sum(
        1 for i in report.images for la in i.layers if la.compression == "none"
    )
    for img in report.images:
        assert img.config_digest in out
        for la in img.layers:
            assert la.diff_id in out and la.declared_diff_id in out


@needs_tools
@pytest.mark.parametrize(
    "rel",
    [
        "clean/lantern-skopeo.docker.tar",  # layers behind <id>/layer.tar symlinks
        "clean/mini-notes-plain-dotslash.oci-layout.tar",  # members stored as ./blobs/...
        "clean/lantern-agent-multiarch.oci.tar",  # a nested index, two platforms
        "clean/lantern-ctr-export.docker-oci.tar",  # index.json and manifest.json
        "integrity/diffid-wrong.oci.tar",
    ],
)
def test_every_tour_command_yields_the_stated_digest_on_the_corpus(rel):
    path = corpus(rel)
    assert_tour_reproduces(str(path), ROOT, at_least=4)


@needs_tools
def test_the_tour_shows_a_forged_diff_id_and_reproduces_both_values():
    path = corpus("integrity/diffid-wrong.oci.tar")
    out = assert_tour_reproduces(str(path), ROOT, at_least=4)
    report = analyze(str(path), history=False)
    [bad] = [la for la in report.images[0].layers if la.diff_id != la.declared_diff_id]
    assert f"{bad.diff_id}  DIFFERS from rootfs.diff_ids[{bad.index}]" in out
    assert f"{bad.declared_diff_id}  (rootfs.diff_ids[{bad.index}])" in out


@needs_tools
def test_tour_of_a_directory_and_of_a_compressed_archive(tmp_path):
    oci = Oci(layers=[Layer.of(default_layer(), "gzip"), Layer.of(tar_bytes([M("etc/motd", b"hi\n")]), "zstd")])
    oci.write_dir(tmp_path / "layout")
    out = assert_tour_reproduces("layout", tmp_path, at_least=5)
    assert "sha256sum layout/blobs/sha256/" in out and "zstd -dcq layout/blobs/sha256/" in out
    (tmp_path / "image.tar.gz").write_bytes(gzip.compress(oci.tar()))
    out = assert_tour_reproduces("image.tar.gz", tmp_path, at_least=6)
    assert "gzip -dc image.tar.gz | tar -xOf - " in out


@needs_tools
def test_by_hand_diffid_commands_of_the_teaching_entry_yield_both_values():
    """layer.diffid-mismatch says how to read the declared diff_id and compute the real one: on the
    corpus sample with a forged rootfs.diff_ids, those commands give exactly the two values."""
    path = corpus("integrity/diffid-wrong.oci.tar")
    report = analyze(str(path), history=False)
    img = report.images[0]
    [bad] = [la for la in img.layers if la.diff_id != la.declared_diff_id]
    assert bad.compression == "gzip"
    fill = {
        "IMAGE.tar": str(path),
        "<manifest-hex>": img.manifest_digest.split(":")[1],
        "<config-hex>": img.config_digest.split(":")[1],
        "<layer-hex>": bad.digest.split(":")[1],
        "<i>": str(bad.index),
    }
    outputs = []
    for step in explain_code("layer.diffid-mismatch")["confirm"]:
        command = step["run"]
        for k, v in fill.items():
            command = command.replace(k, v)
        outputs.append(sh(command, ROOT).split())
    listed, declared, real = outputs
    assert img.config_digest in listed and bad.digest in listed
    assert declared == [bad.declared_diff_id]
    assert "sha256:" + real[0] == bad.diff_id != bad.declared_diff_id


@needs_tools
def test_by_hand_blob_digest_command_shows_an_edited_blob(tmp_path):
    """blob.digest-mismatch: the entry's hashing command prints a digest other than the blob's name."""
    layer = Layer.of(default_layer())
    oci = Oci(layers=[layer])
    data = oci.tar()
    hexname = layer.diff_id  # placeholder to find the blob below
    hexname = [m.name for m in oci.members() if isinstance(m, M) and m.data == layer.blob][0].rsplit("/", 1)[1]
    forged = bytearray(data)
    at = data.index(layer.blob)
    forged[at + 4] ^= 1  # gzip MTIME byte: still inflates, another sha256
    (tmp_path / "IMAGE.tar").write_bytes(bytes(forged))
    [hashing] = [s["run"] for s in explain_code("blob.digest-mismatch")["confirm"] if "sha256sum" in s["run"]]
    got = sh(hashing.replace("<blob-hex>", hexname), tmp_path).split()[0]
    assert got != hexname
    report = analyze(str(tmp_path / "IMAGE.tar"), history=False)
    assert any(f.code == "blob.digest-mismatch" for f in report.findings)
    assert any(b.digest == "sha256:" + got for b in report.blobs)


def test_explain_code_prints_every_part_within_the_width():
    r = cli("explain", "layer.diffid-mismatch", columns=60)
    assert r.returncode == 0 and not r.stderr
    out = r.stdout
    for title in ("Why it matters", "How an attacker produces it", "Confirm it by hand", "Known false-positive causes"):
        assert title in out
    assert "gzip -dc | sha256sum" in out and "forensics.verify.layers" in out
    for line in out.splitlines():
        if "$ " not in line:  # a command is never wrapped: it must paste whole
            assert len(line) <= 60, line


def test_every_code_explains():
    from forensics.explain.render import render_entry

    for code in CODES:
        out = render_entry(explain_code(code), 80)
        assert out.startswith(code) and "Confirm it by hand" in out, code


@pytest.mark.parametrize(
    ("arg", "near"),
    [
        ("layer.diffid", "layer.diffid-mismatch"),
        ("blob.digest-mismatsh", "blob.digest-mismatch"),
        ("diffid", "layer.diffid-mismatch"),
    ],
)
def test_unknown_code_is_one_line_exit_2_with_the_closest_codes(arg, near):
    r = cli("explain", arg)
    assert r.returncode == 2 and not r.stdout
    assert len(r.stderr.strip().splitlines()) == 1 and near in r.stderr and "Traceback" not in r.stderr


def test_explain_refuses_stdin_and_a_non_image(tmp_path):
    r = cli("explain", "-")
    assert r.returncode == 2 and "--keep-input" in r.stderr
    (tmp_path / "plain.tar").write_bytes(tar_bytes([M("hello.txt", b"hi\n")]))
    r = cli("explain", str(tmp_path / "plain.tar"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_the_tour_escapes_the_images_text(tmp_path):
    evil = "x\x1b]52;c;ZXZpbA==\x07\nCLEAN: fake\u202e"
    oci = Oci(
        ref="example.test/a:" + evil,
        mutate_config=lambda c: c["history"][0].update(created_by="RUN " + evil),
    )
    (tmp_path / "evil.tar").write_bytes(oci.tar())
    r = cli("explain", "evil.tar", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout and "\u202e" not in r.stdout
    assert not any(line.startswith("CLEAN") for line in r.stdout.splitlines())
    assert "\\x1b]52" in r.stdout


def test_docs_findings_md_is_what_the_registry_generates():
    committed = (ROOT / "docs" / "findings.md").read_text()
    assert committed == vocabulary_markdown() + "\n", "regenerate: forensics explain --vocabulary > docs/findings.md"
    r = cli("explain", "--vocabulary")
    assert r.returncode == 0 and r.stdout == committed
    for code in CODES:
        assert f"### {code}\n" in committed


def test_readme_links_the_generated_vocabulary():
    assert "](docs/findings.md)" in (ROOT / "README.md").read_text()
