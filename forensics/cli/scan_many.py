"""`forensics scan-many INPUT... --out DIR`: a fleet of archives, locally or on a Dask cluster."""

from __future__ import annotations

import os
import traceback

import typer

from forensics.cli.common import FailOn, VerifyPackages, fail, fail_on_option, load_npm_cache
from forensics.render.safe import visible

SEVERITIES = ("critical", "high", "medium", "low", "info")


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _check_outputs(given: list[str], out: str, cache: str | None) -> None:
    """Outputs never inside an input: the evidence is only read."""
    for opt, path in (("--out", out), ("--cache", cache)):
        if path is None:
            continue
        if os.path.exists(path) and not os.path.isdir(path):
            raise fail(f"{opt} {visible(path)}: exists and is not a folder")
        for g in given:
            if os.path.isdir(g) and _inside(path, g) or os.path.exists(g) and _inside(g, path):
                raise fail(f"{opt} {visible(path)} and the input {visible(g)} overlap: write the outputs elsewhere")


def _exit_code(lines: list[dict], findings: list[dict], fail_on: FailOn) -> int:
    if fail_on != FailOn.never:
        worst = SEVERITIES[: SEVERITIES.index(fail_on.value) + 1]
        # an archive that could not be read is exit 2's, as for `scan`, not evidence of tampering
        analyzed = [ln for ln in lines if ln.get("verdict") not in ("unreadable", "error")]
        if any(sum((ln.get("counts") or {}).get(s, 0) for s in worst) for ln in analyzed) or any(
            f["severity"] in worst for f in findings
        ):
            return 1
    return 2 if any(ln.get("errors") for ln in lines) else 0


def scan_many(
    inputs: list[str] = typer.Argument(
        None,
        help="archives (docker save tar, OCI layout tar, compressed or not) and folders: a folder holding "
        "oci-layout or index.json is one OCI layout; any other folder is searched for archives.",
        show_default=False,
    ),
    from_list: str | None = typer.Option(
        None, "--from", metavar="LIST", help="a file of input paths, one a line ('#' comments, blank lines)."
    ),
    out: str = typer.Option(
        ...,
        "--out",
        metavar="DIR",
        help="the output folder: reports/<input sha256>.json (and .html, .sarif), index.jsonl (one line per "
        "archive), fleet.json (findings across the fleet), index.html (the fleet page).",
    ),
    html: bool = typer.Option(False, "--html", help="also write each archive's HTML report."),
    sarif: bool = typer.Option(
        False, "--sarif", help="also write OUT/fleet.sarif: one SARIF run per archive, one for the fleet's findings."
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        metavar="N",
        help="worker processes (or Dask workers with --dask local); default: the core count.",
    ),
    dask: str | None = typer.Option(
        None,
        "--dask",
        metavar="ADDRESS",
        help="run the jobs on a Dask cluster: a scheduler address (tcp://scheduler:8786), or 'local' to start "
        "a LocalCluster here. Needs the extra: pip install 'forensics[dask]'. The workers must see the inputs, "
        "--out and --cache at the same paths.",
    ),
    cache: str | None = typer.Option(
        None,
        "--cache",
        metavar="DIR",
        help="a layer cache folder, shared by the workers and by later runs: a layer already analyzed (same "
        "compressed bytes, as hashed here; same tool version and options) is not inflated and walked again. "
        "Each entry is checked against its own sha256 before use; a bad one is recomputed and counted.",
    ),
    force: bool = typer.Option(
        False, "--force", help="analyze again the archives that already have a result in OUT/index.jsonl."
    ),
    history: bool = typer.Option(True, "--history/--no-history", help="diff history against layer content."),
    verify_packages: VerifyPackages = typer.Option(
        VerifyPackages.all, "--verify-packages", help="which package records to check (see `forensics scan --help`)."
    ),
    npm_cache: list[str] = typer.Option(
        [],
        "--npm-cache",
        metavar="DIR",
        help="package tarballs to hold every archive's npm packages to (see `forensics scan --help`). "
        "Repeatable; the folders must be readable where the workers run.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar and no summary."),
    fail_on: FailOn = fail_on_option(FailOn.high),
) -> None:
    """Scan a fleet of image archives: one job per archive, in a local process pool or on Dask.

    Every archive gets its report in OUT/reports/, named by its input sha256, and one line in
    OUT/index.jsonl: path, sha256, verdict, counts by severity, image digests and refs, errors.
    A broken archive never stops the batch: its line says why. Run it again into the same
    OUT and what already has a result is skipped (--force: analyzed again). Across the fleet,
    one tag at different digests (ref.conflict) and builds whose histories are equal while one
    layer differs from what the others agree on (compare.history-equal-content-differs, with
    the step and the paths) are reported in fleet.json, the index and the page.

    Exit codes: 0 = nothing at or above --fail-on; 1 = an archive or the fleet has findings at
    or above it; 2 = bad usage, or (with nothing at or above --fail-on) an archive could not
    be analyzed.

    Examples:

      forensics scan-many images/ --out fleet-out --html

      forensics scan-many --from builds.txt --out out/ --cache ~/.fx --sarif

      forensics scan-many /mirror --out /nfs/out --dask tcp://sched:8786
    """
    from forensics.fleet.executors import ExecutorError
    from forensics.fleet.inputs import InputsError, discover
    from forensics.fleet.run import Options
    from forensics.fleet.run import scan_many as run
    from forensics.render.progress import Progress

    given = list(inputs or [])
    if not given and from_list is None:
        raise fail("no input: name archives or folders, or --from LIST")
    _check_outputs(given, out, cache)
    load_npm_cache(npm_cache)  # an unreadable folder is bad usage: exit 2 before any archive is read
    try:
        found = discover(given, from_list)
    except InputsError as exc:
        raise fail(str(exc))
    if not found:
        raise fail(f"no archive found in {', '.join(visible(g) for g in given) or visible(from_list or '')}")
    bar = Progress("scan-many", enabled=None if not quiet else False)

    def progress(done: int, total: int, done_bytes: int, total_bytes: int) -> None:
        bar.label = f"scan-many {done}/{total} archives"
        bar(done_bytes, total_bytes)

    opts = Options(
        out=out,
        html=html,
        sarif=sarif,
        workers=workers,
        dask=dask,
        cache=cache,
        force=force,
        history=history,
        verify_packages=verify_packages.value,
        npm_cache=tuple(os.path.abspath(d) for d in npm_cache),
    )
    try:
        result = run(found, opts, progress)
    except ExecutorError as exc:
        raise fail(str(exc))
    except OSError as exc:
        raise fail(f"cannot write into {visible(out)}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        raise fail("interrupted; the index holds the archives finished so far")
    except Exception as exc:  # a bug (or the engine's) must still not dump a traceback on an investigator
        if os.environ.get("FORENSICS_DEBUG"):
            traceback.print_exc()
        raise fail(
            f"internal error: {type(exc).__name__}: {exc}; the index holds the archives finished so far "
            "(set FORENSICS_DEBUG=1 for a traceback, and please report it)"
        )
    finally:
        bar.close()
    if not quiet:
        s = result.stats
        tally: dict[str, int] = {}
        for ln in result.lines:
            tally[ln.get("verdict", "error")] = tally.get(ln.get("verdict", "error"), 0) + 1
        verdicts = ", ".join(f"{n} {v}" for v, n in sorted(tally.items()))
        typer.echo(
            f"{s['archives']} archives in {s['seconds']:.1f} s ({verdicts}); {s['skipped']} skipped as done; "
            f"{len(result.findings)} fleet finding(s); index: {visible(os.path.join(out, 'index.jsonl'))}"
        )
        if cache:
            c = s["cache"]
            typer.echo(f"layer cache: {c['hits']} hits, {c['misses']} misses, {c['rejected']} rejected entries")
        for f in result.findings:
            typer.echo(visible(f"{f['severity'].upper()} {f['code']}: {f['detail']} [{', '.join(f['archives'])}]"))
    raise typer.Exit(_exit_code(result.lines, result.findings, fail_on))
