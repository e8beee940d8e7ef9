"""`forensics timeline`: every time an image records, as events for DFIR timeline tools.

Events: the mtime of every entry of every layer (as its tar header records it), each
history entry's `created`, the config's `created`, and each finding, placed at the time
of what it is about (the entry's mtime, else its step's `created`, else the config's)
and tagged. Every one of these times is build metadata: whoever built or edited the
image could set it to anything (SOURCE_DATE_EPOCH, `touch -d`, a rewritten config), so
each event says so. Events come in layer order, one at a time (a writer never holds the
list); mactime and Timesketch sort by time themselves.

Three writers:
- `bodyfile`: The Sleuth Kit 3.x body file, `MD5|name|inode|mode_as_string|UID|GID|size|
  atime|mtime|ctime|crtime` (only mtime is known: the other times are 0). The md5 where
  the one pass took it, else `0`. The inode field is `image-layer-n` (digits and dashes,
  as mactime requires). A name is made one field of one line: mactime splits on `|` and
  then decodes `%XX`, so `%` and `|` are written `%25` and `%7C` (mactime shows them as
  they are); a backslash is doubled and every control, format or separator character is
  written as its escape (`\\n`, `\\x1b`), which mactime prints as it is.
- `jsonl`: Timesketch JSON lines: `message`, `datetime` (ISO 8601, UTC), `timestamp`
  (microseconds), `timestamp_desc`, plus `data_type`, image, layer, layer digest,
  diff_id, step and the entry's fields; ASCII JSON, so no raw control character.
- `csv`: the same columns, header first; text cells escaped as in the body file (one
  record per line) and a leading `=`, `+`, `-`, `@` quoted with `'`, so a spreadsheet
  never runs a cell as a formula.
"""

from __future__ import annotations

import csv
import io
import json
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from forensics.export.layers import LayerView, known_md5
from forensics.models import Finding, Report
from forensics.render.safe import visible

SETTABLE = "build metadata, settable by whoever built the image"
DESC_ENTRY = f"Layer entry mtime ({SETTABLE})"
DESC_HISTORY = f"History created ({SETTABLE})"
DESC_CONFIG = f"Config created ({SETTABLE})"
DESC_FINDING = "Finding, placed at the time of what it is about"
MAX_TEXT = 4096  # a created_by can be a whole script: the message keeps its start

_TYPE_CHAR = {"file": "r", "hardlink": "r", "dir": "d", "symlink": "l", "char": "c", "block": "b", "fifo": "p"}
_TYPE_BITS = {
    "file": stat.S_IFREG,
    "hardlink": stat.S_IFREG,
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "char": stat.S_IFCHR,
    "block": stat.S_IFBLK,
    "fifo": stat.S_IFIFO,
}
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass(slots=True)
class Event:
    time: float  # UNIX seconds
    desc: str  # timestamp_desc
    data_type: str
    message: str
    image: int | None = None
    layer: int | None = None
    layer_digest: str | None = None
    diff_id: str | None = None
    step: int | None = None
    path: str | None = None
    file_type: str | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    link: str | None = None
    inode: str = "0"
    finding: Finding | None = None
    tags: list[str] = field(default_factory=list)


def parse_time(text: str | None) -> float | None:
    """An RFC 3339 time as configs write it (`Z`, an offset, nanoseconds), in UNIX seconds."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def placeable(t: float) -> bool:
    """A tar mtime is any number the header holds (a pax `mtime=1e300`): one that is no date
    would be a 300-digit body-file time and a Timesketch datetime that contradicts its timestamp."""
    try:
        datetime.fromtimestamp(t, UTC)
    except (OverflowError, OSError, ValueError):
        return False
    return True


def _short(text: str, n: int = MAX_TEXT) -> str:
    text = " ".join(text.split()) if "\n" in text or "\t" in text else text
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class Skipped:
    """What could not be placed on the timeline (a time that is not one)."""

    history: int = 0
    config: int = 0
    findings: int = 0


def events(report: Report, views: list[list[LayerView]], skipped: Skipped | None = None) -> Iterator[Event]:
    """Every event of the report, image by image; `views[i]` are image i's layers. Findings
    about no image are placed with the first one; with no image, there is nothing to place."""
    skipped = skipped if skipped is not None else Skipped()
    multi = len(report.images) > 1
    for img, layers in zip(report.images, views):
        tag = f"image {img.index} " if multi else ""
        by_layer = {v.index: v for v in layers}
        created = {h.index: parse_time(h.created) for h in img.history}
        cfg_time = parse_time(img.config.created if img.config else None)
        if cfg_time is not None:
            yield Event(
                cfg_time,
                DESC_CONFIG,
                "container:config:created",
                f"{tag}config created{' (' + ', '.join(img.refs) + ')' if img.refs else ''}",
                image=img.index,
                sha256=(img.config_digest or "")[7:] or None,
            )
        elif img.config is not None and img.config.created:
            skipped.config += 1
        for h in img.history:
            t = created[h.index]
            if t is None:
                skipped.history += h.created is not None
                continue
            v = by_layer.get(h.layer_index) if h.layer_index is not None else None
            where = f"layer {h.layer_index}" if h.layer_index is not None else "no layer"
            yield Event(
                t,
                DESC_HISTORY,
                "container:history:created",
                f"{tag}history[{h.index}] ({where}) created: {_short(h.created_by or '(no created_by)')}",
                image=img.index,
                layer=h.layer_index,
                layer_digest=v.digest if v else None,
                diff_id=v.diff_id if v else None,
                step=h.index,
            )
        # Findings about the archive itself (no image) go with the first image, at its config time.
        first = img is report.images[0]
        mine = [f for f in report.findings if f.image == img.index or (f.image is None and first)]
        wanted = {(f.layer, f.path) for f in mine if f.layer is not None and f.path}
        mtimes: dict[tuple[int, str], float] = {}
        for v in layers:
            if any(key[0] == v.index for key in wanted):
                for e in v.files:
                    if (v.index, e.path) in wanted and placeable(e.mtime):
                        mtimes[(v.index, e.path)] = e.mtime
        for f in mine:
            t = mtimes.get((f.layer, f.path or "")) if f.layer is not None else None
            anchor = "the entry's mtime"
            if t is None and f.history is not None:
                t, anchor = created.get(f.history), f"history[{f.history}] created"
            if t is None:
                t, anchor = cfg_time, "the config's created"
            if t is None:
                skipped.findings += 1
                continue
            v = by_layer.get(f.layer) if f.layer is not None else None
            yield Event(
                t,
                f"{DESC_FINDING}: {anchor} ({SETTABLE})",
                "forensics:finding",
                f"{tag}finding {f.id or ''} {f.severity.value.upper()} {f.code}: {f.subject}: {_short(f.detail, 1024)}",
                image=img.index,
                layer=f.layer,
                layer_digest=v.digest if v else None,
                diff_id=v.diff_id if v else None,
                step=f.history,
                path=f.path,
                finding=f,
                tags=["forensics:finding", f.code, f.severity.value],
            )
        for v in layers:
            label = f"{tag}layer {v.index} {(v.digest or '')[7:19]}" + (f" step {v.step}" if v.step is not None else "")
            for n, e in enumerate(v.files, 1):
                ftype = e.type
                what = {"whiteout": " (deleted by a whiteout)", "opaque": " (opaque: lower contents hidden)"}.get(
                    ftype, ""
                )
                link = f" -> {e.link}" if e.link and ftype in ("symlink", "hardlink") else ""
                ok = placeable(e.mtime)
                yield Event(
                    e.mtime if ok else 0.0,
                    DESC_ENTRY,
                    "container:layer:entry",
                    f"{e.path}{link}{what} [{label}]" + ("" if ok else f" (mtime {e.mtime:g} is no date: placed at 0)"),
                    image=img.index,
                    layer=v.index,
                    layer_digest=v.digest,
                    diff_id=v.diff_id,
                    step=v.step,
                    path=e.path,
                    file_type=ftype,
                    mode=e.mode,
                    uid=e.uid,
                    gid=e.gid,
                    size=e.size,
                    sha256=e.sha256,
                    md5=known_md5(v, e.path, e) if ftype == "file" else None,
                    link=e.link,
                    inode=f"{img.index}-{v.index}-{n}",
                )


# ---------------------------------------------------------------- escaping


def one_line(text: str) -> str:
    """A backslash doubled, then every invisible character as its escape: one line, unambiguous."""
    return visible(text.replace("\\", "\\\\"))


def body_field(text: str) -> str:
    """A body-file field: one line, and `%`/`|` encoded as mactime decodes them after splitting."""
    return one_line(text).replace("%", "%25").replace("|", "%7C")


def mode_string(ftype: str | None, mode: int | None) -> str:
    """TSK's mode_as_string: name type, `/`, then the `ls -l` mode with the meta type first (`r/rrwxr-xr-x`)."""
    if ftype is None or mode is None:
        return "-/----------"
    t = _TYPE_CHAR.get(ftype, "-")
    perms = stat.filemode(_TYPE_BITS.get(ftype, 0) | (mode & 0o7777))[1:]
    return f"{t}/{t}{perms}"


def _int_time(t: float) -> int:
    return int(t) if t > 0 else 0  # before 1970 (or forged negative): mactime wants digits


# ---------------------------------------------------------------- writers

Write = Callable[[str], object]


def _body_name(ev: Event) -> str:
    what = "tar mtime, " if ev.data_type == "container:layer:entry" else ""
    return f"{ev.message} ({what}{SETTABLE})"


def write_bodyfile(evs: Iterable[Event], write: Write) -> int:
    n = 0
    for ev in evs:
        fields = (
            ev.md5 or "0",
            body_field(_body_name(ev)),
            ev.inode,
            mode_string(ev.file_type, ev.mode),
            str(ev.uid or 0),
            str(ev.gid or 0),
            str(ev.size or 0),
            "0",
            str(_int_time(ev.time)),
            "0",
            "0",
        )
        write("|".join(fields) + "\n")
        n += 1
    return n


def _iso(t: float) -> str:
    try:
        return datetime.fromtimestamp(t, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return datetime.fromtimestamp(0, UTC).isoformat()


COLUMNS = (
    "datetime",
    "timestamp",
    "timestamp_desc",
    "message",
    "data_type",
    "image",
    "layer",
    "layer_digest",
    "diff_id",
    "step",
    "path",
    "file_type",
    "mode",
    "uid",
    "gid",
    "size",
    "sha256",
    "md5",
    "link",
    "code",
    "severity",
    "finding_id",
    "tag",
)


def record(ev: Event) -> dict:
    """The Timesketch event: its required fields, then the image's."""
    f = ev.finding
    return {
        "datetime": _iso(ev.time),
        "timestamp": int(round(ev.time * 1_000_000)),
        "timestamp_desc": ev.desc,
        "message": ev.message,
        "data_type": ev.data_type,
        "image": ev.image,
        "layer": ev.layer,
        "layer_digest": ev.layer_digest,
        "diff_id": ev.diff_id,
        "step": ev.step,
        "path": ev.path,
        "file_type": ev.file_type,
        "mode": f"{ev.mode & 0o7777:04o}" if ev.mode is not None else None,
        "uid": ev.uid,
        "gid": ev.gid,
        "size": ev.size,
        "sha256": ev.sha256,
        "md5": ev.md5,
        "link": ev.link,
        "code": f.code if f else None,
        "severity": f.severity.value if f else None,
        "finding_id": f.id if f else None,
        "tag": ev.tags,
    }


def write_jsonl(evs: Iterable[Event], write: Write) -> int:
    n = 0
    for ev in evs:
        rec = {k: v for k, v in record(ev).items() if v is not None and v != []}
        write(json.dumps(rec, ensure_ascii=True, separators=(",", ":")) + "\n")
        n += 1
    return n


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = ",".join(value)
    text = one_line(str(value))
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def write_csv(evs: Iterable[Event], write: Write) -> int:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    write(buf.getvalue())
    n = 0
    for ev in evs:
        buf.seek(0)
        buf.truncate()
        rec = record(ev)
        w.writerow([_cell(rec[c]) if not isinstance(rec[c], int) else rec[c] for c in COLUMNS])
        write(buf.getvalue())
        n += 1
    return n


WRITERS: dict[str, Callable[[Iterable[Event], Write], int]] = {
    "bodyfile": write_bodyfile,
    "jsonl": write_jsonl,
    "csv": write_csv,
}
