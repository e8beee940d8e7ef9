"""The package databases as they stand after each layer (history.package-file-modified
is raised from them by forensics.history.pkgdigests).

Besides ownership, the state remembers for every recorded digest the layer from
which the record has held that value without interruption (`record_since`): a
shared file such as dpkg's `status` or an rpm database is rewritten by every
install, but a package's own record only counts as written by a step when its
value changes there.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from forensics.findings import Code, finding
from forensics.models import Finding
from forensics.packages import is_maintainer_script, parse_package_dbs
from forensics.packages.langdb import lang_db_kind, parse_language_dbs
from forensics.read.source import MemberSource

RAISES: tuple[Code, ...] = ("archive.limit-exceeded",)

SHARED_DB_FILES = {"/var/lib/dpkg/status"}
# Front ends (forensics.history.shellwords) whose runs write pip or npm records.
LANG_MANAGERS = frozenset({"pip", "npm", "yarn", "pnpm"})
# Record algorithms whose digest is a prefix of the sha256 the first pass computed (hex length).
SHA256_FAMILY = {"sha256": 64, "sha256-160": 40}
ALGOS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "sha384": "sha384", "sha512": "sha512"}


@dataclass
class PackageState:
    files: dict[str, bytes] = field(default_factory=dict)  # DB path -> content (latest)
    writer: dict[str, int] = field(default_factory=dict)  # DB path -> layer that last wrote it
    owners: dict = field(default_factory=dict)  # path -> Package
    dbs: list = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    scripts: dict[str, bytes] = field(default_factory=dict)  # maintainer script path -> content
    touched: set[str] = field(default_factory=set)  # packages whose record the last layer wrote
    trees: dict[str, object] = field(default_factory=dict)  # directory owned with all below it -> Package
    # (manager, db file, package, path) -> (algo, digest, first layer it held that value in)
    record_since: dict[tuple[str, str, str, str], tuple[str | None, str, int]] = field(default_factory=dict)
    _system: list = field(default_factory=list)  # dpkg, apk, rpm databases as last parsed
    _lang: list = field(default_factory=list)  # pip and npm records as last parsed
    _system_owned: set[str] = field(default_factory=set)

    def apply(self, layer: int, captured: dict[str, bytes], deleted: set[str]) -> bool:
        changed: set[bool] = set()  # which groups changed: language records (True) or system DBs
        for p in list(self.files):
            if p in deleted:
                del self.files[p]
                self.writer.pop(p, None)
                changed.add(lang_db_kind(p) is not None)
        written = set()
        for p, data in captured.items():
            if is_maintainer_script(p):
                self.scripts[p] = data
                continue
            self.files[p] = data
            self.writer[p] = layer
            written.add(p)
            changed.add(lang_db_kind(p) is not None)
        if changed:
            # Each group is parsed again only when one of its files changed: a pip or npm
            # layer must not pay for re-reading a whole Debian status and info directory.
            if False in changed:
                self._system = parse_package_dbs({p: d for p, d in self.files.items() if lang_db_kind(p) is None})
            if True in changed:
                self._lang = parse_language_dbs({p: d for p, d in self.files.items() if lang_db_kind(p) is not None})
            self.dbs = self._system + self._lang
            owners: dict = {}
            trees: dict = {}
            # System databases last: a pip RECORD that lists /usr/bin/x does not take it from dpkg.
            for db in sorted(self.dbs, key=lambda d: d.manager not in ("pip", "npm")):
                owners.update(db.file_owners())
                for pkg in db.packages:
                    for t in pkg.trees:
                        trees.setdefault(t, pkg)
            self.owners, self.trees = owners, trees
            self._system_owned = {p for db in self._system for p in db.file_owners()}
            self._date_records(layer)
        # The shared status file changes with every install; a package's own info files
        # (.list, .md5sums) change only when it is installed, upgraded or removed.
        own = written - SHARED_DB_FILES
        self.touched = {
            pkg.name
            for db in self.dbs
            for pkg in db.packages
            if own & set(getattr(pkg, "source_paths", [pkg.source_path]))
        }
        return bool(changed)

    def limit_findings(self, image: int, layer: int, reported: set[tuple[str, str | None]]) -> list[Finding]:
        """archive.limit-exceeded for a database that holds more than MAX_PACKAGES packages,
        once per database file and image (`reported`): high, as every limit, since an attacker
        who knows it would list a package past it to have its files vouched for by nothing."""
        out = []
        for db in self.dbs:
            key = (db.manager, db.dropped_in)
            if not db.dropped or key in reported:
                continue
            reported.add(key)
            where = f"the {db.manager} database {db.dropped_in}"
            out.append(
                finding(
                    "archive.limit-exceeded",
                    "high",
                    f"{db.dropped_in}: max_packages",
                    f"{where} in layer {layer} exceeds the limit max_packages (more than {db.limit:,} "
                    f"packages in one database): {db.dropped:,} packages after the first {db.limit:,} "
                    f"(the first: {db.first_dropped!r}) were counted, not read; the files they record are "
                    "not vouched for by them",
                    evidence={
                        "limit": "max_packages",
                        "value": db.limit,
                        "count": db.dropped,
                        "first": db.first_dropped,
                    },
                    image=image,
                    layer=layer,
                    path=db.dropped_in,
                )
            )
        return out

    def scripts_of(self, names: set[str]) -> list[bytes]:
        out = []
        for path, data in self.scripts.items():
            base = path.rsplit("/", 1)[-1].rsplit(".", 1)[0].split(":", 1)[0]
            if base in names:
                out.append(data)
        return out

    def _date_records(self, layer: int) -> None:
        old = self.record_since
        new: dict[tuple[str, str, str, str], tuple[str | None, str, int]] = {}
        for db in self.dbs:
            for pkg in db.packages:
                for pf in pkg.files:
                    if pf.digest:
                        key = (db.manager, pkg.source_path, pkg.name, pf.path)
                        prev = old.get(key)
                        if prev is not None and prev[0] == pf.algo and prev[1] == pf.digest:
                            new[key] = prev
                        else:
                            new[key] = (pf.algo, pf.digest, layer)
        self.record_since = new

    def owned_for(self, managers: set[str]):
        """Ownership as a step that ran `managers` may claim it: pip and npm records
        explain files only in a step that ran pip or npm. A RECORD written in an apt
        step is not allowed to vouch for what that step dropped under /usr/local."""
        if managers & LANG_MANAGERS:
            return self.owned
        return self._system_owned.__contains__

    def owned(self, path: str) -> bool:
        if path in self.owners:
            return True
        if self.trees:
            p = path
            while (i := p.rfind("/")) > 0:
                p = p[:i]
                if p in self.trees:
                    return True
            return path in self.trees
        return False


def rehash(source: MemberSource, wanted: dict[str, set[str]], algos: set[str]) -> dict[tuple[str, str], dict[str, str]]:
    """Second pass: {(layer entry path, file path): {algo: hex}} for the files wanted."""
    result: dict[tuple[str, str], dict[str, str]] = {}
    names = [a for a in algos if a in ALGOS]

    def consume(entry_path: str, path: str, member, read) -> None:
        hs = {a: hashlib.new(ALGOS[a]) for a in names}
        while part := read(1 << 20):
            for h in hs.values():
                h.update(part)
        result[(entry_path, path)] = {a: h.hexdigest() for a, h in hs.items()}

    source.stream(wanted, consume)
    return result
