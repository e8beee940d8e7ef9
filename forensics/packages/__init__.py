"""Package databases inside an image: which paths they are, and what they claim.

Usage: capture every layer file for which `is_db_path(path)` is true (from the
merged view of the image, or per layer), then `parse_package_dbs(files)`.
"""

from __future__ import annotations

from .apk import parse_apk
from .dpkg import parse_dpkg
from .langdb import parse_language_dbs
from .model import Package, PackageDB, PackageFile, norm_path
from .paths import db_manager, is_bookkeeping_path, is_db_path, is_maintainer_script
from .rpm import parse_rpmdb, parse_rpmdb_sqlite

__all__ = [
    "is_maintainer_script",
    "Package",
    "PackageDB",
    "PackageFile",
    "db_manager",
    "is_bookkeeping_path",
    "is_db_path",
    "parse_apk",
    "parse_dpkg",
    "parse_package_dbs",
    "parse_rpmdb",
    "parse_rpmdb_sqlite",
]


def parse_package_dbs(files: dict[str, bytes]) -> list[PackageDB]:
    """Parse all captured database files of one image.

    One PackageDB for all dpkg files together, one per apk `installed`, one per
    rpm database (an `rpmdb.sqlite-wal` is applied to its sibling database), then
    one for pip records and one for npm packages (forensics.packages.langdb).
    Paths that are not database paths are ignored. Never raises on bad content.
    """
    files = {norm_path(p): d for p, d in files.items()}
    by_manager: dict[str, list[str]] = {}
    for path in sorted(files):
        manager = db_manager(path)
        if manager is not None:
            by_manager.setdefault(manager, []).append(path)

    out: list[PackageDB] = []
    if "dpkg" in by_manager:
        out.append(parse_dpkg({p: files[p] for p in by_manager["dpkg"]}))
    for path in by_manager.get("apk", []):
        out.append(parse_apk(files[path], path))
    for path in by_manager.get("rpm", []):
        if path.endswith("-wal"):
            continue
        wal = files.get(path + "-wal")
        out.append(parse_rpmdb(files[path], path, wal))
    return out + parse_language_dbs(files)
