"""Which image paths are package databases, and which are package-manager bookkeeping.

Patterns are absolute globs: `*` and `?` stay within one path segment, `**` spans
any number of segments (including none), and a trailing `/**` also matches the
directory itself, because layers record directory entries too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

# --- Database files: captured from the layer stream and handed to the parsers. ---

DPKG_DB_PATTERNS: tuple[str, ...] = (
    "/var/lib/dpkg/status",
    "/var/lib/dpkg/status.d/*",  # distroless: one stanza per file, plus <pkg>.md5sums
    "/var/lib/dpkg/info/*.list",  # every path a package owns
    "/var/lib/dpkg/info/*.md5sums",  # md5 of non-conffiles
    "/var/lib/dpkg/info/*.conffiles",  # which paths are conffiles (md5 is in status)
    "/var/lib/dpkg/diversions",  # dpkg-divert moves a package's file elsewhere
)

APK_DB_PATTERNS: tuple[str, ...] = (
    "/lib/apk/db/installed",
    "/usr/lib/apk/db/installed",  # merged-/usr layouts (trivy apk.go)
)

_RPM_DIRS: tuple[str, ...] = (
    "/var/lib/rpm",  # RHEL <= 9, Fedora 33-35
    "/usr/lib/sysimage/rpm",  # Fedora >= 36, SUSE
    "/usr/share/rpm",  # CoreOS
)
RPM_SQLITE_NAMES: tuple[str, ...] = ("rpmdb.sqlite", "rpmdb.sqlite-wal")
# Recognised so the gap is reported, not silently skipped: no parser yet.
RPM_BDB_NAME = "Packages"  # Berkeley DB hash (RHEL <= 8)
RPM_NDB_NAME = "Packages.db"  # NDB (SUSE)
RPM_DB_PATTERNS: tuple[str, ...] = tuple(
    f"{d}/{n}" for d in _RPM_DIRS for n in (*RPM_SQLITE_NAMES, RPM_BDB_NAME, RPM_NDB_NAME)
)

DB_PATTERNS: dict[str, tuple[str, ...]] = {
    "dpkg": DPKG_DB_PATTERNS,
    "apk": APK_DB_PATTERNS,
    "rpm": RPM_DB_PATTERNS,
}

# --- Bookkeeping: paths a package-manager run legitimately writes besides the ---
# --- package files themselves. A change here in a layer whose command ran the  ---
# --- manager is expected; the same change elsewhere is worth a look.          ---

BOOKKEEPING_PATTERNS: dict[str, tuple[str, ...]] = {
    "dpkg": (
        "/var/lib/dpkg/**",
        "/var/cache/apt/**",
        "/var/lib/apt/**",
        "/var/log/apt/**",
        "/var/log/dpkg.log",
        "/var/cache/debconf/**",
        "/var/log/alternatives.log",
        "/etc/alternatives/**",
        "/etc/ld.so.cache",  # ldconfig trigger
        "/var/cache/ldconfig/**",
        "/var/lib/systemd/deb-systemd-helper-enabled/**",  # deb-systemd-helper state
        "/var/lib/systemd/deb-systemd-helper-masked/**",
        "/var/lib/ucf/**",  # ucf: conffile tracking used by many maintainer scripts
    ),
    "apk": (
        "/lib/apk/**",
        "/usr/lib/apk/**",
        "/var/cache/apk/**",
        "/etc/apk/**",
    ),
    "rpm": (
        "/var/lib/rpm/**",
        "/usr/lib/sysimage/rpm/**",
        "/usr/share/rpm/**",
        "/var/cache/dnf/**",
        "/var/cache/yum/**",
        "/var/lib/dnf/**",
        "/var/lib/yum/**",
        "/var/log/dnf*",  # dnf.log, dnf.librepo.log, dnf.rpm.log
        "/var/log/hawkey.log",
        "/var/log/yum.log",
        "/etc/ld.so.cache",
        "/var/cache/ldconfig/**",
    ),
    "pip": (
        "**/__pycache__/**",
        "**/*.pyc",
        "/root/.cache/pip/**",
        "**/site-packages/*.dist-info/**",
        "**/dist-packages/*.dist-info/**",
    ),
    "npm": ("/root/.npm/**",),
}

# Front-end names callers may derive from a `created_by` line.
MANAGER_ALIASES: dict[str, str] = {
    "apt": "dpkg",
    "apt-get": "dpkg",
    "dnf": "rpm",
    "microdnf": "rpm",
    "yum": "rpm",
    "tdnf": "rpm",
    "pip3": "pip",
}


@cache
def _compile(pattern: str) -> re.Pattern[str]:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == n:
            out.append("(?:/.*)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def match_any(path: str, patterns: Iterable[str]) -> bool:
    return any(_compile(p).fullmatch(path) for p in patterns)


def db_manager(path: str) -> str | None:
    """Which manager's database `path` belongs to, or None."""
    for manager, patterns in DB_PATTERNS.items():
        if match_any(path, patterns):
            return manager
    return None


MAINTAINER_SCRIPT_PATTERNS: tuple[str, ...] = (
    "/var/lib/dpkg/info/*.preinst",
    "/var/lib/dpkg/info/*.postinst",
    "/var/lib/dpkg/info/*.config",
)


def is_maintainer_script(path: str) -> bool:
    """dpkg maintainer scripts: they write files no package lists (/etc/timezone, ...)."""
    return any(_compile(p).match(path) for p in MAINTAINER_SCRIPT_PATTERNS)


def is_db_path(path: str) -> bool:
    """Whether a layer file must be captured for package-database parsing."""
    return db_manager(path) is not None


def is_bookkeeping_path(path: str, managers: Iterable[str] | None = None) -> bool:
    """Whether `path` is something a run of one of `managers` legitimately writes.

    `managers` names keys of BOOKKEEPING_PATTERNS or MANAGER_ALIASES; unknown names
    are ignored. None means all managers.
    """
    names = BOOKKEEPING_PATTERNS.keys() if managers is None else managers
    seen = set()
    for name in names:
        key = MANAGER_ALIASES.get(name, name)
        if key in seen or key not in BOOKKEEPING_PATTERNS:
            continue
        seen.add(key)
        if match_any(path, BOOKKEEPING_PATTERNS[key]):
            return True
    return False
