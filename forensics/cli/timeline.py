"""`forensics timeline ARCHIVE --format bodyfile|jsonl|csv [-o FILE]`."""

from __future__ import annotations

import sys
from enum import StrEnum

import typer

from forensics.cli.common import analyze_model, finish, guard, layers_of, writing


class TimelineFormat(StrEnum):
    bodyfile = "bodyfile"
    jsonl = "jsonl"
    csv = "csv"


def timeline(
    archive: str = typer.Argument(
        ..., help="docker save tar or OCI layout (tar or directory), optionally compressed; '-' reads stdin."
    ),
    fmt: TimelineFormat = typer.Option(
        ...,
        "--format",
        "-f",
        case_sensitive=False,
        help="bodyfile (The Sleuth Kit 3.x, for `mactime -b`), jsonl (Timesketch JSON lines) or csv.",
    ),
    out: str | None = typer.Option(None, "--output", "-o", metavar="FILE", help="write to FILE (default stdout)."),
    history: bool = typer.Option(
        True,
        "--history/--no-history",
        help="hold the history to the layers, as scan does, for its findings (default); --no-history only "
        "reads and verifies the archive (its findings are still events).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar and no summary on stderr."),
) -> None:
    """Write every time an image records as a timeline for DFIR tools.

    Events: the mtime of every entry of every layer (path, layer from 0, layer digest,
    history step, mode, uid/gid, size, sha256, and the md5 where the scan took one),
    each history entry's `created`, the config's `created`, and each finding, tagged,
    at the time of what it is about. Every one of these times is build metadata that
    whoever built or edited the image could set to anything: each event says so.
    Never take a layer mtime as when something happened on a host.

    The body file is TSK 3.x (`MD5|name|inode|mode_as_string|UID|GID|size|atime|mtime|ctime|crtime`;
    names escaped so that no `|` or newline in a path can forge a field or a line).
    Rows come in layer order; mactime and Timesketch sort them.

    Examples:

      forensics timeline image.tar --format bodyfile -o image.body && mactime -b image.body -d -y

      forensics timeline image.tar --format jsonl -o image.jsonl     # timesketch_importer image.jsonl

      forensics timeline image.tar -f csv --no-history | less -S
    """
    from forensics.evidence import Outputs
    from forensics.export.timeline import WRITERS, Skipped, events

    [custody] = guard([archive], [("--output", out)])
    with Outputs() as outputs:
        report, model = analyze_model(archive, history, quiet, custody)
        views = [layers_of(archive, report, model, img.index) for img in report.images]
        skipped = Skipped()
        stream = events(report, views, skipped)
        with writing("--output", out):
            finish(custody, report)
            if out is None:
                n = WRITERS[fmt.value](stream, sys.stdout.write)
                sys.stdout.flush()
            else:
                target = outputs.open("--output", out)
                n = WRITERS[fmt.value](stream, target.write)
                outputs.commit()
    if not quiet:
        left = [
            f"{k} {v}"
            for k, v in (("history", skipped.history), ("config", skipped.config), ("finding", skipped.findings))
            if v
        ]
        typer.echo(
            f"forensics: {n} events ({fmt.value}); every time is build metadata an attacker can set"
            + (f"; not placed (no readable time): {', '.join(left)}" if left else ""),
            err=True,
        )
