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
t0 = time.perf_counter()
rep = analyze(path, history=mode != "none", verify_packages=mode if mode != "none" else "all", command=["bench"])
out = {"seconds": time.perf_counter() - t0, "verdict": rep.verdict}
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
    best: dict[str, dict] = {}
    floors = []
    for _ in range(a.repeat):  # interleaved, so a burst of load elsewhere hits every row alike
        floors.append(floor(Path(a.image))["seconds"])
        for mode in ("none", "changed", "all"):
            r = run(a.image, mode)
            if mode not in best or r["seconds"] < best[mode]["seconds"]:
                best[mode] = r
    f = min(floors)
    print(f"image: {a.image}")
    print(f"floor (sha256 + inflate + sha256, one thread): {f:.3f} s")
    for mode, label in (("none", "scan --no-history"), ("changed", "scan --verify-packages changed"),
                        ("all", "scan --verify-packages all (default)")):
        s = best[mode]["seconds"]
        print(f"{label:40s} {s:.3f} s  ({s / f:.2f} x the floor)")
    extra = best["all"]["seconds"] - best["changed"]["seconds"]
    print(f"cost of checking every record: {extra:+.3f} s ({extra / f:+.2f} x the floor)")
    cov = best["all"]["coverage"]
    if cov:
        print("coverage (all):", json.dumps({k: v for k, v in cov.items() if k != "mode"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
