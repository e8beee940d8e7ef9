"""The case record of a run (Report.case): who ran it, for which case, where, with what.

The examiner's --case, --examiner and --note are kept exactly as given (the renderers
escape them where they are shown); the rest is read from the running system.
"""

from __future__ import annotations

import getpass
import platform
import re
import socket
import sys
from importlib import metadata

from forensics import __version__
from forensics.models import CaseRecord

DISTRIBUTION = "container-image-forensics"
# What the analysis runs on, if the distribution's metadata cannot be read (an uninstalled tree).
_FALLBACK = ("typer", "click", "pydantic", "pydantic-core", "jinja2", "markupsafe", "zstandard", "isal")


def _dependencies() -> dict[str, str]:
    try:
        requires = metadata.requires(DISTRIBUTION) or []
        wanted = [re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0] for r in requires if "extra ==" not in r]
    except metadata.PackageNotFoundError:
        wanted = []
    out: dict[str, str] = {}
    for name in [*wanted, *_FALLBACK]:
        if name in out:
            continue
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name in wanted:
                out[name] = "not installed"
    return dict(sorted(out.items()))


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (containers)
        return None


def case_record(
    case: str | None = None,
    examiner: str | None = None,
    note: str | None = None,
    command: list[str] | None = None,
) -> CaseRecord:
    return CaseRecord(
        case=case,
        examiner=examiner,
        note=note,
        host=socket.gethostname() or None,
        user=_user(),
        platform=f"{platform.system()} {platform.release()} {platform.machine()}".strip(),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        tool_version=__version__,
        dependencies=_dependencies(),
        command=list(command if command is not None else ["forensics", *sys.argv[1:]]),
    )
