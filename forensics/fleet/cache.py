"""The layer cache folder (`scan-many --cache DIR`): content-addressed files, shared by workers.

`DIR/layers/v1/<key[:2]>/<key>.json`, the key from forensics.archive.layercache (the
layer's compressed digest as computed from its bytes, the tool version and the options).
Each file is one header line, `{"key": ..., "sha256": <of the body>}`, then the body. An
entry is written to a temporary name in the same folder and renamed over the target, so
concurrent workers, on one host or on a shared volume, see a whole entry or none; two
workers writing the same key write the same bytes. Before use, the header's key must be
the one looked up and the body's sha256 must match: anything else (a torn copy, a bit
flip, a file planted under that name) is counted as rejected and the layer is analyzed
again from its bytes, and the new entry replaces the bad one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

MAX_ENTRY = 2 << 30  # a layer of a million entries is a few hundred MB of index


class LayerCache:
    def __init__(self, root: str) -> None:
        self.root = os.path.join(root, "layers", "v1")
        self.tmpdir = os.path.join(root, "tmp")
        os.makedirs(self.root, exist_ok=True)
        os.makedirs(self.tmpdir, exist_ok=True)
        self.hits = self.misses = self.rejected = 0

    def path(self, key: str) -> str:
        return os.path.join(self.root, key[:2], key + ".json")

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "rejected": self.rejected}

    def get(self, key: str, decode: Callable[[dict], Any]) -> Any | None:
        try:
            with open(self.path(key), "rb") as fh:
                raw = fh.read(MAX_ENTRY + 1)
        except FileNotFoundError:
            self.misses += 1
            return None
        except OSError:
            self.rejected += 1
            return None
        value = self._check(key, raw)
        if value is None:
            self.rejected += 1
            return None
        try:
            decoded = decode(value)
        except (ValueError, RecursionError):
            self.rejected += 1
            return None
        self.hits += 1
        return decoded

    @staticmethod
    def _check(key: str, raw: bytes) -> dict | None:
        head, sep, body = raw.partition(b"\n")
        if not sep or len(raw) > MAX_ENTRY:
            return None
        try:
            header = json.loads(head)
            if not isinstance(header, dict) or header.get("key") != key:
                return None
            if header.get("sha256") != hashlib.sha256(body).hexdigest():
                return None
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):  # planted past the parser's depth
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict) -> None:
        body = json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii")
        header = json.dumps({"key": key, "sha256": hashlib.sha256(body).hexdigest()}).encode("ascii")
        target = self.path(key)
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            # No fsync: an entry a crash left empty or torn fails its own digest and is recomputed.
            with os.fdopen(fd, "wb") as fh:
                fh.write(header + b"\n" + body)
            os.replace(tmp, target)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass  # a cache that cannot be written costs time, not results
