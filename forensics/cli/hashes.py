"""`forensics hashes ARCHIVE [--layer N | --merged]`: a hashdeep set of every file."""

from __future__ import annotations

import os
import sys
import time

import typer

from forensics import __version__
from forensics.cli.common import CASE, EXAMINER, NOTE, analyze_model, fail, finish, guard, layers_of, writing


def hashes(
    archive: str = typer.Argument(..., help="docker save tar or OCI layout (tar or directory); not stdin."),
    layer: int | None = typer.Option(
        None, "--layer", metavar="N", help="only layer N (from 0) as its tar holds it, whiteouts not applied."
    ),
    merged: bool = typer.Option(
        False, "--merged", help="the final filesystem: every layer applied with its whiteouts, as a container sees it."
    ),
    image: int = typer.Option(0, "--image", metavar="N", help="which image of a multi-image archive (from 0)."),
    out: str | None = typer.Option(
        None, "--output", "-o", metavar="FILE", help="write the set to FILE (default stdout)."
    ),
    case: str | None = CASE,
    examiner: str | None = EXAMINER,
    note: str | None = NOTE,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar and no summary on stderr."),
) -> None:
    """List every regular file of an image with its size, md5 and sha256, in hashdeep format.

    Without --layer or --merged, every layer is listed, each file named layer/N/<path> (the
    layers extracted side by side); with them, <path> relative to the root, as
    `hashdeep -l -r *` writes it inside an extracted root. Hardlinks carry their target's
    hashes; symlinks, directories and devices have no bytes and are not listed. The
    header's comments name the command, the input's sha256, the image and the case.

    The sha256 comes from the one pass. The md5 too where the pass took one (dpkg and
    apk systems, /bin, /etc); the other members are read again from the input (a
    second, targeted pass through the layers that hold them), so stdin cannot be used.

    Examples:

      forensics hashes image.tar --merged -o image.hashdeep

      hashdeep -r -k image.hashdeep -m /mnt/host     # which host files are the image's

      forensics hashes image.tar --layer 2 | grep -v '^#'
    """
    from forensics.evidence import Outputs
    from forensics.export.hashdeep import hashdeep_lines, rows
    from forensics.export.layers import merged as merge
    from forensics.pipeline import member_source

    if layer is not None and merged:
        raise fail("--layer and --merged exclude each other: one layer as its tar holds it, or the merged filesystem")
    if archive == "-":
        raise fail("hashes reads the input twice (md5s the pass did not take): give a file or a directory, not stdin")
    [custody] = guard([archive], [("--output", out)])
    with Outputs() as outputs:
        report, model = analyze_model(archive, False, quiet, custody, md5_in_pass=True)
        views = layers_of(archive, report, model, image)
        img = report.images[image]
        if layer is not None and not 0 <= layer < len(views):
            raise fail(f"--layer {layer}: image {image} has {len(views)} layer(s), numbered from 0")
        chosen = [views[layer]] if layer is not None else views
        selected = list(rows(chosen, merge(views).nodes if merged else None, per_layer=layer is None and not merged))
        what = f"layer {layer} ({views[layer].digest})" if layer is not None else "merged" if merged else "every layer"
        comments = [
            f"Invoked from: {os.getcwd()}",
            "$ " + " ".join(["forensics", *sys.argv[1:]]),
            f"{report.tool.name} {__version__}; input {report.input.path} {report.input.sha256 or ''}",
            f"image {image} {img.manifest_digest or img.config_digest or ''} {' '.join(img.refs)}: {what}",
        ]
        comments += [f"{k}: {v}" for k, v in (("case", case), ("examiner", examiner), ("note", note)) if v]
        stats: dict[str, int] = {}
        t0 = time.monotonic()
        lines = hashdeep_lines(selected, member_source(archive), comments, stats)
        with writing("--output", out):
            if out is None:
                for line in lines:
                    sys.stdout.write(line)
                sys.stdout.flush()
            else:
                target = outputs.open("--output", out)
                for line in lines:
                    target.write(line)
            finish(custody, report)  # after the second read: still the bytes analyzed
            outputs.commit()
    if not quiet:
        typer.echo(
            f"forensics: {stats['files']} files ({what}); md5 taken in the pass for {stats['md5_from_pass']}, "
            f"read again for {stats['md5_read_again']} in {time.monotonic() - t0:.2f} s"
            + (f"; {stats['unreadable']} could not be read again and are not listed" if stats["unreadable"] else ""),
            err=True,
        )
