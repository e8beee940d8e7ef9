#!/usr/bin/env python3
"""Cost of each piece of the tool's per-layer work, single-threaded, no GIL contention.

Loads every layer blob of an image into memory (compressed, and decompressed as
1 MiB chunks), then times in isolation, with the tool's own code:

  producer side (the calling thread in layerscan.scan_stream)
    P1 floor-style decompress of the blob (decompressobj / stream_reader, no limits)
    P2 the tool's reader chain: _HashingReader (sha256 + bytes() copy) -> open_stream().read(CHUNK)
  worker side (layerscan._walk)
    W1 sha256 of the uncompressed stream (diff_id)
    W2 TarReader header walk only (content skipped)
    W3 W2 + sha256 of every regular file's content, no capture
    W4 the real _walk (diff_id + per-file sha256 + capture=pipeline._capture), fed from a pre-filled queue
    W5 pipeline._capture alone, over every member name
  after the scan (main thread)

    .venv/bin/python bench/profile_parts.py bench/out/make_image-gzip-1G.oci.tar
"""

from __future__ import annotations

import hashlib
import io
import queue
import sys
import tarfile
import time

from forensics.archive.decompress import open_stream
from forensics.archive.layerscan import CHUNK, LayerScan, Limits, _HashingReader, _QueueSource, _walk
from forensics.archive.tarstream import Source, TarReader
from forensics.pipeline import _capture

try:
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover
    import zlib as _zlib
import zstandard

MiB = 1 << 20


class ListSource(Source):
    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__()
        self._it = iter(chunks)

    def _fill(self) -> bytes:
        return next(self._it, b"")


def load_layers(path: str) -> list[tuple[str, bytes]]:
    out = []
    with tarfile.open(path, "r") as tf:
        for m in tf:
            if not m.isfile() or m.size < 4:
                continue
            data = tf.extractfile(m).read()
            if data[:2] == b"\x1f\x8b":
                out.append(("gzip", data))
            elif data[:4] == b"\x28\xb5\x2f\xfd":
                out.append(("zstd", data))
    return out


def timed(label: str, fn, nbytes: int, results: dict) -> None:
    c0, t0 = time.thread_time(), time.perf_counter()
    fn()
    wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
    results[label] = wall
    print(f"  {label:<62} {wall:7.3f}s wall {cpu:7.3f}s CPU  {nbytes / MiB / wall:8.1f} MiB/s of uncompressed")


def main() -> int:
    path = sys.argv[1]
    print(f"loading {path} ...", file=sys.stderr)
    blobs = load_layers(path)
    comp_total = sum(len(b) for _, b in blobs)

    # Decompress once, keep the tool-sized chunks the worker would see.
    layers: list[list[bytes]] = []
    for kind, data in blobs:
        r = open_stream(kind, io.BytesIO(data))
        chunks = []
        while c := r.read(CHUNK):
            chunks.append(c)
        layers.append(chunks)
    unc_total = sum(len(c) for ch in layers for c in ch)
    print(
        f"{len(blobs)} layer blobs, {comp_total / MiB:.1f} MiB compressed, {unc_total / MiB:.1f} MiB uncompressed, "
        f"{sum(len(ch) for ch in layers)} chunks"
    )
    R: dict[str, float] = {}

    print("producer side (main thread in the tool):")

    def p0():
        for _, data in blobs:
            hashlib.sha256(data).hexdigest()

    def p1():
        for kind, data in blobs:
            h = hashlib.sha256()
            if kind == "gzip":
                d = _zlib.decompressobj(wbits=31)
                for i in range(0, len(data), CHUNK):
                    h.update(d.decompress(data[i : i + CHUNK]))
            else:
                rd = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_size=CHUNK)
                while rd.read(CHUNK):
                    pass

    def p1b():
        for kind, data in blobs:
            if kind == "gzip":
                d = _zlib.decompressobj(wbits=31)
                for i in range(0, len(data), CHUNK):
                    d.decompress(data[i : i + CHUNK])
            else:
                rd = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_size=CHUNK)
                while rd.read(CHUNK):
                    pass

    def p2():
        for kind, data in blobs:
            bio = io.BytesIO(data)
            mv = memoryview(data)
            pos = [0]

            def read(n, mv=mv, pos=pos):
                out = mv[pos[0] : pos[0] + n]
                pos[0] += len(out)
                return out

            raw = _HashingReader(b"", read)
            s = open_stream(kind, raw)
            while s.read(CHUNK):
                pass
            raw.hash.hexdigest()
            del bio

    timed("P0 sha256 of the compressed blobs (once; the tool does it 2x)", p0, unc_total, R)
    timed("P1b floor-style decompress only", p1b, unc_total, R)
    timed("P2 tool reader chain: _HashingReader + open_stream().read(1MiB)", p2, unc_total, R)

    print("worker side (layer worker thread in the tool):")

    def w1():
        for ch in layers:
            h = hashlib.sha256()
            for c in ch:
                h.update(c)

    def w2():
        n = 0
        for ch in layers:
            tar = TarReader(ListSource(ch))
            while tar.next() is not None:
                n += 1

    def w3():
        for ch in layers:
            tar = TarReader(ListSource(ch))
            while (m := tar.next()) is not None:
                if m.type == "file":
                    h = hashlib.sha256()
                    while part := tar.read(CHUNK):
                        h.update(part)
                    h.hexdigest()

    members_all = []

    def w4():
        for ch in layers:
            q: queue.Queue = queue.Queue()
            for c in ch:
                q.put(c)
            q.put(None)
            src = _QueueSource(q, hash_stream=True)
            scan = LayerScan(compression="gzip")
            _walk(src, scan, _capture, Limits())
            members_all.append(scan.files)

    timed("W1 sha256 of the uncompressed stream (diff_id)", w1, unc_total, R)
    timed("W2 TarReader.next() walk only, content skipped", w2, unc_total, R)
    timed("W3 walk + sha256 of each file's content", w3, unc_total, R)
    timed("W4 real _walk: diff_id + walk + per-file sha256 + _capture", w4, unc_total, R)
    names = [m.raw_name or m.path.lstrip("/") for ms in members_all for m in ms]
    sizes = [m.size for ms in members_all for m in ms]

    def w5():
        for n, s in zip(names, sizes):
            _capture(n, s)

    timed(f"W5 pipeline._capture alone over {len(names)} names", w5, unc_total, R)

    py_walk = R["W2 TarReader.next() walk only, content skipped"]
    print(
        f"\nper member: walk {py_walk / len(names) * 1e6:.1f} us, capture "
        f"{R[f'W5 pipeline._capture alone over {len(names)} names'] / len(names) * 1e6:.1f} us "
        "(FileEntry construction is part of W4 since the walker builds them)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
