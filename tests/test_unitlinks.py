"""Service links held to the package that ships the unit, on the output of the real
deb-systemd-helper and update-rc.d (tests/data/accounts/openssh-enable.tar)."""

from __future__ import annotations

import tarfile
from pathlib import Path

from hostile import M
from test_accounts import BASE, build, etc, package

from forensics.history import unitlinks
from forensics.pipeline import analyze

DATA = Path(__file__).resolve().parent / "data" / "accounts"
SSH_LIST = ["/lib/systemd/system/ssh.service", "/lib/systemd/system/ssh.socket", "/etc/init.d/ssh"]
POSTINST = (DATA / "scripts" / "openssh-server.postinst").read_bytes()
INSTALL = "apt-get update && apt-get install -y openssh-server"


def enabled() -> list[M]:
    """What `deb-systemd-helper enable ssh.service ssh.socket` and `update-rc.d ssh defaults` wrote."""
    out, dirs = [], set()
    with tarfile.open(DATA / "openssh-enable.tar") as t:
        for ti in t.getmembers():
            parts = ti.name.rstrip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i]) + "/"
                if d not in dirs:
                    dirs.add(d)
                    out.append(M(d, type="dir"))
            if ti.isdir():
                if ti.name.rstrip("/") + "/" not in dirs:
                    dirs.add(ti.name.rstrip("/") + "/")
                    out.append(M(ti.name.rstrip("/") + "/", type="dir"))
            elif ti.issym():
                out.append(M(ti.name, type="symlink", link=ti.linkname))
            else:
                out.append(M(ti.name, t.extractfile(ti).read(), mode=ti.mode))
    return out


def step(members: list[M]) -> list[M]:
    return members + package("openssh-server", SSH_LIST, POSTINST)


def unexplained(report) -> set[str]:
    return {c.path for c in report.images[0].history[1].analysis.unexplained}


def test_real_enablement_of_the_installed_unit_is_explained(tmp_path):
    r = analyze(str(build(tmp_path, step(enabled()), INSTALL)))
    assert not unexplained(r), unexplained(r)
    assert r.verdict == "clean"


def test_links_to_units_no_package_of_the_step_ships(tmp_path):
    evil = [
        M(
            "lib/systemd/system/sync-agent.service",
            b"[Service]\nExecStart=/tmp/.x\n[Install]\nWantedBy=multi-user.target\n",
        ),
        M(
            "etc/systemd/system/multi-user.target.wants/sync-agent.service",
            type="symlink",
            link="/lib/systemd/system/sync-agent.service",
        ),
        M("var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/sync-agent.service", b""),
        M("etc/rc2.d/S01sync-agent", type="symlink", link="../init.d/sync-agent"),
        # a link named like the unit, pointing at another file
        M("etc/systemd/system/sockets.target.wants/ssh.socket", type="symlink", link="/tmp/.x/ssh.socket"),
        # an alias the unit does not declare
        M("etc/systemd/system/getty@tty9.service", type="symlink", link="/lib/systemd/system/ssh.service"),
    ]
    members = [m for m in enabled() if m.name != "etc/systemd/system/sockets.target.wants/ssh.socket"] + evil
    r = analyze(str(build(tmp_path, step(members), INSTALL)))
    assert unexplained(r) >= {
        "/etc/systemd/system/multi-user.target.wants/sync-agent.service",
        "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/sync-agent.service",
        "/etc/rc2.d/S01sync-agent",
        "/etc/systemd/system/sockets.target.wants/ssh.socket",
        "/etc/systemd/system/getty@tty9.service",
        "/lib/systemd/system/sync-agent.service",
    }
    # the genuine ones stay explained
    assert "/etc/systemd/system/sshd.service" not in unexplained(r)
    assert "/etc/rc3.d/S01ssh" not in unexplained(r)
    [f] = [f for f in r.findings if f.code == "history.unexplained-change"]
    assert f.severity.value == "high" and "persistence point" in f.detail


def test_enablement_in_a_step_that_did_not_install_the_unit(tmp_path):
    # openssh-server is already in the base; a later apt step for another package leaves ssh links.
    links = [m for m in enabled() if not m.name.startswith(("lib/", "etc/init.d/"))]
    base = etc(BASE) + package("openssh-server", SSH_LIST, POSTINST)
    layers_step = links + package("curl", ["/usr/bin/curl"], installed=("openssh-server",))
    from hostile import Layer, Oci, tar_bytes

    def mutate(cfg):
        cfg["history"] = [
            {"created_by": "/bin/sh -c #(nop) ADD file:aa in / "},
            {"created_by": "/bin/sh -c apt-get install -y curl"},
        ]

    p = tmp_path / "img.tar"
    p.write_bytes(Oci(layers=[Layer.of(tar_bytes(base)), Layer.of(tar_bytes(layers_step))], mutate_config=mutate).tar())
    r = analyze(str(p))
    assert "/etc/systemd/system/sshd.service" in unexplained(r)
    assert "/etc/systemd/system/multi-user.target.wants/ssh.service" in unexplained(r)


def test_install_section_reader():
    unit = b"[Unit]\nAlias=not-here.service\n[Install]\nWantedBy=multi-user.target\nAlias=sshd.service\n"
    got = unitlinks._install(unit)
    assert got["Alias"] == {"sshd.service"} and got["WantedBy"] == {"multi-user.target"}
    assert unitlinks._install(b"\xff\x00" * 10000) == {}
    assert unitlinks._instance_of("getty@tty1.service", "getty@.service")
    assert not unitlinks._instance_of("getty@.service", "getty@.service")


def test_runit_link_and_host_key_pubs_of_the_installed_package(tmp_path):
    sv = [
        M("etc/sv/", type="dir"),
        M("etc/sv/ssh/", type="dir"),
        M("etc/sv/ssh/run", b"#!/bin/sh\nexec sshd -D\n", mode=0o755),
    ]
    runit = [
        M("etc/runit/", type="dir"),
        M("etc/runit/runsvdir/", type="dir"),
        M("etc/runit/runsvdir/default/", type="dir"),
        M("etc/runit/runsvdir/default/ssh", type="symlink", link="/etc/sv/ssh"),
    ]
    keys = [
        M("etc/ssh/", type="dir"),
        M("etc/ssh/ssh_host_ed25519_key", b"-----BEGIN OPENSSH PRIVATE KEY-----\n"),
        M("etc/ssh/ssh_host_ed25519_key.pub", b"ssh-ed25519 AAAAC3Nza root@buildkitsandbox\n"),
        M("etc/ssh/ssh_host_backdoor.pub", b"ssh-ed25519 AAAA x\n"),
    ]
    members = enabled() + sv + runit + keys
    layer = members + package("openssh-server", SSH_LIST + ["/etc/sv/ssh/run"], POSTINST)
    r = analyze(str(build(tmp_path, layer, INSTALL)))
    assert unexplained(r) == {"/etc/ssh/ssh_host_backdoor.pub"}
    # the same runit link in a step that installs no runit service of that name
    other = [m for m in runit] + [M("etc/runit/runsvdir/default/agent", type="symlink", link="/etc/sv/agent")]
    r = analyze(str(build(tmp_path, step(other), INSTALL, name="b.tar")))
    assert "/etc/runit/runsvdir/default/agent" in unexplained(r)
    assert "/etc/runit/runsvdir/default/ssh" in unexplained(r)  # /etc/sv/ssh/run is not in the package
