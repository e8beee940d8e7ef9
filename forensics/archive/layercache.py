"""The seam where a layer's results may come from a cache instead of its bytes (scan-many --cache).

What is expensive per layer is inflating it, hashing the uncompressed stream (the diff_id),
walking its tar and hashing every file in it; hashing the compressed bytes is cheap beside
that (one sha256 pass over fewer bytes, no inflate). So the key is the sha256 of the
compressed blob, computed here from the bytes as they are read, never the name the input
gives it (`blobs/sha256/<hex>`, a manifest's digest, a diff_id in the config: all of them
are claims of the input). With the tool version, the kind of stream and every option that
changes a layer's result (the Limits, the capture rule) and a digest of the source of the
modules that compute it (`code_digest`), the blob digest names exactly one
outcome: the same bytes through the same code give the same diff_id, file index, captured
package databases and record digests. The diff_id comes back from the cache as the value
this tool computed when it inflated those bytes, not as anything the input declared.

Why not key by the diff_id, as trivy does: the diff_id is known only after the inflate and
the uncompressed hash, which are most of the cost. Reading the member once into a spool
(its chunks held, up to 64 MiB, then a file in the cache folder, never outside the output paths),
hashing it as it comes, lets a hit skip both; a miss then scans the spooled bytes.

What is never cached or reused: a layer whose walk met damage or a limit (its result
depends on where in the input it sits), and a hit whose entries would not fit in what is
left of the input's allowance (the walk runs then, so limits apply exactly as without a
cache). The store checks each entry's own sha256 before use (forensics.fleet.cache), and
this module its shape and the blob it says it is for: a corrupted or planted entry is counted
and recomputed, never trusted. Someone able to write
the cache AND recompute the digest could still plant a result: the cache is as trusted
as the tool's own files, and a shared cache must be writable only by the scanners.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import IO, Any, Protocol

from forensics import __version__
from forensics.archive.layerfs import FIELDS, pack, unpack
from forensics.archive.layerscan import CHUNK, Budget, LayerScan, Limits, scan_stream

SPOOL_IN_MEMORY = 64 << 20
FORMAT = 1


class Store(Protocol):
    tmpdir: str

    def get(self, key: str, decode: Callable[[dict], Any]) -> Any | None:
        """The entry under `key`, checked and passed through `decode` (which raises ValueError
        on a value it cannot use); None, counted as a miss or as rejected, otherwise."""
        ...

    def put(self, key: str, value: dict) -> None: ...


_STORE: ContextVar[Store | None] = ContextVar("forensics_layer_cache", default=None)


def active() -> Store | None:
    return _STORE.get()


@contextmanager
def using(store: Store) -> Iterator[Store]:
    token = _STORE.set(store)
    try:
        yield store
    finally:
        _STORE.reset(token)


# The modules whose code decides a layer's result: the walk, the names, the model, the
# capture rule and what it keeps. Their source is part of the key, so that a development
# install whose version string did not change never reuses what other code computed.
_CODE = (
    "archive/*.py",
    "paths.py",
    "models.py",
    "pipeline.py",
    "packages/*.py",
    "history/accounts.py",
    "history/unitlinks.py",
)


@cache
def code_digest() -> str:
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for pattern in _CODE:
        for path in sorted(root.glob(pattern)):
            h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def key_for(blob_sha256: str, kind: str, limits: Limits, capture: Callable) -> str:
    """The cache key: digest of what decides a layer's result, the blob's computed digest first."""
    what = {
        "format": FORMAT,
        "tool": __version__,
        "code": code_digest(),
        "blob": blob_sha256,
        "kind": kind,
        "limits": dataclasses.asdict(limits),
        "capture": f"{getattr(capture, '__module__', '?')}.{getattr(capture, '__qualname__', repr(capture))}",
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


class _Counted:
    """A Budget that also counts the name characters of the layer's entries (for a replay)."""

    def __init__(self, inner: Budget | None) -> None:
        self.inner = inner
        self.chars = 0

    def refuse(self, name: str, linkname: str, layer_entries: int | None = None) -> str | None:
        self.chars += len(name) + len(linkname)
        return self.inner.refuse(name, linkname, layer_entries) if self.inner is not None else None


def _encode(scan: LayerScan, blob: str, nbytes: int, chars: int) -> dict:
    return {
        "blob": blob,
        "nbytes": nbytes,
        "chars": chars,
        "compression": scan.compression,
        "diff_id": scan.diff_id,
        "uncompressed_size": scan.uncompressed_size,
        # rows on disk (one JSON array per file, its shape checked on the way back); the
        # columns of layerfs.pack only cross process boundaries
        "files": [list(row) for row in zip(*pack(scan.files))],
        "unsafe": [list(u) for u in scan.unsafe],
        "captured": {k: base64.b64encode(v).decode("ascii") for k, v in scan.captured.items()},
        "record_digests": scan.record_digests,
        "trailing_garbage": scan.trailing_garbage,
        "is_tar": scan.is_tar,
    }


def _decode(value: dict) -> tuple[LayerScan, int, int, str, int]:
    """(the layer scan, its entries, their name characters, the blob digest, its bytes) from an
    entry whose own digest matched. Its shape is checked too, so that an entry written by
    another build of the tool, or planted with a recomputed digest, is a ValueError (the layer
    is scanned again), not a crash later in the analysis."""
    try:
        rows = value["files"]
        if not all(isinstance(r, list) and len(r) == len(FIELDS) and isinstance(r[0], str) for r in rows):
            raise ValueError("a file row of the wrong shape")
        scan = LayerScan(
            compression=str(value["compression"]),
            diff_id=value["diff_id"] if isinstance(value["diff_id"], str) else None,
            uncompressed_size=int(value["uncompressed_size"]),
            files=unpack(tuple(list(col) for col in zip(*rows))),
            unsafe=[(str(a), str(b)) for a, b in value["unsafe"]],
            captured={str(k): base64.b64decode(v, validate=True) for k, v in value["captured"].items()},
            record_digests={str(k): str(v) for k, v in value["record_digests"].items()},
            trailing_garbage=int(value["trailing_garbage"]),
            is_tar=bool(value["is_tar"]),
        )
        if scan.diff_id is None:
            raise ValueError("no diff_id")
        return scan, len(rows), int(value["chars"]), str(value["blob"]), int(value["nbytes"])
    except (KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise ValueError(f"malformed cache entry: {exc}") from None


def _fits(budget: Budget | None, entries: int, chars: int) -> bool:
    """Would the serial walk have kept every entry? Only asked below the floors, where the
    answer does not depend on how far into the input the layer sits."""
    if budget is None:
        return True
    lim = budget.limits
    return budget.entries[1] + entries <= min(lim.entries_floor, lim.max_entries) and budget.name_chars[
        1
    ] + chars <= min(lim.names_floor, lim.max_name_bytes)


class _Spool:
    """The member's bytes, held for a miss: the chunks themselves up to SPOOL_IN_MEMORY (they
    are immutable bytes, or views of them, so holding them copies nothing), then a file in
    the cache's folder."""

    def __init__(self, tmpdir: str) -> None:
        self._tmpdir = tmpdir
        self._parts: list = []
        self._held = 0
        self._file: IO[bytes] | None = None
        self._i = 0
        self.pos = 0

    def write(self, part) -> None:
        if self._file is None and self._held + len(part) <= SPOOL_IN_MEMORY:
            self._parts.append(part)
            self._held += len(part)
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self._tmpdir)
            for p in self._parts:
                self._file.write(p)
            self._parts = []
        self._file.write(part)

    def rewind(self) -> None:
        self._i = self.pos = 0
        if self._file is not None:
            self._file.seek(0)

    def read(self, n: int):
        if self._file is not None:
            data = self._file.read(n)
        elif self._i < len(self._parts):
            data = self._parts[self._i]
            if len(data) > n:
                data, self._parts[self._i] = data[:n], data[n:]
            else:
                self._i += 1
        else:
            data = b""
        self.pos += len(data)
        return data

    def close(self) -> None:
        self._parts = []
        if self._file is not None:
            self._file.close()


def consume_layer(entry, head: bytes, read, capture, limits: Limits, budget, store: Store) -> None:
    """`_consume` for a layer blob with a cache: spool and hash, then the cached result or the scan."""
    if budget is not None and not isinstance(budget, Budget):  # a worker's shared budget: no replay
        entry.sha256, entry.nbytes, entry.layer = scan_stream(head, read, entry.sniffed, capture, limits, budget)
        return
    spool = _Spool(store.tmpdir)
    try:
        h = hashlib.sha256(head)
        spool.write(head)
        count = len(head)
        while part := read(CHUNK):
            h.update(part)
            spool.write(part)
            count += len(part)
        blob = h.hexdigest()
        key = key_for(blob, entry.sniffed, limits, capture) if not read.error else None

        def decode(value: dict) -> tuple[LayerScan, int, int]:
            scan, entries, chars, cached_blob, cached_count = _decode(value)
            if cached_blob != blob or cached_count != count:  # the key names this blob: so must the entry
                raise ValueError("an entry for other bytes")
            return scan, entries, chars

        cached = store.get(key, decode) if key is not None else None
        if cached is not None:
            scan, entries, chars = cached
            if _fits(budget, entries, chars):
                entry.sha256, entry.nbytes, entry.layer = blob, count, scan
                if budget is not None:
                    budget.entries[1] += entries
                    budget.name_chars[1] += chars
                return
        spool.rewind()
        spool.read(len(head))
        counted: Any = _Counted(budget)  # the walk asks only `refuse` of a budget
        # The walk's allowance grows with the input bytes read: as far as the spool has been read.
        if budget is not None:
            read_before, at_start = budget.bytes_read, budget.bytes_read() - count

            def _so_far() -> int:
                return at_start + spool.pos

            budget.bytes_read = _so_far
        try:
            digest, nbytes, scan = scan_stream(head, spool.read, entry.sniffed, capture, limits, counted)
        finally:
            if budget is not None:
                budget.bytes_read = read_before
        entry.sha256, entry.nbytes, entry.layer = digest, nbytes, scan
        if key is not None and scan.error is None and not scan.over_limit and scan.diff_id is not None:
            store.put(key, _encode(scan, blob, count, counted.chars))
    finally:
        spool.close()
