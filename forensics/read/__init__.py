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
from typing import Protocol

from forensics.archive.layerscan import Limits
from forensics.archive.scan import Inventory, OuterEntry, ProgressFn, Sink, scan_input
from forensics.findings import Code, finding
from forensics.read import docker, dual, oci
from forensics.read.builder import Builder
from forensics.read.convert import archive_of, layer_index_of
from forensics.read.model import Archive, LayerIndex, Resolved

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


class Early(Protocol):
    """A later stage that starts while a seekable input is still being read (the history
    replay, forensics.history.early). `planned` gets the model as the walk of the outer
    entries left it: every document read, no layer blob yet (those are `pending`, by
    Entry.seq), and answers the seqs in the order it needs them; `layer` then gets each
    blob's index as it is read. Nothing it is told is final: the model read_input returns
    is, and the stage checks that what it used is what that model holds."""

    def planned(self, res: Resolved, pending: set[int]) -> list[int]: ...

    def layer(self, seq: int, index: LayerIndex | None) -> None: ...


class _Watch:
    """The pass's Watch (forensics.archive.scan) in the model's terms, for an Early stage.
    A stage that raises is dropped, and the pass goes on: its work is redone at the end."""

    def __init__(self, early: Early) -> None:
        self.early: Early | None = early

    def planned(self, inv: Inventory, pending: set[int]) -> list[int]:
        try:
            return self.early.planned(read_archive(archive_of(inv)), pending) if self.early else []
        except Exception:  # noqa: BLE001 - the stage is an optimization; the final model decides
            self.early = None
            return []

    def scanned(self, entry: OuterEntry) -> None:
        if self.early is None:
            return
        try:
            self.early.layer(entry.seq, layer_index_of(entry.layer) if entry.layer is not None else None)
        except Exception:  # noqa: BLE001
            self.early = None


def read_input(
    source: str,
    *,
    capture: Callable[[str, int], bool] | None = None,
    limits: Limits | None = None,
    progress: ProgressFn | None = None,
    keep: Sink | None = None,
    early: Early | None = None,
) -> Resolved:
    """Read `source` (a tar, plain or compressed, a layout directory, or "-") once and
    return the model; raises forensics.archive.scan.InputError if it cannot be read.
    `early` is told of the pass as it goes, when it runs in worker processes."""
    watch = _Watch(early) if early is not None else None
    inv = scan_input(source, capture=capture, limits=limits, progress=progress, keep=keep, watch=watch)
    return read_archive(archive_of(inv))
