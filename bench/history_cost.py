#!/usr/bin/env python3
"""Cost of the history stage per layer file entry (the target: at most 25 µs).

Makes (or reuses) a synthetic image with ../shared/bench/make_image.py, runs the
analysis in this process, and times the history stage alone (the call of
`forensics.history.analyze_images`, package-record second reads included). The
per-entry figure is that time over the number of entries of every layer tar. The
best of --repeat runs is kept, since the host is shared.

    .venv/bin/python bench/history_cost.py                  # 200 MiB gzip image, 3 runs
    .venv/bin/python bench/history_cost.py --size 1G --repeat 2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import forensics.pipeline as pipeline  # noqa: E402

STAGE = {"seconds": 0.0}
_real = pipeline.analyze_images


def _timed(*args, **kw):
    t0 = time.perf_counter()
    try:
        return _real(*args, **kw)
    finally:
        STAGE["seconds"] += time.perf_counter() - t0


pipeline.analyze_images = _timed


def image(out: Path, size: str, compression: str, seed: int) -> Path:
    path = out / f"make_image-{compression}-{size}-s{seed}.oci.tar"
    if not path.exists():
        gen = ROOT.parent / "shared" / "bench" / "make_image.py"
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                str(gen),
                "--size",
                size,
                "--compression",
                compression,
                "--seed",
                str(seed),
                "--oci",
                str(path),
                "-q",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="200M")
    ap.add_argument("--compression", default="gzip", choices=("gzip", "zstd", "none"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    ap.add_argument("--verify-packages", default="all")
    a = ap.parse_args()
    path = image(Path(a.out), a.size, a.compression, a.seed)
    best = None
    for _ in range(a.repeat):
        STAGE["seconds"] = 0.0
        t0 = time.perf_counter()
        report = pipeline.analyze(str(path), verify_packages=a.verify_packages)
        t1 = time.perf_counter()
        entries = sum(layer.entries for img in report.images for layer in img.layers)
        hist = STAGE["seconds"]
        run = {"total_s": t1 - t0, "history_s": hist, "entries": entries, "us_per_entry": 1e6 * hist / max(1, entries)}
        if best is None or run["history_s"] < best["history_s"]:
            best = run
    print(
        f"{path.name}: {best['entries']} layer entries; whole analysis {best['total_s']:.2f} s, "
        f"history stage {best['history_s']:.2f} s = {best['us_per_entry']:.1f} µs per entry (best of {a.repeat})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
