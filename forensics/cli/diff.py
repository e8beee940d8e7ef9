"""`forensics diff A B`: compare two images by content ."""

import typer

from forensics.cli.common import (
    CASE,
    EXAMINER,
    NOTE,
    FailOn,
    emit,
    fail,
    fail_on_option,
    finish,
    guard,
    not_an_image,
    run_analysis,
    sarif_text,
)

DIFF_EXIT_DOC = """
Exit codes: 0 = same content (rebuild noise aside); 1 = the contents differ (or,
with --fail-on, A or B has verification findings at or above it); 2 = an input
could not be analyzed or the image to compare is ambiguous.
"""


def diff(
    a: str = typer.Argument(
        ..., metavar="A", help="the reference image (registry image, yesterday's image): any input `scan` reads."
    ),
    b: str = typer.Argument(..., metavar="B", help="the image in question (local rebuild, today's image)."),
    image: list[str] = typer.Option(
        [],
        "--image",
        metavar="REF",
        help="pick the image by tag, digest or index: once for every input that holds "
        "several images, twice for A then B.",
    ),
    platform: list[str] = typer.Option(
        [],
        "--platform",
        metavar="OS/ARCH",
        help="pick the image by platform (linux/arm64): once for every input that "
        "holds several images, twice for A then B.",
    ),
    times: bool = typer.Option(False, "--times", help="also compare mtimes (a rebuild never has the same)."),
    noise: list[str] = typer.Option(
        [],
        "--noise",
        metavar="PATTERN",
        help="class differences at paths matching this glob as rebuild noise "
        "(* within a name, ** across directories); repeatable.",
    ),
    drop_noise: list[str] = typer.Option(
        [],
        "--drop-noise",
        metavar="PATTERN",
        help="remove one default noise rule (its pattern as printed); repeatable.",
    ),
    no_default_noise: bool = typer.Option(
        False, "--no-default-noise", help="no default noise rules: every difference counts."
    ),
    json_out: str | None = typer.Option(
        None, "--json", metavar="FILE|-", help="write the comparison as JSON ('-' for stdout)."
    ),
    html_out: str | None = typer.Option(
        None, "--html", metavar="FILE", help="write a self-contained HTML comparison page."
    ),
    fail_on: FailOn = fail_on_option(
        FailOn.never, "also exit 1 when A or B has verification findings at or above this."
    ),
    case: str | None = CASE,
    examiner: str | None = EXAMINER,
    note: str | None = NOTE,
    sarif_out: str | None = typer.Option(
        None,
        "--sarif",
        metavar="FILE|-",
        help="write the comparison findings as SARIF 2.1.0, located in B at the layer that wrote each path.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no terminal summary and no progress bar."),
) -> None:
    """Compare two images by what they contain: history, merged filesystems, and step by step.

    History lines are editable metadata: two images with identical histories can hold
    different files. This compares the merged filesystems path by path (type, mode,
    owner, size, content sha256, link target; mtimes with --times), names the first
    build step whose layer changed something differently, and sets rebuild noise
    (package-manager logs and caches, bytecode, ...) apart. Both inputs are verified
    as `scan` verifies them.

    The first line is the verdict: SAME CONTENT or CONTENT DIFFERS, and why.

    Examples:

      forensics diff registry-image.tar local-rebuild.tar

      forensics diff yesterday.oci.tar today.oci.tar --json diff.json --html diff.html

      forensics diff multi.oci.tar other.tar --platform linux/arm64
    """
    from forensics.case import case_record
    from forensics.compare import SelectionError, build_rules, compare, select_image
    from forensics.compare.render import render_html, render_text
    from forensics.evidence import Outputs
    from forensics.findings import at_or_above
    from forensics.models import Severity

    if len(image) > 2 or len(platform) > 2:
        raise fail("--image and --platform take one value (both inputs) or two (A, then B)")
    custody_a, custody_b = guard([a, b], [("--json", json_out), ("--html", html_out), ("--sarif", sarif_out)])
    report_a = run_analysis(a, [], True, quiet, custody=custody_a)
    report_b = run_analysis(b, [], True, quiet, custody=custody_b)
    for path, rep in ((a, report_a), (b, report_b)):
        if (unreadable := not_an_image(rep, path)) is not None:
            raise fail(unreadable)
        if not rep.images:
            raise fail(f"{path}: no readable image in this {rep.format} (`forensics scan` says why)")

    def pick(values: list[str], n: int, report) -> str | None:
        if not values:
            return None
        if len(values) == 1:  # one value: for the archives that hold several images
            return values[0] if len(report.images) > 1 else None
        return values[n]

    try:
        ia = select_image(
            report_a,
            pick(image, 0, report_a),
            pick(platform, 0, report_a),
            other=report_b.images[0] if len(report_b.images) == 1 else None,
        )
        ib = select_image(
            report_b,
            pick(image, 1, report_b),
            pick(platform, 1, report_b),
            other=next(i for i in report_a.images if i.index == ia),
        )
        rules = build_rules(add=noise, drop=drop_noise, defaults=not no_default_noise)
        cmp = compare(report_a, report_b, image_a=ia, image_b=ib, times=times, noise=rules)
    except SelectionError as exc:
        raise fail(str(exc))
    # After compare: its second pass (timestamps inside files) is the last read of the inputs.
    finish(custody_a, report_a)
    finish(custody_b, report_b)
    cmp.case = case_record(case, examiner, note)

    with Outputs() as outputs:
        sarif_body = sarif_text(cmp, sarif_out, outputs)  # --sarif: committed with the others by emit
        emit(cmp, json_out, html_out, quiet or sarif_out == "-", text=render_text, html=render_html, outputs=outputs)
    if sarif_body is not None:
        typer.echo(sarif_body, nl=False)

    code = 0 if cmp.content_equal else 1
    if fail_on != FailOn.never and (
        at_or_above(report_a.findings, Severity(fail_on.value))
        or at_or_above(report_b.findings, Severity(fail_on.value))
    ):
        code = 1
    raise typer.Exit(code)
