"""Where the jobs run: one `concurrent.futures.Executor`, whichever engine is behind it.

The default is a local process pool (`--workers N`, the core count by default). `--dask
ADDRESS` runs the same jobs on a Dask cluster through `Client(ADDRESS).get_executor()`,
which is a concurrent.futures executor, so nothing else changes; `--dask local` starts a
`LocalCluster` of N single-threaded worker processes on this host. Dask is the optional
extra `forensics[dask]`. On a cluster, the workers must see the inputs and the output
folder (and the cache folder) at the same paths as the submitting process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager

DASK_EXTRA = "--dask needs Dask: pip install 'forensics[dask]' (the dask[distributed] extra)"


class ExecutorError(Exception):
    """The engine cannot be started (one line, for the command's error)."""


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@contextmanager
def executor(workers: int | None = None, dask: str | None = None, scratch: str | None = None) -> Iterator[Executor]:
    """`scratch`: the folder a LocalCluster's workers may write to (under the output folder,
    not the system's temporary folder)."""
    n = workers or default_workers()
    if dask is None:
        pool = ProcessPoolExecutor(max_workers=n)
        try:
            yield pool
        finally:
            # on ^C or an error, what has not started is dropped, not run to the end
            pool.shutdown(wait=True, cancel_futures=True)
        return
    try:
        from dask import config as dask_config
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ExecutorError(DASK_EXTRA) from None
    # the nannies' and workers' files under `scratch` too, for this run only
    settings = {"temporary-directory": scratch} if scratch is not None else {}
    with dask_config.set(settings):
        cluster = None
        try:
            if dask == "local":
                cluster = LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=40,
                    local_directory=scratch,
                )
                client = Client(cluster)
            else:
                client = Client(dask, timeout=30)
        except (OSError, TimeoutError, ValueError) as exc:
            if cluster is not None:
                cluster.close()
            raise ExecutorError(f"--dask {dask}: cannot reach the scheduler: {exc}") from None
        try:
            yield client.get_executor()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
