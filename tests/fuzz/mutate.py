"""A structure-aware mutator of image archives, built on tests/hostile.py.

Each case starts from a consistent archive (OCI or docker save, gzip/zstd/plain
layers) and applies a few mutations where a parser would see them: JSON values
swapped for other types, huge or deeply nested, lone surrogates; layer entries
with hostile names (controls, bidi, `../..`, deep and long paths), links out of
the root, pax/GNU/sparse headers, absurd sizes, duplicated and reordered
entries; corrupt gzip/zstd streams. In three cases of four the mutations are
made before the digests are computed (every digest fixed up, so the mutant
reaches the history stage); in the others, raw bytes of the finished archive
are flipped, truncated or duplicated as well.

`make_case(rng)` returns (name, bytes); everything is a function of the rng, so
a seed reproduces a case exactly.
"""

from __future__ import annotations

import copy
import io
import json
import random
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hostile as H  # noqa: E402
from hostile import Layer, M, Oci  # noqa: E402

HOSTILE_TEXT = [
    "x\nCLEAN: every digest verified; nothing at medium severity or above",
    "a\rb",
    "\x1b]52;c;aGk=\x07",
    "\x1b]0;title\x07",
    "\x1b[2J\x1b[H",
    "run\u202egnp.sh",
    "\u2066iso\u2069",
    "\x00nul",
    "\x85nel",
    "\u2028sep",
    "\ufeffbom",
    "\x7fdel",
    "\t\v\f",
    "é\u0301",
    "\U0001f600",
]
SURROGATE = "\ud800"
TYPE_SWAPS = [0, -1, 2**63, 1.5e308, True, None, [], {}, [1, "a"], {"a": 1}, "", "x" * 70_000]


def _text(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.5:
        return rng.choice(HOSTILE_TEXT)
    if pick < 0.7:
        return SURROGATE + rng.choice(HOSTILE_TEXT)
    return "".join(
        chr(
            rng.choice(
                [
                    rng.randrange(0, 0x20),
                    rng.randrange(0x80, 0xA0),
                    rng.randrange(0x20, 0x7F),
                    rng.randrange(0x202A, 0x202F),
                    rng.randrange(0xD800, 0xE000),
                ]
            )
        )
        for _ in range(rng.randrange(1, 12))
    )


def _name(rng: random.Random) -> str:
    """Hostile text a tar name can hold: lone surrogates become the undecodable bytes
    0x80-0xff (surrogateescape), NUL is dropped (it ends a ustar name)."""
    return (
        "".join(chr(0xDC80 + (ord(c) & 0x7F)) if 0xD800 <= ord(c) < 0xE000 else c for c in _text(rng) if c != "\0")
        or "x"
    )


def _nested(depth: int) -> object:
    v: object = "leaf"
    for i in range(depth):
        v = [v] if i % 2 else {"k": v}
    return v


# ------------------------------------------------------------------ JSON documents


def _paths(doc, prefix=()):
    """Every (container, key) in a JSON value, for picking one to mutate."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((doc, k))
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((doc, i))
            out += _paths(v, prefix + (i,))
    return out


def mutate_json(rng: random.Random, doc: object) -> object:
    slots = _paths(doc)
    if not slots:
        return copy.deepcopy(rng.choice(TYPE_SWAPS))
    for _ in range(rng.randrange(1, 4)):
        container, key = rng.choice(slots)
        op = rng.random()
        if op < 0.35:
            container[key] = copy.deepcopy(rng.choice(TYPE_SWAPS))  # never one shared object twice
        elif op < 0.55:
            container[key] = _text(rng)
        elif op < 0.65:
            container[key] = _nested(rng.choice([50, 300, 900]))  # json.dumps stops at 1000
        elif op < 0.75 and isinstance(container, dict):
            del container[key]
            slots = _paths(doc)
            if not slots:
                break
        elif op < 0.85 and isinstance(container[key], list) and container[key]:
            factor = rng.choice([2, 50, 1000])
            if len(json.dumps(container[key])) * factor > 4_000_000:
                factor = 2  # a few MB at most: past max_json is a case of its own, not every tenth
            container[key] = container[key] * factor
        elif isinstance(container, dict):
            container[_text(rng)] = _text(rng)
    return doc


def _config_mutator(rng):
    def mutate(cfg: dict):
        cfg.setdefault("config", {})["Labels"] = {"org.example": "v"}
        if rng.random() < 0.5:
            cfg["history"].append({"created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True})
        return mutate_json(rng, cfg)

    return mutate


def _json_mutator(rng):
    return lambda doc: mutate_json(rng, doc)


# ------------------------------------------------------------------ layer tars


def _hostile_member(rng: random.Random) -> M | bytes:
    op = rng.random()
    if op < 0.25:
        return M(
            rng.choice(["", "etc/", "bin/", "usr/lib/"]) + _name(rng) + "x",
            b"#!/bin/sh\n",
            mode=rng.choice([0o644, 0o755, 0o4755]),
        )
    if op < 0.35:
        return M("d/" * rng.choice([100, 300, 3000, 20000]) + "f", b"x")
    if op < 0.42:
        return M("long" + "n" * rng.choice([200, 5000, 70000]), b"y")
    if op < 0.52:
        return M(
            rng.choice(["escape", "etc/link", "x"]),
            type="symlink",
            link=rng.choice(["../../../../etc/shadow", "/etc/passwd", "../" * 50, "a/../../b", _name(rng)]),
        )
    if op < 0.58:
        return M("hard", type="hardlink", link=rng.choice(["../../x", "/etc/hostname", "missing", "etc/hostname"]))
    if op < 0.66:
        return M(
            "paxed",
            b"z",
            pax={
                rng.choice(
                    ["path", "linkpath", "size", "mtime", "uid", "uname", "GNU.sparse.map", "SCHILY.xattr.user.x"]
                ): _name(rng)
            },
        )
    if op < 0.74:
        return H.raw_member(
            rng.choice(["sparse", "gnu", "weird"]),
            b"s" * rng.randrange(0, 600),
            typeflag=rng.choice([b"S", b"L", b"K", b"x", b"g", b"7", b"V", b"\0", b"Z"]),
        )
    if op < 0.82:
        return H.header(
            rng.choice(["huge", "neg"]),
            size_field=rng.choice([b"77777777777\0", H.base256(2**62), H.base256(-5), b"zzzzzzzzzzz\0", b"\0" * 12]),
        )
    if op < 0.9:
        return M(rng.choice(["etc/.wh.hostname", ".wh..wh..opq", "bin/.wh..wh..opq", ".wh..", "etc/.wh."]))
    return M(rng.choice(["etc/hostname", "bin/sh"]), rng.randbytes(rng.randrange(0, 64)))


def mutate_layer(rng: random.Random) -> bytes:
    members: list[M | bytes] = [
        M("etc/", type="dir"),
        M("etc/hostname", b"box\n"),
        M("bin/", type="dir"),
        M("bin/sh", b"\x7fELF" + b"\0" * 60, mode=0o755),
    ]
    for _ in range(rng.randrange(1, 6)):
        members.insert(rng.randrange(0, len(members) + 1), _hostile_member(rng))
    if rng.random() < 0.2:
        members += [members[rng.randrange(len(members))]] * rng.choice([2, 100])
    if rng.random() < 0.15:
        rng.shuffle(members)
    if rng.random() < 0.1:
        members += [M(f"many/f{i}") for i in range(rng.choice([1000, 5000]))]
    fmt = rng.choice([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
    try:
        return H.tar_bytes(members, fmt=fmt)
    except (ValueError, tarfile.TarError, UnicodeError):
        return H.tar_bytes(members, fmt=tarfile.PAX_FORMAT)


def _layer(rng: random.Random) -> Layer:
    tar = mutate_layer(rng) if rng.random() < 0.7 else H.default_layer()
    comp = rng.choice(["gzip", "gzip", "zstd", "none"])
    layer = Layer.of(tar, comp)
    r = rng.random()
    if r < 0.08:
        layer.blob = H.deflate_corrupt(layer.blob, rng.randrange(0, max(1, len(layer.blob))))
    elif r < 0.14:
        layer.blob = layer.blob[: rng.randrange(0, len(layer.blob) + 1)]
    elif r < 0.18:
        layer.media_type = rng.choice(["application/vnd.oci.image.layer.v1.tar+zstd", "text/plain", _text(rng)])
    return layer


# ------------------------------------------------------------------ raw bytes


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        op = rng.random()
        if op < 0.4 and b:  # flip bytes, preferring tar header blocks
            block = rng.randrange(0, max(1, len(b) // 512)) * 512
            for _ in range(rng.randrange(1, 8)):
                i = min(len(b) - 1, block + rng.randrange(0, 512))
                b[i] = rng.randrange(256)
        elif op < 0.65:
            b = b[: rng.randrange(0, len(b) + 1)]
        elif op < 0.85 and len(b) >= 1024:  # duplicate a run of blocks
            start = rng.randrange(0, len(b) // 512) * 512
            end = min(len(b), start + 512 * rng.randrange(1, 8))
            b[end:end] = b[start:end]
        else:
            b += rng.randbytes(rng.randrange(1, 2000))
    return bytes(b)


# ------------------------------------------------------------------ cases


def make_case(rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(["oci", "oci", "oci", "docker"])
    layers = [_layer(rng) for _ in range(rng.choice([1, 1, 2, 3]))]
    if kind == "oci":
        o = Oci(layers=layers, ref=_text(rng) if rng.random() < 0.2 else "example.test/fuzz:1")
        target = rng.random()
        if target < 0.5:
            o.mutate_config = _config_mutator(rng)
        elif target < 0.7:
            o.mutate_manifest = _json_mutator(rng)
        elif target < 0.85:
            o.mutate_index = _json_mutator(rng)
        if rng.random() < 0.05:  # nesting past any recursion limit, as raw JSON text
            n = rng.choice([1000, 100_000])
            o.config_bytes = b'{"history":' + b"[" * n + b"]" * n + b"}"
        if rng.random() < 0.1:
            o.extra_members = [M(_name(rng), b"{}"), M("index.json", b"{}")]
        data = o.tar()
    else:
        tars = [mutate_layer(rng) if rng.random() < 0.6 else H.default_layer() for _ in layers]
        mm = _json_mutator(rng) if rng.random() < 0.5 else None
        data = H.docker_archive(layers=tars, mutate_manifest=mm)
    if rng.random() < 0.25:  # the rest keep every digest right
        data = mutate_bytes(rng, data)
    if rng.random() < 0.1:
        data = H.compress(data, rng.choice(["gzip", "zstd"]))
    return kind, data


def is_tar(data: bytes) -> bool:
    try:
        with tarfile.open(fileobj=io.BytesIO(data)):
            return True
    except (tarfile.TarError, EOFError, OSError, ValueError):
        return False


__all__ = ["make_case", "mutate_json", "mutate_layer", "mutate_bytes", "json"]
