"""What the commands share: exit codes, --fail-on, the guarded analysis of one input and
the writing of its outputs. Every command module imports this one and no other command."""

from __future__ import annotations

import os
import sys
import traceback
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer

from forensics.render.safe import visible

# Every command module imports this one when the CLI starts, `forensics version` too: what
# reads, checks or writes evidence (the streaming core, pydantic models) is imported where
# it is used (tests/test_startup.py holds the light commands to that).
if TYPE_CHECKING:
    from forensics.evidence import Custody, Outputs
    from forensics.export.layers import LayerView
    from forensics.models import Report
    from forensics.read.model import Resolved
    from forensics.verify.refs import Pin

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


def fail_on_option(default: FailOn, help: str = "lowest severity that makes the exit code 1.") -> Any:
    """--fail-on, as every command takes it: any case (HIGH, High, high).

    Any, as typer.Option itself returns: the OptionInfo stands as the default of a FailOn parameter."""
    return typer.Option(
        default,
        "--fail-on",
        case_sensitive=False,
        help=help + " One of critical, high, medium, low, info, never (any case).",
    )


# --case, --examiner, --note: recorded with the run in Report.case (forensics.case).
CASE = typer.Option(None, "--case", metavar="TEXT", help="case or ticket number, kept in the report's case record.")
EXAMINER = typer.Option(None, "--examiner", metavar="NAME", help="who ran the analysis, kept in the case record.")
NOTE = typer.Option(
    None, "--note", metavar="TEXT", help="a free note for the case record (why, where the image came from)."
)


def read_pins(expect: list[str], expect_file: str | None) -> list[Pin]:
    """Every pin, checked before the input is read: a malformed one is a usage error (exit 2),
    never evidence against the image."""
    from forensics.verify.refs import PinError, parse_pin, parse_pin_file

    try:
        pins = [parse_pin(p) for p in expect]
        if expect_file is not None:
            try:
                with open(expect_file, encoding="utf-8") as fh:
                    text = fh.read(1 << 20)
            except FileNotFoundError:
                raise fail(f"--expect-file {visible(expect_file)}: no such file")
            except (OSError, UnicodeDecodeError) as exc:
                raise fail(
                    f"--expect-file {visible(expect_file)}: cannot read it: {getattr(exc, 'strerror', exc) or exc}"
                )
            pins += parse_pin_file(text, expect_file)
    except PinError as exc:
        raise fail(str(exc))
    return pins


def not_an_image(report: Report, source: str) -> str | None:
    """Not an image archive (or too damaged to be read as one): the one line that says what
    was found and what was expected, for stderr; None for any image archive. The JSON and
    HTML asked for are still written (they hold the damage findings); the terminal summary
    is not, with or without -q: it would only say the same at length."""
    if report.verdict != "unreadable":
        return None
    inp = report.input
    comp = f"{inp.compression}-compressed " if inp.compression not in (None, "none") else ""
    names = [b.name for b in report.blobs]
    n = f"{len(names)} entr{'y' if len(names) == 1 else 'ies'}"
    if inp.kind == "directory":
        found = f"a directory of {n}" if names else "an empty directory"
    else:
        found = f"a {comp}tar of {n}" if names else f"{comp}{inp.size} bytes with no tar entry in them"
    if names:
        found += " (" + ", ".join(visible(n) for n in names[:3]) + (", …" if len(names) > 3 else "") + ")"
    damage = next((f.detail for f in report.findings if f.code == "archive.malformed"), None)
    if damage:
        damage = " ".join(damage.split())
        found += "; damaged: " + (damage if len(damage) <= 160 else damage[:159] + "…")
    return (
        f"{source}: not an image archive: found {found}, without manifest.json or index.json; expected "
        "a `docker save` tar or an OCI image layout (oci-layout, index.json, blobs/), as a tar or a directory"
    )


def fail(msg: str) -> typer.Exit:
    typer.echo(f"forensics: error: {visible(msg)}", err=True)  # one line, whatever the input names
    return typer.Exit(2)


def reader_gone() -> typer.Exit:
    """stdout was closed by its reader (`| head`): stop quietly, as a coreutils filter does,
    with the shell's code for a death by SIGPIPE (128 + 13) so that a pipeline under
    `set -o pipefail` still knows the output was cut. The interpreter must not try to flush
    stdout again on the way out, hence the devnull in its place."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return typer.Exit(141)


def guard(inputs: list[str], outputs: list[tuple[str, str | None]], keep_input: str | None = None) -> list[Custody]:
    """Before anything is read: fingerprint the inputs, refuse any output that could reach
    one of them or another output (forensics.evidence)."""
    from forensics.archive.scan import InputError
    from forensics.evidence import Custody, EvidenceError, refuse_overlaps, shown

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
    from forensics.evidence import EvidenceError

    try:
        custody.finish(report.input)
    except EvidenceError as exc:
        raise fail(str(exc))


class VerifyPackages(StrEnum):
    changed = "changed"
    all = "all"


def run_analysis(
    archive: str,
    expect: list[Pin],
    history: bool,
    quiet: bool,
    verify_packages: str = "all",
    *,
    custody: Custody | None = None,
    outputs: Outputs | None = None,
    keep_input: str | None = None,
    **options,
):
    """Analyze one input whose outputs `_guard` has cleared; with `keep_input`, the stream is
    copied into a file of `outputs` as it is read. `options` go to `pipeline.analyze` as they
    are (signing, known_bad, known_good, on_read)."""
    from forensics.archive.scan import InputError
    from forensics.evidence import EvidenceError, StreamCopy
    from forensics.pipeline import analyze
    from forensics.render.progress import Progress
    from forensics.verify.refs import PinError

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
            **options,
        )
    except (InputError, PinError) as exc:
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
    from forensics.findings import at_or_above
    from forensics.models import Severity

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
    from forensics.evidence import EvidenceError, Outputs, shown
    from forensics.serialize import write_json

    if text is None or html is None:
        from forensics.render.html import render_html
        from forensics.render.text import render_text

        text, html = text or render_text, html or render_html
    if outputs is None:
        with Outputs() as own:
            return emit(result, json_out, html_out, quiet, text=text, html=html, outputs=own)
    to_stdout: list[str] = []
    try:
        for opt, path in (("--json", json_out), ("--html", html_out)):
            if not path:
                continue
            if path == "-":
                # rendered only after the files are committed, as before: stdout cannot be taken back
                to_stdout.append(opt)
                continue
            out = outputs.open(opt, path)
            try:
                if opt == "--json":
                    # in pieces: one string of a large report (and its UTF-8 copy) doubles the peak memory
                    write_json(result, out.write)
                else:
                    out.write(html(result))
            except OSError as exc:
                raise EvidenceError(f"cannot write {opt} {shown(path)}: {exc.strerror or exc}") from None
        outputs.commit()
    except EvidenceError as exc:
        # The analysis is done: say its outcome before the error, or it is lost with the file.
        if not quiet and json_out != "-":
            typer.echo(text(result), nl=False)
            raise fail(f"{exc}; no output was written")
        verdict = text(result, width=10_000).split("\n", 1)[0]
        raise fail(f"{exc}; no output was written; the analysis finished: {verdict}")
    except KeyboardInterrupt:
        raise fail("interrupted; no output was written")
    for opt in to_stdout:
        if opt == "--json":
            sys.stdout.flush()
            binary = getattr(sys.stdout, "buffer", None)
            write_json(result, binary.write if binary is not None else _text_writer(sys.stdout))
            if binary is not None:
                binary.flush()
        else:
            sys.stdout.write(html(result))
        sys.stdout.flush()
    if not quiet and json_out != "-":
        typer.echo(text(result), nl=False)


def _text_writer(stream):
    """bytes -> a text stream without a binary buffer (a test runner's capture)."""
    return lambda data: stream.write(data.decode("utf-8", "surrogateescape"))


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
    return side_output("--sarif", path, body, outputs)


def side_output(opt: str, path: str, body: str, outputs: Outputs) -> str | None:
    """An extra output (--sarif, --cyclonedx) into `outputs`, committed with the others by
    emit; the text itself when it goes to stdout ('-'), for the caller to print last."""
    if path == "-":
        return body
    with writing(opt, path):
        outputs.open(opt, path).write(body)
    return None


@contextmanager
def writing(opt: str, path: str | None):
    """Writing an output: its failure is one line naming it (exit 2), a reader that left the
    pipe early ends the command quietly (reader_gone)."""
    from forensics.evidence import EvidenceError, shown

    try:
        yield
    except BrokenPipeError:
        raise reader_gone()
    except EvidenceError as exc:
        raise fail(str(exc))
    except OSError as exc:
        raise fail(f"cannot write {opt} {shown(path or '-')}: {exc.strerror or exc}")


def analyze_model(archive: str, history: bool, quiet: bool, custody: Custody, **options) -> tuple[Report, Resolved]:
    """For the commands that read contents again (timeline, hashes, extract): the report and
    the read model it was built from; not an image archive is the one-line error."""
    models: list[Resolved] = []
    report = run_analysis(archive, [], history, quiet, custody=custody, on_read=models.append, **options)
    unreadable = not_an_image(report, archive)
    if unreadable is not None:
        raise fail(unreadable)
    return report, models[0]


def layers_of(archive: str, report: Report, model: Resolved, image: int) -> list[LayerView]:
    """The layers of --image N (from 0) of `archive`, each with its history step."""
    from forensics.export.layers import layer_views

    if not report.images:
        raise fail(f"{visible(archive)}: no image could be read from the archive (`forensics scan` says why)")
    if not 0 <= image < len(report.images):
        raise fail(f"--image {image}: the archive holds {len(report.images)} image(s), numbered from 0")
    img = report.images[image]
    return layer_views(model, image, {h.layer_index: h.index for h in img.history if h.layer_index is not None})


# --npm-cache (forensics.history.npmcache)


def load_npm_cache(dirs: list[str]):
    """The --npm-cache folders, indexed before the input is read (scan, scan-many)."""
    if not dirs:
        return None
    from forensics.history.npmcache import TarballError, Tarballs

    try:
        return Tarballs(dirs)
    except (TarballError, OSError) as exc:
        raise fail(str(exc))
