"""The second read of file contents, as the checks see it: a member source.

The first pass keeps digests and metadata, never contents. A few checks need the bytes
of a handful of files again (an md5 a package database recorded, a COPY source hash, a
file that may differ only by an embedded timestamp). They receive a `MemberSource` and
ask it to stream chosen members of chosen layers; they never open the input themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Member(Protocol):
    """The tar header of a member being streamed."""

    name: str
    size: int
    mode: int

    @property
    def pax(self) -> dict[str, str] | None:  # read-only: a reader may have no pax headers to give
        ...


# consume(layer entry path, member path, member, read) reads the member's content via read(n).
Consume = Callable[[str, str, Member, Callable[[int], memoryview]], None]


class MemberSource(Protocol):
    readable: bool  # a second read is possible (a file or a directory; not stdin)

    def stream(self, wanted: dict[str, set[str]], consume: Consume) -> None:
        """For each layer (by the path of its blob in the archive, `Entry.path`), call
        `consume` for its regular members whose normalized path is in the set. Damage
        means "not read": the first pass has reported it."""
        ...


class NoSource:
    """Nothing can be read again (stdin, a test that wants no second read)."""

    readable = False

    def stream(self, wanted: dict[str, set[str]], consume: Consume) -> None:
        return None


def open_source(path: str) -> MemberSource:
    """The member source of an input path (forensics.read.seekable), for a caller that
    holds only a report (forensics.compare)."""
    from forensics.read.seekable import SeekableSource

    return SeekableSource(path)
