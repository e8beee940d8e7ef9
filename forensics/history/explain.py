"""history.unexplained-change: does the history line account for each change of its layer?

A change is explained when it is a file of a package the step installed (or the
package manager's bookkeeping), lies under a COPY/ADD destination, is a path the
RUN command writes or names, or is a WORKDIR the step creates. Parent
directories of explained paths, builder mount stubs and timestamp-only rewrites
are explained too. The rest is reported, with a severity that rises when the path
existed below, is executable, belongs to a package the step did not touch, or is
a persistence point.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Callable

from forensics.findings import finding
from forensics.history.content import is_persistence_path
from forensics.history.instructions import Instruction
from forensics.history.maintainer import Generated
from forensics.history.shellwords import RunEffects, norm_path
from forensics.models import Finding, PathChange

from forensics.packages import is_bookkeeping_path

# What builders leave in RUN layers on their own: mount points of the build
# container (buildah, podman, docker on vfs) and the runtime's marker files.
BUILDER_NOISE = {
    "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/etc/mtab", "/dev", "/proc", "/sys", "/run",
    "/run/.containerenv", "/.dockerenv", "/tmp", "/var/tmp", "/run/secrets", "/run/lock",
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
    lookup: Callable[[str], object] = lambda p: None  # merged filesystem after this layer (Node)
    group: list[int] = field(default_factory=list)  # history indexes explaining this layer
    squashed_base: bool = False  # layer 0 holds a whole OS that no history step describes


def is_base(ins: Instruction) -> bool:
    """A base filesystem: a rootfs tarball ADDed at /, debuerreotype, docker import/commit.
    Its files were installed by the distribution's packages, not by a visible step."""
    return ins.kind in WHOLE_LAYER or (ins.kind in ("ADD", "COPY") and norm_path(ins.dest or "x") == "/")


def _aliases(path: str) -> list[str]:
    """Merged-/usr: /bin/x and /usr/bin/x are one file on Debian 12+, Fedora, Arch."""
    out = [path]
    for prefix in MERGED_USR:
        if path.startswith("/usr" + prefix):
            out.append(path[4:])
        elif path.startswith(prefix):
            out.append("/usr" + path)
    return out


def _under(path: str, root: str) -> bool:
    root = root.rstrip("/") or "/"
    return root == "/" or path == root or path.startswith(root + "/")


def _ancestor_of(path: str, target: str) -> bool:
    return target != path and target.startswith(path.rstrip("/") + "/")


def explain_one(ch: PathChange, ctx: StepContext) -> str | None:
    path = ch.path
    if ch.change == "modified" and ch.what == ["metadata"]:
        return "timestamp only"
    if path in BUILDER_NOISE or path.startswith(NOISE_TREES):
        return "build container mount point or runtime file"
    for n, ins in enumerate(ctx.instructions):
        cwd = ctx.workdirs[n] if n < len(ctx.workdirs) else "/"
        if ins.kind in WHOLE_LAYER:
            return f"{ins.kind.lower()} layer: records no per-file command"
        if ins.kind in ("COPY", "ADD") and ins.dest:
            why = _copy_explains(ch, ins, norm_path(ins.dest, cwd), ctx)
            if why:
                return why
        if ins.kind == "WORKDIR" and ins.dest:
            dest = norm_path(ins.dest, cwd)
            if path == dest or (_ancestor_of(path, dest) and ch.type == "dir"):
                return f"WORKDIR {dest}"
    if ctx.package_step:
        if any(ctx.package_owned(a) for a in _aliases(path)):
            return "file of a package installed by this step"
        if is_bookkeeping_path(path, ctx.managers or None):
            return "package manager bookkeeping"
        entry = ctx.entries.get(path)
        link = entry.link if entry is not None and entry.type == "symlink" else ch.link
        if (link or "").startswith("/etc/alternatives/"):
            return "alternatives link made by a package's maintainer script (update-alternatives)"
        if ch.change == "deleted" and any(ctx.owned_before(a) for a in _aliases(path)) and not any(
                ctx.package_owned(a) for a in _aliases(path)):
            return "removed with its package"
        if ctx.generated is not None:
            why = ctx.generated.explain(ch, entry, ch.link)
            if why:
                return why
    skel = _from_skel(ch, ctx)
    if skel:
        return skel
    for eff in ctx.effects:
        if any(eff.explains(a, ch.change) for a in _aliases(path)):
            return "written by the command"
        if any(a in eff.named_paths for a in _aliases(path)):
            return "named by the command"
    return None


def _copy_explains(ch: PathChange, ins: Instruction, dest: str, ctx: StepContext) -> str | None:
    """A COPY/ADD destination resolved as the builder resolved it: relative ones against
    the WORKDIR in force (`dest` comes resolved); `x` is the file x unless the step left a
    directory there (trailing slash, several sources, a `dir:` source or an existing
    directory); a file named `.wh.<name>` is a whiteout to every reader, so the line
    that copies it deletes <name> beside it."""
    path = ch.path
    base = posixpath.basename(dest)
    if ch.change == "deleted" and base.startswith(".wh."):
        parent = posixpath.dirname(dest)
        if base == ".wh..wh..opq" and _ancestor_of(parent, path):
            return f"{ins.kind} of an opaque-directory marker into {parent}"
        if base[4:] not in ("", ".", "..") and path == norm_path(base[4:], parent):
            return f"{ins.kind} of a file named {base}, which deletes {path}"
    node = ctx.lookup(dest) if not ins.dest_is_dir else None
    entry = getattr(node, "entry", None)
    if entry is not None and entry.type in ("file", "hardlink"):
        # A file at the destination: the step wrote that one path, not a tree an
        # attacker could fill under its name.
        if path == dest:
            return f"{ins.kind} destination {dest}"
    elif _under(path, dest):
        return f"{ins.kind} destination {dest}"
    if _ancestor_of(path, dest) and ch.type == "dir" and ch.change != "deleted":
        return f"parent directory of the {ins.kind} destination"  # made or touched, never removed
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
    "file of a package installed by this step", "package manager bookkeeping",
    "alternatives link made by a package's maintainer script (update-alternatives)",
    "written by a maintainer script of a package this step installed", "CA store generated by update-ca-certificates",
    "bytecode of a packaged Python module", "service enabled by its package's maintainer script",
    "removed with its package", "copied from /etc/skel when the user was created",
)


def explain_step(changes: list[PathChange], ctx: StepContext) -> None:
    for ch in changes:
        ch.explained_by = explain_one(ch, ctx)
    explained_paths = [c.path for c in changes if c.explained_by]
    # Directories whose entries change only because a child did.
    ancestors: set[str] = set()
    for p in explained_paths:
        parent = posixpath.dirname(p)
        while parent not in ancestors and parent != "/":
            ancestors.add(parent)
            parent = posixpath.dirname(parent)
    for ch in changes:
        if ch.explained_by is None and ch.type == "dir" and ch.path in ancestors:
            ch.explained_by = "parent directory of an explained change"


def unexplained_finding(changes: list[PathChange], ctx: StepContext, *, image: int, created_by: str | None,
                        owned_before: Callable[[str], bool], executable: Callable[[PathChange], bool]
                        ) -> Finding | None:
    bad = [c for c in changes if c.explained_by is None]
    if not bad:
        return None
    reasons: list[str] = []
    for c in bad:
        if c.change == "modified" and c.type != "dir":
            reasons.append(f"{c.path} existed in a lower layer")
        if c.change != "deleted" and executable(c):
            reasons.append(f"{c.path} is executable")
        if not ctx.package_step and any(owned_before(a) for a in _aliases(c.path)):
            reasons.append(f"{c.path} belongs to a package this step did not touch")
        if c.change != "deleted" and is_persistence_path(c.path):
            reasons.append(f"{c.path} is a persistence point")
    unknown = all(i.kind == "UNKNOWN" for i in ctx.instructions)
    opaque = any(e.opaque for e in ctx.effects)
    only_dirs = all(c.type == "dir" for c in bad)
    if unknown or ctx.squashed_base:
        # A history line we cannot read, or a squashed base OS no step describes, makes no
        # claim precise enough to hold these paths to.
        severity = "low"
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
        why += ("; layer 0 is a squashed base system that no history step describes (buildah --squash, "
                "docker import): files outside its package database cannot be checked")
    elif unknown:
        why += "; the history line is not an instruction this tool can read, so it makes no checkable claim"
    elif opaque:
        why += "; the command runs code the analysis cannot see into (a script, eval, a pipe to sh), so this is weaker evidence"
    steps = f"history[{ctx.history_index}]"
    if len(ctx.group) > 1:  # buildah --layers=false: several steps share one layer
        steps = f"history[{ctx.group[0]}..{ctx.group[-1]}] (squashed into one layer)"
    return finding(
        "history.unexplained-change", severity, f"history[{ctx.history_index}]",
        f"layer {ctx.layer_index} changes {len(bad)} path(s) that {steps} "
        f"({line!r}) does not account for: {shown}{more}{why}",
        image=image, history=ctx.history_index, layer=ctx.layer_index, path=bad[0].path,
        evidence={"paths": [c.path for c in bad], "reasons": list(dict.fromkeys(reasons))})
