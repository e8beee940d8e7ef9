"""Command line: `forensics scan|history|diff|report|schema`.

Exit codes (every command): 0 nothing at or above --fail-on, 1 findings at or
above --fail-on (or, for diff, the contents differ), 2 the input could not be
analyzed (not found, not an image archive, bad usage).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from enum import Enum

import typer

from forensics import __version__
from forensics.archive.scan import InputError
from forensics.evidence import Custody, EvidenceError, Outputs, StreamCopy, refuse_overlaps, shown
from forensics.findings import at_or_above
from forensics.models import Report, Severity
from forensics.serialize import write_json

EXIT_DOC = """
Exit codes: 0 = no finding at or above --fail-on; 1 = there are; 2 = the input
could not be analyzed (not found, not an image archive, bad usage).
"""

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help=(
        "Offline forensics for container images.\n\n"
        "Image history is editable metadata and tags are mutable: this tool looks at what an image "
        "really contains. It recomputes every digest in a `docker save` archive or an OCI image layout "
        "(tar, directory or stdin; gzip/zstd/plain layers), indexes every file of every layer, and "
        "reports what the metadata does not explain.\n\n"
        "Start with:  forensics scan image.tar\n\n" + EXIT_DOC
    ),
)


class FailOn(str, Enum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"
    info = "info"
    never = "never"


def _fail(msg: str) -> typer.Exit:
    from forensics.render.safe import visible

    typer.echo(f"forensics: error: {visible(msg)}", err=True)  # one line, whatever the input names
    return typer.Exit(2)


def _guard(inputs: list[str], outputs: list[tuple[str, str | None]], keep_input: str | None = None) -> list[Custody]:
    """Before anything is read: fingerprint the inputs, refuse any output that could reach
    one of them or another output (forensics.evidence)."""
    if keep_input is not None and "-" not in inputs:
        raise _fail(f"--keep-input keeps a stream read from stdin ('-'); {shown(inputs[0])} is already a file")
    try:
        custodies = [Custody.start_of(source) for source in inputs]
        refuse_overlaps(custodies, [*outputs, ("--keep-input", keep_input)])
    except (InputError, EvidenceError) as exc:
        raise _fail(str(exc))
    return custodies


def _finish(custody: Custody, report) -> None:
    """After the last read of the input: it must still be the bytes analyzed."""
    try:
        custody.finish(report.input)
    except EvidenceError as exc:
        raise _fail(str(exc))


class VerifyPackages(str, Enum):
    changed = "changed"
    all = "all"


def _run_analysis(
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
        [custody] = _guard([archive], [])
    if keep_input is not None and outputs is not None:
        try:
            custody.keep = StreamCopy(outputs.open("--keep-input", keep_input))
        except EvidenceError as exc:
            raise _fail(str(exc))
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
        raise _fail(str(exc))
    except KeyboardInterrupt:
        raise _fail("interrupted")
    except Exception as exc:  # a bug must still not dump a traceback on an investigator
        if os.environ.get("FORENSICS_DEBUG"):
            traceback.print_exc()
        raise _fail(
            f"internal error while analyzing {archive}: {type(exc).__name__}: {exc} "
            "(set FORENSICS_DEBUG=1 for a traceback, and please report it)"
        )
    finally:
        progress.close()


def _exit_for(report: Report, fail_on: FailOn) -> int:
    if report.verdict == "unreadable":
        return 2
    if fail_on == FailOn.never:
        return 0
    return 1 if at_or_above(report.findings, Severity(fail_on.value)) else 0


def _render_html(result) -> str:
    from forensics.render.html import render_html

    return render_html(result)


def _emit(
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
    if text is None:
        from forensics.render.text import render_text as text
    if html is None:
        html = _render_html  # jinja2 is loaded only when HTML is asked for
    if outputs is None:
        with Outputs() as own:
            return _emit(result, json_out, html_out, quiet, text=text, html=html, outputs=own)
    to_stdout: list[str] = []
    try:
        for opt, path, render in (("--json", json_out, None), ("--html", html_out, html)):
            if not path:
                continue
            if path == "-":
                to_stdout.append(render(result) if render else result)
                continue
            out = outputs.open(opt, path)
            try:
                if render is None:  # the JSON streams: a string of it would double the peak memory
                    write_json(result, out.write)
                else:
                    out.write(render(result))
            except OSError as exc:
                raise EvidenceError(f"cannot write {opt} {shown(path)}: {exc.strerror or exc}") from None
        outputs.commit()
    except EvidenceError as exc:
        raise _fail(str(exc))
    except KeyboardInterrupt:
        raise _fail("interrupted; no output was written")
    for body in to_stdout:
        if isinstance(body, str):
            sys.stdout.write(body)
        else:
            sys.stdout.flush()
            write_json(body, sys.stdout.buffer.write)
        sys.stdout.flush()
    if not quiet and json_out != "-":
        typer.echo(text(result), nl=False)


@app.command(epilog=EXIT_DOC)
def scan(
    archive: str = typer.Argument(
        ..., help="docker save tar, OCI layout (tar or directory), optionally gzip/zstd compressed; '-' reads stdin."
    ),
    json_out: str | None = typer.Option(
        None, "--json", metavar="FILE|-", help="write the full result as JSON ('-' for stdout)."
    ),
    html_out: str | None = typer.Option(None, "--html", metavar="FILE", help="write a self-contained HTML report."),
    expect: list[str] = typer.Option(
        [],
        "--expect",
        metavar="sha256:HEX",
        help="the manifest, index or config digest you deployed by; repeatable. "
        "Any that matches nothing is ref.pin-mismatch.",
    ),
    fail_on: FailOn = typer.Option(FailOn.high, "--fail-on", help="lowest severity that makes the exit code 1."),
    history: bool = typer.Option(
        True, "--history/--no-history", help="diff history against layer content (on by default)."
    ),
    verify_packages: VerifyPackages = typer.Option(
        VerifyPackages.all,
        "--verify-packages",
        help="which package records to check. 'all' (default): every recorded digest (dpkg md5sums and "
        "conffiles, apk, rpm, pip RECORD), the files of the step that wrote the record included. "
        "md5/sha1 (dpkg, apk v2) are taken in the pass where a layer shows a dpkg/apk system, the few "
        "files met before that are read again; measured on a 20 MiB Debian image: about 0.6x the CPU "
        "of the sha256+inflate floor (71 MiB hashed with md5); 0.01x on the 300 MiB synthetic bench image. "
        "'changed': md5/sha1 only for files whose content changed after their record (read again). "
        "sha256 records (rpm, apk v3, pip) are always checked for every file, at no cost.",
    ),
    keep_input: str | None = typer.Option(
        None,
        "--keep-input",
        metavar="FILE",
        help="with '-': keep the exact bytes read from stdin in FILE (written atomically); the report "
        "names it with its sha256, which is that of what was analyzed.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no terminal summary and no progress bar."),
) -> None:
    """Verify every digest of an image archive and report what its metadata does not explain.

    Reads the input once, streaming: each blob is hashed against its name and every
    descriptor, each layer is decompressed and hashed against rootfs.diff_ids, and every
    file of every layer is indexed. Each history step is then held to what its command
    says it produces (a symlink, literal bytes, a copy, modes only), to its packages'
    records and to the image config; the summary says, per image, what vouches for
    each file (coverage) and how to check what nothing in the image can.

    Examples:

      forensics scan image.tar

      docker save app:1 | forensics scan - --json result.json

      forensics scan oci-dir/ --expect sha256:4f... --fail-on medium
    """
    [custody] = _guard([archive], [("--json", json_out), ("--html", html_out)], keep_input)
    with Outputs() as outputs:
        report = _run_analysis(
            archive,
            expect,
            history,
            quiet,
            verify_packages.value,
            custody=custody,
            outputs=outputs,
            keep_input=keep_input,
        )
        _finish(custody, report)
        _emit(report, json_out, html_out, quiet, outputs=outputs)
    raise typer.Exit(_exit_for(report, fail_on))


@app.command()
def schema(diff: bool = typer.Option(False, "--diff", help="the schema of `diff --json` instead.")) -> None:
    """Print the JSON Schema of the `scan --json` output (or of `diff --json`)."""
    if diff:
        from forensics.compare.model import Comparison

        typer.echo(json.dumps(Comparison.model_json_schema(), indent=1))
        return
    typer.echo(json.dumps(Report.model_json_schema(), indent=1))


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"forensics {__version__}")


def _register_commands() -> None:
    """The other commands live in their own modules and add themselves to `app`."""
    from forensics import cli_diff, cli_history, cli_report

    for module in (cli_history, cli_diff, cli_report):
        module.register(app)


_register_commands()


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
