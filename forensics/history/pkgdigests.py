"""history.package-file-modified: every recorded package digest against the file it describes.

Records come from every package database in the image (dpkg md5sums and `Conffiles:`,
apk, rpm, pip RECORD; npm and egg records own files without a digest). Each regular
file a record claims is checked against the content it has in the final image:

- sha256-family records (rpm sha256, apk v3, pip RECORD) against the sha256 the first
  pass took of every file: free;
- md5/sha1 (dpkg, apk v2) and sha384/sha512 records by a second, targeted read of the
  layers holding those files (`mode="all"`, the default), or only for files whose
  content changed after their record (`mode="changed"`, today's cheap mode).

A record the step that wrote the file also wrote (dpkg's md5sums in an `apt-get
install` layer, pip's RECORD in its `pip install` layer) is labelled a same-step
record: a match proves nothing, since whoever controlled the step could have written
both, but a mismatch stands. A mismatch is high (critical for an executable or shared
object) unless an exact claim of the layer's command accounts for the content change
(`accounts(layer, path)`); what the package manager itself wrote never does, because a
package manager writes what it records.

API: `check(state, overlay, versions, ...) -> (findings, PackageCoverage)` and
`exact_accounting(explained_at, effects_at)`, the default `accounts` callable.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from forensics.findings import Code, finding
from forensics.history.content import is_persistence_path
from forensics.history.explain import PACKAGE_REASONS, _aliases
from forensics.history.packages import ALGOS, SHA256_FAMILY, PackageState, rehash
from forensics.history.shellwords import glob_match, has_glob
from forensics.models import FileBytes, Finding, PackageCoverage
from forensics.read.model import record_digest
from forensics.read.source import MemberSource

RAISES: tuple[Code, ...] = ("history.package-file-modified",)

Accounts = Callable[[int, str], bool]

NO_DIGEST = {
    "npm": "owned, no digest (npm keeps no per-file digests)",
    "pip": "owned, no digest (egg installed-files.txt, or a RECORD line without a hash)",
    "dpkg": "owned, no digest (dpkg records none for this file)",
    "apk": "owned, no digest (apk records none for this file)",
    "rpm": "owned, no digest (rpm records none for this file)",
}
STDIN = "md5/sha1 record not checked: stdin cannot be read a second time"
CHANGED_MODE = "md5/sha1 record not read again (--verify-packages changed; content unchanged since the record)"
NOT_READ = "the second read did not reach the file (damaged or missing layer)"
OBSOLETE = "obsolete conffile: its record is stale"
NO_CONTENT = "no content to check (a hardlink whose target is not in the image)"
UNSUPPORTED = "digest algorithm not supported"

# Explanations that do not account for a content change contradicting a record.
_MANAGER_REASONS = frozenset(PACKAGE_REASONS)
_COMMAND_REASONS = frozenset({"written by the command", "named by the command"})


@dataclass(slots=True)
class _Rec:
    path: str  # as recorded
    actual: str  # in the merged filesystem (symlinks resolved)
    package: str
    manager: str
    algo: str
    digest: str
    conffile: bool
    content_layer: int  # where the file's current content was first written
    node_layer: int  # the layer whose tar holds the current entry
    record_layer: int
    sha256: str | None
    install_sha256: str | None  # content at the record layer, if the path existed then
    read_path: str
    size: int
    exe: bool
    got: str | None = None  # the file's digest in the record's algorithm
    reason: str | None = None  # why it could not be checked


def whole_rootfs(why: str) -> bool:
    return why.endswith(" destination /") or "records no per-file command" in why


class Reasons(Protocol):
    """(layer, path) -> why its step explains the change there (None: nothing does)."""

    def get(self, key: tuple[int, str], /) -> str | None: ...


def package_accounting(explained_at: Reasons) -> Accounts:
    """Default `by_package`: the package manager's run in that layer explains the path, or
    the layer is a whole base system (whose packages' scripts ran where it was built)."""

    def by_package(layer: int, path: str) -> bool:
        why = explained_at.get((layer, path))
        return why is not None and (why in _MANAGER_REASONS or whole_rootfs(why))

    return by_package


def exact_accounting(explained_at: Reasons, effects_at: dict[int, list]) -> Accounts:
    """Default `accounts`: the layer's history line says exactly what goes at the path.

    A COPY/ADD destination or an exact write (`sed -i F`, `echo > F`, `cp A F`) accounts
    for new content. A tree claim (`tar -x -C D`, `pip install`) or an opaque script does
    not: they say where content comes from, not what it is, and a package manager's tree
    is exactly what its record describes."""

    def accounts(layer: int, path: str) -> bool:
        why = explained_at.get((layer, path))
        if why is None or why in _MANAGER_REASONS or why == "timestamp only":
            return False
        if whole_rootfs(why):
            return False  # a whole root filesystem (ADD rootfs.tar /, import): says nothing of one file
        if why not in _COMMAND_REASONS:
            return True
        for eff in effects_at.get(layer, ()):
            for a in _aliases(path):
                if a in eff.written_paths or a in eff.named_paths:
                    return True
                if any(has_glob(g) and glob_match(a, g) for g in eff.written_paths):
                    return True
        return False

    return accounts


def pairs(flat: tuple) -> list[tuple[int, str | None]]:
    """The (layer, sha256) writes of one path out of the flat tuple the replay keeps (ImageReplay.versions)."""
    return list(zip(flat[::2], flat[1::2], strict=True))


def _content_layer(versions: list[tuple[int, str | None]], node_layer: int) -> int:
    """The first layer of the trailing run holding the current bytes: a later `touch` or
    `chmod` rewrites the entry but must not take the blame (or the credit) for its content."""
    if not versions:
        return node_layer
    sha = versions[-1][1]
    layer = versions[-1][0]
    for lay, s in reversed(versions):
        if s != sha or s is None:
            break
        layer = lay
    return layer


def _leaf(overlay, path: str):
    """The entry at `path` with its directories resolved (merged-/usr: bin/x is usr/bin/x) but
    not a final symlink: apk records a link's digest over its target string, not over the
    file it points to (busybox's applet links would all "differ")."""
    parent, name = posixpath.split(path)
    pnode = overlay.resolve(parent) if parent not in ("", "/") else None
    base = pnode.entry.path if pnode is not None and pnode.entry.type == "dir" else parent
    return overlay.get(posixpath.join(base or "/", name))


def _collect(state: PackageState, overlay, versions) -> tuple[list[_Rec], dict[str, tuple[str, int]], int]:
    recs: list[_Rec] = []
    owned: dict[str, tuple[str, int]] = {}  # actual path -> (no-digest reason, size)
    absent = 0
    system_owned = state.owned_for(set())
    for db in state.dbs:
        for pkg in db.packages:
            if db.manager in ("pip", "npm") and system_owned(pkg.source_path):
                # A distribution package shipped this record (Debian's python3-*, an rpm):
                # it is a build artifact, not an installer's; the system record checks the files.
                continue
            for pf in pkg.files:
                if pf.ghost or pf.not_installed:
                    continue
                node = _leaf(overlay, pf.path)
                if node is None or node.entry.type not in ("file", "hardlink"):
                    absent += node is None and pf.digest is not None
                    continue
                e = node.entry
                actual = e.path
                if not pf.digest:
                    owned.setdefault(actual, (NO_DIGEST.get(db.manager, "owned, no digest"), e.size))
                    continue
                since = state.record_since.get((db.manager, pkg.source_path, pkg.name, pf.path))
                rec_layer = since[2] if since is not None else node.layer
                vs = pairs(versions.get(actual, ()))
                earlier = [sha for (lay, sha) in vs if lay <= rec_layer]
                read = e.link if e.type == "hardlink" and e.link else actual
                r = _Rec(
                    pf.path,
                    actual,
                    pkg.name,
                    db.manager,
                    pf.algo or "",
                    pf.digest.lower(),
                    pf.is_config,
                    _content_layer(vs, node.layer),
                    node.layer,
                    rec_layer,
                    node.sha256,
                    earlier[-1] if earlier else None,
                    read,
                    e.size,
                    e.kind == "elf" or bool(e.mode & 0o111),
                )
                if getattr(pf, "obsolete", False):
                    r.reason = OBSOLETE
                elif pf.algo in SHA256_FAMILY:
                    if node.sha256:
                        r.got = node.sha256[: SHA256_FAMILY[pf.algo]]
                    else:
                        r.reason = NO_CONTENT
                elif pf.algo not in ALGOS:
                    r.reason = UNSUPPORTED
                recs.append(r)
    # npm: the package directory and everything below it.
    for tree in state.trees:
        node = overlay.get(tree)
        if node is None or node.entry.type != "dir":
            continue
        for p in overlay._descendants(tree):
            n = overlay.get(p)
            if n is not None and n.entry.type in ("file", "hardlink"):
                owned.setdefault(p, (NO_DIGEST["npm"], n.entry.size))
    return recs, owned, absent


def _reread(
    recs: list[_Rec], source: MemberSource, layer_entries: list[str | None], mode: str, known: list[dict[str, str]]
) -> list[_Rec]:
    """Fill `got` for the records the first pass cannot check; returns those changed after
    their record that stay unchecked (stdin), which still carry cross-layer evidence."""
    need: list[_Rec] = []
    for r in recs:
        if r.got is not None or r.reason is not None:
            continue
        if r.node_layer < len(known):
            r.got = record_digest(known[r.node_layer].get(r.read_path), r.algo)
            if r.got is not None:
                continue  # taken in the pass (a layer that showed a dpkg or apk system)
        changed_after = r.content_layer > r.record_layer and r.install_sha256 != r.sha256
        if mode != "all" and not changed_after:
            r.reason = CHANGED_MODE
        elif not source.readable:
            r.reason = STDIN
        else:
            need.append(r)
    wanted: dict[str, set[str]] = {}
    for r in need:
        entry = layer_entries[r.node_layer] if r.node_layer < len(layer_entries) else None
        if entry:
            wanted.setdefault(entry, set()).add(r.read_path)
    got = rehash(source, wanted, {r.algo for r in need}) if wanted else {}
    for r in need:
        entry = layer_entries[r.node_layer] if r.node_layer < len(layer_entries) else None
        hit = got.get((entry, r.read_path)) if entry else None
        if hit is not None and r.algo in hit:
            r.got = hit[r.algo]
        else:
            r.reason = NOT_READ
    return [r for r in recs if r.reason == STDIN and r.content_layer > r.record_layer and r.install_sha256 != r.sha256]


def _relation(r: _Rec) -> str:
    if r.record_layer == r.content_layer:
        return "same-step"
    return "earlier-layer" if r.record_layer < r.content_layer else "later-layer"


# Files other packages' scripts rewrite at install (useradd, add-shell): the account
# files are judged line by line elsewhere (history stage, maintainer scripts).
ACCOUNT_FILES = frozenset(
    f"/etc/{n}{s}" for n in ("passwd", "group", "shadow", "gshadow", "subuid", "subgid") for s in ("", "-")
)


def _script_edited_severity(r: _Rec) -> str | None:
    """Severity of a configuration file that differs from its record in a layer the
    package manager wrote (an install step or a base system), or None if that is no excuse.

    rpm scriptlets and apk scripts edit %config files by design (setup's /etc/passwd and
    /etc/shells, changed by every useradd and add-shell): low, medium at a persistence
    point. Debian policy forbids maintainer scripts to edit conffiles (10.7.3), so a dpkg
    conffile that differs in its own install step is medium, high at a persistence point."""
    if r.actual in ACCOUNT_FILES:
        return "low"
    persistence = is_persistence_path(r.actual)
    if r.manager == "dpkg":
        return ("high" if persistence else "medium") if r.conffile else None
    if r.conffile or (r.manager == "apk" and r.actual.startswith("/etc/")):
        return "medium" if persistence else "low"
    return None


def _finding(
    r: _Rec, *, image: int, history_of_layer: dict[int, int], accounts: Accounts, by_package: Accounts, proven: bool
) -> Finding:
    acc = accounts(r.content_layer, r.actual)
    severity = config_by_script = None
    if acc:
        severity = "medium" if r.exe else "low"
    elif not r.exe and by_package(r.content_layer, r.actual):
        config_by_script = _script_edited_severity(r)
        severity = config_by_script
    if severity is None:
        severity = "critical" if r.exe else "high"
    rel = _relation(r)
    if proven:
        evidence = f"its {r.algo} is {r.got}, the {r.manager} record says {r.digest}"
    else:
        evidence = (
            f"its content (sha256:{r.sha256 or '?'}) differs from the version present when the "
            f"record was written (sha256:{r.install_sha256 or 'none'}); the recorded {r.algo} "
            "could not be checked on stdin input"
        )
    if rel == "same-step":
        where = (
            f"the record was written in the same step as the file (layer {r.content_layer}): whoever "
            "controlled that step could have written both, so a match there would prove nothing, "
            "but this mismatch stands"
        )
    elif rel == "earlier-layer":
        where = (
            f"the record dates from layer {r.record_layer}; the file's content was written in layer {r.content_layer}"
        )
    else:
        where = (
            f"the file's content dates from layer {r.content_layer}; the record was written after it, "
            f"in layer {r.record_layer}"
        )
    step = (
        "the step's command accounts for the change"
        if acc
        else "the layer was written by the package manager (an install step or a base system), whose scripts "
        "may rewrite configuration files, but no command of it names this one"
        if config_by_script
        else f"no command of layer {r.content_layer}'s step accounts for the change (a package manager "
        "writes what it records, so its own run does not)"
    )
    kind = "conffile" if r.conffile else "file"
    return finding(
        "history.package-file-modified",
        severity,
        f"layer[{r.content_layer}]:{r.actual}",
        f"{r.actual} is a {kind} of {r.manager} package {r.package} whose content differs from what the "
        f"package manager recorded: "
        f"{evidence}; {where}; {step}",
        image=image,
        layer=r.content_layer,
        history=history_of_layer.get(r.content_layer),
        path=r.actual,
        evidence={
            "package": r.package,
            "manager": r.manager,
            "algo": r.algo,
            "recorded": r.digest,
            "actual": r.got if proven else None,
            "record_layer": r.record_layer,
            "file_layer": r.content_layer,
            "record": rel,
            "same_step_record": rel != "earlier-layer",
            "conffile": r.conffile,
            "accounted": acc,
        },
    )


def check(
    state: PackageState,
    overlay,
    versions: dict[str, tuple[int | str | None, ...]],
    *,
    image: int,
    source: MemberSource,
    layer_entries: list[str | None],
    history_of_layer: dict[int, int],
    accounts: Accounts,
    by_package: Accounts = lambda layer, path: False,
    mode: str = "all",
    known: list[dict[str, str]] | None = None,
    status_out: dict[str, str] | None = None,
    more: dict[str, tuple[str, int]] | None = None,
) -> tuple[list[Finding], PackageCoverage]:
    """`accounts(layer, path)`: an exact claim of the layer's command says what the path
    holds; `by_package(layer, path)`: the package manager's own run in that layer explains
    the path (never enough for a content change, but it grades configuration files);
    `known[layer][path]`: md5/sha1 the first pass already took (archive.layerscan).
    `status_out`, if given, receives each checked file's outcome for the image coverage
    (forensics.history.coverage): "earlier", "same-step" or "mismatch". `more`: outcomes
    another check reached ({path: ("earlier" | "same" | "mismatched", size)}: npm files
    held to their tarballs, forensics.history.npmcache), counted with these."""
    recs, owned, absent = _collect(state, overlay, versions)
    unproven = _reread(recs, source, layer_entries, mode, known or [])
    findings: list[Finding] = []
    outcome: dict[str, tuple[int, str, int]] = {}  # actual path -> (rank, label, size)

    def mark(path: str, rank: int, label: str, size: int) -> None:
        cur = outcome.get(path)
        if cur is None or rank < cur[0]:
            outcome[path] = (rank, label, size)

    for r in recs:
        if r.got is not None and r.got == r.digest:
            rel = _relation(r)
            mark(r.actual, 1 if rel == "earlier-layer" else 2, "earlier" if rel == "earlier-layer" else "same", r.size)
        elif r.got is not None:
            mark(r.actual, 0, "mismatched", r.size)
            findings.append(
                _finding(
                    r,
                    image=image,
                    history_of_layer=history_of_layer,
                    accounts=accounts,
                    by_package=by_package,
                    proven=True,
                )
            )
        else:
            mark(r.actual, 3, r.reason or NOT_READ, r.size)
    for r in unproven:
        findings.append(
            _finding(
                r,
                image=image,
                history_of_layer=history_of_layer,
                accounts=accounts,
                by_package=by_package,
                proven=False,
            )
        )
    for path, (label, size) in (more or {}).items():
        mark(path, {"mismatched": 0, "earlier": 1, "same": 2}[label], label, size)
    for path, (reason, size) in owned.items():
        mark(path, 4, reason, size)

    cov = PackageCoverage(mode="changed" if mode == "changed" else "all", records_absent=absent, packages={})
    for db in state.dbs:
        if db.packages:
            cov.packages[db.manager] = cov.packages.get(db.manager, 0) + len(db.packages)
    if status_out is not None:
        names = {"earlier": "earlier", "same": "same-step", "mismatched": "mismatch"}
        status_out.update({p: names[label] for p, (_, label, _) in outcome.items() if label in names})
    for _, label, size in outcome.values():
        slot = {
            "earlier": cov.verified_against_earlier_record,
            "same": cov.verified_same_step_record,
            "mismatched": cov.mismatched,
        }.get(label)
        if slot is None:
            slot = cov.unverifiable.setdefault(label, FileBytes())
        slot.files += 1
        slot.bytes += size
    return findings, cov
