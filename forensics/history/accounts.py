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

API: `accountcmds.entitled_by_commands` / `entitled_by_scripts` collect what a
step may do; `judge_files(before, after, entitled)` returns one `FileVerdict` per changed
account file; `judge_step` applies them to a step's PathChanges and returns the
findings (history.unexplained-change or history.effect-mismatch). Hostile input:
files are bounded and parsed without raising.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from forensics.findings import Code, finding
from forensics.history.accountcmds import (
    MAX_SMALL,
    Entitled,
    GroupSpec,
    UserSpec,
    entitled_by_commands,
    entitled_by_scripts,
)
from forensics.models import Finding, PathChange
from forensics.paths import norm_layer_path

RAISES: tuple[Code, ...] = ("history.effect-mismatch", "history.unexplained-change")

MAIN_FILES = {
    "/etc/passwd": "passwd",
    "/etc/group": "group",
    "/etc/shadow": "shadow",
    "/etc/gshadow": "gshadow",
    "/etc/subuid": "subid",
    "/etc/subgid": "subid",
}
BACKUPS = {f"{p}-": p for p in MAIN_FILES}  # shadow-utils' copy of the previous version
ACCOUNT_PATHS = frozenset(MAIN_FILES) | frozenset(BACKUPS)
SYSUSERS_DIRS = ("/usr/lib/sysusers.d/", "/lib/sysusers.d/")
MAX_FILE = 4 << 20  # bytes captured per account file; /etc/passwd of a big host is ~100 KiB
MAX_ENTRIES = 200_000
MAX_FINDINGS = 8  # per code and severity in one step; the rest are summed up in one more
TAILS = ("passwd", "group", "shadow", "passwd-", "group-", "shadow-", "subuid", "subgid", "subuid-", "subgid-", ".conf")

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
        if (
            len(parts) != width
            or not parts[0]
            or parts[0][0] in "#+-"
            or (kind == "passwd" and not (parts[2].isdigit() and parts[3].isdigit()))
            or (kind == "group" and not parts[2].isdigit())
        ):
            out.other.append(line)
            continue
        out.entries.setdefault(parts[0], []).append(Entry(parts[0], tuple(parts), line))
    return out


def _locked(pw: str) -> bool:
    """A password field no one can log in with: `*`, `!`, `!!`, `!<hash>` (usermod -L), `x` in group."""
    return pw.startswith(("!", "*"))


# --------------------------------------------------------------------------- judging


@dataclass
class Problem:
    severity: str  # critical, high, medium, low
    code: Code  # history.unexplained-change or history.effect-mismatch
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
_SEVERITY: dict[str, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}


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
        spelled = [
            m
            for m in re.findall(r"(?<![\w.-])" + re.escape(name) + r":[^'\"\n\\]*", self.ent.text)
            if len(m.split(":")) == width
        ]
        if spelled:
            if out is not None:
                f = line.split(":")
                bad = (MAIN_FILES[main] == "passwd" and len(f) > 3 and (f[2] == "0" or f[3] in self.priv_gids)) or (
                    name == "root"
                )
                out.problems.append(
                    Problem(
                        "critical" if bad else "high",
                        "history.effect-mismatch",
                        f"the command writes {spelled[0][:80]!r} for '{name}'; the layer holds {line[:80]!r}",
                        name,
                    )
                )
            return "mismatch"
        return f"'{name}' edited by the command, which names it and {main}"

    def _by_command(self, path: str, name: str, line: str, out: FileVerdict) -> bool:
        """The command itself writes this entry (see _named): its reason, or its mismatch,
        is recorded in `out`, and nothing else is to be judged."""
        named = self._named(path, name, line, out)
        if named and named != "mismatch":
            out.reasons.append(named)
        return bool(named)

    def _unnamed(self, sev: str, text: str, name: str) -> Problem:
        """A change no command or script accounts for; weaker when the step runs unseen code."""
        if (self.ent.runs_unknown_code or self.ent.opaque) and sev == "high":
            sev = "medium"
            text += " (the step runs code the analysis cannot see into, so this is weaker evidence)"
        return Problem(sev, "history.unexplained-change", text, name)

    def _code(self, source: str) -> Code:
        return "history.effect-mismatch" if source == "command" else "history.unexplained-change"

    # --- passwd ---

    def new_user(self, path: str, e: Entry, out: FileVerdict) -> None:
        f = e.fields
        name, pw, uid, gid, home, shell = f[0], f[1], f[2], f[3], f[5], f[6]
        desc = f"adds user '{name}' (uid {uid}, gid {gid}, home {home}, shell {shell or '/bin/sh'})"
        if self._by_command(path, name, e.line, out):
            return
        dangers = []
        if uid == "0" or name == "root":
            dangers.append(("critical", "uid0", f"with uid {uid}" if name != "root" else "a second 'root' entry"))
        if gid in self.priv_gids:
            grp = next((n for n, g in self.gid_of.items() if g == gid), gid)
            dangers.append(("critical", "gid", f"with primary group '{grp}' (gid {gid})"))
        if pw not in ("x", "*", "!") and not _locked(pw):
            dangers.append(
                ("high", "pw", "with an empty password field" if not pw else "with a password hash in /etc/passwd")
            )
        if home == "/root" and name != "root":
            dangers.append(("high", "home", "with root's home /root (and its .ssh)"))
        specs = self._specs(name)
        if not specs:
            sev = min([d[0] for d in dangers] + ["high"], key=lambda s: _SEVERITY.get(s, 9))
            extra = "".join(f", {d[2]}" for d in dangers)
            out.problems.append(
                self._unnamed(
                    sev,
                    f"{desc}{extra}: no command of the step and no maintainer script of its packages creates '{name}'",
                    name,
                )
            )
            return
        best: list[Problem] | None = None
        for s in specs:
            got = self._check_user(s, f, dangers, desc)
            if (
                best is None
                or len(got) < len(best)
                or (
                    len(got) == len(best)
                    and min((_SEVERITY[p.severity] for p in got), default=9)
                    > min((_SEVERITY[p.severity] for p in best), default=9)
                )
            ):
                best = got
                chosen = s
            if not got:
                break
        out.problems += best or []
        if not any(p.severity != "low" for p in best or []):
            out.reasons.append(f"'{name}' created by {chosen.tool} ({chosen.source})")

    def _check_user(self, s: UserSpec, f: tuple[str, ...], dangers: list, desc: str) -> list[Problem]:
        name, uid, gid, home, shell = f[0], f[2], f[3], f[5], f[6]
        cmd = s.source == "command"
        said = f"{s.tool} in {'the command' if cmd else 'the maintainer script of ' + s.source[8:]}"
        out: list[Problem] = []
        for sev, kind, text in dangers:
            waived = cmd and (
                (kind == "uid0" and s.uid == "0" and name != "root")
                or (kind == "gid" and s.gid is not None and gid in (s.gid, self.gid_of.get(s.gid)))
                or (kind == "pw" and s.password)
                or (kind == "home" and s.home == "/root")
            )
            if not waived:
                out.append(Problem(sev, self._code(s.source), f"{desc}, {text}; {said} does not ask for that", name))
        if s.uid and s.uid.isdigit():
            if uid != s.uid:
                out.append(Problem("high", self._code(s.source), f"{desc}; {said} asks for uid {s.uid}", name))
        elif uid != "0" and uid.isdigit() and int(uid) not in (SYSTEM_UIDS if s.system else USER_UIDS):
            kind = "a system account (uid below 1000)" if s.system else "a regular account (uid 1000 or above)"
            out.append(Problem("high", self._code(s.source), f"{desc}; {said} creates {kind}", name))
        if (
            s.gid
            and s.gid.isdigit()
            and gid != s.gid
            or (s.gid and not s.gid.isdigit() and "*" not in s.gid and self.gid_of.get(s.gid, gid) != gid)
        ):
            out.append(Problem("high", self._code(s.source), f"{desc}; {said} asks for group {s.gid}", name))
        elif not s.gid and s.user_group and name in self.gid_of and self.gid_of[name] != gid:
            out.append(
                Problem(
                    "high",
                    self._code(s.source),
                    f"{desc}; {said} gives it its own group '{name}' (gid {self.gid_of[name]})",
                    name,
                )
            )
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
            locked = bool(sh) and sh is not None and _locked(sh[0].fields[1])
            if locked:
                out.append(
                    Problem(
                        "low",
                        "history.unexplained-change",
                        f"{desc}: a login shell for a system account, as {said} asks; its password is locked",
                        name,
                    )
                )
            else:
                out.append(
                    Problem(
                        "high",
                        "history.unexplained-change",
                        f"{desc}: a login shell for a system account with a usable password",
                        name,
                    )
                )
        return out

    def changed_user(self, path: str, old: Entry, new: Entry, out: FileVerdict) -> None:
        name = new.name
        if self._by_command(path, name, new.line, out):
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
            if (
                src is None
                and self.ent.base_passwd
                and fld in ("gecos", "home")
                or (fld == "shell" and self.ent.base_passwd and new.fields[6] in NO_LOGIN)
            ):
                out.reasons.append(f"{fld} of system account '{name}' updated by base-passwd's update-passwd")
                continue
            critical = (
                name == "root"
                or (fld == "uid" and new.fields[2] == "0")
                or (fld == "gid" and new.fields[3] in self.priv_gids)
                or (fld == "password" and not _locked(new.fields[1]) and new.fields[1] != "x")
            )
            sev = "critical" if critical else "high"
            if src is not None:  # a package script: never for an existing account
                out.problems.append(
                    Problem(
                        sev,
                        "history.unexplained-change",
                        f"{what}: a package install never explains that ({src})",
                        name,
                    )
                )
            elif self._command_names(name):
                out.problems.append(
                    Problem(
                        sev,
                        "history.effect-mismatch",
                        f"{what}; the command names '{name}' but does not change its {fld}",
                        name,
                    )
                )
            else:
                out.problems.append(
                    self._unnamed(sev, f"{what}, which no command of the step names", name)
                    if sev == "high"
                    else Problem(sev, "history.unexplained-change", f"{what}, which no command of the step names", name)
                )

    def _command_names(self, name: str) -> bool:
        e = self.ent
        return (
            any(s.source == "command" for s in e.users.get(name, []))
            or any(k[0] == name and v == "command" for k, v in e.modify.items())
            or any(k[0] == name and v == "command" for k, v in e.members.items())
        )

    # --- shadow ---

    def new_shadow(self, path: str, e: Entry, out: FileVerdict) -> None:
        name, pw = e.name, e.fields[1]
        if self._by_command(path, name, e.line, out):
            return
        specs = self._specs(name)
        if not specs and not self.ent.opaque:
            out.problems.append(
                self._unnamed(
                    "critical" if name == "root" else "high",
                    f"adds a shadow entry for '{name}', which no command of the step and no "
                    f"maintainer script of its packages creates",
                    name,
                )
            )
            return
        # A password set by a package script is never explained: no package ships a login credential.
        if (
            _locked(pw)
            or any(s.password and s.source == "command" for s in specs)
            or (self.ent.may(name, "password") == "command")
        ):
            out.reasons.append(
                f"shadow entry of '{name}'" + (" (locked)" if _locked(pw) else " (password set by the command)")
            )
            return
        what = "an empty password (no password needed to log in)" if not pw else "a usable password hash"
        src = specs[0].source if specs else "command"
        out.problems.append(
            Problem(
                "critical" if name == "root" else "high",
                self._code(src) if specs else "history.unexplained-change",
                f"adds a shadow entry for '{name}' with {what}; "
                f"{'the command' if src == 'command' else 'the ' + src} does not set one",
                name,
            )
        )

    def changed_shadow(self, path: str, old: Entry, new: Entry, out: FileVerdict) -> None:
        name = new.name
        if self._by_command(path, name, new.line, out):
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
                    out.problems.append(
                        Problem(
                            "critical",
                            "history.unexplained-change"
                            if not self._command_names(name)
                            else "history.effect-mismatch",
                            f"{what} (root's password)",
                            name,
                        )
                    )
                elif src is not None:
                    out.problems.append(
                        Problem(
                            "high",
                            "history.unexplained-change",
                            f"{what}: a package install never explains that ({src})",
                            name,
                        )
                    )
                elif self._command_names(name):
                    out.problems.append(
                        Problem(
                            "high",
                            "history.effect-mismatch",
                            f"{what}; the command names '{name}' but sets no password",
                            name,
                        )
                    )
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
                    out.problems.append(
                        Problem(
                            "low",
                            "history.unexplained-change",
                            f"{what} (log readers), as the {src} asks; '{u}' has no login shell",
                            u,
                        )
                    )
                    continue
                code: Code = "history.effect-mismatch" if self._command_names(u) else "history.unexplained-change"
                why = (
                    f": a package install never explains that ({src})" if src else ", which no command of the step asks"
                )
                out.problems.append(Problem("critical", code, f"{what}, a privileged group{why}", u))
            elif src:
                out.reasons.append(f"'{u}' added to '{group}' ({src})")
            elif self._command_names(u):
                out.problems.append(
                    Problem("high", "history.effect-mismatch", f"{what}; the command names '{u}' but not that group", u)
                )
            else:
                out.problems.append(self._unnamed("high", f"{what}, which no command or script of the step asks", u))

    def members_removed(self, group: str, users: Iterable[str], out: FileVerdict) -> None:
        ent = self.ent
        for u in users:
            if (
                (u, group) in ent.unmembers
                or (u, "*") in ent.unmembers
                or ("*", group) in ent.unmembers
                or (u in ent.removed)
            ):
                out.reasons.append(f"'{u}' removed from '{group}' by the command")
            else:
                out.problems.append(
                    self._unnamed("medium", f"removes '{u}' from group '{group}', which no command of the step asks", u)
                )

    def new_group(self, path: str, e: Entry, kind: str, out: FileVerdict) -> None:
        name = e.name
        if self._by_command(path, name, e.line, out):
            return
        members = [m for m in e.fields[3].split(",") if m]
        admins = [m for m in e.fields[2].split(",") if m] if kind == "gshadow" else []
        specs = self._gspecs(name)
        if kind == "group":
            gid = e.fields[2]
            desc = f"adds group '{name}' (gid {gid})"
            if gid in self.priv_gids and not any(
                s.source == "command" and getattr(s, "gid", None) == gid for s in specs
            ):
                holder = next((n for n, es in self.b["group"].entries.items() if es[0].fields[2] == gid), "root")
                out.problems.append(
                    Problem(
                        "critical",
                        "history.unexplained-change" if not specs else self._code(specs[0].source),
                        f"{desc}, the gid of privileged group '{holder}'",
                        name,
                    )
                )
                return
        else:
            desc = f"adds a gshadow entry for group '{name}'"
        if not specs and not self.ent.opaque:
            out.problems.append(
                self._unnamed(
                    "high",
                    f"{desc}, which no command of the step and no maintainer script of its packages creates",
                    name,
                )
            )
            return
        if kind == "group" and specs:
            gid = e.fields[2]
            asked = [s.gid for s in specs if s.gid and s.gid.isdigit()]
            system = any(s.system for s in specs)
            if asked and gid not in asked:
                out.problems.append(
                    Problem(
                        "high", self._code(specs[0].source), f"{desc}; {specs[0].tool} asks for gid {asked[0]}", name
                    )
                )
            elif (
                not asked and gid.isdigit() and not (int(gid) in SYSTEM_UIDS or (not system and int(gid) in USER_UIDS))
            ):
                out.problems.append(
                    Problem(
                        "high",
                        self._code(specs[0].source),
                        f"{desc}; {specs[0].tool} gives a {'system ' if system else ''}group a gid in its range",
                        name,
                    )
                )
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
        if self._by_command(path, name, new.line, out):
            return
        o, n = old.fields, new.fields
        if kind == "group" and o[2] != n[2]:
            src = self.ent.may(name, "ggid")
            if src == "command":
                out.reasons.append(f"gid of '{name}' set by the command")
            else:
                sev = "critical" if n[2] in self.priv_gids or name in PRIVILEGED_GROUPS else "high"
                out.problems.append(
                    Problem(
                        sev,
                        "history.unexplained-change",
                        f"changes the gid of group '{name}' from {o[2]} to {n[2]}",
                        name,
                    )
                )
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
            out.problems.append(
                self._unnamed("high", f"removes the entries of {shown}, which no command of the step deletes", bad[0])
            )

    def other_line(self, path: str, line: str, out: FileVerdict) -> None:
        if line in self.ent.text and self._named(path, "", line):
            out.reasons.append("a line written literally by the command")
            return
        nis = line[:1] in "+-"
        shown = line if len(line) <= 80 else line[:77] + "..."
        out.problems.append(
            self._unnamed(
                "high" if nis else "medium",
                f"adds a line that is not an account entry: {shown!r}"
                + (" (an NIS compat entry: it can admit accounts from elsewhere)" if nis else ""),
                "",
            )
        )

    def subids(self, path: str, before: Parsed, after: Parsed, out: FileVerdict) -> None:
        for name in set(before.entries) | set(after.entries):
            b = {e.line for e in before.entries.get(name, [])}
            a = {e.line for e in after.entries.get(name, [])}
            for line in sorted(a - b):
                if (
                    self._named(path, name, line)
                    or self.ent.may(name, "subid")
                    or self.ent.opaque
                    or any(not s.system for s in self._specs(name))
                ):
                    out.reasons.append(f"subordinate ids of '{name}'")
                else:
                    out.problems.append(
                        self._unnamed(
                            "high",
                            f"gives '{name}' subordinate ids {line.split(':', 1)[1]}, "
                            f"which no command of the step asks",
                            name,
                        )
                    )
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
                out.problems.append(
                    Problem(
                        sev,
                        "history.unexplained-change",
                        f"adds a second entry for existing name '{name}': {e.line[:80]!r}",
                        name,
                    )
                )
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


def judge_files(
    before: Mapping[str, bytes | None], after: Mapping[str, bytes | None], ent: Entitled
) -> list[FileVerdict]:
    """`before`: account files (path -> bytes, None when absent) as the lower layers leave them;
    `after`: the files this layer changes (None: deleted, UNREADABLE: not captured).
    Returns one verdict per path of `after`."""

    def parsed(src: Mapping[str, bytes | None], path: str) -> Parsed:
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
            v.problems.append(
                Problem(
                    "high",
                    "history.unexplained-change",
                    f"{path} could not be judged: larger than {MAX_FILE} bytes or unreadable",
                )
            )
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
        mine = {p: d for p, d in captured.items() if p in ACCOUNT_PATHS or p.startswith(SYSUSERS_DIRS) or also(p)}
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
_REJUDGE = (
    "written by the command",
    "named by the command",
    "file of a package installed by this step",
    "written by a maintainer script of a package this step installed",
    "package manager bookkeeping",
    "parent directory of an explained change",
)


# Package managers whose maintainer scripts the pass does not capture.
UNREAD_SCRIPTS = frozenset({"apk", "rpm", "dnf", "yum", "microdnf", "tdnf", "dnf5", "zypper"})


@dataclass
class StepResult:
    findings: list[Finding] = field(default_factory=list)
    reported: set[str] = field(default_factory=set)  # paths whose findings are here, not in the generic one
    judged: set[str] = field(default_factory=set)  # account files judged entry by entry (their verdict stands)


def judge_step(
    changes: list[PathChange],
    ctx,
    state: AccountState,
    layer_files: dict[str, bytes],
    scripts: dict[str, bytes],
    owners: dict,
    env_of: Callable[[int], dict[str, str]],
    *,
    image: int,
    created_by: str | None,
) -> StepResult:
    """Judge the account-file changes of one step and set their `explained_by`.

    `ctx` is the explain.StepContext of the step, `state` the files below this layer,
    `layer_files` this layer's captured account files, `scripts` the captured maintainer
    scripts (path -> bytes), `owners` path -> package of the package databases after
    this layer, `env_of(i)` the variables known at history entry i. Unexplained
    entries come back as findings; their paths are in `reported`."""
    res = StepResult()
    # A claim that checked the exact bytes stands; one that only fits the file's size (an
    # append), or a generic explanation, leaves the entries to be judged here.
    todo = [
        c
        for c in changes
        if c.path in ACCOUNT_PATHS
        and c.what != ["metadata"]
        and (c.explained_by is None or c.explained_by in _REJUDGE or c.assurance != "verified")
    ]
    if (
        not todo
        or ctx.squashed_base
        or any(
            i.kind in ("BASE", "IMPORT", "COMMIT", "FROM", "UNKNOWN")
            or (i.kind in ("ADD", "COPY") and (i.dest or "").rstrip("/") == "")
            for i in ctx.instructions
        )
    ):
        return res
    shells = []
    for n, ins in enumerate(ctx.instructions):
        if ins.kind == "RUN":
            text = ins.shell if ins.shell is not None else " ".join(ins.argv or [])
            idx = ctx.group[n] if n < len(ctx.group) else ctx.history_index
            shells.append((text, {**env_of(idx), **ins.build_args}))
    ent = entitled_by_commands(
        shells, runs_unknown_code=any(e.opaque for e in ctx.effects), account_paths=ACCOUNT_PATHS
    )
    unread = ctx.managers & UNREAD_SCRIPTS
    if ctx.package_step and unread:
        # apk keeps its install scripts in scripts.tar, rpm in the database: not read here.
        # Its packages may add system accounts and groups (nologin, uid below 1000); uid 0, a
        # privileged group, a password or a change to an existing entry stay theirs to explain.
        tool = f"an install script of a package {'/'.join(sorted(unread))} installed (not readable here)"
        ent.users.setdefault("*", []).append(
            UserSpec(source=f"package {'/'.join(sorted(unread))}", tool="adduser", system=True, user_group=False)
        )
        ent.groups.setdefault("*", []).append(
            GroupSpec(source=f"package {'/'.join(sorted(unread))}", tool=tool, system=True)
        )
    if ctx.package_step and ctx.generated is not None:
        sysusers = {p: d for p, d in {**state.files, **layer_files}.items() if p.startswith(SYSUSERS_DIRS)}
        shipped = lambda p: getattr(owners.get(p) or owners.get(p.removeprefix("/usr")), "name", None)  # noqa: E731
        ent.merge(entitled_by_scripts(scripts, ctx.generated.touched, sysusers, shipped))
    res.judged = {c.path for c in todo}
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
    grouped: dict[tuple[Code, str, str], list[str]] = {}
    for v in judge_files(before, after, ent):
        ch = next(c for c in todo if c.path == v.path)
        entry = ctx.entries.get(v.path)
        if entry is not None and entry.type == "symlink" and v.path not in ent.direct:
            v.problems = [
                Problem(
                    "high",
                    "history.unexplained-change",
                    f"replaces {v.path} with a symlink to {entry.link}, which no command of the step asks",
                )
            ]
        if v.explained:
            ch.explained_by = v.reason()
        else:
            ch.explained_by = None
            res.reported.add(v.path)
        for p in v.problems:
            grouped.setdefault((p.code, p.severity, p.text), []).append(v.path)
    per_kind: dict[tuple[Code, str], int] = {}
    rest: dict[tuple[Code, str], list[str]] = {}
    for code, severity, text in list(grouped):
        n = per_kind[(code, severity)] = per_kind.get((code, severity), 0) + 1
        if n > MAX_FINDINGS:  # thousands of forged lines make one summary, not thousands of findings
            rest.setdefault((code, severity), []).append(text)
            del grouped[(code, severity, text)]
    for (code, severity), texts in rest.items():
        grouped[(code, severity, f"{len(texts)} more account problems like these, the first: {texts[0]}")] = [
            p for v in todo for p in [v.path] if p in res.reported
        ][:1] or [todo[0].path]
    for (code, severity, text), paths in grouped.items():
        files = ", ".join(paths)
        res.findings.append(
            finding(
                code,
                severity,
                f"history[{ctx.history_index}]",
                f"layer {ctx.layer_index} {files}: {text}; history[{ctx.history_index}] ({line!r})",
                image=image,
                history=ctx.history_index,
                layer=ctx.layer_index,
                path=paths[0],
                evidence={"files": paths, "problem": text, "commands": ent.tools[:20]},
            )
        )
    return res
