"""dpkg database: status (or distroless status.d) plus info/<pkg>.{list,md5sums,conffiles}.

What counts as evidence is decided by the caller; this module only reports what
the database says. Facts it relies on (formats-and-peers.md 3.11):
- md5sums lines are `<32 hex>  <path>`; the path usually lacks the leading "/" and
  third-party packages sometimes use a single space.
- Conffile md5s live only in the status `Conffiles:` field, never in md5sums.
- `Multi-Arch: same` packages name their info files `<pkg>:<arch>.<ext>`.
- `diversions` (dpkg-divert) moves a package's copy of a path elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .model import ErrorLog, Package, PackageDB, PackageFile, clean_digest, norm_path

STATUS = "/var/lib/dpkg/status"
STATUS_D = "/var/lib/dpkg/status.d/"
INFO = "/var/lib/dpkg/info/"
DIVERSIONS = "/var/lib/dpkg/diversions"
INFO_EXTS = (".list", ".md5sums", ".conffiles")

# Status words after which the package's files are on disk. dpkg's own verify
# checks more than "installed": trigger states come after configuration, and
# unpacked / half-configured packages have all their files in place.
FILES_PRESENT = frozenset({"installed", "triggers-pending", "triggers-awaited", "half-configured", "unpacked"})
CONFFILE_FLAGS = frozenset({"obsolete", "remove-on-upgrade"})

_MD5_LINE = re.compile(r"([0-9a-fA-F]{32}) [ *]?(.+)")


def _text(data: bytes) -> list[str]:
    return data.decode("utf-8", "surrogateescape").replace("\r\n", "\n").split("\n")


@dataclass
class _Stanza:
    fields: dict[str, str] = field(default_factory=dict)  # lowercase name -> first line
    cont: dict[str, list[str]] = field(default_factory=dict)  # lowercase name -> continuation lines


def parse_stanzas(data: bytes, source: str, log: ErrorLog) -> Iterator[_Stanza]:
    """RFC-822 style paragraphs, one at a time (a status file may be forged to hold a
    million); junk lines are logged and skipped."""
    cur: _Stanza | None = None
    pending: _Stanza | None = None  # yielded once the next one starts: its continuation lines are in
    last: str | None = None
    for lineno, line in enumerate(_text(data), 1):
        if not line.strip():
            cur, last = None, None
            continue
        if line[0] in " \t":
            if cur is None or last is None:
                log.add(f"{source}:{lineno}: continuation line outside a field")
                continue
            cur.cont.setdefault(last, []).append(line.strip())
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or " " in name:
            log.add(f"{source}:{lineno}: not a field line")
            continue
        if cur is None:
            if pending is not None:
                yield pending
            cur = pending = _Stanza()
        last = name.lower()
        cur.fields[last] = value.strip()
    if pending is not None:
        yield pending


def parse_md5sums(data: bytes, source: str, log: ErrorLog) -> dict[str, str]:
    out: dict[str, str] = {}
    for lineno, line in enumerate(_text(data), 1):
        if not line.strip():
            continue
        m = _MD5_LINE.fullmatch(line)
        if m is None:
            log.add(f"{source}:{lineno}: not an md5sums line")
            continue
        out[norm_path(m.group(2))] = m.group(1).lower()
    return out


def parse_list(data: bytes) -> list[str]:
    paths = []
    for line in _text(data):
        if line:
            p = norm_path(line)
            if p != "/":  # every package lists "/."; owning the root means nothing
                paths.append(p)
    return paths


def parse_conffiles_field(lines: list[str], source: str, log: ErrorLog) -> list[tuple[str, str | None, bool]]:
    """`Conffiles:` lines ` /path <md5> [obsolete]` -> (path, md5 or None, obsolete)."""
    out = []
    for line in lines:
        words = line.split()
        flags = set()
        while len(words) > 2 and words[-1] in CONFFILE_FLAGS:
            flags.add(words.pop())
        if len(words) < 2 or not words[0].startswith("/"):
            log.add(f"{source}: bad Conffiles line {line[:80]!r}")
            continue
        # dpkg writes "newconffile" as hash before first configuration: no digest.
        out.append((norm_path(" ".join(words[:-1])), clean_digest(words[-1], "md5"), "obsolete" in flags))
    return out


def parse_conffiles_file(data: bytes) -> list[str]:
    """info/<pkg>.conffiles: one path per line, possibly after flags (deb-conffiles(5))."""
    out = []
    for line in _text(data):
        i = line.find("/")
        if i >= 0:
            out.append(norm_path(line[i:]))
    return out


def parse_diversions(data: bytes) -> list[tuple[str, str, str]]:
    """Triples (from, to, diverting package); ":" means a local diversion."""
    lines = [ln for ln in _text(data) if ln]
    return [(norm_path(lines[i]), norm_path(lines[i + 1]), lines[i + 2].strip()) for i in range(0, len(lines) - 2, 3)]


@dataclass
class _Candidate:
    name: str
    version: str
    arch: str | None
    source: str
    conffiles: list[tuple[str, str | None, bool]]
    info_keys: list[str]  # keys into info files, most specific first


def _candidates(
    stanzas: Iterable[_Stanza], source: str, need_status: bool, log: ErrorLog, db: PackageDB
) -> list[_Candidate]:
    out: list[_Candidate] = []
    for st in stanzas:
        name = st.fields.get("package", "")
        if not name:
            log.add(f"{source}: stanza without Package")
            continue
        if len(out) >= db.limit:  # counted, not read (forensics.packages.model)
            db.drop(name, source)
            continue
        status = st.fields.get("status")
        if status is None:
            if need_status:
                log.add(f"{source}: package {name} without Status")
                continue
        else:
            words = status.split()
            if len(words) != 3:
                log.add(f"{source}: package {name} has malformed Status {status[:80]!r}")
                continue
            if words[2] not in FILES_PRESENT:
                continue
        arch = st.fields.get("architecture") or None
        keys = [f"{name}:{arch}", name] if arch else [name]
        conff = parse_conffiles_field(st.cont.get("conffiles", []), source, log)
        out.append(_Candidate(name, st.fields.get("version", ""), arch, source, conff, keys))
    return out


def _info_files(files: dict[str, bytes], prefix: str) -> dict[str, dict[str, tuple[str, bytes]]]:
    """ext -> key ("pkg" or "pkg:arch") -> (path, bytes) for files directly under prefix."""
    out: dict[str, dict[str, tuple[str, bytes]]] = {ext: {} for ext in INFO_EXTS}
    for path, data in files.items():
        if not path.startswith(prefix) or "/" in path[len(prefix) :]:
            continue
        base = path[len(prefix) :]
        for ext in INFO_EXTS:
            if base.endswith(ext) and len(base) > len(ext):
                out[ext][base[: -len(ext)]] = (path, data)
    return out


def _build(
    c: _Candidate,
    info: dict[str, dict[str, tuple[str, bytes]]],
    diversions: list[tuple[str, str, str]],
    log: ErrorLog,
) -> Package:
    sources = [c.source]

    def lookup(ext: str) -> tuple[str, bytes] | None:
        for key in c.info_keys:
            hit = info[ext].get(key)
            if hit is not None:
                sources.append(hit[0])
                return hit
        return None

    entries: dict[str, PackageFile] = {}

    def entry(path: str) -> PackageFile:
        f = entries.get(path)
        if f is None:
            f = entries[path] = PackageFile(path=path)
        return f

    if (hit := lookup(".list")) is not None:
        for p in parse_list(hit[1]):
            entry(p)
    if (hit := lookup(".md5sums")) is not None:
        for p, md5 in parse_md5sums(hit[1], hit[0], log).items():
            f = entry(p)
            f.digest, f.algo = md5, "md5"
    if (hit := lookup(".conffiles")) is not None:
        for p in parse_conffiles_file(hit[1]):
            entry(p).is_config = True
    for p, conf_md5, obsolete in c.conffiles:
        f = entry(p)
        f.is_config, f.obsolete = True, obsolete
        if conf_md5 is not None:
            f.digest, f.algo = conf_md5, "md5"

    for src, dst, by in diversions:
        if by != c.name and src in entries and dst not in entries:
            f = entries.pop(src)
            f.path = dst
            entries[dst] = f

    return Package(
        manager="dpkg",
        name=c.name,
        version=c.version,
        arch=c.arch,
        files=list(entries.values()),
        source_path=c.source,
        source_paths=sources,
    )


def parse_dpkg(files: dict[str, bytes]) -> PackageDB:
    """Parse every dpkg database file of one image.

    `files` maps absolute paths (status, status.d/*, info/*.list|md5sums|conffiles,
    diversions) to their bytes. Packages in `status` win over status.d duplicates.
    """
    db = PackageDB(manager="dpkg")
    log = ErrorLog(db.errors)
    files = {norm_path(p): d for p, d in files.items()}

    candidates: list[_Candidate] = []
    if STATUS in files:
        candidates += _candidates(parse_stanzas(files[STATUS], STATUS, log), STATUS, True, log, db)

    # distroless: status.d/<x> holds stanzas, status.d/<x>.md5sums their digests.
    sd_info = _info_files(files, STATUS_D)
    for path in sorted(files):
        base = path[len(STATUS_D) :]
        if not path.startswith(STATUS_D) or "/" in base or base.endswith(INFO_EXTS):
            continue
        found = _candidates(parse_stanzas(files[path], path, log), path, False, log, db)
        if len(found) == 1:
            found[0].info_keys.insert(0, base)
        candidates += found

    info = _info_files(files, INFO)
    for ext in INFO_EXTS:
        for key, hit in sd_info[ext].items():
            info[ext].setdefault(key, hit)
    diversions = parse_diversions(files[DIVERSIONS]) if DIVERSIONS in files else []

    seen: set[tuple[str, str | None]] = set()
    for c in candidates:
        if (c.name, c.arch) in seen:
            continue
        seen.add((c.name, c.arch))
        if db.full():
            db.drop(c.name, c.source)
        else:
            db.packages.append(_build(c, info, diversions, log))
    log.finish()
    return db


__all__ = ["parse_dpkg", "parse_md5sums", "parse_stanzas"]
