"""Hostile inputs: the analyzer must never crash, hang or blow up its memory.

Every case builds real bytes in a temporary directory (tests/hostile.py) and is
checked three ways:

* test_api: `forensics.pipeline.analyze` in-process under a watchdog, then the
  report is rendered as text and JSON (what the CLI prints) and its findings checked;
* test_cli: the typer app in-process (`scan PATH --json FILE`): exit code, no
  exception escaping, a single `forensics: error:` line for unreadable input;
* test_cli_subprocess: for a subset (the bombs, the 50 MB documents, the hangs,
  stdin, FIFOs, the crashes, one case of each input kind), `python -m forensics
  scan` in a real subprocess, with its peak RSS measured (< 300 MB) and a hard
  timeout.

A subprocess costs ~0.25 s of imports, so the subset is started in the background
when the module starts and runs while the in-process tests do.

Conventions: exit 0 = nothing at or above --fail-on (high), 1 = findings,
2 = input could not be analyzed. `codes` must all be present in the report,
`absent` must not be.

KNOWN_BUGS lists the cases that currently fail (strict xfail, with the reason):
when a fix lands the case XPASSes and its line must be deleted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hostile as H  # noqa: E402
from hostile import Layer, M, Oci  # noqa: E402

from forensics.archive.layerscan import Limits  # noqa: E402
from forensics.archive.scan import InputError  # noqa: E402
from forensics.models import Report  # noqa: E402
from forensics.pipeline import analyze  # noqa: E402
from forensics.serialize import from_json, to_json  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
RSS_LIMIT_KB = 300 * 1024
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

MALFORMED = "archive.malformed"
UNSAFE = "archive.unsafe-path"
DUP = "archive.duplicate-entry"
UNKNOWN = "archive.unknown-format"
LIMIT = "archive.limit-exceeded"

# case name -> why it fails today. Strict: a fixed bug XPASSes and fails until removed here.
KNOWN_BUGS: dict[str, str] = {}


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


@dataclass
class Case:
    name: str
    build: Callable[[Path], str]  # writes the input under a fresh dir, returns the path to scan
    exits: frozenset[int]
    codes: frozenset[str] = frozenset()
    absent: frozenset[str] = frozenset()
    input_error: bool | None = False  # True: InputError / one error line; None: either way is fine
    stdin: Callable[[], bytes] | None = None  # the CLI reads `-` from these bytes
    check: Callable[[Report], None] | None = None  # extra assertions on the report
    api: bool = True
    cli: bool = True  # in-process CLI
    sub: bool = False  # also a real subprocess (RSS, timeout, stdin, FIFOs)
    isolate: bool = False  # may hang: test_api runs analyze() in a killable subprocess instead
    max_seconds: float = 10.0
    limits: Limits | None = None  # API only
    args: tuple[str, ...] = ()  # extra CLI arguments


CASES: dict[str, Case] = {}


def case(name: str, exits, codes=(), **kw):
    def register(build):
        assert name not in CASES, name
        if "absent" in kw:
            kw["absent"] = frozenset(kw["absent"])
        CASES[name] = Case(name, build, frozenset({exits} if isinstance(exits, int) else exits), frozenset(codes), **kw)
        return build

    return register


def writes(name: str, data: bytes | Callable[[], bytes], exits, codes=(), **kw) -> None:
    """A case whose input is one file with these bytes."""

    def build(d: Path) -> str:
        p = d / "input.tar"
        p.write_bytes(data() if callable(data) else data)
        return str(p)

    case(name, exits, codes, **kw)(build)


def oci_case(name: str, make: Callable[[], Oci | bytes], exits=1, codes=(MALFORMED,), **kw) -> None:
    def data() -> bytes:
        o = make()
        return o.tar() if isinstance(o, Oci) else o

    writes(name, data, exits, codes, **kw)


def layer_case(
    name: str, make_tar: Callable[[], bytes], exits=1, codes=(MALFORMED,), compression: str = "gzip", **kw
) -> None:
    oci_case(name, lambda: Oci(layers=[Layer.of(make_tar(), compression)]), exits, codes, **kw)


HEAVY = dict(api=False, cli=False, sub=True)  # only in a subprocess: RSS measured, killable


def finding_codes(report: Report) -> set[str]:
    return {f.code for f in report.findings}


def details(report: Report, code: str) -> str:
    return "\n".join(f.detail for f in report.findings if f.code == code)


# ==========================================================================
# 1. inputs that are not archives at all


writes("empty-file", b"", 2, input_error=True)
for _size in (1, 511, 512, 513, 10000):
    for _seed in (0, 1, 2):
        writes(
            f"random-{_size}-seed{_seed}",
            H.random_bytes(_seed, _size),
            2,
            input_error=True,
        )
writes("zeros-10k", b"\0" * 10240, 2, {UNKNOWN})
writes("bzip2-whole", lambda: __import__("bz2").compress(sample("relay-genuine.oci.tar")), 2, input_error=True)
writes("xz-whole", lambda: __import__("lzma").compress(sample("relay-genuine.oci.tar")), 2, input_error=True)
writes("json-not-tar", b'{"manifests": []}', 2, input_error=True)
writes("gzip-of-random", lambda: H.gz(H.random_bytes(3, 5000)), 2, input_error=None)  # either refusal is fine
writes("gzip-of-empty", lambda: H.gz(b""), 2, input_error=None)
writes("tar-of-unrelated-files", lambda: H.tar_bytes([M("hello.txt", b"hi"), M("etc/", type="dir")]), 2, {UNKNOWN})
writes("tar-end-marker-only", b"\0" * 1024, 2, {UNKNOWN})


@case("nonexistent", 2, input_error=True)
def _(d: Path) -> str:
    return str(d / "no" / "such.tar")


@case("dev-null", 2, input_error=True)
def _(d: Path) -> str:
    return os.devnull


@case("empty-dir", 2, {UNKNOWN})
def _(d: Path) -> str:
    (d / "layout").mkdir()
    return str(d / "layout")


@case("dir-random-files", 2, {UNKNOWN})
def _(d: Path) -> str:
    root = d / "layout"
    (root / "sub").mkdir(parents=True)
    for i in range(5):
        (root / f"f{i}").write_bytes(H.random_bytes(i, 1000 * i))
    (root / "sub" / "x.json").write_bytes(b"[" * 10000)
    return str(root)


@case("dir-valid-oci", 0)
def _(d: Path) -> str:
    Oci().write_dir(d / "layout")
    return str(d / "layout")


@case("dir-index-symlink-to-etc-passwd", 1, {UNSAFE})
def _(d: Path) -> str:
    root = d / "layout"
    Oci().write_dir(root)
    (root / "index.json").unlink()
    (root / "index.json").symlink_to("/etc/passwd")
    return str(root)


@case("dir-blob-symlink-outside", 1, {UNSAFE})
def _(d: Path) -> str:
    root = d / "layout"
    o = Oci()
    o.write_dir(root)
    blob = root / "blobs" / "sha256" / H.hexof(o.layers[0].blob)
    blob.unlink()
    blob.symlink_to("../../../../../../etc/passwd")
    return str(root)


@case("dir-fifo-as-index", 1, {MALFORMED})
def _(d: Path) -> str:
    root = d / "layout"
    Oci().write_dir(root)
    (root / "index.json").unlink()
    os.mkfifo(root / "index.json")  # must not be opened: nobody will ever write to it
    return str(root)


def _feed_fifo(path: Path, data: bytes) -> None:
    def run() -> None:
        try:
            fd = os.open(path, os.O_WRONLY)
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except (BrokenPipeError, OSError):
            pass

    threading.Thread(target=run, daemon=True).start()


@case("fifo-valid-archive", 0)
def _(d: Path) -> str:
    # process substitution (`forensics scan <(docker save x)`) hands over a pipe
    p = d / "pipe"
    os.mkfifo(p)
    _feed_fifo(p, sample("relay-genuine.oci.tar"))
    return str(p)


@case("fifo-garbage", 2, input_error=True)
def _(d: Path) -> str:
    p = d / "pipe"
    os.mkfifo(p)
    _feed_fifo(p, H.random_bytes(7, 20000))
    return str(p)


# ==========================================================================
# 2. truncation of valid archives


def _only_end_blocks_removed(data: bytes, cut: int) -> bool:
    """The cut leaves every member and either no end block or at least one whole one."""
    members_end = len(data.rstrip(b"\0"))
    members_end += (-members_end) % 512
    return (
        cut >= members_end
        and data[cut:].count(0) == len(data) - cut
        and (cut == members_end or cut - members_end >= 512)
    )


def _truncation_check(full: bytes, cut: int):
    def check(report: Report) -> None:
        if _only_end_blocks_removed(full, cut):
            return  # a missing end-of-archive marker is legal
        if cut % 512 == 0 and report.verdict == "unreadable":
            return  # cut between members before the metadata: a shorter tar, nothing says it was longer
        # exit 1 or 2 (cut before the metadata): either way the damage must be named
        assert MALFORMED in finding_codes(report), f"cut at {cut}: no archive.malformed in {finding_codes(report)}"

    return check


for _name in ("relay-genuine.oci.tar", "clean.docker.tar", "clean-zstd.oci.tar"):
    _full = sample(_name)
    _cuts = H.truncations(len(_full))
    for _i, _cut in enumerate(_cuts):
        _only_end = _only_end_blocks_removed(_full, _cut)
        writes(
            f"truncated-{_name.split('.')[0]}-at-{_cut}",
            _full[:_cut],
            {0} if _only_end else {1, 2},
            check=_truncation_check(_full, _cut),
            input_error=None,  # short cuts are InputError (not a tar), longer ones findings
            cli=_name.startswith("relay"),
            sub=_name.startswith("relay") and _i == len(_cuts) // 2,
        )

# Damage before the metadata document was read: the report must still say the archive is
# damaged (archive.malformed), not only that it "is not an image archive".
writes("truncated-before-index-json", lambda: sample("relay-genuine.oci.tar")[:40000], {1, 2}, {MALFORMED})
writes("truncated-docker-before-manifest-json", lambda: sample("clean.docker.tar")[:60000], {1, 2}, {MALFORMED})


# ==========================================================================
# 3. compressed whole archives, stdin


def _gzip_whole_check(report: Report) -> None:
    assert report.input.compression == "gzip"
    assert len(report.images) == 1 and report.verdict == "clean"


writes("gzip-whole-valid", lambda: H.gz(sample("relay-genuine.oci.tar")), 0, check=_gzip_whole_check)
writes(
    "zstd-whole-valid",
    lambda: H.zst(sample("clean.docker.tar")),
    0,
    check=lambda r: (r.input.compression == "zstd" and len(r.images) == 1) or pytest.fail(str(r.input)),
)
writes(
    "gzip-whole-truncated",
    lambda: (lambda b: b[: len(b) // 2])(H.gz(sample("relay-genuine.oci.tar"))),
    {1, 2},
    {MALFORMED},
)
writes("gzip-whole-truncated-near-end", lambda: H.gz(sample("relay-genuine.oci.tar"))[:-4], {1, 2}, {MALFORMED})
writes(
    "gzip-whole-corrupt",
    lambda: H.deflate_corrupt(H.gz(H.random_bytes(1, 3000) + sample("relay-genuine.oci.tar")), 2000),
    {1, 2},
    {MALFORMED},
)
writes(
    "zstd-whole-truncated",
    lambda: (lambda b: b[: len(b) // 2])(H.zst(sample("relay-genuine.oci.tar"))),
    {1, 2},
    {MALFORMED},
)
writes("gzip-whole-trailing-zeros", lambda: H.gz(sample("relay-genuine.oci.tar")) + b"\0" * 1000, 0)
writes(
    "gzip-whole-trailing-garbage",
    lambda: H.gz(sample("relay-genuine.oci.tar")) + H.random_bytes(5, 777),
    1,
    {MALFORMED},
)
writes("tar-trailing-garbage-after-end", lambda: sample("relay-genuine.oci.tar") + H.random_bytes(6, 3000), {0, 1})


def _stdin_case(name: str, data: Callable[[], bytes], exits, codes=(), **kw) -> None:
    case(name, exits, codes, stdin=data, api=False, sub=True, **kw)(lambda d: "-")


_stdin_case("stdin-valid", lambda: sample("relay-genuine.oci.tar"), 0)
_stdin_case("stdin-zstd-of-gzip", lambda: H.zst(H.gz(sample("clean.docker.tar"))), 2, {UNKNOWN}, input_error=None)
_stdin_case("stdin-gzip-valid", lambda: H.gz(sample("clean.docker.tar")), 0)
_stdin_case("stdin-empty", lambda: b"", 2, input_error=True)
_stdin_case("stdin-garbage", lambda: H.random_bytes(9, 5000), 2, input_error=True)
_stdin_case("stdin-truncated", lambda: sample("relay-genuine.oci.tar")[:40000], {1, 2}, {MALFORMED})


# ==========================================================================
# 4. JSON documents


def deep(n: int = 100_000) -> bytes:
    return b"[" * n


def deep_obj(n: int = 100_000) -> bytes:
    return b'{"a":' * n


oci_case("index-deep-nesting", lambda: Oci(index_bytes=deep()), codes=(LIMIT,))
oci_case("index-deep-nesting-objects", lambda: Oci(index_bytes=deep_obj()), codes=(LIMIT,))
oci_case("manifest-deep-nesting", lambda: Oci(manifest_bytes=deep()), codes=(LIMIT,))
oci_case("config-deep-nesting", lambda: Oci(config_bytes=deep_obj()), codes=(LIMIT,))
writes("docker-manifest-json-deep-nesting", lambda: H.docker_archive(manifest_json=deep()), 1, {LIMIT})


def _deep_label(cfg: dict) -> None:
    v: list = []
    for _ in range(900):  # under the recursion limit: parses, then every consumer must cope
        v = [v]
    cfg["config"]["Labels"] = {"deep": v}
    cfg["history"][0]["created_by"] = v
    cfg["rootfs"]["type"] = v


oci_case("config-deep-but-parseable", lambda: Oci(mutate_config=_deep_label), {0, 1}, ())


def _huge_index() -> Oci:
    o = Oci()
    doc = json.loads(o.documents()[2])
    doc["annotations"] = {"x": "A" * (50 << 20)}
    return Oci(index_bytes=H.jbytes(doc))


def _huge_config() -> Oci:
    return Oci(mutate_config=lambda c: c["config"].__setitem__("Labels", {"x": "B" * (50 << 20)}))


oci_case("index-50MB-string", _huge_index, codes=(LIMIT,), **HEAVY)
oci_case("config-50MB-string", _huge_config, codes=(LIMIT,), **HEAVY)


def _near_limit_config(cfg: dict) -> None:
    cfg["config"]["Labels"] = {"x": "C" * ((16 << 20) - 4096)}  # just under the 16 MiB document limit


oci_case("config-just-under-json-limit", lambda: Oci(mutate_config=_near_limit_config), 0, (), **HEAVY)

_BIG = "9" * 100_000
oci_case(
    "index-100000-digit-number", lambda: Oci(index_bytes=b'{"schemaVersion":' + _BIG.encode() + b',"manifests":[]}')
)
oci_case(
    "config-100000-digit-number",
    lambda: Oci(config_bytes=b'{"architecture":"amd64","os":"linux","created":' + _BIG.encode() + b"}"),
)
oci_case(
    "descriptor-size-4000-digits",  # parses (under the 4300-digit limit): a huge but valid int
    lambda: Oci(mutate_index=lambda d: d["manifests"][0].__setitem__("size", 10**4000)),
    1,
    {"blob.size-mismatch"},
)
oci_case(
    "descriptor-size-negative",
    lambda: Oci(mutate_manifest=lambda m: m["layers"][0].__setitem__("size", -1)),
    1,
    {"blob.size-mismatch"},
)
oci_case("descriptor-size-float", lambda: Oci(mutate_manifest=lambda m: m["config"].__setitem__("size", 1e308)))
oci_case("index-invalid-utf8", lambda: Oci(index_bytes=b'{"schemaVersion":2,"x":"\xff\xfe\xc0\x80","manifests":[]}'))
oci_case("config-invalid-utf8", lambda: Oci(config_bytes=b'{"os":"linux","architecture":"\xff\xfe"}'))
oci_case("index-utf16-bom", lambda: Oci(index_bytes='{"schemaVersion":2,"manifests":[]}'.encode("utf-16")), {0, 1}, ())
oci_case("index-null", lambda: Oci(index_bytes=b"null"))
oci_case("index-list", lambda: Oci(index_bytes=b"[]"))
oci_case("index-string", lambda: Oci(index_bytes=b'"index"'))
oci_case("index-manifests-object", lambda: Oci(mutate_index=lambda d: d.__setitem__("manifests", {"a": 1})))
oci_case("index-manifests-entry-list", lambda: Oci(mutate_index=lambda d: d["manifests"].append([1, 2])))
oci_case("manifest-null", lambda: Oci(manifest_bytes=b"null"))
oci_case("manifest-list", lambda: Oci(manifest_bytes=b"[]"))
oci_case("config-null", lambda: Oci(config_bytes=b"null"))
oci_case("config-list", lambda: Oci(config_bytes=b"[1,2]"))
oci_case(
    "manifest-config-descriptor-list", lambda: Oci(mutate_manifest=lambda m: m.__setitem__("config", [m["config"]]))
)
oci_case(
    "manifest-layers-object", lambda: Oci(mutate_manifest=lambda m: m.__setitem__("layers", {"0": m["layers"][0]}))
)
writes("docker-manifest-json-null", lambda: H.docker_archive(manifest_json=b"null"), 1, {MALFORMED})
writes("docker-manifest-json-object", lambda: H.docker_archive(manifest_json=b'{"Config":"x"}'), 1, {MALFORMED})
writes(
    "docker-manifest-json-wrong-types",
    lambda: H.docker_archive(mutate_manifest=lambda m: m[0].update(Config=5, Layers="x", RepoTags={"a": 1})),
    1,
    {MALFORMED},
)
writes(
    "docker-config-path-escapes",
    lambda: H.docker_archive(mutate_manifest=lambda m: m[0].update(Config="../../../../etc/passwd")),
    1,
    {UNSAFE},
    check=lambda r: "root:" not in r.model_dump_json() or pytest.fail("read /etc/passwd"),
)
writes(
    "docker-config-missing-plain-name",
    lambda: H.docker_archive(mutate_manifest=lambda m: m[0].update(Config="config.json")),
    1,
    {"blob.missing"},
)
writes(
    "docker-layer-missing-plain-name",
    lambda: H.docker_archive(mutate_manifest=lambda m: m[0]["Layers"].append("abc/layer.tar")),
    1,
    {"blob.missing"},
)
writes(
    "docker-layer-path-absolute",
    lambda: H.docker_archive(mutate_manifest=lambda m: m[0]["Layers"].append("/etc/passwd")),
    1,
    {UNSAFE},
)


def _set_desc(**fields):
    def mutate(d: dict) -> None:
        d["manifests"][0].update(fields)

    return mutate


oci_case("descriptor-size-as-string", lambda: Oci(mutate_index=_set_desc(size="714")))
oci_case("descriptor-digest-as-number", lambda: Oci(mutate_index=_set_desc(digest=12345)))
oci_case(
    "descriptor-digest-traversal",
    lambda: Oci(mutate_index=_set_desc(digest="sha256:../../../etc/passwd")),
    check=lambda r: "root:" not in r.model_dump_json() or pytest.fail("read /etc/passwd"),
)
oci_case(
    "descriptor-digest-uppercase",
    lambda: Oci(mutate_manifest=lambda m: m["layers"][0].update(digest=m["layers"][0]["digest"].upper())),
)
oci_case(
    "descriptor-digest-unknown-algorithm",
    lambda: Oci(mutate_manifest=lambda m: m["layers"][0].update(digest="md5:" + "0" * 32)),
)
oci_case("descriptor-mediatype-as-list", lambda: Oci(mutate_index=_set_desc(mediaType=["a", "b"])))
oci_case(
    "descriptor-wrong-types-everywhere",
    lambda: Oci(mutate_index=_set_desc(annotations=[1], platform="linux", urls={"a": 1}, data=5)),
    {0, 1},
    (),
)
oci_case("descriptor-data-not-base64", lambda: Oci(mutate_index=_set_desc(data="!!!not base64!!!")), {0, 1}, ())


def _cycle(n: int) -> Oci:
    members, top = H.cyclic_index(n)
    return Oci(index_bytes=top, extra_members=members)


oci_case("index-self-cycle", lambda: _cycle(1))
oci_case("index-two-cycle", lambda: _cycle(2))


def _chain(depth: int, fanout: int = 1) -> Oci:
    o = Oci()
    manifest = o.documents()[1]
    blobs, top = H.nested_indexes(depth, fanout, manifest)
    return Oci(
        index_bytes=H.jbytes(
            {"schemaVersion": 2, "manifests": [{"mediaType": H.MT_INDEX, "digest": H.sha(top), "size": len(top)}]}
        ),
        extra_blobs=blobs,
    )


oci_case("index-nested-20-deep", lambda: _chain(20))
oci_case("index-nested-3-deep-valid", lambda: _chain(3), 0, ())
# A DAG: 7 levels of indexes each listing the level below 10 times. A few KB of
# genuine, self-consistent JSON; walking every path visits the manifest 10**7 times.
# The bound guards against that walk (minutes), not speed: 10 s holds on a loaded CI host.
oci_case(
    "index-dag-amplification",
    lambda: _chain(7, fanout=10),
    {0, 1},
    (),
    max_seconds=10.0,
    isolate=True,
    cli=False,
    sub=True,
)


def _many(d: dict) -> None:
    d["manifests"] = d["manifests"] * 10000  # 2.3 MB of index.json, one manifest


oci_case(
    "index-same-manifest-10000-times",
    lambda: Oci(mutate_index=_many),
    {0, 1},
    (),
    max_seconds=10.0,
    isolate=True,
    cli=False,
    sub=True,
)


# ==========================================================================
# 5. attacks on the outer tar (each appended to an otherwise valid OCI archive)


def outer(name: str, extra: list, exits=1, codes=(UNSAFE,), at_start=False, **kw) -> None:
    def make() -> bytes:
        return H.append_members(Oci().tar(), extra, at_start=at_start)

    oci_case(name, make, exits, codes, **kw)


outer("outer-dotdot", [M("../../evil", b"pwned")])
outer("outer-absolute", [M("/abs/path", b"pwned")])
outer("outer-symlink-etc-passwd", [M("passwd", type="symlink", link="/etc/passwd")])
outer("outer-symlink-dotdot", [M("a", type="symlink", link="../../..")])
outer("outer-hardlink-outside", [M("h", type="hardlink", link="../../etc/passwd")])
outer("outer-dup-index-different", [M("index.json", b'{"schemaVersion":2,"manifests":[]}')], 1, {DUP})


def _dup_blob() -> bytes:
    o = Oci()
    layer_name = f"blobs/sha256/{H.hexof(o.layers[0].blob)}"
    return H.append_members(o.tar(), [M(layer_name, H.gz(H.tar_bytes([M("evil", b"x")])))])


oci_case("outer-dup-layer-blob-different", _dup_blob, 1, {DUP, "blob.digest-mismatch"})


def _index_symlink() -> bytes:
    members = [m for m in Oci().members() if not (isinstance(m, M) and m.name == "index.json")]
    return H.tar_bytes(members + [M("index.json", type="symlink", link="/etc/passwd")])


oci_case(
    "outer-index-symlink-etc-passwd",
    _index_symlink,
    1,
    {UNSAFE},
    check=lambda r: "root:" not in r.model_dump_json() or pytest.fail("read /etc/passwd"),
)


def _blob_symlink_loop() -> bytes:
    o = Oci()
    name = f"blobs/sha256/{H.hexof(o.layers[0].blob)}"
    members = [m for m in o.members() if not (isinstance(m, M) and m.name == name)]
    return H.tar_bytes(
        members
        + [M(name, type="symlink", link="loop"), M("blobs/sha256/loop", type="symlink", link=H.hexof(o.layers[0].blob))]
    )


oci_case("outer-blob-symlink-loop", _blob_symlink_loop, 1, {"blob.missing"})


def _gnu_long(size: int) -> bytes:
    return H.raw_member("././@LongLink", b"n" * size, typeflag=b"L", magic=b"ustar  \0")


outer("outer-gnu-longname-over-1MiB", [_gnu_long((1 << 20) + 1), M("x", b"x")], 1, {MALFORMED})
outer("outer-gnu-longname-exactly-1MiB", [_gnu_long(1 << 20), M("x", b"x")], {0, 1}, ())
outer("outer-gnu-longname-1MiB-truncated", [_gnu_long((1 << 20) - 1)[:700_000]], 1, {MALFORMED})


def _pax(records: bytes, then: str = "p", data: bytes = b"content") -> list:
    return [H.raw_member("PaxHeaders/x", records, typeflag=b"x"), M(then, data)]


outer("outer-pax-bad-length", _pax(b"abc path=x\n"), 1, {MALFORMED})
outer("outer-pax-length-overrun", _pax(b"999 path=x\n"), 1, {MALFORMED})
outer("outer-pax-length-zero", _pax(b"0 path=x\n"), 1, {MALFORMED})
outer("outer-pax-length-negative", _pax(b"-5 path=x\n"), 1, {MALFORMED})
outer("outer-pax-size-negative", _pax(H.pax_record("size", "-5")), 1, {MALFORMED})
outer("outer-pax-size-negative-block", _pax(H.pax_record("size", "-512"), data=b""), 1, {MALFORMED})
outer("outer-pax-size-huge", _pax(H.pax_record("size", "9" * 30)), 1, {MALFORMED})
outer("outer-pax-size-5000-digits", _pax(H.pax_record("size", "9" * 5000)), 1, {MALFORMED})
outer("outer-pax-mtime-garbage", _pax(H.pax_record("mtime", "yesterday")), 1, {MALFORMED})
outer("outer-pax-mtime-inf-nan", _pax(H.pax_record("mtime", "1e400") + H.pax_record("atime", "nan")), {0, 1}, ())
outer("outer-pax-invalid-utf8-path", _pax(H.pax_record("path", b"blobs/\xff\xfe")), {0, 1}, ())
outer("outer-base256-negative-size", [H.header("neg", size_field=H.base256(-1)), M("x", b"x")], 1, {MALFORMED})
outer("outer-base256-huge-size", [H.header("huge", size_field=H.base256(1 << 90))], 1, {MALFORMED})
outer("outer-bad-numeric-size", [H.header("bad", size_field=b"zzzzzzzzzzz\0")], 1, {MALFORMED})
outer("outer-bad-checksum-at-end", [H.header("bad", checksum=b"0000000\0"), M("x", b"x")], 1, {MALFORMED})
outer("outer-invalid-utf8-name", [H.raw_member(b"blobs/evil\xff\xfe", b"data")], {0, 1}, ())
outer("outer-empty-name", [H.raw_member(b"", b"data")], {0, 1}, ())
outer("outer-device-and-fifo", [M("blobs/sha256/dev", type="char"), M("fifo", type="fifo")], {0, 1}, ())


def _bad_checksum_middle() -> bytes:
    """A bad header before index.json: everything after it is unreadable."""
    members = Oci().members()
    return H.tar_bytes(members[:4] + [H.header("bad", checksum=b"0000000\0")] + members[4:])


oci_case("outer-bad-checksum-in-middle", _bad_checksum_middle, {1, 2}, {MALFORMED})


def _index_is_dir() -> bytes:
    members = [m for m in Oci().members() if not (isinstance(m, M) and m.name == "index.json")]
    return H.tar_bytes(members + [M("index.json/", type="dir")])


oci_case("outer-index-is-a-directory", _index_is_dir, {1, 2}, {MALFORMED})


# ==========================================================================
# 6. attacks inside a layer (the rest of the archive is consistent)


def base_files() -> list[M]:
    return [M("etc/", type="dir"), M("etc/hostname", b"box\n")]


layer_case(
    "layer-dotdot",
    lambda: H.tar_bytes(base_files() + [M("../../evil", b"pwned")]),
    1,
    {UNSAFE},
    check=lambda r: any(f.code == UNSAFE and f.layer == 0 for f in r.findings) or pytest.fail("no layer"),
)
layer_case(
    "layer-symlink-escape-then-write-through",
    lambda: H.tar_bytes([M("link", type="symlink", link="../../.."), M("link/evil", b"pwned")]),
    1,
    {UNSAFE},
    check=lambda r: "/link/evil" in details(r, UNSAFE) or pytest.fail(details(r, UNSAFE)),
)
layer_case(
    "layer-hardlink-outside",
    lambda: H.tar_bytes(base_files() + [M("h", type="hardlink", link="../../etc/passwd")]),
    1,
    {UNSAFE},
)
layer_case(
    "layer-duplicate-file",
    lambda: H.tar_bytes(base_files() + [M("etc/passwd", b"root:x:0:0\n"), M("etc/passwd", b"evil::0:0\n")]),
    {0, 1},
    {DUP},
)
layer_case(
    "layer-whiteout-dotdot", lambda: H.tar_bytes(base_files() + [M(".wh..", b""), M("etc/.wh..", b"")]), 1, {UNSAFE}
)
layer_case("layer-whiteout-escaping", lambda: H.tar_bytes(base_files() + [M("../.wh.etc", b"")]), 1, {UNSAFE})
layer_case("layer-gzip-of-random-data", lambda: H.random_bytes(11, 20000), 1, {MALFORMED})
layer_case("layer-gzip-of-empty", lambda: b"", 1, {MALFORMED})
layer_case("layer-zstd-of-random-data", lambda: H.random_bytes(12, 20000), 1, {MALFORMED}, compression="zstd")
layer_case(
    "layer-gnu-longname-over-1MiB", lambda: H.tar_bytes(base_files() + [_gnu_long((1 << 20) + 10)]), 1, {MALFORMED}
)
layer_case(
    "layer-bad-checksum-in-middle",
    lambda: H.tar_bytes(base_files() + [H.header("bad", checksum=b"0000000\0"), M("after", b"x")]),
    1,
    {MALFORMED},
)
layer_case("layer-pax-bad-length", lambda: H.tar_bytes(base_files() + _pax(b"abc path=x\n")), 1, {MALFORMED})
layer_case(
    "layer-pax-size-negative", lambda: H.tar_bytes(base_files() + _pax(H.pax_record("size", "-5"))), 1, {MALFORMED}
)
layer_case(
    "layer-pax-size-negative-block",
    lambda: H.tar_bytes(base_files() + _pax(H.pax_record("size", "-512"), data=b"")),
    1,
    {MALFORMED},
)
layer_case(
    "layer-base256-negative-size",
    lambda: H.tar_bytes(base_files() + [H.header("neg", size_field=H.base256(-1))]),
    1,
    {MALFORMED},
)
layer_case(
    "layer-base256-huge-fields",  # mtime 2**90, uid 2**60: no crash in the model or the JSON
    lambda: H.tar_bytes(
        base_files() + [H.header("big", mtime_field=H.base256(1 << 90), uid_field=H.base256(1 << 60, 8))]
    ),
    {0, 1},
    (),
)
layer_case(
    "layer-pax-mtime-inf-nan",
    lambda: H.tar_bytes(
        base_files()
        + _pax(H.pax_record("mtime", "1e400"), "inf")
        + _pax(H.pax_record("mtime", "nan"), "nan")
        + _pax(H.pax_record("mtime", "-1e400"), "neginf")
    ),
    {0, 1},
    (),
)
layer_case(
    "layer-invalid-utf8-name",
    lambda: H.tar_bytes(base_files() + [H.raw_member(b"etc/\xff\xfe\xed\xa0\x80", b"x")]),
    {0, 1},
    (),
)
layer_case(
    "layer-control-chars-in-name",
    lambda: H.tar_bytes(base_files() + [M("etc/\x1b[2J\x1b[31mred\r\n", b"x")]),
    {0, 1},
    (),
)
layer_case("layer-nested-gzip", lambda: H.gz(H.tar_bytes(base_files())), 1, {MALFORMED})


def _layer_blob_case(
    name: str, blob: Callable[[], tuple[bytes, str]], exits=1, codes=(MALFORMED,), compression="gzip", **kw
) -> None:
    def make() -> Oci:
        b, diff_id = blob()
        return Oci(layers=[Layer(b, diff_id, compression)])

    oci_case(name, make, exits, codes, **kw)


def _big_tar() -> bytes:
    return H.tar_bytes(base_files() + [M("blob.bin", H.random_bytes(13, 200_000))])


_layer_blob_case(
    "layer-gzip-corrupt-in-middle", lambda: (H.deflate_corrupt(H.gz(_big_tar()), 100_000), H.sha(_big_tar()))
)
_layer_blob_case("layer-gzip-truncated", lambda: (H.gz(_big_tar())[:120_000], H.sha(_big_tar())))
_layer_blob_case("layer-gzip-trailing-garbage", lambda: (H.gz(_big_tar()) + H.random_bytes(14, 100), H.sha(_big_tar())))
_layer_blob_case("layer-gzip-trailing-zeros", lambda: (H.gz(_big_tar()) + b"\0" * 100, H.sha(_big_tar())), 0, ())
_layer_blob_case("layer-zstd-truncated", lambda: (H.zst(_big_tar())[:120_000], H.sha(_big_tar())), compression="zstd")
# zstd frames carry no checksum by default: flipped literals may decode "fine" to other
# bytes, and then only the diff_id can tell.
_layer_blob_case(
    "layer-zstd-corrupt-in-middle",
    lambda: (H.deflate_corrupt(H.zst(_big_tar()), 100_000), H.sha(_big_tar())),
    1,
    (),
    compression="zstd",
    check=lambda r: finding_codes(r) & {MALFORMED, "layer.diffid-mismatch"} or pytest.fail(str(finding_codes(r))),
)
_layer_blob_case(
    "layer-zstd-trailing-garbage",
    lambda: (H.zst(_big_tar()) + H.random_bytes(15, 100), H.sha(_big_tar())),
    compression="zstd",
)
_layer_blob_case("layer-plain-random-bytes", lambda: (H.random_bytes(16, 5000), H.sha(b"")), compression="none")

# Decompression bombs. gzip cannot exceed ~1030:1, so a gzip layer of zeros is just a
# large layer: it must be read in full, at constant memory. zstd reaches far beyond
# 10000:1 and must be stopped by the bomb guard after 1 GiB.
GZIP_BOMB = (1 << 30) + (64 << 20)  # 1.06 GiB from 1.1 MB: past the 1 GiB point where the ratio guard looks
ZSTD_BOMB = 2 << 30  # 2 GiB from 66 KB


def _bomb_check_gzip(report: Report) -> None:
    layer = report.images[0].layers[0]
    assert layer.diff_id == layer.declared_diff_id, layer
    assert layer.files and layer.files[0].size == GZIP_BOMB


def _bomb_check_zstd(report: Report) -> None:
    text = details(report, LIMIT)
    assert "bomb" in text, text
    assert report.images[0].layers[0].diff_id is None


_layer_blob_case(
    "layer-gzip-bomb", lambda: H.zero_bomb(GZIP_BOMB, "gzip"), 0, (), check=_bomb_check_gzip, max_seconds=20.0, **HEAVY
)
_layer_blob_case(
    "layer-zstd-bomb",
    lambda: H.zero_bomb(ZSTD_BOMB, "zstd"),
    1,
    (LIMIT,),
    compression="zstd",
    absent={"layer.diffid-mismatch"},
    check=_bomb_check_zstd,
    max_seconds=20.0,
    **HEAVY,
)
# The same guard through the API with small limits (cheap): max_uncompressed stops it.
_layer_blob_case(
    "layer-zstd-bomb-api-limit",
    lambda: H.zero_bomb(128 << 20, "zstd"),
    1,
    (LIMIT,),
    cli=False,
    compression="zstd",
    absent={"layer.diffid-mismatch"},
    check=_bomb_check_zstd,
    limits=Limits(max_uncompressed=32 << 20),
)

# docker-save layout with a hostile layer
writes(
    "docker-layer-dotdot",
    lambda: H.docker_archive(layers=[H.tar_bytes(base_files() + [M("../../evil", b"x")])]),
    1,
    {UNSAFE},
)
writes("docker-layer-truncated", lambda: H.docker_archive(layers=[H.default_layer()[:1500]]), 1, {MALFORMED})


# ==========================================================================
# CLI options under hostile input

case("cli-fail-on-never", 0, args=("--fail-on", "never"), api=False)(
    lambda d: (d / "a.tar").write_bytes(H.append_members(Oci().tar(), [M("../../evil", b"x")])) and str(d / "a.tar")
)
# A pin that is not a digest is bad usage, not evidence against the image: exit 2, one line.
case(
    "cli-expect-garbage",
    2,
    args=("--expect", "sha256:../../etc/passwd", "--expect", ""),
    api=False,
    input_error=True,
)(lambda d: str(SAMPLES / "relay-genuine.oci.tar"))


# ==========================================================================
# issue 9: one attacker-chosen value must not throw the analysis away


def _created_int(cfg: dict) -> None:
    cfg["created"] = 12345
    cfg["history"][0]["created"] = 7
    cfg["history"][0]["empty_layer"] = "no"
    cfg["config"]["Env"] = ["A=1", 5]
    cfg["config"]["Labels"] = {"a": 1, "b": "ok"}


def _check_created_int(report: Report) -> None:
    subjects = {f.subject.split(": ", 1)[1] for f in report.findings if f.code == MALFORMED}
    assert {
        "created",
        "history[0].created",
        "history[0].empty_layer",
        "config.Env[1]",
        "config.Labels['a']",
    } <= subjects, subjects
    img = report.images[0]
    assert img.config.env == ["A=1"] and img.config.labels == {"b": "ok"}
    assert img.history[0].created is None and img.history[0].analysis is not None  # the analysis went on


oci_case(
    "config-values-of-the-wrong-type",
    lambda: Oci(mutate_config=_created_int),
    0,
    (MALFORMED,),
    check=_check_created_int,
    sub=True,
)


def _docker_v1_created_int() -> bytes:
    layer = H.default_layer()
    cfg = {
        "architecture": "amd64",
        "os": "linux",
        "created": 5,
        "rootfs": {"type": "layers", "diff_ids": [H.sha(layer)]},
        "history": [{"created_by": "ADD x /", "created": 9}],
    }
    config = H.jbytes(cfg)
    man = [{"Config": f"{H.hexof(config)}.json", "RepoTags": ["a:1"], "Layers": ["abc/layer.tar"]}]
    return H.tar_bytes(
        [
            M(f"{H.hexof(config)}.json", config),
            M("abc/", type="dir"),
            M("abc/layer.tar", layer),
            M("abc/json", H.jbytes({"id": "abc", "created": 77, "container_config": {"Cmd": 5}})),
            M("manifest.json", H.jbytes(man)),
        ]
    )


writes(
    "docker-legacy-json-created-int",
    _docker_v1_created_int,
    0,
    (MALFORMED,),
    check=lambda r: (
        [f for f in r.findings if f.code == MALFORMED and f.entry == "abc/json"]
        or pytest.fail("abc/json's created is not named")
    ),
)


def _surrogate_label() -> bytes:
    doc = Oci().config_doc()
    doc["config"]["Labels"] = {"x": "@@"}
    return Oci(config_bytes=H.jbytes(doc).replace(b"@@", b"\\ud800")).tar()


writes(
    "config-lone-surrogate",
    _surrogate_label,
    0,
    check=lambda r: r.images[0].config.labels == {"x": "\ud800"} or pytest.fail(repr(r.images[0].config.labels)),
)


# ==========================================================================
# which cases also run as a real subprocess (besides stdin, FIFOs and the heavy ones)

# (../../evil outside and inside a layer runs as a subprocess in test_writes_nothing_but_the_json)
for _n in (
    "empty-file",
    "zeros-10k",
    "nonexistent",
    "dir-index-symlink-to-etc-passwd",
    "fifo-valid-archive",
    "index-null",
    "outer-bad-checksum-in-middle",
    "outer-invalid-utf8-name",
    "layer-gzip-corrupt-in-middle",
    "layer-invalid-utf8-name",
    "layer-pax-mtime-inf-nan",
    "cli-fail-on-never",
    "cli-expect-garbage",
):
    CASES[_n].sub = True


# ==========================================================================
# the runners


def _build(c: Case, base: Path) -> str:
    d = base / c.name
    d.mkdir(parents=True, exist_ok=True)
    return c.build(d)


def _xfail(c: Case) -> list:
    if c.name in KNOWN_BUGS:
        return [pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[c.name])]
    return []


def _params(kind: str) -> list:
    return [pytest.param(c, id=c.name, marks=_xfail(c)) for c in CASES.values() if getattr(c, kind)]


def _summary(report: Report) -> str:
    return "\n".join(f"  {f.severity.value} {f.code} {f.subject[:80]}: {f.detail[:200]}" for f in report.findings)


def _check_report(c: Case, report: Report, rc: int) -> None:
    codes = finding_codes(report)
    assert c.codes <= codes, f"{c.name}: missing {sorted(c.codes - codes)}; findings:\n{_summary(report)}"
    assert not (c.absent & codes), f"{c.name}: unexpected {sorted(c.absent & codes)}; findings:\n{_summary(report)}"
    if rc == 1:
        assert report.findings, c.name
    if rc == 2:
        assert report.verdict == "unreadable", c.name
    if c.check:
        c.check(report)


def _exit_code(report: Report) -> int:
    """What the CLI must exit with for this report (default --fail-on high)."""
    if report.verdict == "unreadable":
        return 2
    return 1 if any(f.severity.value in ("critical", "high") for f in report.findings) else 0


# --- API, in-process ---------------------------------------------------------


def _analyze_with_watchdog(path: str, c: Case) -> tuple[dict, float]:
    box: dict = {}

    def run() -> None:
        try:
            box["report"] = analyze(path, limits=c.limits)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(max(c.max_seconds * 3, 30.0))
    if t.is_alive():
        pytest.fail(f"{c.name}: analyze() still running after {time.monotonic() - t0:.0f}s (hang)")
    return box, time.monotonic() - t0


_API_CHILD = """
import sys
from forensics.pipeline import analyze
from forensics.archive.scan import InputError
try:
    report = analyze(sys.argv[1])
except InputError as exc:
    sys.stdout.write("INPUTERROR " + str(exc))
else:
    sys.stdout.write(report.model_dump_json())
"""


def _analyze_isolated(path: str, c: Case) -> tuple[dict, float]:
    """analyze() in a killable subprocess: for inputs that may hang the process."""
    t0 = time.monotonic()
    try:
        r = subprocess.run(
            [sys.executable, "-c", _API_CHILD, path], capture_output=True, timeout=c.max_seconds * 1.25 + 0.5
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{c.name}: analyze() still running after {c.max_seconds * 1.25 + 0.5:.1f}s (hang)")
    seconds = time.monotonic() - t0
    assert r.returncode == 0, f"{c.name}: analyze() died: {r.stderr.decode(errors='replace')[-3000:]}"
    if r.stdout.startswith(b"INPUTERROR "):
        return {"error": InputError(r.stdout[11:].decode())}, seconds
    return {"report": Report.model_validate_json(r.stdout)}, seconds


@pytest.mark.parametrize("c", _params("api"))
def test_api(c: Case, tmp_path: Path) -> None:
    from forensics.render.text import render_text

    path = _build(c, tmp_path)
    box, seconds = (_analyze_isolated if c.isolate else _analyze_with_watchdog)(path, c)
    err = box.get("error")
    if c.input_error:
        assert isinstance(err, InputError), f"{c.name}: expected InputError, got {err!r}"
        assert str(err) and "\n" not in str(err), repr(str(err))
        return
    if isinstance(err, InputError) and c.input_error is None:
        assert str(err) and "\n" not in str(err), repr(str(err))
        return  # e.g. a truncation so short that it is no longer a tar
    if err is not None:
        raise AssertionError(f"{c.name}: analyze() raised {type(err).__name__}: {err}") from err
    report: Report = box["report"]
    assert seconds < c.max_seconds, f"{c.name}: {seconds:.1f}s"
    # everything the CLI does with a report must work too
    from_json(Report, to_json(report))  # exact even for lone surrogates (forensics.serialize)
    render_text(report)
    rc = _exit_code(report)
    assert rc in c.exits, f"{c.name}: verdict {report.verdict}; findings:\n{_summary(report)}"
    _check_report(c, report, rc)


# --- CLI, in-process -----------------------------------------------------------


@pytest.mark.parametrize("c", _params("cli"))
def test_cli(c: Case, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from forensics.cli import app

    path = _build(c, tmp_path / "in")
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["scan", path, "--json", str(out), *c.args], input=c.stdin() if c.stdin else None)
    where = f"{c.name}: exit {result.exit_code}\nstderr: {result.stderr[-2000:]}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"exception escaped the CLI: {result.exception!r}\n{where}") from result.exception
    _check_cli_result(c, result.exit_code, result.stderr, result.stdout, out)


def _check_cli_result(c: Case, rc: int, stderr: str, stdout: str, json_path: Path) -> None:
    where = f"{c.name}: exit {rc}\nstderr: {stderr[-2000:]}"
    assert "Traceback" not in stderr and "Traceback" not in stdout, where
    assert "internal error" not in stderr, where
    assert rc in c.exits, where
    if rc == 2:
        lines = stderr.strip().splitlines()
        assert len(lines) <= 1, where
        if c.input_error:
            assert lines and lines[0].startswith("forensics: error: "), where
    else:
        assert stderr.strip() == "", where
    if c.input_error:
        assert not json_path.exists(), where
        return
    if not json_path.exists():
        assert c.input_error is None and rc == 2, f"no JSON report\n{where}"
        return
    report = from_json(Report, json_path.read_bytes())
    _check_report(c, report, rc)


# --- CLI, subprocess -------------------------------------------------------------

# Peak RSS must be measured in a grandchild: a child forked (vforked) from this big
# pytest process inherits its high-water mark through exec.
_RSS_WRAPPER = """
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write(f"{rc} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
"""


@dataclass
class SubRun:
    rc: int
    stdout: str
    stderr: str
    seconds: float
    maxrss_kb: int
    timed_out: bool
    json_path: Path


def _run_subprocess(c: Case, base: Path) -> SubRun:
    path = _build(c, base / "in")
    out_dir = base / "out" / c.name
    out_dir.mkdir(parents=True)
    json_path = out_dir / "report.json"
    stdin_path = out_dir / "stdin.bin"
    stdin_path.write_bytes(c.stdin() if c.stdin else b"")
    rss_path = out_dir / "rss"
    argv = [
        sys.executable,
        "-S",
        "-c",
        _RSS_WRAPPER,
        str(rss_path),
        sys.executable,
        "-m",
        "forensics",
        "scan",
        path,
        "--json",
        str(json_path),
        *c.args,
    ]
    env = {k: v for k, v in os.environ.items() if k != "FORENSICS_DEBUG"}
    timeout = c.max_seconds * 1.25 + 0.5  # kill soon after the limit: a hang must not eat the time budget
    with open(out_dir / "stdout", "wb") as so, open(out_dir / "stderr", "wb") as se, open(stdin_path, "rb") as si:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=si, stdout=so, stderr=se, cwd=out_dir, env=env, start_new_session=True)
        try:
            p.wait(timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            timed_out = True
        seconds = time.monotonic() - t0
    rc, rss = -1, 0
    if rss_path.exists():
        rc, rss = (int(x) for x in rss_path.read_text().split())
    return SubRun(
        rc=rc,
        stdout=(out_dir / "stdout").read_text("utf-8", "replace"),
        stderr=(out_dir / "stderr").read_text("utf-8", "replace"),
        seconds=seconds,
        maxrss_kb=rss,
        timed_out=timed_out,
        json_path=json_path,
    )


_SUB_FUTURES: dict[str, Future] = {}


@pytest.fixture(scope="module", autouse=True)
def _subprocess_batch(request, tmp_path_factory):
    """Start every selected subprocess case now, in the background; test_cli_subprocess collects them."""
    base = tmp_path_factory.mktemp("robust-sub")
    selected = {
        item.callspec.params["c"].name
        for item in request.session.items
        if item.originalname == "test_cli_subprocess" and hasattr(item, "callspec")
    }
    todo = sorted((CASES[n] for n in selected), key=lambda c: -c.max_seconds)  # slow ones first
    pool = ThreadPoolExecutor(max_workers=2)
    for c in todo:
        _SUB_FUTURES[c.name] = pool.submit(_run_subprocess, c, base / c.name)
    yield
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("c", _params("sub"))
def test_cli_subprocess(c: Case) -> None:
    run: SubRun = _SUB_FUTURES[c.name].result()
    where = (
        f"{c.name}: exit {run.rc} after {run.seconds:.1f}s, peak RSS {run.maxrss_kb // 1024} MB\n"
        f"stderr: {run.stderr[-2000:]}"
    )
    assert not run.timed_out, f"hang: killed after {run.seconds:.0f}s\n{where}"
    assert run.rc >= 0, f"killed by signal {-run.rc}\n{where}"
    assert run.maxrss_kb < RSS_LIMIT_KB, where
    assert run.seconds < c.max_seconds, f"too slow\n{where}"
    _check_cli_result(c, run.rc, run.stderr, run.stdout, run.json_path)


# ==========================================================================
# one-off checks


def test_case_inventory() -> None:
    assert len(CASES) > 150
    assert sum(c.sub for c in CASES.values()) < 45  # each costs ~0.3 s of CPU: keep the file fast
    assert set(KNOWN_BUGS) <= set(CASES)


@pytest.mark.skipif(IS_ROOT, reason="root can read a mode-000 file")
def test_unreadable_file(tmp_path: Path) -> None:
    p = tmp_path / "secret.tar"
    p.write_bytes(sample("relay-genuine.oci.tar"))
    p.chmod(0)
    r = subprocess.run([sys.executable, "-m", "forensics", "scan", str(p)], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("forensics: error: ") and len(r.stderr.strip().splitlines()) == 1
    with pytest.raises(InputError):
        analyze(str(p))


def test_json_to_unwritable_path_is_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from forensics.cli import app

    r = CliRunner().invoke(
        app,
        ["scan", str(SAMPLES / "relay-genuine.oci.tar"), "--json", str(tmp_path / "missing-dir" / "out.json"), "-q"],
    )
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("forensics: error: "), r.stderr


def test_json_to_stdout_with_hostile_names(tmp_path: Path) -> None:
    """--json - must stay valid JSON whatever the names in the archive."""
    layer = H.tar_bytes(
        base_files() + [H.raw_member(b"etc/\xff\xfe", b"x"), M("etc/\x1b[31m\u202e", b"y"), M("../../evil", b"z")]
    )
    data = H.append_members(Oci(layers=[Layer.of(layer)]).tar(), [M("../../outer-evil", b"x")])
    p = tmp_path / "a.tar"
    p.write_bytes(data)
    r = subprocess.run([sys.executable, "-m", "forensics", "scan", str(p), "--json", "-"], capture_output=True)
    assert b"Traceback" not in r.stderr, r.stderr.decode(errors="replace")
    assert r.returncode == 1, r.stderr.decode(errors="replace")
    doc = json.loads(r.stdout)
    assert UNSAFE in {f["code"] for f in doc["findings"]}


def test_writes_nothing_but_the_json(tmp_path: Path) -> None:
    """A hostile archive with ../../evil outside and inside a layer: the tool never extracts."""
    root = tmp_path / "a" / "b" / "c"
    cwd = root / "cwd"
    cwd.mkdir(parents=True)
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    layer = H.tar_bytes(
        base_files()
        + [
            M("../../evil", b"x"),
            M("../../../evil-layer", b"x"),
            M("link", type="symlink", link="../../.."),
            M("link/evil-link", b"x"),
            M("/abs-evil", b"x"),
        ]
    )
    data = H.append_members(
        Oci(layers=[Layer.of(layer)]).tar(),
        [
            M("../../evil", b"x"),
            M("../evil-outer", b"x"),
            M("/tmp-evil-abs", b"x"),
            M("s", type="symlink", link=".."),
            M("s/evil-through-symlink", b"x"),
        ],
    )
    archive = archive_dir / "hostile.tar"
    archive.write_bytes(data)

    def snapshot() -> set[str]:
        return {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}

    before = snapshot()
    root_before = set(os.listdir("/"))
    r = subprocess.run(
        [sys.executable, "-m", "forensics", "scan", str(archive), "--json", "out.json"],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    after = snapshot()
    assert after - before == {"a/b/c/cwd/out.json"}, after - before
    assert set(os.listdir("/")) == root_before
    assert not Path("/abs-evil").exists() and not Path("/tmp-evil-abs").exists()
    doc = json.loads((cwd / "out.json").read_text())
    assert UNSAFE in {f["code"] for f in doc["findings"]}


def _analyze_bytes(data: bytes, tmp_path: Path) -> Report:
    p = tmp_path / "x.tar"
    p.write_bytes(data)
    return analyze(str(p))


def test_bases_are_clean(tmp_path: Path) -> None:
    """The bases the hostile cases are built from scan clean: only the planted attack remains."""
    for name in ("relay-genuine.oci.tar", "clean.docker.tar", "clean-zstd.oci.tar"):
        assert analyze(str(SAMPLES / name)).verdict == "clean", name
    for data in (
        Oci().tar(),
        H.docker_archive(),
        Oci(layers=[Layer.of(H.default_layer(), "zstd"), Layer.of(H.default_layer(), "none")]).tar(),
    ):
        report = _analyze_bytes(data, tmp_path)
        assert not report.findings, _summary(report)


def test_builders_produce_what_tarfile_reads() -> None:
    """Sanity of the hostile builders themselves (a wrong builder would test nothing)."""
    entries = H.tar_entries(Oci().tar())
    names = [ti.name for ti, _ in entries]
    assert names[0] == "oci-layout" and names[-1] == "index.json"
    for ti, data in entries:
        if ti.name.startswith("blobs/sha256/") and ti.isfile():
            assert H.hexof(data) == ti.name.rsplit("/", 1)[1]
    raw = H.raw_member("hello", b"abc")
    ti = tarfile.TarInfo.frombuf(raw[:512], "utf-8", "surrogateescape")
    assert ti.name == "hello" and ti.size == 3
    assert H.base256(-1)[0] & 0xC0 == 0xC0
    blob, diff_id = H.zero_bomb(32 << 20, "gzip")
    import gzip

    assert H.sha(gzip.decompress(blob)) == diff_id
