"""`OUT/index.html`: the fleet's verdicts in one sortable table, each row linking its report.

Self-contained like the single report (forensics.render.html): the report's stylesheet and
one small sorting script inlined, a Content-Security-Policy allowing that script alone by
its sha256, autoescape and the finalize hook for every value the inputs named. Without
JavaScript the table reads in its written order: worst verdict first.
"""

from __future__ import annotations

from collections import Counter

from markupsafe import Markup

from forensics import __version__
from forensics.render.html import _env, asset, content_security_policy

RANK = {"tampered": 0, "suspicious": 1, "error": 2, "unreadable": 3, "clean": 4, "skipped": 5}
SEVERITIES = ("critical", "high", "medium", "low", "info")


def _anchor(n: int) -> str:
    return f"a{n}"


def fleet_view(lines: list[dict], findings: list[dict], notes: list[dict]) -> dict:
    anchors = {line["path"]: _anchor(n) for n, line in enumerate(lines)}
    rows = []
    for line in lines:
        verdict = line.get("verdict", "error")
        counts = line.get("counts") or {}
        href = line.get("html") or line.get("report")
        rows.append(
            {
                "anchor": anchors[line["path"]],
                "path": line["path"],
                "verdict": verdict,
                "rank": RANK.get(verdict, 9),
                "counts": [counts.get(s, 0) for s in SEVERITIES],
                "digests": sorted({i["digest"] for i in line.get("images") or [] if i.get("digest")}),
                "refs": ", ".join(sorted({r for i in line.get("images") or [] for r in i.get("refs") or []})),
                "errors": line.get("errors") or [],
                "href": href,
                "link": "HTML" if line.get("html") else ("JSON" if href else ""),
            }
        )
    rows.sort(key=lambda r: (r["rank"], [-n for n in r["counts"]], r["path"]))
    tally = Counter(r["verdict"] for r in rows)
    return {
        "tool": f"forensics {__version__}",
        "total": len(rows),
        "verdicts": [{"verdict": v, "count": tally[v]} for v in sorted(tally, key=lambda v: RANK.get(v, 9))],
        "rows": rows,
        "findings": [
            {
                "severity": f["severity"],
                "code": f["code"],
                "detail": f["detail"],
                "archives": [{"path": a, "anchor": anchors.get(a, "")} for a in f["archives"]],
            }
            for f in findings
        ],
        "notes": [
            {
                "digest": n["digest"],
                "archives": [{"path": a["path"], "codes": ", ".join(a["codes"]) or "none"} for a in n["archives"]],
            }
            for n in notes
        ],
    }


def render_fleet(lines: list[dict], findings: list[dict], notes: list[dict]) -> str:
    script, css = asset("fleet.js"), asset("report.css")
    if "</" in script or "</" in css:
        raise ValueError("fleet assets must not contain '</'")
    return (
        _env()
        .get_template("fleet.html.j2")
        .render(
            v=fleet_view(lines, findings, notes),
            csp=content_security_policy(script),
            css=Markup(css),  # trusted static assets shipped in the wheel, not data from the images
            script=Markup(script),
        )
    )
