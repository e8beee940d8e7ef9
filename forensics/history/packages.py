"""history.package-file-modified, and the package databases as they stand after each layer.

The databases are inside the image, so an attacker who edits a binary and its
md5sums line in the same layer is not caught by digests alone. What stays strong
is cross-layer evidence: the package record was last written in layer i, the file
in layer j > i, and its content is not what it was when the record was written.
Where the input can be read again (a file or a directory, not stdin), the
recorded md5/sha1/sha256 is also checked against the file's bytes in a second,
targeted pass that decompresses only the layers holding such files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from forensics.findings import finding
from forensics.models import Finding

from forensics.packages import is_maintainer_script, parse_package_dbs

SHARED_DB_FILES = {"/var/lib/dpkg/status"}
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

    def apply(self, layer: int, captured: dict[str, bytes], deleted: set[str]) -> bool:
        changed = False
        for p in list(self.files):
            if p in deleted:
                del self.files[p]
                self.writer.pop(p, None)
                changed = True
        written = set()
        for p, data in captured.items():
            if is_maintainer_script(p):
                self.scripts[p] = data
                continue
            self.files[p] = data
            self.writer[p] = layer
            written.add(p)
            changed = True
        if changed:
            self.dbs = parse_package_dbs(dict(self.files))
            owners: dict = {}
            for db in self.dbs:
                owners.update(db.file_owners())
            self.owners = owners
        # The shared status file changes with every install; a package's own info files
        # (.list, .md5sums) change only when it is installed, upgraded or removed.
        own = written - SHARED_DB_FILES
        self.touched = {pkg.name for db in self.dbs for pkg in db.packages
                        if own & set(getattr(pkg, "source_paths", [pkg.source_path]))}
        return changed

    def scripts_of(self, names: set[str]) -> list[bytes]:
        out = []
        for path, data in self.scripts.items():
            base = path.rsplit("/", 1)[-1].rsplit(".", 1)[0].split(":", 1)[0]
            if base in names:
                out.append(data)
        return out

    def owned(self, path: str) -> bool:
        return path in self.owners

    def record_layer(self, pkg) -> int | None:
        """The layer that last wrote any DB file this package came from."""
        layers = [self.writer[p] for p in getattr(pkg, "source_paths", [pkg.source_path]) if p in self.writer]
        return max(layers) if layers else None


@dataclass
class Candidate:
    path: str  # the path as recorded by the package manager
    actual_path: str  # where the file is in the merged filesystem (merged-/usr resolved)
    package: str
    manager: str
    algo: str
    digest: str
    file_layer: int
    record_layer: int | None
    sha256: str | None
    install_sha256: str | None  # content at or below the record layer, if the path existed there
    actual: str | None = None  # the digest in the record's algorithm, when the first pass knows it
    read_path: str | None = None  # where the bytes are in the layer tar (a hardlink's target)


def candidates(state: PackageState, overlay, versions: dict[str, list[tuple[int, str | None]]],
               every_file: bool = False) -> list[Candidate]:
    """Package files to check against their record: those rewritten after it, or with
    `every_file` each md5/sha1-recorded file (read again in the second pass)."""
    out: list[Candidate] = []
    for db in state.dbs:
        for pkg in db.packages:
            rec = state.record_layer(pkg)
            for pf in pkg.files:
                if not pf.digest or (pf.algo not in ALGOS and pf.algo not in SHA256_FAMILY) or pf.ghost or pf.not_installed or getattr(pf, "obsolete", False):
                    continue
                node = overlay.resolve(pf.path)
                if node is None or node.entry.type not in ("file", "hardlink"):
                    continue  # missing files are rarely evidence (path-exclude, docs stripped)
                if pf.algo in SHA256_FAMILY and node.sha256:
                    # rpm sha256 and apk v3 sha256/160 records are checked against the digest the
                    # first pass took of every file: every file, in any layer, at no extra cost.
                    have = node.sha256[:SHA256_FAMILY[pf.algo]]
                    if have != pf.digest.lower() and not pf.is_config:
                        out.append(Candidate(pf.path, node.entry.path, pkg.name, db.manager, pf.algo,
                                             pf.digest.lower(), node.layer, rec, node.sha256, None, actual=have))
                    continue
                if not every_file and (rec is None or node.layer <= rec):
                    continue
                same_layer = rec is not None and node.layer <= rec
                if every_file and pf.is_config and same_layer:
                    continue  # edited at install time by design (debconf); dpkg keeps the md5 as a hint
                actual = node.entry.path
                earlier = [sha for (lay, sha) in versions.get(actual, []) if lay <= rec]
                install_sha = earlier[-1] if earlier else None
                if install_sha is not None and install_sha == node.sha256 and not (
                        every_file and rec is not None and node.layer <= rec):
                    continue  # rewritten with the same bytes (chmod, touch, re-copy)
                # A hardlink member carries no bytes: they are read at its target (perl5.36.0 -> perl).
                read = node.entry.link if node.entry.type == "hardlink" and node.entry.link else actual
                out.append(Candidate(pf.path, actual, pkg.name, db.manager, pf.algo, pf.digest.lower(),
                                     node.layer, rec, node.sha256, install_sha, read_path=read))
    return out


def rehash(source: str, wanted: dict[str, set[str]], algos: set[str]) -> dict[tuple[str, str], dict[str, str]]:
    """Second pass: {(layer entry path, file path): {algo: hex}} for the files wanted."""
    from forensics.archive.reread import reread

    result: dict[tuple[str, str], dict[str, str]] = {}

    def consume(entry_path: str, path: str, member, read) -> None:
        hs = {a: hashlib.new(ALGOS[a]) for a in algos}
        while part := read(1 << 20):
            for h in hs.values():
                h.update(part)
        result[(entry_path, path)] = {a: h.hexdigest() for a, h in hs.items()}

    reread(source, wanted, consume)
    return result


def verify(cands: list[Candidate], digests: dict[str, dict[str, str]], *, image: int,
           history_of_layer: dict[int, int], seekable: bool,
           explained_at: dict[tuple[int, str], str | None] | None = None, overlay=None) -> list[Finding]:
    """Severity follows the step that rewrote the file: high when its history line does
    not account for the rewrite; when it does (`sed -i /etc/login.defs`, a COPY over a
    packaged page), medium for executables and low for data and configuration."""
    out: list[Finding] = []
    explained_at = explained_at or {}
    for c in cands:
        actual = c.actual or digests.get(c.actual_path, {}).get(c.algo)
        if actual is not None and actual == c.digest:
            continue  # the bytes still match the record
        if actual is None and c.record_layer is not None and c.file_layer <= c.record_layer:
            continue  # checked in full mode but not readable again: no evidence either way
        why = explained_at.get((c.file_layer, c.actual_path))
        node = overlay.get(c.actual_path) if overlay is not None else None
        exe = node is not None and (node.entry.kind in ("elf", "script") or bool(node.entry.mode & 0o111))
        severity = "high" if why is None else ("medium" if exe else "low")
        if actual is not None:
            evidence = f"its {c.algo} is {actual}, the {c.manager} record says {c.digest}"
        else:
            evidence = (f"its content (sha256:{(c.sha256 or '')[:16]}) differs from the version present when the "
                        f"record was written (sha256:{(c.install_sha256 or 'none')[:16]})"
                        + ("" if seekable else "; the recorded digest could not be checked on stdin input"))
        rec = f"layer {c.record_layer}" if c.record_layer is not None else "an unknown layer"
        step = (f"; the step's history line accounts for the rewrite ({why})" if why
                else "; the step's history line does not account for it")
        if c.record_layer is not None and c.file_layer <= c.record_layer:
            how = f"its content, written in layer {c.file_layer}, differs from what the package manager recorded"
            step = ""  # installed and altered in one step: the record itself was written over it
        else:
            how = f"it was rewritten in layer {c.file_layer}"
        out.append(finding(
            "history.package-file-modified", severity, f"layer[{c.file_layer}]:{c.actual_path}",
            f"{c.actual_path} belongs to {c.manager} package {c.package} (recorded in {rec}) but {how}: "
            f"{evidence}{step}",
            image=image, layer=c.file_layer, history=history_of_layer.get(c.file_layer), path=c.actual_path,
            evidence={"package": c.package, "algo": c.algo, "recorded": c.digest, "actual": actual,
                      "record_layer": c.record_layer, "file_layer": c.file_layer}))
    return out
