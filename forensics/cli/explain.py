"""`forensics explain CODE|ARCHIVE`: what a finding code means and how to confirm it by hand, or a
guided tour of one archive with every digest recomputed by a command the reader can run."""

import os

import typer

from forensics.cli.common import fail, finish, guard, run_analysis


def explain(
    target: str | None = typer.Argument(
        None, metavar="CODE|ARCHIVE", help="a finding code (blob.digest-mismatch) or an archive or layout directory."
    ),
    vocabulary: bool = typer.Option(False, "--vocabulary", help="print every code as Markdown (docs/findings.md)."),
    width: int | None = typer.Option(None, "--width", help="output width (default: COLUMNS, the terminal, else 80)."),
) -> None:
    """Explain a finding code, or walk through an archive: index, manifest, config, layers, history.

    For a code: what it means, why it matters, how an attacker produces it, how to confirm it with
    tar, sha256sum, gzip and jq, and its known false-positive causes. For an archive: each document
    with what it says and the exact command that recomputes its digest. Exit 0, or 2 for an unknown
    code or an input that is not an image archive.
    """
    from forensics.explain.render import render_entry, render_tour
    from forensics.findings import CODES, closest_codes, explain_code

    if vocabulary:
        from forensics.explain.vocabulary import vocabulary_markdown

        typer.echo(vocabulary_markdown())
        return
    if target is None:
        raise fail("give a finding code (forensics explain layer.diffid-mismatch) or an archive to tour")
    cols = max(40, width) if width else None
    if target in CODES:
        typer.echo(render_entry(explain_code(target), cols), nl=False)
        return
    if target == "-":
        raise fail("the tour points commands at a file: save the stream first (forensics scan - --keep-input FILE)")
    if not os.path.exists(target):
        near = closest_codes(target)
        hint = f"; closest codes: {', '.join(near)}" if near else "; `forensics explain --vocabulary` lists them"
        raise fail(f"{target!r} is neither a finding code nor a file or directory{hint}")
    from forensics.explain.tour import build_tour

    [custody] = guard([target], [])
    report = run_analysis(target, [], True, False, custody=custody)
    finish(custody, report)
    if report.verdict == "unreadable" or not report.images:
        why = next((f.detail for f in report.findings if f.severity.value in ("critical", "high")), "no image found")
        raise fail(f"{target} holds no image to tour: {why}")
    typer.echo(render_tour(build_tour(report), cols), nl=False)
