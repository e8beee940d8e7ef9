"""Service enablement links held to the package that ships the unit.

A postinst enabling a service leaves links no package lists: systemd's
`/etc/systemd/system/X.target.wants/U -> /lib/systemd/system/U`, alias links
(`Alias=` in the unit, `/etc/systemd/system/A -> .../U`), deb-systemd-helper's
state under /var/lib/systemd/deb-systemd-helper-enabled/, and update-rc.d's
`/etc/rcN.d/S01name -> ../init.d/name`, runit-helper's
`/etc/runit/runsvdir/default/name -> /etc/sv/name`. Such a path is explained only when it
has the shape its tool gives it and names a unit or init script shipped by a
package this very step installed: a link to a unit no installed package ships,
a link whose name is not the unit's (or one of its aliases), or a link to some
other file, stays unexplained (and, being a persistence point, is reported high).

API: `judge_step(changes, ctx, files, owners)`, called after explain.explain_step;
`files` holds the captured unit files (path -> bytes), `owners` path -> package.
"""

from __future__ import annotations

import posixpath
import re

from forensics.models import PathChange
from forensics.paths import norm_layer_path

UNIT_DIRS = ("/lib/systemd/system/", "/usr/lib/systemd/system/", "/lib/systemd/user/", "/usr/lib/systemd/user/")
UNIT_SUFFIXES = (".service", ".socket", ".timer", ".path", ".target", ".mount", ".automount", ".swap", ".slice")
DSH_DIRS = ("/var/lib/systemd/deb-systemd-helper-enabled/", "/var/lib/systemd/deb-systemd-helper-masked/")
MAX_UNIT = 64 << 10
TAILS = UNIT_SUFFIXES + (".dsh-also",)  # what wants_capture can accept (the pipeline tests this first)

_WANTS = re.compile(r"^/etc/systemd/(?:system|user)/([^/]+)\.(wants|requires)/([^/]+)$")
_ALIAS = re.compile(r"^/etc/systemd/(?:system|user)/([^/]+)$")
_RC = re.compile(r"^/etc/rc[0-6S]\.d/[SK]\d\d([^/]+)$")
_RUNIT = re.compile(r"^/etc/runit/runsvdir/default/([^/]+)$")  # runit-helper (dh_runit) enabling /etc/sv/NAME
# What this module re-judges: explanations that came from "a package did it".
_REJUDGE = {
    None,
    "service enabled by its package's maintainer script",
    "package manager bookkeeping",
    "written by a maintainer script of a package this step installed",
}

# The reason explain already gives these links (one of its PACKAGE_REASONS: a package's doing,
# so content checks do not judge them as the step's own persistence), now given only after the checks here.
EXPLAINED = EXPLAINED_RC = "service enabled by its package's maintainer script"
EXPLAINED_DSH = "deb-systemd-helper state of a unit shipped by a package this step installed"


def wants_capture(name: str, size: int) -> bool:
    """Hot path: keep unit files (for Alias= and WantedBy=) and deb-systemd-helper's lists."""
    if size > MAX_UNIT or not name.endswith(TAILS):
        return False
    path = norm_layer_path(name)[0]
    return path.startswith(UNIT_DIRS) or (path.startswith(DSH_DIRS) and path.endswith(".dsh-also"))


def is_captured(path: str) -> bool:
    return path.startswith(UNIT_DIRS) or path.startswith(DSH_DIRS)


def _install(data: bytes | None) -> dict[str, set[str]]:
    """The [Install] section of a unit: Alias=, WantedBy=, RequiredBy=, Also= (names)."""
    out: dict[str, set[str]] = {}
    if not data:
        return out
    section = ""
    for line in data[:MAX_UNIT].decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Install]" and "=" in line:
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), set()).update(v.split())
    return out


def _instance_of(name: str, unit: str) -> bool:
    """getty@tty1.service is an instance of getty@.service."""
    stem, dot, suffix = unit.rpartition(".")
    return stem.endswith("@") and name.startswith(stem) and name.endswith("." + suffix) and len(name) > len(unit)


class _Shipped:
    """Units and init scripts the step's packages ship, by name."""

    def __init__(self, owners: dict, touched: set[str], files: dict[str, bytes]) -> None:
        self.units: dict[str, str] = {}  # unit name -> its path
        self.init: set[str] = set()
        self.runit: set[str] = set()
        for path, pkg in owners.items():
            if getattr(pkg, "name", None) not in touched:
                continue
            if path.startswith(UNIT_DIRS):
                self.units.setdefault(posixpath.basename(path), path)
            elif path.startswith("/etc/init.d/"):
                self.init.add(posixpath.basename(path))
            elif path.startswith("/etc/sv/") and path.count("/") == 4 and path.endswith("/run"):
                self.runit.add(path.split("/")[3])
        self.files = files

    def install(self, unit: str) -> dict[str, set[str]]:
        path = self.units.get(unit)
        if path is None:
            return {}
        return _install(self.files.get(path) or self.files.get("/usr" + path) or self.files.get(path[4:]))

    def unit_for(self, name: str) -> str | None:
        """The shipped unit `name` stands for: itself, a template it instantiates, or an alias."""
        if name in self.units:
            return name
        for unit in self.units:
            if _instance_of(name, unit) or name in self.install(unit).get("Alias", ()):
                return unit
        return None


def _target(path: str, link: str) -> str:
    return posixpath.normpath(link if link.startswith("/") else posixpath.join(posixpath.dirname(path), link))


def _judge_link(ch: PathChange, entry, shipped: _Shipped) -> str | None:
    path = ch.path
    if entry is None or entry.type != "symlink" or not entry.link:
        return None
    target = _target(path, entry.link)
    unit = posixpath.basename(target)
    if not target.startswith(UNIT_DIRS) or unit not in shipped.units:
        return None
    install = shipped.install(unit)
    m = _WANTS.match(path)
    if m:
        name = m.group(3)
        if not (name == unit or _instance_of(name, unit) or name in install.get("Alias", ())):
            return None
        wanted_by = install.get("WantedBy" if m.group(2) == "wants" else "RequiredBy")
        if install and wanted_by is not None and m.group(1) not in wanted_by:
            return None  # the unit does not ask to be pulled in by that target
        return EXPLAINED
    m = _ALIAS.match(path)
    if m and m.group(1) in install.get("Alias", ()):
        return EXPLAINED
    return None


def _judge_rc(ch: PathChange, entry, shipped: _Shipped) -> str | None:
    m = _RC.match(ch.path)
    if entry is None or entry.type != "symlink" or not m:
        return None
    name = m.group(1)
    target = _target(ch.path, entry.link or "")
    if target == f"/etc/init.d/{name}" and name in shipped.init:
        return EXPLAINED_RC
    return None


def _judge_runit(ch: PathChange, entry, shipped: _Shipped) -> str | None:
    name = _RUNIT.match(ch.path).group(1)  # type: ignore[union-attr]
    if (
        entry is not None
        and entry.type == "symlink"
        and _target(ch.path, entry.link or "") == f"/etc/sv/{name}"
        and (name in shipped.runit)
    ):
        return EXPLAINED
    return None


def _judge_dsh(ch: PathChange, entry, shipped: _Shipped, files: dict[str, bytes]) -> str | None:
    rel = ch.path.split("/", 5)[5] if ch.path.count("/") >= 5 else ""
    if ch.type == "dir":
        return EXPLAINED_DSH if rel.endswith((".wants", ".requires")) or not rel else None
    if entry is None or entry.type not in ("file", "hardlink"):
        return None
    name = posixpath.basename(rel)
    if name.endswith(".dsh-also"):
        unit = name[: -len(".dsh-also")]
        if shipped.unit_for(unit) is None:
            return None
        data = files.get(ch.path)
        if data is None:
            return None
        for line in data.decode("utf-8", "replace").splitlines():
            line = line.strip()
            if line and not (line.startswith("/etc/systemd/") and shipped.unit_for(posixpath.basename(line))):
                return None  # it lists a link to a unit no package of the step ships
        return EXPLAINED_DSH
    if entry.size != 0 or shipped.unit_for(name) is None:
        return None
    return EXPLAINED_DSH


def judge_step(changes: list[PathChange], ctx, files: dict[str, bytes], owners: dict) -> None:
    """Set `explained_by` of the service links of a package step from what its packages ship."""
    if ctx.package_step and not ctx.squashed_base and ctx.generated is not None:
        _judge(changes, ctx, files, owners)
    _explain_parents(changes)


def _explain_parents(changes: list[PathChange]) -> None:
    """Directories that change only because a child this module (or accounts) explained did."""
    parents: set[str] = set()
    for c in changes:
        if c.explained_by:
            p = posixpath.dirname(c.path)
            while p not in parents and p != "/":
                parents.add(p)
                p = posixpath.dirname(p)
    for c in changes:
        if c.explained_by is None and c.type == "dir" and c.path in parents:
            c.explained_by = "parent directory of an explained change"


def _judge(changes: list[PathChange], ctx, files: dict[str, bytes], owners: dict) -> None:
    todo = [
        c
        for c in changes
        if c.explained_by in _REJUDGE
        and c.change != "deleted"
        and (
            _WANTS.match(c.path)
            or _RC.match(c.path)
            or _RUNIT.match(c.path)
            or c.path.startswith(DSH_DIRS)
            or (_ALIAS.match(c.path) and c.path.endswith(UNIT_SUFFIXES))
        )
    ]
    if not todo:
        return
    shipped = _Shipped(owners, ctx.generated.touched, files)
    for ch in todo:
        entry = ctx.entries.get(ch.path)
        if ch.path.startswith(DSH_DIRS):
            ch.explained_by = _judge_dsh(ch, entry, shipped, files)
        elif _RC.match(ch.path):
            ch.explained_by = _judge_rc(ch, entry, shipped)
        elif _RUNIT.match(ch.path):
            ch.explained_by = _judge_runit(ch, entry, shipped)
        elif _WANTS.match(ch.path) or (entry is not None and entry.type == "symlink"):
            ch.explained_by = _judge_link(ch, entry, shipped)
        # else: a regular unit file in /etc/systemd/system keeps what explain said of it
