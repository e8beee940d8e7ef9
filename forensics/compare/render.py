"""Rendering a Comparison: the terminal summary and the self-contained HTML page.

The HTML page is `reports/templates/compare.html.j2`, rendered with Jinja2
autoescape on: every path, history line, ref and finding text comes from the
images and is attacker-controlled, so it is only ever inserted as escaped text.
The page has no script, loads nothing (CSP `default-src 'none'`) and prints.
"""

from __future__ import annotations

import os
from functools import lru_cache

from forensics.compare.fs import describe
from forensics.compare.history import label
from forensics.compare.model import Comparison, PathDiff, SideSummary
from forensics.findings import EXPLANATIONS, SEVERITY_ORDER, SEVERITY_RANK
from forensics.models import Finding
from forensics.render.safe import finalize_html, visible, visible_lines

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
MARK = {"added": "+", "removed": "-", "changed": "~"}
HIST_MARK = {"equal": "=", "changed": "~", "added": "+", "removed": "-"}


def _clean(s: str | None, limit: int = 160) -> str:
    """One line, control and bidi characters shown as escapes (render/safe.py), cut to `limit`."""
    if s is None:
        return "-"
    t = visible(s)
    return t if len(t) <= limit else t[: limit - 1] + "\u2026"


def _differing(a: str | None, b: str | None, width: int = 100) -> tuple[str, str]:
    """Both lines, cut to show where they start to differ (a tampered line can differ at its end)."""
    la, lb = label(a, 100_000), label(b, 100_000)
    n = 0
    while n < min(len(la), len(lb)) and la[n] == lb[n]:
        n += 1
    if n > width - 30:
        start = n - 30
        la, lb = "\u2026" + la[start:], "\u2026" + lb[start:]
    return _clean(la, width), _clean(lb, width)


def _side_line(name: str, s: SideSummary) -> str:
    refs = ", ".join(s.refs) or "(untagged)"
    pick = f"image {s.image} of {s.images}" if s.images > 1 else "image"
    return (
        f"{name}  {_clean(os.path.basename(s.input.path) or s.input.path, 80)}  {s.format}  {pick}: "
        f"{_clean(refs, 80)}  {s.platform or '-'}  config {s.config_digest or '-'}"
    )


def _counts(s: SideSummary) -> str:
    parts = [f"{s.finding_counts[k.value]} {k.value}" for k in SEVERITY_ORDER if s.finding_counts.get(k.value)]
    return ", ".join(parts) or "no findings"


def _diff_line(d: PathDiff) -> str:
    if d.change == "added":
        what = f"only in B: {describe(d.b)}"
    elif d.change == "removed":
        what = f"only in A: {describe(d.a)}"
    else:
        da, db = describe(d.a), describe(d.b)
        extra = f": {db} in B, {da} in A" if da != db else ""
        what = ", ".join(d.what) + extra
        a, b = d.a, d.b
        if a is not None and b is not None:  # a changed path is on both sides
            if "mode" in d.what:
                what += f" (mode {a.mode:04o} -> {b.mode:04o})"
            if "owner" in d.what:
                what += f" (owner {a.uid}:{a.gid} -> {b.uid}:{b.gid})"
            if "link" in d.what:
                what += f" (link {_clean(a.link, 60)} -> {_clean(b.link, 60)})"
    if d.expected:
        what += f" [expected to differ: {d.expected}, still counted]"
    return f"  {MARK[d.change]} {_clean(d.path, 100)}  {_clean(what, 200)}"


def render_text(cmp: Comparison, *, limit: int = 40, width: int | None = None) -> str:
    """The verdict first (same or different content), then both sides' verification, the
    history, the steps and the paths; wrapped at spaces to `width` (default: the terminal's)."""
    from forensics.render.wrap import terminal_width, wrap_lines

    width = width or terminal_width()
    L: list[str] = []
    head = "SAME CONTENT" if cmp.content_equal else "CONTENT DIFFERS"
    L.append(f"{head}: {_clean(cmp.headline, 400)}")
    L.append(_side_line("A", cmp.a))
    L.append(_side_line("B", cmp.b))
    if cmp.same_image:
        L.append("   A and B hold the same layers (diff_ids) and/or config: the same image, whatever the format")
    for note in cmp.notes:
        L.append(f"   note: {note}")
    L.append("")

    L.append("Verification (as `forensics scan`)")
    for name, s in (("A", cmp.a), ("B", cmp.b)):
        L.append(f"  {name}: {s.verdict.upper()} [{_counts(s)}]")
        top = [f for f in s.findings if SEVERITY_RANK[f.severity] <= SEVERITY_RANK[SEVERITY_ORDER[1]]]
        for f in top[:8]:
            L.append(f"     {f.severity.value.upper():8} {f.code} {f.id or ''}  {_clean(f.subject, 80)}")
        if len(top) > 8:
            L.append(f"     … {len(top) - 8} more high or critical findings (forensics scan)")
    L.append("")

    h = cmp.history
    n_lines = len(h.lines)
    if h.equal:
        extra = f"; {h.created_differs} `created` timestamps differ" if h.created_differs else ""
        L.append(f"History: identical ({n_lines} created_by lines{extra}). History proves nothing; content does.")
    else:
        counts = {k: sum(1 for x in h.lines if x.status == k) for k in ("changed", "added", "removed")}
        L.append(
            f"History: differs ({counts['changed']} changed, {counts['added']} only in B, "
            f"{counts['removed']} only in A, of {n_lines} lines)"
        )
        shown = [x for x in h.lines if x.status != "equal"]
        for x in shown[: limit // 2]:
            if x.status == "changed":
                la, lb = _differing(x.a, x.b)
                L.append(f"  ~ [{x.a_index}] {la}")
                L.append(f"    [{x.b_index}] {lb}")
            elif x.status == "added":
                L.append(f"  + [{x.b_index}] {_clean(label(x.b), 110)}")
            else:
                L.append(f"  - [{x.a_index}] {_clean(label(x.a), 110)}")
        if len(shown) > limit // 2:
            L.append(f"  … {len(shown) - limit // 2} more lines (--json)")
    L.append("")

    if cmp.steps:
        L.append("Steps (layer by layer)")
        for st in cmp.steps:
            hist = f"{st.a_history if st.a_history is not None else '-'}/{st.b_history if st.b_history is not None else '-'}"
            mark = {
                "equal": "same",
                "noise": "noise",
                "differs": "DIFFERS",
                "only-in-a": "only A",
                "only-in-b": "only B",
            }[st.status]
            more = ""
            if st.paths_total:
                more = f"  {st.paths_total} path{'s' if st.paths_total != 1 else ''}"
            if st.noise_total:
                more += f"  (+{st.noise_total} noise)"
            first = " <- first divergence" if st.first_divergence else ""
            L.append(f"  {hist:>7}  {mark:7}  {_clean(st.label, 70)}{more}{first}")
        L.append("")

    c = cmp.content
    times = "mtimes compared" if cmp.times else "mtimes ignored: --times compares them"
    if c.total:
        L.append(
            f"Content: {c.total} path{'s' if c.total != 1 else ''} differ: {len(c.added)} only in B, "
            f"{len(c.removed)} only in A, {len(c.changed)} changed; {times}"
        )
        from forensics.compare.align import rank

        allv = rank(c.all())
        for d in allv[:limit]:
            L.append(_diff_line(d))
            if "content" in d.what and d.a is not None and d.b is not None and d.a.sha256 and d.b.sha256:
                L.append(f"      A sha256:{d.a.sha256}")  # in full: the evidence to cite
                L.append(f"      B sha256:{d.b.sha256}")
        if len(allv) > limit:
            L.append(f"  … {len(allv) - limit} more (--json lists every path)")
    else:
        L.append(f"Content: identical ({cmp.a.files} paths in A, {cmp.b.files} in B; {times})")
    L.append("")

    if cmp.findings:
        L.append("Comparison findings")
        for f in cmp.findings[:limit]:
            L.append(
                f"  {f.severity.value.upper():8} {f.code} {f.id or ''}  {_clean(f.subject, 80)}: {_clean(f.detail, 400)}"
            )
        left = len(cmp.findings) - limit + cmp.findings_omitted
        if left > 0:
            L.append(f"  … {left} more (--json)")
        L.append("")

    nz = cmp.noise
    by_rule: dict[str, int] = {}
    for d in nz.all():
        by_rule[d.noise or "?"] = by_rule.get(d.noise or "?", 0) + 1
    if nz.total:
        L.append(f"Rebuild noise: {nz.total} difference{'s' if nz.total != 1 else ''} set apart, not counted")
        reasons = {r.pattern: r.reason for r in cmp.noise_rules}
        for pat, n in sorted(by_rule.items(), key=lambda kv: -kv[1]):
            L.append(f"  {n:>6}  {_clean(pat, 60)}  ({_clean(reasons.get(pat, ''), 90)})")
    else:
        L.append("Rebuild noise: none")
    defaults = [r for r in cmp.noise_rules if r.origin == "default"]
    added = [r for r in cmp.noise_rules if r.origin == "option"]
    L.append(
        f"  noise rules: {len(defaults)} default, {len(added)} added "
        "(--noise PATTERN adds, --drop-noise PATTERN removes one, --no-default-noise removes all):"
    )
    line = "   "
    for r in cmp.noise_rules:
        tag = {"empty": " (if empty)", "timestamps": " (timestamps inside)", "expected": " (expected, counted)"}.get(
            r.when, ""
        )
        item = f" {_clean(r.pattern, 80)}{tag}"
        if len(line) + len(item) > width:
            L.append(line)
            line = "   "
        line += item
    if line.strip():
        L.append(line)
    return "\n".join(wrap_lines(visible_lines(L).split("\n"), width)).rstrip() + "\n"


# ------------------------------------------------------------------ HTML


@lru_cache(maxsize=1)
def _env():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=finalize_html,
    )  # every printed value made visible (render/safe.py)


def _css() -> str:
    try:
        from forensics.render.html import asset

        css = asset("report.css")
    except Exception:  # noqa: BLE001 - the page stays readable with its own rules
        return ""
    return "" if "</" in css else css


def _state_text(st) -> str:
    if st is None:
        return "absent"
    bits = [describe(st)]
    if st.type == "file" and st.sha256:
        bits.append(f"sha256:{st.sha256[:16]}…")
    bits.append(f"mode {st.mode:04o}")
    bits.append(f"owner {st.uid}:{st.gid}")
    if st.layer is not None:
        bits.append(f"layer {st.layer}" + (f" (step {st.history})" if st.history is not None else ""))
    return ", ".join(bits)


def _row(d: PathDiff) -> dict:
    return {
        "mark": MARK[d.change],
        "change": d.change,
        "path": d.path,
        "what": (", ".join(d.what) or d.change) + (f" (expected to differ: {d.expected})" if d.expected else ""),
        "a": _state_text(d.a),
        "b": _state_text(d.b),
        "detail": d.detail,
        "noise": d.noise or "",
    }


def _finding(f: Finding) -> dict:
    return {
        "severity": f.severity.value,
        "code": f.code,
        "subject": f.subject,
        "detail": f.detail,
        "explanation": EXPLANATIONS.get(f.code, ""),
    }


def build_view(cmp: Comparison, *, limit: int = 2000) -> dict:
    from forensics.compare.align import rank

    def side(name: str, s: SideSummary) -> dict:
        top = [f for f in s.findings if SEVERITY_RANK[f.severity] <= SEVERITY_RANK[SEVERITY_ORDER[2]]]
        return {
            "name": name,
            "file": os.path.basename(s.input.path) or s.input.path,
            "path": s.input.path,
            "sha256": s.input.sha256 or "(directory)",
            "format": s.format,
            "verdict": s.verdict,
            "image": f"{s.image} of {s.images}",
            "refs": ", ".join(s.refs) or "(untagged)",
            "platform": s.platform or "-",
            "manifest": s.manifest_digest or "-",
            "config": s.config_digest or "-",
            "layers": s.layers,
            "files": s.files,
            "counts": _counts(s),
            "missing": s.missing_layers,
            "findings": [_finding(f) for f in top[:50]],
            "more": max(0, len(top) - 50),
        }

    content = rank(cmp.content.all())
    noise = cmp.noise.all()
    div = cmp.divergence
    reasons = {r.pattern: r for r in cmp.noise_rules}
    noise_counts: dict[str, int] = {}
    for d in noise:
        noise_counts[d.noise or "?"] = noise_counts.get(d.noise or "?", 0) + 1
    return {
        "title": f"forensics diff: {os.path.basename(cmp.a.input.path)} vs {os.path.basename(cmp.b.input.path)}",
        "tool": f"{cmp.tool} {cmp.version}",
        "verdict": cmp.verdict,
        "verdict_label": "Same content" if cmp.content_equal else "Content differs",
        "pill": "verdict-clean" if cmp.content_equal else "verdict-tampered",
        "headline": cmp.headline,
        "same_image": cmp.same_image,
        "notes": cmp.notes,
        "times": cmp.times,
        "sides": [side("A", cmp.a), side("B", cmp.b)],
        "history_equal": cmp.history_equal,
        "history_created_differs": cmp.history.created_differs,
        "history": [
            {
                "status": x.status,
                "mark": HIST_MARK[x.status],
                "a_index": "" if x.a_index is None else x.a_index,
                "b_index": "" if x.b_index is None else x.b_index,
                "a": x.a or "",
                "b": x.b or "",
                "created_differs": x.created_differs,
            }
            for x in cmp.history.lines
        ],
        "container_diff": cmp.history.container_diff,
        "divergence": None
        if div is None
        else {
            "step": div.step,
            "b_step": div.b_step,
            "label": div.label,
            "created_by": div.created_by or "",
            "layer_a": div.layer_a,
            "layer_b": div.layer_b,
            "summary": div.summary,
            "rows": [_row(d) for d in div.paths],
        },
        "steps": [
            {
                "status": s.status,
                "a": "-" if s.a_history is None else s.a_history,
                "b": "-" if s.b_history is None else s.b_history,
                "layers": f"{'-' if s.a_layer is None else s.a_layer}/{'-' if s.b_layer is None else s.b_layer}",
                "label": s.label,
                "created_by": s.created_by or "",
                "b_created_by": s.b_created_by or "",
                "paths": s.paths_total,
                "noise": s.noise_total,
                "first": s.first_divergence,
            }
            for s in cmp.steps
        ],
        "counts": {
            "added": len(cmp.content.added),
            "removed": len(cmp.content.removed),
            "changed": len(cmp.content.changed),
            "total": cmp.content.total,
        },
        "content": [_row(d) for d in content[:limit]],
        "content_omitted": max(0, len(content) - limit),
        "findings": [_finding(f) for f in cmp.findings[:limit]],
        "findings_omitted": max(0, len(cmp.findings) - limit) + cmp.findings_omitted,
        "noise_total": len(noise),
        "noise_by_rule": [
            {"pattern": p, "count": n, "reason": reasons[p].reason if p in reasons else ""}
            for p, n in sorted(noise_counts.items(), key=lambda kv: -kv[1])
        ],
        "noise": [_row(d) for d in noise[:limit]],
        "noise_omitted": max(0, len(noise) - limit),
        "rules": [
            {
                "pattern": r.pattern,
                "reason": r.reason,
                "when": r.when,
                "origin": r.origin,
                "count": noise_counts.get(r.pattern, 0),
            }
            for r in cmp.noise_rules
        ],
    }


def render_html(cmp: Comparison, *, limit: int = 2000) -> str:
    from markupsafe import Markup

    view = build_view(cmp, limit=limit)
    template = _env().get_template("compare.html.j2")
    # the CSS is a static asset shipped in the wheel, not data from an image
    return template.render(v=view, csp=CSP, css=Markup(_css()))
