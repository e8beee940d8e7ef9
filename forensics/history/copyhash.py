"""COPY/ADD source hashes: recompute `file:<hex>` / `dir:<hex>` / `multi:<hex>` from the layer.

What the builders hash (read from their sources: moby master 2026-08,
daemon/builder/dockerfile/{copy,internals}.go and builder/remotecontext/
{archive,lazycontext,filehash}.go + internal/tarsum; buildah master 2026-06 and
v1.28.2, add.go, digester.go, copier/copier.go, imagebuildah/stage_executor.go),
each checked against real builds (docker 20.10.24 classic builder, buildah
1.28.2; tests/fixtures/copyhash/README.md):

Docker's classic builder (`#(nop) COPY [--chown=..] <hash> in <dest> `)
- The build context arrives as a tar (the CLI writes every entry with uid/gid 0)
  and is hashed per entry with tarsum v1: sha256 over the string
  `name<N>mode<M>uid<U>gid<G>size<S>typeflag<T>linkname<L>unamegnamedevmajor<A>devminor<B>`
  (decimal numbers, mode = permission and setuid/setgid/sticky bits, uname and
  gname blanked, NO mtime), then any `security.capability` xattr as name+value,
  then the content. N is the entry's name in the context tar: its path relative
  to the context root (`conf/app.conf`, directories with a trailing `/`).
- One file: `file:` + that hex. The name is the file's path in the build
  context, which the image does not record: only a file at the context root
  (or a path that is a suffix of its destination) can be recomputed.
- A directory: `dir:` + sha256 of the sorted per-entry hexes joined by `,`,
  over every entry below it and the directory itself (except when it is the
  context root: `COPY . /x` hashes only what is below, named as in the layer).
  A symlink contributes the hash of what it points to inside the context
  (moby follows it in scope); a broken one contributes its own path.
- Several sources: `multi:` + sha256 of their `file:..`/`dir:..` strings joined
  by `,` in Dockerfile order (wildcards expand in lexical order).
- ADD of a local archive records the archive's own `file:` hash and the layer
  holds what it extracted: not recomputable. ADD of a URL records the bare hex
  of a downloaded temporary file (name from the URL, mode 0600): not checked.
- `COPY --from` hashes the stage's files through a lazy context over the stage's
  root: the same v1 string, but the name is the path in the stage, uid/gid are
  the real ones, uname/gname the DAEMON HOST's names for them (docker 20.10:
  `lp`/`mail` for 7/8 on Debian), and the mode carries Go 1.8's type bits
  (0100644; moby 20.10's fillGo18FileTypeBits). So only a root-owned file copied
  to the same path can be recomputed (checked on a real build).

buildah / podman (`#(nop) COPY [--link] <hash> in <dest> `)
- The digest is sha256 of the tar stream that is written into the destination,
  re-serialised by Go's archive/tar with every time zeroed: USTAR headers (mtime
  field 0), names relative to the destination (a single file under the name it
  gets there), uid/gid as stored (after --chown), mode as stored, entries in
  filepath.WalkDir order (the destination itself excluded), content padded to
  512, two zero blocks at the end. A hard link is a link entry to the first name.
- Up to 1.41 user and group NAMES are in the headers, looked up for each
  source file's own owner by the copier, which runs chrooted in the source
  root (the context, or a stage): measured, `root` for uid 0 and blank for ids
  the source tree names nowhere (uid 7 in a scratch stage, though the host calls
  it `lp`), whatever an /etc/passwd there says otherwise; with --chown the
  header keeps the source owner's name (`root`) beside the new ids. Directory
  names have no trailing `/`; from 1.42 (commits 9461dd61, 738fa0d3)
  names are blank and directories end in `/`. The version is in the
  `io.buildah.version` label that buildah writes.
- Each source (each glob match) is digested on its own; several give `multi:` +
  sha256 of `file:<hex>,dir:<hex>,...` in order. ADD of a local archive
  digests the archive's entries as they stand in the archive (its user names,
  its tar format): not recomputed. ADD of a URL digests a tar stream built
  around the download: not recomputed.

Long or non-ASCII names and link targets are written as Go does: a PAX
extended header `<dir>/PaxHeaders.0/<file>` holding `path`/`linkpath`, then a
main header with the fields cut to fit (verified on the corpus' lantern image).

Verdicts. A match (of any builder's algorithm, any variant) makes the files it
covers *verified*. When a `file:` hash matches one of several files under a
`COPY f /dir/` destination, it proves which file the step copied: any other
entry the layer holds there was not written by it, whichever builder ran, and
that is a mismatch. Otherwise a mismatch is called only where nothing the image does not
record enters the hash, and only for a step that itself says buildah wrote it
(its `FROM <image>` comment from buildah --layers, or the next entry's, or a
layer shared with steps marked empty, buildah without --layers): classic and
buildah write COPY lines alike, and a buildah base's `io.buildah.version`
label is inherited by whatever builds on it. Then: buildah >= 1.42 by its
label, in the last build of the history; or buildah before 1.42 when another
buildah step of the same build (no gap over an hour, no `FROM <base>` between)
matched with `root` names for the same owner ids (a `--chown` onto files of
another owner in one step and not in the other would break that
inference; buildah does not record `--chown`). Everything else that does not
match is `cannot-recompute`, with the reason. An attacker who strips the label
or the comments, or rewrites the recorded hash to that of the forged files, is
not caught here (the hash is metadata like the rest of the history):
`forensics diff` is.

Cost: the one pass keeps only each file's sha256, and both hashes need the
bytes, so the files under hashed destinations are read again from their layers
(forensics.read.source): a `file:`/`multi:` source is hashed as it streams
by (every candidate at once, any size); the files under `dir:` sources are
held, at most MAX_CONTENT bytes per image. Not possible on stdin.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from forensics.findings import Code, finding
from forensics.models import CopyHashStatus, FileEntry, Finding, Image, Severity
from forensics.read.source import MemberSource

RAISES: tuple[Code, ...] = ("history.effect-mismatch",)

MAX_CONTENT = 64 << 20  # bytes of files under copied directories held to rebuild their hash, per image
MAX_MULTI = 6  # sources whose order is tried in every permutation (720)

_HASH = re.compile(r"^(?:(file|dir|multi):)?([0-9a-f]{64})$")
# docker 20.10 writes `--chown=%s` with no space before the hash: `COPY --chown=1:1dir:<hex> in /x `
_GLUED = re.compile(r"#\(nop\) (?:COPY|ADD) --chown=\S*?((?:file|dir|multi):[0-9a-f]{64}) in ")
_VERSION = re.compile(r"^(\d+)\.(\d+)")


@dataclass
class Target:
    history: int
    layer: int
    kind: str  # COPY or ADD
    algo: str  # file, dir, multi or "" (a bare hex: ADD of a URL)
    recorded: str  # hex
    dest: str  # absolute, normalized
    entries: dict[str, FileEntry] = field(default_factory=dict)  # what the layer holds at/under dest
    reason: str | None = None  # set when it cannot be recomputed before reading anything
    buildah: bool = False  # the entry itself says buildah wrote it (see _buildah_evidence)
    last_build: bool = False  # in the last build of the history (the one the label speaks for)
    # The destination held files below: one copied again unchanged (same bytes, mode and mtime)
    # may be left out of the layer by a storage driver that diffs by metadata (vfs).
    below: bool = False
    merged: dict[str, tuple[int, FileEntry]] | None = None  # dir sources with `below`: the view after the step


def _shown(text: str) -> str:
    """For subject and detail (printed to terminals): control characters as escapes."""
    return "".join(f"\\x{ord(c):02x}" if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 else c for c in text)


def _norm(path: str, workdir: str = "/") -> str:
    p = posixpath.normpath(posixpath.join(workdir or "/", path))
    return "/" + p.lstrip("/") if p not in ("/", "//") else "/"


def _buildah_version(img: Image) -> tuple[int, int] | None:
    label = (img.config.labels if img.config else {}).get("io.buildah.version", "")
    m = _VERSION.match(label)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _workdirs(instructions) -> list[str]:
    out, wd = [], "/"
    for ins in instructions:
        out.append(wd)
        if ins.kind == "WORKDIR" and ins.dest:
            wd = _norm(ins.dest, wd)
    return out


# buildah --layers notes `FROM <previous step's image id>` on each entry, and
# `FROM <base image>` on the first entry of a build.
_BUILD_FROM = re.compile(r"^FROM \S")
_INTERMEDIATE = re.compile(r"^FROM [0-9a-f]{12}$")
BUILD_GAP = 3600.0  # seconds between two history entries that start another build (a base image's)


def _builds(img: Image) -> list[int]:
    """A build number per history entry: a new one after a gap of over BUILD_GAP, or an entry
    without a readable time. What one build's matches teach about the names it looked up is
    applied within that build only: a base image may come from another host."""
    out, n, prev = [], 0, None
    for h in img.history:
        t = None
        try:
            t = datetime.fromisoformat((h.created or "").replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
        starts = bool(_BUILD_FROM.match(h.comment or "")) and not _INTERMEDIATE.match(h.comment or "")
        if t is None or prev is None or abs(t - prev) > BUILD_GAP or starts:
            n += 1
        out.append(n)
        prev = t
    return out


# --------------------------------------------------------------------------- planning


def _buildah_evidence(img: Image, instructions, i: int, group: list[int]) -> bool:
    """What in the entry itself says buildah wrote it (classic writes COPY lines alike): the
    `FROM <image>` comment of buildah --layers (on it, or on the next entry), a layer shared by
    several recorded steps (buildah without --layers: the others are marked empty), or a
    buildah-only flag."""
    ins = instructions[i]
    if (img.history[i].comment or "").startswith("FROM "):
        return True
    if i + 1 < len(img.history) and _INTERMEDIATE.match(img.history[i + 1].comment or ""):
        return True  # the next step was built on this one's image by buildah (a FROM scratch first step)
    if len(group) > 1 and any(
        img.history[j].empty_layer and instructions[j].kind in ("COPY", "ADD", "RUN") for j in group
    ):
        return True
    return ins.builder == "buildah" and ins.builder_confident


def _recorded(ins) -> str | None:
    if ins.kind not in ("COPY", "ADD"):
        return None
    if ins.sources and _HASH.match(ins.sources[0]):
        return ins.sources[0]
    m = _GLUED.search(ins.raw or "")
    return m.group(1) if m else None


def plan(img: Image, instructions) -> list[Target]:
    """The history entries whose COPY/ADD carries a hash, with the layer files it covers."""
    owner: dict[int, list[int]] = {}
    prev = -1
    for h in img.history:
        if h.layer_index is not None:
            owner[h.layer_index] = list(range(prev + 1, h.index + 1))
            prev = h.index
    wds = _workdirs(instructions)
    out: list[Target] = []
    sorted_layers: dict[int, tuple[list[str], list[FileEntry]]] = {}
    for layer in img.layers:
        group = [i for i in owner.get(layer.index, []) if i == owner[layer.index][-1] or img.history[i].empty_layer]
        recorded = {i: _recorded(instructions[i]) for i in group}
        steps = [i for i in group if recorded[i] and instructions[i].dest]
        if not steps:
            continue
        writers = [i for i in group if instructions[i].kind in ("RUN", "COPY", "ADD")]
        files = {f.path: f for f in layer.files if f.type not in ("whiteout", "opaque")}
        dests = [_norm(instructions[i].dest, wds[i]) for i in steps]
        for i, dest in zip(steps, dests):
            ins = instructions[i]
            rec = _HASH.match(recorded[i] or "")
            if rec is None:
                continue  # steps keeps only the recorded ones: not reached
            algo, hexd = rec.groups()
            t = Target(
                history=i,
                layer=layer.index,
                kind=ins.kind,
                algo=algo or "",
                recorded=hexd,
                dest=dest,
                buildah=_buildah_evidence(img, instructions, i, group),
            )
            inside = dest.rstrip("/") + "/" if dest != "/" else "/"
            t.entries = {p: f for p, f in files.items() if p == dest or p.startswith(inside)}
            if any(instructions[j].kind == "RUN" for j in writers):
                t.reason = (
                    "the step shares its layer with a RUN step (a build without --layers): "
                    "later commands may have changed what it copied"
                )
            elif any(
                j != i and (d == dest or d.startswith(inside) or dest.startswith(d.rstrip("/") + "/"))
                for j, d in zip(steps, dests)
            ):
                t.reason = "another step of the same layer writes inside its destination"
            elif not t.entries:
                t.reason = "the layer holds nothing at the destination"
            elif not algo:
                t.reason = "ADD of a URL: the hash covers the download as fetched, which is not recomputed"
            elif ins.kind == "ADD" and algo == "file" and _extracted(t):
                # only a plain file can match; an extracted archive (a whole base rootfs, say) is not read
                t.reason = (
                    "ADD extracted a local archive: the hash covers the archive itself (and, for buildah, "
                    "its own tar headers), which the image does not hold"
                )
            if t.reason is None and algo in ("dir", "multi"):
                view = _merged_under(img, layer.index, inside, sorted_layers)
                t.below = view is None or any(li != layer.index for li, _ in view.values())
                if t.below and algo == "dir":
                    t.merged = view
            out.append(t)
    return out


MAX_WHITEOUTS = 1000  # under one destination; past this the view is not built (each costs a scan)


def _merged_under(
    img: Image, upto: int, inside: str, index: dict[int, tuple[list[str], list[FileEntry]]]
) -> dict[str, tuple[int, FileEntry]] | None:
    """The merged filesystem below `inside` after layer `upto`: path -> (layer, entry);
    None when too many deletions make it costly to build (hostile input). `index` caches
    each layer's entries sorted by path, so each destination costs a range look-up per layer."""
    view: dict[str, tuple[int, FileEntry]] = {}
    deletions = 0
    top = inside.rstrip("/") or "/"
    for lower in img.layers[: upto + 1]:
        if lower.index not in index:
            ordered = sorted(lower.files, key=lambda f: f.path)
            index[lower.index] = ([f.path for f in ordered], ordered)
        paths, ordered = index[lower.index]
        lo = bisect.bisect_left(paths, top)
        hi = bisect.bisect_left(paths, inside[:-1] + "0")  # "0" follows "/": every path under inside sorts before
        for f in ordered[lo:hi]:
            if not (f.path.startswith(inside) or f.path == top):
                continue
            if f.type in ("whiteout", "opaque"):
                deletions += 1
                if deletions > MAX_WHITEOUTS:
                    return None
            if f.type == "whiteout":
                for p in [p for p in view if p == f.path or p.startswith(f.path + "/")]:
                    del view[p]
            elif f.type == "opaque":
                for p in [p for p in view if p.startswith(f.path.rstrip("/") + "/")]:
                    del view[p]
            elif f.path.startswith(inside):
                view[f.path] = (lower.index, f)
    return view


def _extracted(t: Target) -> bool:
    """More than one file at/under an ADD destination: what a plain file never leaves."""
    top = t.entries.get(t.dest)
    if top is not None and top.type != "dir":
        return False
    return sum(1 for p, f in t.entries.items() if p != t.dest) != 1


def wanted_files(
    targets: list[Target], layer_entries: list[str | None]
) -> tuple[dict[str, set[str]], set[tuple[str, str]], set[tuple[str, str]]]:
    """What to read again: {layer blob: paths}, and which (blob, path) are hashed as they stream
    by (`file:`/`multi:` steps, any size) or kept whole (`dir:` steps, within MAX_CONTENT)."""
    want: dict[str, set[str]] = {}
    stream: set[tuple[str, str]] = set()
    keep: set[tuple[str, str]] = set()
    for t in targets:
        entry = layer_entries[t.layer] if t.layer < len(layer_entries) else None
        if t.reason is not None or not entry:
            continue
        if t.algo == "file":
            files = [f for _, f in _candidates(t)]
            stream.update((entry, f.path) for f in files)
        elif t.algo == "multi":
            files = [f for _, f in (_multi_files(t) or [])]
            stream.update((entry, f.path) for f in files)
        else:
            files = [f for f in t.entries.values() if f.type == "file"]
            keep.update((entry, f.path) for f in files)
            for li, f in (t.merged or {}).values():
                lower = layer_entries[li] if li < len(layer_entries) else None
                if li != t.layer and f.type == "file" and lower:
                    keep.add((lower, f.path))
                    want.setdefault(lower, set()).add(f.path)
        want.setdefault(entry, set()).update(f.path for f in files)
    return want, stream, keep


# --------------------------------------------------------------------------- the two hashes


def _octal(n: int, width: int) -> bytes:
    s = format(n, "o").rjust(width - 1, "0").encode()
    if len(s) > width - 1:
        raise ValueError("number too large for ustar")
    return s + b"\0"


def _split_ustar(name: bytes) -> tuple[bytes, bytes]:
    """Go's splitUSTARPath: the last `/` within the first 156 bytes, else PAX (not rebuilt)."""
    if len(name) <= 100:
        return b"", name
    length = len(name)
    if length > 156:
        length = 156
    elif name[length - 1 : length] == b"/":
        length -= 1
    i = name.rfind(b"/", 0, length)
    if i <= 0 or len(name) - i - 1 > 100 or len(name) - i - 1 == 0 or i > 155:
        raise ValueError("name too long for ustar")
    return name[:i], name[i + 1 :]


def _ustar(
    name: str, mode: int, uid: int, gid: int, size: int, typeflag: bytes, link: str, uname: str, gname: str
) -> bytes:
    """One header as Go's archive/tar writes it for USTAR with a zero ModTime."""
    if not (name + link + uname + gname).isascii():
        raise ValueError("non-ASCII names need PAX headers")
    prefix, nm = _split_ustar(name.encode())
    if len(link) > 100:
        raise ValueError("link target too long for ustar")
    b = bytearray(512)

    def put(off: int, val: bytes) -> None:
        b[off : off + len(val)] = val

    put(0, nm)
    put(100, _octal(mode, 8))
    put(108, _octal(uid, 8))
    put(116, _octal(gid, 8))
    put(124, _octal(size, 12))
    put(136, _octal(0, 12))
    b[148:156] = b" " * 8
    put(156, typeflag)
    put(157, link.encode())
    put(257, b"ustar\x0000")
    put(265, uname.encode()[:32])
    put(297, gname.encode()[:32])
    put(329, _octal(0, 8))
    put(337, _octal(0, 8))
    put(345, prefix)
    b[148:156] = _octal(sum(b), 7) + b" "
    return bytes(b)


def _pax_record(k: str, v: str) -> bytes:
    """Go's formatPAXRecord: `<len> k=v\\n`, the length counting itself."""
    body = f" {k}={v}\n".encode()
    size = len(body) + len(str(len(body)))
    if len(str(size)) + len(body) != size:
        size = len(str(size)) + len(body)
    return str(size).encode() + body


def _go_field(s: str, width: int) -> bytes:
    """Go's formatString after toASCII: as much as fits, NUL-terminated when shorter, and a
    cut that ends in `/` loses its trailing slashes."""
    b = "".join(c for c in s if ord(c) < 0x80).encode()
    if len(b) < width:
        return b + b"\0"
    cut = bytearray(b[:width])
    if len(b) > width and cut[-1:] == b"/":
        n = len(b[: width - 1].rstrip(b"/"))
        cut[n] = 0
    return bytes(cut)


def _header_or_pax(
    name: str, mode: int, uid: int, gid: int, size: int, typeflag: bytes, link: str, uname: str, gname: str
) -> bytes:
    """USTAR when it fits; else what Go writes for a long or non-ASCII name or link target: a PAX
    extended header (`<dir>/PaxHeaders.0/<file>`, records sorted) and a main header with truncated
    fields. Numbers too large for octal stay unsupported."""
    try:
        return _ustar(name, mode, uid, gid, size, typeflag, link, uname, gname)
    except ValueError:
        pass
    if not (uname + gname).isascii() or len(uname) > 32 or len(gname) > 32:
        raise ValueError("user names that need PAX records")
    recs: dict[str, str] = {}
    nb = name.encode()
    if not name.isascii() or len(nb) > 100:
        try:
            if not name.isascii():
                raise ValueError
            _split_ustar(nb)
        except ValueError:
            recs["path"] = name
    if not link.isascii() or len(link.encode()) > 100:
        recs["linkpath"] = link
    if not recs:
        raise ValueError("a header Go would not write as PAX either")
    data = b"".join(_pax_record(k, recs[k]) for k in sorted(recs))
    d, f = posixpath.split(name)
    xname = posixpath.join(d, "PaxHeaders.0", f) if f else posixpath.join(d, "PaxHeaders.0")
    xb = "".join(c for c in xname if ord(c) < 0x80).encode()[:100].rstrip(b"/")
    x = bytearray(512)
    x[0 : len(xb)] = xb
    x[100:108], x[108:116], x[116:124] = _octal(0, 8), _octal(0, 8), _octal(0, 8)
    x[124:136], x[136:148] = _octal(len(data), 12), _octal(0, 12)
    x[148:156] = b" " * 8
    x[156:157] = b"x"
    x[257:265] = b"ustar\x0000"
    x[148:156] = _octal(sum(x), 7) + b" "
    m = bytearray(512)
    m[0:100] = _go_field(name, 100).ljust(100, b"\0")
    m[100:108], m[108:116], m[116:124] = _octal(mode, 8), _octal(uid, 8), _octal(gid, 8)
    m[124:136], m[136:148] = _octal(size, 12), _octal(0, 12)
    m[148:156] = b" " * 8
    m[156:157] = typeflag
    m[157:257] = _go_field(link, 100).ljust(100, b"\0")
    m[257:265] = b"ustar\x0000"
    m[265:297] = uname.encode().ljust(32, b"\0")
    m[297:329] = gname.encode().ljust(32, b"\0")
    m[329:337], m[337:345] = _octal(0, 8), _octal(0, 8)
    m[148:156] = _octal(sum(m), 7) + b" "
    return bytes(x) + data + b"\0" * (-len(data) % 512) + bytes(m)


_TYPEFLAG = {"file": b"0", "hardlink": b"1", "symlink": b"2", "char": b"3", "block": b"4", "dir": b"5", "fifo": b"6"}


def _walk_order(rels: list[str]) -> list[str]:
    """filepath.WalkDir order: depth first, siblings sorted by name."""
    return sorted(rels, key=lambda r: r.split("/"))


class _Cannot(Exception):
    pass


def _buildah_stream(
    items: list[tuple[str, FileEntry]],
    contents: dict[str, bytes],
    dest: str,
    new: bool,
    names: Callable[[int, int], tuple[str, str]],
) -> str:
    h = hashlib.sha256()
    for rel, e in items:
        tf = _TYPEFLAG.get(e.type)
        if tf is None or e.type in ("char", "block"):
            raise _Cannot(f"{e.type} entries (device numbers are not kept)")
        name = rel + "/" if (e.type == "dir" and new) else rel
        link = ""
        if e.type == "symlink":
            link = e.link or ""
        elif e.type == "hardlink":
            target = e.link or ""
            inside = dest.rstrip("/") + "/"
            if not target.startswith(inside):
                raise _Cannot("a hard link to a file outside the destination")
            link = target[len(inside) :]
        data = b""
        if e.type == "file":
            if e.path not in contents:
                raise _Cannot("a copied file could not be read again")
            data = contents[e.path]
        uname, gname = names(e.uid, e.gid)
        try:
            h.update(_header_or_pax(name, e.mode & 0o7777, e.uid, e.gid, len(data), tf, link, uname, gname))
        except ValueError as exc:
            raise _Cannot(str(exc)) from None
        if data:
            h.update(data)
            h.update(b"\0" * (-len(data) % 512))
    h.update(b"\0" * 1024)
    return h.hexdigest()


def _tarsum_header(
    name: str,
    e: FileEntry,
    size: int,
    uid: int = 0,
    gid: int = 0,
    link: str | None = None,
    mode: int | None = None,
    uname: str = "",
    gname: str = "",
) -> bytes:
    tf = _TYPEFLAG.get(e.type)
    if tf is None or e.type in ("char", "block"):
        raise _Cannot(f"{e.type} entries (device numbers are not kept)")
    if link is None:
        link = e.link or "" if e.type == "symlink" else ""
    mode = e.mode & 0o7777 if mode is None else mode
    return (
        f"name{name}mode{mode}uid{uid}gid{gid}size{size}typeflag{tf.decode()}"
        f"linkname{link}uname{uname}gname{gname}devmajor0devminor0"
    ).encode("utf-8", "surrogateescape")


def _tarsum_entry(name: str, e: FileEntry, data: bytes, uid: int = 0, gid: int = 0) -> str:
    h = hashlib.sha256(_tarsum_header(name, e, len(data) if e.type == "file" else 0, uid, gid))
    h.update(data)
    return h.hexdigest()


def _classic_dir(
    items: list[tuple[str, FileEntry]], top: FileEntry | None, prefix: str, contents: dict[str, bytes], dest: str
) -> str:
    """`dir:` of moby: sorted per-entry tarsums, names as in the context (`prefix/rel`)."""
    by_rel = dict(items)
    inside = dest.rstrip("/") + "/"

    def ctx(rel: str) -> str:
        return f"{prefix}/{rel}" if prefix else rel

    def entry_sum(rel: str, e: FileEntry) -> str:
        name = ctx(rel) + ("/" if e.type == "dir" else "")
        if e.type == "hardlink":  # the context tar's link entry: no content, the first name's context path
            first = (e.link or "")[len(inside) :] if (e.link or "").startswith(inside) else None
            if first is None:
                raise _Cannot("a hard link to a file outside the copied tree")
            return hashlib.sha256(_tarsum_header(name, e, 0, link=ctx(first))).hexdigest()
        return _tarsum_entry(name, e, contents.get(e.path, b"") if e.type == "file" else b"")

    def follow(rel: str, e: FileEntry, depth: int = 0) -> str:
        if depth > 40:
            raise _Cannot("a symlink loop")
        target = e.link or ""
        base = posixpath.dirname(ctx(rel))
        full = posixpath.normpath(target.lstrip("/") if target.startswith("/") else posixpath.join(base, target))
        if full.startswith("..") or full == ".":
            raise _Cannot("a symlink that leaves the copied tree")
        if prefix:
            if full == prefix:
                if top is None:
                    raise _Cannot("a symlink to the source directory itself")
                return _tarsum_entry(prefix + "/", top, b"")
            if not full.startswith(prefix + "/"):
                raise _Cannot("a symlink to a path outside the copied tree")
            trel = full[len(prefix) + 1 :]
        else:
            trel = full
        te = by_rel.get(trel)
        if te is None:
            return ctx(rel)  # moby: a target that does not exist hashes as the link's own path
        if te.type == "symlink":
            return follow(trel, te, depth + 1)
        return entry_sum(trel, te)

    sums = []
    if prefix:
        if top is None or top.type != "dir":
            raise _Cannot("the destination directory itself is not in the layer")
        sums.append(_tarsum_entry(prefix + "/", top, b""))
    for rel, e in items:
        sums.append(follow(rel, e) if e.type == "symlink" else entry_sum(rel, e))
    return hashlib.sha256(",".join(sorted(sums)).encode()).hexdigest()


def _suffixes(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p]
    return ["/".join(parts[i:]) for i in range(len(parts) - 1, -1, -1)]


# --------------------------------------------------------------------------- recompute one step


@dataclass
class _Outcome:
    matched: str | None = None  # how it matched
    covered: list[str] = field(default_factory=list)  # the layer paths the matching hash covers
    extras: list[str] = field(default_factory=list)  # `file:` matched: what else the layer holds there
    pinned: bool = False  # a mismatch would be proof
    tried: list[str] = field(default_factory=list)
    cannot: str | None = None


def _names_for(variant: str) -> Callable[[int, int], tuple[str, str]]:
    if variant == "blank":
        return lambda u, g: ("", "")
    if variant == "root":
        return lambda u, g: ("root" if u == 0 else "", "root" if g == 0 else "")
    if variant == "root-owned":  # --chown of root-owned source files: the name is the source owner's
        return lambda u, g: ("root", "root")
    raise ValueError(variant)


_NAMES = ("root", "root-owned", "blank")


def _file_heads(e: FileEntry) -> dict[str, bytes]:
    """Every candidate hash of one copied file, as the bytes hashed before its content."""
    heads: dict[str, bytes] = {}
    base = posixpath.basename(e.path)
    for names in _NAMES:
        un, gn = _names_for(names)(e.uid, e.gid)
        try:
            heads[f"buildah/{names}"] = _header_or_pax(base, e.mode & 0o7777, e.uid, e.gid, e.size, b"0", "", un, gn)
        except ValueError:
            pass  # a header Go would write as PAX: not rebuilt
    for name in _suffixes(e.path):  # the build context: the CLI's tar, owners 0:0, names blank
        heads[f"classic/{name}/0:0"] = _tarsum_header(name, e, e.size)
    # COPY --from (moby's lazy context over the stage's root): the path in the stage, which is the
    # destination when copied to the same place; the real owners and the daemon host's names for
    # them (docker 20.10: `root` for 0, unknown otherwise), the mode with Go 1.8's type bits (20.10)
    # or without (later).
    full = e.path.lstrip("/")
    for typebits in (0o100000, 0):
        for names in ("root", "blank"):
            un, gn = _names_for(names)(e.uid, e.gid)
            heads[f"classic-from/{full}/{typebits:o}/{names}"] = _tarsum_header(
                full, e, e.size, e.uid, e.gid, mode=(e.mode & 0o7777) | typebits, uname=un, gname=gn
            )
    return heads


class _FileHashers:
    """The candidates' hashes fed as the content streams by; candidates with the same head share one."""

    def __init__(self, e: FileEntry) -> None:
        self.labels: dict[str, bytes] = _file_heads(e)
        self.by_head = {head: hashlib.sha256(head) for head in dict.fromkeys(self.labels.values())}

    def update(self, chunk) -> None:
        for h in self.by_head.values():
            h.update(chunk)

    def digests(self, size: int) -> dict[str, str]:
        pad = b"\0" * (-size % 512) + b"\0" * 1024
        out = {}
        for label, head in self.labels.items():
            h = self.by_head[head]
            if label.startswith("buildah/"):
                h = h.copy()
                h.update(pad)
            out[label] = h.hexdigest()
        return out


def _matched_as(label: str) -> str:
    kind, _, rest = label.partition("/")
    if kind == "buildah":
        return {
            "root": "buildah (< 1.42, user names root)",
            "root-owned": "buildah (< 1.42, user names root-owned)",
        }.get(rest, "buildah (blank user names)")
    if kind == "classic-from":
        return f"classic builder, COPY --from (stage path {rest.rsplit('/', 2)[0]!r})"
    return f"classic builder (context path {rest.rsplit('/', 1)[0]!r})"


def _recompute(
    t: Target,
    contents: dict[str, bytes],
    digests: dict[str, dict[str, str]],
    version: tuple[int, int] | None,
    pins: dict[int, str],
    merged_contents: dict[str, bytes] | None = None,
) -> _Outcome:
    """`contents`: the bytes of files under dir targets; `digests`: each streamed file's candidates."""
    out = _Outcome()
    top = t.entries.get(t.dest)
    inside = t.dest.rstrip("/") + "/" if t.dest != "/" else "/"
    below = {p[len(inside) :]: f for p, f in t.entries.items() if p != t.dest}
    items = [(r, below[r]) for r in _walk_order(list(below))]
    # buildah: from 1.42 (by its label) only blank names and dirs with "/"; before, looked-up names.
    # The label is the last build's; a mismatch needs the step itself to say buildah wrote it.
    new_pinned = t.buildah and t.last_build and version is not None and version >= (1, 42)
    old_version = t.buildah and version is not None and version < (1, 42)

    def owners_pinned(its) -> bool:
        return bool(pins) and all(f.uid in pins and (-1 - f.gid) in pins for _, f in its)

    def pinned(its) -> bool:
        if t.kind == "ADD":
            return False  # it may have extracted an archive, whose own headers were hashed
        if t.below and t.algo != "file":
            return False  # an unchanged re-copy may be missing from the layer
        return new_pinned or (old_version and owners_pinned(its))

    try:
        if t.algo == "file":
            its = _candidates(t)
            if not its:
                out.cannot = (
                    _why_not(t, version) if t.kind == "ADD" else "the destination does not hold a single copied file"
                )
                return out
            if any(f.path not in digests for _, f in its):
                out.cannot = "the copied file could not be read again"
                return out
            for _, e in its:
                for label, hexd in digests[e.path].items():
                    if hexd == t.recorded:
                        out.matched, out.covered = _matched_as(label), [e.path]
                        # The hash names the one file the step copied: anything else it left under
                        # the destination was not written by this COPY, whoever built it.
                        out.extras = sorted(
                            p for p, f in t.entries.items() if p not in (t.dest, e.path) and f.type != "dir"
                        )
                        return out
            if len(its) > 1:
                out.cannot = (
                    "the destination holds several files and none reproduces the hash: which one "
                    "the step copied is not known"
                )
                return out
            d = digests[its[0][1].path]
            out.tried = [f"{k}:{v[:12]}" for k, v in d.items()][:8]
            out.pinned = pinned(its)
        elif t.algo == "dir":
            if any(f.type == "file" and f.path not in contents for _, f in items):
                out.cannot = "the copied files could not be read again"
                return out
            views = [(items, contents, "")]
            if t.merged is not None and merged_contents is not None:
                # buildah on a storage driver that diffs by metadata (vfs) leaves out of the layer a file
                # copied again unchanged: try the destination as it stands after the step as well
                full = [(r, t.merged[inside + r][1]) for r in _walk_order([p[len(inside) :] for p in t.merged])]
                if all(f.type != "file" or f.path in merged_contents for _, f in full):
                    views.append((full, merged_contents, ", with files the layers below held, copied again"))
            why = None
            for its, data, note in views:
                for gen, names in (("old", "root"), ("old", "root-owned"), ("old", "blank"), ("new", "blank")):
                    got = _buildah_stream(its, data, t.dest, gen == "new", _names_for(names))
                    out.tried.append(f"buildah-{gen}/{names}{'+below' if note else ''}:{got[:12]}")
                    if got == t.recorded:
                        out.matched = f"buildah ({'>= 1.42' if gen == 'new' else '< 1.42'}, user names {names}){note}"
                        out.covered = [f.path for _, f in its]
                        return out
                # classic builder: tarsums under the source's context path, unknown; try the likely ones.
                for prefix in [""] + _suffixes(t.dest):
                    try:
                        got = _classic_dir(its, top, prefix, data, t.dest)
                    except _Cannot as exc:
                        why = str(exc)
                        continue
                    if got == t.recorded:
                        where = f"context path {prefix!r}" if prefix else "the context root"
                        out.matched = f"classic builder ({where}){note}"
                        out.covered = [f.path for _, f in its] + ([top.path] if prefix and top else [])
                        return out
                    out.tried.append(f"classic:{prefix or '.'}")
            out.pinned = pinned(items)
            if why and not out.pinned and version is None:
                out.cannot = (
                    "the classic builder's hash is not rebuilt when the source holds "
                    + why
                    + " (moby hashes what the link points to in the build context)"
                )
        elif t.algo == "multi":
            direct = _multi_files(t)
            if direct is None:
                out.cannot = (
                    "several sources, and which files came from which one (and their order in "
                    "the Dockerfile) is not recorded"
                )
                return out
            if any(f.path not in digests for _, f in direct):
                out.cannot = "the copied files could not be read again"
                return out
            per = {f"buildah/{n}": [digests[f.path].get(f"buildah/{n}") for _, f in direct] for n in _NAMES}
            per["classic"] = [digests[f.path].get(f"classic/{r}/0:0") for r, f in direct]
            for how, parts in per.items():
                known = [p for p in parts if p is not None]
                if len(known) != len(parts):
                    continue
                for order in itertools.permutations("file:" + p for p in known):
                    if hashlib.sha256(",".join(order).encode()).hexdigest() == t.recorded:
                        out.matched = (
                            f"{_matched_as(how) if how != 'classic' else 'classic builder'}"
                            f" ({len(parts)} sources in some order)"
                        )
                        out.covered = [f.path for _, f in direct]
                        return out
            out.pinned = pinned(direct)
            out.tried.append(f"{len(per)} ways x {len(direct)}! orders")
    except _Cannot as exc:
        out.cannot = f"the layer holds what the hash format cannot be rebuilt from: {exc}"
    return out


def _below(t: Target) -> list[tuple[str, FileEntry]]:
    inside = t.dest.rstrip("/") + "/" if t.dest != "/" else "/"
    return [(p[len(inside) :], f) for p, f in t.entries.items() if p != t.dest]


def _single(t: Target) -> list[tuple[str, FileEntry]] | None:
    """The one file a `file:` step copied: at the destination, or alone under it (`COPY f /dir/`)."""
    top = t.entries.get(t.dest)
    if top is not None and top.type != "dir":
        return [(posixpath.basename(t.dest), top)] if top.type == "file" else None
    items = _below(t)
    if len(items) == 1 and "/" not in items[0][0] and items[0][1].type == "file":
        return items
    return None


MAX_CANDIDATES = 64  # files under a `COPY f /dir/` destination tried as the one it copied


def _candidates(t: Target) -> list[tuple[str, FileEntry]]:
    """The files a `file:` step may have copied: the one `_single` finds, or, when its directory
    destination holds more, each regular file directly under it (the hash tells which)."""
    one = _single(t)
    if one is not None:
        return one
    top = t.entries.get(t.dest)
    if t.kind != "COPY" or (top is not None and top.type != "dir"):
        return []
    direct = [(r, f) for r, f in _below(t) if "/" not in r and f.type == "file"]
    return direct if len(direct) <= MAX_CANDIDATES else []


def _multi_files(t: Target) -> list[tuple[str, FileEntry]] | None:
    """Several sources that are all plain files directly under the destination (the common case)."""
    items = sorted(_below(t))
    if not items or len(items) > MAX_MULTI or any("/" in r or f.type != "file" for r, f in items):
        return None
    return items


def _why_not(t: Target, version: tuple[int, int] | None) -> str:
    if t.kind == "ADD":
        return (
            "ADD may have extracted a local archive: the hash covers the archive itself (and, for buildah, "
            "its own tar headers), which the image does not hold"
        )
    if t.below and t.algo != "file":
        return (
            "the destination already held files below this layer, so what the step copied is not known "
            "for certain (a file copied again unchanged may be left out of the layer), and neither the "
            "layer alone nor the destination as it stands reproduces the hash"
        )
    if t.buildah and version is not None and version < (1, 42):
        return (
            "buildah before 1.42 hashes the user and group names it looked up for the source files' own "
            "owners, which the image does not record: neither `root` nor blank names reproduce it"
        )
    return (
        "no builder's hash reproduces it, and neither can be rebuilt for certain: the classic builder "
        "hashes each file under its path in the build context (none of the likely paths matches), "
        "buildah before 1.42 the names of the source files' owners; the image records neither"
    )


# --------------------------------------------------------------------------- entry point


def check_image(
    img: Image, instructions, layer_entries: list[str | None], source: MemberSource
) -> tuple[dict[int, CopyHashStatus], list[Finding]]:
    """Per history entry with a COPY/ADD hash: its status, and the findings (mismatches).

    `instructions` are the parsed `created_by` lines (history.instructions), `layer_entries`
    the archive path of each layer's blob (for the second read); `source` reads them again."""
    targets = plan(img, instructions)
    statuses: dict[int, CopyHashStatus] = {}
    findings: list[Finding] = []
    if not targets:
        return statuses, findings
    contents: dict[str, dict[str, bytes]] = {}
    digests: dict[str, dict[str, dict[str, str]]] = {}
    want, stream, keep = wanted_files(targets, layer_entries)
    by_key = {
        (layer_entries[t.layer], f.path): f for t in targets if t.layer < len(layer_entries) for f in t.entries.values()
    }
    by_key.update(
        {
            (layer_entries[li], f.path): f
            for t in targets
            for li, f in (t.merged or {}).values()
            if li < len(layer_entries)
        }
    )
    if sum(by_key[k].size for k in keep if k in by_key) > MAX_CONTENT:
        for t in targets:
            if t.algo == "dir" and t.reason is None:
                t.reason = (
                    f"over {MAX_CONTENT >> 20} MiB of files under the directories this image copies: "
                    "not held in memory to rebuild the directory hash"
                )
        want, stream, keep = wanted_files(targets, layer_entries)
    if want and not source.readable:
        for t in targets:  # stdin or a named pipe: what was read is gone
            t.reason = t.reason or (
                "the input is stdin or a pipe: the one pass keeps no file contents and "
                "cannot read the copied files again"
            )
    elif want:

        def consume(entry_path, path, member, rd) -> None:
            if any(k.startswith("SCHILY.xattr.") for k in (member.pax or {})):
                return  # xattrs enter both hashes; the model does not keep them: leave it unread
            key = (entry_path, path)
            entry = by_key.get(key)
            hashers = _FileHashers(entry) if key in stream and entry is not None else None
            parts: list[bytes] | None = [] if key in keep else None
            left = member.size
            while left > 0 and (chunk := rd(min(left, 1 << 20))):
                if hashers is not None:
                    hashers.update(chunk)
                if parts is not None:
                    parts.append(bytes(chunk))
                left -= len(chunk)
            if left:
                return
            if hashers is not None and entry is not None and entry.size == member.size:
                digests.setdefault(entry_path, {})[path] = hashers.digests(member.size)
            if parts is not None:
                contents.setdefault(entry_path, {})[path] = b"".join(parts)

        source.stream(want, consume)
    version = _buildah_version(img)
    build = _builds(img)
    for t in targets:
        t.last_build = build[t.history] == build[-1]
    # owner id -> looked-up name (uid; -1-gid for groups) per build, learned from matches
    pins: dict[int, dict[int, str]] = {}
    outcomes: dict[int, _Outcome] = {}

    def merged_of(t: Target) -> dict[str, bytes] | None:
        if t.merged is None:
            return None
        got = {}
        for li, f in t.merged.values():
            data = contents.get((layer_entries[li] if li < len(layer_entries) else None) or "", {}).get(f.path)
            if data is not None:
                got[f.path] = data
        return got

    live = sorted((t for t in targets if t.reason is None), key=lambda t: t.history)
    for t in live:  # first without pins: what matches teaches the names the build looked up
        entry = layer_entries[t.layer] if t.layer < len(layer_entries) else None
        out = outcomes[t.history] = _recompute(
            t, contents.get(entry or "", {}), digests.get(entry or "", {}), version, {}, merged_of(t)
        )
        if t.buildah and out.matched and "< 1.42" in out.matched and "user names root)" in out.matched:
            learned = pins.setdefault(build[t.history], {})
            for f in t.entries.values():
                if f.uid == 0:
                    learned[0] = "root"
                if f.gid == 0:
                    learned[-1] = "root"
    for t in live:  # then the others again, with the names the same build's matches pinned
        known = pins.get(build[t.history])
        if not outcomes[t.history].matched and not outcomes[t.history].cannot and known:
            entry = layer_entries[t.layer] if t.layer < len(layer_entries) else None
            outcomes[t.history] = _recompute(
                t, contents.get(entry or "", {}), digests.get(entry or "", {}), version, known, merged_of(t)
            )
    for t in sorted(targets, key=lambda t: t.history):
        if t.reason is not None:
            statuses[t.history] = CopyHashStatus(
                status="cannot-recompute", recorded=f"{t.algo}:{t.recorded}", reason=t.reason
            )
            continue
        out = outcomes[t.history]
        paths = sorted(t.entries)
        if out.matched and out.extras:
            statuses[t.history] = CopyHashStatus(
                status="mismatch", recorded=f"{t.algo}:{t.recorded}", matched_as=out.matched, paths=out.extras
            )
            shown = ", ".join(_shown(p) for p in out.extras[:5]) + (" …" if len(out.extras) > 5 else "")
            findings.append(
                finding(
                    "history.effect-mismatch",
                    Severity.critical,
                    f"{t.kind} {_shown(t.dest)}",
                    f"the step copies one file, and its recorded hash {t.algo}:{t.recorded} proves which: "
                    f"{_shown(out.covered[0])}; its layer also holds {len(out.extras)} other entr"
                    f"{'y' if len(out.extras) == 1 else 'ies'} under {_shown(t.dest)} that it did not write: {shown}",
                    image=img.index,
                    layer=t.layer,
                    history=t.history,
                    path=out.extras[0],
                    evidence={
                        "recorded": f"{t.algo}:{t.recorded}",
                        "copied": out.covered[0],
                        "matched_as": out.matched,
                        "not_copied": out.extras[:50],
                    },
                )
            )
        elif out.matched:
            statuses[t.history] = CopyHashStatus(
                status="verified", recorded=f"{t.algo}:{t.recorded}", matched_as=out.matched, paths=sorted(out.covered)
            )
        elif out.cannot:
            statuses[t.history] = CopyHashStatus(
                status="cannot-recompute", recorded=f"{t.algo}:{t.recorded}", reason=out.cannot
            )
        elif out.pinned:
            statuses[t.history] = CopyHashStatus(
                status="mismatch", recorded=f"{t.algo}:{t.recorded}", paths=paths, tried=out.tried
            )
            n = len([p for p in paths if t.entries[p].type == "file"])
            findings.append(
                finding(
                    "history.effect-mismatch",
                    Severity.critical,
                    f"{t.kind} {_shown(t.dest)}",
                    f"the step records the source hash {t.algo}:{t.recorded}, but the {n} file(s) its layer "
                    f"holds under {_shown(t.dest)} hash to something else: what was copied is not what the "
                    f"build copied",
                    image=img.index,
                    layer=t.layer,
                    history=t.history,
                    path=t.dest,
                    evidence={
                        "recorded": f"{t.algo}:{t.recorded}",
                        "recomputed": out.tried[:8],
                        "builder": f"buildah {'.'.join(map(str, version))}" if version else "buildah",
                        "paths": paths[:50],
                    },
                )
            )
        else:
            statuses[t.history] = CopyHashStatus(
                status="cannot-recompute", recorded=f"{t.algo}:{t.recorded}", reason=_why_not(t, version)
            )
    return statuses, findings


__all__ = ["check_image", "plan", "MAX_CONTENT"]
