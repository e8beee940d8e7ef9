"""Language package records as package databases: pip/wheel RECORD, egg installed-files.txt, npm package.json.

- `<site>/<name>-<version>.dist-info/RECORD` (PEP 376 / PEP 627, written by pip and
  other installers): csv rows `path,algo=<urlsafe base64, no padding>,size`, paths
  relative to the site directory (the dist-info's parent), scripts reached with
  `../../../bin/x`. Ownership and a sha256 (or stronger) digest per file.
- `<site>/<name>.egg-info/installed-files.txt` (pip's legacy `setup.py install`): one
  path per line relative to the egg-info directory. Ownership only.
- `.../node_modules/<name>/package.json` and `.../node_modules/@scope/<name>/package.json`:
  npm owns the package directory and everything below it, plus the links its `bin`
  field names. npm keeps no per-file digest, so these files are owned, never verified.

A record may only claim paths inside its install prefix (`P` for `P/lib/pythonX/site-packages`,
the site directory itself for `--target` installs, the `node_modules` root for npm): a
RECORD line reaching `/etc/cron.d/x` is logged, not believed. Never raises on bad content.
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
import re

from .model import MAX_LANG_PACKAGES, ErrorLog, Package, PackageDB, PackageFile, norm_path

# Bounds for capturing these files in the one pass (bytes): real ones are far smaller.
MAX_RECORD = 16 << 20  # tensorflow's RECORD is ~2 MiB
MAX_INSTALLED_FILES = 4 << 20
MAX_PACKAGE_JSON = 1 << 20

MAX_LOCKFILE = 16 << 20  # a lockfile of a large monorepo is some MB
_ENDINGS = (
    "/RECORD",
    "/installed-files.txt",
    "/package.json",
    "/package-lock.json",
    "/node_modules/.package-lock.json",
)
# RECORD hash names accepted (the wheel spec requires sha256 or stronger); hex lengths.
_RECORD_ALGOS = {"sha256": 64, "sha384": 96, "sha512": 128}
_SITE = re.compile(r"^(.*)/lib(?:32|64|x32)?/(?:python|pypy)[^/]*/(?:site|dist)-packages$")
_NPM_PKG = re.compile(r"^(.*/node_modules)/((?:@[^/]+/)?[^/@.][^/]*)/package\.json$")


def capture_name(name: str, size: int) -> bool:
    """Cheap test for the hashing thread (every file of every layer): is this a record to keep?"""
    if not name.endswith(_ENDINGS):
        return False
    return lang_db_kind(norm_path(name), size) is not None


def lang_db_kind(path: str, size: int = 0) -> str | None:
    """'record', 'egg' or 'npm' for a language package record path (within its size bound)."""
    if path.endswith("/RECORD"):
        parent = posixpath.dirname(path)
        return "record" if parent.endswith(".dist-info") and size <= MAX_RECORD else None
    if path.endswith("/installed-files.txt"):
        parent = posixpath.dirname(path)
        return "egg" if parent.endswith(".egg-info") and size <= MAX_INSTALLED_FILES else None
    if path.endswith("/package.json") and "/node_modules/" in path:
        return "npm" if _NPM_PKG.match(path) and size <= MAX_PACKAGE_JSON else None
    if path.endswith(("/package-lock.json", "/node_modules/.package-lock.json")):
        return "npm-lock" if size <= MAX_LOCKFILE else None
    return None


def install_prefix(site: str) -> str:
    """The directory a Python install may write below: `P` of `P/lib/python3.11/site-packages`."""
    m = _SITE.match(site)
    return (m.group(1) or "/") if m else site


def _inside(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root + "/")


def _resolve(site: str, rel: str) -> str:
    return norm_path(rel) if rel.startswith("/") else norm_path(posixpath.join(site, rel))


def _hex_digest(value: str) -> tuple[str, str] | None:
    """`sha256=<urlsafe b64>` -> ("sha256", hex), or None if absent or malformed."""
    algo, eq, b64 = value.partition("=")
    want = _RECORD_ALGOS.get(algo.strip().lower())
    if not eq or want is None:
        return None
    b64 = b64.strip()
    try:
        raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
    except (binascii.Error, ValueError):
        return None
    return (algo.strip().lower(), raw.hex()) if len(raw) * 2 == want else None


def _dist_name(dirname: str, suffix: str) -> tuple[str, str]:
    stem = dirname[: -len(suffix)]
    name, _, version = stem.partition("-")
    return name or stem, version.split("-", 1)[0]


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def parse_record(data: bytes, path: str, log: ErrorLog) -> Package:
    import csv  # only images with pip installs need it: keep it off the CLI's start-up

    dist = posixpath.dirname(path)
    site = posixpath.dirname(dist)
    prefix = install_prefix(site)
    name, version = _dist_name(posixpath.basename(dist), ".dist-info")
    files: dict[str, PackageFile] = {}
    try:
        rows = list(csv.reader(_text(data).splitlines()))
    except csv.Error as exc:
        log.add(f"{path}: not a RECORD csv ({exc})")
        rows = []
    for lineno, row in enumerate(rows, 1):
        if not row or not row[0].strip():
            continue
        target = _resolve(site, row[0])
        if not _inside(target, prefix):
            log.add(f"{path}:{lineno}: path outside the install prefix {prefix}: {row[0][:80]!r}")
            continue
        f = files.get(target) or PackageFile(path=target)
        files[target] = f
        if len(row) > 1 and row[1].strip():
            got = _hex_digest(row[1])
            if got is None:
                log.add(f"{path}:{lineno}: bad hash {row[1][:80]!r}")
            else:
                f.algo, f.digest = got  # type: ignore[assignment]
    return Package(
        manager="pip", name=name, version=version, files=list(files.values()), source_path=path, source_paths=[path]
    )


def parse_installed_files(data: bytes, path: str, log: ErrorLog) -> Package:
    egg = posixpath.dirname(path)
    prefix = install_prefix(posixpath.dirname(egg))
    name, version = _dist_name(posixpath.basename(egg), ".egg-info")
    files: dict[str, PackageFile] = {}
    for lineno, line in enumerate(_text(data).splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        target = _resolve(egg, line)
        if not _inside(target, prefix):
            log.add(f"{path}:{lineno}: path outside the install prefix {prefix}: {line[:80]!r}")
            continue
        files.setdefault(target, PackageFile(path=target))
    return Package(
        manager="pip", name=name, version=version, files=list(files.values()), source_path=path, source_paths=[path]
    )


def parse_package_json(data: bytes, path: str, log: ErrorLog) -> Package | None:
    m = _NPM_PKG.match(path)
    if m is None:
        return None
    root, dirname = m.group(1), m.group(2)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        log.add(f"{path}: not a JSON object: the directory is not taken as an npm package")
        return None
    pkg_dir = f"{root}/{dirname}"
    raw_name, raw_version = doc.get("name"), doc.get("version")
    name: str = raw_name if isinstance(raw_name, str) else dirname
    version: str = raw_version if isinstance(raw_version, str) else ""
    bins = doc.get("bin")
    names: list[str] = []
    if isinstance(bins, str):
        names = [name.rsplit("/", 1)[-1]]
    elif isinstance(bins, dict):
        names = [k for k in bins if isinstance(k, str)]
    files = []
    # Local install: node_modules/.bin/<name>; global (<prefix>/lib/node_modules): <prefix>/bin/<name>.
    bin_dirs = [f"{root}/.bin"]
    if root.endswith("/lib/node_modules"):
        bin_dirs.append(root[: -len("/lib/node_modules")] + "/bin")
    for b in names[:256]:
        if b and "/" not in b and b not in (".", ".."):
            files += [PackageFile(path=norm_path(f"{d}/{b}")) for d in bin_dirs]
    return Package(
        manager="npm",
        name=name[:214],
        version=version[:64],
        files=files,
        trees=[pkg_dir],
        source_path=path,
        source_paths=[path],
        integrity=_sri(doc.get("_integrity")),  # npm 6 wrote it into the installed package.json
    )


def _sri(value: object) -> str | None:
    """The sha512 member of an SRI string (`sha512-<base64>`, maybe among others), or None."""
    if not isinstance(value, str):
        return None
    for part in value.split()[:8]:
        if part.startswith("sha512-") and len(part) <= 7 + 128:
            return part
    return None


def parse_lockfile(data: bytes, path: str, log: ErrorLog) -> dict[str, str]:
    """{package directory: sha512 SRI} from a package-lock.json or the hidden lockfile
    node_modules/.package-lock.json (npm 7+: `packages`, keyed by the path from the
    project; npm 6: nested `dependencies`)."""
    project = posixpath.dirname(path)
    if path.endswith("/node_modules/.package-lock.json"):
        project = posixpath.dirname(project)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        log.add(f"{path}: not a JSON object: its integrity values are not read")
        return {}
    out: dict[str, str] = {}
    packages = doc.get("packages")
    if isinstance(packages, dict):
        for key, val in list(packages.items())[:MAX_LANG_PACKAGES]:
            if isinstance(key, str) and key.startswith("node_modules/") and isinstance(val, dict):
                sri = _sri(val.get("integrity"))
                target = norm_path(f"{project}/{key}")
                if sri and _inside(target, project):
                    out[target] = sri
        return out
    stack = [(f"{project}/node_modules", doc.get("dependencies"), 0)]
    while stack and len(out) < MAX_LANG_PACKAGES:
        base, deps, depth = stack.pop()
        if not isinstance(deps, dict) or depth > 64:
            continue
        for name, val in deps.items():
            if not isinstance(name, str) or not isinstance(val, dict) or "/" in name.lstrip("@").split("/", 1)[-1]:
                continue
            target = norm_path(f"{base}/{name}")
            if not _inside(target, project):
                continue
            sri = _sri(val.get("integrity"))
            if sri:
                out[target] = sri
            stack.append((f"{target}/node_modules", val.get("dependencies"), depth + 1))
    return out


def parse_language_dbs(files: dict[str, bytes]) -> list[PackageDB]:
    """One PackageDB for the pip records (RECORD, installed-files.txt) and one for npm, if any."""
    pip = PackageDB(manager="pip", limit=MAX_LANG_PACKAGES)
    npm = PackageDB(manager="npm", limit=MAX_LANG_PACKAGES)
    pip_log, npm_log = ErrorLog(pip.errors), ErrorLog(npm.errors)
    locked: dict[str, str] = {}  # package directory -> sha512 SRI, from the hidden lockfiles
    asked: dict[str, str] = {}  # and from the projects' package-lock.json
    for path in sorted(files):
        kind = lang_db_kind(path)
        if kind == "record":
            pip.add(parse_record(files[path], path, pip_log))
        elif kind == "egg":
            pip.add(parse_installed_files(files[path], path, pip_log))
        elif kind == "npm":
            pkg = parse_package_json(files[path], path, npm_log)
            if pkg is not None:
                npm.add(pkg)
        elif kind == "npm-lock":
            # The hidden lockfile is what npm installed; the project's says what it asked for.
            hidden = path.endswith("/.package-lock.json")
            (locked if hidden else asked).update(parse_lockfile(files[path], path, npm_log))
    for pkg in npm.packages:  # a lockfile's word over npm 6's own `_integrity`
        if pkg.trees:
            tree = pkg.trees[0]
            pkg.integrity = locked.get(tree) or asked.get(tree) or pkg.integrity
    pip_log.finish()
    npm_log.finish()
    return [db for db in (pip, npm) if db.packages or db.errors]


__all__ = ["capture_name", "install_prefix", "lang_db_kind", "parse_language_dbs"]
