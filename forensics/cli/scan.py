"""`forensics scan ARCHIVE`: verify every digest and hold the history to the layers."""

import typer

from forensics.case import case_record
from forensics.cli.common import (
    CASE,
    EXAMINER,
    NOTE,
    FailOn,
    VerifyPackages,
    emit,
    exit_for,
    fail,
    fail_on_option,
    finish,
    guard,
    not_an_image,
    read_pins,
    run_analysis,
    sarif_text,
)
from forensics.evidence import Outputs


def scan(
    archive: str = typer.Argument(
        ..., help="docker save tar, OCI layout (tar or directory), optionally gzip/zstd compressed; '-' reads stdin."
    ),
    json_out: str | None = typer.Option(
        None, "--json", metavar="FILE|-", help="write the full result as JSON ('-' for stdout)."
    ),
    html_out: str | None = typer.Option(
        None, "--html", metavar="FILE|-", help="write a self-contained HTML report ('-' for stdout; one output only)."
    ),
    expect: list[str] = typer.Option(
        [],
        "--expect",
        metavar="[NAME@]sha256:HEX",
        help="a digest you deployed by: the manifest, index or config digest (sha256: and 64 lowercase hex "
        "digits); NAME@sha256:... also requires the ref NAME in the archive to point at it. Repeatable. "
        "A match is stated; a pin that matches nothing is CRITICAL ref.pin-mismatch; a malformed one is "
        "a usage error (exit 2).",
    ),
    expect_file: str | None = typer.Option(
        None,
        "--expect-file",
        metavar="FILE",
        help="a deploy lock: one [NAME@]sha256:HEX pin per line ('#' comments, blank lines). Every ref of "
        "the archive that the file names must match its pin, and at least one pin must apply.",
    ),
    fail_on: FailOn = fail_on_option(FailOn.high),
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
    case: str | None = CASE,
    examiner: str | None = EXAMINER,
    note: str | None = NOTE,
    sarif_out: str | None = typer.Option(
        None,
        "--sarif",
        metavar="FILE|-",
        help="write the findings as SARIF 2.1.0 for code scanning: one rule per finding code, results "
        "at image/<path> and <image digest>/layer/N, fingerprints that survive a rename of the image.",
    ),
    ignore: list[str] = typer.Option(
        [],
        "--ignore",
        metavar="FILE",
        help="suppression file (TOML, [[ignore]] entries: code, paths, digest, statement, expires); repeatable. "
        "Without it, .forensics-ignore.toml beside the input or in the working directory is read, and the "
        "terminal says so. Suppressed findings leave the verdict and --fail-on but stay listed apart.",
    ),
    no_ignore: bool = typer.Option(False, "--no-ignore", help="read no suppression file, not even a default one."),
    show_suppressed: bool = typer.Option(
        False, "--show-suppressed", help="list each suppressed finding with its statement (default: a count)."
    ),
    known_bad: list[str] = typer.Option(
        [],
        "--known-bad",
        metavar="FILE",
        help="a hash set of files you know to be bad: a hashdeep file (hashdeep -c md5,sha256) or lines "
        "`<sha256> [label]` (sha256sum output works). Every file of every layer whose sha256 is in it is a "
        "HIGH file.known-bad finding. Repeatable; a malformed line is an error naming FILE:LINE (exit 2).",
    ),
    known_good: list[str] = typer.Option(
        [],
        "--known-good",
        metavar="FILE",
        help="a hash set of files you trust, in the same formats: a file of the final filesystem in it counts "
        "as verified in the coverage where nothing stronger vouches for it. It never hides a finding. Repeatable.",
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

    The summary starts with the verdict (CLEAN, SUSPICIOUS, TAMPERED); each finding has
    an id (F-...) to cite, and `forensics explain CODE` says what its code means.
    Output paths are checked before the input is read.

    Examples:

      forensics scan image.tar

      docker save app:1 | forensics scan - --keep-input app.tar --json result.json

      forensics scan oci-dir/ --expect registry.example/app@sha256:<64 hex> --fail-on medium

      forensics scan image.tar --expect-file deploy.lock --case IR-2291 --examiner "J. Doe" --html report.html
    """
    pins = read_pins(expect, expect_file)
    [custody] = guard([archive], [("--json", json_out), ("--html", html_out), ("--sarif", sarif_out)], keep_input)
    suppressions = load_suppressions(archive, ignore, no_ignore)  # a malformed file: exit 2 before reading
    hash_sets = load_hash_sets(known_bad, known_good)
    with Outputs() as outputs:
        report = run_analysis(
            archive,
            pins,
            history,
            quiet,
            verify_packages.value,
            custody=custody,
            outputs=outputs,
            keep_input=keep_input,
            **hash_sets,
        )
        finish(custody, report)
        report.case = case_record(case, examiner, note)
        apply_suppressions(report, suppressions)
        unreadable = not_an_image(report, archive)
        # --sarif (forensics.export.sarif): opened with the other outputs, committed with them by emit
        sarif_body = sarif_text(report, sarif_out, outputs)
        emit(report, json_out, html_out, quiet or unreadable is not None or sarif_out == "-", outputs=outputs)
        if sarif_body is not None:
            typer.echo(sarif_body, nl=False)
        elif not quiet and json_out != "-" and report.suppression is not None and unreadable is None:
            from forensics.render.suppressed import render_suppressed_text

            typer.echo(render_suppressed_text(report, show_suppressed), nl=False)
    if unreadable is not None:
        raise fail(unreadable)
    raise typer.Exit(exit_for(report, fail_on))


# --ignore / --no-ignore / --show-suppressed (forensics.suppress)


def load_suppressions(archive: str, ignore: list[str], no_ignore: bool):
    from forensics.suppress import IgnoreFileError, default_files, load

    if ignore and no_ignore:
        raise fail("--ignore and --no-ignore exclude each other")
    files = [(path, "--ignore") for path in ignore] if ignore else ([] if no_ignore else default_files(archive))
    try:
        return load(files)
    except IgnoreFileError as exc:
        # a default file may have come with the evidence: say how to scan without it
        hint = (
            ""
            if ignore
            else f" (read by default, {files[0][1] if len(files) == 1 else 'beside the input or here'}; --no-ignore skips it)"
        )
        raise fail(str(exc) + hint)


def apply_suppressions(report, loaded) -> None:
    """Applied and announced on stderr, --quiet or not: a file beside the input may have come with it."""
    from forensics.render.suppressed import notice
    from forensics.suppress import apply

    if not loaded.files:
        return
    apply(report, loaded)
    for line in notice(report):
        typer.echo(f"forensics: {line}", err=True)


# --known-bad / --known-good (forensics.hashsets)


def load_hash_sets(known_bad: list[str], known_good: list[str]) -> dict:
    """Both sets, read before the input is (a malformed line is bad usage: exit 2)."""
    from forensics.hashsets import HashSetError, load

    try:
        return {"known_bad": load("--known-bad", known_bad), "known_good": load("--known-good", known_good)}
    except HashSetError as exc:
        raise fail(str(exc))
