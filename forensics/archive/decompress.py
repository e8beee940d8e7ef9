"""Sniff compression from magic bytes and decompress as a bounded pull stream.

Every reader returns at most `n` bytes per call whatever the ratio, so a
decompression bomb costs time, never memory.
"""

from __future__ import annotations

try:  # ISA-L inflates about twice as fast as zlib and releases the GIL too.
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - exercised only without isal
    import zlib as _zlib  # type: ignore[no-redef]

import zstandard

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"


class DecompressError(Exception):
    pass


def sniff(head: bytes) -> str:
    """Name the container format of a blob from its first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(BZIP2_MAGIC):
        return "bzip2"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if len(head) >= 512 and head[:512].count(0) == 512:
        return "tar"  # an empty tar: just the end-of-archive blocks
    if len(head) >= 512 and _old_tar(head):
        return "tar"
    stripped = head.lstrip()
    if stripped[:1] in (b"{", b"[") or stripped.startswith(b"null"):
        return "json"
    # Not containers, but what an entry no layout defines may be (archive.extra-entry).
    if head.startswith(b"\x7fELF"):
        return "elf"
    if head.startswith(b"#!"):
        return "script"
    return "data"


def _old_tar(head: bytes) -> bool:
    """A pre-POSIX (v7) tar header: no magic, but a valid checksum."""
    stored = head[148:156].split(b"\0", 1)[0].strip(b" \0")
    try:
        want = int(stored, 8)
    except ValueError:
        return False
    return want == sum(head[:148]) + 256 + sum(head[156:512])


class GzipReader:
    """Multi-member gzip over a `read(n)` source; trailing zero padding tolerated."""

    def __init__(self, src, chunk: int = 1 << 20) -> None:
        self._src = src
        self._chunk = chunk
        self._d = _zlib.decompressobj(wbits=31)
        self._pending = b""  # compressed input not yet given to the decompressor
        self.trailing_garbage = 0
        self._done = False

    def read(self, n: int) -> bytes:
        while not self._done:
            d = self._d
            if d.unconsumed_tail:
                data, self._pending = d.unconsumed_tail, b""
            elif self._pending:
                data, self._pending = self._pending, b""
            else:
                data = self._src.read(self._chunk)
                if not data:
                    if not d.eof:
                        raise DecompressError("gzip stream ends before its end marker (truncated)")
                    self._done = True
                    break
            try:
                out = d.decompress(data, n)
            except Exception as exc:  # zlib.error / isal error
                raise DecompressError(f"corrupt gzip data: {exc}") from None
            if d.eof:
                rest = d.unused_data
                if rest:
                    if rest.startswith(GZIP_MAGIC):
                        self._d = _zlib.decompressobj(wbits=31)
                        self._pending = rest
                    elif rest.strip(b"\0"):
                        self.trailing_garbage += len(rest)
                    # zero padding after the last member is legal (gzip(1) ignores it)
            if out:
                return out
        return b""


class ZstdReader:
    def __init__(self, src, chunk: int = 1 << 20) -> None:
        dctx = zstandard.ZstdDecompressor(max_window_size=1 << 31)
        self._r = dctx.stream_reader(src, read_size=chunk, read_across_frames=True)

    def read(self, n: int) -> bytes:
        try:
            return self._r.read(n)
        except zstandard.ZstdError as exc:
            raise DecompressError(f"corrupt zstd data: {exc}") from None


class PlainReader:
    def __init__(self, src) -> None:
        self._src = src

    def read(self, n: int) -> bytes:
        return self._src.read(n)


def open_stream(kind: str, src):
    if kind == "gzip":
        return GzipReader(src)
    if kind == "zstd":
        return ZstdReader(src)
    return PlainReader(src)
