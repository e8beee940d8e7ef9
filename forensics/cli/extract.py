"""`forensics extract ARCHIVE PATH [--layer N] -o DIR`: one file's bytes, with a manifest."""

from __future__ import annotations

import os

import typer

from forensics import __version__
from forensics.cli.common import CASE, EXAMINER, NOTE, analyze_model, fail, finish, guard, layers_of
from forensics.render.safe import visible as shown


def extract(
    archive: str = typer.Argument(..., help="docker save tar or OCI layout (tar or directory); not stdin."),
    path: str = typer.Argument(..., help="the path inside the image, e.g. /usr/local/bin/relayd."),
    out_dir: str = typer.Option(
        ...,
        "--output",
        "-o",
        metavar="DIR",
        help="the folder to write into (created if absent; its parent must exist).",
    ),
    layer: int | None = typer.Option(
        None,
        "--layer",
        metavar="N",
        help="take the path as layer N (from 0) holds it, even if a later layer replaces or deletes it. "
        "Default: as the merged filesystem shows it (the last layer that writes it).",
    ),
    image: int = typer.Option(0, "--image", metavar="N", help="which image of a multi-image archive (from 0)."),
    case: str | None = CASE,
    examiner: str | None = EXAMINER,
    note: str | None = NOTE,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar and no summary."),
) -> None:
    """Extract the bytes of one path of an image, with their hashes and provenance.

    Writes two files into DIR: the content, under a fixed name made from the path
    (`usr_local_bin_relayd.<12 hex>.bin`, read-only), and `manifest.json`: sha256, md5,
    size, mode, owner, mtime, the layer's index, digest and diff_id, the history step,
    the input's sha256, the tool version and the case record. Nothing is ever
    overwritten, and nothing is written outside DIR whatever the image's names hold.
    Links are not followed: a symlink is recorded in the manifest with its target (no
    content file); a hardlink gives its target's bytes from the same layer.

    Mode, owner and mtime are build metadata an attacker who built the image could set;
    the manifest says so. The bytes are checked against the sha256 of the first pass.

    Examples:

      forensics extract image.tar /usr/local/bin/relayd -o evidence/

      forensics extract image.tar /usr/local/bin/relayd --layer 1 -o evidence-layer1/ --case IR-2291
    """
    from forensics.case import case_record
    from forensics.export.extract import MANIFEST, ExtractError, file_name, image_path, locate
    from forensics.export.extract import extract as write_out
    from forensics.pipeline import member_source

    if archive == "-":
        raise fail("extract reads the input twice (the bytes, after the scan): give a file or a directory, not stdin")
    try:
        wanted = image_path(path)
    except ExtractError as exc:
        raise fail(str(exc))
    name = file_name(wanted)
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise fail(f"-o {shown(out_dir)} exists and is not a directory")
    outputs: list[tuple[str, str | None]]
    if os.path.isdir(out_dir):
        targets = [os.path.join(out_dir, n) for n in (name, MANIFEST)]
        for p in targets:
            if os.path.lexists(p):
                raise fail(f"{p} exists; extract never overwrites: choose another -o DIR")
        outputs = [("--output", p) for p in targets]
    else:
        outputs = [("--output", out_dir)]
    [custody] = guard([archive], outputs)  # never into the evidence (an input directory)
    report, model = analyze_model(archive, False, quiet, custody)
    views = layers_of(archive, report, model, image)
    img = report.images[image]
    about = {
        "tool": {"name": report.tool.name, "version": __version__},
        "input": {"path": report.input.path, "sha256": report.input.sha256, "size": report.input.size},
        "image": {
            "index": image,
            "manifest_digest": img.manifest_digest,
            "config_digest": img.config_digest,
            "refs": img.refs,
        },
        "case": case_record(case, examiner, note).model_dump(mode="json"),
    }
    try:
        loc = locate(views, wanted, layer)
        manifest = write_out(loc, wanted, out_dir, member_source(archive), about)
    except ExtractError as exc:
        raise fail(str(exc))
    except OSError as exc:
        raise fail(f"cannot write into -o {shown(out_dir)}: {exc.strerror or exc}")
    finish(custody, report)
    if not quiet:
        where = f"layer {loc.view.index}" + (" (merged view)" if loc.source == "merged" else "")
        written = (
            os.path.join(out_dir, manifest["file"]) if manifest["file"] else "no content file (" + loc.entry.type + ")"
        )
        digest = f"sha256:{manifest['sha256']}, {manifest['size']} bytes; " if manifest["sha256"] else ""
        typer.echo(
            f"{shown(wanted)} from {where}: {shown(written)}, {digest}manifest {shown(os.path.join(out_dir, MANIFEST))}"
        )
        if manifest["link"]:
            typer.echo(f"  {loc.entry.type} to {shown(manifest['link'])} (recorded, not followed)")
