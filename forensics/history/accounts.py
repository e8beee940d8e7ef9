"""Account files judged entry by entry against what the step may create.

A step that runs `useradd bob`, or installs a package whose postinst runs
`adduser --system redis`, changes /etc/passwd, group, shadow and gshadow (with
their `-` backups and subuid/subgid). Explaining such a file wholesale lets an
attacker who knows the rule add `toor:x:0:0` beside the honest line. Here each
added, changed or removed entry is held to the accounts the step's commands and
its packages' maintainer scripts name, and to the shape those tools give them
(uid range, shell, locked password). Some changes no package install explains,
whatever its scripts say: a changed password hash, uid, gid or shell of an
existing account, a second uid 0, a privileged group gaining a member.

API: `entitled_by_commands` / `entitled_by_scripts` collect what a step may do;
`judge_files(before, after, entitled)` returns one `FileVerdict` per changed
account file; `judge_step` applies them to a step's PathChanges and returns the
findings (history.unexplained-change or history.effect-mismatch). Hostile input:
files are bounded and parsed without raising.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

from forensics.archive.layerfs import norm_layer_path
from forensics.findings import finding
from forensics.history.shellwords import parse_opts, tokenize
from forensics.models import Finding, PathChange

MAIN_FILES = {"/etc/passwd": "passwd", "/etc/group": "group", "/etc/shadow": "shadow", "/etc/gshadow": "gshadow",
              "/etc/subuid": "subid", "/etc/subgid": "subid"}
BACKUPS = {f"{p}-": p for p in MAIN_FILES}  # shadow-utils' copy of the previous version
ACCOUNT_PATHS = frozenset(MAIN_FILES) | frozenset(BACKUPS)
SYSUSERS_DIRS = ("/usr/lib/sysusers.d/", "/lib/sysusers.d/")
MAX_FILE = 4 << 20  # bytes captured per account file; /etc/passwd of a big host is ~100 KiB
MAX_SMALL = 64 << 10  # sysusers.d snippets
MAX_ENTRIES = 200_000
MAX_SCRIPT = 1 << 20
MAX_FINDINGS = 8  # per code and severity in one step; the rest are summed up in one more
TAILS = ("passwd", "group", "shadow", "passwd-", "group-", "shadow-", "subuid", "subgid", "subuid-", "subgid-",
          ".conf")

PRIVILEGED_GROUPS = frozenset({"root", "sudo", "wheel", "adm", "admin", "docker", "shadow", "disk", "lxd"})
NO_LOGIN = frozenset({"/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false", "/bin/sync"})
# What each tool gives an account when its command does not say (Debian, Alpine, RHEL defaults).
USERADD_SHELLS = frozenset({"", "/bin/sh", "/bin/bash", "/bin/ash"}) | NO_LOGIN
ADDUSER_SHELLS = frozenset({"/bin/bash", "/bin/sh", "/bin/ash"})
SYSTEM_UIDS = range(1, 1000)
USER_UIDS = range(1000, 65534)


def wants_capture(name: str, size: int) -> bool:
    """Hot path (every layer file): keep account files and sysusers.d snippets."""
    if not name.endswith(TAILS):
        return False
    path = norm_layer_path(name)[0]
    if path in ACCOUNT_PATHS:
        return size <= MAX_FILE
    return path.startswith(SYSUSERS_DIRS) and size <= MAX_SMALL


def is_account_path(path: str) -> bool:
    return path in ACCOUNT_PATHS


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Entry:
    name: str
    fields: tuple[str, ...]
    line: str


@dataclass
class Parsed:
    entries: dict[str, list[Entry]] = field(default_factory=dict)  # name -> entries, file order
    other: list[str] = field(default_factory=list)  # comments, NIS `+`/`-` lines, malformed lines
    lines: set[str] = field(default_factory=set)


_WIDTH = {"passwd": 7, "group": 4, "shadow": 9, "gshadow": 4, "subid": 3}


def parse(kind: str, data: bytes | None) -> Parsed:
    out = Parsed()
    if not data:
        return out
    text = data[:MAX_FILE].decode("utf-8", "replace")
    for n, line in enumerate(text.splitlines()):
        if n >= MAX_ENTRIES:
            out.other.append(f"... more than {MAX_ENTRIES} lines")
            break
        if not line.strip():
            continue
        out.lines.add(line)
        parts = line.split(":")
        width = _WIDTH[kind]
        if kind == "shadow" and len(parts) == 8:  # busybox writes 8 fields
            parts.append("")
        if len(parts) != width or not parts[0] or parts[0][0] in "#+-" or (
                kind == "passwd" and not (parts[2].isdigit() and parts[3].isdigit())) or (
                kind == "group" and not parts[2].isdigit()):
            out.other.append(line)
            continue
        out.entries.setdefault(parts[0], []).append(Entry(parts[0], tuple(parts), line))
    return out


def _locked(pw: str) -> bool:
    """A password field no one can log in with: `*`, `!`, `!!`, `!<hash>` (usermod -L), `x` in group."""
    return pw.startswith(("!", "*"))


# --------------------------------------------------------------------------- entitlement


@dataclass
class UserSpec:
    source: str  # "command" or "package NAME"
    tool: str
    system: bool
    uid: str | None = None
    gid: str | None = None
    shell: str | None = None
    home: str | None = None
    password: bool = False  # the command sets a password (-p)
    user_group: bool = True  # a group of the same name comes with it
    non_unique: bool = False  # -o: a duplicate uid was asked for


@dataclass
class GroupSpec:
    source: str
    tool: str
    system: bool
    gid: str | None = None
    members: tuple[str, ...] = ()
    non_unique: bool = False


@dataclass
class Entitled:
    """What one step's commands and its packages' scripts may do to the account files."""

    users: dict[str, list[UserSpec]] = field(default_factory=dict)  # "*": a name not known from the text
    groups: dict[str, list[GroupSpec]] = field(default_factory=dict)
    members: dict[tuple[str, str], str] = field(default_factory=dict)  # (user, group) -> source
    unmembers: set[tuple[str, str]] = field(default_factory=set)
    modify: dict[tuple[str, str], str] = field(default_factory=dict)  # (name, field) -> source; field in FIELDS
    removed: set[str] = field(default_factory=set)  # users and groups deleted
    opaque: list[str] = field(default_factory=list)  # account commands whose effect is not predictable
    text: str = ""  # the step's command text, for lines it writes literally
    direct: set[str] = field(default_factory=set)  # account files the command names (echo >>, sed -i, cp)
    runs_unknown_code: bool = False  # the step runs a script the analysis cannot see into
    base_passwd: bool = False  # base-passwd's update-passwd may rewrite system accounts' gecos and home
    tools: list[str] = field(default_factory=list)  # what it ran, for the reasons ("useradd bob")

    def merge(self, other: Entitled) -> None:
        for k, v in other.users.items():
            self.users.setdefault(k, []).extend(v)
        for k, v in other.groups.items():
            self.groups.setdefault(k, []).extend(v)
        for k, s in other.members.items():
            self.members.setdefault(k, s)
        self.unmembers |= other.unmembers
        for k, s in other.modify.items():
            self.modify.setdefault(k, s)
        self.removed |= other.removed
        self.opaque += other.opaque
        self.text += "\n" + other.text
        self.direct |= other.direct
        self.runs_unknown_code |= other.runs_unknown_code
        self.base_passwd |= other.base_passwd
        self.tools += other.tools

    def any_for(self, name: str) -> bool:
        return (name in self.users or name in self.groups or name in self.removed
                or any(k[0] == name for k in self.modify) or any(name in k for k in self.members))

    def may(self, name: str, fld: str) -> str | None:
        """The source entitled to change `fld` of `name`'s entry, if any."""
        return self.modify.get((name, fld)) or (self.modify.get(("*", fld)) if name != "root" else None)


TOOLS = frozenset("""
    useradd adduser usermod userdel deluser groupadd addgroup groupmod groupdel delgroup passwd chpasswd
    gpasswd chsh chfn chage newusers pwconv grpconv pwunconv grpunconv vipw vigr systemd-sysusers
    chgpasswd groupmems
""".split())
_OPAQUE_TOOLS = frozenset("newusers pwconv grpconv pwunconv grpunconv vipw vigr chgpasswd groupmems".split())
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-=+?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_CHPASSWD_NAMES = re.compile(r"(?:^|[\s'\"])([a-z_][a-z0-9_.-]*\$?):[^\s:'\"]*")


def _expand(word: str, env: dict[str, str]) -> str:
    """$X, ${X}, ${X:-d}, ${X:+w}: known values substituted, unknown ones become `*`."""
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        val = env.get(name)
        if op and op.endswith("+"):
            return "" if not val else _expand(arg or "", env)
        if op and op.endswith(("-", "=")) and not val:
            return _expand(arg or "", env)
        return "*" if val is None else val
    return _VAR.sub(sub, word) if "$" in word else word


_TOOL_RE = re.compile(r"(?<![\w.-])(?:" + "|".join(sorted(map(re.escape, TOOLS), key=len, reverse=True))
                      + r")(?![\w.-])")
_ASSIGN_LINE = re.compile(r"^\s*(?:local\s+|readonly\s+|export\s+)?[A-Za-z_][A-Za-z0-9_]*=")
# Words that run the next one: `sudo useradd`, `in_sysroot adduser` (dbus), `chroot DIR groupadd`.
_WRAPPERS = frozenset("sudo env nice nohup command exec time eatmydata fakeroot in_sysroot doas".split())
_WRAPPERS_ARG = frozenset("chroot gosu su-exec setpriv".split())  # take one operand first
_WRAPPER_VALUED = frozenset("-u -g -U -C -h -p -r -t --user --group".split())
_KEYWORDS = frozenset("if then else elif fi do done while until ! { } time".split())


def _relevant(text: str) -> str:
    """Only the lines that run an account tool or assign a variable: maintainer scripts are
    long, and only these lines matter here."""
    text = text[:MAX_SCRIPT].replace("\\\n", " ")
    return "\n".join(ln for ln in text.splitlines() if _TOOL_RE.search(ln) or _ASSIGN_LINE.match(ln))


def _commands(text: str, depth: int = 0) -> Iterable[list[str]]:
    """Simple commands of a shell text, words unquoted; `sh -c 'x'` bodies are walked too."""
    cur: list[str] = []
    for t in tokenize(_relevant(text)):
        if t.op:
            if cur:
                yield cur
            cur = []
            if t.heredoc and depth < 2 and _TOOL_RE.search(t.heredoc):
                yield from _commands(t.heredoc, depth + 1)
            continue
        cur.append(t.text)
        if depth < 2 and " " in t.text and _TOOL_RE.search(t.text):  # sh -c "useradd x", su -c '...'
            yield from _commands(t.text, depth + 1)
    if cur:
        yield cur


def _tool_position(words: list[str], i: int) -> int | None:
    """Where the command proper starts, past keywords, assignments and wrappers."""
    while i < len(words):
        w = posixpath.basename(words[i])
        if words[i] in _KEYWORDS or _ASSIGN.match(words[i]):
            i += 1
        elif w in _WRAPPERS or w in _WRAPPERS_ARG:
            i += 1
            while i < len(words) and words[i].startswith("-"):
                i += 2 if words[i] in _WRAPPER_VALUED else 1
            if w in _WRAPPERS_ARG:
                i += 1
        else:
            return i if w in TOOLS else None
    return None


def _scan(text: str, env: dict[str, str], source: str) -> Entitled:
    out = Entitled(text=text)
    env = dict(env)
    env.setdefault("DPKG_ROOT", "")
    for words in _commands(text):
        i = 0
        while i < len(words) and _ASSIGN.match(words[i]):
            k, v = _ASSIGN.match(words[i]).groups()
            env[k] = _expand(v, env)
            i += 1
        tool_at = _tool_position(words, i)
        if tool_at is None:
            continue
        tool = posixpath.basename(words[tool_at])
        args = []
        for w in words[tool_at + 1:]:
            e = _expand(w, env)
            if e == "*" and w.startswith("$"):
                args.append(None)  # a bare unknown variable: `$quiet`, `${USER}`
            elif w.startswith("$") and " " in e:
                args.extend(e.split())  # `$opts` holding several options
            elif e or not w.startswith("$"):  # an empty variable vanishes, `''` stays a word
                args.append(e)
        known = [a for a in args if a is not None]
        positional = [a for a in known if not a.startswith("-")]
        # An unknown bare variable stands for a name only when nothing else can.
        args = known if positional else [a if a is not None else "*" for a in args]
        _apply(out, tool, args, source, text, env)
    return out


def _num(v: str | None) -> str | None:
    return v if v is None or v.isdigit() else v


def _apply(out: Entitled, tool: str, args: list[str], source: str, text: str, env: dict[str, str]) -> None:
    out.tools.append(" ".join([tool] + args)[:120])
    if tool in _OPAQUE_TOOLS:
        out.opaque.append(tool)
        return
    if tool == "useradd":
        o = parse_opts(args, "bcdefgGkKpsuZRP", "--base-dir --comment --home-dir --home --expiredate --inactive "
                       "--gid --groups --skel --key --password --shell --uid --selinux-user --root --prefix")
        if not o.pos:
            return
        name = o.pos[-1]
        groups = [g for v in o.all("-G", "--groups") for g in v.split(",") if g]
        out.users.setdefault(name, []).append(UserSpec(
            source, tool, o.has("-r", "--system"), uid=o.get("-u", "--uid"), gid=o.get("-g", "--gid"),
            shell=o.get("-s", "--shell"), home=o.get("-d", "--home-dir", "--home"),
            password=bool(o.get("-p", "--password")),
            user_group=not (o.has("-N", "--no-user-group") or o.get("-g", "--gid")) or o.has("-U", "--user-group"),
            non_unique=o.has("-o", "--non-unique")))
        for g in groups:
            out.members[(name, g)] = source
    elif tool == "adduser":
        o = parse_opts(args, "hgsGuk", "--home --shell --uid --gid --ingroup --gecos --comment --firstuid --lastuid "
                       "--firstgid --lastgid --conf --add-extra-groups")
        system = o.has("--system", "-S")
        if len(o.pos) == 2:  # adduser USER GROUP
            out.members[(o.pos[0], o.pos[1])] = source
            return
        if not o.pos:
            return
        name = o.pos[0]
        if o.has("--group") and not system:  # `adduser --group NAME` is addgroup
            out.groups.setdefault(name, []).append(GroupSpec(source, tool, False, gid=o.get("--gid")))
            return
        busybox = o.has("-D") or o.get("-s", "-h", "-G") is not None
        group = o.get("--ingroup", "-G")
        out.users.setdefault(name, []).append(UserSpec(
            source, tool, system or o.has("-S"), uid=o.get("--uid", "-u"), gid=o.get("--gid") or group,
            shell=o.get("--shell", "-s"), home=o.get("--home", "-h"),
            user_group=(o.has("--group") or not system) and not group and not o.get("--gid")))
        if not system and not busybox:
            out.members[(name, "users")] = source  # adduser's EXTRA_GROUPS (Debian 12+)
        if o.get("-G"):  # busybox lists the user in its group's member field too
            out.members[(name, o.get("-G") or "")] = source
    elif tool in ("groupadd", "addgroup"):
        o = parse_opts(args, "gKpU", "--gid --key --password --users --firstgid --lastgid --conf")
        if len(o.pos) == 2 and tool == "addgroup":  # busybox `addgroup USER GROUP`
            out.members[(o.pos[0], o.pos[1])] = source
            return
        if not o.pos:
            return
        name = o.pos[-1]
        members = tuple(u for v in o.all("-U", "--users") for u in v.split(",") if u)
        out.groups.setdefault(name, []).append(GroupSpec(
            source, tool, o.has("-r", "--system", "-S"), gid=o.get("-g", "--gid"), members=members,
            non_unique=o.has("-o", "--non-unique")))
        for u in members:
            out.members[(u, name)] = source
        if o.get("-p", "--password"):
            out.modify[(name, "gpassword")] = source
    elif tool == "usermod":
        o = parse_opts(args, "cdegGlLpsuUfvVwW", "--comment --home --expiredate --gid --groups --login --password "
                       "--shell --uid --inactive --add-subuids --del-subuids --add-subgids --del-subgids --root "
                       "--prefix --selinux-user")
        if not o.pos:
            return
        name = o.pos[-1]
        for opts, fld in ((("-c", "--comment"), "gecos"), (("-d", "--home"), "home"), (("-g", "--gid"), "gid"),
                          (("-s", "--shell"), "shell"), (("-u", "--uid"), "uid"), (("-p", "--password"), "password"),
                          (("-e", "--expiredate", "-f", "--inactive"), "aging"),
                          (("-v", "--add-subuids", "-w", "--add-subgids", "-V", "--del-subuids", "-W",
                            "--del-subgids"), "subid")):
            if o.get(*opts) is not None:
                out.modify[(name, fld)] = source
        if o.has("-L", "--lock", "-U", "--unlock"):
            out.modify[(name, "lock")] = source
        new = o.get("-l", "--login")
        if new:
            out.removed.add(name)
            out.users.setdefault(new, []).append(UserSpec(source, tool, False, user_group=False))
            for fld in ("uid", "gid", "shell", "home", "gecos", "password", "aging", "subid"):
                out.modify[(new, fld)] = source
        groups = [g for v in o.all("-G", "--groups") for g in v.split(",") if g]
        for g in groups:
            out.members[(name, g)] = source
        if groups and not o.has("-a", "--append"):
            out.unmembers.add((name, "*"))  # -G without -a replaces the list
    elif tool in ("userdel", "deluser", "groupdel", "delgroup"):
        o = parse_opts(args, "R", "--root --conf --backup-to")
        if tool in ("deluser", "delgroup") and len(o.pos) == 2:
            out.unmembers.add((o.pos[0], o.pos[1]))
        elif o.pos:
            out.removed.add(o.pos[0])
            out.unmembers.add((o.pos[0], "*"))
    elif tool == "passwd":
        o = parse_opts(args, "nxwiR", "--mindays --maxdays --warndays --inactive --root --repository")
        name = o.pos[-1] if o.pos else "root"  # RUN steps run as root: bare `passwd` is root's
        out.modify[(name, "password")] = source
        out.modify[(name, "lock")] = source
        out.modify[(name, "aging")] = source
    elif tool == "chpasswd":
        names = {m for m in _CHPASSWD_NAMES.findall(text) if m not in TOOLS}
        for n in names or {"*"}:  # the names come from its input; unknown input: any account but root
            out.modify[(_expand(n, env), "password")] = source
    elif tool == "chsh":
        o = parse_opts(args, "sR", "--shell --root")
        out.modify[(o.pos[-1] if o.pos else "root", "shell")] = source
    elif tool == "chfn":
        o = parse_opts(args, "fhorwR", "--full-name --home-phone --other --room --work-phone --root")
        out.modify[(o.pos[-1] if o.pos else "root", "gecos")] = source
    elif tool == "chage":
        o = parse_opts(args, "dEIimMWR", "--lastday --expiredate --inactive --mindays --maxdays --warndays --root")
        if o.pos:
            out.modify[(o.pos[-1], "aging")] = source
    elif tool == "groupmod":
        o = parse_opts(args, "gnpR", "--gid --new-name --password --root --prefix")
        if not o.pos:
            return
        name = o.pos[-1]
        if o.get("-g", "--gid"):
            out.modify[(name, "ggid")] = source
        if o.get("-p", "--password"):
            out.modify[(name, "gpassword")] = source
        new = o.get("-n", "--new-name")
        if new:
            out.removed.add(name)
            out.groups.setdefault(new, []).append(GroupSpec(source, tool, False, gid=None))
    elif tool == "gpasswd":
        o = parse_opts(args, "adMAQ", "--add --delete --members --administrators --root")
        if not o.pos:
            return
        group = o.pos[-1]
        for u in o.all("-a", "--add"):
            out.members[(u, group)] = source
        for u in o.all("-d", "--delete"):
            out.unmembers.add((u, group))
        for v in o.all("-M", "--members", "-A", "--administrators"):
            for u in v.split(","):
                out.members[(u, group)] = source
            out.unmembers.add(("*", group))
        if not (o.all("-a", "--add") or o.all("-d", "--delete") or o.all("-M", "--members")):
            out.modify[(group, "gpassword")] = source
    elif tool == "systemd-sysusers":
        out.opaque.append("systemd-sysusers")  # resolved against sysusers.d by entitled_by_scripts


def _sysusers(out: Entitled, data: bytes, source: str) -> None:
    """sysusers.d(5): `u NAME ID GECOS HOME SHELL`, `g NAME ID`, `m USER GROUP`."""
    for line in data[:MAX_SMALL].decode("utf-8", "replace").splitlines():
        try:
            words = [w for w in re.findall(r'"[^"]*"|\S+', line)]
        except re.error:  # pragma: no cover - the pattern is fixed
            continue
        if len(words) < 2 or words[0].startswith("#"):
            continue
        kind, name = words[0].rstrip("!"), words[1]
        ident = words[2] if len(words) > 2 and words[2] != "-" else None
        shell = words[5] if len(words) > 5 and words[5] != "-" else None
        home = words[4] if len(words) > 4 and words[4] != "-" else None
        if kind == "u":
            uid, _, gid = (ident or "").partition(":")
            out.users.setdefault(name, []).append(UserSpec(
                source, "systemd-sysusers", True, uid=uid if uid.isdigit() else None,
                gid=gid or (uid if uid.isdigit() else None), shell=shell or "/usr/sbin/nologin", home=home,
                user_group=not gid))
        elif kind == "g":
            out.groups.setdefault(name, []).append(GroupSpec(source, "systemd-sysusers", True,
                                                             gid=ident if ident and ident.isdigit() else None))
        elif kind == "m" and len(words) > 2:
            out.members[(name, words[2])] = source


def entitled_by_commands(shells: list[tuple[str, dict[str, str]]], runs_unknown_code: bool = False) -> Entitled:
    """The RUN commands of a step (text, known variables): the accounts they name."""
    out = Entitled()
    for text, env in shells:
        text = text or ""
        got = _scan(text, env, "command")
        got.direct = {p for p in ACCOUNT_PATHS if re.search(re.escape(p) + r"(?![\w-])", text)}
        out.merge(got)
    out.runs_unknown_code = runs_unknown_code
    return out


def entitled_by_scripts(scripts: dict[str, bytes], packages: set[str], sysusers: dict[str, bytes],
                        shipped_by: Callable[[str], str | None]) -> Entitled:
    """Maintainer scripts (path -> bytes) of the packages a step installed; `sysusers` holds
    the sysusers.d snippets in the image after the step, `shipped_by` names a path's package."""
    out = Entitled()
    for path, data in sorted(scripts.items()):
        pkg = path.rsplit("/", 1)[-1].rsplit(".", 1)[0].split(":", 1)[0]
        if pkg not in packages:
            continue
        text = data[:MAX_SCRIPT].decode("utf-8", "replace")
        if not any(t in text for t in TOOLS):
            continue
        source = f"package {pkg}"
        got = _scan(text, {}, source)
        got.text = ""  # a script's text is not the history's: lines in it explain nothing literally
        if "systemd-sysusers" in got.opaque:
            got.opaque = [o for o in got.opaque if o != "systemd-sysusers"]
            named = set(re.findall(r"systemd-sysusers\b[^\n;|&]*?([\w@.-]+\.conf)", text))
            for spath, sdata in sysusers.items():
                base = spath.rsplit("/", 1)[-1]
                if (base in named or not named) and shipped_by(spath) in packages:
                    _sysusers(got, sdata, source)
        if pkg == "base-passwd":
            got.base_passwd = True
        out.merge(got)
    return out


# --------------------------------------------------------------------------- judging


@dataclass
class Problem:
    severity: str  # critical, high, medium, low
    code: str  # history.unexplained-change or history.effect-mismatch
    text: str  # evidence in words: "adds user 'toor' with uid 0"
    name: str = ""


@dataclass
class FileVerdict:
    path: str
    problems: list[Problem] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def explained(self) -> bool:
        return not any(p.severity in ("critical", "high", "medium") for p in self.problems)

    def reason(self) -> str:
        shown = list(dict.fromkeys(self.reasons))
        more = f" and {len(shown) - 4} more" if len(shown) > 4 else ""
        return "account entries judged one by one: " + ("; ".join(shown[:4]) + more if shown else "no entry changed")


UNREADABLE = b"\x00unreadable"  # marker: the layer holds the file but its content was not captured
_SEVERITY = {"critical": 0, "high": 1, "medium": 2, "low": 3}


class _Judge:
    def __init__(self, before: dict[str, Parsed], after: dict[str, Parsed], ent: Entitled) -> None:
        self.b, self.a, self.ent = before, after, ent
        self.gid_of = {n: es[0].fields[2] for n, es in after["group"].entries.items()}
        self.priv_gids = {es[0].fields[2] for n, es in before["group"].entries.items() if n in PRIVILEGED_GROUPS}
        self.priv_gids.add("0")
        self.shadow_after = after["shadow"].entries

    # --- helpers ---

    def _specs(self, name: str) -> list[UserSpec]:
        return self.ent.users.get(name) or self.ent.users.get("*", [])

    def _gspecs(self, name: str) -> list:
        out: list = list(self.ent.groups.get(name, []))
        out += [s for s in self.ent.users.get(name, []) if s.user_group]
        return out or list(self.ent.groups.get("*", [])) + [s for s in self.ent.users.get("*", []) if s.user_group]

    def _named(self, path: str, name: str, line: str, out: FileVerdict | None = None) -> str | None:
        """The command writes this file itself (echo >>, sed -i): a line it spells out, or an
        entry of an account it names, is its doing. Where it spells out a whole entry for
        the name and the layer holds another one, that is an effect mismatch (put in `out`)."""
        main = path.rstrip("-")
        if main not in {p.rstrip("-") for p in self.ent.direct}:
            return None
        if line and line in self.ent.text:
            return f"'{name}' written literally by the command"
        if not name or not re.search(r"(?<![\w.-])" + re.escape(name) + r"(?![\w.-])", self.ent.text):
            return None
        width = _WIDTH[MAIN_FILES[main]]
        spelled = [m for m in re.findall(r"(?<![\w.-])" + re.escape(name) + r":[^'\"\n\\]*", self.ent.text)
                   if len(m.split(":")) == width]
        if spelled:
            if out is not None:
                f = line.split(":")
                bad = (MAIN_FILES[main] == "passwd" and len(f) > 3 and (f[2] == "0" or f[3] in self.priv_gids)) or (
                    name == "root")
                out.problems.append(Problem("critical" if bad else "high", "history.effect-mismatch",
                                            f"the command writes {spelled[0][:80]!r} for '{name}'; the layer holds "
                                            f"{line[:80]!r}", name))
            return "mismatch"
        return f"'{name}' edited by the command, which names it and {main}"

    def _unnamed(self, sev: str, text: str, name: str) -> Problem:
        """A change no command or script accounts for; weaker when the step runs unseen code."""
        if (self.ent.runs_unknown_code or self.ent.opaque) and sev == "high":
            sev = "medium"
            text += " (the step runs code the analysis cannot see into, so this is weaker evidence)"
        return Problem(sev, "history.unexplained-change", text, name)

    def _code(self, source: str) -> str:
        return "history.effect-mismatch" if source == "command" else "history.unexplained-change"

    # --- passwd ---

    def new_user(self, path: str, e: Entry, out: FileVerdict) -> None:
        f = e.fields
        name, pw, uid, gid, home, shell = f[0], f[1], f[2], f[3], f[5], f[6]
        desc = f"adds user '{name}' (uid {uid}, gid {gid}, home {home}, shell {shell or '/bin/sh'})"
        named = self._named(path, name, e.line, out)
        if named:
            if named != "mismatch":
                out.reasons.append(named)
            return
        dangers = []
        if uid == "0" or name == "root":
            dangers.append(("critical", "uid0", f"with uid {uid}" if name != "root" else "a second 'root' entry"))
        if gid in self.priv_gids:
            grp = next((n for n, g in self.gid_of.items() if g == gid), gid)
            dangers.append(("critical", "gid", f"with primary group '{grp}' (gid {gid})"))
        if pw not in ("x", "*", "!") and not _locked(pw):
            dangers.append(("high", "pw", "with an empty password field" if not pw else "with a password hash in /etc/passwd"))
        if home == "/root" and name != "root":
            dangers.append(("high", "home", "with root's home /root (and its .ssh)"))
        specs = self._specs(name)
        if not specs:
            sev = min([d[0] for d in dangers] + ["high"], key=_SEVERITY.get)
            extra = "".join(f", {d[2]}" for d in dangers)
            out.problems.append(self._unnamed(sev, f"{desc}{extra}: no command of the step and no maintainer "
                                                   f"script of its packages creates '{name}'", name))
            return
        best: list[Problem] | None = None
        for s in specs:
            got = self._check_user(s, f, dangers, desc)
            if best is None or len(got) < len(best) or (
                    len(got) == len(best) and min((_SEVERITY[p.severity] for p in got), default=9)
                    > min((_SEVERITY[p.severity] for p in best), default=9)):
                best = got
                chosen = s
            if not got:
                break
        out.problems += best or []
        if not any(p.severity != "low" for p in best or []):
            out.reasons.append(f"'{name}' created by {chosen.tool} ({chosen.source})")

    def _check_user(self, s: UserSpec, f: tuple[str, ...], dangers: list, desc: str) -> list[Problem]:
        name, pw, uid, gid, home, shell = f[0], f[1], f[2], f[3], f[5], f[6]
        cmd = s.source == "command"
        said = f"{s.tool} in {'the command' if cmd else 'the maintainer script of ' + s.source[8:]}"
        out: list[Problem] = []
        for sev, kind, text in dangers:
            waived = cmd and ((kind == "uid0" and s.uid == "0" and name != "root")
                              or (kind == "gid" and s.gid is not None and gid in (s.gid, self.gid_of.get(s.gid)))
                              or (kind == "pw" and s.password) or (kind == "home" and s.home == "/root"))
            if not waived:
                out.append(Problem(sev, self._code(s.source), f"{desc}, {text}; {said} does not ask for that", name))
        if s.uid and s.uid.isdigit():
            if uid != s.uid:
                out.append(Problem("high", self._code(s.source), f"{desc}; {said} asks for uid {s.uid}", name))
        elif uid != "0" and uid.isdigit() and int(uid) not in (SYSTEM_UIDS if s.system else USER_UIDS):
            kind = "a system account (uid below 1000)" if s.system else "a regular account (uid 1000 or above)"
            out.append(Problem("high", self._code(s.source), f"{desc}; {said} creates {kind}", name))
        if s.gid and s.gid.isdigit() and gid != s.gid or (
                s.gid and not s.gid.isdigit() and "*" not in s.gid and self.gid_of.get(s.gid, gid) != gid):
            out.append(Problem("high", self._code(s.source), f"{desc}; {said} asks for group {s.gid}", name))
        elif not s.gid and s.user_group and name in self.gid_of and self.gid_of[name] != gid:
            out.append(Problem("high", self._code(s.source),
                               f"{desc}; {said} gives it its own group '{name}' (gid {self.gid_of[name]})", name))
        if s.home and "*" not in s.home and posixpath.normpath(s.home) != posixpath.normpath(home or "/"):
            out.append(Problem("high", self._code(s.source), f"{desc}; {said} asks for home {s.home}", name))
        if s.shell and "*" not in s.shell:
            ok = shell == s.shell or (not shell and s.shell == "/bin/sh")
            expected = f"shell {s.shell}"
        elif s.tool == "adduser":
            ok = shell in (NO_LOGIN if s.system else ADDUSER_SHELLS)
            expected = "no login shell" if s.system else "the default shell"
        else:
            ok = shell in USERADD_SHELLS or bool(s.shell)
            expected = "the default shell"
        if not ok:
            out.append(Problem("high", self._code(s.source), f"{desc}; {said} gives it {expected}", name))
        elif not cmd and s.system and shell not in NO_LOGIN:
            sh = self.shadow_after.get(name)
            locked = bool(sh) and _locked(sh[0].fields[1])
            if locked:
                out.append(Problem("low", "history.unexplained-change",
                                   f"{desc}: a login shell for a system account, as {said} asks; its password is "
                                   f"locked", name))
            else:
                out.append(Problem("high", "history.unexplained-change",
                                   f"{desc}: a login shell for a system account with a usable password", name))
        return out

    def changed_user(self, path: str, old: Entry, new: Entry, out: FileVerdict) -> None:
        name = new.name
        named = self._named(path, name, new.line, out)
        if named:
            if named != "mismatch":
                out.reasons.append(named)
            return
        labels = {1: "password", 2: "uid", 3: "gid", 4: "gecos", 5: "home", 6: "shell"}
        for i, fld in labels.items():
            if old.fields[i] == new.fields[i]:
                continue
            what = f"changes the {fld} of existing account '{name}' from {old.fields[i]!r} to {new.fields[i]!r}"
            src = self.ent.may(name, fld) or (self.ent.may(name, "lock") if fld == "password" else None)
            if src == "command":
                out.reasons.append(f"{fld} of '{name}' set by the command")
                continue
            if src is None and self.ent.base_passwd and fld in ("gecos", "home") or (
                    fld == "shell" and self.ent.base_passwd and new.fields[6] in NO_LOGIN):
                out.reasons.append(f"{fld} of system account '{name}' updated by base-passwd's update-passwd")
                continue
            critical = name == "root" or (fld == "uid" and new.fields[2] == "0") or (
                fld == "gid" and new.fields[3] in self.priv_gids) or (
                fld == "password" and not _locked(new.fields[1]) and new.fields[1] != "x")
            sev = "critical" if critical else "high"
            if src is not None:  # a package script: never for an existing account
                out.problems.append(Problem(sev, "history.unexplained-change",
                                            f"{what}: a package install never explains that ({src})", name))
            elif self._command_names(name):
                out.problems.append(Problem(sev, "history.effect-mismatch",
                                            f"{what}; the command names '{name}' but does not change its {fld}",
                                            name))
            else:
                out.problems.append(self._unnamed(sev, f"{what}, which no command of the step names", name)
                                    if sev == "high" else Problem(sev, "history.unexplained-change",
                                                                  f"{what}, which no command of the step names", name))

    def _command_names(self, name: str) -> bool:
        e = self.ent
        return (any(s.source == "command" for s in e.users.get(name, []))
                or any(k[0] == name and v == "command" for k, v in e.modify.items())
                or any(k[0] == name and v == "command" for k, v in e.members.items()))

    # --- shadow ---

    def new_shadow(self, path: str, e: Entry, out: FileVerdict) -> None:
        name, pw = e.name, e.fields[1]
        named = self._named(path, name, e.line, out)
        if named:
            if named != "mismatch":
                out.reasons.append(named)
            return
        specs = self._specs(name)
        if not specs and not self.ent.opaque:
            out.problems.append(self._unnamed("critical" if name == "root" else "high",
                                              f"adds a shadow entry for '{name}', which no command of the step and no "
                                              f"maintainer script of its packages creates", name))
            return
        # A password set by a package script is never explained: no package ships a login credential.
        if _locked(pw) or any(s.password and s.source == "command" for s in specs) or (
                self.ent.may(name, "password") == "command"):
            out.reasons.append(f"shadow entry of '{name}'" + (" (locked)" if _locked(pw) else " (password set by the command)"))
            return
        what = "an empty password (no password needed to log in)" if not pw else "a usable password hash"
        src = specs[0].source if specs else "command"
        out.problems.append(Problem("critical" if name == "root" else "high",
                                    self._code(src) if specs else "history.unexplained-change",
                                    f"adds a shadow entry for '{name}' with {what}; "
                                    f"{'the command' if src == 'command' else 'the ' + src} does not set one", name))

    def changed_shadow(self, path: str, old: Entry, new: Entry, out: FileVerdict) -> None:
        name = new.name
        named = self._named(path, name, new.line, out)
        if named:
            if named != "mismatch":
                out.reasons.append(named)
            return
        o, n = old.fields, new.fields
        if o[1] != n[1]:
            src = self.ent.may(name, "password")
            toggled = o[1].lstrip("!") == n[1].lstrip("!")
            if src == "command" or (toggled and self.ent.may(name, "lock") == "command"):
                out.reasons.append(f"password of '{name}' set by the command")
            elif _locked(o[1]) and _locked(n[1]) and (toggled or not n[1].lstrip("!*")):
                out.reasons.append(f"'{name}' stays locked")
            else:
                what = f"changes the password hash of existing account '{name}'"
                if name == "root":
                    out.problems.append(Problem("critical", "history.unexplained-change"
                                                if not self._command_names(name) else "history.effect-mismatch",
                                                f"{what} (root's password)", name))
                elif src is not None:
                    out.problems.append(Problem("high", "history.unexplained-change",
                                                f"{what}: a package install never explains that ({src})", name))
                elif self._command_names(name):
                    out.problems.append(Problem("high", "history.effect-mismatch",
                                                f"{what}; the command names '{name}' but sets no password", name))
                else:
                    out.problems.append(self._unnamed("high", f"{what}, which no command of the step names", name))
            return
        if o[3:] != n[3:]:
            if self.ent.may(name, "aging") or self.ent.any_for(name):
                out.reasons.append(f"password aging of '{name}' set by the command")
            else:
                out.problems.append(self._unnamed("medium", f"changes the password aging of '{name}'", name))
        elif o[2] != n[2]:
            out.reasons.append(f"last-change date of '{name}'")

    # --- group / gshadow ---

    def _privileged(self, group: str) -> bool:
        return group in PRIVILEGED_GROUPS or self.gid_of.get(group) in self.priv_gids

    def members_added(self, group: str, users: Iterable[str], out: FileVerdict, role: str = "member") -> None:
        ent = self.ent
        for u in users:
            src = ent.members.get((u, group)) or ent.members.get((u, "*")) or ent.members.get(("*", group))
            what = f"adds '{u}' to group '{group}'" + (f" as {role}" if role != "member" else "")
            if self._privileged(group):
                if src == "command":
                    out.reasons.append(f"'{u}' added to '{group}' by the command")
                    continue
                pw = self.a["passwd"].entries.get(u)
                if src and group == "adm" and pw and pw[0].fields[6] in NO_LOGIN:
                    out.problems.append(Problem("low", "history.unexplained-change",
                                                f"{what} (log readers), as the {src} asks; '{u}' has no login shell", u))
                    continue
                code = "history.effect-mismatch" if self._command_names(u) else "history.unexplained-change"
                why = f": a package install never explains that ({src})" if src else ", which no command of the step asks"
                out.problems.append(Problem("critical", code, f"{what}, a privileged group{why}", u))
            elif src:
                out.reasons.append(f"'{u}' added to '{group}' ({src})")
            elif self._command_names(u):
                out.problems.append(Problem("high", "history.effect-mismatch",
                                            f"{what}; the command names '{u}' but not that group", u))
            else:
                out.problems.append(self._unnamed("high", f"{what}, which no command or script of the step asks", u))

    def members_removed(self, group: str, users: Iterable[str], out: FileVerdict) -> None:
        ent = self.ent
        for u in users:
            if (u, group) in ent.unmembers or (u, "*") in ent.unmembers or ("*", group) in ent.unmembers or (
                    u in ent.removed):
                out.reasons.append(f"'{u}' removed from '{group}' by the command")
            else:
                out.problems.append(self._unnamed("medium", f"removes '{u}' from group '{group}', which no command "
                                                            f"of the step asks", u))

    def new_group(self, path: str, e: Entry, kind: str, out: FileVerdict) -> None:
        name = e.name
        named = self._named(path, name, e.line, out)
        if named:
            if named != "mismatch":
                out.reasons.append(named)
            return
        members = [m for m in e.fields[3].split(",") if m]
        admins = [m for m in e.fields[2].split(",") if m] if kind == "gshadow" else []
        specs = self._gspecs(name)
        if kind == "group":
            gid = e.fields[2]
            desc = f"adds group '{name}' (gid {gid})"
            if gid in self.priv_gids and not any(
                    s.source == "command" and getattr(s, "gid", None) == gid for s in specs):
                holder = next((n for n, es in self.b["group"].entries.items() if es[0].fields[2] == gid), "root")
                out.problems.append(Problem("critical", "history.unexplained-change" if not specs else
                                            self._code(specs[0].source),
                                            f"{desc}, the gid of privileged group '{holder}'", name))
                return
        else:
            desc = f"adds a gshadow entry for group '{name}'"
        if not specs and not self.ent.opaque:
            out.problems.append(self._unnamed("high", f"{desc}, which no command of the step and no maintainer script "
                                                      f"of its packages creates", name))
            return
        if kind == "group" and specs:
            gid = e.fields[2]
            asked = [s.gid for s in specs if s.gid and s.gid.isdigit()]
            system = any(s.system for s in specs)
            if asked and gid not in asked:
                out.problems.append(Problem("high", self._code(specs[0].source), f"{desc}; {specs[0].tool} asks for "
                                                                                 f"gid {asked[0]}", name))
            elif not asked and gid.isdigit() and not (
                    int(gid) in SYSTEM_UIDS or (not system and int(gid) in USER_UIDS)):
                out.problems.append(Problem("high", self._code(specs[0].source),
                                            f"{desc}; {specs[0].tool} gives a {'system ' if system else ''}group "
                                            f"a gid in its range", name))
            else:
                out.reasons.append(f"group '{name}' created by {specs[0].tool} ({specs[0].source})")
        elif specs:
            out.reasons.append(f"gshadow entry of '{name}'")
        if kind == "gshadow" and e.fields[1] and not _locked(e.fields[1]) and not self.ent.may(name, "gpassword"):
            out.problems.append(self._unnamed("high", f"{desc} with a group password", name))
        given = {m for s in specs for m in getattr(s, "members", ())}
        self.members_added(name, [m for m in members if m not in given], out)
        self.members_added(name, [m for m in admins if m not in given], out, role="administrator")

    def changed_group(self, path: str, old: Entry, new: Entry, kind: str, out: FileVerdict) -> None:
        name = new.name
        named = self._named(path, name, new.line, out)
        if named:
            if named != "mismatch":
                out.reasons.append(named)
            return
        o, n = old.fields, new.fields
        if kind == "group" and o[2] != n[2]:
            src = self.ent.may(name, "ggid")
            if src == "command":
                out.reasons.append(f"gid of '{name}' set by the command")
            else:
                sev = "critical" if n[2] in self.priv_gids or name in PRIVILEGED_GROUPS else "high"
                out.problems.append(Problem(sev, "history.unexplained-change",
                                            f"changes the gid of group '{name}' from {o[2]} to {n[2]}", name))
        if o[1] != n[1] and not (_locked(o[1]) and _locked(n[1])) and o[1] != "x" and n[1] != "x":
            if self.ent.may(name, "gpassword"):
                out.reasons.append(f"password of group '{name}' set by the command")
            else:
                out.problems.append(self._unnamed("high", f"changes the password of group '{name}'", name))
        cols = [(3, "member")] + ([(2, "administrator")] if kind == "gshadow" else [])
        for i, role in cols:
            before = [m for m in o[i].split(",") if m]
            after = [m for m in n[i].split(",") if m]
            self.members_added(name, [m for m in after if m not in before], out, role)
            self.members_removed(name, [m for m in before if m not in after], out)

    # --- removal, other lines, subordinate ids ---

    def removed(self, path: str, names: list[str], out: FileVerdict) -> None:
        bad = []
        for n in names:
            if n in self.ent.removed or self._named(path, n, ""):
                out.reasons.append(f"'{n}' removed by the command")
            else:
                bad.append(n)
        if bad:
            shown = ", ".join(f"'{n}'" for n in bad[:8]) + (f" and {len(bad) - 8} more" if len(bad) > 8 else "")
            out.problems.append(self._unnamed("high", f"removes the entries of {shown}, which no command of the "
                                                      f"step deletes", bad[0]))

    def other_line(self, path: str, line: str, out: FileVerdict) -> None:
        if line in self.ent.text and self._named(path, "", line):
            out.reasons.append("a line written literally by the command")
            return
        nis = line[:1] in "+-"
        shown = line if len(line) <= 80 else line[:77] + "..."
        out.problems.append(self._unnamed("high" if nis else "medium",
                                          f"adds a line that is not an account entry: {shown!r}"
                                          + (" (an NIS compat entry: it can admit accounts from elsewhere)" if nis else ""),
                                          ""))

    def subids(self, path: str, before: Parsed, after: Parsed, out: FileVerdict) -> None:
        for name in set(before.entries) | set(after.entries):
            b = {e.line for e in before.entries.get(name, [])}
            a = {e.line for e in after.entries.get(name, [])}
            for line in sorted(a - b):
                if self._named(path, name, line) or self.ent.may(name, "subid") or self.ent.opaque or any(
                        not s.system for s in self._specs(name)):
                    out.reasons.append(f"subordinate ids of '{name}'")
                else:
                    out.problems.append(self._unnamed("high", f"gives '{name}' subordinate ids {line.split(':', 1)[1]}, "
                                                              f"which no command of the step asks", name))
            for line in sorted(b - a):
                if name in self.ent.removed or self.ent.may(name, "subid") or self.ent.opaque:
                    out.reasons.append(f"subordinate ids of '{name}' removed")
                else:
                    out.problems.append(self._unnamed("medium", f"removes subordinate ids {line!r}", name))


def _diff(j: _Judge, path: str, kind: str, before: Parsed, after: Parsed, out: FileVerdict) -> None:
    if kind == "subid":
        j.subids(path, before, after, out)
        return
    new_entry = {"passwd": j.new_user, "shadow": j.new_shadow}.get(kind)
    changed = {"passwd": j.changed_user, "shadow": j.changed_shadow}.get(kind)
    gone: list[str] = []
    for name in list(dict.fromkeys([*before.entries, *after.entries])):
        b = before.entries.get(name, [])
        a = after.entries.get(name, [])
        if [e.line for e in b] == [e.line for e in a]:
            continue
        if len(b) == 1 and len(a) == 1:
            if changed:
                changed(path, b[0], a[0], out)
            else:
                j.changed_group(path, b[0], a[0], kind, out)
            continue
        old_lines = {e.line for e in b}
        for e in a:
            if e.line in old_lines:
                continue
            if b:  # a second entry under an existing name: the first one wins lookups, others may not
                sev = "critical" if name == "root" or (kind == "passwd" and e.fields[2] == "0") else "high"
                out.problems.append(Problem(sev, "history.unexplained-change",
                                            f"adds a second entry for existing name '{name}': {e.line[:80]!r}", name))
            elif new_entry:
                new_entry(path, e, out)
            else:
                j.new_group(path, e, kind, out)
        if b and not a:
            gone.append(name)
    if gone:
        j.removed(path, gone, out)
    for line in after.other:
        if line not in before.other:
            j.other_line(path, line, out)


def judge_files(before: dict[str, bytes | None], after: dict[str, bytes | None], ent: Entitled) -> list[FileVerdict]:
    """`before`: account files (path -> bytes, None when absent) as the lower layers leave them;
    `after`: the files this layer changes (None: deleted, UNREADABLE: not captured).
    Returns one verdict per path of `after`."""
    def parsed(src: dict[str, bytes | None], path: str) -> Parsed:
        data = src.get(path)
        return parse(MAIN_FILES[path], data if data != UNREADABLE else None)

    merged = {p: (after[p] if p in after else before.get(p)) for p in MAIN_FILES}
    b = {MAIN_FILES[p]: parsed(before, p) for p in ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")}
    a = {MAIN_FILES[p]: parsed(merged, p) for p in ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")}
    j = _Judge(b, a, ent)
    out: list[FileVerdict] = []
    for path in sorted(after):
        v = FileVerdict(path)
        out.append(v)
        data = after[path]
        main = BACKUPS.get(path, path)
        if main not in MAIN_FILES:
            continue
        kind = MAIN_FILES[main]
        if data == UNREADABLE:
            v.problems.append(Problem("high", "history.unexplained-change",
                                      f"{path} could not be judged: larger than {MAX_FILE} bytes or unreadable"))
            continue
        if data is None:
            if path in ent.direct or path in BACKUPS:
                v.reasons.append(f"{path} deleted")
            else:
                v.problems.append(j._unnamed("high", f"deletes {path}, which no command of the step names", ""))
            continue
        now = parse(kind, data)
        base = parsed(before, main)
        if path in BACKUPS:
            # shadow-utils writes the previous version here: any line some version of the file had.
            known = base.lines | parse(kind, before.get(path) if before.get(path) != UNREADABLE else None).lines
            known |= parse(kind, merged[main] if merged[main] != UNREADABLE else None).lines
            extra = [ln for ln in now.lines if ln not in known]
            if not extra:
                v.reasons.append(f"backup of {main} holding lines of its earlier versions")
                continue
            now = Parsed(entries={k: list(es) for k, es in base.entries.items()}, other=list(base.other))
            for ln in extra:
                one = parse(kind, ln.encode())
                for name, es in one.entries.items():
                    now.entries[name] = es
                now.other += one.other
        _diff(j, path, kind, base, now, v)
    return out


# --------------------------------------------------------------------------- the step hook


class AccountState:
    """Account files and the other small files taken from the pass (sysusers.d snippets,
    unit files) as the layers so far leave them."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    @staticmethod
    def take(captured: dict[str, bytes], also: Callable[[str], bool] = lambda p: False) -> dict[str, bytes]:
        """Move this module's files (and those `also` names: unit files) out of a layer's
        captured set (the package parser would reparse its databases for each of them)."""
        mine = {p: d for p, d in captured.items()
                if p in ACCOUNT_PATHS or p.startswith(SYSUSERS_DIRS) or also(p)}
        for p in mine:
            del captured[p]
        return mine

    def content(self, layer_files: dict[str, bytes], entries: dict, path: str) -> bytes | None:
        """This layer's version of an account file: its bytes, a hardlink's target, or UNREADABLE."""
        e = entries.get(path)
        if path in layer_files:
            return layer_files[path]
        if e is not None and e.type == "hardlink" and e.link:
            return layer_files.get(e.link, self.files.get(e.link, UNREADABLE))
        return UNREADABLE if e is not None else None

    def apply(self, layer_files: dict[str, bytes], entries: dict, deleted: set[str]) -> None:
        for p in [p for p in self.files if p in deleted]:
            del self.files[p]
        for p, e in entries.items():
            if p in ACCOUNT_PATHS and e.type in ("file", "hardlink"):
                self.files[p] = self.content(layer_files, entries, p) or b""
            elif p in ACCOUNT_PATHS:
                self.files[p] = UNREADABLE
        for p, d in layer_files.items():
            if p not in ACCOUNT_PATHS:
                self.files[p] = d


# Existing explanations this module re-judges: the command's or the packages'. A COPY/ADD
# destination brings content from outside; nothing here can say what it should be.
_REJUDGE = ("written by the command", "named by the command", "file of a package installed by this step",
            "written by a maintainer script of a package this step installed", "package manager bookkeeping",
            "parent directory of an explained change")


@dataclass
class StepResult:
    findings: list[Finding] = field(default_factory=list)
    reported: set[str] = field(default_factory=set)  # paths whose findings are here, not in the generic one


def judge_step(changes: list[PathChange], ctx, state: AccountState, layer_files: dict[str, bytes],
               scripts: dict[str, bytes], owners: dict, env_of: Callable[[int], dict[str, str]], *,
               image: int, created_by: str | None) -> StepResult:
    """Judge the account-file changes of one step and set their `explained_by`.

    `ctx` is the explain.StepContext of the step, `state` the files below this layer,
    `layer_files` this layer's captured account files, `scripts` the captured maintainer
    scripts (path -> bytes), `owners` path -> package of the package databases after
    this layer, `env_of(i)` the variables known at history entry i. Unexplained
    entries come back as findings; their paths are in `reported`."""
    res = StepResult()
    todo = [c for c in changes if c.path in ACCOUNT_PATHS and c.what != ["metadata"]
            and (c.explained_by is None or c.explained_by in _REJUDGE)]
    if not todo or ctx.squashed_base or any(i.kind in ("BASE", "IMPORT", "COMMIT", "FROM", "UNKNOWN")
                                            or (i.kind in ("ADD", "COPY") and (i.dest or "").rstrip("/") == "")
                                            for i in ctx.instructions):
        return res
    shells = []
    for n, ins in enumerate(ctx.instructions):
        if ins.kind == "RUN":
            text = ins.shell if ins.shell is not None else " ".join(ins.argv or [])
            idx = ctx.group[n] if n < len(ctx.group) else ctx.history_index
            shells.append((text, {**env_of(idx), **ins.build_args}))
    ent = entitled_by_commands(shells, runs_unknown_code=any(e.opaque for e in ctx.effects))
    if ctx.package_step and ctx.generated is not None:
        sysusers = {p: d for p, d in {**state.files, **layer_files}.items() if p.startswith(SYSUSERS_DIRS)}
        shipped = lambda p: getattr(owners.get(p) or owners.get(p.removeprefix("/usr")), "name", None)  # noqa: E731
        ent.merge(entitled_by_scripts(scripts, ctx.generated.touched, sysusers, shipped))
    after: dict[str, bytes | None] = {}
    for c in todo:
        entry = ctx.entries.get(c.path)
        if c.change == "deleted":
            after[c.path] = None
        elif entry is not None and entry.type == "symlink":
            after[c.path] = UNREADABLE if c.path not in ent.direct else b""
        else:
            after[c.path] = state.content(layer_files, ctx.entries, c.path)
    before = {p: d for p, d in state.files.items() if p in ACCOUNT_PATHS}
    line = (created_by or "").strip()
    line = line if len(line) <= 160 else line[:157] + "..."
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for v in judge_files(before, after, ent):
        ch = next(c for c in todo if c.path == v.path)
        entry = ctx.entries.get(v.path)
        if entry is not None and entry.type == "symlink" and v.path not in ent.direct:
            v.problems = [Problem("high", "history.unexplained-change",
                                  f"replaces {v.path} with a symlink to {entry.link}, which no command of the step asks")]
        if v.explained:
            ch.explained_by = v.reason()
        else:
            ch.explained_by = None
            res.reported.add(v.path)
        for p in v.problems:
            grouped.setdefault((p.code, p.severity, p.text), []).append(v.path)
    per_kind: dict[tuple[str, str], int] = {}
    rest: dict[tuple[str, str], list[str]] = {}
    for (code, severity, text), paths in list(grouped.items()):
        n = per_kind[(code, severity)] = per_kind.get((code, severity), 0) + 1
        if n > MAX_FINDINGS:  # thousands of forged lines make one summary, not thousands of findings
            rest.setdefault((code, severity), []).append(text)
            del grouped[(code, severity, text)]
    for (code, severity), texts in rest.items():
        grouped[(code, severity, f"{len(texts)} more account problems like these, the first: {texts[0]}")] = [
            p for v in todo for p in [v.path] if p in res.reported][:1] or [todo[0].path]
    for (code, severity, text), paths in grouped.items():
        files = ", ".join(paths)
        res.findings.append(finding(
            code, severity, f"history[{ctx.history_index}]",
            f"layer {ctx.layer_index} {files}: {text}; history[{ctx.history_index}] ({line!r})",
            image=image, history=ctx.history_index, layer=ctx.layer_index, path=paths[0],
            evidence={"files": paths, "problem": text, "commands": ent.tools[:20]}))
    return res
