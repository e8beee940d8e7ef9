"""What the commands share: exit codes, --fail-on, the guarded analysis of one input and
the writing of its outputs. Every command module imports this one and no other command."""

from __future__ import annotations

import os
import sys
import traceback
from enum import StrEnum

import typer

from forensics.archive.scan import InputError
from forensics.evidence import Custody, EvidenceError, Outputs, StreamCopy, refuse_overlaps, shown
from forensics.findings import at_or_above
from forensics.models import Report, Severity
from forensics.serialize import to_json

EXIT_DOC = """
Exit codes: 0 = no finding at or above --fail-on; 1 = there are; 2 = the input
could not be analyzed (not found, not an image archive, bad usage).
"""


class FailOn(StrEnum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"
    info = "info"
    never = "never"


def fail(msg: str) -> typer.Exit:
    from forensics.render.safe import visible

    typer.echo(f"forensics: error: {visible(msg)}", err=True)  # one line, whatever the input names
    return typer.Exit(2)


def guard(inputs: list[str], outputs: list[tuple[str, str | None]], keep_input: str | None = None) -> list[Custody]:
    """Before anything is read: fingerprint the inputs, refuse any output that could reach
    one of them or another output (forensics.evidence)."""
    if keep_input is not None and "-" not in inputs:
        raise fail(f"--keep-input keeps a stream read from stdin ('-'); {shown(inputs[0])} is already a file")
    try:
        custodies = [Custody.start_of(source) for source in inputs]
        refuse_overlaps(custodies, [*outputs, ("--keep-input", keep_input)])
    except (InputError, EvidenceError) as exc:
        raise fail(str(exc))
    return custodies


def finish(custody: Custody, report) -> None:
    """After the last read of the input: it must still be the bytes analyzed."""
    try:
        custody.finish(report.input)
    except EvidenceError as exc:
        raise fail(str(exc))


class VerifyPackages(StrEnum):
    changed = "changed"
    all = "all"


def run_analysis(
    archive: str,
    expect: list[str],
    history: bool,
    quiet: bool,
    verify_packages: str = "all",
    *,
    custody: Custody | None = None,
    outputs: Outputs | None = None,
    keep_input: str | None = None,
):
    """Analyze one input whose outputs `_guard` has cleared; with `keep_input`, the stream is
    copied into a file of `outputs` as it is read."""
    from forensics.pipeline import analyze
    from forensics.render.progress import Progress

    if custody is None:
        [custody] = guard([archive], [])
    if keep_input is not None and outputs is not None:
        try:
            custody.keep = StreamCopy(outputs.open("--keep-input", keep_input))
        except EvidenceError as exc:
            raise fail(str(exc))
    progress = Progress(f"scanning {os.path.basename(archive) or archive}", enabled=None if not quiet else False)
    try:
        return analyze(
            archive,
            expect=expect,
            progress=progress,
            history=history,
            command=["forensics", *sys.argv[1:]],
            verify_packages=verify_packages,
            custody=custody,
        )
    except InputError as exc:
        raise fail(str(exc))
    except KeyboardInterrupt:
        raise fail("interrupted")
    except Exception as exc:  # a bug must still not dump a traceback on an investigator
        if os.environ.get("FORENSICS_DEBUG"):
            traceback.print_exc()
        raise fail(
            f"internal error while analyzing {archive}: {type(exc).__name__}: {exc} "
            "(set FORENSICS_DEBUG=1 for a traceback, and please report it)"
        )
    finally:
        progress.close()


def exit_for(report: Report, fail_on: FailOn) -> int:
    if report.verdict == "unreadable":
        return 2
    if fail_on == FailOn.never:
        return 0
    return 1 if at_or_above(report.findings, Severity(fail_on.value)) else 0


def emit(
    result,
    json_out: str | None,
    html_out: str | None,
    quiet: bool,
    *,
    text=None,
    html=None,
    outputs: Outputs | None = None,
) -> None:
    """Write a result (a Report, or a diff's Comparison with its own renderers) where asked;
    the terminal summary unless --quiet or the JSON goes to stdout.

    Files go through `outputs`: all are written and synced, then renamed over their targets
    together (with a kept input, if any); a failure leaves every previous file as it was."""
    if text is None or html is None:
        from forensics.render.html import render_html
        from forensics.render.text import render_text

        text, html = text or render_text, html or render_html
    if outputs is None:
        with Outputs() as own:
            return emit(result, json_out, html_out, quiet, text=text, html=html, outputs=own)
    to_stdout: list[str] = []
    try:
        for opt, path, render in (("--json", json_out, lambda r: to_json(r) + "\n"), ("--html", html_out, html)):
            if not path:
                continue
            body = render(result)
            if path == "-":
                to_stdout.append(body)
                continue
            out = outputs.open(opt, path)
            try:
                out.write(body)
            except OSError as exc:
                raise EvidenceError(f"cannot write {opt} {shown(path)}: {exc.strerror or exc}") from None
        outputs.commit()
    except EvidenceError as exc:
        raise fail(str(exc))
    except KeyboardInterrupt:
        raise fail("interrupted; no output was written")
    for body in to_stdout:
        sys.stdout.write(body)
        sys.stdout.flush()
    if not quiet and json_out != "-":
        typer.echo(text(result), nl=False)


def sarif_text(result, path: str | None, outputs: Outputs) -> str | None:
    """Write `result` (a Report or a Comparison) as SARIF into `outputs` (committed with the
    others); the text itself when it goes to stdout ('-')."""
    if not path:
        return None
    import json

    from forensics.compare.model import Comparison
    from forensics.export.sarif import comparison_to_sarif, report_to_sarif

    doc = comparison_to_sarif(result) if isinstance(result, Comparison) else report_to_sarif(result)
    body = json.dumps(doc, indent=1, ensure_ascii=True) + "\n"  # ASCII: no raw control character anywhere
    if path == "-":
        return body
    try:
        outputs.open("--sarif", path).write(body)
    except EvidenceError as exc:
        raise fail(str(exc))
    except OSError as exc:
        raise fail(f"cannot write --sarif {shown(path)}: {exc.strerror or exc}")
    return None
