"""`forensics history ARCHIVE`: the steps beside what each layer changed."""

import typer

from forensics.cli.common import (
    CASE,
    EXAMINER,
    NOTE,
    FailOn,
    emit,
    exit_for,
    fail,
    fail_on_option,
    finish,
    guard,
    not_an_image,
    run_analysis,
)


def history(
    archive: str = typer.Argument(..., help="any input `scan` reads; '-' for stdin."),
    all_paths: bool = typer.Option(
        False, "--all", help="list every changed path and the whole of each command, not the first dozen per step."
    ),
    width: int | None = typer.Option(
        None, "--width", min=40, help="output width in columns (default: COLUMNS, else the terminal's, else 80)."
    ),
    json_out: str | None = typer.Option(None, "--json", metavar="FILE|-", help="also write the full JSON result."),
    fail_on: FailOn = fail_on_option(FailOn.high),
    keep_input: str | None = typer.Option(
        None, "--keep-input", metavar="FILE", help="with '-': keep the exact bytes read from stdin in FILE."
    ),
    case: str | None = CASE,
    examiner: str | None = EXAMINER,
    note: str | None = NOTE,
) -> None:
    """Show each history step beside what its layer really changed.

    The first line is the verdict (as `forensics scan` gives it). Then, per step: its
    number, instruction and layer with the layer's diff_id, the command on the left, and
    on the right what the layer changed. Steps with findings are marked !!; each changed
    path says why the step explains it, or that it does not. Paths: + added,
    ~ modified [what changed], - deleted. A cell cut short ends in [+] (--all shows it
    whole); a word longer than its column continues on the next line after ↩.

    Examples:

      forensics history image.tar

      forensics history image.tar --all --width 160 | less -S

      docker save app:1 | forensics history - --json history.json
    """
    from forensics.case import case_record
    from forensics.evidence import Outputs
    from forensics.render.history_text import render_history

    [custody] = guard([archive], [("--json", json_out)], keep_input)
    with Outputs() as outputs:
        report = run_analysis(archive, [], True, False, custody=custody, outputs=outputs, keep_input=keep_input)
        finish(custody, report)
        report.case = case_record(case, examiner, note)
        emit(report, json_out, None, quiet=True, outputs=outputs)
    if (unreadable := not_an_image(report, archive)) is not None:
        raise fail(unreadable)
    if json_out != "-":
        typer.echo(render_history(report, width=width, all_paths=all_paths), nl=False)
    raise typer.Exit(exit_for(report, fail_on))
