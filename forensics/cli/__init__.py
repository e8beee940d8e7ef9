"""Command line: `forensics scan|scan-many|history|diff|report|schema|explain|timeline|hashes|extract`.

Exit codes (every command): 0 nothing at or above --fail-on, 1 findings at or
above --fail-on (or, for diff, the contents differ), 2 the input could not be
analyzed (not found, not an image archive, bad usage).
"""

from __future__ import annotations

import typer

from forensics.cli import diff, explain, extract, hashes, history, report, scan, scan_many, schema, timeline, version
from forensics.cli.common import EXIT_DOC
from forensics.cli.diff import DIFF_EXIT_DOC

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
        "Start with:  forensics scan image.tar   (then: forensics explain CODE, forensics explain image.tar)\n\n"
        "Investigate: history, diff, timeline, hashes, extract. Verify and gate: scan --expect, "
        "--key/--trusted-root, --sarif, --cyclonedx. Many archives: scan-many.\n\n" + EXIT_DOC
    ),
)


# One module per command; each holds a plain function that typer turns into the command.
# Listed in `--help` in this order: the first look, the investigation, the exports, the rest.
app.command(epilog=EXIT_DOC)(scan.scan)
app.command(epilog=EXIT_DOC)(history.history)
app.command(epilog=DIFF_EXIT_DOC)(diff.diff)
app.command()(explain.explain)
app.command()(timeline.timeline)
app.command()(hashes.hashes)
app.command()(extract.extract)
app.command("scan-many")(scan_many.scan_many)
app.command("report")(report.report)
app.command()(schema.schema)
app.command()(version.version)


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
