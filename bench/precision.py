#!/usr/bin/env python3
"""Precision and recall of the history analysis on the shared corpus.

Path level: every path reported as unexplained (in a history.unexplained-change
finding at medium or above) against the truth's `unexplained_paths` of tampered
samples. Finding level: history.* and file.* findings at medium or above on
clean samples are false alarms unless the truth lists them (content_findings,
may_also_report).

    python bench/precision.py [CORPUS_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forensics.pipeline import analyze  # noqa: E402

ALARM = {"critical", "high", "medium"}


def main() -> int:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "corpus"
    if not corpus.is_dir():
        print(f"no corpus at {corpus}")
        return 2
    tp = fp = fn = 0
    clean_samples = clean_alarms = 0
    rows = []
    for sample in sorted(corpus.rglob("*.tar")):
        truth_file = Path(str(sample) + ".expected.json")
        if not truth_file.exists():
            continue
        truth = json.loads(truth_file.read_text())
        report = analyze(str(sample))
        reported = set()
        for f in report.findings:
            if f.code == "history.unexplained-change" and f.severity.value in ALARM and f.evidence:
                reported |= {p.rstrip("/") for p in f.evidence.get("paths", [])}
        want = {p.rstrip("/") for p in truth.get("unexplained_paths") or []}
        if want or truth["anomalies"]:
            if want:
                tp += len(reported & want)
                fp += len(reported - want)
                fn += len(want - reported)
                rows.append((sample.name, len(want), len(reported & want), sorted(reported - want), sorted(want - reported)))
        else:
            clean_samples += 1
            allowed = set(truth.get("may_also_report") or [])
            for f in report.findings:
                if f.code.startswith(("history.", "file.")) and f.severity.value in ALARM and f.code not in allowed:
                    if not any(c["code"] == f.code and c.get("path") == f.path for c in truth.get("content_findings") or []):
                        clean_alarms += 1
                        print(f"  false alarm: {sample.name}: {f.code} {f.subject}")
    for name, n, hit, extra, missed in rows:
        print(f"{name}: {hit}/{n} poisoned paths found; extra {extra}; missed {missed}")
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    print(f"\npaths: precision {precision:.3f} ({tp}/{tp + fp}), recall {recall:.3f} ({tp}/{tp + fn})")
    print(f"clean samples: {clean_samples}, history/file alarms at medium+ on them: {clean_alarms}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
