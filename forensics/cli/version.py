"""`forensics version`."""

import typer

from forensics import __version__


def version() -> None:
    """Print the version."""
    typer.echo(f"forensics {__version__}")
