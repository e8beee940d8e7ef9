"""`forensics hashes` (hashdeep sets) and `scan --known-bad / --known-good`, on real bytes:
every row is held to the member bytes read with the standard library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CORPUS, SAMPLES
from exportutil import HOSTILE_NAMES, hostile_image, layer_members, md5, sha256, truth_layers
from typer.testing import CliRunner

from forensics.cli import app
from forensics.hashsets import HashSet, HashSetError, load, parse

FORGED = SAMPLES / "relay-forged.oci.tar"
GENUINE = SAMPLES / "relay-genuine.oci.tar"
WRAPPER = "/usr/local/bin/relayd"  # the forged sample's poisoned file: a script in place of the ELF
runner = CliRunner()


def hashes(tmp_path: Path, archive: Path, *extra: str, name: str = "set.hashdeep") -> Path:
    out = tmp_path / name
    res = runner.invoke(app, ["hashes", str(archive), "-o", str(out), "-q", *extra])
    assert res.exit_code == 0, res.output
    return out


def hashdeep_rows(path: Path) -> tuple[list[str], list[tuple[int, str, str, str]]]:
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "%%%% HASHDEEP-1.0" and lines[1] == "%%%% size,md5,sha256,filename"
    comments = [x for x in lines[2:] if x.startswith("#")]
    rows = []
    for line in lines[2:]:
        if not line or line.startswith("#"):
            continue
        size, m, s, name = line.split(",", 3)
        rows.append((int(size), m, s, name))
    return comments, rows


def test_every_layer_set_is_the_member_bytes(tmp_path):
    comments, rows = hashdeep_rows(hashes(tmp_path, FORGED, "--case", "IR-7"))
    assert comments[0].startswith("## Invoked from: ") and comments[1].startswith("## $ forensics")
    assert any("sha256:bf50ade97e5c6f31c122b7d6cb54bbbf289adfd6039c41b0cf17550f4207d71a" in c for c in comments)
    assert "## case: IR-7" in comments and comments[-1] == "##"
    layers = [layer_members(FORGED, blob) for blob in truth_layers(FORGED)]
    expected = {
        f"layer/{i}/{name}": (len(data), md5(data), sha256(data))
        for i, members in enumerate(layers)
        for name, (ti, data) in members.items()
        if ti.isfile()
    }
    got = {name: (size, m, s) for size, m, s, name in rows}
    assert got == expected  # every regular file of every layer, with its real size, md5 and sha256


def test_merged_set_and_layer_set(tmp_path):
    _, merged = hashdeep_rows(hashes(tmp_path, FORGED, "--merged"))
    names = [r[3] for r in merged]
    assert names == sorted(names) and "usr/local/bin/relayd" in names and "bin/busybox" in names
    top = layer_members(FORGED, truth_layers(FORGED)[2])
    relayd = next(r for r in merged if r[3] == "usr/local/bin/relayd")
    assert relayd[2] == sha256(top["usr/local/bin/relayd"][1])  # the wrapper: the top layer wins
    _, layer1 = hashdeep_rows(hashes(tmp_path, FORGED, "--layer", "1", name="l1.hashdeep"))
    one = layer_members(FORGED, truth_layers(FORGED)[1])
    assert {r[3]: r[2] for r in layer1} == {n: sha256(d) for n, (ti, d) in one.items() if ti.isfile()}


def test_hashdeep_round_trip_against_extracted_bytes(tmp_path):
    out = hashes(tmp_path, FORGED, "--merged")
    parsed = HashSet("--known-good")
    parse(out.read_text(), str(out), parsed)  # our own reader takes our own output
    _, rows = hashdeep_rows(out)
    assert len(parsed) == len({r[2] for r in rows})
    for size, m, s, name in rows:
        if name not in ("usr/local/bin/relayd", "etc/shadow"):
            continue
        dest = tmp_path / name.replace("/", "_")
        res = runner.invoke(app, ["extract", str(FORGED), "/" + name, "-o", str(dest), "-q"])
        assert res.exit_code == 0, res.output
        manifest = json.loads((dest / "manifest.json").read_text())
        data = (dest / manifest["file"]).read_bytes()
        assert (len(data), md5(data), sha256(data)) == (size, m, s)
        assert parsed.get(s) is not None and parsed.get(s).label == name


def test_hostile_names_forge_no_line(tmp_path):
    archive = hostile_image(tmp_path)
    _, rows = hashdeep_rows(hashes(tmp_path, archive, "--layer", "1"))
    names = {r[3] for r in rows}
    # every regular file is one row; the hardlink has its target's bytes; the symlink has none
    # (the entry named ../../escaped is not read again under a name that climbs out: left out, and said)
    assert names == {"srv/a|b", "srv/x\\ny", "srv/%41%7C", "srv/\\x1b]0;owned\\x07", "srv/hard", "srv/abs"}
    by = {r[3]: r for r in rows}
    assert by["srv/hard"][1:3] == by["srv/a|b"][1:3] == (md5(b"pipe\n"), sha256(b"pipe\n"))
    assert HOSTILE_NAMES["newline"] not in (tmp_path / "set.hashdeep").read_text()


@pytest.mark.parametrize("rel", ["attack/deb-tools-pkgfile.oci.tar", "clean/lantern-skopeo.docker.tar"])
def test_corpus_sets_are_the_member_bytes(tmp_path, rel):
    sample = CORPUS / rel
    if not sample.exists():
        pytest.skip(f"corpus sample {rel} not found")
    blobs = truth_layers(sample)
    last = len(blobs) - 1
    for n in (0, last):  # the base (md5s taken in the pass on a dpkg system) and the top layer
        _, rows = hashdeep_rows(hashes(tmp_path, sample, "--layer", str(n), name=f"l{n}.hashdeep"))
        members = layer_members(sample, blobs[n])
        files = {name: data for name, (ti, data) in members.items() if ti.isfile() and "/.wh." not in "/" + name}
        links = {name for name, (ti, _) in members.items() if ti.islnk()}
        got = {r[3]: (r[0], r[1], r[2]) for r in rows}
        assert set(got) == set(files) | (links & set(got))
        for name, data in files.items():
            assert got[name] == (len(data), md5(data), sha256(data)), name
    _, merged = hashdeep_rows(hashes(tmp_path, sample, "--merged"))
    assert len(merged) >= 10 and all(len(r[1]) == 32 and len(r[2]) == 64 for r in merged)


# ---------------------------------------------------------------- --known-bad / --known-good


def scan_json(tmp_path: Path, archive: Path, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["scan", str(archive), "--json", str(out), "-q", "--no-ignore", *extra])
    return res.exit_code, json.loads(out.read_text())


def test_known_bad_raises_on_the_poisoned_file(tmp_path):
    top = layer_members(FORGED, truth_layers(FORGED)[2])
    bad = tmp_path / "bad.txt"
    bad.write_text(f"# implants seen in IR-7\n\n{sha256(top[WRAPPER[1:]][1])}  relayd-wrapper\n")
    code, report = scan_json(tmp_path, FORGED, "--known-bad", str(bad))
    assert code == 1
    [hit] = [f for f in report["findings"] if f["code"] == "file.known-bad"]
    assert (hit["severity"], hit["layer"], hit["path"]) == ("high", 2, WRAPPER)
    assert hit["evidence"]["set"] == f"{bad}:3" and hit["evidence"]["label"] == "relayd-wrapper"
    assert hit["digest"] == "sha256:" + sha256(top[WRAPPER[1:]][1])
    # the genuine image holds other bytes there: nothing is raised, the verdict stays clean
    code, genuine = scan_json(tmp_path, GENUINE, "--known-bad", str(bad))
    assert code == 0 and not [f for f in genuine["findings"] if f["code"] == "file.known-bad"]


def test_known_bad_sees_a_file_a_later_layer_deletes(tmp_path):
    from hostile import M, image_tar

    archive = image_tar(
        tmp_path,
        [[M("tmp/", type="dir"), M("tmp/miner", b"MINER" * 100, mode=0o755)], [M("tmp/.wh.miner")]],
        [
            {"created": "2023-11-14T22:13:20Z", "created_by": "/bin/sh -c #(nop) ADD file:x in /"},
            {"created": "2023-11-14T22:13:21Z", "created_by": "/bin/sh -c rm /tmp/miner"},
        ],
    )
    bad = tmp_path / "bad.txt"
    bad.write_text(sha256(b"MINER" * 100) + "\n")
    code, report = scan_json(tmp_path, archive, "--known-bad", str(bad))
    assert code == 1
    assert [(f["layer"], f["path"]) for f in report["findings"] if f["code"] == "file.known-bad"] == [(0, "/tmp/miner")]


def test_known_good_counts_as_verified_and_hides_no_finding(tmp_path):
    code0, plain = scan_json(tmp_path, FORGED)
    good = hashes(tmp_path, GENUINE, "--merged", name="genuine.hashdeep")  # the genuine image's files
    code1, with_good = scan_json(tmp_path, FORGED, "--known-good", str(good))
    before, after = plain["images"][0]["coverage"], with_good["images"][0]["coverage"]
    assert before["verified_known_good"]["files"] == 0
    assert after["verified_known_good"]["files"] > 0
    assert after["files"] == before["files"]
    moved = after["verified_known_good"]["files"]
    assert after["unverifiable"]["files"] + after["verified_same_step"]["files"] + moved == (
        before["unverifiable"]["files"] + before["verified_same_step"]["files"]
    )
    assert after["unexplained"] == before["unexplained"]  # the wrapper stays unexplained
    assert [f["id"] for f in with_good["findings"]] == [f["id"] for f in plain["findings"]]
    assert code0 == code1 == 1
    res = runner.invoke(app, ["scan", str(FORGED), "--known-good", str(good), "--no-ignore"])
    assert "a --known-good set" in " ".join(res.output.split())


def test_malformed_sets_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("0" * 64 + " ok\nnot-a-digest here\n")
    res = runner.invoke(app, ["scan", str(FORGED), "--known-bad", str(bad)])
    assert res.exit_code == 2
    [line] = res.output.strip().splitlines()
    assert line.startswith(f"forensics: error: {bad}:2: expected `<sha256> [label]`")
    hd = tmp_path / "sha1.hashdeep"
    hd.write_text("%%%% HASHDEEP-1.0\n%%%% size,sha1,filename\n## x\n1,da39,a\n")
    with pytest.raises(HashSetError, match=r"sha1.hashdeep:2: hashdeep columns .* hold no sha256"):
        load("--known-good", [str(hd)])
    hd.write_text("%%%% HASHDEEP-1.0\n%%%% size,md5,sha256,filename\n5,x," + "f" * 63 + ",a\n")
    with pytest.raises(HashSetError, match=r":3: not a sha256"):
        load("--known-good", [str(hd)])
    res = runner.invoke(app, ["scan", str(FORGED), "--known-good", str(tmp_path / "absent")])
    assert res.exit_code == 2 and "no such file" in res.output


def test_hashes_refusals(tmp_path):
    res = runner.invoke(app, ["hashes", str(FORGED), "--layer", "0", "--merged"])
    assert res.exit_code == 2 and "exclude each other" in res.output
    res = runner.invoke(app, ["hashes", str(FORGED), "--layer", "7"])
    assert res.exit_code == 2 and "3 layer(s)" in res.output
    res = runner.invoke(app, ["hashes", "-"])
    assert res.exit_code == 2 and "not stdin" in res.output


def test_every_layer_names_are_prefixed_even_for_one_layer(tmp_path):
    from hostile import M, image_tar

    archive = image_tar(
        tmp_path, [[M("etc/", type="dir"), M("etc/motd", b"hi\n")]], [{"created": "2023-11-14T22:13:20Z"}]
    )
    _, every = hashdeep_rows(hashes(tmp_path, archive))
    _, layer0 = hashdeep_rows(hashes(tmp_path, archive, "--layer", "0", name="l0.hashdeep"))
    assert [r[3] for r in every] == ["layer/0/etc/motd"] and [r[3] for r in layer0] == ["etc/motd"]
    assert every[0][:3] == layer0[0][:3] == (3, md5(b"hi\n"), sha256(b"hi\n"))


def test_a_filename_with_a_form_feed_or_line_separator_is_one_line(tmp_path):
    """hashdeep writes a filename as the filesystem holds it; Linux allows \\f, \\x1c-\\x1e, NEL
    and U+2028 in a name, which str.splitlines() would take as line ends: the set must load
    and a later bad line be named by its real (\\n-counted) number."""
    top = layer_members(FORGED, truth_layers(FORGED)[2])
    digest = sha256(top[WRAPPER[1:]][1])
    hd = tmp_path / "odd.hashdeep"
    head = "%%%% HASHDEEP-1.0\n%%%% size,md5,sha256,filename\n## Invoked from: /mnt\n"
    row = f"{len(top[WRAPPER[1:]][1])},{'0' * 32},{digest},/mnt/a\x0cb\x1cc\x1dd\x1ee\x85f\u2028g\u2029h,i\n"
    hd.write_bytes((head + row).encode())
    code, report = scan_json(tmp_path, FORGED, "--known-bad", str(hd))
    assert code == 1
    [hit] = [f for f in report["findings"] if f["code"] == "file.known-bad"]
    assert hit["evidence"]["set"] == f"{hd}:4" and hit["evidence"]["label"].startswith("/mnt/a")
    hd.write_bytes((head + row + "5,x,nothex,/mnt/z\n").encode())
    with pytest.raises(HashSetError, match=r"odd.hashdeep:5: not a sha256"):
        load("--known-bad", [str(hd)])
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(f"# made on Windows\r\n{digest} *wrapper\r\n".encode())
    assert load("--known-bad", [str(crlf)]).get(digest).label == "wrapper"
