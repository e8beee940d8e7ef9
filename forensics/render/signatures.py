"""Signatures and attestations (forensics.signatures), for the terminal and the HTML report.

Everything a signature records (identities, references, predicate types, materials) came from
the image and is attacker-controlled: the terminal lines go through `visible`, the HTML
through the template environment's finalize hook."""

from __future__ import annotations

from forensics.models import Report
from forensics.render.safe import visible

STATUS_LABEL = {
    "verified": "VERIFIED",
    "invalid": "INVALID",
    "subject-mismatch": "SUBJECT MISMATCH",
    "unverified": "not verified",
    "unsigned": "unsigned",
}


def _about(target: str | None, held: bool | None) -> str:
    return f"{target or '?'}" + ("" if held is not False else " (not in the archive)")


def render_signatures_text(report: Report) -> str:
    """The terminal block: one line per signature and attestation, then the notes."""
    if not report.signatures and not report.attestations and not report.signature_notes:
        return ""
    lines = [f"Signatures ({len(report.signatures)}) and attestations ({len(report.attestations)})"]
    for s in report.signatures:
        who = s.identity or s.key_id or ("certificate" if s.certificate else "key-based")
        lines.append(
            f"  {STATUS_LABEL[s.status]:16} {s.format} {s.envelope} over {s.signed_digest or s.attached_to or '?'}"
            f"  signer: {who}"
        )
        if s.detail:
            lines.append(f"                   {s.detail}")
    for a in report.attestations:
        lines.append(f"  {STATUS_LABEL[a.status]:16} {a.source} attestation {a.predicate_type or '?'}")
        subjects = ", ".join(f"{x.digest or x.name}{'' if x.held else ' (not in the archive)'}" for x in a.subjects[:3])
        lines.append(f"                   subjects: {subjects or '-'}")
        if a.slsa is not None:
            lines.append(
                f"                   SLSA {a.slsa.version}: builder {a.slsa.builder_id or '?'}, build type "
                f"{a.slsa.build_type or '?'}, {len(a.slsa.materials) + a.slsa.materials_omitted} material(s)"
            )
        if a.detail and (a.status != "unsigned" or a.predicate_type is None):  # unread: say why
            lines.append(f"                   {a.detail}")
    for n in report.signature_notes:
        lines.append(f"  note: {n}")
    return "\n".join(visible(line) for line in lines) + "\n"


def signatures_view(report: Report) -> dict:
    """Rows for reports/templates/_signatures.html.j2 (plain data, the template holds no logic)."""
    sigs = [
        {
            "status": s.status,
            "label": STATUS_LABEL[s.status],
            "format": f"{s.format} ({s.envelope})",
            "manifest": s.manifest_digest or "-",
            "about": _about(s.signed_digest or s.attached_to, s.subject_held),
            "signer": s.identity or s.key_id or ("certificate" if s.certificate else "key-based"),
            "issuer": s.issuer or "",
            "reference": s.docker_reference or "",
            "verified_with": s.verified_with or "",
            "images": ", ".join(str(i) for i in s.images) or "none",
            "detail": s.detail,
        }
        for s in report.signatures
    ]
    atts = [
        {
            "status": a.status,
            "label": STATUS_LABEL[a.status],
            "source": a.source,
            "manifest": a.manifest_digest or "-",
            "predicate_type": a.predicate_type or "-",
            "subjects": [
                {"name": x.name, "digest": x.digest or "-", "held": x.held or "not in the archive"}
                for x in a.subjects[:20]
            ],
            "slsa": (
                {
                    "version": a.slsa.version,
                    "builder": a.slsa.builder_id or "-",
                    "build_type": a.slsa.build_type or "-",
                    "parameters": sorted(a.slsa.parameters.items())[:16],
                    "materials": a.slsa.materials[:32],
                    "more": a.slsa.materials_omitted + max(0, len(a.slsa.materials) - 32),
                }
                if a.slsa is not None
                else None
            ),
            "sbom": a.sbom,
            "verified_with": a.verified_with or "",
            "detail": a.detail,
        }
        for a in report.attestations
    ]
    return {
        "shown": bool(sigs or atts or report.signature_notes),
        "signatures": sigs,
        "attestations": atts,
        "notes": list(report.signature_notes),
        "n_verified": sum(1 for s in report.signatures if s.status == "verified"),
    }
