"""npm packages held to the tarballs they were unpacked from: history.package-file-modified.

npm records no digest per file, so a package directory is owned, never verified
(forensics.packages.langdb). But `npm install` / `npm ci` keep the tarball they
unpacked in npm's cache (`~/.npm/_cacache/content-v2/sha512/xx/yy/<rest>`, named by the
tarball's own sha512) unless the build removes it, and the lockfile names that sha512
(`integrity`: node_modules/.package-lock.json, package-lock.json; npm 6 wrote it into the
installed package.json as `_integrity`). When the image holds both, the tarball is read
again (a second, targeted read of its layer), its sha512 must be the lockfile's, and then
each file of the package directory must be the tarball's file: an edit made in the very
step that ran `npm install` is then a contradiction, not an "owned" file.

What a match proves: the files are what the cached tarball holds. The cache and the
lockfile are in the image too, so a forger who rewrote the tarball and both lockfiles
consistently is not caught here; the integrity is in the evidence so that it can be
checked against the registry, which publishes it for every version. A package whose
tarball is not in the cache (cleaned, a cache mount, a global install) stays unverified.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import io
import json
import os
import posixpath
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field

from forensics.findings import Code, finding
from forensics.history.overlay import Node, Overlay
from forensics.history.packages import PackageState
from forensics.models import Finding
from forensics.read.source import MemberSource

RAISES: tuple[Code, ...] = ("history.package-file-modified",)

CACHE_DIR = "/_cacache/content-v2/sha512/"
MAX_TARBALL = 64 << 20  # compressed bytes of one cached tarball read again
MAX_UNPACKED = 256 << 20  # and what it may inflate to
MAX_MEMBERS = 100_000
# npm 6 rewrote an installed package.json with its own fields; newer npm leaves it alone.
_NPM6_FIELDS = (b'"_resolved"', b'"_integrity"', b'"_from"')

# (path, layer) -> (label, size): "earlier" / "same" / "mismatched", as pkgdigests.check marks
Outcome = dict[str, tuple[str, int]]


def sha512_hex(sri: str) -> str | None:
    try:
        raw = base64.b64decode(sri.removeprefix("sha512-"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 64 else None


def _cached(overlay) -> dict[str, tuple[str, Node]]:
    """sha512 hex -> (path, node) of every cached content file of the merged filesystem."""
    out: dict[str, tuple[str, Node]] = {}
    for path, node in overlay.nodes.items():
        i = path.find(CACHE_DIR)
        if i < 0 or node.entry.type != "file":
            continue
        parts = path[i + len(CACHE_DIR) :].split("/")
        if len(parts) == 3 and len(parts[0]) == 2 and len(parts[1]) == 2 and len(parts[2]) == 124:
            out.setdefault("".join(parts), (path, node))
    return out


class _Bounded(io.BufferedIOBase):
    """A reader that gives out at most `limit` bytes of `f`, then raises: a gzip bomb in a
    cached tarball costs its limit, not the memory it would inflate to."""

    def __init__(self, f, limit: int) -> None:
        super().__init__()
        self._f, self._left = f, limit

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        n = -1 if n is None else n
        data = self._f.read(n if n >= 0 else self._left + 1)
        self._left -= len(data)
        if self._left < 0:
            raise ValueError("the tarball inflates past MAX_UNPACKED")
        return data


# (path inside the package -> sha256, the bytes of its package.json): what a tarball holds
Unpacked = tuple[dict[str, str], bytes | None]
MAX_MANIFEST = 1 << 20
# What npm 6's rewrite of package.json must leave as the tarball has it: where the code
# that runs is named. The rest it normalizes (repository, bugs, homepage, ...).
_ENTRY_FIELDS = ("main", "exports", "module", "browser", "type", "scripts")


def _entry_points(data: bytes | None) -> list[str] | None:
    try:
        doc = json.loads(data or b"")
    except (ValueError, RecursionError):
        return None
    return [json.dumps(doc.get(k), sort_keys=True) for k in _ENTRY_FIELDS] if isinstance(doc, dict) else None


def _unpack(data: bytes) -> Unpacked | None:
    """{path inside the package: sha256} of a package tarball's regular files and its
    package.json, or None if it is not a tarball. npm drops the first path component
    (`package/` in every published one). Read as a stream, one member at a time."""
    try:
        stream = _Bounded(gzip.GzipFile(fileobj=io.BytesIO(data)), MAX_UNPACKED)
        out: dict[str, str] = {}
        manifest = None
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for n, m in enumerate(tar):
                if n >= MAX_MEMBERS:
                    break
                if not m.isreg():
                    continue
                rel = posixpath.normpath(m.name.lstrip("/").partition("/")[2] or "")
                if rel in ("", ".") or rel.startswith("../"):
                    continue
                fh = tar.extractfile(m)
                if fh is not None:
                    h = hashlib.sha256()
                    while chunk := fh.read(1 << 20):
                        h.update(chunk)
                        if rel == "package.json" and m.size <= MAX_MANIFEST:
                            manifest = (manifest or b"") + chunk
                    out[rel] = h.hexdigest()
        return out, manifest
    except Exception:  # noqa: BLE001 - forged bytes in any form: not a tarball we can hold files to
        return None


class TarballError(Exception):
    """An --npm-cache folder that cannot be read: bad usage, a one-line error."""


class Tarballs:
    """Package tarballs from outside the image (`scan --npm-cache DIR`): an npm cache
    (a folder holding `_cacache`, such as ~/.npm, or the `_cacache` itself) or a folder of
    `.tgz` files (`npm pack NAME@VERSION`). Looked up by sha512, each read when first asked
    for and held to that sha512 then; a folder of .tgz files is hashed once, up front."""

    def __init__(self, dirs: list[str]) -> None:
        self.dirs = dirs
        self._by_hex: dict[str, str] = {}
        self._unpacked: dict[str, Unpacked | None] = {}
        for d in dirs:
            if not os.path.isdir(d):
                raise TarballError(f"--npm-cache {d}: not a folder")
            for root in (os.path.join(d, "_cacache"), d):
                content = os.path.join(root, "content-v2", "sha512")
                if os.path.isdir(content):
                    self._index_cacache(content)
                    break
            else:
                self._index_tgz(d)

    def _index_cacache(self, content: str) -> None:
        for a in sorted(os.listdir(content)):
            pa = os.path.join(content, a)
            if len(a) != 2 or not os.path.isdir(pa):
                continue
            for b in sorted(os.listdir(pa)):
                pb = os.path.join(pa, b)
                if len(b) == 2 and os.path.isdir(pb):
                    for rest in sorted(os.listdir(pb)):
                        if len(rest) == 124:
                            self._by_hex.setdefault(a + b + rest, os.path.join(pb, rest))

    def _index_tgz(self, d: str) -> None:
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            if name.endswith((".tgz", ".tar.gz")) and os.path.isfile(path) and os.path.getsize(path) <= MAX_TARBALL:
                try:
                    with open(path, "rb") as fh:
                        self._by_hex.setdefault(hashlib.sha512(fh.read()).hexdigest(), path)
                except OSError as exc:
                    raise TarballError(f"--npm-cache {path}: cannot read: {exc.strerror}") from None

    def __len__(self) -> int:
        return len(self._by_hex)

    def files(self, hexd: str) -> tuple[str, Unpacked] | None:
        """(where, what it holds) of the tarball whose sha512 is `hexd`."""
        path = self._by_hex.get(hexd)
        if path is None:
            return None
        if hexd not in self._unpacked:
            try:
                with open(path, "rb") as fh:
                    data = fh.read(MAX_TARBALL + 1)
            except OSError:
                data = b""
            ok = len(data) <= MAX_TARBALL and hashlib.sha512(data).hexdigest() == hexd
            self._unpacked[hexd] = _unpack(data) if ok else None
        found = self._unpacked[hexd]
        return (path, found) if found is not None and found[0] else None


def check(
    state,
    overlay,
    *,
    image: int,
    source: MemberSource,
    layer_entries: list[str | None],
    history_of_layer: dict[int, int],
    accounts: Callable[[int, str], bool],
    outside: Tarballs | None = None,
) -> tuple[list[Finding], Outcome]:
    """Every npm package with an integrity and its tarball in the cache (see above), or
    in `outside` (--npm-cache), which is preferred: it is evidence the image cannot forge.
    `accounts(layer, path)`: an exact claim of that layer's command says what goes there."""
    pkgs = [(tree, p) for tree, p in sorted(state.trees.items()) if p.manager == "npm" and p.integrity]
    if not pkgs:
        return [], {}
    ctx = _Holder(state, overlay, image, history_of_layer, accounts)
    findings, outcome = ctx.findings, ctx.outcome
    if outside is not None:
        left = []
        for tree, pkg in pkgs:
            hexd = sha512_hex(pkg.integrity or "")
            ext = outside.files(hexd) if hexd else None
            if ext is None:
                left.append((tree, pkg))
            else:
                ctx.hold(tree, pkg, ext[1], ext[0], None)
        pkgs = left
    if not pkgs or not source.readable:
        return findings, outcome
    cached = _cached(overlay)
    plan = []
    wanted: dict[str, set[str]] = {}
    for tree, pkg in pkgs:
        hexd = sha512_hex(pkg.integrity or "")
        hit = cached.get(hexd) if hexd else None
        if hit is None:
            continue
        path, node = hit
        entry = layer_entries[node.layer] if node.layer < len(layer_entries) else None
        if entry is None or node.entry.size > MAX_TARBALL:
            continue
        plan.append((tree, pkg, path, node.layer))
        wanted.setdefault(entry, set()).add(path)
    if not plan:
        return findings, outcome
    tarballs: dict[str, Unpacked | None] = {}  # cache path -> its files, None: not the tarball

    def consume(entry_path: str, path: str, member, read) -> None:
        h, parts, size = hashlib.sha512(), [], 0
        while part := read(1 << 20):
            size += len(part)
            if size > MAX_TARBALL:
                return
            h.update(part)
            parts.append(bytes(part))
        hexd = path.rpartition(CACHE_DIR)[2].replace("/", "")
        tarballs[path] = _unpack(b"".join(parts)) if h.hexdigest() == hexd else None

    source.stream(wanted, consume)
    for tree, pkg, cache_path, cache_layer in plan:
        unpacked = tarballs.get(cache_path)
        if unpacked is not None and unpacked[0]:  # else not read, or not the sha512 it is named by
            ctx.hold(tree, pkg, unpacked, cache_path, cache_layer)
    return findings, outcome


@dataclass
class _Holder:
    """One image's npm packages held to their tarballs: the findings and outcomes so far."""

    state: PackageState
    overlay: Overlay
    image: int
    history_of_layer: dict[int, int]
    accounts: Callable[[int, str], bool]
    findings: list[Finding] = field(default_factory=list)
    outcome: Outcome = field(default_factory=dict)

    def hold(self, tree: str, pkg, unpacked: Unpacked, where: str, cache_layer: int | None) -> None:
        """Each file of the package directory against the tarball's (`cache_layer` None: the
        tarball came from outside the image)."""
        overlay, state = self.overlay, self.state
        files, manifest = unpacked
        for path in overlay._descendants(tree):
            node = overlay.get(path)
            if node is None or node.entry.type != "file":
                continue
            want = files.get(path[len(tree) + 1 :])
            if want is None:
                continue  # not in the tarball (a build output of an install script): stays owned
            if node.sha256 == want:
                self.outcome[path] = ("same" if node.layer == cache_layer else "earlier", node.entry.size)
                continue
            if path == f"{tree}/package.json":
                installed = state.files.get(path) or b""
                entry = _entry_points(installed)
                if any(f in installed for f in _NPM6_FIELDS) and entry is not None and entry == _entry_points(manifest):
                    continue  # npm 6 rewrote it with its own fields, and left what runs as it was
            self.outcome[path] = ("mismatched", node.entry.size)
            self.findings.append(
                _finding(pkg, path, node, want, where, cache_layer, self.image, self.history_of_layer, self.accounts)
            )


def _finding(pkg, path, node, want, cache_path, cache_layer, image, history_of_layer, accounts) -> Finding:
    layer = node.layer
    acc = accounts(layer, path)
    if cache_layer is None:
        where = "the tarball is from --npm-cache, outside the image: nothing in the image could have forged it"
    elif layer == cache_layer:
        where = (
            f"the tarball was cached in the same step as the file (layer {layer}): whoever controlled that step "
            "could have written both, so a match there would prove little, but this mismatch stands"
        )
    elif layer > cache_layer:
        where = f"the tarball dates from layer {cache_layer}; the file's content was written in layer {layer}"
    else:
        where = f"the file's content dates from layer {layer}; the tarball was cached after it, in layer {cache_layer}"
    step = (
        "the step's command accounts for the change"
        if acc
        else f"no command of layer {layer}'s step accounts for the change (npm writes what its tarball holds)"
    )
    return finding(
        "history.package-file-modified",
        "medium" if acc else "high",
        f"layer[{layer}]:{path}",
        f"{path} is a file of npm package {pkg.name}@{pkg.version} whose content differs from the same file in "
        f"the package's own tarball: its sha256 is {node.sha256}, the tarball's is {want} (the tarball is "
        f"{cache_path}, whose sha512 is the integrity the image's lockfile gives); {where}; {step}",
        image=image,
        layer=layer,
        history=history_of_layer.get(layer),
        path=path,
        evidence={
            "package": f"{pkg.name}@{pkg.version}",
            "manager": "npm",
            "algo": "sha256",
            "recorded": want,
            "actual": node.sha256,
            "tarball": cache_path,
            "integrity": pkg.integrity,
            "record_layer": cache_layer,
            "file_layer": layer,
            "outside_image": cache_layer is None,
            "same_step_record": cache_layer is not None and layer <= cache_layer,
            "accounted": acc,
        },
    )
