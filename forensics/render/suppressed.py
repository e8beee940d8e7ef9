"""Suppressed findings, shown apart (forensics.suppress): the notice, the terminal block, the HTML view.

The notice (which file was applied, from where, its sha256, the warnings) goes to
stderr on every run that read a suppression file, --quiet or not: a file that
came with the evidence must never act silently.
"""

from __future__ import annotations

from forensics.findings import EXPLANATIONS
from forensics.models import Report
from forensics.render.safe import visible
from forensics.suppress import verdict_without


def notice(report: Report) -> list[str]:
    """One line per suppression file read, then one per warning."""
    sup = report.suppression
    if sup is None:
        return []
    counts: dict[str, int] = {}
    for s in report.suppressed:
        counts[s.source] = counts.get(s.source, 0) + 1
    lines = []
    for f in sup.files:
        n = counts.get(f.path, 0)
        lines.append(
            f"suppressions applied from {visible(f.path)} ({f.how}, sha256:{f.sha256}): "
            f"{n} finding{'s' if n != 1 else ''} suppressed by its {f.entries} entr{'ies' if f.entries != 1 else 'y'}"
        )
    without = verdict_without(report)
    if without != report.verdict:
        lines.append(f"verdict {report.verdict.upper()} with the suppressions, {without.upper()} without them")
    lines += [f"warning: {visible(w)}" for w in sup.warnings]
    return lines


def render_suppressed_text(report: Report, show: bool) -> str:
    """The terminal block: a count and the verdict they would give (default), or each one with
    its statement (--show-suppressed)."""
    if report.suppression is None:
        return ""
    n = len(report.suppressed)
    without = verdict_without(report)
    head = f"Suppressed: {n} finding{'s' if n != 1 else ''}, not in the verdict"
    if without != report.verdict:
        head += f" (with them: {without.upper()})"
    if not n:
        return head + "\n"
    lines = [head + ("" if show else "; --show-suppressed lists them")]
    if show:
        for s in report.suppressed:
            f = s.finding
            lines.append(
                f"  {f.severity.value.upper():8} {f.code}  {visible(f.subject)}: {visible(f.detail)}"
                + (f"  [{f.id}]" if f.id else "")
            )
            lines.append(f"           statement: {visible(s.statement)} ({visible(s.source)}, entry {s.entry})")
    return "\n".join(lines) + "\n"


def suppressed_view(report: Report) -> dict:
    """Plain data for reports/templates/_suppressed.html.j2 (empty when no file was read)."""
    sup = report.suppression
    if sup is None:
        return {"shown": False}
    return {
        "shown": True,
        "count": len(report.suppressed),
        "verdict_without": verdict_without(report),
        "verdict": report.verdict,
        "files": [{"path": f.path, "how": f.how, "sha256": f.sha256, "entries": f.entries} for f in sup.files],
        "warnings": list(sup.warnings),
        "findings": [
            {
                "id": s.finding.id or "",
                "severity": s.finding.severity.value,
                "code": s.finding.code,
                "subject": s.finding.subject,
                "detail": s.finding.detail,
                "explanation": EXPLANATIONS.get(s.finding.code, ""),
                "statement": s.statement,
                "source": s.source,
                "entry": s.entry,
            }
            for s in report.suppressed
        ],
    }
