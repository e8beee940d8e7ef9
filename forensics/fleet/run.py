"""scan_many: discover, submit one job per archive, collect, check the fleet, write the outputs.

Only this (the submitting) process writes OUT/index.jsonl, OUT/fleet.json, OUT/index.html
and OUT/fleet.sarif; workers write OUT/reports/ only. The progress bar on stderr counts
archives and bytes (forensics.render.progress: fits the terminal width, only on a terminal).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field

from forensics.fleet.checks import fleet_checks
from forensics.fleet.executors import executor
from forensics.fleet.index import Index, done_set, read_index
from forensics.fleet.inputs import Input
from forensics.fleet.job import Job, digest_job, run_job

FLEET = "fleet.json"
PAGE = "index.html"


@dataclass
class Options:
    out: str
    html: bool = False
    sarif: bool = False
    workers: int | None = None
    dask: str | None = None
    cache: str | None = None
    force: bool = False
    history: bool = True
    verify_packages: str = "all"
    npm_cache: tuple[str, ...] = ()  # scan --npm-cache, for every archive


@dataclass
class Result:
    lines: list[dict]
    findings: list[dict]
    notes: list[dict]
    stats: dict = field(default_factory=dict)


def scan_many(inputs: list[Input], opts: Options, progress=None) -> Result:
    os.makedirs(os.path.join(opts.out, "reports"), exist_ok=True)
    previous = {} if opts.force else read_index(opts.out)
    done = frozenset() if opts.force else done_set(opts.out, previous)
    jobs = [
        Job(
            path=i.path,
            out=opts.out,
            html=opts.html,
            sarif=opts.sarif,
            history=opts.history,
            verify_packages=opts.verify_packages,
            cache=opts.cache,
            npm_cache=opts.npm_cache,
        )
        for i in inputs
    ]
    sizes = {i.path: i.size for i in inputs}
    total_bytes = sum(sizes.values())
    index = Index(opts.out, [i.path for i in inputs], previous)
    t0 = time.monotonic()
    finished_bytes = skipped = 0
    cache = {"hits": 0, "misses": 0, "rejected": 0}  # this run's, summed over its jobs
    scratch = os.path.join(opts.out, ".dask-scratch") if opts.dask == "local" else None
    if opts.dask is None:
        # Imported once here, before the pool forks, rather than once in every worker (half a second each).
        import forensics.pipeline  # noqa: F401
        import forensics.serialize  # noqa: F401

        if opts.html:
            import forensics.render.html  # noqa: F401
    try:
        with executor(opts.workers, opts.dask, scratch) as pool:
            # Largest first: the last job to start is a small one. Resuming, each input's digest
            # first (in the workers, two reads of it instead of one): what is done is not analyzed.
            order = sorted(jobs, key=lambda j: -sizes[j.path])
            job_of = {j.path: j for j in order}
            if done:
                pending = {pool.submit(digest_job, j.path) for j in order}
            else:
                pending = {pool.submit(run_job, j) for j in order}
            while pending:
                ready, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in ready:
                    line = fut.result()  # the jobs never raise for an archive's sake
                    if "verdict" not in line:  # a digest job
                        if line["sha256"] not in done:
                            pending.add(pool.submit(run_job, job_of[line["path"]]))
                            continue
                        line["verdict"] = "skipped"
                    index.add(line)
                    skipped += line.get("verdict") == "skipped"
                    for k, v in ((line.get("run") or {}).get("cache") or {}).items():
                        cache[k] = cache.get(k, 0) + v
                    finished_bytes += sizes.get(line["path"], 0)
                    if progress is not None:
                        progress(len(index.lines), len(jobs), finished_bytes, total_bytes)
    except BaseException:
        # Interrupted, or the engine failed: keep what is done, so that a new run resumes from it.
        index.flush()
        raise
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    lines = index.merged()
    findings, notes = fleet_checks(lines, opts.out)
    by_path: dict[str, list[dict]] = {}
    for f in findings:
        for a in f["archives"]:
            by_path.setdefault(a, []).append({"code": f["code"], "severity": f["severity"], "subject": f["subject"]})
    for line in lines:
        if line["path"] in by_path:
            line["fleet_findings"] = by_path[line["path"]]
        else:
            line.pop("fleet_findings", None)
    index.flush(lines)
    stats = {
        "archives": len(jobs),
        "bytes": total_bytes,
        "seconds": round(time.monotonic() - t0, 3),
        "skipped": skipped,
        "errors": sum(1 for ln in lines if ln.get("errors")),
        "cache": cache,
    }
    _write_json(opts.out, FLEET, {"findings": findings, "notes": notes, "stats": stats})
    from forensics.fleet.page import render_fleet

    _write_text(opts.out, PAGE, render_fleet(lines, findings, notes))
    if opts.sarif:
        from forensics.fleet.sarif import write_merged

        write_merged(opts.out, lines, findings)
    return Result(lines, findings, notes, stats)


def _write_text(out: str, name: str, body: str) -> None:
    path = os.path.join(out, name)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(body)
    os.replace(tmp, path)


def _write_json(out: str, name: str, value) -> None:
    _write_text(out, name, json.dumps(value, indent=1, ensure_ascii=True, sort_keys=True) + "\n")
