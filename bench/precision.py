#!/usr/bin/env python3
"""Precision and recall of the history analysis.

Two sets:

1. The shared corpus (default). Path level: every path reported as unexplained
   (in a history.unexplained-change finding at medium or above) against the
   truth's `unexplained_paths` of tampered samples. Finding level: history.* and
   file.* findings at medium or above on clean samples are false alarms unless
   the truth lists them (content_findings, may_also_report).

2. The red-team set (`--redteam [DIR]`, default bench/out/redteam/samples, built
   by bench/redteam/build.py): every `<sample>.truth.json` next to its sample.
   - A poisoned path is FOUND when a finding at medium or above names it, with
     any code: in `finding.path` or in `finding.evidence["paths"]`.
   - A poisoned config key (Entrypoint, Cmd, Env, User, ...) is FOUND when a
     medium+ `history.effect-mismatch` finding names it. Convention: the key as
     spelled in the image config, in `evidence["key"]` (one key) or
     `evidence["keys"]` (a list), or as the start of the subject, `config.<Key>`
     (e.g. "config.Env: LD_PRELOAD=..."); compared case-insensitively.
   - Recall: poisoned paths and keys found / poisoned.
   - Precision: medium+ history.* and file.* findings on poisoned samples that
     name a poisoned path, a path the forgery also touched (`also_forged_paths`)
     or a poisoned key / all medium+ history.* and file.* findings on them.
   - On clean samples every medium+ finding (any code) is a false alarm.
   - "low only": poisoned paths missed at medium+ but named by a low or info finding.
   - "detected": poisoned samples where at least one poisoned path or key was found.
   Tables per technique, per builder and per format; `--json FILE` writes them
   with every sample's detail.

    python bench/precision.py [CORPUS_DIR]
    python bench/precision.py --redteam [DIR] [--json FILE] [--only SUBSTRING] [--jobs N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forensics.pipeline import analyze  # noqa: E402

ALARM = {"critical", "high", "medium"}
STRUCTURAL = ("archive.", "blob.", "layer.", "ref.")
REDTEAM = ROOT / "bench" / "out" / "redteam" / "samples"


def corpus_main(corpus: Path) -> int:
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
                rows.append(
                    (sample.name, len(want), len(reported & want), sorted(reported - want), sorted(want - reported))
                )
        else:
            clean_samples += 1
            allowed = set(truth.get("may_also_report") or [])
            for f in report.findings:
                if f.code.startswith(("history.", "file.")) and f.severity.value in ALARM and f.code not in allowed:
                    if not any(
                        c["code"] == f.code and c.get("path") == f.path for c in truth.get("content_findings") or []
                    ):
                        clean_alarms += 1
                        print(f"  false alarm: {sample.name}: {f.code} {f.subject}")
    for name, n, hit, extra, missed in rows:
        print(f"{name}: {hit}/{n} poisoned paths found; extra {extra}; missed {missed}")
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    print(f"\npaths: precision {precision:.3f} ({tp}/{tp + fp}), recall {recall:.3f} ({tp}/{tp + fn})")
    print(f"clean samples: {clean_samples}, history/file alarms at medium+ on them: {clean_alarms}")
    return 0


# ---- red-team set -------------------------------------------------------------


def _norm(p: str) -> str:
    return "/" + p.strip("/")


def named_paths(f) -> set[str]:
    out = {_norm(f.path)} if f.path else set()
    paths = (f.evidence or {}).get("paths")
    if isinstance(paths, list):
        out |= {_norm(p) for p in paths if isinstance(p, str)}
    return out


def named_keys(f) -> set[str]:
    """Config keys a history.effect-mismatch finding names (lower-cased), by the convention above."""
    if f.code != "history.effect-mismatch":
        return set()
    ev = f.evidence or {}
    keys = {ev["key"]} if isinstance(ev.get("key"), str) else set()
    if isinstance(ev.get("keys"), list):
        keys |= {k for k in ev["keys"] if isinstance(k, str)}
    if f.subject.startswith("config."):
        keys.add(f.subject[len("config.") :].split(":", 1)[0].split("[", 1)[0].strip())
    return {k.lower() for k in keys}


def score_sample(truth: dict, findings: list) -> dict:
    alarms = [f for f in findings if f.severity.value in ALARM]
    poisoned = {_norm(p) for p in truth["poisoned_paths"]}
    forged = poisoned | {_norm(p) for p in truth.get("also_forged_paths") or []}
    keys = {k.lower() for k in truth["poisoned_config"]}
    seen_paths = set().union(*(named_paths(f) for f in alarms)) if alarms else set()
    seen_keys = set().union(*(named_keys(f) for f in alarms)) if alarms else set()
    lows = [f for f in findings if f.severity.value not in ALARM]
    seen_low = set().union(*(named_paths(f) for f in lows)) if lows else set()
    scored = [f for f in alarms if f.code.startswith(("history.", "file."))]
    hit = [bool(named_paths(f) & forged or named_keys(f) & keys) for f in scored]

    def brief(f) -> dict:
        return {"severity": f.severity.value, "code": f.code, "subject": f.subject, "paths": sorted(named_paths(f))[:8]}

    return {
        "paths": len(poisoned),
        "paths_found": sorted(poisoned & seen_paths),
        "paths_missed": sorted(poisoned - seen_paths),
        "paths_low_only": sorted((poisoned - seen_paths) & seen_low),
        "keys": len(keys),
        "keys_found": sorted(k for k in truth["poisoned_config"] if k.lower() in seen_keys),
        "keys_missed": sorted(k for k in truth["poisoned_config"] if k.lower() not in seen_keys),
        "scored_findings": len(scored),
        "true_findings": sum(hit),
        "false_findings": [brief(f) for f, h in zip(scored, hit) if not h],
        "alarms": [brief(f) for f in alarms],
    }


def _aggregate(rows: list[dict], key: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in rows:
        a = out.setdefault(
            r[key] or "clean",
            {
                "samples": 0,
                "poisoned": 0,
                "found": 0,
                "scored": 0,
                "true": 0,
                "clean_samples": 0,
                "false_alarms": 0,
                "detected": 0,
                "low_only": 0,
            },
        )
        a["samples"] += 1
        if r["clean"]:
            a["clean_samples"] += 1
            a["false_alarms"] += len(r["score"]["alarms"])
            continue
        s = r["score"]
        a["poisoned"] += s["paths"] + s["keys"]
        a["found"] += len(s["paths_found"]) + len(s["keys_found"])
        a["low_only"] += len(s["paths_low_only"])
        a["scored"] += s["scored_findings"]
        a["true"] += s["true_findings"]
        a["detected"] += bool(s["paths_found"] or s["keys_found"])
    for a in out.values():
        a["recall"] = round(a["found"] / a["poisoned"], 3) if a["poisoned"] else None
        a["precision"] = round(a["true"] / a["scored"], 3) if a["scored"] else None
    return out


def _table(title: str, agg: dict[str, dict]) -> None:
    print(
        f"\n{title:<26} {'samples':>7} {'recall':>14} {'precision':>14} {'low only':>8} {'detected':>9} {'clean':>6} {'false alarms':>13}"
    )
    for name, a in sorted(agg.items()):
        rec = f"{a['found']}/{a['poisoned']}" + (f" {a['recall']:.2f}" if a["recall"] is not None else "")
        pre = f"{a['true']}/{a['scored']}" + (f" {a['precision']:.2f}" if a["precision"] is not None else "")
        det = f"{a['detected']}/{a['samples'] - a['clean_samples']}"
        print(
            f"{name:<26} {a['samples']:>7} {rec:>14} {pre:>14} {a['low_only']:>8} {det:>9} {a['clean_samples']:>6} {a['false_alarms']:>13}"
        )


def _analyze(sample: str, npm_cache: tuple[str, ...] = ()) -> tuple[list, str, str | None]:
    try:
        tarballs = None
        if npm_cache:
            from forensics.history.npmcache import Tarballs

            tarballs = Tarballs(list(npm_cache))
        report = analyze(sample, npm_tarballs=tarballs)
    except Exception as e:  # a sample the tool cannot read counts as a miss, with the reason
        return [], "error", f"{type(e).__name__}: {e}"
    return report.findings, report.verdict, None


def redteam_main(
    directory: Path, json_out: Path | None, only: str | None, jobs: int, npm_cache: tuple[str, ...] = ()
) -> int:
    truths = sorted(directory.glob("*.truth.json"))
    if only:
        truths = [t for t in truths if only in t.name]
    if not truths:
        print(f"no red-team samples in {directory} (build them: bench/redteam/build.py)")
        return 2
    rows = []
    docs = [json.loads(tf.read_text()) for tf in truths]
    samples = [str(directory / t["sample"]) for t in docs]
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(_analyze, samples, [npm_cache] * len(samples)))
    else:
        results = map(_analyze, samples, [npm_cache] * len(samples))
    for truth, (findings, verdict, error) in zip(docs, results):
        if error:
            print(f"  {truth['sample']}: analysis failed: {error}")
        # The forgeries keep every digest consistent: a structural finding means the set is broken, not the tool.
        for f in findings:
            if f.code.startswith(STRUCTURAL) and f.severity.value in ALARM:
                print(f"  WARNING structural finding on {truth['sample']}: {f.code} {f.subject}")
        score = score_sample(truth, findings)
        rows.append(
            {
                "sample": truth["sample"],
                "image": truth["image"],
                "builder": truth["builder"],
                "format": truth["format"],
                "technique": truth["technique"],
                "clean": truth["clean"],
                "verdict": verdict,
                "score": score,
            }
        )
        if truth["clean"]:
            for a in score["alarms"]:
                more = f" {' '.join(a['paths'])}" if a["paths"] and a["paths"] != [a["subject"]] else ""
                print(f"  false alarm: {truth['sample']}: {a['severity']} {a['code']} {a['subject']}{more}")
        elif score["paths_missed"] or score["keys_missed"]:
            print(f"  missed: {truth['sample']}: {score['paths_missed'] + score['keys_missed']}")
    tables = {
        "technique": _aggregate(rows, "technique"),
        "builder": _aggregate(rows, "builder"),
        "format": _aggregate(rows, "format"),
    }
    _table("technique", tables["technique"])
    _table("builder", tables["builder"])
    _table("format", tables["format"])
    poisoned = [r for r in rows if not r["clean"]]
    found = sum(len(r["score"]["paths_found"]) + len(r["score"]["keys_found"]) for r in poisoned)
    total = sum(r["score"]["paths"] + r["score"]["keys"] for r in poisoned)
    true = sum(r["score"]["true_findings"] for r in poisoned)
    scored = sum(r["score"]["scored_findings"] for r in poisoned)
    clean = [r for r in rows if r["clean"]]
    alarmed = sum(bool(r["score"]["alarms"]) for r in clean)
    print(
        f"\nall: recall {found}/{total}, precision {true}/{scored}, "
        f"clean samples with a medium+ finding {alarmed}/{len(clean)}"
    )
    if json_out:
        json_out.write_text(json.dumps({"tables": tables, "samples": rows}, indent=1) + "\n")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="?", type=Path, default=ROOT.parent / "shared" / "corpus")
    ap.add_argument("--redteam", nargs="?", type=Path, const=REDTEAM, default=None, metavar="DIR")
    ap.add_argument("--json", type=Path, default=None, metavar="FILE")
    ap.add_argument("--only", default=None, metavar="SUBSTRING", help="red-team samples whose name contains this")
    ap.add_argument("--jobs", type=int, default=1, help="red-team samples analyzed in parallel processes")
    ap.add_argument(
        "--npm-cache",
        action="append",
        default=[],
        metavar="DIR",
        help="score as `scan --npm-cache DIR` would (e.g. `npm cache add ms@2.1.3 --cache DIR` on a host)",
    )
    a = ap.parse_args()
    if a.redteam is not None:
        return redteam_main(a.redteam, a.json, a.only, a.jobs, tuple(a.npm_cache))
    return corpus_main(a.corpus)


if __name__ == "__main__":
    raise SystemExit(main())
