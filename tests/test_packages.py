"""Package-database parsers: real formats, real corpus bytes, hostile input."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import shutil
import sqlite3
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from forensics.packages import (
    PackageDB,
    is_bookkeeping_path,
    is_db_path,
    parse_apk,
    parse_dpkg,
    parse_package_dbs,
    parse_rpmdb_sqlite,
)
from forensics.packages.rpm import BDB_UNSUPPORTED, parse_header, parse_header_blobs

CORPUS_DPKG = Path("/work/shared/corpus/attack/deb-tools-pkgfile.oci.tar")


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def files_of(db: PackageDB, name: str) -> dict:
    (pkg,) = [p for p in db.packages if p.name == name]
    return {f.path: f for f in pkg.files}


# --------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "path",
    [
        "/var/lib/dpkg/status",
        "/var/lib/dpkg/status.d/base",
        "/var/lib/dpkg/status.d/libssl3.md5sums",
        "/var/lib/dpkg/info/gzip.list",
        "/var/lib/dpkg/info/libc6:amd64.md5sums",
        "/var/lib/dpkg/info/base-files.conffiles",
        "/var/lib/dpkg/diversions",
        "/lib/apk/db/installed",
        "/usr/lib/apk/db/installed",
        "/var/lib/rpm/rpmdb.sqlite",
        "/usr/lib/sysimage/rpm/rpmdb.sqlite",
        "/usr/share/rpm/rpmdb.sqlite",
        "/var/lib/rpm/Packages",
        "/usr/lib/sysimage/rpm/Packages.db",
    ],
)
def test_is_db_path_true(path):
    assert is_db_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "/var/lib/dpkg/status-old",
        "/var/lib/dpkg/available",
        "/var/lib/dpkg/info/gzip.postinst",
        "/var/lib/dpkg/info/sub/gzip.list",
        "/var/lib/dpkg/status.d/sub/x",
        "/lib/apk/db/scripts.tar",
        "/var/lib/rpm/Basenames",
        "/var/lib/rpm/rpmdb.sqlite-shm",
        "/srv/var/lib/dpkg/status",
        "/usr/bin/zgrep",
    ],
)
def test_is_db_path_false(path):
    assert not is_db_path(path)


def test_bookkeeping_paths():
    assert is_bookkeeping_path("/var/lib/dpkg/info/gzip.list", ["dpkg"])
    assert is_bookkeeping_path("/var/lib/dpkg", ["dpkg"])  # the directory entry itself
    assert is_bookkeeping_path("/var/cache/apt/pkgcache.bin", ["apt"])  # alias
    assert is_bookkeeping_path("/etc/ld.so.cache", ["dnf"])
    assert is_bookkeeping_path("/var/log/dnf.librepo.log", ["rpm"])
    assert is_bookkeeping_path("/usr/lib/python3.11/__pycache__/os.cpython-311.pyc", ["pip"])
    assert is_bookkeeping_path("/app/x.pyc", ["pip"])
    assert is_bookkeeping_path("/usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/RECORD", ["pip"])
    assert is_bookkeeping_path("/root/.npm/_cacache/index-v5/aa", ["npm"])
    assert is_bookkeeping_path("/lib/apk/db/installed", None)
    # Wrong manager, package content, lookalikes.
    assert not is_bookkeeping_path("/var/lib/dpkg/status", ["apk"])
    assert not is_bookkeeping_path("/usr/bin/zgrep", None)
    assert not is_bookkeeping_path("/usr/share/doc/gzip/copyright", ["dpkg"])
    assert not is_bookkeeping_path("/var/lib/dpkgx/status", ["dpkg"])
    assert not is_bookkeeping_path("/var/log/dpkg.log.1", ["dpkg"])
    assert not is_bookkeeping_path("/usr/lib/python3/site-packages/evil.py", ["pip"])
    assert not is_bookkeeping_path("/etc/ld.so.cache", ["npm", "unknown"])


# ---------------------------------------------------------------------- dpkg

LIBC_SO = b"\x7fELF libc.so.6 pretend content\n"
ZGREP = b"#!/bin/sh\n# zgrep\n"
HOSTNAME_BIN = b"\x7fELF hostname\n"
DEBIAN_VERSION = b"12.5\n"

STATUS = f"""Package: base-files
Essential: yes
Status: install ok installed
Priority: required
Architecture: amd64
Version: 12.4+deb12u5
Conffiles:
 /etc/debian_version {md5(DEBIAN_VERSION)}
 /etc/host.conf 4eb63731c9f5e30903ac4fc07a7fe3d6
 /etc/old.conf 0123456789abcdef0123456789abcdef obsolete
 /etc/fresh.conf newconffile
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.
 .
 It also contains the file /etc/old.conf 0123 that is not a conffile.

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries

Package: hostname
Status: deinstall ok config-files
Architecture: amd64
Version: 3.23+nmu1
Conffiles:
 /etc/hostname.conf 11111111111111111111111111111111

Package: gzip
Status: install ok triggers-pending
Architecture: amd64
Version: 1.12-1
"""

DPKG_FILES = {
    "/var/lib/dpkg/status": STATUS.encode(),
    "/var/lib/dpkg/info/libc6:amd64.list": b"/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libc.so.6\n",
    "/var/lib/dpkg/info/libc6:amd64.md5sums": f"{md5(LIBC_SO)}  lib/x86_64-linux-gnu/libc.so.6\n".encode(),
    # A plain libc6.md5sums must lose to the :amd64 one (stale leftover).
    "/var/lib/dpkg/info/libc6.md5sums": f"{'0' * 32}  lib/x86_64-linux-gnu/libc.so.6\n".encode(),
    "/var/lib/dpkg/info/base-files.list": b"/.\n/etc\n/etc/debian_version\n/etc/host.conf\n/usr/share/doc/base-files/README\n",
    "/var/lib/dpkg/info/base-files.md5sums": (
        # single space and absolute path are tolerated; the junk line is an error
        f"{md5(b'readme')} /usr/share/doc/base-files/README\nthis is junk\n"
    ).encode(),
    "/var/lib/dpkg/info/base-files.conffiles": b"/etc/debian_version\n/etc/host.conf\n",
    "/var/lib/dpkg/info/hostname.list": b"/.\n/bin\n/bin/hostname\n",
    "/var/lib/dpkg/info/hostname.md5sums": f"{md5(HOSTNAME_BIN)}  bin/hostname\n".encode(),
    "/var/lib/dpkg/info/gzip.list": b"/.\n/bin\n/bin/zgrep\n/bin/sh\n",
    "/var/lib/dpkg/info/gzip.md5sums": f"{md5(ZGREP)}  bin/zgrep\n{'a' * 32}  bin/sh".encode(),  # no final newline
    # gzip's /bin/sh (invented) is diverted locally to /bin/sh.distrib.
    "/var/lib/dpkg/diversions": b"/bin/sh\n/bin/sh.distrib\n:\n",
}


def check_dpkg_db(db: PackageDB) -> None:
    names = sorted(p.name for p in db.packages)
    assert names == ["base-files", "gzip", "libc6"]  # hostname is only config-files

    libc = files_of(db, "libc6")
    assert libc["/lib/x86_64-linux-gnu/libc.so.6"].digest == md5(LIBC_SO)
    assert libc["/lib/x86_64-linux-gnu/libc.so.6"].algo == "md5"
    assert libc["/lib"].digest is None  # listed, owned, no digest
    assert "/" not in libc
    (pkg,) = [p for p in db.packages if p.name == "libc6"]
    assert pkg.arch == "amd64" and pkg.version == "2.36-9+deb12u4"
    assert "/var/lib/dpkg/info/libc6:amd64.md5sums" in pkg.source_paths

    base = files_of(db, "base-files")
    assert base["/etc/debian_version"].is_config and base["/etc/debian_version"].digest == md5(DEBIAN_VERSION)
    assert base["/etc/old.conf"].is_config and base["/etc/old.conf"].obsolete
    assert base["/etc/old.conf"].digest == "0123456789abcdef0123456789abcdef"
    assert base["/etc/fresh.conf"].is_config and base["/etc/fresh.conf"].digest is None
    assert not base["/etc/host.conf"].obsolete
    assert base["/usr/share/doc/base-files/README"].digest == md5(b"readme")
    assert not base["/usr/share/doc/base-files/README"].is_config

    gz = files_of(db, "gzip")
    assert gz["/bin/zgrep"].digest == md5(ZGREP)
    assert "/bin/sh" not in gz and gz["/bin/sh.distrib"].digest == "a" * 32

    owners = db.file_owners()
    assert owners["/bin/zgrep"].name == "gzip"
    assert "/bin/hostname" not in owners
    assert any("this is junk" in e or "base-files.md5sums:2" in e for e in db.errors)


def test_dpkg_status_and_info():
    check_dpkg_db(parse_dpkg(DPKG_FILES))


def test_dpkg_crlf():
    crlf = {p: d.replace(b"\n", b"\r\n") for p, d in DPKG_FILES.items()}
    check_dpkg_db(parse_dpkg(crlf))


def test_dpkg_junk_status_lines_recorded():
    status = b"garbage line\nPackage: a\nStatus: install ok installed\n weird\nVersion: 1\n\n \n"
    db = parse_dpkg({"/var/lib/dpkg/status": status, "/var/lib/dpkg/info/a.md5sums": b"%s  x\n" % md5(b"").encode()})
    assert [p.name for p in db.packages] == ["a"]
    assert files_of(db, "a")["/x"].digest == md5(b"")
    assert any("not a field line" in e for e in db.errors)


def test_dpkg_distroless_status_d():
    files = {
        "/var/lib/dpkg/status.d/base": b"Package: base-files\nVersion: 12.4\nArchitecture: amd64\n",
        "/var/lib/dpkg/status.d/base.md5sums": f"{md5(DEBIAN_VERSION)}  etc/debian_version\n".encode(),
        "/var/lib/dpkg/status.d/libssl3": b"Package: libssl3\nVersion: 3.0.11\nArchitecture: amd64\n",
        "/var/lib/dpkg/status.d/libssl3.md5sums": f"{md5(b'ssl')}  usr/lib/x86_64-linux-gnu/libssl.so.3\n".encode(),
    }
    db = parse_dpkg(files)
    assert files_of(db, "base-files")["/etc/debian_version"].digest == md5(DEBIAN_VERSION)
    assert files_of(db, "libssl3")["/usr/lib/x86_64-linux-gnu/libssl.so.3"].digest == md5(b"ssl")
    (pkg,) = [p for p in db.packages if p.name == "base-files"]
    assert pkg.source_path == "/var/lib/dpkg/status.d/base"
    assert not db.errors


def _oci_layers(archive: Path):
    """Yield the layer tars of an OCI archive as in-memory tarfile streams."""
    import zstandard

    with tarfile.open(archive) as outer:
        index = json.load(outer.extractfile("index.json"))
        digest = index["manifests"][0]["digest"].split(":", 1)[1]
        manifest = json.load(outer.extractfile(f"blobs/sha256/{digest}"))
        for layer in manifest["layers"]:
            raw = outer.extractfile("blobs/sha256/" + layer["digest"].split(":", 1)[1]).read()
            if raw[:4] == b"\x28\xb5\x2f\xfd":
                data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
            elif raw[:2] == b"\x1f\x8b":
                data = gzip.decompress(raw)
            else:
                data = raw
            yield tarfile.open(fileobj=io.BytesIO(data))


@pytest.mark.skipif(not CORPUS_DPKG.exists(), reason=f"corpus sample {CORPUS_DPKG} missing")
def test_dpkg_corpus_image_finds_gzip_zgrep():
    db_files: dict[str, bytes] = {}
    zgrep_versions: list[bytes] = []
    for layer in _oci_layers(CORPUS_DPKG):
        for m in layer.getmembers():
            path = "/" + m.name.lstrip("./")
            if m.isfile() and is_db_path(path):
                db_files[path] = layer.extractfile(m).read()  # later layers win
            if m.isfile() and path == "/usr/bin/zgrep":  # bin -> usr/bin (merged /usr)
                zgrep_versions.append(layer.extractfile(m).read())

    (db,) = parse_package_dbs(db_files)
    assert db.manager == "dpkg" and not db.errors
    assert len(db.packages) > 50
    owner = db.file_owners()["/bin/zgrep"]
    assert owner.name == "gzip"
    entry = next(f for f in owner.files if f.path == "/bin/zgrep")
    assert entry.algo == "md5"
    # The base layer ships zgrep as recorded; the later RUN appended a hook.
    assert len(zgrep_versions) == 2
    assert entry.digest == md5(zgrep_versions[0])
    assert entry.digest != md5(zgrep_versions[-1])


# ----------------------------------------------------------------------- apk


def q1(digest: bytes) -> str:
    return "Q1" + base64.b64encode(digest).decode()


BUSYBOX = b"\x7fELF busybox\n"
SSL_CNF = b"# openssl.cnf\n"
LIBCRYPTO = b"\x7fELF libcrypto\n"
SECURETTY = b"console\n"


def apk_db() -> bytes:
    return f"""C:Q1abcdefabcdefabcdefabcdefabcd=
P:busybox
V:1.36.1-r15
A:x86_64
S:509235
I:937984
T:Size optimized toolbox of many common UNIX utilities
F:bin
R:busybox
a:0:0:755
Z:{q1(hashlib.sha1(BUSYBOX).digest())}
R:sh
a:0:0:777
Z:{q1(hashlib.sha1(b"/bin/busybox").digest())}
F:etc
R:securetty
Z:Q2{base64.b64encode(hashlib.sha256(SECURETTY).digest()).decode()}
R:broken
Z:Q1notbase64!!

P:libcrypto3
V:3.3.2-r0
A:x86_64
F:etc/ssl
R:openssl.cnf
Z:{q1(hashlib.sha256(SSL_CNF).digest()[:20])}
F:usr/lib
R:libcrypto.so.3
a:0:0:755
Z:{q1(hashlib.sha256(LIBCRYPTO).digest()[:20])}
f:S
""".encode()


def test_apk_digests_and_algos():
    db = parse_apk(apk_db(), "/lib/apk/db/installed")
    assert [(p.name, p.version, p.arch) for p in db.packages] == [
        ("busybox", "1.36.1-r15", "x86_64"),
        ("libcrypto3", "3.3.2-r0", "x86_64"),
    ]
    bb = files_of(db, "busybox")
    assert bb["/bin/busybox"].digest == hashlib.sha1(BUSYBOX).hexdigest()
    assert bb["/bin/busybox"].algo == "sha1" and bb["/bin/busybox"].mode == 0o755
    assert bb["/bin/sh"].digest == hashlib.sha1(b"/bin/busybox").hexdigest()  # link target
    assert bb["/etc/securetty"].algo == "sha256"
    assert bb["/etc/securetty"].digest == hashlib.sha256(SECURETTY).hexdigest()
    assert bb["/etc/broken"].digest is None
    assert any("bad Z" in e and "/etc/broken" in e for e in db.errors)

    # f:S comes after the files: the algorithm must still be sha256-160.
    lc = files_of(db, "libcrypto3")
    assert lc["/etc/ssl/openssl.cnf"].algo == "sha256-160"
    assert lc["/etc/ssl/openssl.cnf"].digest == hashlib.sha256(SSL_CNF).hexdigest()[:40]
    assert lc["/usr/lib/libcrypto.so.3"].digest == hashlib.sha256(LIBCRYPTO).hexdigest()[:40]
    assert db.file_owners()["/usr/lib/libcrypto.so.3"].name == "libcrypto3"
    assert db.packages[0].source_path == "/lib/apk/db/installed"


def test_apk_crlf_and_junk():
    data = apk_db().replace(b"\n", b"\r\n") + b"\r\nnonsense\r\nR:orphan\r\n"
    db = parse_apk(data, "/usr/lib/apk/db/installed")
    assert files_of(db, "libcrypto3")["/usr/lib/libcrypto.so.3"].algo == "sha256-160"
    assert any("not a `X:value` line" in e for e in db.errors)
    assert any("without P:" in e for e in db.errors)


def test_apk_via_dispatch():
    (db,) = parse_package_dbs({"/lib/apk/db/installed": apk_db(), "/etc/passwd": b"root:x:0:0"})
    assert db.manager == "apk" and len(db.packages) == 2


# ----------------------------------------------------------------------- rpm

RPM_TYPES = {"char": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "string": 6, "bin": 7, "strarray": 8, "i18n": 9}
_FMT = {3: "H", 4: "I", 5: "Q"}
_ALIGN = {3: 2, 4: 4, 5: 8}


def rpm_header(entries: list[tuple[int, str, object]], dribble: list[tuple[int, str, object]] = ()) -> bytes:
    """Serialize an rpm header image (il, dl, index, data) with an immutable region.

    `entries` go inside the HEADERIMMUTABLE (63) region, `dribble` after it, as rpm
    does for tags it adds at install time.
    """
    data = bytearray()
    index: list[tuple[int, int, int, int]] = []

    def put(tag: int, kind: str, value) -> None:
        typ = RPM_TYPES[kind]
        while len(data) % _ALIGN.get(typ, 1):
            data.append(0)
        off = len(data)
        if typ in (6,):
            data.extend(value.encode() + b"\0")
            count = 1
        elif typ in (8, 9):
            for s in value:
                data.extend(s.encode() + b"\0")
            count = len(value)
        elif typ in (1, 2, 7):
            data.extend(bytes(value))
            count = len(value)
        else:
            data.extend(struct.pack(f">{len(value)}{_FMT[typ]}", *value))
            count = len(value)
        index.append((tag, typ, off, count))

    for e in entries:
        put(*e)
    ril = len(index) + 1
    trailer_off = len(data)
    data.extend(struct.pack(">iIiI", 63, 7, -16 * ril, 16))
    for e in dribble:
        put(*e)
    index.insert(0, (63, 7, trailer_off, 16))
    out = struct.pack(">ii", len(index), len(data))
    out += b"".join(struct.pack(">iIiI", *e) for e in index)
    return out + bytes(data)


BASH_BIN = b"\x7fELF bash\n"
BASHRC = b"# bashrc\n"


def bash_header() -> bytes:
    sha = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    return rpm_header(
        [
            (1000, "string", "bash"),
            (1001, "string", "5.2.26"),
            (1002, "string", "3.fc40"),
            (1003, "int32", [1]),
            (1022, "string", "x86_64"),
            (1028, "int32", [1234, 0, 4, 9, 0, 100]),
            (1030, "int16", [0o100755, 0o40755, 0o120777, 0o100644, 0o100644, 0o100644]),
            (1035, "strarray", [sha(BASH_BIN), "", "", sha(BASHRC), "", sha(b"doc")]),
            (1036, "strarray", ["", "", "bash", "", "", ""]),
            (1037, "int32", [0, 0, 0, 1 | 16, 64, 2]),
            (1116, "int32", [0, 1, 0, 2, 3, 4]),
            (1117, "strarray", ["bash", "bash", "sh", "bashrc", "bash.log", "README"]),
            (1118, "strarray", ["/usr/bin/", "/usr/share/doc/", "/etc/", "/var/log/", "/usr/share/doc/bash/"]),
            (5011, "int32", [8]),
        ],
        # Install-time states: README was excluded (--excludedocs).
        dribble=[(1029, "char", [0, 0, 0, 0, 0, 2])],
    )


def md5_header() -> bytes:
    return rpm_header(
        [
            (1000, "string", "old-tool"),
            (1001, "string", "1.0"),
            (1002, "string", "1.el7"),
            (1022, "string", "noarch"),
            (1030, "int16", [0o100644]),
            (1035, "strarray", [md5(b"tool")]),
            (1116, "int32", [0]),
            (1117, "strarray", ["tool.txt"]),
            (1118, "strarray", ["/opt/"]),
        ]
    )


def make_rpmdb(path: Path, blobs: list[bytes]) -> bytes:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
    conn.executemany("INSERT INTO Packages (blob) VALUES (?)", [(b,) for b in blobs])
    conn.commit()
    conn.close()
    return path.read_bytes()


def test_rpm_header_parse_direct():
    h = parse_header(bash_header())
    assert h[1000] == "bash" and h[5011] == [8] and h[1029] == [0, 0, 0, 0, 0, 2]


def test_rpm_sqlite(tmp_path):
    truncated = bash_header()[:-40]
    data = make_rpmdb(tmp_path / "rpmdb.sqlite", [bash_header(), truncated, b"\x00\x00", md5_header()])
    db = parse_rpmdb_sqlite(data, "/usr/lib/sysimage/rpm/rpmdb.sqlite")
    assert [(p.name, p.version, p.arch) for p in db.packages] == [
        ("bash", "1:5.2.26-3.fc40", "x86_64"),
        ("old-tool", "1.0-1.el7", "noarch"),
    ]
    assert len(db.errors) == 2 and all("malformed header" in e for e in db.errors)

    f = files_of(db, "bash")
    assert f["/usr/bin/bash"].digest == hashlib.sha256(BASH_BIN).hexdigest()
    assert f["/usr/bin/bash"].algo == "sha256" and f["/usr/bin/bash"].mode == 0o100755
    assert f["/usr/share/doc/bash"].digest is None and f["/usr/share/doc/bash"].algo is None
    assert f["/usr/bin/sh"].link_target == "bash" and f["/usr/bin/sh"].digest is None
    assert f["/etc/bashrc"].is_config and f["/etc/bashrc"].verifiable
    assert f["/var/log/bash.log"].ghost and not f["/var/log/bash.log"].verifiable
    assert f["/usr/share/doc/bash/README"].not_installed
    assert not f["/usr/bin/bash"].not_installed

    old = files_of(db, "old-tool")
    assert old["/opt/tool.txt"].algo == "md5" and old["/opt/tool.txt"].digest == md5(b"tool")
    assert db.file_owners()["/opt/tool.txt"].name == "old-tool"


def test_rpm_sqlite_wal_applied(tmp_path):
    path = tmp_path / "rpmdb.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("INSERT INTO Packages (blob) VALUES (?)", (md5_header(),))
    conn.commit()
    main, wal = path.read_bytes(), (tmp_path / "rpmdb.sqlite-wal").read_bytes()
    conn.close()
    assert len(wal) > 0
    assert parse_rpmdb_sqlite(main, "/var/lib/rpm/rpmdb.sqlite").packages == []
    dbs = parse_package_dbs({"/var/lib/rpm/rpmdb.sqlite": main, "/var/lib/rpm/rpmdb.sqlite-wal": wal})
    assert len(dbs) == 1 and [p.name for p in dbs[0].packages] == ["old-tool"]


def test_rpm_bad_inputs(tmp_path):
    db = parse_rpmdb_sqlite(b"this is not a database at all", "/var/lib/rpm/rpmdb.sqlite")
    assert db.packages == [] and "not an SQLite database" in db.errors[0]

    db = parse_rpmdb_sqlite(b"SQLite format 3\x00" + bytes(range(256)) * 20, "/x/rpmdb.sqlite")
    assert db.packages == [] and "sqlite error" in db.errors[0]

    conn = sqlite3.connect(tmp_path / "other.sqlite")
    conn.execute("CREATE TABLE Names (key TEXT)")
    conn.commit()
    conn.close()
    db = parse_rpmdb_sqlite((tmp_path / "other.sqlite").read_bytes(), "/x/rpmdb.sqlite")
    assert "no Packages table" in db.errors[0]

    conn = sqlite3.connect(tmp_path / "view.sqlite")
    conn.execute("CREATE TABLE t (blob BLOB)")
    conn.execute("CREATE VIEW Packages AS SELECT blob FROM t")
    conn.commit()
    conn.close()
    db = parse_rpmdb_sqlite((tmp_path / "view.sqlite").read_bytes(), "/x/rpmdb.sqlite")
    assert "no Packages table" in db.errors[0]

    (db,) = parse_package_dbs({"/var/lib/rpm/Packages": b"\x00\x06\x15\x61" * 100})
    assert db.manager == "rpm" and BDB_UNSUPPORTED in db.errors[0]


def test_rpm_header_bounds():
    good = bash_header()
    il = struct.unpack(">i", good[:4])[0]
    cases = {
        "negative il": struct.pack(">ii", -1, 0),
        "huge il": struct.pack(">ii", 10**6, 0) + good[8:],
        "dl past end": good[:4] + struct.pack(">i", len(good)) + good[8:],
        "short": good[:5],
        # NAME entry (index 1) offset pointing outside the data
        "bad offset": good[:24] + struct.pack(">iIiI", 1000, 6, 10**6, 1) + good[40:],
        # NAME offset negative: would read the index region as a string
        "negative offset": good[:24] + struct.pack(">iIiI", 1000, 6, -40, 1) + good[40:],
        # BASENAMES claims more strings than the data holds
        "bad count": _patch_count(good, 1117, 10**5),
    }
    db = parse_header_blobs(list(cases.values()) + [good], "/var/lib/rpm/rpmdb.sqlite")
    assert [p.name for p in db.packages] == ["bash"]
    assert len(db.errors) == len(cases)
    assert all("malformed header" in e for e in db.errors), db.errors
    assert il > 10


def _patch_count(blob: bytes, tag: int, count: int) -> bytes:
    il = struct.unpack(">i", blob[:4])[0]
    out = bytearray(blob)
    for i in range(il):
        t, typ, off, _ = struct.unpack_from(">iIiI", blob, 8 + 16 * i)
        if t == tag:
            struct.pack_into(">iIiI", out, 8 + 16 * i, t, typ, off, count)
    return bytes(out)


DEMO_SPEC = """Name: demo
Version: 1.2
Release: 3
Epoch: 2
Summary: demo
License: MIT
BuildArch: noarch

%description
demo

%install
mkdir -p %{buildroot}/usr/bin %{buildroot}/etc %{buildroot}/usr/share/doc/demo
printf '#!/bin/sh\\necho demo\\n' > %{buildroot}/usr/bin/demo
ln -s demo %{buildroot}/usr/bin/demo-link
printf 'key=value\\n' > %{buildroot}/etc/demo.conf
printf 'readme\\n' > %{buildroot}/usr/share/doc/demo/README

%files
%attr(0755,root,root) /usr/bin/demo
/usr/bin/demo-link
%config(noreplace) /etc/demo.conf
%doc /usr/share/doc/demo/README
%ghost /var/log/demo.log
"""


@pytest.mark.skipif(
    shutil.which("rpm") is None or shutil.which("rpmbuild") is None, reason="rpm/rpmbuild not installed"
)
def test_rpm_real_database(tmp_path):
    """A database written by rpm itself: build a package, install it with --excludedocs."""
    (tmp_path / "SPECS").mkdir()
    (tmp_path / "SPECS/demo.spec").write_text(DEMO_SPEC)
    subprocess.run(
        ["rpmbuild", "--define", f"_topdir {tmp_path}", "-bb", str(tmp_path / "SPECS/demo.spec")],
        check=True,
        capture_output=True,
    )
    (rpm_file,) = (tmp_path / "RPMS").rglob("*.rpm")
    root = tmp_path / "root"
    subprocess.run(
        [
            "rpm",
            "--root",
            str(root),
            "--dbpath",
            "/var/lib/rpm",
            "--define",
            "_db_backend sqlite",
            "-i",
            "--nodeps",
            "--noscripts",
            "--excludedocs",
            "--ignoreos",
            "--ignorearch",
            str(rpm_file),
        ],
        check=True,
        capture_output=True,
    )
    dbdir = root / "var/lib/rpm"
    files = {f"/var/lib/rpm/{p.name}": p.read_bytes() for p in dbdir.iterdir() if is_db_path(f"/var/lib/rpm/{p.name}")}
    (db,) = parse_package_dbs(files)
    assert db.errors == []
    (pkg,) = db.packages
    assert (pkg.name, pkg.version, pkg.arch) == ("demo", "2:1.2-3", "noarch")
    f = {x.path: x for x in pkg.files}
    for path in ("/usr/bin/demo", "/etc/demo.conf"):
        assert f[path].algo == "sha256"
        assert f[path].digest == hashlib.sha256((root / path.lstrip("/")).read_bytes()).hexdigest()
    assert f["/usr/bin/demo"].mode == 0o100755
    assert f["/etc/demo.conf"].is_config
    assert f["/usr/bin/demo-link"].link_target == "demo" and f["/usr/bin/demo-link"].digest is None
    assert f["/var/log/demo.log"].ghost
    assert f["/usr/share/doc/demo/README"].not_installed  # --excludedocs
    assert not (root / "usr/share/doc/demo/README").exists()


def test_file_owners_prefers_verifiable_claim():
    from forensics.packages import Package, PackageFile

    def pkg(name, *files):
        return Package(manager="rpm", name=name, version="1", files=list(files), source_path="/db")

    db = PackageDB(
        manager="rpm",
        packages=[
            pkg("filesystem", PackageFile(path="/usr/bin", mode=0o40755)),
            pkg("glibc-i686", PackageFile(path="/usr/bin/ldd", digest="a" * 64, algo="sha256", not_installed=True)),
            pkg("coreutils", PackageFile(path="/usr/bin", mode=0o40755)),
            pkg("glibc", PackageFile(path="/usr/bin/ldd", digest="b" * 64, algo="sha256")),
        ],
    )
    owners = db.file_owners()
    assert owners["/usr/bin/ldd"].name == "glibc"
    assert owners["/usr/bin"].name == "filesystem"


# ------------------------------------------------------------------- hostile


def _mutations(seed_bytes: bytes, rng: random.Random, n: int):
    for _ in range(n):
        b = bytearray(seed_bytes)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        if rng.random() < 0.3:
            del b[rng.randrange(len(b)) :]
        yield bytes(b)


def test_hostile_random_and_mutated(tmp_path):
    rng = random.Random(1234)
    randoms = [bytes(rng.randrange(256) for _ in range(rng.randint(0, 600))) for _ in range(60)]
    sqlite_good = make_rpmdb(tmp_path / "rpmdb.sqlite", [bash_header(), md5_header()])
    sqlite_inputs = randoms[:10] + list(_mutations(sqlite_good, rng, 40))
    for data in sqlite_inputs:
        assert isinstance(parse_rpmdb_sqlite(data, "/var/lib/rpm/rpmdb.sqlite"), PackageDB)
    blobs = randoms + list(_mutations(bash_header(), rng, 300))
    assert isinstance(parse_header_blobs(blobs, "/x"), PackageDB)
    for data in randoms + list(_mutations(apk_db(), rng, 100)):
        assert isinstance(parse_apk(data, "/lib/apk/db/installed"), PackageDB)
    for data in randoms + list(_mutations(DPKG_FILES["/var/lib/dpkg/status"], rng, 100)):
        files = dict(DPKG_FILES, **{"/var/lib/dpkg/status": data, "/var/lib/dpkg/info/gzip.md5sums": data[::-1]})
        assert isinstance(parse_dpkg(files), PackageDB)
    everything = {
        p: randoms[i]
        for i, p in enumerate(
            [
                "/var/lib/dpkg/status",
                "/lib/apk/db/installed",
                "/var/lib/rpm/rpmdb.sqlite",
                "/var/lib/rpm/Packages",
                "/var/lib/dpkg/diversions",
            ]
        )
    }
    assert all(isinstance(d, PackageDB) for d in parse_package_dbs(everything))


def test_errors_are_capped():
    db = parse_apk(b"junk\n" * 10_000, "/lib/apk/db/installed")
    assert len(db.errors) <= 51 and db.errors[-1].endswith("more errors not shown")
