"""`forensics scan ARCHIVE`: verify every digest and hold the history to the layers."""

from typing import TYPE_CHECKING

import typer

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
    load_npm_cache,
    not_an_image,
    read_pins,
    run_analysis,
    sarif_text,
    side_output,
)
from forensics.render.safe import visible

if TYPE_CHECKING:
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
    cyclonedx_out: str | None = typer.Option(
        None,
        "--cyclonedx",
        metavar="FILE|-",
        help="write a CycloneDX 1.6 SBOM of the packages the image's databases record (dpkg, apk, rpm, pip, "
        "npm): purls (distro from /etc/os-release), the layer each came from, each owned file's sha256 as "
        "evidence. `trivy sbom FILE` and `grype sbom:FILE` scan it offline. Needs the history analysis.",
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
    npm_cache: list[str] = typer.Option(
        [],
        "--npm-cache",
        metavar="DIR",
        help="package tarballs to hold the image's npm packages to: an npm cache (~/.npm, or its _cacache; "
        "the build host's, or one filled with `npm cache add NAME@VERSION`) or a folder of .tgz files "
        "(`npm pack NAME@VERSION`). A tarball whose sha512 is the integrity the image's lockfile gives is "
        "compared file by file with the installed package; a file that differs is "
        "history.package-file-modified. Without it, a tarball left in the image's own npm cache is used. "
        "Repeatable.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no terminal summary and no progress bar."),
    key: list[str] = typer.Option(
        [],
        "--key",
        metavar="FILE",
        help="a signer's PEM public key (ECDSA P-256/P-384, RSA, Ed25519; e.g. cosign.pub); repeatable. "
        "Verifies cosign signatures (over the simple-signing payload, whose digest must be a manifest of "
        "the archive), DSSE attestations (over the PAE), key-based sigstore bundles and notation JWS. "
        "A signature that verifies with none of them is CRITICAL signature.invalid.",
    ),
    trusted_root: str | None = typer.Option(
        None,
        "--trusted-root",
        metavar="FILE",
        help="a sigstore trusted_root.json you carried in: verifies keyless sigstore bundles offline "
        "(needs --identity and --issuer, and the extra: pip install 'container-image-forensics[sigstore]'). "
        "An offline check cannot tell whether that root is current or whether anything was revoked.",
    ),
    identity: str | None = typer.Option(
        None, "--identity", metavar="ID", help="with --trusted-root: the signer identity required (certificate SAN)."
    ),
    issuer: str | None = typer.Option(
        None, "--issuer", metavar="URL", help="with --trusted-root: the OIDC issuer required of the certificate."
    ),
    require_signature: bool = typer.Option(
        False,
        "--require-signature",
        help="exit 1 unless every image has a signature that verifies with --key or --trusted-root.",
    ),
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

      forensics scan image.tar --cyclonedx sbom.cdx.json   (then: trivy sbom sbom.cdx.json)

      forensics scan signed-oci.tar --key cosign.pub --require-signature
    """
    from forensics.case import case_record
    from forensics.evidence import Outputs

    pins = read_pins(expect, expect_file)
    if cyclonedx_out is not None and not history:
        raise fail("--cyclonedx lists the packages the history analysis reads; it cannot be used with --no-history")
    signing = load_signing_options(key, trusted_root, identity, issuer, require_signature)
    outs = [("--json", json_out), ("--html", html_out), ("--sarif", sarif_out), ("--cyclonedx", cyclonedx_out)]
    [custody] = guard([archive], outs, keep_input)
    suppressions = load_suppressions(archive, ignore, no_ignore)  # a malformed file: exit 2 before reading
    hash_sets = load_hash_sets(known_bad, known_good)
    npm_tarballs = load_npm_cache(npm_cache)  # a folder that cannot be read: exit 2 before the input is
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
            signing=signing,
            npm_tarballs=npm_tarballs,
            **hash_sets,
        )
        finish(custody, report)
        report.case = case_record(case, examiner, note)
        apply_suppressions(report, suppressions)
        unreadable = not_an_image(report, archive)
        # --sarif (forensics.export.sarif): opened with the other outputs, committed with them by emit
        sarif_body = sarif_text(report, sarif_out, outputs)
        sbom_body = cyclonedx_text(report, cyclonedx_out, outputs)  # --cyclonedx (forensics.export.cyclonedx)
        to_stdout = sarif_out == "-" or cyclonedx_out == "-"
        emit(report, json_out, html_out, quiet or unreadable is not None or to_stdout, outputs=outputs)
        if sarif_body is not None:
            typer.echo(sarif_body, nl=False)
        elif sbom_body is not None:
            typer.echo(sbom_body, nl=False)
        elif not quiet and json_out != "-" and report.suppression is not None and unreadable is None:
            from forensics.render.suppressed import render_suppressed_text

            typer.echo(render_suppressed_text(report, show_suppressed), nl=False)
        if not quiet and json_out != "-" and not to_stdout and unreadable is None:
            from forensics.render.signatures import render_signatures_text

            typer.echo(render_signatures_text(report), nl=False)
    if unreadable is not None:
        raise fail(unreadable)
    code = exit_for(report, fail_on)
    if require_signature:
        from forensics.signatures.check import require_failures

        unsigned = require_failures(report)
        for line in unsigned:
            typer.echo(f"forensics: --require-signature: {visible(line)}", err=True)
        code = max(code, 1 if unsigned else 0)
    raise typer.Exit(code)


# --key / --trusted-root / --identity / --issuer / --require-signature (forensics.signatures)


def load_signing_options(key, trusted_root, identity, issuer, require_signature):
    """Read before the input: a key file that cannot be used is a usage error (exit 2)."""
    from forensics.signatures import SigningError, load_signing

    if require_signature and not key and not trusted_root:
        raise fail("--require-signature needs something to verify with: --key FILE or --trusted-root FILE")
    try:
        return load_signing(key, trusted_root, identity, issuer)
    except SigningError as exc:
        raise fail(str(exc))


def cyclonedx_text(report, path: str | None, outputs: "Outputs") -> str | None:
    """--cyclonedx into `outputs` (committed with the others); the text itself for '-'."""
    if not path:
        return None
    from forensics.export.cyclonedx import report_to_cyclonedx

    try:
        body = report_to_cyclonedx(report)
    except Exception as exc:  # a bug must not dump a traceback, nor leave the other outputs half done
        raise fail(f"internal error while writing --cyclonedx: {type(exc).__name__}: {exc} (please report it)")
    return side_output("--cyclonedx", path, body, outputs)


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
