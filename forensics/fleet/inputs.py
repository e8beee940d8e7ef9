"""The archives a fleet run scans: files, folders searched for archives, and `--from LIST`.

A folder that is itself an OCI image layout (it holds `oci-layout` or `index.json`) is one
input, never searched. Any other folder is walked, without following symlinks to folders,
and a file in it is an input when its first bytes are a tar, gzip or zstd stream or its
name ends like an archive (so a broken `x.tar` still gets its line). A file named on the
command line or in LIST is always an input (a path of LIST that is not there gets its error
line; one named on the command line is a usage error). The order is deterministic: sorted by path,
each real file once.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from forensics.archive.decompress import sniff
from forensics.render.safe import visible

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd", ".oci", ".oci.tar", ".docker.tar")
LAYOUT_MARKERS = ("oci-layout", "index.json")


class InputsError(Exception):
    """An input named by the user cannot be used (one line, for the command's error)."""


@dataclass(frozen=True)
class Input:
    path: str  # as given or found (relative to what was given)
    kind: str  # file, directory; missing: listed in --from but not there (its line says so)
    size: int  # bytes (a directory: the sum of its regular files)


def is_layout(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, m)) for m in LAYOUT_MARKERS)


def _looks_like_archive(path: str) -> bool:
    if path.lower().endswith(ARCHIVE_SUFFIXES):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    return sniff(head) in ("tar", "gzip", "zstd")


def _dir_size(root: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(root, followlinks=False):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def read_list(list_path: str) -> list[str]:
    """One path a line; blank lines and lines starting with '#' are skipped."""
    try:
        with open(list_path, encoding="utf-8") as fh:
            text = fh.read(16 << 20)
    except FileNotFoundError:
        raise InputsError(f"--from {visible(list_path)}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputsError(
            f"--from {visible(list_path)}: cannot read it: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _walk(root: str, out: list[Input]) -> None:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        keep = []
        for d in dirnames:
            full = os.path.join(dirpath, d)
            if os.path.islink(full):
                continue
            if is_layout(full):
                out.append(Input(full, "directory", _dir_size(full)))
            else:
                keep.append(d)
        dirnames[:] = keep  # a layout is one input: never searched
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and _looks_like_archive(full):
                out.append(Input(full, "file", st.st_size))


def discover(paths: list[str], from_list: str | None = None) -> list[Input]:
    """Every archive under `paths` (and the paths listed in `from_list`), each once, sorted."""
    listed = read_list(from_list) if from_list else []
    found: list[Input] = []
    for n, p in enumerate(list(paths) + listed):
        try:
            st = os.stat(p)
        except OSError as exc:
            if n >= len(paths):  # one bad line of a long list: that input's error line, not the batch's end
                found.append(Input(p, "missing", 0))
                continue
            if isinstance(exc, FileNotFoundError):
                raise InputsError(f"{visible(p)}: no such file or directory") from None
            raise InputsError(f"{visible(p)}: cannot open: {exc.strerror or exc}") from None
        if stat.S_ISDIR(st.st_mode):
            if is_layout(p):
                found.append(Input(p, "directory", _dir_size(p)))
            else:
                _walk(p, found)
        elif stat.S_ISREG(st.st_mode):
            found.append(Input(p, "file", st.st_size))
        else:
            raise InputsError(f"{visible(p)}: not a file or a folder")
    seen: set[str] = set()
    out: list[Input] = []
    for inp in sorted(found, key=lambda i: i.path):
        real = os.path.realpath(inp.path)
        if real not in seen:
            seen.add(real)
            out.append(inp)
    return out
