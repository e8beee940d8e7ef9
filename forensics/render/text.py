"""The terminal summary: verdict first, then findings by severity, then the digest table."""

from __future__ import annotations

from forensics.evidence import shown
from forensics.findings import EXPLANATIONS, SEVERITY_ORDER
from forensics.models import Coverage, Report
from forensics.render.safe import visible_lines
from forensics.render.units import human_size
from forensics.render.wrap import terminal_width, wrap_lines

VERDICT_LINE = {
    "clean": "CLEAN: every digest verified; nothing at medium severity or above",
    "suspicious": "SUSPICIOUS: findings at medium severity need a look",
    "tampered": "TAMPERED: the archive contradicts its own metadata (high or critical findings)",
    "unreadable": "UNREADABLE: this is not an image archive the tool can analyze",
}


def coverage_lines(cov: Coverage | None) -> list[str]:
    """What vouches for the image's files, in three lines and the advice."""
    if cov is None or not cov.files:
        return []

    def part(c) -> str:
        return f"{c.files} ({human_size(c.bytes)})"

    verified = [
        cov.verified_earlier_record,
        cov.verified_same_step,
        cov.verified_claim,
        cov.verified_copy_hash,
        cov.verified_known_good,
    ]
    v_files, v_bytes = sum(c.files for c in verified), sum(c.bytes for c in verified)
    out = [
        f"  coverage  {cov.files} files, {human_size(cov.bytes)}: verified {v_files} ({human_size(v_bytes)}), "
        f"explained but unverifiable {part(cov.unverifiable)}, unexplained {part(cov.unexplained)}"
        + (f", contradicted {part(cov.contradicted)}" if cov.contradicted.files else ""),
        f"            verified against an earlier record {part(cov.verified_earlier_record)}, a same-step record "
        f"{part(cov.verified_same_step)} (not proof), a command's claim {part(cov.verified_claim)}, a COPY hash "
        f"{part(cov.verified_copy_hash)}"
        + (f", a --known-good set {part(cov.verified_known_good)}" if cov.verified_known_good.files else ""),
    ]
    out += [f"            {a}" for a in cov.advice]
    return out


def _custody_lines(report: Report) -> list[str]:
    """Where the input is and whether it was still the same after the analysis."""
    inp = report.input
    out = []
    if inp.kind in ("file", "directory"):
        what = "sha256 read again" if inp.kind == "file" else "every file read again"
        state = "unchanged after the analysis" if inp.sha256_end else "not checked after the analysis"
        out.append(f"        {inp.kind} {shown(inp.resolved or inp.path)}, {state} ({what})")
    elif inp.kind == "stream":
        out.append("        stream, read once" + ("" if inp.kept else "; not kept (--keep-input FILE keeps it)"))
    if inp.kept:
        out.append(f"kept    {shown(inp.kept.path)}  {inp.kept.size} bytes  {inp.kept.sha256}")
    return out


def verdict_line(report: Report) -> str:
    """The first line of every terminal view: the verdict and the count per severity."""
    counts = {s: 0 for s in SEVERITY_ORDER}
    for f in report.findings:
        counts[f.severity] += 1
    summary = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
    return VERDICT_LINE[report.verdict] + (f" [{summary}]" if summary else "")


def pin_lines(report: Report) -> list[str]:
    """Each pin's outcome; a failed one is also a ref.pin-mismatch finding, listed below."""
    out = []
    absent = [p for p in report.pins if p.status == "absent"]
    for p in report.pins:
        if p.status == "matched":
            out.append(f"{p.detail} ({p.source or '--expect'})")
        elif p.status == "mismatch":
            out.append(f"pin FAILED: {p.pin} ({p.source or '--expect'}): see ref.pin-mismatch below")
    if absent:
        names = sorted({p.name or p.digest for p in absent})
        more = f", … {len(names) - 3} more" if len(names) > 3 else ""
        out.append(f"pins of the lock file for other images (not checked): {len(absent)}, {', '.join(names[:3])}{more}")
    return out  # made visible with every other line


def case_lines(report: Report) -> list[str]:
    """The case record, when the examiner gave one (user text: escaped by visible_lines)."""
    c = report.case
    if c is None or not (c.case or c.examiner or c.note):
        return []
    said = [f"{k} {v}" for k, v in (("case", c.case), ("examiner", c.examiner)) if v]
    out = [f"case    {'; '.join(said)}".rstrip()]
    if c.note:
        out.append(f"note    {c.note}")
    out.append(f"        by {c.user or '?'}@{c.host or '?'}, {c.platform or '?'}, forensics {c.tool_version or '?'}")
    return out


def render_text(report: Report, *, max_per_code: int = 10, explain: bool = True, width: int | None = None) -> str:
    """The terminal summary, wrapped at spaces to `width` (default: the terminal's; never a
    digest cut: a full digest is evidence, to be pasted into a report or a shell)."""
    width = width or terminal_width()
    lines: list[str] = [verdict_line(report)]
    inp = report.input
    lines.append(f"input   {shown(inp.path)}  {inp.size} bytes  {inp.sha256 or '(directory)'}")
    lines += _custody_lines(report)
    lines.append(f"format  {report.format}, {len(report.images)} image(s), {len(report.blobs)} entries")
    lines += pin_lines(report)
    lines += case_lines(report)
    lines.append("")
    if report.findings:
        lines.append("Findings (each with its id, to cite)")
        for sev in SEVERITY_ORDER:
            group = [f for f in report.findings if f.severity == sev]
            if not group:
                continue
            by_code: dict[str, list] = {}
            for f in group:
                by_code.setdefault(f.code, []).append(f)
            for code, items in by_code.items():
                lines.append(f"  {sev.value.upper():8} {code} ({len(items)})")
                if explain:
                    lines.append(f"           {EXPLANATIONS.get(code, '')}")
                for f in items[:max_per_code]:
                    lines.append(f"           - {f.id + ' ' if f.id else ''}{f.subject}: {f.detail}")
                if len(items) > max_per_code:
                    lines.append(f"           … {len(items) - max_per_code} more in the JSON output")
        lines.append("")
    for img in report.images:
        name = ", ".join(img.refs) or "(untagged)"
        lines.append(f"Image {img.index}: {name}  {img.platform or ''}")
        lines += coverage_lines(img.coverage)
        if img.manifest_digest:
            lines.append(f"  manifest  {img.manifest_digest}")
            for r in img.refs[:1]:
                if "/" in r or ":" in r:
                    repo = r.rsplit(":", 1)[0] if ":" in r.rsplit("/", 1)[-1] else r
                    lines.append(f"  pin as    {repo}@{img.manifest_digest}")
        lines.append(f"  config    {img.config_digest or '-'}  (image ID)")
        for layer in img.layers:
            ok = "verified"
            if not layer.present:
                ok = "MISSING"
            elif layer.diff_id != layer.declared_diff_id or (
                layer.digest and layer.actual_sha256 and layer.digest != layer.actual_sha256
            ):
                ok = "DIGEST MISMATCH"
            lines.append(
                f"  layer {layer.index}  {ok}, {layer.size or 0} bytes {layer.compression or '-'}, "
                f"{layer.entries} entries"
            )
            lines.append(f"    blob     {layer.digest or '-'}")
            lines.append(f"    diff_id  {layer.diff_id or '-'}")
        lines.append("")
    if report.artifacts:
        lines.append(f"Artifacts ({len(report.artifacts)}): inventoried, every blob checked, not unpacked")
        for a in report.artifacts:
            ok = "yes" if a.verified and all(b.verified for b in a.blobs) else "NO"
            about = (
                f"subject {a.subject}{'' if a.subject_in_archive else ' (not in the archive)'}"
                if a.subject
                else "no subject"
            )
            lines.append(f"  {a.index:>3} {a.kind:11} {a.artifact_type or '-'}  {a.manifest_digest or '-'}")
            lines.append(
                f"      {about}; {len(a.blobs)} blob(s) verified: {ok}"
                + (f"; {', '.join(a.refs[:2])}" if a.refs else "")
            )
        lines.append("")
    if report.not_exported:
        plats = [n.platform or n.kind for n in report.not_exported]
        lines.append(
            f"Not in this export ({len(plats)}, unverified): {', '.join(plats[:12])}"
            + (" …" if len(plats) > 12 else "")
        )
        lines.append("")
    # Escaped first, then wrapped: an escape sequence is counted as the columns it takes.
    return "\n".join(wrap_lines(visible_lines(lines).split("\n"), width)).rstrip() + "\n"
