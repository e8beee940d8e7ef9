"""What the image's package databases record as installed, held to its final filesystem:
the inventory `scan --cyclonedx` writes and an SBOM attestation is compared with.

Each package keeps the layer from which its record has held its version without
interruption: dpkg's `status` is rewritten by every install, so the layer that last
wrote the database file says nothing about an old package; a new version (an upgrade)
starts it again. A package owns the regular files its record names (npm: everything
below its directory) that the final filesystem holds. The distribution comes from
`/etc/os-release` (often a link to `/usr/lib/os-release`), as the image states it.
"""

from __future__ import annotations

import bisect
import re

from forensics.history.overlay import Overlay, resolve_path
from forensics.models import ImagePackages, InstalledPackage
from forensics.paths import norm_layer_path

OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")
TAILS = ("os-release",)
MAX_OS_RELEASE = 64 << 10
REGULAR = ("file", "hardlink")
# os-release(5): ID and VERSION_ID are lower-case words of 0-9, a-z, ".", "_" and "-"; they go into purls.
_ID = re.compile(r"[a-z0-9._-]{1,64}")
_VERSION_ID = re.compile(r"[A-Za-z0-9._~+-]{1,64}")

Key = tuple[str, str, str, str]  # manager, database (dpkg: all its files are one), name, arch


def wants_capture(name: str, size: int) -> bool:
    """Hot path (every layer file): keep the os-release files."""
    return name.endswith(TAILS) and size <= MAX_OS_RELEASE and norm_layer_path(name)[0] in OS_RELEASE


def parse_os_release(data: bytes) -> dict[str, str]:
    """KEY=value lines, values optionally quoted; only the keys the SBOM uses, checked."""
    out: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, eq, value = line.strip().partition("=")
        if not eq or key not in ("ID", "VERSION_ID", "PRETTY_NAME"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out.setdefault(key, value)
    if not _ID.fullmatch(out.get("ID", "")):
        out.pop("ID", None)
    if not _VERSION_ID.fullmatch(out.get("VERSION_ID", "")):
        out.pop("VERSION_ID", None)
    if "PRETTY_NAME" in out:
        out["PRETTY_NAME"] = out["PRETTY_NAME"][:200]
    return out


def _key(pkg) -> Key:
    return (pkg.manager, "" if pkg.manager == "dpkg" else pkg.source_path, pkg.name, pkg.arch or "")


class Inventory:
    """Fed layer by layer next to forensics.history.packages.PackageState."""

    def __init__(self) -> None:
        self.since: dict[Key, tuple[str, int]] = {}  # -> (version, first layer it held it in)
        self.os_files: dict[str, bytes] = {}

    def take(self, captured: dict[str, bytes], deleted: set[str]) -> None:
        """Move the os-release files out of a layer's captured set (the package parser
        would reparse its databases for them)."""
        for p in deleted & self.os_files.keys():
            del self.os_files[p]
        for p in OS_RELEASE:
            if p in captured:
                self.os_files[p] = captured.pop(p)

    def note(self, layer: int, dbs: list) -> None:
        """After a layer that changed a package database."""
        old, new = self.since, {}
        for db in dbs:
            for pkg in db.packages:
                k = _key(pkg)
                prev = old.get(k)
                new[k] = prev if prev is not None and prev[0] == pkg.version else (pkg.version, layer)
        self.since = new

    def os_release(self, overlay: Overlay) -> dict[str, str]:
        for p in OS_RELEASE:
            landing = resolve_path(p, overlay.nodes.get)
            if landing is not None and landing in self.os_files:
                node = overlay.get(landing)
                if node is not None and node.entry.type == "file":
                    return parse_os_release(self.os_files[landing])
        return {}

    def records(self, image: int, dbs: list, overlay: Overlay) -> ImagePackages:
        regular = sorted(p for p, n in overlay.nodes.items() if n.entry.type in REGULAR)
        held = set(regular)
        osr = self.os_release(overlay)
        out = ImagePackages(
            image=image, os_id=osr.get("ID"), os_version=osr.get("VERSION_ID"), os_name=osr.get("PRETTY_NAME")
        )
        seen: set[Key] = set()
        for db in dbs:
            for pkg in db.packages:
                k = _key(pkg)
                if k in seen:
                    continue
                seen.add(k)
                files: set[str] = set()
                for f in pkg.files:
                    if f.ghost or f.not_installed:
                        continue
                    # merged /usr: dpkg records /bin/gzip, the layers hold /usr/bin/gzip behind /bin -> usr/bin
                    p = f.path if f.path in held else resolve_path(f.path, overlay.nodes.get)
                    if p in held:
                        files.add(p)
                for tree in pkg.trees:
                    lo = bisect.bisect_left(regular, tree + "/")
                    hi = bisect.bisect_left(regular, tree + "0")  # "0" follows "/": past every path below tree
                    files.update(regular[lo:hi])
                since = self.since.get(k)
                out.packages.append(
                    InstalledPackage(
                        manager=pkg.manager,
                        name=pkg.name,
                        version=pkg.version,
                        arch=pkg.arch,
                        database=pkg.source_path,
                        layer=since[1] if since is not None and since[0] == pkg.version else None,
                        files=sorted(files),
                    )
                )
        return out
