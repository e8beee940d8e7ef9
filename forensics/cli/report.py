"""`forensics report RESULT.json --html FILE`: render a saved `scan --json` result.

Exit codes: 0 written, 2 the
JSON is unreadable or not a forensics result (one line on stderr, no traceback).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from forensics.cli.common import fail

if TYPE_CHECKING:
    from forensics.models import Report


def _one_line(text: object, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def load_report(source: str) -> Report:
    """Read and validate a `scan --json` result; raises typer.Exit(2) with a one-line message."""
    from pydantic import ValidationError

    from forensics.models import SCHEMA_VERSION, Report
    from forensics.serialize import from_json

    try:
        if source == "-":
            data = sys.stdin.buffer.read()
        else:
            data = Path(source).read_bytes()
    except FileNotFoundError:
        raise fail(f"{source}: no such file or directory")
    except IsADirectoryError:
        raise fail(f"{source}: is a directory, not a JSON result")
    except OSError as exc:
        raise fail(f"cannot read {source}: {exc.strerror or exc}")
    try:
        return from_json(Report, data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0] if errors else None
        msg = first["msg"] if first is not None else ""
        if first is not None and first["type"] == "json_invalid":
            raise fail(f"{source}: not valid JSON: {_one_line(msg)}")
        where = ".".join(str(p) for p in (first["loc"] if first is not None else ())) or "(top level)"
        raise fail(
            f"{source}: not a forensics scan result (schema {SCHEMA_VERSION}): {where}: "
            f"{_one_line(msg)}" + (f" (+{len(errors) - 1} more problems)" if len(errors) > 1 else "")
        )
    except (ValueError, RecursionError) as exc:
        raise fail(f"{source}: not a forensics scan result: {_one_line(exc)}")


def _refuse(result: str, html_out: str | None) -> None:
    """Before the result is read: the page must not overwrite it (forensics.evidence)."""
    from forensics.archive.scan import InputError
    from forensics.evidence import Custody, EvidenceError, refuse_overlaps

    try:
        refuse_overlaps([Custody.start_of(result)], [("--html", html_out)])
    except (EvidenceError, InputError) as exc:
        raise fail(str(exc))


def _write(path: str, text: str) -> None:
    """Write where asked; a file atomically (forensics.evidence)."""
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from forensics.evidence import EvidenceError, Outputs

    try:
        with Outputs() as outputs:
            outputs.open("--html", path).write(text)
            outputs.commit()
    except EvidenceError as exc:
        raise fail(str(exc))
    except OSError as exc:
        raise fail(f"cannot write {path}: {exc.strerror or exc}")


def report(
    result: str = typer.Argument(..., help="a result written by `forensics scan --json` ('-' reads stdin)."),
    html_out: str | None = typer.Option(
        None, "--html", metavar="FILE|-", help="write the self-contained HTML report ('-' for stdout)."
    ),
) -> None:
    """Render a saved `scan --json` result: the HTML report, or the terminal summary without --html.

    Nothing is re-analyzed: the report shows exactly the saved result.

    Exit codes: 0 = written; 2 = the file is not readable JSON or not a forensics result.

    Example:

      forensics scan image.tar --json scan.json && forensics report scan.json --html report.html
    """
    _refuse(result, html_out)
    loaded = load_report(result)
    try:
        if html_out:
            from forensics.render.html import render_html

            _write(html_out, render_html(loaded))
        else:
            from forensics.render.signatures import render_signatures_text
            from forensics.render.text import render_text

            # the same terminal view as `scan` gives: the summary, then the signature block
            _write("-", render_text(loaded) + render_signatures_text(loaded))
    except typer.Exit:
        raise
    except Exception as exc:  # a bug must not dump a traceback on an investigator
        if os.environ.get("FORENSICS_DEBUG"):
            traceback.print_exc()
        raise fail(
            f"internal error while rendering {result}: {type(exc).__name__}: {_one_line(exc)} "
            "(set FORENSICS_DEBUG=1 for a traceback, and please report it)"
        )
    raise typer.Exit(0)
