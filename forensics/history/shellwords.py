"""What a RUN step's shell command touches, read statically from its text.

History lines are attacker-controlled text, so everything here is a best-effort
reading that never raises and never executes anything. The result says which paths
the command names, writes, and deletes, which package managers it runs, and whether
it does something that cannot be reasoned about (`opaque`), so the caller can tell
an honest layer from one that changes more than its history line admits.

The lexer is a small POSIX-sh subset rather than `shlex`: shlex cannot tell an
escaped `\\;` (a word, e.g. for `find -exec`) from a `;` operator, treats newlines as
blanks although they separate commands, ends words at `#`, splits `$(...)`, and knows
nothing of here-documents or `2>` redirections. All of those occur in real RUN lines.

Path patterns (`globs`, and any path holding `*`, `?` or `[`) use shell semantics:
`*` and `?` stay within one path segment. A path stands for itself and, where
`explains()` says so, everything below it.
"""

from __future__ import annotations

import posixpath
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_serializer

from forensics.history import claims as C
from forensics.history.claims import Claim

# Longer inputs are cut, and walking stops after so many simple commands: a history
# line this long is itself suspicious, and the reader is linear but pure Python
# (a hostile image may hold many such lines). Real RUN lines stay far below both.
MAX_SHELL_CHARS = 131_072
MAX_COMMANDS = 4_096
# `sh -c "sh -c '...'"` nesting deeper than this is not followed.
MAX_DEPTH = 8

GLOB_CHARS = frozenset("*?[")


# --------------------------------------------------------------------------- paths


def norm_path(p: str, cwd: str = "/") -> str:
    """Absolute, normalized form of `p` (relative paths are taken against `cwd`).

    Collapses `.`, `..` (never above `/`) and repeated slashes, and drops a
    trailing slash except on the root itself.
    """
    p = p if isinstance(p, str) else str(p)
    if not p.startswith("/"):
        base = cwd if isinstance(cwd, str) and cwd.startswith("/") else "/" + (cwd or "")
        p = base + "/" + p
    p = posixpath.normpath(p)
    # normpath keeps a leading "//" (POSIX leaves it implementation-defined).
    return "/" + p.lstrip("/")


_GLOB_SET = frozenset(GLOB_CHARS)


def has_glob(p: str) -> bool:
    return not _GLOB_SET.isdisjoint(p)  # C-speed: runs per path per written pattern


@lru_cache(maxsize=4096)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Shell-style pattern as a regex: `*`/`?` never cross `/`, `[...]` is a class."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:  # a bracket class that is not valid regex: match literally
        return re.compile(re.escape(pattern), re.DOTALL)


def glob_match(path: str, pattern: str, *, below: bool = False) -> bool:
    """Whether `path` matches `pattern`, or (with `below`) lies under a match."""
    rx = _glob_regex(pattern)
    if rx.fullmatch(path):
        return True
    if below:
        parts = path.split("/")
        return any(rx.fullmatch("/".join(parts[:k])) for k in range(2, len(parts)))
    return False


def _under_tree(p: str, tree: str) -> bool:
    if has_glob(tree):
        return glob_match(p, tree, below=True)
    return p.startswith(tree.rstrip("/") + "/")


def has_below(ordered: list[str], p: str) -> bool:
    """Whether a path of the sorted list `ordered` lies strictly below directory p: the
    paths starting with p + "/" are contiguous in sorted order, so one bisect answers it
    in time linear in the path (never the parents of each path: quadratic in depth)."""
    if p in ("/", ""):
        return any(q not in ("/", "") for q in ordered)
    prefix = p.rstrip("/") + "/"
    i = bisect_left(ordered, prefix)
    return i < len(ordered) and ordered[i].startswith(prefix)


# --------------------------------------------------------------------------- lexer


class Tok(NamedTuple):
    text: str
    op: bool = False  # an operator (`;`, `&&`, `|`, `>`, `\n` ...) rather than a word
    heredoc: str | None = None  # the body of a here-document, on its `<<` operator
    # The word is exactly its text: no unquoted or double-quoted expansion, no glob. Only
    # such words give the literal bytes an `echo` or `printf` writes.
    literal: bool = True
    heredoc_literal: bool = False  # the delimiter was quoted: the body is not expanded


_OPERATORS = (
    "&>>", "<<-", "<<<", ";;&", "&&", "||", ";;", ";&", ">>", "<<", "&>", ">&", "<&",
    ">|", "<>", "|&", ";", "&", "|", "<", ">", "(", ")",
)  # fmt: skip
_OP_CHARS = frozenset(";&|<>()")
# Unquoted characters that make a word expand (parameters, globs, tilde).
_EXPANDING = frozenset("$*?[~")
# Longest match first, grouped by first character (the lexer's hot path).
_OPS_BY_CHAR = {c: sorted((o for o in _OPERATORS if o[0] == c), key=len, reverse=True) for c in _OP_CHARS}
REDIRECT_OPS = frozenset({">", ">>", ">|", "&>", "&>>", ">&", "<", "<&", "<>", "<<", "<<-", "<<<"})
WRITE_REDIRECTS = frozenset({">", ">>", ">|", "&>", "&>>", ">&", "<>"})


class _Lexer:
    """Splits shell text into words and operators; see the module docstring for why."""

    def __init__(self, text: str):
        self.text, self.pos = text, 0
        self.toks: list[Tok] = []
        self.buf: list[str] = []
        self.in_word = False  # true after a quote, even when the word is still empty
        self.lit = True  # the current word has no expansion (see Tok.literal)
        self.word_start = 0
        self.want_delim: str | None = None  # `<<` seen: the next word is its delimiter
        self.pending: list[tuple[int, str, bool, bool]] = []  # (token index, delimiter, strip tabs, quoted)

    def run(self) -> list[Tok]:
        text, n = self.text, len(self.text)
        while self.pos < n:
            c = text[self.pos]
            if c == "\\":
                self._escape()
            elif c == "'":
                end = text.find("'", self.pos + 1)
                end = n if end < 0 else end  # unbalanced: the rest is the word
                self._add(text[self.pos + 1 : end])
                self.pos = end + 1
            elif c == '"':
                self._double_quoted()
            elif c == "`":
                self.lit = False
                end = text.find("`", self.pos + 1)
                end = n - 1 if end < 0 else end
                self._add(text[self.pos : end + 1])
                self.pos = end + 1
            elif c == "$" and text.startswith(("$(", "${"), self.pos):
                self.lit = False
                end = _balanced(text, self.pos + 1)
                self._add(text[self.pos : end])
                self.pos = end
            elif c in " \t\r":
                self._end_word()
                self.pos += 1
            elif c == "\n":
                self._end_word()
                self._emit(Tok("\n", op=True))
                self.pos += 1
                self._read_heredocs()
            elif c == "#" and not self.in_word:
                end = text.find("\n", self.pos)
                self.pos = n if end < 0 else end
            elif c in _OP_CHARS:
                self._operator()
            else:
                if c in _EXPANDING and (c != "~" or not self.in_word):
                    self.lit = False
                self._add(c)
                self.pos += 1
        self._end_word()
        return self.toks

    def _add(self, s: str) -> None:
        if not self.in_word:
            self.word_start = self.pos
        self.buf.append(s)
        self.in_word = True

    def _escape(self) -> None:
        nxt = self.text[self.pos + 1 : self.pos + 2]
        if nxt != "\n":  # backslash-newline is a line continuation: drop both
            self._add(nxt or "\\")
        self.pos += 2

    def _double_quoted(self) -> None:
        text, n, i = self.text, len(self.text), self.pos + 1
        out = []
        if not self.in_word:
            self.word_start = self.pos
        while i < n and text[i] != '"':
            if text[i] in "$`":
                self.lit = False
            if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\$`\n':
                if text[i + 1] != "\n":
                    out.append(text[i + 1])
                i += 2
            elif text.startswith("$(", i):
                end = _balanced(text, i + 1)
                out.append(text[i:end])
                i = end
            else:
                out.append(text[i])
                i += 1
        self._add("".join(out))
        self.pos = i + 1

    def _operator(self) -> None:
        text = self.text
        word = "".join(self.buf)
        # `2>file`, `2>&1`: digits glued to a redirection are a file descriptor.
        fd = None
        if text[self.pos] in "<>" and word.isdigit():
            fd = word
            self.buf, self.in_word, self.lit = [], False, True
        else:
            self._end_word()
        op = next(o for o in _OPS_BY_CHAR[text[self.pos]] if text.startswith(o, self.pos))
        self.pos += len(op)
        # `2>f` writes stderr, not the command's output: Tok.literal False marks that.
        self._emit(Tok(op, op=True, literal=fd in (None, "1")))
        if op in ("<<", "<<-"):
            self.want_delim = op

    def _end_word(self) -> None:
        if not self.in_word:
            return
        word = "".join(self.buf)
        lit, raw = self.lit, self.text[self.word_start : self.pos]
        self.buf, self.in_word, self.lit = [], False, True
        if self.want_delim is not None:
            quoted = any(q in raw for q in "'\"\\")
            self.pending.append((len(self.toks) - 1, word, self.want_delim == "<<-", quoted))
            self.want_delim = None
        self._emit(Tok(word, literal=lit))

    def _emit(self, tok: Tok) -> None:
        self.toks.append(tok)

    def _read_heredocs(self) -> None:
        """After a newline, consume the bodies of the here-documents opened on that line."""
        text, n = self.text, len(self.text)
        for op_index, delim, strip_tabs, quoted in self.pending:
            lines = []
            while self.pos < n:
                end = text.find("\n", self.pos)
                end = n if end < 0 else end
                line = text[self.pos : end]
                self.pos = end + 1
                if strip_tabs:
                    line = line.lstrip("\t")
                if line == delim:
                    break
                lines.append(line + "\n")  # each body line keeps its newline, as the shell feeds it
            op = self.toks[op_index]
            self.toks[op_index] = op._replace(heredoc="".join(lines), heredoc_literal=quoted)
        self.pending = []


def _balanced(text: str, i: int) -> int:
    """End (exclusive) of the bracket group opening at text[i] (`(` or `{`), quotes respected."""
    close = ")" if text[i] == "(" else "}"
    opening, depth, n = text[i], 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            end = text.find(c, i + 1)
            i = n if end < 0 else end
        elif c == "\\":
            i += 1
        elif c == opening:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def tokenize(text: str) -> list[Tok]:
    """Words and operators of a shell command. Never raises."""
    try:
        return _Lexer(text if isinstance(text, str) else str(text)).run()
    except Exception:  # defensive: fall back to blanks, the crudest reading
        return [Tok(w) for w in str(text).split()]


def split_words(text: str) -> list[str]:
    """Words of `text` with quotes removed, operators dropped (like `shlex.split`)."""
    return [t.text for t in tokenize(text) if not t.op]


# --------------------------------------------------------------------------- result


class RunEffects(BaseModel):
    """What a RUN command (or another history step) says about the files it changes.

    `written_paths` are paths the command creates, modifies or deletes (the latter also
    in `deleted_paths`); `written_trees` are paths below which anything may change
    (an archive extracted there, a repository cloned, a package manager's state);
    `modified_trees` are paths below which existing entries may change but nothing is
    created (`chown -R`, `chmod -R`). Paths may be patterns; every pattern is also in
    `globs`.
    """

    named_paths: set[str] = Field(default_factory=set)
    written_paths: set[str] = Field(default_factory=set)
    written_trees: set[str] = Field(default_factory=set)
    modified_trees: set[str] = Field(default_factory=set)
    deleted_paths: set[str] = Field(default_factory=set)
    globs: set[str] = Field(default_factory=set)
    package_managers: set[str] = Field(default_factory=set)
    packages: dict[str, list[str]] = Field(default_factory=dict)  # installed and removed
    removed_packages: dict[str, list[str]] = Field(default_factory=dict)
    opaque: bool = False
    opaque_reasons: list[str] = Field(default_factory=list)
    # Typed claims (forensics.history.claims), by the path the command names: what it
    # produces there. Paths named only as arguments of a program the reader does not
    # model (`opaque_paths`) are explained, never verified.
    claims: dict[str, Claim] = Field(default_factory=dict, exclude=True)
    opaque_paths: set[str] = Field(default_factory=set)
    # `python -m compileall DIR`: below DIR only __pycache__ directories and *.pyc files.
    bytecode_trees: set[str] = Field(default_factory=set)
    # Homes made by useradd -m / adduser: the directory itself, and /etc/skel copies.
    homes: set[str] = Field(default_factory=set)
    # Trees an archive was extracted into, with what the extraction keeps of the archive:
    # root -> {"mtimes": bool, "owners": bool, "command": str}. Files that land there
    # carry the release's metadata (forensics.history.trees checks the pattern).
    extracted: dict[str, dict] = Field(default_factory=dict)

    model_config = ConfigDict(arbitrary_types_allowed=True)

    _ancestor_cache: tuple[tuple[int, ...], list[str]] | None = PrivateAttr(default=None)

    @field_serializer(
        "named_paths",
        "written_paths",
        "written_trees",
        "modified_trees",
        "deleted_paths",
        "globs",
        "package_managers",
        "opaque_paths",
        "bytecode_trees",
        "homes",
    )
    def _sorted(self, value: set[str]) -> list[str]:
        return sorted(value)  # stable reports

    def explains(self, path: str, change: str | None = None, *, is_dir: bool = True) -> bool:
        """Whether a change at `path` in this step's layer is accounted for by the command.

        True for a written path or a match of a written pattern, anything under a written
        tree, and the parent directories of all recorded paths (their entries change when
        a child does). Paths under a deleted path (`rm -r`, `find -delete`) or a modified
        tree (`chown -R`) count too, unless `change` is "added": those commands create
        nothing. `change` is the layer change kind ("added", "modified", "deleted") or
        None when unknown (the lenient reading). `opaque` is not taken into account:
        that is the caller's policy.
        """
        p = norm_path(path)
        if p in self.written_paths or p in self.written_trees:
            return True
        removing_ok = change != "added"
        if removing_ok and (p in self.deleted_paths or (change is None and p in self.modified_trees)):
            return True
        if is_dir and self._has_recorded_below(p):
            return True  # a parent's entry changes when a child does; it stays a directory
        # A modified tree (chmod -R) explains mode and owner changes only: the caller
        # checks those with `metadata_tree`; a content change below it is not explained.
        trees = self.written_trees | (self.deleted_paths if removing_ok else set())
        if change is None:
            trees = trees | self.modified_trees
        if any(_under_tree(p, t) for t in trees):
            return True
        return any(glob_match(p, g) for g in self.written_paths if has_glob(g))

    def metadata_tree(self, path: str) -> str | None:
        """The `chmod -R`/`chown -R` root that `path` (normalized) is, or lies below, if any."""
        if not self.modified_trees:
            return None  # the common case, asked for every change of every layer
        p = path
        for t in self.modified_trees:
            if p == t or _under_tree(p, t):
                return t
        return None

    def bytecode(self, path: str) -> bool:
        """A __pycache__ directory or .pyc below a `compileall` root."""
        if not self.bytecode_trees or not any(path.startswith(t.rstrip("/") + "/") for t in self.bytecode_trees):
            return False
        base = posixpath.basename(path)
        return base == "__pycache__" or (
            base.endswith((".pyc", ".opt-1.pyc", ".opt-2.pyc"))
            and posixpath.basename(posixpath.dirname(path)) in ("__pycache__",)
        )

    def _has_recorded_below(self, p: str) -> bool:
        """Whether p is a parent of a recorded path. The recorded paths are sorted once
        (cached until the sets change size) and bisected: the set of all their parents
        would be quadratic in a path's depth (40,000 components: 800 million characters)."""
        key = (len(self.written_paths), len(self.deleted_paths), len(self.written_trees), len(self.modified_trees))
        if self._ancestor_cache is None or self._ancestor_cache[0] != key:
            paths = self.written_paths | self.deleted_paths | self.written_trees | self.modified_trees
            self._ancestor_cache = (key, sorted(paths))
        return has_below(self._ancestor_cache[1], p)


# --------------------------------------------------------------------------- context


HOME = "/root"  # RUN steps run as root unless USER says otherwise; good enough for ~
_UNKNOWN = "\x00"  # stands for an unknown expansion until it becomes "*"

# Directories a `cp x DIR` is taken to copy into rather than onto.
STANDARD_DIRS = frozenset({
    "/", "/bin", "/sbin", "/usr", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/share", "/usr/local",
    "/usr/local/bin", "/usr/local/sbin", "/usr/local/lib", "/usr/local/share", "/usr/local/etc",
    "/lib", "/lib64", "/etc", "/etc/init.d", "/etc/profile.d", "/etc/cron.d", "/etc/cron.daily",
    "/etc/apt", "/etc/apt/sources.list.d", "/etc/apt/trusted.gpg.d", "/etc/ssl", "/etc/ssl/certs",
    "/usr/local/share/ca-certificates", "/usr/share/keyrings", "/etc/yum.repos.d", "/etc/apk",
    "/tmp", "/var", "/var/tmp", "/var/lib", "/var/log", "/var/cache", "/opt", "/srv", "/root", "/home",
    "/docker-entrypoint.d", "/docker-entrypoint-initdb.d",
})  # fmt: skip
_PSEUDO_FS = ("/dev", "/proc", "/sys")


@dataclass
class _Ctx:
    """State while walking one RUN command: where we are, what we know, what we found."""

    cwd: str | None
    vars: dict[str, str | None]
    fx: RunEffects = field(default_factory=RunEffects)
    dirs: set[str] = field(default_factory=lambda: set(STANDARD_DIRS))
    depth: int = 0
    commands: int = 0  # simple commands walked so far, nested ones included
    stdin_roots: list[str] | None = None  # `find ROOT ... | xargs cmd`: what cmd receives
    find_roots: list[str] | None = None
    cond: bool = False  # the command being walked runs only sometimes (see _Simple.cond)
    current: str = ""  # the command being walked, in words, for the evidence of its claims
    stdin: bytes | None = None  # the literal bytes piped into the current command, if known
    output: bytes | None = None  # the literal bytes the current command writes to stdout, if known
    opaque_now: bool = False  # the current command was found opaque

    # --- recording ---

    def opaque(self, reason: str) -> None:
        self.fx.opaque = True
        self.opaque_now = True
        if reason not in self.fx.opaque_reasons and len(self.fx.opaque_reasons) < 50:
            self.fx.opaque_reasons.append(reason)
        # Code we cannot see into may overwrite what earlier commands made: their claims
        # still explain those paths, but no longer vouch for the content.
        for k, c in self.fx.claims.items():
            if c.precision == C.EXACT:
                self.fx.claims[k] = c.weakened()

    def claim(self, p: str | None, produces: str, **kw) -> None:
        if not p or _is_pseudo(p) or has_glob(p):
            return
        new = Claim(path=p, produces=produces, command=self.current, conditional=self.cond, **kw)
        old = self.fx.claims.get(p)
        self.fx.claims[p] = C.merge(old, new) if old is not None else new

    def _note_pattern(self, p: str) -> None:
        if has_glob(p):
            self.fx.globs.add(p)

    def write(self, p: str | None) -> None:
        if p and not _is_pseudo(p):
            self.fx.written_paths.add(p)
            self._note_pattern(p)

    def tree(self, p: str | None) -> None:
        if p and not _is_pseudo(p):
            self.fx.written_trees.add(p)
            self._note_pattern(p)
            if p == "/":
                self.opaque("may write anywhere below /")
            for k, c in self.fx.claims.items():  # what lands below may replace them
                if c.precision == C.EXACT and (k == p or _under_tree(k, p)):
                    self.fx.claims[k] = c.weakened("tree")

    def modify_tree(self, p: str | None) -> None:
        if p and not _is_pseudo(p):
            self.fx.modified_trees.add(p)
            self._note_pattern(p)

    def delete(self, p: str | None) -> None:
        if p and not _is_pseudo(p):
            self.fx.deleted_paths.add(p)
            self.write(p)
            self.claim(p, C.ABSENT)
            if not has_glob(p):  # `rm -r D`: nothing made below D earlier survives
                for k in [k for k in self.fx.claims if _under_tree(k, p)]:
                    self.fx.claims[k] = Claim(path=k, produces=C.ABSENT, command=self.current, conditional=self.cond)

    def manager(self, name: str) -> None:
        self.fx.package_managers.add(name)

    def packages(self, manager: str, names: Iterable[str], *, removed: bool = False) -> None:
        names = [n for n in names if n]
        targets = [self.fx.packages] + ([self.fx.removed_packages] if removed else [])
        for table in targets if names else []:
            got = table.setdefault(manager, [])
            for n in names:
                if n not in got:
                    got.append(n)

    # --- reading words ---

    def expand(self, word: str) -> tuple[str, bool]:
        """`word` with known variables substituted; unknown parts become `*`.

        The flag says the word *starts* with something unknown, so it cannot be pinned
        to a place in the tree (`$DIR/x` could be anywhere).
        """
        text = _expand(word, self.vars, self.cwd)
        return text.replace(_UNKNOWN, "*"), text.startswith(_UNKNOWN)

    def path(self, word: str, *, writing: bool = True) -> str | None:
        """Resolve an argument that names a file; None when it cannot be placed."""
        text, unknown_start = self.expand(word)
        if not text or text == "-":
            return None
        if unknown_start:
            if writing:
                self.opaque(f"path {_short(word)} depends on a value not known from the text")
            return None
        if text == "~" or text.startswith("~/"):
            text = HOME + text[1:]
        if not text.startswith("/") and self.cwd is None:
            if writing:
                self.opaque(f"relative path {_short(word)} under an unknown directory")
            return None
        p = norm_path(text, self.cwd or "/")
        self.name(p)
        return p

    def name(self, p: str) -> None:
        if not _is_pseudo(p):
            self.fx.named_paths.add(p)
            self._note_pattern(p)

    def cwd_path(self) -> str | None:
        if self.cwd is None:
            self.opaque("works in a directory not known from the text")
        return self.cwd

    def is_dir(self, p: str | None) -> bool:
        return p is not None and (p in self.dirs or p == self.cwd)


def _is_pseudo(p: str) -> bool:
    return any(p == d or p.startswith(d + "/") for d in _PSEUDO_FS)


def _short(s: str, n: int = 60) -> str:
    s = s.replace("\n", " ")
    return repr(s if len(s) <= n else s[: n - 3] + "...")


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\+?=(.*)", re.DOTALL)


def _expand(word: str, env: dict[str, str | None], cwd: str | None) -> str:
    """Parameter expansion for the forms that occur in RUN lines; unknown -> _UNKNOWN."""
    out, i, n = [], 0, len(word)
    while i < n:
        c = word[i]
        if c == "`":
            end = word.find("`", i + 1)
            end = n if end < 0 else end
            out.append(_substitution(word[i + 1 : end], cwd))
            i = end + 1
        elif c == "$" and i + 1 < n:
            value, i = _expand_dollar(word, i, env, cwd)
            out.append(value)
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _expand_dollar(word: str, i: int, env: dict[str, str | None], cwd: str | None) -> tuple[str, int]:
    nxt = word[i + 1]
    if nxt == "(":
        end = _balanced(word, i + 1)
        inner = word[i + 2 : end - 1]
        return (_UNKNOWN if inner.startswith("(") else _substitution(inner, cwd)), end
    if nxt == "{":
        end = _balanced(word, i + 1)
        return _expand_braced(word[i + 2 : end - 1], env, cwd), end
    m = _NAME_RE.match(word, i + 1)
    if m:
        value = env.get(m.group())
        return (_UNKNOWN if value is None else value), m.end()
    if nxt in "0123456789@*#?$!-":
        return _UNKNOWN, i + 2
    return "$", i + 1


def _expand_braced(body: str, env: dict[str, str | None], cwd: str | None) -> str:
    m = _NAME_RE.match(body)
    if not m:
        return _UNKNOWN
    value, rest = env.get(m.group()), body[m.end() :]
    if not rest:
        return _UNKNOWN if value is None else value
    for op in (":-", "-", ":=", "="):  # defaults: the common `${VAR:-/usr/local}`
        if rest.startswith(op):
            if value is not None and (value or ":" not in op):
                return value
            return _expand(rest[len(op) :], env, cwd)
    return _UNKNOWN  # ${VAR##*/}, ${VAR%.*}, ...: not worth evaluating


def _substitution(inner: str, cwd: str | None) -> str:
    """Value of `$(inner)`: only `mktemp` is predictable enough to keep as a pattern."""
    words = split_words(inner)
    if words and posixpath.basename(words[0]) == "mktemp":
        return _mktemp_pattern(words[1:], cwd)
    return _UNKNOWN


def _mktemp_pattern(args: list[str], cwd: str | None) -> str:
    o = parse_opts(args, "p", {"--tmpdir", "--suffix"})
    tmpdir = o.get("-p", "--tmpdir") or "/tmp"
    template = o.pos[0] if o.pos else None
    if template is None:
        return norm_path("tmp.*", tmpdir)
    pattern = re.sub(r"X{3,}", "*", template)
    if "/" in pattern or o.has("-p", "--tmpdir", "-t"):
        return norm_path(pattern, tmpdir)
    return norm_path(pattern, cwd or "/tmp")


# --------------------------------------------------------------------------- options


@dataclass
class Opts:
    flags: set[str]
    values: dict[str, list[str]]
    pos: list[str]

    def has(self, *names: str) -> bool:
        return any(n in self.flags or n in self.values for n in names)

    def get(self, *names: str) -> str | None:
        for n in names:
            if self.values.get(n):
                return self.values[n][-1]
        return None

    def all(self, *names: str) -> list[str]:
        return [v for n in names for v in self.values.get(n, [])]


def parse_opts(
    args: list[str], short_values: str = "", long_values: Iterable[str] | str = (), *, stop_at_pos: bool = False
) -> Opts:
    """getopt-style parse: `-abc` clusters, `-ovalue`/`-o value`, `--long[=value]`, `--`.

    `short_values`/`long_values` (a set, or one blank-separated string) name the
    options that take a value; everything else
    starting with `-` is a flag. `stop_at_pos` ends option parsing at the first operand
    (for wrappers like `sudo cmd -x`, where `-x` belongs to `cmd`).
    """
    long_values = set(long_values.split() if isinstance(long_values, str) else long_values)
    flags: set[str] = set()
    values: dict[str, list[str]] = {}
    pos: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            pos.extend(args[i + 1 :])
            break
        if a.startswith("--"):
            name, eq, val = a.partition("=")
            if eq:
                values.setdefault(name, []).append(val)
            elif name in long_values and i + 1 < len(args):
                values.setdefault(name, []).append(args[i + 1])
                i += 1
            else:
                flags.add(name)
        elif a.startswith("-") and len(a) > 1:
            for j, ch in enumerate(a[1:], 1):
                if ch in short_values:
                    val = a[j + 1 :]
                    if not val and i + 1 < len(args):
                        i += 1
                        val = args[i]
                    values.setdefault("-" + ch, []).append(val)
                    break
                flags.add("-" + ch)
        else:
            pos.append(a)
            if stop_at_pos:
                pos.extend(args[i + 1 :])
                break
        i += 1
    return Opts(flags, values, pos)


# --------------------------------------------------------------------------- commands


@dataclass
class _Simple:
    words: list[str] = field(default_factory=list)
    redirects: list[tuple[str, str]] = field(default_factory=list)  # (operator, target)
    heredocs: list[str] = field(default_factory=list)
    piped_in: bool = False
    literal: list[bool] = field(default_factory=list)  # per word: Tok.literal
    redirect_stdout: list[bool] = field(default_factory=list)  # per redirect: it is stdout (no fd or 1)
    heredoc_literal: list[bool] = field(default_factory=list)
    piped_out: bool = False  # its stdout feeds the next command
    # Runs only sometimes or several times (if/case/loop bodies, either side of `||`):
    # what it writes is a possibility, not a fact.
    cond: bool = False

    def literal_words(self, words: list[str]) -> list[bool] | None:
        """Tok.literal for `words` when they are the tail of this command's words."""
        n = len(words)
        if n and self.words[-n:] == words:
            return self.literal[len(self.words) - n :]
        return None


# Words that open or close compound commands; the command proper follows them.
KEYWORDS = frozenset("if then else elif fi do done while until ! { } esac time".split())


def _simple_commands(toks: list[Tok]) -> list[_Simple]:
    """Group tokens into simple commands; `case` patterns are dropped."""
    cmds, cur = [], _Simple()
    in_pattern = False  # inside `case`, before a pattern's `)`
    in_case = 0  # open `case` bodies: what runs there is conditional
    i = 0
    while i < len(toks):
        t = toks[i]
        i += 1
        if in_pattern:
            if t.op and t.text == ")":
                in_pattern = False
            elif not t.op and t.text == "esac":
                in_pattern = False
                in_case = max(0, in_case - 1)
            continue
        if not t.op:
            if cur.words == [] and not cur.redirects and t.text == "esac":
                in_case = max(0, in_case - 1)
                continue
            cur.words.append(t.text)
            cur.literal.append(t.literal)
            if len(cur.words) == 3 and cur.words[0] == "case" and t.text == "in":
                in_case += 1
                cur, in_pattern = _Simple(cond=True), True
            continue
        if t.text in REDIRECT_OPS:
            target = ""
            if i < len(toks) and not toks[i].op:
                target = toks[i].text
                i += 1
            cur.redirects.append((t.text, target))
            cur.redirect_stdout.append(t.literal)
            if t.heredoc is not None:
                cur.heredocs.append(t.heredoc)
                cur.heredoc_literal.append(t.heredoc_literal)
            continue
        cur.piped_out = t.text in ("|", "|&")
        after_or = t.text == "||"
        if after_or:
            cur.cond = True
        cmds.append(cur)
        cur = _Simple(piped_in=t.text in ("|", "|&"), cond=after_or or in_case > 0)
        if t.text in (";;", ";&", ";;&"):
            in_pattern = True
    cmds.append(cur)
    out = [c for c in cmds if c.words or c.redirects or c.heredocs]
    _mark_conditional(out)
    return out


_OPENS = frozenset({"if", "while", "until", "for", "select", "case"})
_CLOSES = frozenset({"fi", "done", "esac"})


def _mark_conditional(cmds: list[_Simple]) -> None:
    """Commands inside if/while/until/for/case run sometimes, or many times."""
    depth = 0
    for c in cmds:
        opened = False
        for w in c.words:
            if w in _OPENS:
                depth += 1
                opened = True
            elif w in _CLOSES:
                depth = max(0, depth - 1)
            elif w not in KEYWORDS:
                break
        if depth or opened:
            c.cond = True


def _run_script(ctx: _Ctx, text: str) -> None:
    if ctx.depth > MAX_DEPTH:
        ctx.opaque("shell nesting too deep to follow")
        return
    ctx.depth += 1
    try:
        for cmd in _simple_commands(tokenize(text)):
            ctx.commands += 1
            if ctx.commands > MAX_COMMANDS:
                ctx.opaque(f"more than {MAX_COMMANDS} commands; the rest is not read")
                break
            _run_simple(ctx, cmd)
    finally:
        ctx.depth -= 1


def _run_simple(ctx: _Ctx, cmd: _Simple) -> None:
    ctx.stdin_roots = ctx.find_roots if cmd.piped_in else None
    ctx.find_roots = None
    ctx.stdin = ctx.output if cmd.piped_in else None
    ctx.output = None
    ctx.cond = cmd.cond or ctx.depth > 1 and ctx.cond
    ctx.current = _short(" ".join(cmd.words + [f"{o} {t}" for o, t in cmd.redirects]), 120).strip("'\"")
    ctx.opaque_now = False
    mentions = _note_mentions(ctx, cmd.words)
    words = _strip_prefix_words(ctx, cmd.words)
    if not words:
        for op, target, out in zip(*_redirect_parts(cmd)):
            _redirect(ctx, op, target, out, None)
        for body in cmd.heredocs:  # BuildKit `RUN <<EOF` keeps the script in a heredoc
            _run_script(ctx, body)
        return
    output = _literal_output(ctx, words, cmd)
    for op, target, out in zip(*_redirect_parts(cmd)):
        _redirect(ctx, op, target, out, output)
    _dispatch(ctx, words, cmd)
    if ctx.opaque_now:
        # A program we do not model may write the paths it is given: explained, never verified.
        ctx.fx.opaque_paths |= mentions
    ctx.output = output if cmd.piped_out else None


def _redirect_parts(cmd: _Simple) -> tuple[list[str], list[str], list[bool]]:
    outs = cmd.redirect_stdout if len(cmd.redirect_stdout) == len(cmd.redirects) else [True] * len(cmd.redirects)
    return [o for o, _ in cmd.redirects], [t for _, t in cmd.redirects], outs


def _redirect(ctx: _Ctx, op: str, target: str, stdout: bool = True, output: bytes | None = None) -> None:
    if op in ("<<", "<<-", "<<<"):
        return  # the target is a delimiter or literal text
    if op in (">&", "<&") and (target.isdigit() or target == "-"):
        return  # descriptor duplication, not a file
    p = ctx.path(target, writing=op in WRITE_REDIRECTS)
    if op in WRITE_REDIRECTS:
        ctx.write(p)
        known = output if stdout and op in (">", ">|", ">>") else None
        if op in (">>", "&>>"):
            ctx.claim(p, C.FILE, append=known)
        elif op == "<>":
            ctx.claim(p, C.FILE)
        else:
            ctx.claim(p, C.FILE, content=known)


# --- the literal bytes a command prints ---


def _literal_output(ctx: _Ctx, words: list[str], cmd: _Simple) -> bytes | None:
    """What `echo`, `printf` or `cat <<EOF` write to stdout, when the text fixes it."""
    name = posixpath.basename(words[0])
    lit = cmd.literal_words(words)
    if lit is None or not all(lit[1:]):
        return None
    args = words[1:]
    try:
        if name == "echo":
            return _echo(args)
        if name == "printf":
            return _printf(args[0], args[1:]) if args else None
        if name == "cat" and not args and cmd.heredocs:
            if len(cmd.heredocs) == 1 and (
                cmd.heredoc_literal[:1] == [True] or not _HEREDOC_EXPANDS.search(cmd.heredocs[0])
            ):
                return cmd.heredocs[0].encode("utf-8", "surrogateescape")
            return None
        if name == "cat" and not args and ctx.stdin is not None:
            return ctx.stdin
    except (ValueError, UnicodeError):
        return None
    return None


_HEREDOC_EXPANDS = re.compile(r"[$`\\]")


def _echo(args: list[str]) -> bytes | None:
    """POSIX sh echo. dash expands backslash escapes and prints `-e`; bash does neither
    without `-e`: text with a backslash, or an -e/-E option, is not predictable."""
    newline = True
    while args and args[0] == "-n":
        newline, args = False, args[1:]
    if args and re.fullmatch(r"-[neE]+", args[0]):
        return None
    text = " ".join(args)
    if "\\" in text:
        return None
    return (text + ("\n" if newline else "")).encode("utf-8", "surrogateescape")


_PRINTF_ESC = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "\\": "\\",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    '"': '"',
    "'": "'",
}


def _printf(fmt: str, args: list[str]) -> bytes | None:
    """POSIX printf for %s, %d, %% and backslash escapes; the format is reused while
    arguments remain. Anything else (widths, %b, %x ...) is not predicted."""
    out: list[str] = []
    ai = 0
    for _round in range(1 + len(args)):
        used = False
        i, n = 0, len(fmt)
        while i < n:
            c = fmt[i]
            if c == "\\" and i + 1 < n:
                e = fmt[i + 1]
                if e in _PRINTF_ESC:
                    out.append(_PRINTF_ESC[e])
                    i += 2
                elif e in "01234567":
                    m = re.match(r"[0-7]{1,3}", fmt[i + 1 : i + 5] if e == "0" else fmt[i + 1 : i + 4])
                    digits = m.group(0) if m else e  # e is an octal digit: always a match
                    out.append(chr(int(digits, 8)))
                    i += 1 + len(digits)
                else:
                    return None
            elif c == "%":
                spec = fmt[i + 1 : i + 2]
                if spec == "%":
                    out.append("%")
                elif spec in ("s", "d"):
                    arg = args[ai] if ai < len(args) else ""
                    ai += 1
                    used = True
                    if spec == "d":
                        arg = str(int(arg or "0", 0))
                    out.append(arg)
                else:
                    return None
                i += 2
            else:
                out.append(c)
                i += 1
        if not used or ai >= len(args):
            break
    return "".join(out).encode("utf-8", "surrogateescape")


_SEP_IN_WORD = re.compile(r"[\s^\\|;<>(){}\"'`,]")


def _note_mentions(ctx: _Ctx, words: list[str]) -> set[str]:
    """Record every absolute path a word names: `/x`, `--opt=/x`, `K=/x:/y`."""
    found: set[str] = set()
    for w in words:
        text, unknown_start = ctx.expand(w)
        if unknown_start:
            continue
        candidates = [text]
        if "=" in text and not text.startswith("/"):
            candidates = text.split("=", 1)[1].split(":")
        for c in candidates:
            if c.startswith("/") and not c.startswith("//") and not _SEP_IN_WORD.search(c):
                ctx.name(norm_path(c))
                found.add(norm_path(c))
    return found


def _strip_prefix_words(ctx: _Ctx, words: list[str]) -> list[str]:
    """Drop compound-command keywords and leading `VAR=value` assignments (recording them)."""
    i = 0
    while i < len(words):
        w = words[i]
        if w in KEYWORDS:
            i += 1
            continue
        m = _ASSIGN_RE.fullmatch(w)
        if m:
            _assign(ctx, m.group(1), m.group(2))
            i += 1
            continue
        break
    return words[i:]


def _assign(ctx: _Ctx, name: str, raw_value: str) -> None:
    text = _expand(raw_value, ctx.vars, ctx.cwd)
    ctx.vars[name] = text.replace(_UNKNOWN, "*") if _UNKNOWN not in text or text.startswith("/") else None


def _dispatch(ctx: _Ctx, words: list[str], cmd: _Simple) -> None:
    word0, unknown_start = ctx.expand(words[0])
    if unknown_start:
        ctx.opaque(f"runs a command not known from the text ({_short(words[0])})")
        return
    name = posixpath.basename(word0)
    if "/" in word0 and not word0.startswith("/"):
        # `./configure`, `bin/setup`: a program from the build context, whatever its name.
        ctx.opaque(f"runs a local program {_short(word0)}")
        return
    handler = _HANDLERS.get(name) or _pattern_handler(name)
    if handler is not None:
        handler(ctx, word0, words[1:], cmd)
    elif name in NO_WRITE or (words[1:] and set(words[1:]) <= VERSION_PROBES):
        pass
    elif name.endswith((".sh", ".bash", ".py", ".pl", ".rb")):
        ctx.opaque(f"runs a script {_short(word0)}")
    else:
        ctx.opaque(f"runs {_short(name)}, whose effects are not modelled")


Handler = Callable[[_Ctx, str, list[str], _Simple], None]
_HANDLERS: dict[str, Handler] = {}


def _handles(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for n in names:
            _HANDLERS[n] = fn
        return fn

    return register


def _pattern_handler(name: str) -> Handler | None:
    if re.fullmatch(r"pip[0-9.]*", name):
        return _h_pip
    if re.fullmatch(r"python[0-9.]*", name):
        return _h_python
    return None


# `tool --version` after an install is a check, not a write.
VERSION_PROBES = frozenset({"--version", "-v", "-V", "-version", "version", "--help", "-h"})

# Commands that do not write files (beyond stdout); their path arguments are only named.
NO_WRITE = frozenset("""
    echo printf true false test [ [[ : cat grep egrep fgrep zgrep rg awk gawk mawk nawk head tail wc
    cut tr sort uniq ls stat file id whoami which type hash uname date sleep printenv pwd
    basename dirname readlink realpath seq expr exit return set unset shopt trap wait alias
    getent nproc md5sum sha1sum sha224sum sha256sum sha384sum sha512sum b2sum cksum diff cmp
    ps whereis locale tput yes break continue ulimit umask jq yq base64 od hexdump xxd less more
    ldd strings nm readelf objdump getconf arch dpkg-architecture lsb_release paste join comm
    column fold fmt nl rev tac envsubst numfmt dpkg-query apt-cache apt-config command-not-found
    du df free uptime hostname tty logger getopt getopts let lscpu lsblk dmesg shift rpmquery
    sysctl gpgconf gpg-agent
""".split())  # fmt: skip


# --- shell builtins that change the walk's state ---


@_handles("cd", "pushd")
def _h_cd(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    operands = [a for a in args if not a.startswith("-") or a == "-"]
    if not operands:
        ctx.cwd = HOME
        return
    if operands[0] == "-":
        ctx.cwd = None
        return
    p = ctx.path(operands[0], writing=False)
    ctx.cwd = p
    if p:
        ctx.dirs.add(p)


@_handles("popd")
def _h_popd(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    ctx.cwd = None  # the stack is not tracked


@_handles("export", "declare", "typeset", "local", "readonly")
def _h_export(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    for a in args:
        m = _ASSIGN_RE.fullmatch(a)
        if m:
            _assign(ctx, m.group(1), m.group(2))


@_handles("read", "mapfile", "readarray")
def _h_read(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    for a in args:
        if _NAME_RE.fullmatch(a):
            ctx.vars[a] = None


@_handles("for", "select")
def _h_for(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    if args and _NAME_RE.fullmatch(args[0]):
        ctx.vars[args[0]] = None  # takes each list value in turn: not one known value


@_handles("case")
def _h_case(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    pass  # `case x in` split across lines: patterns are skipped by the grouping


# --- wrappers: run another command ---


def _run_words(ctx: _Ctx, words: list[str], cmd: _Simple) -> None:
    words = _strip_prefix_words(ctx, words)
    if words:
        _dispatch(ctx, words, cmd)


@_handles("sudo")
def _h_sudo(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(args, "ugChpUrtDRT", "--user --group --host --prompt --chdir", stop_at_pos=True)
    _run_words(ctx, o.pos, cmd)


@_handles("env")
def _h_env(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(args, "uCS", {"--unset", "--chdir", "--split-string"}, stop_at_pos=True)
    if o.get("-S", "--split-string"):
        ctx.opaque("env -S command line")
    _run_words(ctx, o.pos, cmd)


# Commands that run their operands as a command, with their options that take a value.
_WRAPPERS: dict[str, tuple[str, str]] = {
    "exec": ("a", ""),
    "nohup": ("", ""),
    "command": ("", ""),
    "builtin": ("", ""),
    "setsid": ("", ""),
    "fakeroot": ("ilsb", "--lib --faked --unknown-is-real"),
    "unbuffer": ("", ""),
    "chronic": ("", ""),
    "stdbuf": ("ioe", "--input --output --error"),
    "nice": ("n", "--adjustment"),
    "ionice": ("cnpPu", "--class --classdata --pid --pgid --uid"),
    "timeout": ("sk", "--signal --kill-after"),
    "tini": ("spe", ""),
    "dumb-init": ("r", "--rewrite"),
}


@_handles(*_WRAPPERS)
def _h_wrapper(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    name = posixpath.basename(word0)
    if name == "command" and args[:1] and args[0] in ("-v", "-V"):
        return  # `command -v x` only looks x up
    short, long = _WRAPPERS[name]
    rest = parse_opts(args, short, long, stop_at_pos=True).pos
    if name == "timeout" and rest:
        rest = rest[1:]  # the duration
    _run_words(ctx, rest, cmd)


@_handles("gosu", "su-exec", "chpst", "setpriv", "s6-setuidgid")
def _h_as_user(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    _run_words(ctx, args[1:], cmd)  # first operand is the user


@_handles("runuser")
def _h_runuser(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(args, "ugc", {"--user", "--group", "--command"}, stop_at_pos=True)
    if o.get("-c", "--command"):
        _run_script(ctx, o.get("-c", "--command") or "")
    else:
        _run_words(ctx, o.pos, cmd)


@_handles("su")
def _h_su(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(args, "csg", {"--command", "--shell", "--group"})
    script = o.get("-c", "--command")
    if script is None:
        ctx.opaque("su without -c runs a login shell")
    else:
        _run_script(ctx, script)


@_handles("xargs")
def _h_xargs(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(
        args,
        "ILnPsdEa",
        ("--replace --max-lines --max-args --max-procs --delimiter --eof --arg-file --max-chars"),
        stop_at_pos=True,
    )
    inner = o.pos or ["echo"]
    if ctx.stdin_roots:  # `find ROOT ... | xargs cmd`: cmd gets paths below ROOT
        _run_words(ctx, inner + [r.rstrip("/") + "/*" for r in ctx.stdin_roots], cmd)
        return
    name = posixpath.basename(inner[0])
    if name not in NO_WRITE:
        ctx.opaque(f"xargs {_short(name)} on input not known from the text")
    _run_words(ctx, inner, cmd)


@_handles("busybox")
def _h_busybox(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    if args[:1] == ["--install"]:
        dirs = [a for a in args[1:] if not a.startswith("-")]
        for d in dirs or ["/bin", "/sbin", "/usr/bin", "/usr/sbin"]:
            ctx.tree(ctx.path(d))  # one link per applet
        return
    _run_words(ctx, args, cmd)  # `busybox mkdir ...` is the applet


SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "hush"})


@_handles(*SHELLS)
def _h_shell(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--") or a in ("-", "+"):
            i += 1  # --login, --norc, --posix, --
            continue
        if a.startswith(("-", "+")):
            if "c" in a[1:]:
                if i + 1 < len(args):
                    _run_script(ctx, args[i + 1])
                return
            i += 2 if a[-1] in "oO" else 1  # `-o pipefail`, `-eo pipefail`
            continue
        ctx.opaque(f"runs a script {_short(a)}")
        return
    if cmd.heredocs:
        for body in cmd.heredocs:
            _run_script(ctx, body)
    else:
        ctx.opaque("shell reads commands from stdin (e.g. `curl ... | sh`)")


@_handles("eval")
def _h_eval(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    text = _expand(" ".join(args), ctx.vars, ctx.cwd)
    if _UNKNOWN in text or not text.strip():
        ctx.opaque("eval of text not known from the command")
    else:
        _run_script(ctx, text)


@_handles(".", "source")
def _h_source(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    ctx.opaque(f"sources {_short(args[0]) if args else 'a script'}")


# --- file operations ---


@_handles("mkdir")
def _h_mkdir(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    for a in parse_opts(args, "mZ", {"--mode", "--context"}).pos:
        p = ctx.path(a)
        ctx.write(p)
        ctx.claim(p, C.DIR)
        if p:
            ctx.dirs.add(p)


# Commands whose operands are files they create or modify in place, with the
# options of each that take a value (so the value is not taken for a file).
_MODIFIERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "touch": ("drt", ("--date", "--reference", "--time")),
    "mkfifo": ("mZ", ("--mode", "--context")),
    "truncate": ("sr", ("--size", "--reference")),
    "shred": ("ns", ("--iterations", "--size", "--random-source")),
    "fallocate": ("lon", ("--length", "--offset")),
    "chattr": ("pv", ()),
    "setfattr": ("nvx", ("--name", "--value", "--remove")),
    "strip": ("oRKN", ("--output", "--remove-section", "--keep-symbol", "--strip-symbol")),
    "upx": ("o", ("--output",)),
}


# What each modifier makes of its operand (the others: a write of unknown effect).
_MODIFIER_CLAIMS = {
    "touch": C.TOUCH,
    "chattr": C.META,
    "setfattr": C.META,
    "strip": C.EDIT,
    "upx": C.EDIT,
    "shred": C.EDIT,
    "truncate": C.FILE,
}


@_handles(*_MODIFIERS)
def _h_modify(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    name = posixpath.basename(word0)
    short, long = _MODIFIERS[name]
    o = parse_opts(args, short, long)
    operands = o.pos
    if name == "chattr" and operands and operands[0][:1] in "+-=":
        operands = operands[1:]  # the attribute spec
    produces = _MODIFIER_CLAIMS.get(name)
    outputs = o.all("-o", "--output") if name in ("strip", "upx") else []
    for a in operands:
        p = ctx.path(a)
        ctx.write(p)
        if produces and not outputs:
            ctx.claim(p, produces)
    for out in outputs:
        ctx.write(ctx.path(out))
        ctx.claim(ctx.path(out), C.FILE)
    if name == "shred" and o.has("-u", "--remove"):
        for a in operands:
            ctx.delete(ctx.path(a))


@_handles("mknod")
def _h_mknod(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(args, "mZ", {"--mode", "--context"})
    if o.pos:
        ctx.write(ctx.path(o.pos[0]))


@_handles("rm", "rmdir", "unlink")
def _h_rm(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    for a in parse_opts(args).pos:
        ctx.delete(ctx.path(a))


@_handles("cp", "mv", "install", "rsync")
def _h_copy(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    name = posixpath.basename(word0)
    if name == "install":
        o = parse_opts(args, "mogSt", {"--mode", "--owner", "--group", "--suffix", "--target-directory"})
        if o.has("-d", "--directory"):
            return _h_mkdir(ctx, word0, o.pos, cmd)
        return _copy_into(ctx, o, recursive=False, move=False, meta=True)  # install sets mode and owner
    elif name == "rsync":
        o = parse_opts(args, "eBfT", "--rsh --exclude --include --filter --chown --chmod --temp-dir")
        o.pos = [a for a in o.pos if ":" not in a.split("/", 1)[0]]  # drop remote host:path
        recursive = True
    else:
        o = parse_opts(args, "tS", {"--target-directory", "--suffix"})
        recursive = name == "mv" or o.has("-r", "-R", "-a", "--recursive", "--archive")
    _copy_into(ctx, o, recursive=recursive, move=name == "mv")


def _copy_into(ctx: _Ctx, o: Opts, *, recursive: bool, move: bool, meta: bool = False) -> None:
    """cp/mv/install/rsync: the destination, and dest/basename(src) when dest is a directory."""
    target_dir = o.get("-t", "--target-directory")
    if target_dir is not None:
        dest_word, sources, into_dir = target_dir, o.pos, True
    elif len(o.pos) >= 2:
        dest_word, sources = o.pos[-1], o.pos[:-1]
        into_dir = len(sources) > 1 or dest_word.endswith("/") or dest_word in (".", "..")
    else:
        return
    dest = ctx.path(dest_word)
    if dest is None:
        return
    if o.has("-T", "--no-target-directory"):
        into_dir = False
    known_dir = ctx.is_dir(dest)
    ctx.write(dest)
    if recursive and not known_dir and len(sources) == 1 and target_dir is None:
        ctx.tree(dest)  # `cp -r src /app/`: /app/src if /app exists, else /app itself
    into_dir = into_dir or known_dir
    for s in sources:
        src = ctx.path(s, writing=move)
        if into_dir:
            base = posixpath.basename(src) if src else posixpath.basename(ctx.expand(s)[0].rstrip("/"))
            target = dest if base in ("", ".", "..", "/") else norm_path(base, dest)
            ctx.tree(target) if recursive else ctx.write(target)
        else:
            target = dest
        if not recursive or move:
            # One file: it holds what the source held (mv: before this step; the source
            # may be a directory, which `judge` takes as a tree). `cp x DIR` with DIR
            # not known from the text lands in DIR/x: the claim is re-read there.
            src_claim = ctx.fx.claims.get(src) if src else None
            if src_claim is not None and src_claim.produces == C.FILE and src_claim.content is not None:
                ctx.claim(target, C.FILE, content=src_claim.content, meta=meta)
            elif src and not has_glob(src) and (src_claim is None or move):
                ctx.claim(target, C.FILE, source=src, source_below=move, meta=meta)
            else:
                ctx.claim(target, C.FILE, meta=meta)
        if move:
            ctx.delete(src)


@_handles("ln", "link")
def _h_ln(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(args, "tS", {"--target-directory", "--suffix"})
    target_dir = o.get("-t", "--target-directory")
    if target_dir is not None:
        dest_word, sources = target_dir, o.pos
    elif len(o.pos) == 1:
        dest_word, sources = ".", o.pos  # `ln -s /x` links into the current directory
    elif o.pos:
        dest_word, sources = o.pos[-1], o.pos[:-1]
    else:
        return
    dest = ctx.path(dest_word)
    if dest is None:
        return
    ctx.write(dest)
    into_dir = (
        target_dir is not None or len(sources) > 1 or dest_word.endswith(("/", "/.")) or dest_word in (".", "..")
    ) or ctx.is_dir(dest)
    symbolic = o.has("-s", "--symbolic")
    if not into_dir or o.has("-T", "--no-target-directory"):
        if len(sources) == 1:
            _link_claim(ctx, sources[0], dest, symbolic)
        return
    # A symlink's own target is relative to the link, not to cwd: only its basename
    # matters here (absolute targets are named by _note_mentions).
    for s in sources:
        base = posixpath.basename(ctx.expand(s)[0].rstrip("/"))
        if base not in ("", ".", ".."):
            ctx.write(norm_path(base, dest))
            _link_claim(ctx, s, norm_path(base, dest), symbolic)


def _link_claim(ctx: _Ctx, source_word: str, link: str, symbolic: bool) -> None:
    """`ln -s T L`: L is a symlink whose text is T as written; `ln T L`: L has T's content."""
    target, unknown = ctx.expand(source_word)
    known = _UNKNOWN not in _expand(source_word, ctx.vars, ctx.cwd) and not unknown
    if symbolic:
        ctx.claim(link, C.SYMLINK, link=target if known else None)
    else:
        src = ctx.path(source_word, writing=False) if known else None
        ctx.claim(link, C.FILE, source=src)


_CHMOD_MODE = re.compile(r"[0-7]{1,4}|[ugoa]*[-+=][rwxXstugo]*(?:,[ugoa]*[-+=][rwxXstugo]*)*")


@_handles("chmod", "chown", "chgrp", "setfacl", "chcon")
def _h_chmod(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    """Metadata changes: the operands change (all below them with -R)."""
    name = posixpath.basename(word0)
    has_spec = not any(a.startswith("--reference") for a in args) and name != "setfacl"
    spec_seen, recursive, operands = not has_spec, False, []
    i = 0
    while i < len(args):
        a = args[i]
        if not spec_seen and name == "chmod" and _CHMOD_MODE.fullmatch(a):
            spec_seen = True  # `chmod -x f`: a mode, not an option
        elif a.startswith("--"):
            recursive = recursive or a == "--recursive"
        elif a.startswith("-") and len(a) > 1:
            recursive = recursive or "R" in a
            if name == "setfacl" and a[-1] in "mxMX":
                i += 1  # the ACL spec
        elif not spec_seen:
            spec_seen = True
        else:
            operands.append(a)
        i += 1
    for a in operands:
        p = ctx.path(a)
        ctx.write(p)
        ctx.claim(p, C.META)
        if recursive:
            ctx.modify_tree(p)


@_handles("setcap")
def _h_setcap(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(args, "n")
    files = o.pos if o.has("-r") else o.pos[1::2]
    for a in files:
        ctx.write(ctx.path(a))
        ctx.claim(ctx.path(a, writing=False), C.META)


@_handles("tee")
def _h_tee(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(args, "", {"--output-error"})
    data = ctx.stdin
    if (
        data is None
        and cmd.heredocs
        and (cmd.heredoc_literal[:1] == [True] or not _HEREDOC_EXPANDS.search(cmd.heredocs[0]))
    ):
        data = cmd.heredocs[0].encode("utf-8", "surrogateescape")
    append = o.has("-a", "--append")
    for a in o.pos:
        p = ctx.path(a)
        ctx.write(p)
        if data is None:
            ctx.claim(p, C.FILE)
        elif append:
            ctx.claim(p, C.FILE, append=data)
        else:
            ctx.claim(p, C.FILE, content=data)
    ctx.output = data


@_handles("dd")
def _h_dd(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    for a in args:
        if a.startswith("of="):
            ctx.write(ctx.path(a[3:]))
            ctx.claim(ctx.path(a[3:], writing=False), C.FILE)


@_handles("sed")
def _h_sed(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    in_place, files = _inplace_editor_files(args, script_opts="ef", long_script=("--expression", "--file"))
    for f in files:
        p = ctx.path(f, writing=in_place)
        if in_place:
            ctx.write(p)
            ctx.claim(p, C.EDIT)


@_handles("perl")
def _h_perl(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    has_e = any(a.startswith("-") and not a.startswith("--") and ("e" in a[1:] or "E" in a[1:]) for a in args)
    in_place, files = _inplace_editor_files(args, script_opts="eE", long_script=())
    if not (in_place and has_e):
        ctx.opaque("runs a perl program")
        return
    for f in files:
        ctx.write(ctx.path(f))
        ctx.claim(ctx.path(f, writing=False), C.EDIT)


def _inplace_editor_files(args: list[str], script_opts: str, long_script: tuple[str, ...]) -> tuple[bool, list[str]]:
    """For sed/perl: whether -i (in place) is given, and the file operands.

    In a cluster, `i` takes the rest as a backup suffix (`-i.bak`, and the classic trap
    `-ie`), and a script option takes the rest or the next word.
    """
    in_place, script_given, files = False, False, []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            files.extend(args[i + 1 :])
            break
        if a.startswith("--"):
            if a.startswith("--in-place"):
                in_place = True
            elif a.startswith(long_script):
                script_given = True
                i += "=" not in a
        elif a.startswith("-") and len(a) > 1:
            for j, ch in enumerate(a[1:], 1):
                if ch == "i":
                    in_place = True
                    break
                if ch in script_opts:
                    script_given = True
                    i += j == len(a) - 1
                    break
        elif not script_given:
            script_given = True  # the first operand is the script
        else:
            files.append(a)
        i += 1
    return in_place, files


_COMPRESSORS = {
    "gzip": ".gz", "gunzip": ".gz", "pigz": ".gz", "xz": ".xz", "unxz": ".xz", "bzip2": ".bz2",
    "bunzip2": ".bz2", "zstd": ".zst", "unzstd": ".zst", "lzma": ".lzma", "unlzma": ".lzma",
}  # fmt: skip


@_handles(*_COMPRESSORS)
def _h_compress(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    name = posixpath.basename(word0)
    o = parse_opts(args, "S", {"--suffix"})
    if o.has("-c", "--stdout", "-l", "--list", "-t", "--test") or not o.pos:
        return
    suffix = o.get("-S", "--suffix") or _COMPRESSORS[name]
    unpack = name.startswith("un") or name == "gunzip" or o.has("-d", "--decompress")
    for a in o.pos:
        p = ctx.path(a)
        if p is None:
            continue
        out = (p[: -len(suffix)] if p.endswith(suffix) else p) if unpack else p + suffix
        ctx.write(out)
        ctx.claim(out, C.FILE)
        if not o.has("-k", "--keep"):
            ctx.delete(p)


@_handles("mktemp")
def _h_mktemp(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    if "-u" not in args and "--dry-run" not in args:
        ctx.write(_mktemp_pattern(args, ctx.cwd))


@_handles("find")
def _h_find(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    roots = []
    for a in args:
        if a.startswith("-") or a in ("(", "!", ")"):
            break
        roots.append(a)
    paths = [p for p in (ctx.path(r, writing=False) for r in roots or ["."]) if p]
    ctx.find_roots = paths
    below = [p.rstrip("/") + "/*" for p in paths]
    if "-delete" in args:
        for b in below:
            ctx.delete(b)
    for flag in ("-fprint", "-fprint0", "-fprintf", "-fls"):
        if flag in args and args.index(flag) + 1 < len(args):
            ctx.write(ctx.path(args[args.index(flag) + 1]))
    for i, a in enumerate(args):
        if a in ("-exec", "-execdir", "-ok", "-okdir") and i + 1 < len(args):
            _find_exec(ctx, args[i + 1 :], below, cmd)


def _find_exec(ctx: _Ctx, rest: list[str], below: list[str], cmd: _Simple) -> None:
    """`find ROOT -exec CMD {} ;`: CMD runs on paths below ROOT."""
    end = next((k for k, w in enumerate(rest) if w in (";", "+")), len(rest))
    if not rest[:end]:
        return
    if not below:
        ctx.opaque("find -exec below a directory not known from the text")
        return
    for b in below:
        _run_words(ctx, [b if w == "{}" else w for w in rest[:end]], cmd)


@_handles("tar", "bsdtar")
def _h_tar(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    args = list(args)
    if args and re.fullmatch(r"[A-Za-z]+", args[0]):
        args[0] = "-" + args[0]  # old-style bundled options: `tar xzf x.tgz`
    o = parse_opts(args, "fCTXbHIgKNVL", {
        "--file", "--directory", "--files-from", "--exclude-from", "--use-compress-program",
        "--listed-incremental", "--owner", "--group", "--mode", "--transform", "--xform",
        "--exclude", "--strip-components", "--blocking-factor", "--format", "--newer",
        "--after-date", "--label", "--to-command", "--checkpoint-action", "--warning", "--suffix",
    })  # fmt: skip
    archive = o.get("-f", "--file")
    if o.has("-x", "--extract", "--get"):
        if archive and archive != "-":
            ctx.path(archive, writing=False)
        where = o.get("-C", "--directory")
        root = ctx.path(where) if where else ctx.cwd_path()
        ctx.tree(root)
        if root and not has_glob(root) and not ctx.cond:
            # GNU tar keeps the archive's mtimes unless -m/--touch, and (as root, which a
            # RUN step is unless USER says otherwise) its owners unless -o/--no-same-owner.
            ctx.fx.extracted[root] = {
                "mtimes": not o.has("-m", "--touch"),
                "owners": not o.has("-o", "--no-same-owner") and not o.get("--owner", "--group"),
                "command": ctx.current,
            }
    elif o.has("-c", "--create", "-r", "--append", "-u", "--update", "-A", "--catenate", "--concatenate", "--delete"):
        if archive and archive != "-":
            ctx.write(ctx.path(archive))


@_handles("unzip")
def _h_unzip(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(args, "dP")
    if o.has("-l", "-t", "-v", "-p", "-Z", "-z"):
        return
    where = o.get("-d")
    ctx.tree(ctx.path(where) if where else ctx.cwd_path())


@_handles("patch")
def _h_patch(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(args, "pdiorDFBVYzg", "--directory --input --output --strip --reject-file --backup-if-mismatch")
    out = o.get("-o", "--output")
    if out:
        ctx.write(ctx.path(out))
        return
    where = o.get("-d", "--directory")
    ctx.tree(ctx.path(where) if where else ctx.cwd_path())  # files named inside the patch


# --- downloads ---


def _url_basename(url: str) -> str:
    path = url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    return posixpath.basename(path.split("://", 1)[-1]) if "/" in path.split("://", 1)[-1] else ""


@_handles("curl")
def _h_curl(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(args, "oHdeuUXAxwTFrmcbEKYyzCDPQt", {
        "--output", "--output-dir", "--header", "--data", "--data-raw", "--data-binary",
        "--data-urlencode", "--user", "--request", "--user-agent", "--referer", "--proxy",
        "--write-out", "--upload-file", "--form", "--range", "--max-time", "--cookie-jar",
        "--cookie", "--cert", "--config", "--retry", "--retry-delay", "--retry-max-time",
        "--connect-timeout", "--cacert", "--capath", "--key", "--dump-header", "--resolve",
        "--limit-rate", "--proto", "--proto-redir", "--interface", "--url", "--oauth2-bearer",
        "--ciphers", "--tls-max", "--speed-limit", "--speed-time", "--max-filesize", "--stderr",
    })  # fmt: skip
    out_dir = o.get("--output-dir")
    base = ctx.path(out_dir) if out_dir else ctx.cwd
    for out in o.all("-o", "--output"):
        if out != "-":
            p = ctx.path(out if base is None or out.startswith("/") else norm_path(out, base))
            ctx.write(p)
            ctx.claim(p, C.FILE)  # a download: a regular file, bytes from outside
    for f in o.all("-D", "--dump-header", "-c", "--cookie-jar", "--stderr"):
        if f != "-":
            ctx.write(ctx.path(f))
    if o.has("-O", "--remote-name", "--remote-name-all"):
        base = base or ctx.cwd_path()
        for url in o.pos + o.all("--url"):
            name = _url_basename(url)
            if name and base:
                ctx.write(norm_path(name, base))


@_handles("wget")
def _h_wget(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(args, "OoaPitTwUelQ", {
        "--output-document", "--output-file", "--append-output", "--directory-prefix",
        "--input-file", "--tries", "--timeout", "--wait", "--user-agent", "--execute", "--header",
        "--user", "--password", "--quota", "--level", "--ca-certificate", "--ca-directory",
        "--certificate", "--private-key", "--post-data", "--post-file", "--body-data", "--method",
        "--load-cookies", "--save-cookies", "--progress", "--secure-protocol",
    })  # fmt: skip
    for f in o.all("-o", "--output-file", "-a", "--append-output", "--save-cookies"):
        ctx.write(ctx.path(f))
    doc = o.get("-O", "--output-document")
    if doc is not None:
        if doc != "-":
            ctx.write(ctx.path(doc))
            ctx.claim(ctx.path(doc, writing=False), C.FILE)
        return
    prefix = o.get("-P", "--directory-prefix")
    base = ctx.path(prefix) if prefix else ctx.cwd_path()
    if base is None:
        return
    if o.has("-r", "--recursive", "-m", "--mirror"):
        ctx.tree(base)
        return
    for url in o.pos:
        name = _url_basename(url) or "index.html"
        ctx.write(norm_path(name, base))


@_handles("git")
def _h_git(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(args, "Cc", {"--git-dir", "--work-tree", "--namespace", "--exec-path"}, stop_at_pos=True)
    where = o.get("-C")
    repo = ctx.path(where, writing=False) if where else ctx.cwd
    sub, rest = (o.pos[0], o.pos[1:]) if o.pos else ("", [])
    if sub == "clone":
        c = parse_opts(
            rest,
            "bojcu",
            (
                "--branch --origin --depth --config --reference --jobs --upload-pack --separate-git-dir "
                "--template --filter --shallow-since --shallow-exclude --reference-if-able --server-option "
                "--bundle-uri"
            ),
        )
        if not c.pos:
            return
        if len(c.pos) > 1:
            target, unknown = ctx.expand(c.pos[1])
        else:
            target, unknown = re.sub(r"\.git$", "", _url_basename(c.pos[0])), False
        if unknown or not target or (repo is None and not target.startswith("/")):
            ctx.opaque("git clone into a directory not known from the text")
            return
        ctx.tree(norm_path(target, repo or "/"))
    elif sub == "config":
        if "--global" in rest:
            ctx.write(HOME + "/.gitconfig")
        elif "--system" in rest:
            ctx.write("/etc/gitconfig")
        elif repo:
            ctx.write(repo + "/.git/config")
    elif sub in _GIT_READ_ONLY or not sub:
        return
    else:
        ctx.tree(repo if repo else ctx.cwd_path())


_GIT_READ_ONLY = frozenset(
    """
    log rev-parse describe show status diff ls-files ls-remote version --version help rev-list cat-file
    show-ref for-each-ref blame grep verify-commit verify-tag
""".split()
)


# --- accounts and system databases ---

ACCOUNT_FILES = (
    "/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow",
    "/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-",  # shadow-utils backups
    "/etc/subuid", "/etc/subgid", "/etc/subuid-", "/etc/subgid-", "/etc/.pwd.lock",
)  # fmt: skip


def _accounts(ctx: _Ctx) -> None:
    for f in ACCOUNT_FILES:
        ctx.write(f)


_ACCOUNT_TOOLS = """
    groupadd addgroup groupmod groupdel delgroup passwd chpasswd gpasswd chsh chfn chage newusers
    pwconv grpconv pwunconv grpunconv vipw vigr deluser
""".split()


@_handles(*_ACCOUNT_TOOLS)
def _h_accounts(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    _accounts(ctx)
    if posixpath.basename(word0) == "deluser" and "--remove-home" in args:
        users = [a for a in args if not a.startswith("-")]
        if users:
            ctx.delete(norm_path(users[0], "/home"))


@_handles("useradd", "usermod", "userdel")
def _h_useradd(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    _accounts(ctx)
    name = posixpath.basename(word0)
    o = parse_opts(args, "bcdefgGkKpsuZRP", {
        "--base-dir", "--comment", "--home-dir", "--home", "--expiredate", "--inactive", "--gid",
        "--groups", "--skel", "--key", "--password", "--shell", "--uid", "--selinux-user", "--root",
        "--prefix", "--login",
    })  # fmt: skip
    if not o.pos:
        return
    user = ctx.expand(o.pos[-1])[0]
    home = o.get("-d", "--home-dir", "--home") if name != "userdel" else None
    base = o.get("-b", "--base-dir") or "/home"
    home_path = ctx.path(home) if home else norm_path(user, base)
    if name == "useradd":
        for f in ("/var/log/lastlog", "/var/log/faillog", f"/var/mail/{user}", f"/var/spool/mail/{user}"):
            ctx.write(f)
        # RHEL-family login.defs create homes by default; -M forbids, -r implies no home.
        if o.has("-m", "--create-home") or not (o.has("-M", "--no-create-home") or o.has("-r", "--system")):
            _home(ctx, home_path)
    elif name == "usermod" and o.has("-m", "--move-home") and home:
        ctx.tree(home_path)
    elif name == "userdel" and o.has("-r", "--remove"):
        ctx.delete(home_path)
        ctx.delete(f"/var/mail/{user}")


@_handles("adduser")
def _h_adduser(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    """Debian's adduser (long options) and busybox/alpine's (short ones)."""
    _accounts(ctx)
    o = parse_opts(args, "hgsGuk", {
        "--home", "--shell", "--uid", "--gid", "--ingroup", "--gecos", "--comment", "--firstuid",
        "--lastuid", "--firstgid", "--lastgid", "--conf",
    })  # fmt: skip
    if not o.pos or len(o.pos) > 1:  # `adduser user group` adds to a group: no home
        return
    user = ctx.expand(o.pos[0])[0]
    home = o.get("-h", "--home")
    if o.has("-H", "--no-create-home") or (o.has("--system") and not home):
        return
    _home(ctx, ctx.path(home) if home else norm_path(user, "/home"))


def _home(ctx: _Ctx, home: str | None) -> None:
    """useradd -m / adduser make the home directory and copy /etc/skel into it, nothing
    else: a key or a profile under it that is not a skel copy is not theirs."""
    if not home:
        return
    ctx.write(home)
    ctx.claim(home, C.DIR)
    ctx.fx.homes.add(home)


@_handles("ldconfig")
def _h_ldconfig(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    if not {"-p", "--print-cache", "-N"} & set(args):
        ctx.write("/etc/ld.so.cache")
        ctx.write("/etc/ld.so.cache~")
        ctx.tree("/var/cache/ldconfig")


def _fixed_effects(writes: tuple[str, ...] = (), trees: tuple[str, ...] = ()) -> Handler:
    """A handler for a command whose effects do not depend on its arguments."""

    def handler(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
        for w in writes:
            ctx.write(w)
        for t in trees:
            ctx.tree(t)

    return handler


_FIXED: dict[str, Handler] = {
    "update-ca-certificates": _fixed_effects(("/etc/ca-certificates.conf",), ("/etc/ssl/certs",)),
    "update-ca-trust": _fixed_effects((), ("/etc/pki/ca-trust/extracted", "/etc/pki/tls/certs")),
    "c_rehash": _fixed_effects((), ("/etc/ssl/certs",)),
    "locale-gen": _fixed_effects((), ("/usr/lib/locale", "/var/lib/locales/supported.d")),
    "localedef": _fixed_effects((), ("/usr/lib/locale",)),
    "update-locale": _fixed_effects(("/etc/default/locale",)),
    "update-alternatives": _fixed_effects(
        (), ("/etc/alternatives", "/var/lib/dpkg/alternatives", "/var/lib/alternatives")
    ),
    "alternatives": _fixed_effects((), ("/etc/alternatives", "/var/lib/alternatives")),
    "update-rc.d": _fixed_effects((), ("/etc/rc?.d",)),
    "rc-update": _fixed_effects((), ("/etc/runlevels",)),
    "chkconfig": _fixed_effects((), ("/etc/rc.d",)),
    "debconf-set-selections": _fixed_effects((), ("/var/cache/debconf",)),
    "apt-key": _fixed_effects(("/etc/apt/trusted.gpg",), ("/etc/apt/trusted.gpg.d",)),
    "add-apt-repository": _fixed_effects((), ("/etc/apt/sources.list.d", "/etc/apt/trusted.gpg.d")),
    "update-mime-database": _fixed_effects((), ("/usr/share/mime",)),
    "fc-cache": _fixed_effects((), ("/var/cache/fontconfig",)),
    "glib-compile-schemas": _fixed_effects((), ("/usr/share/glib-2.0/schemas",)),
    "depmod": _fixed_effects((), ("/lib/modules",)),
    "dpkg-divert": _fixed_effects(("/var/lib/dpkg/diversions", "/var/lib/dpkg/diversions-old")),
    "dpkg-statoverride": _fixed_effects(("/var/lib/dpkg/statoverride", "/var/lib/dpkg/statoverride-old")),
}
_HANDLERS.update(_FIXED)


@_handles("update-alternatives")
def _h_update_alternatives(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    _FIXED["update-alternatives"](ctx, word0, args, cmd)
    for i, a in enumerate(args):
        if a == "--install" and i + 2 < len(args):
            p = ctx.path(args[i + 1])  # the generic link, e.g. /usr/bin/java -> /etc/alternatives/java
            ctx.write(p)
            ctx.claim(p, C.SYMLINK, link="/etc/alternatives/" + ctx.expand(args[i + 2])[0])


@_handles("crontab")
def _h_crontab(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    if not {"-l", "--list"} & set(args):
        ctx.tree("/var/spool/cron")  # Debian, RHEL: crontabs/<user>, cron/<user>
        ctx.tree("/etc/crontabs")  # busybox / Alpine


@_handles("systemctl")
def _h_systemctl(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    if {"enable", "disable", "mask", "unmask", "set-default", "preset", "link", "add-wants"} & set(args):
        ctx.tree("/etc/systemd/system")
        if "--user" in args or "--global" in args:
            ctx.tree("/etc/systemd/user")


@_handles("gpg", "gpg2")
def _h_gpg(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(
        args,
        "orua",
        (
            "--output --homedir --keyserver --recipient --local-user --recv-keys --default-key "
            "--export-options --import-options --keyring --trust-model --passphrase --passphrase-fd "
            "--pinentry-mode --status-fd --logger-fd"
        ),
    )
    for out in o.all("-o", "--output"):
        if out != "-":
            ctx.write(ctx.path(out))
            ctx.claim(ctx.path(out, writing=False), C.FILE)
    homedir = o.get("--homedir")
    if homedir:
        ctx.tree(ctx.path(homedir))
    elif "GNUPGHOME" in ctx.vars:  # usually `$(mktemp -d)`, kept as /tmp/tmp.*
        ctx.tree(ctx.vars["GNUPGHOME"])
    else:
        ctx.tree(HOME + "/.gnupg")


@_handles("openssl")
def _h_openssl(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    for i, a in enumerate(args[:-1]):
        if a in ("-out", "-keyout", "-certout"):
            ctx.write(ctx.path(args[i + 1]))
            ctx.claim(ctx.path(args[i + 1], writing=False), C.FILE)


@_handles("ssh-keygen")
def _h_ssh_keygen(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(args, "fbtCNZIOnVzEmPsYaFRr")
    if o.has("-A"):
        ctx.write("/etc/ssh/ssh_host_*")  # host keys: all types at once
    f = o.get("-f")
    if f and not o.has("-l", "-y", "-F", "-R"):
        p = ctx.path(f)
        ctx.write(p)
        ctx.write(p + ".pub" if p else None)


# --- package managers ---

# What a package manager run writes besides the package files themselves (those are
# checked against the package database by the caller): its state, caches and logs.
APT_STATE = (
    "/var/lib/apt", "/var/cache/apt", "/var/lib/dpkg", "/var/log/apt", "/var/log/dpkg.log", "/var/cache/debconf",
    "/var/log/alternatives.log", "/etc/alternatives", "/etc/ld.so.cache", "/var/cache/ldconfig",
)  # fmt: skip
APK_STATE = ("/lib/apk", "/usr/lib/apk", "/var/cache/apk", "/etc/apk")
RPM_STATE = (
    "/var/lib/rpm", "/usr/lib/sysimage/rpm", "/var/lib/dnf", "/var/lib/yum", "/var/cache/dnf", "/var/cache/yum",
    "/var/log/dnf.log", "/var/log/dnf.librepo.log", "/var/log/dnf.rpm.log", "/var/log/hawkey.log",
    "/var/log/yum.log", "/etc/ld.so.cache", "/var/cache/ldconfig", "/etc/alternatives", "/var/lib/alternatives",
)  # fmt: skip
ZYPP_STATE = RPM_STATE + ("/var/cache/zypp", "/var/lib/zypp", "/var/log/zypper.log", "/var/log/zypp", "/etc/zypp")
PIP_TREES = (
    "/usr/local/lib/python*/site-packages", "/usr/local/lib/python*/dist-packages", "/usr/lib/python3*/site-packages",
    "/usr/lib/python3/dist-packages", "/usr/local/bin", "/usr/local/share", "/usr/local/include",
)  # fmt: skip
NPM_GLOBAL = ("/usr/local/lib/node_modules", "/usr/local/bin", "/usr/lib/node_modules", "/usr/local/share/man")
GEM_TREES = (
    "/usr/local/bundle", "/var/lib/gems", "/usr/local/lib/ruby/gems", "/usr/lib/ruby/gems", "/usr/local/bin",
    HOME + "/.gem", HOME + "/.local/share/gem",
)  # fmt: skip

_VERSION_SPLIT = re.compile(r"[=<>~!;\[ ]")


def _state(ctx: _Ctx, manager: str, trees: tuple[str, ...], root: str | None = None) -> None:
    ctx.manager(manager)
    for t in trees:
        ctx.tree(norm_path(t.lstrip("/"), root) if root else t)


def _pkg_names(words: Iterable[str], strip_version: bool = True) -> list[str]:
    names = []
    for w in words:
        if strip_version and not w.startswith(("/", ".")) and "://" not in w:
            w = _VERSION_SPLIT.split(w, 1)[0] or w
        names.append(w)
    return names


@_handles("apt-get", "apt", "aptitude")
def _h_apt(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    name = posixpath.basename(word0)
    o = parse_opts(args, "oct", {"--option", "--config-file", "--target-release", "--default-release"})
    _state(ctx, name, APT_STATE)
    sub, rest = (o.pos[0], o.pos[1:]) if o.pos else ("", [])
    if sub in ("install", "reinstall", "build-dep"):
        ctx.packages(name, _pkg_names(rest))
    elif sub in ("remove", "purge", "autoremove", "autopurge"):
        ctx.packages(name, _pkg_names(rest), removed=True)
    elif sub in ("download", "source") and rest:
        ctx.tree(ctx.cwd_path())


@_handles("apt-mark")
def _h_apt_mark(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    if args[:1] and args[0] not in ("showmanual", "showauto", "showhold", "showinstall"):
        _state(ctx, "apt-mark", ("/var/lib/apt", "/var/lib/dpkg"))


@_handles("dpkg")
def _h_dpkg(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(args, "", {"--root", "--admindir", "--instdir"})
    install = o.has("-i", "--install", "--unpack")
    remove = o.has("-r", "--remove", "-P", "--purge")
    if o.has("--add-architecture", "--remove-architecture"):
        _state(ctx, "dpkg", ("/var/lib/dpkg",))
    elif install or remove or o.has("--configure", "--set-selections", "--clear-selections", "-a"):
        _state(ctx, "dpkg", APT_STATE)
        if install:
            ctx.packages("dpkg", o.pos)
        if remove:
            ctx.packages("dpkg", o.pos, removed=True)


@_handles("apk")
def _h_apk(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(
        args,
        "Xtpo",
        ("--repository --virtual --root --arch --cache-dir --keys-dir --repositories-file --cache-max-age --output"),
    )
    sub, rest = (o.pos[0], o.pos[1:]) if o.pos else ("", [])
    if sub in ("info", "search", "version", "policy", "stats", "audit", "verify", "dot", "list", "manifest", ""):
        ctx.manager("apk")
        return
    root = o.get("-p", "--root")
    _state(ctx, "apk", APK_STATE, root=ctx.path(root) if root else None)
    if sub in ("add", "fix"):
        ctx.packages("apk", _pkg_names(rest))
    elif sub == "del":
        ctx.packages("apk", _pkg_names(rest), removed=True)
    elif sub == "fetch":
        out = o.get("-o", "--output")
        ctx.tree(ctx.path(out) if out else ctx.cwd_path())


_YUM_INSTALL = frozenset(
    "install in reinstall localinstall groupinstall update upgrade up downgrade distro-sync dsync swap".split()
)
_YUM_REMOVE = frozenset({"remove", "erase", "rm", "autoremove", "groupremove"})


@_handles("yum", "dnf", "dnf5", "microdnf", "tdnf")
def _h_dnf(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    name = posixpath.basename(word0)
    o = parse_opts(
        args,
        "xcRed",
        (
            "--exclude --config --setopt --enablerepo --disablerepo --releasever --installroot --repo "
            "--repoid --forcearch --downloaddir --destdir"
        ),
    )
    root = o.get("--installroot")
    _state(ctx, name, RPM_STATE, root=ctx.path(root) if root else None)
    sub, rest = (o.pos[0], o.pos[1:]) if o.pos else ("", [])
    if sub in ("group", "module") and rest:
        sub, rest = rest[0], rest[1:]
    if sub in _YUM_INSTALL:
        ctx.packages(name, rest)
    elif sub in _YUM_REMOVE:
        ctx.packages(name, rest, removed=True)
    elif sub == "config-manager":
        ctx.tree("/etc/yum.repos.d")


@_handles("zypper")
def _h_zypper(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(args, "rRDCt", "--repo --root --reposd-dir --cache-dir --type --from --config")
    _state(ctx, "zypper", ZYPP_STATE)
    sub, rest = (o.pos[0], o.pos[1:]) if o.pos else ("", [])
    if sub in ("in", "install", "up", "update", "dup", "dist-upgrade", "patch"):
        ctx.packages("zypper", rest)
    elif sub in ("rm", "remove"):
        ctx.packages("zypper", rest, removed=True)
    elif sub in ("ar", "addrepo"):
        ctx.tree("/etc/zypp/repos.d")


@_handles("rpm")
def _h_rpm(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(
        args, "D", ("--define --root --dbpath --predefine --eval --macros --rcfile --excludepath --relocate --prefix")
    )
    install = o.has("-i", "-U", "-F", "--install", "--upgrade", "--freshen", "--reinstall")
    remove = o.has("-e", "--erase")
    if not (install or remove or o.has("--import", "--rebuilddb", "--initdb", "--setperms", "--setugids", "--restore")):
        ctx.manager("rpm")  # queries: -q, -V, --checksig ...
        return
    _state(ctx, "rpm", RPM_STATE)
    if install:
        ctx.packages("rpm", o.pos)
    elif remove:
        ctx.packages("rpm", o.pos, removed=True)


@_handles("pip", "pip3")
def _h_pip(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    o = parse_opts(args, "rcieftbdw", {
        "--requirement", "--constraint", "--index-url", "--extra-index-url", "--find-links",
        "--target", "--prefix", "--root", "--src", "--editable", "--trusted-host", "--platform",
        "--python-version", "--implementation", "--abi", "--only-binary", "--no-binary",
        "--progress-bar", "--cache-dir", "--log", "--proxy", "--retries", "--timeout",
        "--exists-action", "--upgrade-strategy", "--global-option", "--install-option",
        "--config-settings", "--report", "--python", "--root-user-action", "--cert",
        "--client-cert", "--use-feature", "--use-deprecated", "--default-timeout", "--dest",
        "--wheel-dir",
    })  # fmt: skip
    ctx.manager("pip")
    sub, rest = (o.pos[0], o.pos[1:]) if o.pos else ("", [])
    if sub in ("download", "wheel"):
        out = o.get("-d", "--dest", "-w", "--wheel-dir")
        ctx.tree(ctx.path(out) if out else ctx.cwd_path())
        return
    if sub not in ("install", "uninstall"):
        return
    ctx.packages("pip", _pkg_names(rest + o.all("-e", "--editable")), removed=sub == "uninstall")
    for trees in _pip_trees(ctx, word0, o):
        ctx.tree(trees)
    if not o.has("--no-cache-dir") and not ctx.vars.get("PIP_NO_CACHE_DIR"):
        ctx.tree(HOME + "/.cache/pip")


def _pip_trees(ctx: _Ctx, word0: str, o: Opts) -> list[str | None]:
    """Where pip installs: an explicit target, the user site, a virtualenv, or the system."""
    explicit = o.get("-t", "--target", "--prefix", "--root")
    if explicit:
        return [ctx.path(explicit)]
    if o.has("--user"):
        return [HOME + "/.local"]
    venv = posixpath.dirname(posixpath.dirname(word0)) if word0.startswith("/") else ""
    if venv not in ("", "/", "/usr", "/usr/local"):
        return [venv]  # /opt/venv/bin/pip installs into /opt/venv
    if ctx.vars.get("VIRTUAL_ENV"):
        return [ctx.vars["VIRTUAL_ENV"]]
    return list(PIP_TREES)


@_handles("python", "python3", "python2")
def _h_python(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] not in ("-m", "-c"):
        i += 1  # interpreter flags: -u, -B, -I ...
    rest = args[i:]
    if rest[:2] == ["-m", "pip"]:
        venv = posixpath.dirname(posixpath.dirname(word0))
        _h_pip(ctx, posixpath.join(venv, "bin", "pip") if word0.startswith("/") else "pip", rest[2:], cmd)
    elif rest[:2] in (["-m", "venv"], ["-m", "virtualenv"]):
        targets = [a for a in rest[2:] if not a.startswith("-")]
        for t in targets:
            ctx.tree(ctx.path(t))
    elif rest[:2] in (["-m", "compileall"], ["-m", "py_compile"]):
        for t in [a for a in rest[2:] if not a.startswith("-")]:
            p = ctx.path(t, writing=False)
            if p:
                ctx.fx.bytecode_trees.add(p)  # only __pycache__/*.pyc below it
    elif rest[:2] == ["-m", "ensurepip"]:
        ctx.manager("pip")
        for t in PIP_TREES:
            ctx.tree(t)
    elif rest[:1] == ["--version"] or (not rest and not cmd.heredocs):
        return
    else:
        ctx.opaque("runs a python program")


@_handles("virtualenv")
def _h_virtualenv(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    for t in parse_opts(args, "p", {"--python", "--prompt"}).pos:
        ctx.tree(ctx.path(t))


@_handles("npm", "yarn", "pnpm")
def _h_npm(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    name = posixpath.basename(word0)
    o = parse_opts(args, "", "--prefix --registry --omit --cache --userconfig --loglevel --cwd --modules-folder")
    ctx.manager(name)
    sub, rest = (o.pos[0], o.pos[1:]) if o.pos else ("install" if name == "yarn" else "", [])
    if sub == "global" and rest:  # yarn global add
        sub, rest, global_ = rest[0], rest[1:], True
    else:
        global_ = o.has("-g", "--global")
    if sub in ("run", "run-script", "exec", "start", "test", "dlx", "x"):
        ctx.opaque(f"{name} {sub} runs package scripts")
        return
    if sub not in _JS_INSTALL | _JS_REMOVE:
        return
    removed = sub in _JS_REMOVE
    ctx.packages(name, [_npm_name(p) for p in rest], removed=removed)
    prefix = o.get("--prefix", "--cwd")
    if global_:
        for t in NPM_GLOBAL:
            ctx.tree(t)
    elif prefix or ctx.cwd_path():
        base = ctx.path(prefix) if prefix else ctx.cwd
        if base:
            ctx.tree(norm_path("node_modules", base))
            if sub != "ci":  # ci installs exactly the lock file and rewrites nothing
                ctx.write(norm_path(_JS_LOCKS[name], base))
                if rest:
                    ctx.write(norm_path("package.json", base))
    for t in _JS_CACHES[name]:
        ctx.tree(t)


_JS_INSTALL = frozenset("install i ci add isntall update up upgrade link rebuild prune dedupe".split())
_JS_REMOVE = frozenset("uninstall un remove rm r".split())
_JS_LOCKS = {"npm": "package-lock.json", "yarn": "yarn.lock", "pnpm": "pnpm-lock.yaml"}
_JS_CACHES = {
    "npm": (HOME + "/.npm",),
    "yarn": ("/usr/local/share/.cache/yarn", HOME + "/.cache/yarn", HOME + "/.yarn"),
    "pnpm": (HOME + "/.local/share/pnpm", HOME + "/.cache/pnpm"),
}


def _npm_name(spec: str) -> str:
    at = spec.find("@", 1)  # a leading @ is a scope
    return spec[:at] if at > 0 else spec


@_handles("gem", "bundle", "bundler")
def _h_gem(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    name = posixpath.basename(word0)
    o = parse_opts(args, "viN", "--version --install-dir --bindir --source --jobs --path --gemfile")
    sub, rest = (o.pos[0], o.pos[1:]) if o.pos else ("install" if name != "gem" else "", [])
    if sub not in ("install", "update", "uninstall"):
        return
    ctx.manager("gem")
    if name == "gem":
        ctx.packages("gem", rest, removed=sub == "uninstall")
    target = o.get("-i", "--install-dir", "--path")
    for t in [ctx.path(target)] if target else GEM_TREES:
        ctx.tree(t)


# Build systems, interpreters and installers: they can write anything.
_BUILD_TOOLS = frozenset(
    """
    make gmake cmake ninja meson configure go cargo rustup mvn gradle ant dotnet node deno bun ruby php
    composer scons autoreconf autoconf automake libtool dpkg-reconfigure docker-php-ext-install
    docker-php-ext-configure docker-php-ext-enable pecl cpan cpanm java javac sdkmanager conda mamba
    micromamba poetry pipx uv luarocks R Rscript rustc gcc cc g++ clang chroot script expect
""".split()
)


@_handles(*_BUILD_TOOLS)
def _h_build_tool(ctx: _Ctx, word0: str, args: list[str], cmd: _Simple) -> None:
    """Build systems and interpreters can write anything; name the usual places anyway."""
    name = posixpath.basename(word0)
    if args[:1] in (["--version"], ["-v"], ["version"], ["env"]):
        return
    if name in ("make", "gmake"):
        o = parse_opts(args, "CfjIlo", {"--directory", "--file", "--jobs"})
        where = o.get("-C", "--directory")
        if where:
            ctx.path(where, writing=False)
    ctx.opaque(f"runs {name}, whose effects are not modelled")


# --------------------------------------------------------------------------- entry


def run_effects(shell: str | None, workdir: str | None = None, env: dict[str, str] | None = None) -> RunEffects:
    """Statically read a RUN shell command: what it names, writes, deletes and installs.

    `workdir` is the working directory of the step (relative paths resolve against
    it; default `/`); `env` holds known variables (image ENV, build args). Never raises;
    a command that cannot be read comes back `opaque` with a reason.
    """
    text = shell if isinstance(shell, str) else ("" if shell is None else str(shell))
    cwd = norm_path(workdir) if isinstance(workdir, str) and workdir else "/"
    known: dict[str, str | None] = {"HOME": HOME, "PWD": cwd}
    known.update({str(k): str(v) for k, v in (env or {}).items()})
    ctx = _Ctx(cwd=cwd, vars=known)
    if len(text) > MAX_SHELL_CHARS:
        ctx.opaque(f"command longer than {MAX_SHELL_CHARS} characters; only the start is read")
        text = text[:MAX_SHELL_CHARS]
    try:
        _run_script(ctx, text)
    except Exception as exc:  # defensive: a reader bug must not stop the analysis
        ctx.opaque(f"command could not be read ({type(exc).__name__})")
    return ctx.fx
