#!/usr/bin/env python3
"""Cost of the signature stage (forensics.signatures.check) on a layout holding many signatures.

Builds, with tests/sigdata.py, the relay image beside N cosign signatures and N/2 DSSE
attestations signed with one ECDSA P-256 key, reads it once, then times the check alone
without a key and with --key (the best of --repeat runs).

    python bench/signature_cost.py --n 200
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import sigdata as sd  # noqa: E402

from forensics.read import read_input  # noqa: E402
from forensics.signatures import check, load_signing  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="cosign signatures (attestations: half as many)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sigbench-"))
    key = sd.ec_key()
    signing = load_signing([sd.write_key(tmp / "k.pub", key)])
    layout = sd.Layout()
    _, digest = sd.image(layout)
    for i in range(args.n):
        sd.cosign_signature(layout, key, digest, tag=digest if i == 0 else f"sha256:{i:064x}")
        if i % 2 == 0:
            sd.cosign_attestation(layout, key, digest, digest)
    res = read_input(str(layout.write_tar(tmp / "many.tar")))
    for name, s in (("no key", None), ("--key", signing)):
        best = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            out = check(res, [], s)
            best = min(best, time.perf_counter() - t)
        n = len(out.signatures) + len(out.attestations)
        print(f"{name:7} {n} records  {best * 1000:.1f} ms  {best / n * 1e6:.0f} us/record")
    return 0


if __name__ == "__main__":
    sys.exit(main())
