"""What a step may do to the account files: the accounts its commands and its packages' scripts name.

Both RUN commands and dpkg maintainer scripts are read the same way: the simple
commands whose command word (past `sudo`, `chroot DIR`, `in_sysroot` and the like)
is an account tool, with plain variable assignments substituted. Each becomes a
typed record of what that tool makes: `useradd -r -s /sbin/nologin svc` is a
system account named svc with that shell and a group of its own. sysusers.d
snippets named by `systemd-sysusers` in a script are read as well. Never raises;
scripts are read up to MAX_SCRIPT bytes.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from forensics.history.shellwords import parse_opts, tokenize

MAX_SCRIPT = 1 << 20
MAX_SMALL = 64 << 10  # sysusers.d snippets


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
        for user, specs in other.users.items():
            self.users.setdefault(user, []).extend(specs)
        for group, gspecs in other.groups.items():
            self.groups.setdefault(group, []).extend(gspecs)
        for pair, member in other.members.items():
            self.members.setdefault(pair, member)
        self.unmembers |= other.unmembers
        for pair, change in other.modify.items():
            self.modify.setdefault(pair, change)
        self.removed |= other.removed
        self.opaque += other.opaque
        self.text += "\n" + other.text
        self.direct |= other.direct
        self.runs_unknown_code |= other.runs_unknown_code
        self.base_passwd |= other.base_passwd
        self.tools += other.tools

    def any_for(self, name: str) -> bool:
        return (
            name in self.users
            or name in self.groups
            or name in self.removed
            or any(k[0] == name for k in self.modify)
            or any(name in k for k in self.members)
        )

    def may(self, name: str, fld: str) -> str | None:
        """The source entitled to change `fld` of `name`'s entry, if any."""
        return self.modify.get((name, fld)) or (self.modify.get(("*", fld)) if name != "root" else None)


TOOLS = frozenset(
    """
    useradd adduser usermod userdel deluser groupadd addgroup groupmod groupdel delgroup passwd chpasswd
    gpasswd chsh chfn chage newusers pwconv grpconv pwunconv grpunconv vipw vigr systemd-sysusers
    chgpasswd groupmems
""".split()
)
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


_TOOL_RE = re.compile(
    r"(?<![\w.-])(?:" + "|".join(sorted(map(re.escape, TOOLS), key=len, reverse=True)) + r")(?![\w.-])"
)
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
        while i < len(words) and (assign := _ASSIGN.match(words[i])):
            k, v = assign.groups()
            env[k] = _expand(v, env)
            i += 1
        tool_at = _tool_position(words, i)
        if tool_at is None:
            continue
        tool = posixpath.basename(words[tool_at])
        args: list[str | None] = []
        for w in words[tool_at + 1 :]:
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
        words_out = known if positional else [a if a is not None else "*" for a in args]
        _apply(out, tool, words_out, source, text, env)
    return out


def _apply(out: Entitled, tool: str, args: list[str], source: str, text: str, env: dict[str, str]) -> None:
    out.tools.append(" ".join([tool] + args)[:120])
    if tool in _OPAQUE_TOOLS:
        out.opaque.append(tool)
        return
    if tool == "useradd":
        o = parse_opts(
            args,
            "bcdefgGkKpsuZRP",
            "--base-dir --comment --home-dir --home --expiredate --inactive "
            "--gid --groups --skel --key --password --shell --uid --selinux-user --root --prefix",
        )
        if not o.pos:
            return
        name = o.pos[-1]
        groups = [g for v in o.all("-G", "--groups") for g in v.split(",") if g]
        out.users.setdefault(name, []).append(
            UserSpec(
                source,
                tool,
                o.has("-r", "--system"),
                uid=o.get("-u", "--uid"),
                gid=o.get("-g", "--gid"),
                shell=o.get("-s", "--shell"),
                home=o.get("-d", "--home-dir", "--home"),
                password=bool(o.get("-p", "--password")),
                user_group=not (o.has("-N", "--no-user-group") or o.get("-g", "--gid")) or o.has("-U", "--user-group"),
                non_unique=o.has("-o", "--non-unique"),
            )
        )
        for g in groups:
            out.members[(name, g)] = source
    elif tool == "adduser":
        o = parse_opts(
            args,
            "hgsGuk",
            "--home --shell --uid --gid --ingroup --gecos --comment --firstuid --lastuid "
            "--firstgid --lastgid --conf --add-extra-groups",
        )
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
        out.users.setdefault(name, []).append(
            UserSpec(
                source,
                tool,
                system or o.has("-S"),
                uid=o.get("--uid", "-u"),
                gid=o.get("--gid") or group,
                shell=o.get("--shell", "-s"),
                home=o.get("--home", "-h"),
                user_group=(o.has("--group") or not system) and not group and not o.get("--gid"),
            )
        )
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
        out.groups.setdefault(name, []).append(
            GroupSpec(
                source,
                tool,
                o.has("-r", "--system", "-S"),
                gid=o.get("-g", "--gid"),
                members=members,
                non_unique=o.has("-o", "--non-unique"),
            )
        )
        for u in members:
            out.members[(u, name)] = source
        if o.get("-p", "--password"):
            out.modify[(name, "gpassword")] = source
    elif tool == "usermod":
        o = parse_opts(
            args,
            "cdegGlLpsuUfvVwW",
            "--comment --home --expiredate --gid --groups --login --password "
            "--shell --uid --inactive --add-subuids --del-subuids --add-subgids --del-subgids --root "
            "--prefix --selinux-user",
        )
        if not o.pos:
            return
        name = o.pos[-1]
        for opts, fld in (
            (("-c", "--comment"), "gecos"),
            (("-d", "--home"), "home"),
            (("-g", "--gid"), "gid"),
            (("-s", "--shell"), "shell"),
            (("-u", "--uid"), "uid"),
            (("-p", "--password"), "password"),
            (("-e", "--expiredate", "-f", "--inactive"), "aging"),
            (("-v", "--add-subuids", "-w", "--add-subgids", "-V", "--del-subuids", "-W", "--del-subgids"), "subid"),
        ):
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
            out.users.setdefault(name, []).append(
                UserSpec(
                    source,
                    "systemd-sysusers",
                    True,
                    uid=uid if uid.isdigit() else None,
                    gid=gid or (uid if uid.isdigit() else None),
                    shell=shell or "/usr/sbin/nologin",
                    home=home,
                    user_group=not gid,
                )
            )
        elif kind == "g":
            out.groups.setdefault(name, []).append(
                GroupSpec(source, "systemd-sysusers", True, gid=ident if ident and ident.isdigit() else None)
            )
        elif kind == "m" and len(words) > 2:
            out.members[(name, words[2])] = source


def entitled_by_commands(
    shells: list[tuple[str, dict[str, str]]], runs_unknown_code: bool = False, account_paths: Iterable[str] = ()
) -> Entitled:
    """The RUN commands of a step (text, known variables): the accounts they name, and which
    of `account_paths` they name literally (`echo ... >> /etc/passwd`, `sed -i ... /etc/shadow`)."""
    out = Entitled()
    for text, env in shells:
        text = text or ""
        got = _scan(text, env, "command")
        got.direct = {p for p in account_paths if re.search(re.escape(p) + r"(?![\w-])", text)}
        out.merge(got)
    out.runs_unknown_code = runs_unknown_code
    return out


def entitled_by_scripts(
    scripts: dict[str, bytes], packages: set[str], sysusers: dict[str, bytes], shipped_by: Callable[[str], str | None]
) -> Entitled:
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
