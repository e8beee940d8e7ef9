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
import hashlib
import io
import posixpath
import tarfile
import zlib
from collections.abc import Callable

from forensics.findings import Code, finding
from forensics.history.overlay import Node
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


def _unpack(data: bytes) -> dict[str, str] | None:
    """{path inside the package: sha256} of a package tarball's regular files, or None if
    it is not one. npm drops the first path component (`package/` in every published one)."""
    try:
        raw = zlib.decompressobj(wbits=47).decompress(data, MAX_UNPACKED)
        tar = tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
        out: dict[str, str] = {}
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
                out[rel] = hashlib.sha256(fh.read()).hexdigest()
        return out
    except Exception:  # noqa: BLE001 - forged bytes in any form: not a tarball we can hold files to
        return None


def check(
    state,
    overlay,
    *,
    image: int,
    source: MemberSource,
    layer_entries: list[str | None],
    history_of_layer: dict[int, int],
    accounts: Callable[[int, str], bool],
) -> tuple[list[Finding], Outcome]:
    """Every npm package with an integrity and its tarball in the cache (see above).
    `accounts(layer, path)`: an exact claim of that layer's command says what goes there."""
    pkgs = [(tree, p) for tree, p in sorted(state.trees.items()) if p.manager == "npm" and p.integrity]
    if not pkgs or not source.readable:
        return [], {}
    cached = _cached(overlay)
    plan = []
    wanted: dict[str, set[str]] = {}
    for tree, pkg in pkgs:
        hexd = sha512_hex(pkg.integrity)
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
        return [], {}
    tarballs: dict[str, dict[str, str] | None] = {}  # cache path -> its files, None: not the tarball

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
    findings: list[Finding] = []
    outcome: Outcome = {}
    for tree, pkg, cache_path, cache_layer in plan:
        files = tarballs.get(cache_path)
        if not files:
            continue  # not read, or its bytes are not the sha512 it is named by
        for path in overlay._descendants(tree):
            node = overlay.get(path)
            if node is None or node.entry.type != "file":
                continue
            want = files.get(path[len(tree) + 1 :])
            if want is None:
                continue  # not in the tarball (a build output of an install script): stays owned
            if node.sha256 == want:
                outcome[path] = ("same" if node.layer == cache_layer else "earlier", node.entry.size)
                continue
            if path == f"{tree}/package.json" and any(f in (state.files.get(path) or b"") for f in _NPM6_FIELDS):
                continue  # npm 6 rewrote it with its own fields
            outcome[path] = ("mismatched", node.entry.size)
            findings.append(_finding(pkg, path, node, want, cache_path, cache_layer, image, history_of_layer, accounts))
    return findings, outcome


def _finding(pkg, path, node, want, cache_path, cache_layer, image, history_of_layer, accounts) -> Finding:
    layer = node.layer
    acc = accounts(layer, path)
    if layer == cache_layer:
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
        f"{cache_path}, whose sha512 is the lockfile's integrity); {where}; {step}",
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
            "same_step_record": layer <= cache_layer,
            "accounted": acc,
        },
    )
