"""What checking every package digest costs: `--verify-packages all` against `changed`,
the scan without history, and the floor, on one image, in the same run.

    .venv/bin/python bench/pkgcost.py ../shared/corpus/attack/deb-tools-pkgfile.oci.tar --repeat 5

Each configuration runs in a child process (imports excluded from the timing); the
fastest of --repeat runs is kept. The floor is run_bench.floor (one thread: read,
sha256 of every blob, decompress, sha256 of every layer stream).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CHILD = r"""
import json, sys, time
from forensics.pipeline import analyze
path, mode = sys.argv[1], sys.argv[2]
t0, c0 = time.perf_counter(), time.process_time()
rep = analyze(path, history=mode != "none", verify_packages=mode if mode != "none" else "all", command=["bench"])
out = {"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "verdict": rep.verdict}
cov = [im.package_coverage.model_dump() for im in rep.images if im.package_coverage is not None]
out["coverage"] = cov[0] if cov else None
print(json.dumps(out))
"""


def run(path: str, mode: str) -> dict:
    cp = subprocess.run([sys.executable, "-c", CHILD, path, mode], capture_output=True, text=True)
    if cp.returncode != 0:
        raise SystemExit(f"{mode}: {cp.stderr.strip()[-500:]}")
    return json.loads(cp.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    from run_bench import floor, warm_cache

    warm_cache(Path(a.image))
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    cov = None
    for _ in range(a.repeat):  # interleaved, so a burst of load elsewhere hits every row alike
        fl = floor(Path(a.image))
        wall["floor"] = min(wall.get("floor", 1e9), fl["seconds"])
        cpu["floor"] = min(cpu.get("floor", 1e9), fl["cpu_seconds"])
        for mode in ("none", "changed", "all"):
            r = run(a.image, mode)
            wall[mode] = min(wall.get(mode, 1e9), r["seconds"])
            cpu[mode] = min(cpu.get(mode, 1e9), r["cpu"])
            cov = r["coverage"] if mode == "all" else cov
    print(f"image: {a.image}  (fastest of {a.repeat}; CPU = user+sys of the process, both threads)")
    print(f"{'':40s} {'wall s':>8s} {'x floor':>8s} {'CPU s':>8s} {'x floor':>8s}")
    for mode, label in (
        ("floor", "floor (sha256 + inflate + sha256)"),
        ("none", "scan --no-history"),
        ("changed", "scan --verify-packages changed"),
        ("all", "scan --verify-packages all (default)"),
    ):
        print(
            f"{label:40s} {wall[mode]:8.3f} {wall[mode] / wall['floor']:8.2f} {cpu[mode]:8.3f} "
            f"{cpu[mode] / cpu['floor']:8.2f}"
        )
    for k, d in (("wall", wall), ("CPU", cpu)):
        extra = d["all"] - d["changed"]
        print(f"checking every record ({k}): {extra:+.3f} s = {extra / d['floor']:+.2f} x the floor")
    if cov:
        print("coverage (all):", json.dumps({k: v for k, v in cov.items() if k != "mode"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
