"""Common model for what package databases inside an image claim about files.

Every parser (dpkg, apk, rpm) turns database bytes into these models. Paths are
absolute and normalized the way layer readers normalize tar member names, so a
`PackageFile.path` can be looked up directly in the merged rootfs. Non-UTF-8 bytes
in paths are kept with `surrogateescape`, like the tar reader does.
"""

from __future__ import annotations

import posixpath
from typing import Literal

from pydantic import BaseModel, Field

Manager = Literal["dpkg", "apk", "rpm", "pip", "npm"]
DigestAlgo = Literal["md5", "sha1", "sha256-160", "sha256", "sha384", "sha512"]

# Hex length each algorithm must produce; a digest of another length is junk.
DIGEST_HEX_LEN: dict[str, int] = {
    "md5": 32,
    "sha1": 40,
    "sha256-160": 40,
    "sha256": 64,
    "sha384": 96,
    "sha512": 128,
}

_HEX = frozenset("0123456789abcdef")


def norm_path(path: str) -> str:
    """Absolute, normalized path ("bin/x", "/./bin//x" -> "/bin/x")."""
    p = posixpath.normpath("/" + path.lstrip("/"))
    # normpath keeps a leading "//" (POSIX allows it to mean something special);
    # inside an image it never does.
    return "/" + p.lstrip("/")


def clean_digest(value: str, algo: str | None) -> str | None:
    """Lowercase hex digest, or None if `value` is not hex of the algorithm's length."""
    v = value.strip().lower()
    if not v or not set(v) <= _HEX:
        return None
    if algo is not None and len(v) != DIGEST_HEX_LEN.get(algo, len(v)):
        return None
    return v


class PackageFile(BaseModel):
    """One path a package claims, with what the database records about it.

    `digest is None` means "owned, but no content digest recorded" (directories,
    symlinks in rpm, dpkg paths listed in `.list` but not in `.md5sums`).
    """

    path: str
    digest: str | None = None
    algo: DigestAlgo | None = None
    is_config: bool = False
    # dpkg: conffile the package no longer ships but left on disk; its md5 is stale.
    obsolete: bool = False
    # rpm %ghost: listed but never shipped with content; never verify.
    ghost: bool = False
    # The package's recorded content is not expected on disk (rpm FILESTATES
    # replaced / not installed / netshared / wrong color; e.g. --excludedocs).
    not_installed: bool = False
    link_target: str | None = None
    # rpm: full st_mode incl. file type bits; apk: permission bits only.
    mode: int | None = None

    @property
    def verifiable(self) -> bool:
        """Whether comparing content against `digest` is meaningful."""
        return self.digest is not None and not self.ghost and not self.not_installed


class Package(BaseModel):
    manager: Manager
    name: str
    version: str
    arch: str | None = None
    files: list[PackageFile] = Field(default_factory=list)
    # The database file that declared the package (dpkg: status or status.d/<x>).
    source_path: str
    # Every database file that contributed (dpkg adds info/<pkg>.list/.md5sums ...):
    # the layer that last wrote these is the layer whose claims we check.
    source_paths: list[str] = Field(default_factory=list)
    # Directories owned with everything below them (npm: the package directory).
    trees: list[str] = Field(default_factory=list)
    # npm: the sha512 of the tarball it was installed from, as a lockfile (or npm 6's
    # package.json `_integrity`) gives it, in SRI form (history.npmcache). Not in the report.
    integrity: str | None = Field(default=None, exclude=True)


# Packages read from one database. A real image holds a few thousand at most (a full Fedora
# install about 6,000, a large node_modules some thousands); each costs about 3 KB once parsed,
# and a database is parsed again after every layer that writes it, so an apk `installed` of
# a million one-line stanzas (24 MB, under Limits.max_capture) cost 3 GB. Past this the rest
# is counted, not read, and the image gets archive.limit-exceeded (history.packages). pip and
# npm records are one file each (already bounded by the entry limits) and a large JavaScript
# tree holds tens of thousands: they get more room.
MAX_PACKAGES = 20_000
MAX_LANG_PACKAGES = 100_000


class PackageDB(BaseModel):
    manager: Manager
    packages: list[Package] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    # Packages past MAX_PACKAGES, counted and not read; the first one's name or place.
    dropped: int = 0
    first_dropped: str | None = None
    # The database file the limit was met in (its source path).
    dropped_in: str | None = None
    limit: int = MAX_PACKAGES

    def full(self) -> bool:
        return len(self.packages) >= self.limit

    def drop(self, what: str, source: str) -> None:
        """Count one package past MAX_PACKAGES (`what` names it for the finding)."""
        if not self.dropped:
            self.first_dropped, self.dropped_in = what, source
        self.dropped += 1

    def add(self, pkg: Package) -> None:
        if self.full():
            self.drop(pkg.name, pkg.source_path)
        else:
            self.packages.append(pkg)

    def file_owners(self) -> dict[str, Package]:
        """Map each claimed path to the package whose claim should be verified.

        Several packages can claim one path (shared directories, rpm multilib,
        files replaced by another package). The owner whose entry is verifiable
        wins; among equals, the first package in database order.
        """
        best: dict[str, tuple[int, Package]] = {}
        for pkg in self.packages:
            for f in pkg.files:
                score = 2 if f.verifiable else (0 if f.not_installed or f.ghost else 1)
                cur = best.get(f.path)
                if cur is None or score > cur[0]:
                    best[f.path] = (score, pkg)
        return {path: pkg for path, (_, pkg) in best.items()}


class ErrorLog:
    """Collects parser errors, capping repeats so hostile input cannot flood a report."""

    def __init__(self, errors: list[str], cap: int = 50) -> None:
        self.errors = errors
        self.cap = cap
        self.dropped = 0

    def add(self, msg: str) -> None:
        if len(self.errors) < self.cap:
            self.errors.append(msg)
        else:
            self.dropped += 1

    def finish(self) -> None:
        if self.dropped:
            self.errors.append(f"{self.dropped} more errors not shown")
            self.dropped = 0
