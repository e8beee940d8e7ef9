"""The read stage: the one streaming pass, then the reader of the archive's format.

Each format is a module with `detect(archive)` and `read(archive)` (in the manner of
dissect.target's loaders): `dual` (Docker 25+ and containerd: an OCI layout with a
docker manifest.json), `oci` (an OCI layout, tar or directory), `docker` (the legacy
docker save). The format is decided by content, never by the file name. What leaves
this package is the model (forensics.read.model) and, for a second read of file
contents, a member source (forensics.read.source).
"""

from __future__ import annotations

from collections.abc import Callable

from forensics.archive.layerscan import Limits
from forensics.archive.scan import ProgressFn, Sink, scan_input
from forensics.findings import Code, finding
from forensics.read import docker, dual, oci
from forensics.read.builder import Builder
from forensics.read.convert import archive_of
from forensics.read.model import Archive, Resolved

RAISES: tuple[Code, ...] = ("archive.unknown-format",)

READERS = (dual, oci, docker)


def read_archive(archive: Archive) -> Resolved:
    """Hand the archive to the reader of its format; no reader: archive.unknown-format."""
    for reader in READERS:
        if reader.detect(archive):
            return reader.read(archive)
    b = Builder(archive, "unknown")
    what = (
        f"{len(archive.entries)} entries"
        if archive.entries
        else "an empty directory"
        if archive.is_dir
        else "an archive with no entries"
    )
    b.out.append(
        finding(
            "archive.unknown-format",
            "high",
            archive.source,
            f"neither manifest.json (docker save) nor index.json (OCI layout) found ({what}); "
            "this is not an image archive (a container export or a pre-1.10 docker save?)",
        )
    )
    return b.done()


def read_input(
    source: str,
    *,
    capture: Callable[[str, int], bool] | None = None,
    limits: Limits | None = None,
    progress: ProgressFn | None = None,
    keep: Sink | None = None,
) -> Resolved:
    """Read `source` (a tar, plain or compressed, a layout directory, or "-") once and
    return the model; raises forensics.archive.scan.InputError if it cannot be read."""
    inv = scan_input(source, capture=capture, limits=limits, progress=progress, keep=keep)
    return read_archive(archive_of(inv))
