"""What `forensics hashes` costs beyond the one pass: the second read of contents for the
md5s the pass did not take, and what the timeline and the extraction of one file add.

    .venv/bin/python bench/export_cost.py ARCHIVE [ARCHIVE ...]

Prints, per archive: the pass (analyze, history off), the files of the merged view and of
every layer, how many md5s came from the pass and how many were read again, the time of
that second read, the body file written (events, seconds) and one extraction. Fastest of
--repeat runs (default 3). Timing only: nothing here is a test.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forensics.export.extract import extract, locate  # noqa: E402
from forensics.export.hashdeep import hashdeep_lines, rows  # noqa: E402
from forensics.export.layers import layer_views, merged  # noqa: E402
from forensics.export.timeline import events, write_bodyfile  # noqa: E402
from forensics.pipeline import analyze, member_source  # noqa: E402


def best(fn, repeat: int):
    out, fastest = None, float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        fastest = min(fastest, time.perf_counter() - t0)
    return out, fastest


def one(path: str, repeat: int) -> None:
    models: list = []
    (report, t_pass) = best(
        lambda: (models.clear(), analyze(path, history=False, on_read=models.append, md5_in_pass=True))[1], repeat
    )
    img = report.images[0]
    steps = {h.layer_index: h.index for h in img.history if h.layer_index is not None}
    views = layer_views(models[0], 0, steps)
    size = os.path.getsize(path) / 2**20
    print(f"{path}: {size:.1f} MiB, {len(views)} layers; pass (history off) {t_pass:.2f} s")
    for label, nodes in (("merged", merged(views).nodes), ("every layer", None)):
        selected = list(rows(views, nodes, per_layer=nodes is None))
        stats: dict[str, int] = {}

        def run(selected=selected, stats=stats) -> int:
            return sum(1 for _ in hashdeep_lines(selected, member_source(path), [], stats))

        _, t = best(run, repeat)
        print(
            f"  hashes {label}: {stats['files']} files, md5 from the pass {stats['md5_from_pass']}, "
            f"read again {stats['md5_read_again']} in {t:.2f} s ({t / t_pass:.1f}x the pass)"
        )
    _, t = best(lambda: write_bodyfile(events(report, [views]), io.StringIO().write), repeat)
    print(f"  body file: {sum(len(v.files) for v in views)} entries written in {t:.3f} s (after the pass)")
    biggest = max((f for f in merged(views).nodes.values() if f.entry.type == "file"), key=lambda n: n.entry.size)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        extract(locate(views, biggest.entry.path, None), biggest.entry.path, d + "/x", member_source(path), {})
        t = time.perf_counter() - t0
    print(f"  extract the largest file ({biggest.entry.size / 2**20:.1f} MiB, layer {biggest.layer}): {t:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archives", nargs="+")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for a in args.archives:
        one(a, args.repeat)


if __name__ == "__main__":
    main()
