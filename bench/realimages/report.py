#!/usr/bin/env python3
"""False alarms of the history analysis on clean, really-built images.

Runs forensics.pipeline.analyze on every image exported by build.sh
(bench/out/real/*.oci.tar and *.docker.tar) and prints each finding of severity
low and above (code, severity, subject, first 300 chars of detail); for each
history.unexplained-change, every unexplained path grouped by step, with its
change kind and file type (4 per directory unless --full; --json has all). Ends with counts per severity and image. Every image
here is clean, so every finding at low or above is a false alarm to explain.

    .venv/bin/python bench/realimages/report.py                 # all exports
    .venv/bin/python bench/realimages/report.py curl files      # these names only
    .venv/bin/python bench/realimages/report.py --format oci    # only the OCI exports
    .venv/bin/python bench/realimages/report.py --json bench/out/real/report.json
"""

from __future__ import annotations

import argparse
import json
import posixpath
import sys
from collections import Counter
from pathlib import Path

from forensics.pipeline import analyze

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "bench" / "out" / "real"
LEVELS = ["critical", "high", "medium", "low"]
FULL = False  # --full: every path, not 4 per directory


def _sev(f) -> str:
    return getattr(f.severity, "value", str(f.severity))


def report_one(path: Path, show_info: bool) -> dict:
    rep = analyze(str(path), command=["report.py", str(path)])
    print(f"\n### {path.name}  format={rep.format} verdict={rep.verdict}")
    img = rep.images[0] if rep.images else None
    if img is not None:
        for h in img.history:
            mark = "   " if h.empty_layer else f"L{h.layer_index:<2}"
            cnt = h.analysis.counts if h.analysis and h.analysis.counts else {}
            extra = (
                f"  [+{cnt.get('added', 0)} ~{cnt.get('modified', 0)} -{cnt.get('deleted', 0)}; "
                f"unexplained {cnt.get('unexplained', 0)}]"
                if cnt
                else ""
            )
            print(f"  h{h.index:<2} {mark} {(h.created_by or '')[:110]}{extra}")
    counts: Counter[str] = Counter()
    out = []
    for f in rep.findings:
        sev = _sev(f)
        counts[sev] += 1
        if sev not in LEVELS and not show_info:
            continue
        detail = f.detail if len(f.detail) <= 300 else f.detail[:300] + "..."
        print(f"  [{sev}] {f.code}  {f.subject}\n      {detail}")
        rec = {"code": f.code, "severity": sev, "subject": f.subject, "detail": f.detail, "path": f.path}
        if f.code == "history.unexplained-change" and f.evidence:
            step = img.history[f.history] if img is not None and f.history is not None else None
            by_path = {c.path: c for c in (step.analysis.unexplained if step and step.analysis else [])}
            paths = f.evidence.get("paths") or []
            print(f"      unexplained paths of history[{f.history}] -> layer {f.layer} ({len(paths)}):")
            groups: dict[str, list[str]] = {}
            for p in paths:  # by directory, or by the first 4 segments for big trees (__pycache__)
                key = posixpath.dirname(p)
                if not FULL and "/__pycache__" in p:
                    key = "/".join(p.split("/")[:4]) + "/**/__pycache__"
                groups.setdefault(key, []).append(p)
            for d, ps in groups.items():
                shown = ps if FULL or len(ps) <= 6 else ps[:4]
                for p in shown:
                    c = by_path.get(p)
                    desc = (
                        (
                            f"{c.change} {c.type}"
                            + (f" -> {c.link}" if c.link else "")
                            + (f" ({','.join(c.what)})" if c.what else "")
                        )
                        if c
                        else ""
                    )
                    print(f"        {p}  {desc}")
                if len(shown) < len(ps):
                    kinds = Counter(f"{by_path[p].change} {by_path[p].type}" for p in ps if p in by_path)
                    print(
                        f"        ... {len(ps) - len(shown)} more in {d} (all {len(ps)}: "
                        + ", ".join(f"{n} {k}" for k, n in kinds.items())
                        + ")"
                    )
            if f.evidence.get("reasons"):
                print(f"      reasons: {f.evidence['reasons']}")
            rec["paths"] = paths
            rec["history"] = f.history
        out.append(rec)
    steps = [h.analysis.counts for h in (img.history if img else []) if h.analysis and h.analysis.counts]
    stats = {
        "steps": len(steps),
        "steps_unexplained": sum(1 for c in steps if c.get("unexplained")),
        "paths": sum(c.get("added", 0) + c.get("modified", 0) + c.get("deleted", 0) for c in steps),
        "paths_unexplained": sum(c.get("unexplained", 0) for c in steps),
    }
    print(
        "  summary: "
        + ", ".join(f"{lv}={counts.get(lv, 0)}" for lv in LEVELS + ["info"])
        + f"; layer steps {stats['steps']}, with unexplained changes {stats['steps_unexplained']}; "
        f"changed paths {stats['paths']}, unexplained {stats['paths_unexplained']}"
    )
    return {"image": path.name, "verdict": rep.verdict, "counts": dict(counts), "stats": stats, "findings": out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="image names (curl, files, ...); default all")
    ap.add_argument("--format", choices=["oci", "docker", "both"], default="both")
    ap.add_argument("--dir", default=str(OUT))
    ap.add_argument("--info", action="store_true", help="print info findings too")
    ap.add_argument("--json", help="write the results here (always with every path)")
    ap.add_argument("--full", action="store_true", help="list every unexplained path (default: 4 per directory)")
    a = ap.parse_args()
    global FULL
    FULL = a.full
    suffixes = {"oci": [".oci.tar"], "docker": [".docker.tar"], "both": [".oci.tar", ".docker.tar"]}[a.format]
    paths = sorted(
        p
        for p in Path(a.dir).glob("*.tar*")
        if any(p.name.endswith(s) or p.name.endswith(s + ".zst") for s in suffixes)
    )
    if a.names:
        paths = [p for p in paths if p.name.split(".")[0] in a.names]
    if not paths:
        print(f"no exported images in {a.dir}: run bench/realimages/build.sh first", file=sys.stderr)
        return 2
    results = [report_one(p, a.info) for p in paths]
    print("\n## summary (every finding on these clean images is a false alarm)")
    cols = LEVELS + ["info"]
    st = ["steps", "steps_unexplained", "paths", "paths_unexplained"]
    print(f"{'image':32} {'verdict':11} " + " ".join(f"{lv:>8}" for lv in cols) + "   steps  flagged    paths  unexpl")
    tot: Counter[str] = Counter()
    for r in results:
        tot.update(r["counts"])
        tot.update({k: r["stats"][k] for k in st})
        print(
            f"{r['image']:32} {r['verdict']:11} "
            + " ".join(f"{r['counts'].get(lv, 0):>8}" for lv in cols)
            + "".join(f" {r['stats'][k]:>8}" for k in st)
        )
    print(
        f"{'TOTAL':32} {'':11} "
        + " ".join(f"{tot.get(lv, 0):>8}" for lv in cols)
        + "".join(f" {tot.get(k, 0):>8}" for k in st)
    )
    print(
        "steps = history entries owning a layer; flagged = those with unexplained changes;"
        " paths = changed paths in them; unexpl = paths left unexplained"
    )
    codes = Counter((f["code"], f["severity"]) for r in results for f in r["findings"])
    print("\nby code:")
    for (code, sev), n in sorted(
        codes.items(), key=lambda kv: (LEVELS.index(kv[0][1]) if kv[0][1] in LEVELS else 9, kv[0][0])
    ):
        print(f"  {n:4}  {sev:8} {code}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
