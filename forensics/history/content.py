"""file.* findings: what a layer writes that matters whatever its history says."""

from __future__ import annotations

import re
from fnmatch import translate

from forensics.findings import Code, finding
from forensics.models import FileEntry, Finding, PathChange

RAISES: tuple[Code, ...] = ("file.binary-replaced", "file.persistence", "file.setuid-added")

# Persistence and hijack points (MITRE ATT&CK T1053 cron, T1098.004 SSH keys,
# T1546.004 shell profiles, T1574.006 ld.so.preload, T1543.002 systemd).
PERSISTENCE_PATTERNS = (
    "/etc/ld.so.preload",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d/*",
    "/etc/crontab",
    "/etc/cron.d/*",
    "/etc/cron.hourly/*",
    "/etc/cron.daily/*",
    "/etc/cron.weekly/*",
    "/etc/cron.monthly/*",
    "/etc/crontabs/*",
    "/var/spool/cron/*",
    "/var/spool/cron/crontabs/*",
    "/etc/anacrontab",
    "*/.ssh/authorized_keys",
    "*/.ssh/authorized_keys2",
    "/etc/ssh/sshd_config",
    "/etc/ssh/sshd_config.d/*",
    "/etc/profile",
    "/etc/profile.d/*",
    "/etc/bash.bashrc",
    "/etc/bashrc",
    "/etc/environment",
    "/root/.bashrc",
    "/root/.profile",
    "/root/.bash_profile",
    "/root/.bash_login",
    "/home/*/.bashrc",
    "/home/*/.profile",
    "/home/*/.bash_profile",
    "/etc/systemd/system/*",
    "/etc/systemd/system/*/*",
    "/lib/systemd/system/*",
    "/usr/lib/systemd/system/*",
    "/etc/init.d/*",
    "/etc/rc.local",
    "/etc/rc.d/*",
    "/etc/sudoers",
    "/etc/sudoers.d/*",
    "/etc/pam.d/*",
    "/etc/security/*",
    "/etc/apt/apt.conf.d/*",
    "/etc/apk/repositories",
    "/etc/apt/sources.list",
    "/etc/apt/sources.list.d/*",
)


# One regex for all patterns: this runs for every changed path of every layer.
_PERSISTENCE_RE = re.compile("|".join(f"(?:{translate(p)})" for p in PERSISTENCE_PATTERNS))


def is_persistence_path(path: str) -> bool:
    return _PERSISTENCE_RE.match(path) is not None


def _executable(kind: str | None, mode: int) -> bool:
    return kind in ("elf", "script") or bool(mode & 0o111)


# Explanations that cover only a tree or opaque code: the path is not the command's own,
# so a privilege or persistence point there is never below medium (the step's text does
# not vouch for it).
WEAK = (None, "tree")


def check_change(
    change: PathChange,
    entry: FileEntry | None,
    before: FileEntry | None,
    *,
    image: int,
    layer: int,
    history: int | None,
    from_package: bool,
    explained: bool,
    assurance: str | None = None,
) -> list[Finding]:
    out: list[Finding] = []
    if change.change == "deleted" or entry is None:
        return out
    # Most changes raise nothing here: the cheap tests first, the finding's fields after.
    elf_gone = change.change == "modified" and before is not None and before.kind == "elf"
    special = entry.type in ("file", "hardlink") and entry.mode & 0o6000
    persistent = entry.type != "dir" and not from_package and is_persistence_path(change.path)
    if not (elf_gone or special or persistent):
        return out
    where = dict(image=image, layer=layer, history=history, path=change.path)
    subject = f"layer[{layer}]:{change.path}"
    if elf_gone and before is not None:
        if entry.kind != "elf" and entry.type in ("file", "hardlink", "symlink"):
            now = entry.kind if entry.type != "symlink" else f"symlink to {entry.link}"
            out.append(
                finding(
                    "file.binary-replaced",
                    "critical" if not from_package else "medium",
                    subject,
                    f"{change.path} was an ELF executable ({before.size} bytes, sha256:{before.sha256 or '?'}) "
                    f"below layer {layer}; layer {layer} replaces it with {now} "
                    f"({entry.size} bytes, sha256:{entry.sha256 or '?'})",
                    evidence={
                        "before": {"kind": before.kind, "size": before.size, "sha256": before.sha256},
                        "after": {"kind": entry.kind, "type": entry.type, "size": entry.size, "sha256": entry.sha256},
                    },
                    **where,
                )
            )
    if special:
        was = before is not None and before.mode & 0o6000 and before.sha256 == entry.sha256
        if not was:
            bits = " and ".join(b for b, m in (("setuid", 0o4000), ("setgid", 0o2000)) if entry.mode & m)
            weak = not explained or assurance == "tree"
            out.append(
                finding(
                    "file.setuid-added",
                    "info" if from_package else ("medium" if weak else "low"),
                    subject,
                    f"layer {layer} {'adds' if change.change == 'added' else 'changes'} {bits} file {change.path} "
                    f"(mode {entry.mode:04o}, owner {entry.uid}:{entry.gid})"
                    + (", owned by a package" if from_package else ""),
                    **where,
                )
            )
    if persistent:
        if not explained:
            severity, why = "high", "; its history line does not account for it"
        elif assurance == "tree":
            severity, why = (
                "medium",
                (
                    "; only a tree or a program the analysis cannot see into covers it "
                    "(an archive extracted, a script run): its content is not vouched for"
                ),
            )
        elif assurance == "verified":
            severity, why = "low", "; the step's command writes exactly this"
        else:
            severity, why = "low", "; the step's command names it, with content from outside the image"
        out.append(
            finding(
                "file.persistence",
                severity,
                subject,
                f"layer {layer} writes {change.path}, a persistence/hijack point, outside a package install" + why,
                **where,
            )
        )
    return out
