"""history.unexplained-change and history.effect-mismatch: does each change of a layer
match what its history line says the step produces?

A change at a path the command makes a typed claim about (forensics.history.claims:
a symlink to T, these bytes, a copy of X, modes only, deleted) is held to that claim:
a match explains it (verified), a contradiction is history.effect-mismatch. Otherwise
a change is explained when it is a file of a package the step installed (or the
package manager's bookkeeping), lies under a COPY/ADD destination or a tree the
command fills (an archive extracted, a package installed: unverified), or is a
WORKDIR the step creates. Parent directories of explained paths, builder mount
stubs and timestamp-only rewrites are explained too. The rest is reported, with a
severity that rises when the path existed below, is executable, belongs to a
package the step did not touch, or is a persistence point.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from forensics.findings import Code, finding
from forensics.history import claims as C
from forensics.history.content import is_persistence_path
from forensics.history.instructions import Instruction
from forensics.history.maintainer import Generated
from forensics.history.overlay import Node, resolve_path
from forensics.history.shellwords import RunEffects, has_below, norm_path
from forensics.models import Finding, PathChange
from forensics.packages import is_bookkeeping_path

RAISES: tuple[Code, ...] = ("history.effect-mismatch", "history.unexplained-change")

# What builders leave in RUN layers on their own: mount points of the build
# container (buildah, podman, docker on vfs) and the runtime's marker files.
BUILDER_NOISE = {
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/etc/mtab",
    "/dev",
    "/proc",
    "/sys",
    "/run",
    "/run/.containerenv",
    "/.dockerenv",
    "/tmp",
    "/var/tmp",
    "/run/secrets",
    "/run/lock",
}
# Everything under these is build-time scratch (BuildKit cache mounts, buildah run dirs).
NOISE_TREES = ("/run/", "/dev/", "/proc/", "/sys/")
# Metadata instructions and steps that record no command: nothing to check against.
WHOLE_LAYER = {"BASE", "IMPORT", "COMMIT", "FROM"}
MERGED_USR = ("/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/")


@dataclass
class StepContext:
    history_index: int
    layer_index: int
    instructions: list[Instruction]  # the owner, plus empty-marked steps squashed into it (buildah)
    effects: list[RunEffects] = field(default_factory=list)
    package_step: bool = False
    managers: set[str] = field(default_factory=set)
    package_owned: Callable[[str], bool] = lambda p: False
    entries: dict = field(default_factory=dict)  # path -> FileEntry of this layer
    workdirs: list[str] = field(default_factory=list)  # WORKDIR in force for each instruction
    owned_before: Callable[[str], bool] = lambda p: False  # package ownership below this layer
    generated: Generated | None = None  # maintainer-script and trigger output of this step's packages
    lookup: Callable[[str], Node | None] = lambda p: None  # merged filesystem after this layer
    group: list[int] = field(default_factory=list)  # history indexes explaining this layer
    squashed_base: bool = False  # layer 0 holds a whole OS that no history step describes
    base_has_db: bool = False  # ... and a package database says what the OS installed
    before: Callable[[str], Node | None] = lambda p: None  # merged filesystem below this layer
    # Filled by explain_step: changes that contradict a claim of the step's command.
    mismatches: list[tuple[PathChange, C.Claim, C.Verdict]] = field(default_factory=list)
    claims_at: dict = field(default_factory=dict)  # landing path -> Claim
    deleted_before: dict = field(default_factory=dict)  # path -> (type, sha256) deleted by this layer
    copy_dests: dict = field(default_factory=dict)  # instruction position -> _CopyDest, made once a step


def is_base(ins: Instruction) -> bool:
    """A base filesystem: a rootfs tarball ADDed at /, debuerreotype, docker import/commit.
    Its files were installed by the distribution's packages, not by a visible step."""
    return ins.kind in WHOLE_LAYER or (ins.kind in ("ADD", "COPY") and norm_path(ins.dest or "x") == "/")


def _aliases(path: str) -> list[str]:
    """Merged-/usr: /bin/x and /usr/bin/x are one file on Debian 12+, Fedora, Arch."""
    # The prefixes are distinct top-level names: a path matches one at most, either way.
    if path.startswith("/usr/"):
        return [path, path[4:]] if path[4:].startswith(MERGED_USR) else [path]
    return [path, "/usr" + path] if path.startswith(MERGED_USR) else [path]


def _ancestor_of(path: str, target: str) -> bool:
    return target != path and target.startswith(path.rstrip("/") + "/")


def explain_one(ch: PathChange, ctx: StepContext) -> str | None:
    """Why the step accounts for `ch`; sets `ch.assurance`. None when it does not (a
    contradicted claim is also recorded in ctx.mismatches)."""
    why = _explain(ch, ctx)
    if why is not None and ch.assurance is None:
        ch.assurance = "unverified"
    return why


def _explain(ch: PathChange, ctx: StepContext) -> str | None:
    path = ch.path
    if ch.change == "modified" and ch.what == ["metadata"]:
        ch.assurance = "verified"
        return "timestamp only"
    if path in BUILDER_NOISE or path.startswith(NOISE_TREES):
        ch.assurance = "builder"
        return "build container mount point or runtime file"
    claim = ctx.claims_at.get(path)
    if claim is not None:
        verdict = C.judge(claim, ch, ctx.entries.get(path), ctx.before(path), lambda p, below: _source(ctx, p, below))
        if verdict.ok:
            ch.assurance = "verified" if verdict.verified else ("unverified" if claim.precision == C.EXACT else "tree")
            return verdict.why
        if ch.change == "added" and claim.produces in C.NEEDS_EXISTING:
            # `sed -i F` / `chmod F` on a file this layer created: something else of the
            # step made it (a package's maintainer script, an earlier step squashed into
            # this layer). What made it must explain it; if nothing does, the claim stands.
            why = _explain_unclaimed(ch, ctx, path, rescue=True)
            if why is not None:
                return why
            ctx.mismatches.append((ch, claim, verdict))
            return None
        if not (ctx.package_step and any(ctx.package_owned(a) for a in _aliases(path))):
            ctx.mismatches.append((ch, claim, verdict))
            return None
    return _explain_unclaimed(ch, ctx, path)


def _explain_unclaimed(ch: PathChange, ctx: StepContext, path: str, rescue: bool = False) -> str | None:
    """The explanations that are not a claim at the path. With `rescue`, only those that
    say who made a file a claim expects to exist (not the command's own mention of it)."""
    for n, ins in enumerate(ctx.instructions):
        if ins.kind in WHOLE_LAYER:
            ch.assurance = "tree"
            return f"{ins.kind.lower()} layer: records no per-file command"
        if ins.kind in ("COPY", "ADD") and ins.dest:
            d = ctx.copy_dests.get(n)
            if d is None:
                d = ctx.copy_dests[n] = _CopyDest(ins, norm_path(ins.dest, _cwd(ctx, n)), ctx)
            why = _copy_explains(ch, d)
            if why:
                return why
        if ins.kind == "WORKDIR" and ins.dest:
            dest = norm_path(ins.dest, _cwd(ctx, n))
            if path == dest or (_ancestor_of(path, dest) and ch.type == "dir"):
                ch.assurance = "verified" if ch.type == "dir" else None
                if ch.type != "dir":
                    continue
                return f"WORKDIR {dest}"
    aliases: list[str] | None = None
    if ctx.package_step:
        ch.assurance = "package"  # everything below is the package manager's doing
        aliases = _aliases(path)
        owned = any(ctx.package_owned(a) for a in aliases)
        if owned:
            return "file of a package installed by this step"
        if is_bookkeeping_path(path, ctx.managers or None):
            return "package manager bookkeeping"
        entry = ctx.entries.get(path)
        link = entry.link if entry is not None and entry.type == "symlink" else ch.link
        if (link or "").startswith("/etc/alternatives/"):
            return "alternatives link made by a package's maintainer script (update-alternatives)"
        if ch.change == "deleted" and any(ctx.owned_before(a) for a in aliases) and not owned:
            return "removed with its package"
        if ctx.generated is not None:
            why = ctx.generated.explain(ch, entry, ch.link)
            if why:
                return why
        ch.assurance = None
    skel = _from_skel(ch, ctx)
    if skel:
        ch.assurance = "verified" if ch.type != "dir" else "builder"
        return skel
    for eff in ctx.effects:
        if eff.bytecode(path) and ch.change != "deleted" and ch.type in ("dir", "file"):
            ch.assurance = "unverified"
            return "bytecode written by compileall"
        tree = eff.metadata_tree(path)
        if tree is not None and ch.change == "modified" and set(ch.what) <= {"mode", "owner", "metadata"}:
            ch.assurance = "verified"
            return f"mode/owner change below {tree} by the command"
    if rescue:
        return None
    if ctx.effects and aliases is None:
        aliases = _aliases(path)
    for eff in ctx.effects:
        if any(eff.explains(a, ch.change, is_dir=ch.type == "dir") for a in aliases):  # type: ignore[union-attr]
            exact = any(a in eff.written_paths for a in aliases) and not eff.opaque  # type: ignore[union-attr]
            ch.assurance = "unverified" if exact else "tree"
            return "written by the command"
        if any(a in eff.opaque_paths for a in aliases):  # type: ignore[union-attr]
            ch.assurance = "tree"
            return "named by a program the analysis does not model"
    for eff in ctx.effects:
        tree = eff.metadata_tree(path)
        if tree is not None and ch.change != "deleted":
            # Below a chmod -R / chown -R root and nothing else writes here: the content
            # or type changed where the command only changes modes and owners.
            claim = C.Claim(path=tree, produces=C.META, command=f"chmod/chown -R {tree}")
            ctx.mismatches.append((ch, claim, C.Verdict(False, False, _changed_words(ch, ctx))))
            return None
    return None


def _changed_words(ch: PathChange, ctx: StepContext) -> str:
    entry = ctx.entries.get(ch.path)
    if ch.change == "added":
        return f"{C.holds(entry)} that was not there before"
    return f"{C.holds(entry)} whose {'content' if 'content' in ch.what else 'type'} changed"


def _source(ctx: StepContext, path: str, below: bool):
    """(type, sha256) of another path: this layer's version, or with `below` the one
    under it (mv moves what was there); None when the image does not hold it."""
    for p in _aliases(path):
        if below:
            if p in ctx.deleted_before:
                return ctx.deleted_before[p]
            node = ctx.before(p) if p in ctx.entries else ctx.lookup(p)
        else:
            node = ctx.lookup(p)
        if node is not None:
            return node.entry.type, node.sha256
    return None


def _resolve(path: str, lookup, follow_last: bool) -> str:
    """Where a write to `path` lands in the merged tree after this layer, as the kernel
    resolved it for the build container (a link loop leaves the path as written)."""
    return resolve_path(path, lookup, follow_last=follow_last, max_hops=16) or path


_FOLLOWS = (C.FILE, C.EDIT, C.META, C.TOUCH)


def _index_claims(ctx: StepContext) -> dict:
    """Each claim under the path its change appears at in the layer: through lower
    symlinks, into a directory (`ln -s T DIR` makes DIR/T), merged-/usr aliases."""
    out: dict = {}
    for eff in ctx.effects:  # in step order: a later step's claim wins
        for path, claim in eff.claims.items():
            landing = _resolve(path, ctx.lookup, follow_last=claim.produces in _FOLLOWS)
            node = ctx.lookup(landing)
            src = _source(ctx, claim.source, claim.source_below) if claim.source else None
            if (
                node is not None
                and node.entry.type == "dir"
                and claim.produces in (C.SYMLINK, C.FILE)
                and (claim.link or claim.source)
                and not (src and src[0] == "dir")
            ):
                base = posixpath.basename((claim.link or claim.source or "").rstrip("/"))
                if base:
                    landing = posixpath.join(landing, base)
            for a in _aliases(landing):
                out[a] = claim
            if landing != path and claim.produces in _FOLLOWS:
                # The link itself is judged too when this layer changed it: a write goes
                # through a link that was there, it does not make one.
                direct = _resolve(path, ctx.lookup, follow_last=False)
                for a in _aliases(direct):
                    out.setdefault(a, claim)
    return out


def _cwd(ctx: StepContext, n: int) -> str:
    return ctx.workdirs[n] if n < len(ctx.workdirs) else "/"


class _CopyDest:
    """What one COPY/ADD destination of a step says about any path, worked out once a step
    rather than once a changed path (and its reasons one string each, not one a path)."""

    __slots__ = (
        "dest",
        "file_dest",
        "prefix",
        "root",
        "whiteout",
        "opaque_parent",
        "wh_target",
        "why_dest",
        "why_parent",
        "why_opq",
        "why_wh",
    )

    def __init__(self, ins: Instruction, dest: str, ctx: StepContext) -> None:
        self.dest = dest
        base = posixpath.basename(dest)
        self.whiteout = base.startswith(".wh.")
        self.opaque_parent: str | None = None
        self.wh_target: str | None = None
        self.why_opq = self.why_wh = ""
        if self.whiteout:
            parent = posixpath.dirname(dest)
            if base == ".wh..wh..opq":
                self.opaque_parent = parent
                self.why_opq = f"{ins.kind} of an opaque-directory marker into {parent}"
            if base[4:] not in ("", ".", ".."):
                self.wh_target = norm_path(base[4:], parent)
                self.why_wh = f"{ins.kind} of a file named {base}, which deletes {self.wh_target}"
        # The merged tree after this layer does not change while the step is explained.
        node = ctx.lookup(dest) if not ins.dest_is_dir else None
        entry = getattr(node, "entry", None)
        self.file_dest = entry is not None and entry.type in ("file", "hardlink")
        self.root = dest.rstrip("/") or "/"
        self.prefix = self.root + "/"
        self.why_dest = f"{ins.kind} destination {dest}"
        self.why_parent = f"parent directory of the {ins.kind} destination"


def _copy_explains(ch: PathChange, d: _CopyDest) -> str | None:
    """A COPY/ADD destination resolved as the builder resolved it: relative ones against
    the WORKDIR in force (`d.dest` comes resolved); `x` is the file x unless the step left a
    directory there (trailing slash, several sources, a `dir:` source or an existing
    directory); a file named `.wh.<name>` is a whiteout to every reader, so the line
    that copies it deletes <name> beside it."""
    path = ch.path
    dest = d.dest
    ch.assurance = "unverified" if path == dest else "tree"
    if ch.change == "deleted" and d.whiteout:
        if d.opaque_parent is not None and _ancestor_of(d.opaque_parent, path):
            return d.why_opq
        if d.wh_target is not None and path == d.wh_target:
            return d.why_wh
    if d.file_dest:
        # A file at the destination: the step wrote that one path, not a tree an
        # attacker could fill under its name.
        if path == dest:
            return d.why_dest
    elif d.root == "/" or path == d.root or path.startswith(d.prefix):
        return d.why_dest
    if ch.type == "dir" and ch.change != "deleted" and _ancestor_of(path, dest):
        ch.assurance = "builder"
        return d.why_parent  # made or touched, never removed
    ch.assurance = None
    return None


SKEL_HOMES = re.compile(r"^(/root|/home/[^/]+)/(.+)$")


def _from_skel(ch: PathChange, ctx: StepContext) -> str | None:
    """useradd -m / adduser copy /etc/skel into the new home: same bytes, new place."""
    m = SKEL_HOMES.match(ch.path)
    if not m or ch.change == "deleted":
        return None
    skel = ctx.lookup(f"/etc/skel/{m.group(2)}")
    if skel is None:
        return None
    if ch.type == "dir" or (skel.sha256 is not None and skel.sha256 == ch.sha256):
        return "copied from /etc/skel when the user was created"
    return None


# Explanations that mean "a package put it there": such files are not judged as
# persistence or privilege changes made by the step itself.
PACKAGE_REASONS = (
    "file of a package installed by this step",
    "package manager bookkeeping",
    "alternatives link made by a package's maintainer script (update-alternatives)",
    "written by a maintainer script of a package this step installed",
    "CA store generated by update-ca-certificates",
    "bytecode of a packaged Python module",
    "service enabled by its package's maintainer script",
    "removed with its package",
    "copied from /etc/skel when the user was created",
)


def explain_step(changes: list[PathChange], ctx: StepContext) -> None:
    ctx.deleted_before = {c.path: (c.type, c.before_sha256) for c in changes if c.change == "deleted"}
    ctx.claims_at = _index_claims(ctx)
    for ch in changes:
        # PathChange is built unvalidated (overlay._change) and set the same way: this
        # runs for every changed path, and pydantic's __setattr__ costs 5 µs a call.
        ch.explained_by = explain_one(ch, ctx)
    # Directories whose entries change only because a child did (sorted and bisected:
    # the set of all parents would be quadratic in a path's depth).
    explained_paths = sorted(c.path for c in changes if c.explained_by)
    mismatched = {c.path for c, _, _ in ctx.mismatches}
    for ch in changes:
        if (
            ch.explained_by is None
            and ch.type == "dir"
            and ch.path != "/"
            and has_below(explained_paths, ch.path)
            and ch.path not in mismatched
        ):
            ch.explained_by = "parent directory of an explained change"
            ch.assurance = "builder"


def unexplained_finding(
    changes: list[PathChange],
    ctx: StepContext,
    *,
    image: int,
    created_by: str | None,
    owned_before: Callable[[str], bool],
    executable: Callable[[PathChange], bool],
) -> Finding | None:
    bad = [c for c in changes if c.explained_by is None]
    if not bad:
        return None
    reasons: list[str] = []
    privileged = False
    for c in bad:
        if c.change == "modified" and c.type != "dir":
            reasons.append(f"{c.path} existed in a lower layer")
        if c.change != "deleted" and executable(c):
            reasons.append(f"{c.path} is executable")
        if not ctx.package_step and any(owned_before(a) for a in _aliases(c.path)):
            reasons.append(f"{c.path} belongs to a package this step did not touch")
        if c.change != "deleted" and is_persistence_path(c.path):
            reasons.append(f"{c.path} is a persistence point")
            privileged = privileged or c.type != "dir"
    unknown = all(i.kind == "UNKNOWN" for i in ctx.instructions)
    opaque = any(e.opaque for e in ctx.effects)
    only_dirs = all(c.type == "dir" for c in bad)
    if ctx.squashed_base:
        # A squashed base no step describes: debootstrap writes files no package owns
        # (/etc/fstab, /etc/apt/sources.list), so nothing here is evidence. Without a
        # package database nothing vouches for a persistence point either.
        severity = "medium" if privileged and not ctx.base_has_db else "low"
    elif unknown:
        # A history line we cannot read makes no claim precise enough to hold these
        # paths to; a persistence or privilege point no record explains is still worth a look.
        severity = "medium" if privileged else "low"
    elif reasons:
        severity = "medium" if opaque else "high"
    elif only_dirs or opaque:
        severity = "low"
    else:
        severity = "medium"
    shown = ", ".join(f"{c.path}{'/' if c.type == 'dir' else ''} ({c.change})" for c in bad[:8])
    more = f" and {len(bad) - 8} more" if len(bad) > 8 else ""
    line = (created_by or "").strip()
    if len(line) > 160:
        line = line[:157] + "..."
    why = ("; " + "; ".join(dict.fromkeys(reasons).keys())) if reasons else ""
    if ctx.squashed_base:
        why += (
            "; layer 0 is a squashed base system that no history step describes (buildah --squash, "
            "docker import): files outside its package database cannot be checked"
        )
    elif unknown:
        why += "; the history line is not an instruction this tool can read, so it makes no checkable claim"
    elif opaque:
        why += "; the command runs code the analysis cannot see into (a script, eval, a pipe to sh), so this is weaker evidence"
    steps = f"history[{ctx.history_index}]"
    if len(ctx.group) > 1:  # buildah --layers=false: several steps share one layer
        steps = f"history[{ctx.group[0]}..{ctx.group[-1]}] (squashed into one layer)"
    return finding(
        "history.unexplained-change",
        severity,
        f"history[{ctx.history_index}]",
        f"layer {ctx.layer_index} changes {len(bad)} path(s) that {steps} "
        f"({line!r}) does not account for: {shown}{more}{why}",
        image=image,
        history=ctx.history_index,
        layer=ctx.layer_index,
        path=bad[0].path,
        evidence={"paths": [c.path for c in bad], "reasons": list(dict.fromkeys(reasons))},
    )


# At most this many paths get a finding of their own per step; the rest are counted in
# the last one (a forged step rarely needs more, a hostile image may hold millions).
MAX_MISMATCH_FINDINGS = 25


def mismatch_findings(ctx: StepContext, *, image: int, executable: Callable[[PathChange], bool]) -> list[Finding]:
    """history.effect-mismatch: the layer contradicts what the step's command produces."""
    out: list[Finding] = []
    items = ctx.mismatches
    for n, (ch, claim, verdict) in enumerate(items[:MAX_MISMATCH_FINDINGS]):
        before = ctx.before(ch.path)
        was_exec = (
            before is not None
            and before.entry.type in ("file", "hardlink")
            and (before.entry.kind in ("elf", "script") or bool(before.entry.mode & 0o111))
        )
        critical = executable(ch) or was_exec or is_persistence_path(ch.path)
        detail = (
            f"history[{ctx.history_index}]: the command {C.describe_claim(claim)} "
            f"(`{claim.command}`); layer {ctx.layer_index} holds {verdict.why} at {ch.path}"
        )
        if claim.path != ch.path:
            detail += f" (where a write to {claim.path} lands)"
        if n == MAX_MISMATCH_FINDINGS - 1 and len(items) > MAX_MISMATCH_FINDINGS:
            detail += f"; and {len(items) - MAX_MISMATCH_FINDINGS} more paths of this step contradict its command"
        entry = ctx.entries.get(ch.path)
        out.append(
            finding(
                "history.effect-mismatch",
                "critical" if critical else "high",
                f"layer[{ctx.layer_index}]:{ch.path}",
                detail,
                image=image,
                history=ctx.history_index,
                layer=ctx.layer_index,
                path=ch.path,
                evidence={
                    "claim": C.describe_claim(claim),
                    "command": claim.command,
                    "found": verdict.why,
                    "type": entry.type if entry is not None else None,
                    "sha256": ch.sha256,
                    "link": ch.link,
                    "paths": [ch.path],
                },
            )
        )
    return out
