"""Hash sets a user supplies (`scan --known-bad FILE`, `--known-good FILE`): sha256 -> label.

Two formats, told apart by the first line: a hashdeep file (`%%%% HASHDEEP-1.0`, a
`%%%% size,md5,sha256,filename` column line naming where the sha256 is, `#` comments)
or plain lines `<sha256> [label]` (what `sha256sum` writes, a label being the rest of
the line; `#` comments, blank lines). A malformed line stops the run with one line
naming FILE:LINE (exit 2): a hash set that silently drops entries would hide matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from forensics.render.safe import visible

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
MAX_BYTES = 1 << 30  # a whole NSRL-sized set fits; a device or a runaway file does not
MAX_LABEL = 200


class HashSetError(Exception):
    """A hash set file cannot be used: the message names FILE:LINE and what to do."""


@dataclass(slots=True)
class Known:
    label: str  # the set's label for the file (a filename in hashdeep), may be ""
    where: str  # FILE:LINE


@dataclass
class HashSet:
    """Every sha256 of the files given for one option; the first entry of a digest wins."""

    option: str  # --known-bad or --known-good
    files: list[str] = field(default_factory=list)
    entries: dict[str, Known] = field(default_factory=dict)  # lowercase hex -> Known

    def __contains__(self, hexdigest: object) -> bool:
        return hexdigest in self.entries

    def get(self, hexdigest: str | None) -> Known | None:
        return self.entries.get(hexdigest) if hexdigest else None

    def __len__(self) -> int:
        return len(self.entries)


def _label(text: str) -> str:
    text = visible(text.strip())
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def parse(text: str, name: str, into: HashSet) -> None:
    """Add the entries of one file's text to `into`; raise HashSetError at the first bad line."""
    # Lines end at \n only (\r\n too): str.splitlines() would also split a hashdeep filename
    # at a form feed, \x1c-\x1e, NEL or U+2028 (legal in a Linux name) and number lines
    # unlike an editor, so FILE:LINE would name the wrong line.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    hashdeep = bool(lines) and lines[0].strip() == "%%%% HASHDEEP-1.0"
    columns: list[str] | None = None
    for n, raw in enumerate(lines, 1):
        where = f"{name}:{n}"
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if hashdeep:
            if n == 1:
                continue
            if line.startswith("%%%%"):
                if columns is None:
                    columns = [c.strip().lower() for c in line[4:].split(",")]
                    if "sha256" not in columns:
                        raise HashSetError(
                            f"{where}: hashdeep columns {visible(line[4:].strip())!r} hold no sha256; "
                            "write the set with `hashdeep -c sha256` (or md5,sha256)"
                        )
                continue
            if columns is None:
                raise HashSetError(f"{where}: hashdeep data before the `%%%% size,...,filename` column line")
            # The filename is last and may hold commas: split only the columns before it.
            parts = line.split(",", len(columns) - 1)
            if len(parts) != len(columns):
                raise HashSetError(f"{where}: {len(parts)} fields where the column line names {len(columns)}")
            row = dict(zip(columns, parts))
            digest = row["sha256"].strip()
            if not _HEX64.fullmatch(digest):
                raise HashSetError(f"{where}: not a sha256 (64 hex digits): {visible(digest[:80])!r}")
            label = row.get("filename", "")
        else:
            digest, _, label = line.partition(" ")
            if digest.lower().startswith("sha256:"):
                digest = digest[7:]
            if not _HEX64.fullmatch(digest):
                raise HashSetError(
                    f"{where}: expected `<sha256> [label]` (64 hex digits first) or a hashdeep file "
                    f"(first line %%%% HASHDEEP-1.0), found {visible(line[:80])!r}"
                )
            label = label.lstrip(" *")  # sha256sum's binary-mode marker
        into.entries.setdefault(digest.lower(), Known(_label(label), where))
    if hashdeep and columns is None:
        raise HashSetError(f"{name}: a hashdeep header without the `%%%% size,...,filename` column line")


def load(option: str, paths: list[str]) -> HashSet | None:
    """The set of every file given for `option`; None when none was."""
    if not paths:
        return None
    out = HashSet(option)
    for path in paths:
        shown = visible(path)
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_BYTES + 1)
        except FileNotFoundError:
            raise HashSetError(f"{option} {shown}: no such file") from None
        except OSError as exc:
            raise HashSetError(f"{option} {shown}: cannot read it: {exc.strerror or exc}") from None
        if len(data) > MAX_BYTES:
            raise HashSetError(f"{option} {shown}: larger than {MAX_BYTES >> 20} MiB; split it")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise HashSetError(f"{shown}:{line}: not UTF-8 text") from None
        parse(text, shown, out)
        out.files.append(path)
    return out
