#!/usr/bin/env python3
"""Where does analyze() spend its time? Per-thread CPU, queue waits, per-phase times, cProfile per thread.

Instruments forensics in-process only (monkeypatching, no file is changed):
  * pipeline phases: scan_input, resolve, _verify, _build_image, Report building
  * layerscan: CPU time (time.thread_time) of the producer (calling thread) and of the
    worker (_walk), and how long each was blocked on the queue (producer in put = queue
    full = worker is the bottleneck; worker in get = queue empty = producer is).
  * with --cprofile: one cProfile per thread (main and each layer worker), printed separately.

    .venv/bin/python bench/profile_tool.py bench/out/make_image-gzip-200M.oci.tar [--cprofile] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import queue
import sys
import threading
import time
from pathlib import Path


class _Stats:
    def __init__(self) -> None:
        self.put_wait = 0.0
        self.get_wait = 0.0
        self.puts = 0
        self.join_wait = 0.0
        self.worker_cpu = 0.0
        self.worker_wall = 0.0
        self.producer_cpu = 0.0
        self.producer_wall = 0.0
        self.layers = 0
        self.lock = threading.Lock()


S = _Stats()


class TimedQueue(queue.Queue):
    def put(self, item, block=True, timeout=None):
        t = time.perf_counter()
        super().put(item, block, timeout)
        S.put_wait += time.perf_counter() - t
        S.puts += 1

    def get(self, block=True, timeout=None):
        t = time.perf_counter()
        item = super().get(block, timeout)
        S.get_wait += time.perf_counter() - t
        return item


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image")
    ap.add_argument("--cprofile", action="store_true", help="cProfile each thread (slows Python code ~2x)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--sort", default="tottime")
    ap.add_argument("--history", action="store_true")
    ap.add_argument(
        "--wait-idle",
        type=float,
        default=120.0,
        metavar="S",
        help="wait up to S seconds for other processes to go quiet first",
    )
    ap.add_argument(
        "--switchinterval",
        type=float,
        default=None,
        help="sys.setswitchinterval(S) first (CPython default 0.005): tests GIL hand-off latency",
    )
    a = ap.parse_args()
    if a.switchinterval is not None:
        sys.setswitchinterval(a.switchinterval)

    from forensics import pipeline
    from forensics.archive import layerscan

    worker_profiles: list[cProfile.Profile] = []
    orig_walk = layerscan._walk
    orig_scan_stream = layerscan.scan_stream

    def walk(*args, **kw):
        prof = cProfile.Profile() if a.cprofile else None
        c0, w0 = time.thread_time(), time.perf_counter()
        if prof:
            prof.enable()
        try:
            return orig_walk(*args, **kw)
        finally:
            if prof:
                prof.disable()
                with S.lock:
                    worker_profiles.append(prof)
            S.worker_cpu += time.thread_time() - c0
            S.worker_wall += time.perf_counter() - w0

    def scan_stream(*args, **kw):
        c0, w0 = time.thread_time(), time.perf_counter()
        try:
            return orig_scan_stream(*args, **kw)
        finally:
            S.producer_cpu += time.thread_time() - c0
            S.producer_wall += time.perf_counter() - w0
            S.layers += 1

    class TimedThread(threading.Thread):
        def join(self, timeout=None):
            t = time.perf_counter()
            super().join(timeout)
            S.join_wait += time.perf_counter() - t

    layerscan.threading = type(threading)("threading_shim")
    layerscan.threading.Thread = TimedThread
    layerscan._walk = walk
    layerscan.scan_stream = scan_stream
    layerscan.queue.Queue = TimedQueue  # the module does `queue.Queue(maxsize=...)`
    from forensics.archive import scan as scanmod

    scanmod.scan_stream = scan_stream

    phases: dict[str, float] = {}

    def timed(mod, name):
        fn = getattr(mod, name)

        def wrapper(*args, **kw):
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - t

        setattr(mod, name, wrapper)

    for name in ("scan_input", "resolve", "_verify", "_build_image", "_blobs", "sort_findings", "_dedupe"):
        timed(pipeline, name)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run_bench import Load, wait_idle

    busy = wait_idle(a.wait_idle)
    load = Load().__enter__()
    main_prof = cProfile.Profile() if a.cprofile else None
    cpu0, t0 = time.process_time(), time.perf_counter()
    main_cpu0 = time.thread_time()
    if main_prof:
        main_prof.enable()
    rep = pipeline.analyze(a.image, history=a.history, command=["profile"])
    if main_prof:
        main_prof.disable()
    main_cpu = time.thread_time() - main_cpu0
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    load.__exit__(None, None, None)
    print(
        f"machine: {busy} cores busy before, other processes used {load.others_cores} cores during the run"
        + ("  (NOISY: numbers below are unreliable)" if (load.others_cores or 0) > 0.2 else "")
    )

    print(
        f"analyze: wall {wall:.2f}s, process CPU {cpu:.2f}s (parallelism {cpu / wall:.2f}), "
        f"main-thread CPU {main_cpu:.2f}s, verdict {rep.verdict}"
    )
    print("phases (wall): " + ", ".join(f"{k} {v:.2f}s" for k, v in phases.items()))
    other = wall - sum(phases.values())
    print(f"  rest of analyze (Report(...) construction etc.): {other:.2f}s")
    print(f"layer streams: {S.layers} blobs via scan_stream")
    print(
        f"  producer (main thread): wall {S.producer_wall:.2f}s = CPU {S.producer_cpu:.2f}s + blocked in "
        f"queue.put {S.put_wait:.2f}s ({S.puts} puts) + in worker.join {S.join_wait:.2f}s + other "
        f"{S.producer_wall - S.producer_cpu - S.put_wait - S.join_wait:.2f}s"
    )
    print(
        f"  worker threads (_walk): wall {S.worker_wall:.2f}s = CPU {S.worker_cpu:.2f}s + blocked in "
        f"queue.get {S.get_wait:.2f}s + other {S.worker_wall - S.worker_cpu - S.get_wait:.2f}s"
    )
    print(
        "  (put/join waits: the worker is the bottleneck; get waits: the producer is;"
        " 'other' = runnable but waiting for the GIL, or descheduled)"
    )
    if a.cprofile:
        for title, profs in (("MAIN THREAD", [main_prof]), ("LAYER WORKER THREADS (_walk)", worker_profiles)):
            out = io.StringIO()
            st = pstats.Stats(profs[0], stream=out)
            for p in profs[1:]:
                st.add(p)
            st.sort_stats(a.sort).print_stats(a.top)
            print(f"\n===== {title} =====")
            print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
