"""Typed claims: what a step's command says it produces at a path, and whether the layer agrees.

A RUN command is not only a set of paths it may touch. `ln -s T L` makes L a symlink
to T and nothing else; `echo 'x' > F` makes F hold exactly those bytes; `chmod`
changes modes, never content; `sed -i` edits a file that existed and keeps its type.
An attacker who knows that the tool accepts "any change at a path the command
names" hides a wrapper script where the command makes a symlink, or a
`NOPASSWD: ALL` where it echoes a narrow sudoers rule. So each handler of
`shellwords` records a `Claim` with what it predicts, and `judge` holds the layer's
entry at that path to it.

Precision:
- exact: the type and, where the text fixes it, the content (literal bytes, the content
  of another path, a symlink target, "unchanged");
- tree: anything below a path, content from outside (`tar -x`, `pip install`, `git clone`);
- opaque: code the analysis cannot see into ran after the claim (a script, `make`), so
  the claim may have been overwritten; it still explains the path, unverified.

Claims never raise and never read files: `judge` gets the entries and a lookup.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

# What a claim says the path becomes.
FILE, DIR, SYMLINK, ABSENT = "file", "dir", "symlink", "absent"
META = "meta"  # only mode/owner/times change; content and type stay as they were
EDIT = "edit"  # an existing regular file's content changes in place (sed -i); type stays
TOUCH = "touch"  # an empty file if new, else metadata only
ANY = "any"  # a write whose type is not known (conflicting branches)

EXACT, OPAQUE = "exact", "opaque"
# Claims about a file that must already exist: on a path the layer adds, they say that
# something else of the step made it.
NEEDS_EXISTING = (EDIT, META)


@dataclass(frozen=True, slots=True)
class Claim:
    path: str
    produces: str
    command: str  # the command in words, for evidence ("ln -s /a /b")
    content: bytes | None = None  # the whole content, when the text fixes it
    append: bytes | None = None  # bytes appended to whatever was there (`>>` with an unknown base)
    source: str | None = None  # content equals what this path held (cp, install, mv, ln)
    source_below: bool = False  # mv: the source's content *before* this layer
    link: str | None = None  # symlink target as written
    precision: str = EXACT
    conditional: bool = False  # inside if/case/loops or around `||`: may not have happened
    meta: bool = False  # a chmod/chown/touch also applies: mode and owner may change

    def weakened(self, precision: str = OPAQUE) -> Claim:
        return replace(self, precision=precision)


def describe_claim(c: Claim) -> str:
    """What the command says, as a sentence fragment: "makes /b a symlink to /a"."""
    p = c.path
    if c.produces == SYMLINK:
        return f"makes {p} a symlink to {c.link}" if c.link is not None else f"makes {p} a symlink"
    if c.produces == DIR:
        return f"makes {p} a directory"
    if c.produces == ABSENT:
        return f"deletes {p}"
    if c.produces == META:
        return f"only changes the mode or owner of {p}"
    if c.produces == EDIT:
        return f"edits the existing file {p} in place (its type and mode stay)"
    if c.produces == TOUCH:
        return f"touches {p} (an empty file if new, else only its times)"
    if c.produces == FILE:
        if c.content is not None:
            return f"writes {len(c.content)} known bytes to {p} (sha256:{hashlib.sha256(c.content).hexdigest()})"
        if c.append is not None:
            return f"appends {len(c.append)} known bytes to {p}"
        if c.source is not None:
            return f"copies {c.source} to {p}"
        return f"writes a regular file at {p}"
    return f"writes {p}"


@dataclass(slots=True)
class Verdict:
    ok: bool
    verified: bool  # the content (or target) was checked, not only the type
    why: str  # for ok: the explanation; for not ok: what the layer holds instead


def _entry_words(entry, size_text) -> str:
    """What the layer holds, in words: "a 310-byte shell script", "a symlink to /x"."""
    if entry is None:
        return "nothing there (deleted)"
    t = entry.type
    if t == "symlink":
        return f"a symlink to {entry.link}"
    if t == "dir":
        return "a directory"
    if t in ("file", "hardlink"):
        kind = {"elf": "ELF executable", "script": "script", "empty": "empty file"}.get(entry.kind or "", "file")
        if entry.kind == "script":
            kind = "shell script"
        if entry.kind == "empty":
            return "an empty file"
        exe = " (executable)" if entry.mode & 0o111 and entry.kind not in ("elf", "script") else ""
        return f"a {size_text(entry.size)} {kind}{exe}"
    return f"a {t}"


def _size_text(n: int) -> str:
    return f"{n}-byte" if n < 10_000 else f"{n / 1024:.1f} KiB"


def holds(entry) -> str:
    return _entry_words(entry, _size_text)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def judge(claim: Claim, change, entry, before, source_of) -> Verdict:
    """Does the layer's change at `claim.path` match the claim?

    `change` is the PathChange ("added", "modified", "deleted" with `what`), `entry` the
    layer's FileEntry there (None when deleted), `before` the merged-filesystem Node
    below this layer (None when new), `source_of(path, below)` the (type, sha256) of
    another path (this layer's version, or with `below` the one under it), None when
    the image does not hold it.
    """
    produces = claim.produces
    exact = claim.precision == EXACT and not claim.conditional
    deleted = change.change == "deleted"
    what = set(change.what or ())
    etype = entry.type if entry is not None else None
    is_file = etype in ("file", "hardlink")
    sha = change.sha256
    if produces == ANY or claim.precision != EXACT:
        return Verdict(True, False, f"written by the command ({claim.command})")

    if produces == ABSENT:
        if deleted:
            return Verdict(True, True, f"deleted by the command ({claim.command})")
        if claim.conditional:
            return Verdict(True, False, f"the command may delete it ({claim.command})")
        return Verdict(False, False, holds(entry))
    if deleted:
        # A command that makes something here does not delete it; a conditional one may
        # not have run, but then the path would be unchanged, not gone.
        return Verdict(False, False, holds(None))
    if produces == META:
        if change.change == "added":
            return Verdict(False, False, f"{holds(entry)} that was not there before")
        if what & {"content", "type", "link"}:
            return Verdict(False, False, f"{holds(entry)} whose {'content' if 'content' in what else 'type'} changed")
        return Verdict(True, True, f"mode/owner change by the command ({claim.command})")
    if produces == TOUCH:
        if change.change == "added":
            if is_file and entry.size == 0:
                return Verdict(True, True, f"empty file made by the command ({claim.command})")
            return Verdict(False, False, holds(entry))
        if what & {"content", "type", "link"}:
            return Verdict(False, False, f"{holds(entry)} whose content changed")
        return Verdict(True, True, f"touched by the command ({claim.command})")
    if produces == EDIT:
        if change.change == "added":
            if claim.conditional:
                return Verdict(True, False, f"edited by the command ({claim.command})")
            return Verdict(False, False, f"{holds(entry)} that did not exist before the edit")
        if "type" in what or not is_file:
            return Verdict(False, False, holds(entry))
        if "mode" in what and not claim.meta and exact:
            return Verdict(
                False, False, f"{holds(entry)} whose mode changed ({_mode(before)} -> {entry.mode & 0o7777:04o})"
            )
        return Verdict(True, False, f"edited in place by the command ({claim.command})")
    if produces == DIR:
        if etype == "dir":
            return Verdict(True, True, f"directory made by the command ({claim.command})")
        return Verdict(False, False, holds(entry))
    if produces == SYMLINK:
        if etype != "symlink":
            if (
                claim.conditional
                and change.change == "modified"
                and etype == (before.entry.type if before else None)
                and not what & {"content", "type"}
            ):
                return Verdict(True, False, f"left as it was by a conditional link ({claim.command})")
            return Verdict(False, False, holds(entry))
        if claim.link is None or entry.link == claim.link:
            return Verdict(True, claim.link is not None, f"symlink made by the command ({claim.command})")
        return Verdict(False, False, holds(entry))
    if produces == FILE:
        if not is_file:
            return Verdict(False, False, holds(entry))
        if claim.content is not None:
            if sha == _sha(claim.content):
                return Verdict(True, True, f"the exact bytes the command writes ({claim.command})")
            if claim.conditional:
                return Verdict(True, False, f"written by a conditional command ({claim.command})")
            return Verdict(False, False, f"{holds(entry)} (sha256:{sha or '?'}) instead")
        if claim.append is not None:
            base = before.entry.size if (before is not None and before.entry.type in ("file", "hardlink")) else 0
            if before is None and sha == _sha(claim.append):
                return Verdict(True, True, f"the exact bytes the command writes ({claim.command})")
            if entry.size == base + len(claim.append) and before is not None:
                return Verdict(True, False, f"appended by the command ({claim.command})")
            if claim.conditional:
                return Verdict(True, False, f"appended by a conditional command ({claim.command})")
            return Verdict(
                False,
                False,
                f"{holds(entry)}: {entry.size} bytes where {base} + {len(claim.append)} "
                f"= {base + len(claim.append)} were expected",
            )
        if claim.source is not None:
            src = source_of(claim.source, claim.source_below)
            want = src[1] if src is not None and src[0] in ("file", "hardlink") else None
            if src is not None and src[0] not in ("file", "hardlink"):
                return Verdict(True, False, f"copied by the command from {claim.source} ({claim.command})")
            if want is None:
                return Verdict(
                    True,
                    False,
                    f"copied by the command from {claim.source}, whose content is not in the image ({claim.command})",
                )
            if want == sha:
                return Verdict(True, True, f"the same content as {claim.source} ({claim.command})")
            if claim.conditional:
                return Verdict(True, False, f"copied by a conditional command ({claim.command})")
            return Verdict(
                False,
                False,
                f"{holds(entry)} (sha256:{sha or '?'}) that differs from {claim.source} (sha256:{want})",
            )
        return Verdict(True, False, f"written by the command ({claim.command})")
    return Verdict(True, False, f"written by the command ({claim.command})")


def _mode(before) -> str:
    return f"{before.entry.mode & 0o7777:04o}" if before is not None else "none"


def merge(old: Claim, new: Claim) -> Claim:
    """Two commands of one RUN at the same path, `old` first: what the path ends as."""
    p = new.produces
    cond = new.conditional
    if p == META:
        return replace(old, meta=True)
    if p == TOUCH:
        return new if old.produces == ABSENT else replace(old, meta=True)
    if p == EDIT:
        if old.produces in (FILE, ANY):
            return replace(
                old,
                produces=FILE,
                content=None,
                append=None,
                source=None,
                command=new.command,
                conditional=old.conditional or cond,
            )
        if old.produces in (META, EDIT, TOUCH):
            return replace(new, meta=old.meta or old.produces in (META, TOUCH), conditional=old.conditional or cond)
        return replace(new, produces=ANY)
    if p == FILE and new.append is not None:
        if old.produces == ABSENT:
            return replace(new, content=new.append, append=None) if not cond else replace(new, produces=ANY)
        if old.produces == FILE and old.content is not None:
            return replace(
                old, content=old.content + new.append, command=new.command, conditional=old.conditional or cond
            )
        if old.produces == FILE and old.append is not None:
            return replace(
                old, append=old.append + new.append, command=new.command, conditional=old.conditional or cond
            )
        return replace(new, append=None, conditional=old.conditional or cond)
    if cond:
        # It may or may not have run: the path is either what `old` made or what `new` makes.
        if old.produces != p:
            return replace(new, produces=ANY)
        return replace(new, conditional=True)
    return new
