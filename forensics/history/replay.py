"""One image's layers replayed over the merged filesystem, a layer at a time.

`ImageReplay.layer` is the per-layer work of the history analysis (overlay, explain,
accounts, content); `finish` is what needs the whole image (package digests and their
second read, COPY hashes, coverage, the package inventory). Split so the replay of a
layer can run while later layers are still being read (forensics.history.early): the
replay of layer N needs only the history, the config and layers 0..N.
"""

from __future__ import annotations

from collections.abc import Container

from forensics.history import (
    accounts,
    content,
    copyhash,
    coverage,
    explain,
    inventory,
    maintainer,
    mapping,
    npmcache,
    packages,
    pkgdigests,
    timeline,
    trees,
    unitlinks,
)
from forensics.history.instructions import Instruction, parse_created_by
from forensics.history.overlay import Overlay
from forensics.history.shellwords import RunEffects, norm_path, run_effects
from forensics.models import FileEntry, Finding, Image, ImagePackages, PathChange, StepAnalysis, StepInstruction
from forensics.paths import norm_layer_path
from forensics.read.source import MemberSource

FILE_WRITING = {"RUN", "COPY", "ADD", "WORKDIR"}


def _step_instruction(ins: Instruction) -> StepInstruction:
    return StepInstruction(
        kind=ins.kind,
        builder=ins.builder,
        args=ins.args,
        dest=ins.dest,
        sources=list(ins.sources),
        metadata_only=ins.metadata_only,
    )


def _effects(ins: Instruction, workdir: str, env: dict[str, str]) -> RunEffects | None:
    if ins.kind != "RUN":
        return None
    shell = ins.shell if ins.shell is not None else " ".join(ins.argv or [])
    return run_effects(shell, workdir, {**env, **ins.build_args})


def _env_of(instructions: list[Instruction], upto: int, inherited: str | None = None) -> tuple[str, dict[str, str]]:
    """WORKDIR and ENV in force at history entry `upto` (what the build container had).
    `inherited`: the WorkingDir of a base config that no history line records."""
    workdir, env = norm_path(inherited) if inherited else "/", {}
    for ins in instructions[:upto]:
        if ins.kind == "WORKDIR" and ins.dest:
            workdir = norm_path(ins.dest, workdir)  # WORKDIR b after WORKDIR /a is /a/b
        elif ins.kind == "ENV":
            for part in ins.args.split():
                k, eq, v = part.partition("=")
                if eq:
                    env[k] = v
    return workdir, env


def _executable(entries: dict[str, FileEntry]):
    def check(ch: PathChange) -> bool:
        e = entries.get(ch.path)
        return (
            e is not None and e.type in ("file", "hardlink") and (e.kind in ("elf", "script") or bool(e.mode & 0o111))
        )

    return check


class ImageReplay:
    """The history analysis of one image. `img` gives the history and the config (what
    the steps say); its layers are fed one at a time, in order, to `layer`."""

    def __init__(self, img: Image) -> None:
        self.img = img
        ins = self.ins = [parse_created_by(h.created_by, h.comment, h.author) for h in img.history]
        # A base made without a WORKDIR line (`buildah config --workingdir`, ko, bazel) still
        # hands its WorkingDir to the build: with no WORKDIR in the whole history, the final
        # config's WorkingDir is the one every step ran in, and relative COPY/ADD/RUN paths
        # resolve against it as the builder resolved them.
        self.inherited = (
            img.config.workdir
            if img.config is not None
            and img.config.workdir
            and img.config.workdir.startswith("/")
            and not any(i.kind == "WORKDIR" for i in ins)
            else None
        )
        self.mapping: list[Finding] = mapping.map_history(img, ins)  # sets each entry's layer_index
        self.owner = {h.layer_index: h.index for h in img.history if h.layer_index is not None}
        self.overlay = Overlay()
        self.pkg = packages.PackageState()
        self.inv = inventory.Inventory()
        self.acct = accounts.AccountState()
        # path -> (layer, sha256, layer, sha256, ...) of each write of a file there, flat: one
        # small tuple per file of the image rather than a list of pairs (pkgdigests.pairs).
        self.versions: dict[str, tuple[int | str | None, ...]] = {}
        self.change_at: dict[tuple[int, str], PathChange] = {}
        self.claimed: set[tuple[int, str]] = set()  # (layer, path) an exact claim of the layer's command names
        self.prev_owner = -1
        self.limits_reported: set[tuple[str, str | None]] = set()  # package databases over max_packages
        self.findings: list[Finding] = []  # what the layers raised, in layer order
        self.analyses: dict[int, StepAnalysis] = {}  # history index -> its step's analysis
        # What was fed, layer by layer: forensics.history.early checks it is what the
        # final model holds (the very same lists and dicts) before it keeps this replay.
        self.fed: list[tuple[list[FileEntry], dict[str, bytes]]] = []

    def rebind(self, img: Image) -> bool:
        """Go on with the final model's `img` in place of the preview the layers were
        replayed for (forensics.history.early checks the rest is the same); False if its
        history entries pair with the layers otherwise."""
        found = mapping.map_history(img, self.ins)
        if {h.layer_index: h.index for h in img.history if h.layer_index is not None} != self.owner:
            return False
        self.img, self.mapping = img, found
        return True

    def layer(self, li: int, files: list[FileEntry], captured_raw: dict[str, bytes]) -> None:
        """Replay layer `li` (the next one) over the layers below it."""
        self.fed.append((files, captured_raw))
        img, ins, inherited, owner = self.img, self.ins, self.inherited, self.owner
        overlay, pkg, inv, acct = self.overlay, self.pkg, self.inv, self.acct
        versions, change_at, claimed = self.versions, self.change_at, self.claimed
        prev_owner, limits_reported, findings = self.prev_owner, self.limits_reported, self.findings
        here = {f.path: f for f in files if f.type not in ("whiteout", "opaque")}
        before = {p: overlay.get(p) for p in here}
        # Bound per layer (owned_before.__contains__ below): a lambda over the loop variable would
        # see a later layer's owners if a check ever kept the callable past this step.
        owned_before = frozenset(pkg.owners)
        changes = overlay.apply(li, files)
        for f in here.values():
            if f.type in ("file", "hardlink"):
                node = overlay.get(f.path)
                write = (li, node.sha256 if node else None)
                prev = versions.get(f.path)
                versions[f.path] = write if prev is None else prev + write
        deleted = {c.path for c in changes if c.change == "deleted"}
        captured = {norm_layer_path(k)[0]: v for k, v in captured_raw.items()}
        acct_files = accounts.AccountState.take(captured, also=unitlinks.is_captured)
        inv.take(captured, deleted)
        if pkg.apply(li, captured, deleted):
            inv.note(li, pkg.dbs)
            findings += pkg.limit_findings(img.index, li, limits_reported)
        h_idx = owner.get(li)
        group: list[int] = []
        squashed_base = False
        if h_idx is not None:
            # buildah --layers=false: the steps before the owner were recorded empty but their
            # changes landed in this one layer; they explain it together.
            group = [
                i for i in range(prev_owner + 1, h_idx) if img.history[i].empty_layer and ins[i].kind in FILE_WRITING
            ] + [h_idx]
            prev_owner = h_idx
            effects = []
            for i in group:
                workdir, env = _env_of(ins, i, inherited)
                e = _effects(ins[i], workdir, env)
                if e is not None:
                    effects.append(e)
            managers = set().union(*(e.package_managers for e in effects)) if effects else set()
            if any(maintainer.DPKG_TOOLS.search(ins[i].shell or "") for i in group):
                managers.add("dpkg")  # update-alternatives, dpkg-reconfigure, update-rc.d ...
            # buildah --squash FROM a base drops the base's history but says where it came from
            # (`comment: FROM <image>` on the one entry that owns the layer).
            squashed_from = (img.history[h_idx].comment or "").startswith("FROM ")
            squashed_base = (
                li == 0 and (bool(pkg.dbs) or squashed_from) and not any(explain.is_base(ins[i]) for i in group)
            )
            if squashed_base:
                # A squashed image (buildah --squash, docker export|import with history): the
                # base OS is in this layer with no step of its own; its packages account for it.
                managers |= {db.manager for db in pkg.dbs}
            touched = set(pkg.touched)
            for i in group:
                touched |= maintainer.reconfigured_packages(ins[i].shell or "")
            generated = (
                maintainer.Generated(
                    touched=touched,
                    scripts=maintainer.script_paths(pkg.scripts_of(touched)),
                    owned=pkg.owned,
                    lookup=lambda p: n.entry if (n := overlay.get(p)) else None,
                )
                if managers
                else None
            )
            ctx = explain.StepContext(
                history_index=h_idx,
                layer_index=li,
                instructions=[ins[i] for i in group],
                effects=effects,
                package_step=bool(managers),
                managers=managers,
                package_owned=pkg.owned_for(managers),
                entries=here,
                workdirs=[_env_of(ins, i, inherited)[0] for i in group],
                owned_before=owned_before.__contains__,
                generated=generated,
                lookup=overlay.get,
                group=group,
                squashed_base=squashed_base,
                base_has_db=bool(pkg.dbs),
                before=before.get,
            )
            explain.explain_step(changes, ctx)
            claimed |= {(li, p) for p, c in ctx.claims_at.items() if c.precision == "exact" and c.produces != "absent"}
            judged = accounts.judge_step(
                changes,
                ctx,
                acct,
                acct_files,
                pkg.scripts,
                pkg.owners,
                lambda i: _env_of(ins, i)[1],
                image=img.index,
                created_by=img.history[h_idx].created_by,
            )
            findings += judged.findings
            unitlinks.judge_step(changes, ctx, {**acct.files, **acct_files}, pkg.owners)
            unexplained_f = explain.unexplained_finding(
                [c for c in changes if c.path not in judged.reported],
                ctx,
                image=img.index,
                created_by=img.history[h_idx].created_by,
                owned_before=owned_before.__contains__,
                executable=_executable(here),
            )
            if unexplained_f is not None:
                findings.append(unexplained_f)
            # Account files judged entry by entry carry their own, more precise verdict.
            ctx.mismatches = [m for m in ctx.mismatches if m[0].path not in judged.judged]
            findings += explain.mismatch_findings(ctx, image=img.index, executable=_executable(here))
            findings += trees.check_trees(
                ctx, image=img.index, step_time=timeline.parse_time(img.history[h_idx].created)
            )
        acct.apply(acct_files, here, deleted)
        base = h_idx is not None and (squashed_base or any(explain.is_base(ins[i]) for i in group))
        for ch in changes:
            change_at[(li, ch.path)] = ch
            from_pkg = base or ch.explained_by in explain.PACKAGE_REASONS
            prior = before.get(ch.path)
            findings += content.check_change(
                ch,
                here.get(ch.path),
                prior.entry if prior else None,
                image=img.index,
                layer=li,
                history=h_idx,
                from_package=from_pkg,
                explained=ch.explained_by is not None if h_idx is not None else False,
                assurance=ch.assurance,
            )
        if h_idx is not None:
            counts = {"added": 0, "deleted": 0, "modified": 0}
            for ch in changes:
                counts[ch.change] += 1
            explained = [c for c in changes if c.explained_by]
            unexplained = [c for c in changes if not c.explained_by]
            counts["explained"], counts["unexplained"] = len(explained), len(unexplained)
            self.analyses[h_idx] = StepAnalysis(
                instruction=_step_instruction(ins[h_idx]), counts=counts, explained=explained, unexplained=unexplained
            )
        self.prev_owner = prev_owner

    def finish(
        self,
        layer_entries: list[str | None],
        source: MemberSource,
        now: float,
        archive_time: float | None = None,
        verify_packages: str = "all",
        known_digests: list[dict[str, str]] | None = None,
        packages_out: list[ImagePackages] | None = None,
        known_good: Container[str] | None = None,
        npm_tarballs: npmcache.Tarballs | None = None,
    ) -> list[Finding]:
        """What needs the whole image; every finding of the image's history analysis.
        `npm_tarballs`: package tarballs from outside the image (scan --npm-cache)."""
        img, ins, owner = self.img, self.ins, self.owner
        overlay, pkg, inv = self.overlay, self.pkg, self.inv
        versions, change_at, claimed = self.versions, self.change_at, self.claimed
        findings = self.mapping + timeline.check_times(img, now, archive_time) + self.findings
        for h_i, analysis in self.analyses.items():
            img.history[h_i].analysis = analysis
        for h in img.history:
            if h.analysis is None:
                h.analysis = StepAnalysis(instruction=_step_instruction(ins[h.index]))
        # npm package files against the tarballs in npm's cache (second read of those tarballs).
        accounts_at = _command_accounts(change_at, claimed)
        npm_findings, npm_outcome = npmcache.check(
            pkg,
            overlay,
            image=img.index,
            source=source,
            layer_entries=layer_entries,
            history_of_layer=owner,
            accounts=accounts_at,
            outside=npm_tarballs,
        )
        # Every recorded package digest against its file (forensics.history.pkgdigests).
        record_status: dict[str, str] = {}
        pkg_findings, img.package_coverage = pkgdigests.check(
            pkg,
            overlay,
            versions,
            image=img.index,
            source=source,
            layer_entries=layer_entries,
            history_of_layer=owner,
            accounts=accounts_at,
            by_package=_package_accounts(change_at, pkgdigests.package_accounting(_Why(change_at))),
            mode=verify_packages,
            known=[{norm_layer_path(k)[0]: v for k, v in d.items()} for d in known_digests or []],
            status_out=record_status,
            more=npm_outcome,
        )
        findings += pkg_findings + npm_findings
        # COPY/ADD source hashes recorded in created_by, recomputed from the layer (second read of those files).
        copy_status, copy_findings = copyhash.check_image(img, ins, layer_entries, source)
        for h_i, st in copy_status.items():
            step = img.history[h_i].analysis
            if step is not None:  # every step has one by now (above)
                step.copy_hash = st
        findings += copy_findings
        copy_verified = {
            (li, p)
            for h_i, st in copy_status.items()
            if st.status == "verified" and (li := _layer_of_step(img, h_i)) is not None
            for p in st.paths
        }
        img.coverage = coverage.image_coverage(
            overlay,
            change_at,
            owner,
            {h.index: h.created_by or "" for h in img.history},
            records=record_status,
            copy_verified=copy_verified,
            known_good=known_good,
        )
        if packages_out is not None:
            packages_out.append(inv.records(img.index, pkg.dbs, overlay))
        return findings


class _Why:
    """(layer, path) -> why its step explains the change there, read from the change itself:
    a second dict over every changed path cost 10 MiB on a 375,000-entry image. Nothing
    changes a PathChange's explained_by once its layer is replayed."""

    __slots__ = ("_at",)

    def __init__(self, change_at: dict[tuple[int, str], PathChange]) -> None:
        self._at = change_at

    def get(self, key: tuple[int, str]) -> str | None:
        ch = self._at.get(key)
        return ch.explained_by if ch is not None else None


def _command_accounts(change_at: dict[tuple[int, str], PathChange], claimed: set[tuple[int, str]]):
    """Whether the layer's own command says what goes at a path (so a package file's new
    content is its doing): a claim or a write naming this very path (`sed -i F`, also when
    F was made in the same squashed layer), a COPY/ADD destination (not a whole rootfs).
    A tree (an archive, pip install), a program the analysis cannot see into, or the
    package manager's run says where content comes from, not what it is."""

    def accounts(layer: int, path: str) -> bool:
        if (layer, path) in claimed:
            return True
        ch = change_at.get((layer, path))
        if ch is None or ch.explained_by is None:
            return False
        if ch.assurance in ("verified", "unverified"):
            return True
        why = ch.explained_by
        return why.startswith(("COPY destination", "ADD destination")) and not pkgdigests.whole_rootfs(why)

    return accounts


def _package_accounts(change_at: dict[tuple[int, str], PathChange], by_reason):
    """Whether the package manager's run in that layer explains a path (its maintainer
    scripts, its bookkeeping, account entries its packages create): never enough for a
    content change, but it grades configuration files."""

    def by_package(layer: int, path: str) -> bool:
        ch = change_at.get((layer, path))
        return (ch is not None and ch.explained_by is not None and ch.assurance == "package") or by_reason(layer, path)

    return by_package


def _layer_of_step(img: Image, h_i: int) -> int | None:
    """The layer a step's files are in: its own, or (squashed, marked empty) the next owner's."""
    for h in img.history[h_i:]:
        if h.layer_index is not None:
            return h.layer_index
    return None
