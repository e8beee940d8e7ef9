"""Account files judged entry by entry, on files written by the real tools (tests/data/accounts)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile import Layer, M, Oci, tar_bytes

from forensics.history import accountcmds, accounts
from forensics.pipeline import analyze

DATA = Path(__file__).resolve().parent / "data" / "accounts"
BASE = {p.name: p.read_bytes() for p in (DATA / "base").iterdir()}
SCRIPTS = DATA / "scripts"
ROOT_HASH = b"root:$y$j9T$Cq0bOnlV3nVq3fWn3Yd6v/$Gd1m3y7J8c3n2l8oVvUQ6i2mW1oQ8l9s8O0d8fVb7G2:20789:0:99999:7:::"


def scenario(name: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (DATA / name).iterdir()}


def etc(files: dict[str, bytes]) -> list[M]:
    return [M("etc/", type="dir")] + [
        M(f"etc/{n}", d, mode=0o640 if "shadow" in n else 0o644) for n, d in sorted(files.items())
    ]


def dpkg_base() -> list[M]:
    status = b"Package: base-files\nStatus: install ok installed\nVersion: 12.4\nArchitecture: amd64\n\n"
    return [
        M("var/", type="dir"),
        M("var/lib/", type="dir"),
        M("var/lib/dpkg/", type="dir"),
        M("var/lib/dpkg/status", status),
        M("var/lib/dpkg/info/", type="dir"),
        M("var/lib/dpkg/info/base-files.list", b"/etc/os-release\n"),
    ]


def package(
    name: str,
    files: list[str],
    postinst: bytes | None = None,
    extra: list[M] | None = None,
    installed: tuple[str, ...] = (),
) -> list[M]:
    """The dpkg records an `apt-get install NAME` layer writes (`installed`: packages already there)."""
    status = b"Package: base-files\nStatus: install ok installed\nVersion: 12.4\nArchitecture: amd64\n\n" + b"".join(
        f"Package: {n}\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n".encode()
        for n in (*installed, name)
    )
    out = [
        M("var/", type="dir"),
        M("var/lib/", type="dir"),
        M("var/lib/dpkg/", type="dir"),
        M("var/lib/dpkg/status", status),
        M("var/lib/dpkg/info/", type="dir"),
        M(f"var/lib/dpkg/info/{name}.list", "".join(f + "\n" for f in files).encode()),
    ]
    if postinst is not None:
        out.append(M(f"var/lib/dpkg/info/{name}.postinst", postinst, mode=0o755))
    return out + (extra or [])


def build(tmp_path: Path, step: list[M], created_by: str, name: str = "img.tar") -> Path:
    layers = [etc(BASE) + dpkg_base(), step]
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:28e69d63bcccfcc7a8e48b0045dc41576a5a in / "},
        {"created_by": f"/bin/sh -c {created_by}"},
    ]

    def mutate(cfg):
        cfg["history"] = history

    p = tmp_path / name
    p.write_bytes(Oci(layers=[Layer.of(tar_bytes(m)) for m in layers], mutate_config=mutate).tar())
    return p


def account_findings(report, at_least: str = "low"):
    rank = ["critical", "high", "medium", "low", "info"]
    return [
        f
        for f in report.findings
        if f.code in ("history.unexplained-change", "history.effect-mismatch")
        and rank.index(f.severity.value) <= rank.index(at_least)
    ]


def explained(report, path: str) -> str | None:
    step = report.images[0].history[1].analysis
    return next((c.explained_by for c in step.explained if c.path == path), None)


def with_line(files: dict[str, bytes], name: str, old: bytes, new: bytes) -> dict[str, bytes]:
    assert old in files[name], old
    return {**files, name: files[name].replace(old, new)}


SSHD_FILES = ["/lib/systemd/system/ssh.service", "/usr/sbin/sshd"]


def sshd_step(files: dict[str, bytes]) -> list[M]:
    return etc(files) + package("openssh-server", SSHD_FILES, (SCRIPTS / "openssh-server.postinst").read_bytes())


INSTALL_SSH = "apt-get update && apt-get install -y --no-install-recommends openssh-server"


# --- clean: what the real tools write is explained -------------------------------------------


def test_useradd_m_bob_is_explained_entry_by_entry(tmp_path):
    step = etc(scenario("useradd-m-bob")) + [M("home/", type="dir"), M("home/bob/", type="dir")]
    r = analyze(str(build(tmp_path, step, "useradd -m bob")))
    assert not account_findings(r), [f.detail for f in account_findings(r)]
    assert "'bob' created by useradd (command)" in explained(r, "/etc/passwd")
    assert "shadow entry of 'bob' (locked)" in explained(r, "/etc/shadow")
    assert "subordinate ids of 'bob'" in explained(r, "/etc/subuid")
    assert "backup of /etc/passwd" in explained(r, "/etc/passwd-")


@pytest.mark.parametrize(
    "scn,pkg,user",
    [
        ("adduser-system-sshd", "openssh-server", "sshd"),
        ("adduser-system-group-redis", "redis-tools", "redis"),
    ],
)
def test_adduser_system_from_a_postinst_is_explained(tmp_path, scn, pkg, user):
    step = etc(scenario(scn)) + package(pkg, ["/usr/bin/x"], (SCRIPTS / f"{pkg}.postinst").read_bytes())
    r = analyze(str(build(tmp_path, step, f"apt-get update && apt-get install -y {pkg}")))
    assert not account_findings(r), [f.detail for f in account_findings(r)]
    assert r.verdict == "clean"
    assert f"'{user}' created by adduser (package {pkg})" in explained(r, "/etc/passwd")


def test_sysusers_snippet_of_the_package_explains_its_account(tmp_path):
    conf = (SCRIPTS / "systemd-timesync.conf").read_bytes()
    step = etc(scenario("sysusers-timesync")) + package(
        "systemd-timesyncd",
        ["/usr/lib/sysusers.d/systemd-timesync.conf"],
        (SCRIPTS / "systemd-timesyncd.postinst").read_bytes(),
        [
            M("usr/", type="dir"),
            M("usr/lib/", type="dir"),
            M("usr/lib/sysusers.d/", type="dir"),
            M("usr/lib/sysusers.d/systemd-timesync.conf", conf),
        ],
    )
    r = analyze(str(build(tmp_path, step, "apt-get install -y systemd-timesyncd")))
    assert not account_findings(r), [f.detail for f in account_findings(r)]
    assert "'systemd-timesync' created by systemd-sysusers" in explained(r, "/etc/passwd")


def test_a_login_shell_the_postinst_asks_for_is_only_low(tmp_path):
    # postgresql-common really gives its system account /bin/bash (password locked): shown, low.
    step = etc(scenario("adduser-postgres")) + package(
        "postgresql-common", ["/usr/bin/pg_lsclusters"], (SCRIPTS / "postgresql-common.postinst").read_bytes()
    )
    r = analyze(str(build(tmp_path, step, "apt-get install -y postgresql-common")))
    [f] = account_findings(r)
    assert f.severity.value == "low" and "login shell for a system account" in f.detail
    assert r.verdict == "clean"


# --- forged: each at its severity ------------------------------------------------------------


def test_root_hash_changed_beside_an_honest_useradd_is_critical(tmp_path):
    files = with_line(scenario("useradd-m-bob"), "shadow", b"root:*:20779:0:99999:7:::", ROOT_HASH)
    r = analyze(
        str(build(tmp_path, etc(files) + [M("home/", type="dir"), M("home/bob/", type="dir")], "useradd -m bob"))
    )
    [f] = account_findings(r)
    assert (f.severity.value, f.code, f.path) == ("critical", "history.unexplained-change", "/etc/shadow")
    assert "password hash of existing account 'root'" in f.detail
    assert explained(r, "/etc/passwd") is not None  # bob's lines still explained
    assert r.verdict == "tampered"


def test_root_hash_is_never_explained_by_a_package_install(tmp_path):
    files = with_line(scenario("adduser-system-sshd"), "shadow", b"root:*:20779:0:99999:7:::", ROOT_HASH)
    r = analyze(str(build(tmp_path, sshd_step(files), INSTALL_SSH)))
    [f] = account_findings(r)
    assert f.severity.value == "critical" and "'root'" in f.detail


def test_second_uid_0_in_a_package_step_is_critical(tmp_path):
    files = scenario("adduser-system-sshd")
    files = {
        **files,
        "passwd": files["passwd"] + b"toor:x:0:0::/root:/bin/bash\n",
        "shadow": files["shadow"] + b"toor:$6$rounds=5000$abc$Zx9:20789:0:99999:7:::\n",
    }
    r = analyze(str(build(tmp_path, sshd_step(files), INSTALL_SSH)))
    found = {(f.path, f.severity.value) for f in account_findings(r)}
    assert ("/etc/passwd", "critical") in found
    assert ("/etc/shadow", "high") in found  # a usable hash for an account no one creates
    [uid0] = [f for f in account_findings(r) if f.path == "/etc/passwd"]
    assert "adds user 'toor' (uid 0" in uid0.detail


def test_user_added_to_sudo_without_a_command_naming_it(tmp_path):
    # The real output of `useradd -m bob && usermod -aG sudo bob`, recorded as `useradd -m bob`.
    step = etc(scenario("useradd-bob-sudo")) + [M("home/", type="dir"), M("home/bob/", type="dir")]
    r = analyze(str(build(tmp_path, step, "useradd -m bob")))
    fs = account_findings(r)
    assert {f.severity.value for f in fs} == {"critical"}
    assert {f.code for f in fs} == {"history.effect-mismatch"}  # the command names bob, not sudo
    assert "adds 'bob' to group 'sudo'" in fs[0].detail
    assert sorted(fs[0].evidence["files"]) == ["/etc/group", "/etc/gshadow"]
    # ... and with the command that does it, nothing is left
    r = analyze(str(build(tmp_path, step, "useradd -m bob && usermod -aG sudo bob", name="honest.tar")))
    assert not account_findings(r)


def test_system_account_given_bin_bash_by_a_package_step_is_high(tmp_path):
    files = with_line(scenario("adduser-system-sshd"), "passwd", b"/run/sshd:/usr/sbin/nologin", b"/run/sshd:/bin/bash")
    r = analyze(str(build(tmp_path, sshd_step(files), INSTALL_SSH)))
    [f] = account_findings(r)
    assert (f.severity.value, f.path) == ("high", "/etc/passwd")
    assert "shell /bin/bash" in f.detail and "shell /usr/sbin/nologin" in f.detail


def test_command_named_account_with_another_uid_is_an_effect_mismatch(tmp_path):
    files = with_line(scenario("useradd-r-svc"), "passwd", b"svc:x:999:999:", b"svc:x:0:999:")
    r = analyze(str(build(tmp_path, etc(files), "useradd -r svc")))
    [f] = account_findings(r)
    assert (f.code, f.severity.value) == ("history.effect-mismatch", "critical")
    assert "adds user 'svc' (uid 0" in f.detail


def test_backup_holding_a_line_no_version_had(tmp_path):
    files = scenario("useradd-m-bob")
    files = {**files, "passwd-": files["passwd-"] + b"toor:x:0:0::/root:/bin/sh\n"}
    r = analyze(
        str(build(tmp_path, etc(files) + [M("home/", type="dir"), M("home/bob/", type="dir")], "useradd -m bob"))
    )
    [f] = account_findings(r)
    assert (f.path, f.severity.value) == ("/etc/passwd-", "critical")


def test_account_added_by_a_step_that_names_no_account(tmp_path):
    files = {**BASE, "passwd": BASE["passwd"] + b"svc:x:1001:1001::/home/svc:/bin/bash\n"}
    r = analyze(str(build(tmp_path, etc({"passwd": files["passwd"]}), "chmod 644 /etc/passwd")))
    [f] = account_findings(r)
    assert f.severity.value == "high" and "adds user 'svc'" in f.detail


def test_echo_of_a_literal_line_is_explained_but_a_different_line_is_not(tmp_path):
    line = "app:x:1001:1001::/home/app:/bin/sh"
    good = {"passwd": BASE["passwd"] + line.encode() + b"\n"}
    r = analyze(str(build(tmp_path, etc(good), f"echo '{line}' >> /etc/passwd")))
    assert not account_findings(r)
    bad = {"passwd": BASE["passwd"] + b"app:x:0:0::/root:/bin/sh\n"}
    r = analyze(str(build(tmp_path, etc(bad), f"echo '{line}' >> /etc/passwd", name="bad.tar")))
    [f] = account_findings(r)
    assert (f.code, f.severity.value) == ("history.effect-mismatch", "critical")
    assert "the command writes 'app:x:1001:1001::/home/app:/bin/sh' for 'app'" in f.detail


# --- the maintainer-script reader --------------------------------------------------------------


def test_scripts_name_their_accounts():
    scripts = {f"/var/lib/dpkg/info/{p.stem}.postinst": p.read_bytes() for p in SCRIPTS.glob("*.postinst")}
    pkgs = {p.stem for p in SCRIPTS.glob("*.postinst")}
    conf = (SCRIPTS / "systemd-timesync.conf").read_bytes()
    ent = accountcmds.entitled_by_scripts(
        scripts, pkgs, {"/usr/lib/sysusers.d/systemd-timesync.conf": conf}, lambda p: "systemd-timesyncd"
    )
    assert {"sshd", "redis", "postgres", "messagebus", "systemd-timesync"} <= set(ent.users)
    [sshd] = ent.users["sshd"]
    assert (sshd.system, sshd.shell, sshd.home, sshd.user_group) == (True, "/usr/sbin/nologin", "/run/sshd", False)
    assert ent.members[("postgres", "ssl-cert")] == "package postgresql-common"
    assert all(s.source.startswith("package ") for specs in ent.users.values() for s in specs)


def test_commands_with_variables_and_wrappers():
    ent = accountcmds.entitled_by_commands(
        [
            (
                "groupadd -r -g 1500 $G && useradd -r -u 1500 -g $G -s /sbin/nologin "
                "$U && sudo -u root sh -c 'usermod -aG docker ci'",
                {"G": "app", "U": "svc"},
            )
        ]
    )
    [svc] = ent.users["svc"]
    assert (svc.uid, svc.gid, svc.shell, svc.system) == ("1500", "app", "/sbin/nologin", True)
    assert ent.groups["app"][0].gid == "1500"
    assert ent.members[("ci", "docker")] == "command"


@pytest.mark.parametrize(
    "blob",
    [
        b"\x00\xff" * 5000,
        b":" * 100_000,
        b"root:x:0:0:" + b"a" * 200_000 + b"\n",
        b"+::::::\n",
        ("\n".join(f"u{i}:x:{i}:{i}::/:/bin/sh" for i in range(3000))).encode(),
    ],
)
def test_hostile_account_files_give_findings_not_tracebacks(tmp_path, blob):
    r = analyze(str(build(tmp_path, etc({"passwd": blob}), "useradd -m bob")))
    fs = account_findings(r)
    assert fs and len(fs) <= 2 * accounts.MAX_FINDINGS + 2  # thousands of lines: a few findings and a sum


def test_tool_names_in_argument_position_are_not_commands():
    ent = accountcmds.entitled_by_commands(
        [
            (
                "if ! getent passwd app >/dev/null; then chroot /srv/root groupadd -r app; "
                "fi; grep -q passwd /etc/nsswitch.conf",
                {},
            )
        ]
    )
    assert not ent.modify  # `getent passwd app` sets no password
    assert ent.groups["app"][0].system and "/etc/passwd" not in ent.direct


def test_a_password_set_by_a_maintainer_script_is_not_explained(tmp_path):
    # A forged postinst that asks for the password it plants: the script is in the same layer.
    script = (
        (SCRIPTS / "redis-tools.postinst")
        .read_bytes()
        .replace(b"\tadduser \\\n", b"\tuseradd -m -p '$6$x$y' -s /bin/sh maint\n\tadduser \\\n")
    )
    files = scenario("adduser-system-group-redis")
    files = {
        **files,
        "passwd": files["passwd"] + b"maint:x:1001:1001::/home/maint:/bin/sh\n",
        "group": files["group"] + b"maint:x:1001:\n",
        "gshadow": files["gshadow"] + b"maint:!::\n",
        "shadow": files["shadow"] + b"maint:$6$x$y:20789:0:99999:7:::\n",
    }
    step = etc(files) + package("redis-tools", ["/usr/bin/redis-cli"], script)
    r = analyze(str(build(tmp_path, step, "apt-get install -y redis-tools")))
    [f] = account_findings(r)
    assert (f.path, f.severity.value) == ("/etc/shadow", "high") and "usable password hash" in f.detail
