"""archive.extra-entry: entries of an OCI layout outside what the format defines.

An OCI layout is `oci-layout`, `index.json` and `blobs/<alg>/<encoded>` (image-layout.md);
a Docker 25+ or containerd archive adds `manifest.json` and `repositories`. No reader of
the format looks at anything else, so whatever else rides along (a binary, a script)
reaches whoever unpacks the archive unseen. Severity is by what the entry is: an ELF, a
shebang script or an executable file is medium, anything else low. Many entries become
one finding with a count and examples, so 100,000 junk files stay one line of report.
"""

from __future__ import annotations

import re

from forensics.findings import Code, finding
from forensics.models import Finding
from forensics.read.model import Archive, Entry

RAISES: tuple[Code, ...] = ("archive.extra-entry",)

LAYOUT_FILES = frozenset({"oci-layout", "index.json"})
DOCKER_FILES = frozenset({"manifest.json", "repositories"})
LAYOUT_DIRS = frozenset({"", "blobs"})
# image-spec descriptor.md: algorithm grammar; sha256/sha512 encodings are fixed-length lowercase hex.
_ALG_DIR_RE = re.compile(r"blobs/[a-z0-9]+(?:[+._-][a-z0-9]+)*")
_BLOB_RE = re.compile(
    r"blobs/(?:sha256/[a-f0-9]{64}|sha512/[a-f0-9]{128}|(?!sha256/|sha512/)[a-z0-9]+(?:[+._-][a-z0-9]+)*/[a-zA-Z0-9=_-]+)"
)
MAX_SINGLE = 10  # up to this many, one finding each; beyond, one summary
EXAMPLES = 10


def _defined(e: Entry, docker: bool, referenced: set[str]) -> bool:
    p = e.path
    if p in referenced:  # a path a document names (through a link): a reader does look at it
        return True
    if e.type == "dir":
        return p in LAYOUT_DIRS or _ALG_DIR_RE.fullmatch(p) is not None
    if p in LAYOUT_FILES or (docker and p in DOCKER_FILES):
        return True
    return _BLOB_RE.fullmatch(p) is not None


def _what(e: Entry) -> str | None:
    """Why the entry is dangerous to carry, or None."""
    if e.type not in ("file", "other", "hardlink"):
        return None
    if e.sniffed == "elf":
        return "an ELF executable"
    if e.sniffed == "script":
        return "a script (#!)"
    if e.mode & 0o111 and e.type == "file":
        return f"an executable file (mode {e.mode & 0o7777:04o})"
    return None


def _kind(e: Entry) -> str:
    if e.type == "symlink":
        return f"a symlink to {e.linkname[:100]!r}"
    if e.type == "hardlink":
        return f"a hardlink to {e.linkname[:100]!r}"
    if e.type == "dir":
        return "a directory"
    return f"a {e.nbytes:,}-byte file" if e.type == "file" else f"a {e.type} entry"


def check(archive: Archive, referenced: set[str], *, docker: bool) -> list[Finding]:
    """The entries no reader of this layout looks at; `docker`: a Docker 25+/containerd archive."""
    referenced = referenced - DOCKER_FILES  # every reader lists them as metadata; only docker's reads them
    extra = [e for e in archive.entries if not _defined(e, docker, referenced)]
    if not extra:
        return []
    layout = "Docker 25+/containerd archive" if docker else "OCI layout"
    if len(extra) <= MAX_SINGLE:
        out = []
        for e in extra:
            danger = _what(e)
            out.append(
                finding(
                    "archive.extra-entry",
                    "medium" if danger else "low",
                    e.name,
                    f"{e.name!r} ({danger or _kind(e)}) is outside what an {layout} defines "
                    "(oci-layout, index.json, blobs/<alg>/<hex>"
                    + (", manifest.json, repositories" if docker else "")
                    + "): no reader of the format looks at it",
                    entry=e.name,
                    digest=e.digest,
                    evidence={"what": danger or _kind(e), "size": e.nbytes, "type": e.type},
                )
            )
        return out
    dangerous = [e for e in extra if _what(e)]
    examples = (dangerous + [e for e in extra if not _what(e)])[:EXAMPLES]
    return [
        finding(
            "archive.extra-entry",
            "medium" if dangerous else "low",
            f"{len(extra):,} entries",
            f"{len(extra):,} entries are outside what an {layout} defines, {len(dangerous):,} of them executable "
            f"(ELF, script or executable mode); no reader of the format looks at them. First: "
            + ", ".join(repr(e.name[:100]) for e in examples[:3]),
            entry=examples[0].name,
            evidence={
                "count": len(extra),
                "executable": len(dangerous),
                "examples": [{"name": e.name, "what": _what(e) or _kind(e)} for e in examples],
            },
        )
    ]
