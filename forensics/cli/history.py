"""`forensics history ARCHIVE`: the steps beside what each layer changed."""

import typer

from forensics.cli.common import FailOn, emit, exit_for, finish, guard, run_analysis
from forensics.evidence import Outputs


def history(
    archive: str = typer.Argument(..., help="any input `scan` reads; '-' for stdin."),
    all_paths: bool = typer.Option(False, "--all", help="list every changed path, not the first dozen per step."),
    width: int | None = typer.Option(None, "--width", help="output width (default: the terminal's)."),
    json_out: str | None = typer.Option(None, "--json", metavar="FILE|-", help="also write the full JSON result."),
    fail_on: FailOn = typer.Option(FailOn.high, "--fail-on", help="lowest severity that makes the exit code 1."),
    keep_input: str | None = typer.Option(
        None, "--keep-input", metavar="FILE", help="with '-': keep the exact bytes read from stdin in FILE."
    ),
) -> None:
    """Show each history step beside what its layer really changed.

    Steps with findings are marked !!; each changed path says why the step explains it,
    or that it does not. Paths: + added, ~ modified [what changed], - deleted.
    """
    from forensics.render.history_text import render_history

    [custody] = guard([archive], [("--json", json_out)], keep_input)
    with Outputs() as outputs:
        report = run_analysis(archive, [], True, False, custody=custody, outputs=outputs, keep_input=keep_input)
        finish(custody, report)
        emit(report, json_out, None, quiet=True, outputs=outputs)
    if json_out != "-":
        typer.echo(render_history(report, width=width, all_paths=all_paths), nl=False)
    raise typer.Exit(exit_for(report, fail_on))
