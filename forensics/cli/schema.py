"""`forensics schema`: the JSON Schema of the outputs."""

import json

import typer


def schema(diff: bool = typer.Option(False, "--diff", help="the schema of `diff --json` instead.")) -> None:
    """Print the JSON Schema of the `scan --json` output (or of `diff --json`)."""
    if diff:
        from forensics.compare.model import Comparison

        typer.echo(json.dumps(Comparison.model_json_schema(), indent=1))
        return
    from forensics.models import Report

    typer.echo(json.dumps(Report.model_json_schema(), indent=1))
