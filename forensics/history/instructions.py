"""Turn a history entry's `created_by` into a structured instruction.

Each builder writes `created_by` in its own grammar (formats-and-peers.md 3.7):

- Docker classic builder: `/bin/sh -c #(nop)  CMD ["sh"]` (two spaces for metadata),
  `/bin/sh -c #(nop) COPY file:<hex> in /dest ` (one space, trailing space), RUN as
  `/bin/sh -c cmd`, build args as `|2 A=1 B=2 /bin/sh -c cmd`; exec-form RUN is the argv
  joined with spaces. A SHELL instruction replaces `/bin/sh -c` with its own argv.
- BuildKit: the Dockerfile line, with ` # buildkit` on layer-owning steps
  (`RUN /bin/sh -c cmd # buildkit`, `COPY src /dest # buildkit`); comment
  `buildkit.dockerfile.v0`. It never records `COPY --from`.
- buildah/podman: like classic, but metadata has one space after `#(nop)`, exec-form RUN
  is `/bin/sh -c ["a","b"]`, and RUN flags (`--mount=...`) stay in the text.
- kaniko: the Dockerfile line as written; author `kaniko`.
- docker commit: the container's Cmd; docker import: empty, comment `Imported from <src>`.
- debuerreotype (Debian base images): `# debian.sh --arch 'amd64' out/ 'bookworm' '@...'`.

The text is not authenticated by anything but the config digest, so parsing is
defensive: any input yields an Instruction, unknown shapes become kind UNKNOWN.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Callable

from pydantic import BaseModel, Field

from forensics.history.shellwords import RunEffects, norm_path, run_effects

__all__ = [
    "Instruction",
    "RunEffects",
    "instruction_effects",
    "norm_path",
    "parse_created_by",
    "run_effects",
]

METADATA_KINDS = frozenset({
    "ENV", "ARG", "LABEL", "CMD", "ENTRYPOINT", "EXPOSE", "USER", "VOLUME", "SHELL",
    "HEALTHCHECK", "STOPSIGNAL", "ONBUILD", "MAINTAINER",
})  # fmt: skip
DOCKERFILE_KINDS = METADATA_KINDS | {"RUN", "COPY", "ADD", "WORKDIR", "FROM"}

BUILDKIT_SUFFIX = " # buildkit"
BUILDKIT_COMMENT = "buildkit.dockerfile.v0"
NOP = "#(nop)"

# `created_by` is parsed up to this length; the rest is kept in `raw` only.
MAX_PARSE_CHARS = 1_048_576


class Instruction(BaseModel):
    """One history entry, read according to the grammar of the builder that wrote it."""

    kind: str = "UNKNOWN"
    builder: str = "unknown"
    # False when the builder is a default guess: classic and buildah write COPY/ADD,
    # WORKDIR and RUN lines identically, so those get "classic" without proof.
    builder_confident: bool = False
    raw: str = ""
    args: str = ""
    shell: str | None = None
    argv: list[str] | None = None
    build_args: dict[str, str] = Field(default_factory=dict)
    sources: list[str] = Field(default_factory=list)
    dest: str | None = None
    dest_is_dir: bool = False  # written as a directory (`/app/`, `.`) or several sources
    flags: dict[str, str] = Field(default_factory=dict)  # repeated flags joined with "\n"
    metadata_only: bool = False


def parse_created_by(created_by: str | None, comment: str | None = None, author: str | None = None) -> Instruction:
    """Parse one `created_by` (with the entry's comment and author as builder hints).

    Never raises: whatever the input, an Instruction comes back, `raw` holding the text.
    """
    raw = _as_text(created_by)
    try:
        ins = _parse(raw, _as_text(comment).strip(), _as_text(author).strip())
    except Exception:  # defensive: an odd line must not stop the analysis
        ins = Instruction(raw=raw, args=raw)
    ins.raw = raw
    ins.metadata_only = ins.kind in METADATA_KINDS
    return ins


def _as_text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


# --------------------------------------------------------------------------- dispatch


def _parse(raw: str, comment: str, author: str) -> Instruction:
    text = raw[:MAX_PARSE_CHARS]
    if comment.startswith("Imported from"):
        source = comment[len("Imported from") :].strip()
        return Instruction(kind="IMPORT", builder="docker-import", builder_confident=True, args=source)
    if comment.startswith("buildkit.exporter"):
        # Added by the exporter for a layer no Dockerfile step claims: no command to check.
        return Instruction(kind="UNKNOWN", builder="buildkit", builder_confident=True, args=text.strip())
    if not text.strip():
        return Instruction(kind="UNKNOWN", builder=_hinted_builder(comment, author) or "unknown")
    if comment.lower().startswith("debuerreotype") or text.lstrip().startswith("#"):
        return _parse_base(text, comment)

    hint = _hinted_builder(comment, author)
    suffixed = text.endswith(BUILDKIT_SUFFIX)
    if suffixed:
        text = text[: -len(BUILDKIT_SUFFIX)]
        hint = "buildkit"

    keyword, rest = _leading_keyword(text, any_case=hint == "kaniko")
    if keyword:
        return _parse_dockerfile_line(keyword, rest, hint, suffixed)

    build_args, after_args = _take_build_args(text)
    shell = _split_shell_prefix(after_args)
    if shell is not None:
        prefix, command = shell
        if command.startswith(NOP):
            return _parse_nop(command, hint)
        return _parse_shell_run(command, prefix, build_args, hint)
    if build_args:  # `|1 A=b /app/setup --x`: classic exec-form RUN with build args
        return _exec_run(after_args, build_args, "classic", confident=True)
    return _parse_free_text(text, comment, hint)


def _hinted_builder(comment: str, author: str) -> str | None:
    if comment == BUILDKIT_COMMENT or comment.startswith("buildkit."):
        return "buildkit"
    if "kaniko" in author.lower():
        return "kaniko"
    if comment.startswith("FROM "):  # buildah records the base image here
        return "buildah"
    return None


def _parse_base(text: str, comment: str) -> Instruction:
    """A base rootfs made outside any Dockerfile; the line is a comment describing it."""
    debuerreotype = "debuerreotype" in comment.lower() or "debian.sh" in text or "debuerreotype" in text
    return Instruction(
        kind="BASE",
        builder="debuerreotype" if debuerreotype else "unknown",
        builder_confident=debuerreotype,
        args=text.lstrip().lstrip("#").strip(),
    )


def _parse_free_text(text: str, comment: str, hint: str | None) -> Instruction:
    """No builder grammar matched: docker commit, a classic exec-form RUN, or unknown."""
    words = text.split()
    interactive = len(words) == 1 and posixpath.basename(words[0]) in _INTERACTIVE_SHELLS
    if interactive or (comment and hint is None):
        # docker commit records the container's Cmd and its -m message as comment.
        return Instruction(
            kind="COMMIT", builder="docker-commit", builder_confident=bool(comment), args=text, argv=words
        )
    if text.startswith("/"):
        # Classic builder, exec-form RUN ["/app/setup","--x"]: recorded as the argv joined.
        return _exec_run(text, {}, hint or "classic", confident=False)
    return Instruction(kind="UNKNOWN", builder=hint or "unknown", args=text)


_INTERACTIVE_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "fish", "busybox"})


# --------------------------------------------------------------------------- prefixes


_KEYWORD_RE = re.compile(r"([A-Za-z]+)(?:[ \t]+|$)")


def _leading_keyword(text: str, *, any_case: bool) -> tuple[str | None, str]:
    """`RUN ...` -> ("RUN", "..."). Upper case only unless the builder is known to be kaniko,
    so that a docker-commit Cmd such as `env` is not taken for an ENV instruction."""
    m = _KEYWORD_RE.match(text)
    if not m:
        return None, text
    word = m.group(1)
    if word.upper() in DOCKERFILE_KINDS and (word.isupper() or any_case):
        return word.upper(), text[m.end() :]
    return None, text


_BUILD_ARG_COUNT = re.compile(r"\|(\d{1,4}) ")
_BUILD_ARG_START = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*=")


def _take_build_args(text: str) -> tuple[dict[str, str], str]:
    """Strip `|N K=V ... ` (classic, buildah and BuildKit RUN build args).

    Values are joined with spaces unquoted, so a value may itself contain spaces;
    when a shell prefix follows, everything before it is taken as the N assignments.
    """
    m = _BUILD_ARG_COUNT.match(text)
    if not m:
        return {}, text
    count, rest = int(m.group(1)), text[m.end() :]
    shell_at = _find_shell_prefix(rest)
    if shell_at is not None:
        region, command = rest[:shell_at].rstrip(" "), rest[shell_at:]
        return _assignments(region), command
    words = rest.split(" ")
    taken = [w for w in words[:count]]
    return _assignments(" ".join(taken)), " ".join(words[count:])


def _assignments(region: str) -> dict[str, str]:
    """`A=1 B=two words C=3` -> dict, a value running until the next `NAME=`."""
    out: dict[str, str] = {}
    key = None
    for word in region.split(" "):
        if _BUILD_ARG_START.match(word):
            key, _, value = word.partition("=")
            out[key] = value
        elif key is not None:
            out[key] += " " + word
    return out


_SHELL_NAMES = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh"})


def _find_shell_prefix(text: str) -> int | None:
    """Offset of the first `<shell> [opts] -c ` word in `text`, if any."""
    offset = 0
    for word in text.split(" ")[:64]:
        if word and _split_shell_prefix(text[offset:]) is not None:
            return offset
        offset += len(word) + 1
    return None


def _split_shell_prefix(text: str) -> tuple[str, str] | None:
    """`/bin/bash -o pipefail -c cmd` -> ("/bin/bash -o pipefail -c", "cmd").

    The prefix is the shell argv of a SHELL instruction (default `/bin/sh -c`), joined
    with single spaces; Windows builders use `cmd /S /C` and `powershell -Command`.
    """
    words = text.split(" ", 16)  # bounded: the prefix is short, the command may be huge
    first = words[0]
    name = posixpath.basename(first).lower()
    is_end: Callable[[str], bool]
    if name in _SHELL_NAMES:
        is_end = _posix_shell_end
    elif name in ("cmd", "cmd.exe"):
        is_end = lambda w: w.upper() in ("/C", "/K")  # noqa: E731
    elif name in ("powershell", "powershell.exe", "pwsh"):
        is_end = lambda w: w.lower() in ("-command", "-c")  # noqa: E731
    else:
        return None
    i = 1
    while i < len(words) and i <= 12:
        w = words[i]
        if is_end(w):
            prefix = " ".join(words[: i + 1])
            return prefix, text[len(prefix) + 1 :]
        if not w.startswith(("-", "+", "/")) or name in _SHELL_NAMES and w.startswith("/"):
            return None  # an operand: `/bin/sh script.sh` is not a `-c` prefix
        takes_value = w in ("-o", "+o", "-O", "+O") or (w.startswith("-") and w[-1] in "oO" and not w.startswith("--"))
        i += 2 if takes_value else 1  # `-o pipefail`, `-eo pipefail`
    return None


def _posix_shell_end(word: str) -> bool:
    """`-c`, or a cluster holding c (`-ec`, `-euxc`)."""
    return word.startswith("-") and not word.startswith("--") and "c" in word[1:]


def _take_flags(text: str) -> tuple[dict[str, str], str]:
    """Leading `--name[=value]` words -> flags (repeats joined with newlines), rest."""
    flags: dict[str, str] = {}
    while text.startswith("--"):
        word, _, text = text.partition(" ")
        name, eq, value = word[2:].partition("=")
        if not name:
            break
        value = value if eq else "true"
        flags[name] = f"{flags[name]}\n{value}" if name in flags else value
        text = text.lstrip(" ")
    return flags, text


def _json_argv(text: str) -> list[str] | None:
    """Exec form: a JSON array of strings, else None."""
    stripped = text.strip()
    if not stripped.startswith("["):
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


# --------------------------------------------------------------------------- classic / buildah


def _parse_nop(command: str, hint: str | None) -> Instruction:
    """`#(nop)  CMD [...]` (classic metadata), `#(nop) COPY file:.. in /x ` and buildah's."""
    body = command[len(NOP) :]
    two_spaces = body.startswith("  ")
    keyword, rest = _leading_keyword(body.lstrip(" "), any_case=False)
    if keyword is None:
        return Instruction(kind="UNKNOWN", builder=hint or "classic", args=body.strip())
    if two_spaces:
        builder, confident = "classic", True  # `"#(nop) "` joined with " " by moby
    elif keyword in ("COPY", "ADD", "WORKDIR"):
        builder, confident = hint or "classic", hint is not None  # both write these alike
    else:
        builder, confident = hint or "buildah", True  # classic metadata has two spaces
    if keyword in ("COPY", "ADD"):
        ins = _parse_classic_copy(keyword, rest)
        if "link" in ins.flags and hint is None:
            builder, confident = "buildah", True  # only buildah records --link here
    else:
        ins = _parse_dockerfile_line(keyword, rest, builder, suffixed=False)
    ins.builder, ins.builder_confident = builder, confident
    return ins


def _parse_classic_copy(keyword: str, rest: str) -> Instruction:
    """`[--chown=u:g ]file:<hex> in /dest ` -> sources ["file:<hex>"], dest "/dest"."""
    flags, body = _take_flags(rest)
    src, sep, dest = body.partition(" in ")
    if not sep:
        return _parse_copy_args(keyword, rest)
    dest = dest[:-1] if dest.endswith(" ") else dest  # moby appends one space
    source = src.strip()
    dir_like = source.startswith(("dir:", "multi:"))
    return _copy_instruction(keyword, rest.strip(), [source] if source else [], dest, flags, dir_like)


def _parse_shell_run(command: str, prefix: str, build_args: dict[str, str], hint: str | None) -> Instruction:
    """`/bin/sh -c <command>` from classic or buildah (buildah keeps RUN flags and JSON argv)."""
    flags, body = _take_flags(command)
    argv = _json_argv(body)
    buildah_mark = bool(flags) or argv is not None
    builder = hint or ("buildah" if buildah_mark else "classic")
    ins = Instruction(
        kind="RUN",
        builder=builder,
        builder_confident=hint is not None or buildah_mark,
        args=f"{prefix} {command}",
        build_args=build_args,
        flags=flags,
    )
    _set_command(ins, body, argv)
    return ins


def _set_command(ins: Instruction, body: str, argv: list[str] | None) -> None:
    if argv is not None:
        ins.argv = argv
        # shlex.join rather than " ".join: `["sh","-c","a && b"]` must stay one argument
        # for run_effects to read the inner command correctly.
        ins.shell = shlex.join(argv)
    else:
        ins.shell = body


def _exec_run(text: str, build_args: dict[str, str], builder: str, *, confident: bool) -> Instruction:
    return Instruction(
        kind="RUN",
        builder=builder,
        builder_confident=confident,
        args=text,
        shell=text,
        argv=text.split(),
        build_args=build_args,
    )


# --------------------------------------------------------------------------- Dockerfile lines


def _parse_dockerfile_line(keyword: str, rest: str, hint: str | None, suffixed: bool) -> Instruction:
    """A line as BuildKit or kaniko writes it: `KEYWORD args` (suffix already removed)."""
    builder, confident = _dockerfile_builder(keyword, rest, hint, suffixed)
    if keyword == "RUN":
        ins = _parse_run_line(rest, builder)
    elif keyword in ("COPY", "ADD"):
        ins = _parse_copy_args(keyword, rest)
    elif keyword == "WORKDIR":
        path = rest.strip()
        ins = Instruction(kind="WORKDIR", args=path, dest=_dest_path(path) if path else None, dest_is_dir=bool(path))
    else:
        ins = Instruction(kind=keyword, args=rest.strip())
    ins.builder, ins.builder_confident = builder, confident
    return ins


def _dockerfile_builder(keyword: str, rest: str, hint: str | None, suffixed: bool) -> tuple[str, bool]:
    if hint is not None:
        return hint, True
    if suffixed:
        return "buildkit", True
    if keyword in ("COPY", "ADD"):
        # BuildKit always suffixes layer steps and never writes --from: this is kaniko.
        return "kaniko", "--from" in rest
    if keyword == "RUN":
        return ("buildkit", False) if rest.startswith("|") else ("kaniko", False)
    if keyword == "EXPOSE" and (rest.startswith("map[") or rest.startswith("[")):
        return "buildkit", True  # Go's %v of a map/slice
    # kaniko records metadata steps only with --force-build-metadata: BuildKit is likelier.
    return "buildkit", False


def _parse_run_line(rest: str, builder: str) -> Instruction:
    """`RUN [|N K=V] [/bin/sh -c] cmd` (BuildKit) or `RUN [--mount=..] cmd` (kaniko)."""
    flags, rest = _take_flags(rest)
    build_args, rest = _take_build_args(rest)
    ins = Instruction(kind="RUN", args=rest, build_args=build_args, flags=flags)
    argv = _json_argv(rest)
    if argv is not None:
        _set_command(ins, rest, argv)
        return ins
    shell = _split_shell_prefix(rest)
    if shell is not None:
        _set_command(ins, shell[1], None)
    else:
        # No shell prefix: kaniko's shell form as written, or BuildKit's exec form
        # (argv joined with spaces, so quoting is lost).
        _set_command(ins, rest, None)
        if builder == "buildkit":
            ins.argv = rest.split()
    return ins


def _parse_copy_args(keyword: str, rest: str) -> Instruction:
    """`[--flags] src... dest` or the JSON form `["src", "dest"]`."""
    flags, body = _take_flags(rest.strip())
    items = _json_argv(body)
    if items is None:
        # Dockerfile COPY/ADD split on blanks (quotes are only meaningful in JSON form).
        items = body.split()
    if not items:
        return Instruction(kind=keyword, args=rest.strip(), flags=flags)
    sources, dest = items[:-1], items[-1]
    dir_like = len(sources) > 1 or any(s.startswith(("dir:", "multi:")) for s in sources)
    return _copy_instruction(keyword, rest.strip(), sources, dest, flags, dir_like)


def _copy_instruction(
    keyword: str, args: str, sources: list[str], dest: str, flags: dict[str, str], dir_like: bool
) -> Instruction:
    written_as_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.")
    return Instruction(
        kind=keyword,
        args=args,
        sources=sources,
        dest=_dest_path(dest) if dest else None,
        dest_is_dir=written_as_dir or dir_like,
        flags=flags,
    )


def _dest_path(dest: str) -> str:
    """Absolute and normalized when the text says where; relative ones wait for WORKDIR."""
    if dest.startswith("/"):
        return norm_path(dest)
    if re.match(r"[A-Za-z]:[\\/]", dest):  # Windows: C:\dest
        return dest
    return dest.rstrip("/") or dest


# --------------------------------------------------------------------------- effects


# ADD extracts local archives in these formats (remote URLs are copied as they are).
_ARCHIVE_SUFFIXES = (
    ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz", ".tar.zst", ".tar.lz", ".tar.lzma",
)  # fmt: skip


def instruction_effects(ins: Instruction, workdir: str | None = None, env: dict[str, str] | None = None) -> RunEffects:
    """What any history step may write, in the same shape as `run_effects`.

    RUN: its command read by `run_effects` (build args join `env`). COPY/ADD: the
    destination (its subtree when the sources are directories, archives or unknown
    files). WORKDIR: the directory. Metadata: nothing. BASE/IMPORT/COMMIT/UNKNOWN:
    the whole tree, flagged opaque.
    """
    cwd = norm_path(workdir) if workdir else "/"
    if ins.kind == "RUN":
        return run_effects(ins.shell or "", cwd, {**(env or {}), **ins.build_args})
    fx = RunEffects()
    if ins.metadata_only:
        return fx
    if ins.kind == "WORKDIR" and ins.dest:
        fx.written_paths.add(norm_path(ins.dest, cwd))
    elif ins.kind in ("COPY", "ADD") and ins.dest:
        _copy_effects(ins, norm_path(ins.dest, cwd), fx)
    else:
        fx.written_trees.add("/")
        fx.opaque = True
        fx.opaque_reasons.append(f"{ins.kind} step records no per-file command")
    return fx


def _copy_effects(ins: Instruction, dest: str, fx: RunEffects) -> None:
    fx.named_paths.add(dest)
    for src in ins.sources or ["."]:
        base = posixpath.basename(src.rstrip("/"))
        opaque_source = src.startswith(("file:", "dir:", "multi:")) or base in ("", ".", "..")
        # Classic ADD hides the name behind file:<hex>; it may have been an archive.
        local = "://" not in src
        extracted = ins.kind == "ADD" and local and (src.endswith(_ARCHIVE_SUFFIXES) or src.startswith("file:"))
        if extracted or opaque_source or not ins.dest_is_dir:
            # The names inside are unknown (hash, archive, directory contents): the subtree.
            fx.written_trees.add(dest)
        else:
            name = base.rsplit("/", 1)[-1] if "://" not in src else posixpath.basename(src.split("?", 1)[0].rstrip("/"))
            fx.written_trees.add(norm_path(name, dest))
            fx.written_paths.add(dest)
    for p in fx.written_paths | fx.written_trees:
        if any(c in p for c in "*?["):
            fx.globs.add(p)
