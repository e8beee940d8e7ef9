"""One job of a fleet run: analyze one archive in a worker, write its report, return a summary.

The job is a plain picklable value and `run_job` a top-level function, so the same job runs
in a local process pool or on a Dask worker. The worker writes only under OUT/reports/,
each file named by the input's sha256 and renamed into place whole; the index is the
submitting process's (forensics.fleet.index). A broken archive is a summary with its
error, never an exception: one archive must not stop the batch.

The summary is small: the verdict, the counts by severity, per image its digests, refs,
per layer the diff_id and a digest of its file index (`files_digest`), per history step
its created_by. The fleet checks (forensics.fleet.checks) work on those alone, and read a
report again only for the one odd image they name.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass

from forensics.evidence import input_sha256
from forensics.models import Report, Severity

REPORTS = "reports"


@dataclass(frozen=True)
class Job:
    path: str
    out: str  # the fleet's output folder
    html: bool = False
    sarif: bool = False
    history: bool = True
    verify_packages: str = "all"
    cache: str | None = None  # the layer cache folder (forensics.fleet.cache)
    npm_cache: tuple[str, ...] = ()  # scan --npm-cache (forensics.history.npmcache)


def report_name(sha256: str) -> str:
    """`reports/<hex>.json` for "sha256:<hex>" (the input's digest, which the tool computed)."""
    return f"{REPORTS}/{sha256.removeprefix('sha256:')}.json"


def files_digest(files) -> str:
    """A digest of a layer's file index: path, type, mode, owner, link and content of each
    entry, sorted (mtimes left out: rebuilds of one Dockerfile differ in them)."""
    h = hashlib.sha256()
    for row in sorted((f.path, f.type, f.mode, f.uid, f.gid, f.link or "", f.sha256 or "") for f in files):
        h.update(json.dumps(row, ensure_ascii=True).encode("ascii") + b"\n")
    return "sha256:" + h.hexdigest()


def digest_job(path: str) -> dict:
    """The first half of a resumed run's job: the input's digest, to decide whether it is done
    (the set of what is done stays in the submitting process, not shipped with every job)."""
    try:
        return {"path": path, "sha256": input_sha256(path)}
    except OSError as exc:
        return {"path": path, "sha256": None, "error": f"cannot read: {exc.strerror or exc}"}


def _write(out: str, rel: str, body: str) -> str:
    """`body` into OUT/rel, whole or not at all (a temporary name, then a rename)."""
    target = os.path.join(out, rel)
    tmp = f"{target}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return rel


def summarize(report: Report) -> dict:
    counts = {s.value: 0 for s in Severity}
    for f in report.findings:
        counts[f.severity.value] += 1
    images = []
    for img in report.images:
        images.append(
            {
                "index": img.index,
                "digest": img.manifest_digest or img.config_digest,
                "manifest_digest": img.manifest_digest,
                "config_digest": img.config_digest,
                "refs": list(img.refs),
                "layers": [
                    {
                        "index": lr.index,
                        "diff_id": lr.diff_id,
                        "digest": lr.digest,
                        "entries": lr.entries,
                        "files_digest": files_digest(lr.files),
                    }
                    for lr in img.layers
                ],
                "history": [
                    {"created_by": h.created_by, "empty_layer": h.empty_layer, "layer_index": h.layer_index}
                    for h in img.history
                ],
            }
        )
    return {
        "verdict": report.verdict,
        "format": report.format,
        "counts": counts,
        "codes": sorted({f.code for f in report.findings}),
        "images": images,
    }


@contextmanager
def _one_process():
    """Each archive in one process: the fleet's parallelism is across archives, and a pool
    per archive inside each worker would only oversubscribe the cores."""
    from forensics.archive.parallel import WORKERS_ENV

    before = os.environ.get(WORKERS_ENV)
    os.environ[WORKERS_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(WORKERS_ENV, None)
        else:
            os.environ[WORKERS_ENV] = before


_TARBALLS: dict[tuple[str, ...], object] = {}  # per worker process: a folder of .tgz is hashed once


def _tarballs(dirs: tuple[str, ...]):
    if not dirs:
        return None
    if dirs not in _TARBALLS:
        from forensics.history.npmcache import Tarballs

        _TARBALLS[dirs] = Tarballs(list(dirs))
    return _TARBALLS[dirs]


def run_job(job: Job) -> dict:
    """Analyze one archive; never raises for anything the archive does."""
    t0 = time.monotonic()
    line: dict = {"path": job.path, "sha256": None, "verdict": "error", "errors": []}
    stats = {"hits": 0, "misses": 0, "rejected": 0}
    try:
        _run(job, line, stats)
    except Exception as exc:  # noqa: BLE001 - any failure is this archive's line, not the batch's end
        line["verdict"] = "error"
        line["errors"].append(f"internal error: {type(exc).__name__}: {exc}")
    line["run"] = {"seconds": round(time.monotonic() - t0, 3), "cache": stats}
    return line


def _run(job: Job, line: dict, stats: dict) -> None:
    from forensics.archive.scan import InputError
    from forensics.evidence import Custody, EvidenceError
    from forensics.pipeline import analyze
    from forensics.serialize import to_json

    try:
        custody = Custody.start_of(job.path)
        with _one_process(), _layer_cache(job.cache, stats):
            report = analyze(
                job.path,
                history=job.history,
                verify_packages=job.verify_packages,
                command=["forensics", "scan-many", job.path],
                custody=custody,
                npm_tarballs=_tarballs(job.npm_cache),
            )
        custody.finish(report.input)
    except (InputError, EvidenceError) as exc:
        line["errors"].append(str(exc))
        if line["sha256"] is None and os.path.isfile(job.path):
            try:
                line["sha256"] = input_sha256(job.path)
            except OSError:
                pass
        return
    sha = report.input.sha256 or report.input.listing_sha256
    if sha is None:
        line["errors"].append("the input has no digest")
        return
    line["sha256"] = sha
    line["size"] = report.input.size
    line.update(summarize(report))
    if report.verdict == "unreadable":
        line["errors"].append("not an image archive: no manifest.json or index.json")
    out = os.path.join(job.out, REPORTS)
    os.makedirs(out, exist_ok=True)
    name = report_name(sha)
    line["report"] = _write(job.out, name, to_json(report) + "\n")
    if job.html:
        from forensics.render.html import render_html

        line["html"] = _write(job.out, name.removesuffix(".json") + ".html", render_html(report))
    if job.sarif:
        from forensics.export.sarif import report_to_sarif

        body = json.dumps(report_to_sarif(report), indent=1, ensure_ascii=True) + "\n"
        line["sarif"] = _write(job.out, name.removesuffix(".json") + ".sarif", body)


@contextmanager
def _layer_cache(folder: str | None, stats: dict):
    if folder is None:
        yield
        return
    from forensics.archive.layercache import using
    from forensics.fleet.cache import LayerCache

    cache = LayerCache(folder)
    with using(cache):
        yield
    stats.update(cache.stats())
