"""The structure of the archive as an inline SVG drawing, generated as text.

Columns, left to right: the archive's entry documents (index.json, nested
indexes, manifest.json), the manifests, the layers in manifest order, the
config (image ID). Arrows are "points at by digest": entry -> manifest,
manifest -> config, manifest -> each layer, and the config's rootfs.diff_ids
-> each (uncompressed) layer. A link the archive does not honor (missing blob,
digest/size/diff_id mismatch) is drawn red and dashed and says why; blobs
nothing points at are drawn apart, orange and dashed.

Everything shown comes from the image and is attacker-controlled: every text
node and attribute value goes through `markupsafe.escape`. The result is a
`Markup` only because it is safe markup built here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from markupsafe import Markup, escape

from forensics.findings import SEVERITY_RANK
from forensics.models import Finding, Image, Report, Severity
from forensics.render.safe import visible_html
from forensics.render.units import human_size

NODE_H = 56
ROW_H = 68
BAND_TITLE_H = 30
BAND_GAP = 22
TOP = 54
MAX_LAYERS_DRAWN = 60
MAX_IMAGES_DRAWN = 24
MAX_ORPHANS_DRAWN = 24

COLS = {  # x, width
    "entry": (16, 184),
    "manifest": (240, 214),
    "layer": (574, 262),
    "config": (904, 212),
}
WIDTH = 1130

COLORS = {
    "ok": ("#f8fafc", "#475569"),
    "virtual": ("#f8fafc", "#94a3b8"),
    "broken": ("#fef2f2", "#b91c1c"),
    "warn": ("#fffbeb", "#b45309"),
    "orphan": ("#fff7ed", "#c2410c"),
    "poisoned": ("#fee2e2", "#991b1b"),
}
EDGE_OK = "#64748b"
EDGE_BROKEN = "#dc2626"
EDGE_DIFF = "#94a3b8"


def _e(value: object) -> str:
    return str(escape(visible_html(str(value))))


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _short(digest: str | None, n: int = 12) -> str:
    if not digest:
        return "(no digest)"
    alg, _, hexpart = digest.partition(":")
    return f"{alg}:{hexpart[:n]}\u2026" if hexpart else _clip(digest, n + 8)


def _size(n: int | None) -> str:
    return "size ?" if n is None else human_size(n)


def _media_label(media_type: str | None) -> str:
    if not media_type:
        return "media type not declared"
    if media_type.startswith("application/vnd.oci."):
        return "OCI image manifest"
    if media_type.startswith("application/vnd.docker."):
        return "Docker manifest v2"
    return _clip(media_type, 38)


@dataclass
class Node:
    key: str
    col: str
    y: float
    title: str
    lines: list[str]
    state: str = "ok"
    tooltip: str = ""
    href: str | None = None  # an in-page anchor, drawn as a label only (no link element)
    dashed: bool = False

    @property
    def x(self) -> float:
        return COLS[self.col][0]

    @property
    def w(self) -> float:
        return COLS[self.col][1]


@dataclass
class Edge:
    src: Node
    dst: Node
    kind: str = "ok"  # ok, broken, diff, diff-broken
    label: str = ""
    src_side: str = "right"  # right, bottom, left
    dst_side: str = "left"  # left, right, top


@dataclass
class Drawing:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    bands: list[tuple[float, float, str, float]] = field(default_factory=list)  # y, height, title, left x
    notes: list[tuple[float, str]] = field(default_factory=list)


def _findings_for(report: Report) -> tuple[dict[str, list[Finding]], dict[tuple[int, int], list[Finding]]]:
    by_digest: dict[str, list[Finding]] = {}
    by_layer: dict[tuple[int, int], list[Finding]] = {}
    for f in report.findings:
        if f.digest:
            by_digest.setdefault(f.digest, []).append(f)
        if f.image is not None and f.layer is not None:
            by_layer.setdefault((f.image, f.layer), []).append(f)
    return by_digest, by_layer


def _codes(fs: list[Finding]) -> set[str]:
    return {f.code for f in fs}


def _layer_problems(img: Image, layer, by_digest, by_layer) -> tuple[list[str], list[str], bool]:
    """(problems of the manifest -> layer link, problems of the diff_id link, warn-only)."""
    fs = list(by_layer.get((img.index, layer.index), []))
    if layer.digest:
        fs += [
            f
            for f in by_digest.get(layer.digest, [])
            if f.image in (None, img.index) and f.layer in (None, layer.index)
        ]
    codes = _codes(fs)
    link: list[str] = []
    diff: list[str] = []
    if "blob.missing" in codes or (not layer.present and layer.actual_size is None):
        link.append("blob missing")
    elif not layer.present:
        link.append("blob unreadable")
    else:
        if "blob.digest-mismatch" in codes or (
            layer.digest and layer.actual_sha256 and layer.digest != layer.actual_sha256
        ):
            link.append("sha256 mismatch")
        if "blob.size-mismatch" in codes or (
            layer.size is not None and layer.actual_size is not None and layer.size != layer.actual_size
        ):
            link.append("size mismatch")
        if "layer.diffid-mismatch" in codes or (
            layer.diff_id and layer.declared_diff_id and layer.diff_id != layer.declared_diff_id
        ):
            diff.append("diff_id mismatch")
        elif not layer.declared_diff_id:
            diff.append("no diff_id declared")
    warn = "blob.media-type-mismatch" in codes or any(c.startswith("archive.") for c in codes)
    return link, diff, warn


def build_drawing(report: Report) -> Drawing:
    d = Drawing()
    by_digest, by_layer = _findings_for(report)
    names = {b.name for b in report.blobs}
    y = TOP

    # --- entry documents (column 0), stacked from the top
    entry_nodes: dict[str, Node] = {}
    ey = TOP + BAND_TITLE_H
    for name, title, line in (
        ("index.json", "index.json", "OCI image index (entry point)"),
        ("manifest.json", "manifest.json", "docker save manifest"),
    ):
        if name in names:
            bad = any(f.entry == name for f in report.findings if f.code.startswith("archive."))
            n = Node(
                key=name, col="entry", y=ey, title=title, lines=[line], state="broken" if bad else "ok", tooltip=name
            )
            entry_nodes[name] = n
            d.nodes.append(n)
            ey += ROW_H
    nested = [b for b in report.blobs if b.kind == "index"]
    nested_nodes = []
    for b in nested[:4]:
        fs = by_digest.get(b.digest or "", [])
        n = Node(
            key=b.name,
            col="entry",
            y=ey,
            title="nested index",
            lines=[_short(b.digest), _size(b.size)],
            state="broken" if any(f.code.startswith("blob.") for f in fs) else "ok",
            tooltip=b.digest or b.name,
        )
        d.nodes.append(n)
        nested_nodes.append(n)
        if "index.json" in entry_nodes:
            d.edges.append(Edge(entry_nodes["index.json"], n, "ok", src_side="bottom", dst_side="top"))
        ey += ROW_H
    if "repositories" in names:
        n = Node(
            key="repositories",
            col="entry",
            y=ey,
            title="repositories",
            lines=["legacy tag map"],
            state="virtual",
            tooltip="repositories",
        )
        d.nodes.append(n)
        ey += ROW_H

    if not report.images:
        d.notes.append(
            (
                y + BAND_TITLE_H + 20,
                "No image could be resolved from this archive: see the findings for what is unreadable.",
            )
        )
        y = max(ey, y + BAND_TITLE_H + 60)

    for img in report.images[:MAX_IMAGES_DRAWN]:
        layers = img.layers[:MAX_LAYERS_DRAWN]
        rows = 1 + len(layers) + (1 if len(img.layers) > MAX_LAYERS_DRAWN else 0)
        band_h = BAND_TITLE_H + rows * ROW_H
        title = f"Image {img.index}"
        if img.refs:
            title += " \u00b7 " + ", ".join(img.refs)
        if img.platform:
            title += " \u00b7 " + img.platform
        d.bands.append((y, band_h, _clip(title, 140), COLS["manifest"][0] - 14))
        top = y + BAND_TITLE_H + 6

        # manifest
        mfs = by_digest.get(img.manifest_digest or "", [])
        if img.manifest_digest:
            m_state = "broken" if any(f.code.startswith("blob.") for f in mfs) else "ok"
            m = Node(
                key=f"m{img.index}",
                col="manifest",
                y=top,
                title="manifest",
                lines=[_short(img.manifest_digest), _media_label(img.manifest_media_type)],
                state=m_state,
                tooltip=img.manifest_digest,
            )
        else:
            m = Node(
                key=f"m{img.index}",
                col="manifest",
                y=top,
                title=f"manifest.json [{img.index}]",
                lines=["no manifest blob", "(docker-archive entry)"],
                state="virtual",
                dashed=True,
                tooltip="docker-archive: manifest.json names the config and the layer files directly",
            )
        d.nodes.append(m)
        parents = []
        if img.manifest_digest:
            parents = nested_nodes or ([entry_nodes["index.json"]] if "index.json" in entry_nodes else [])
        if ("manifest.json" in entry_nodes) and (not img.manifest_digest or report.format == "docker-archive+oci"):
            parents = parents + [entry_nodes["manifest.json"]]
        for p in parents:
            d.edges.append(
                Edge(p, m, "broken" if m.state == "broken" else "ok", "digest mismatch" if m.state == "broken" else "")
            )

        # config
        cfs = by_digest.get(img.config_digest or "", []) + (
            by_digest.get(img.declared_config_digest or "", [])
            if img.declared_config_digest != img.config_digest
            else []
        )
        c_bad = bool(
            img.declared_config_digest and img.config_digest and img.declared_config_digest != img.config_digest
        ) or any(f.code.startswith("blob.") for f in cfs)
        c_missing = img.config_digest is None
        c = Node(
            key=f"c{img.index}",
            col="config",
            y=top,
            title="config (image ID)",
            lines=[
                _short(img.config_digest or img.declared_config_digest),
                f"{len(img.history)} history steps" if img.history else "no history",
            ],
            state="broken" if (c_bad or c_missing) else "ok",
            dashed=c_missing,
            tooltip=img.config_digest or img.declared_config_digest or "config",
        )
        d.nodes.append(c)
        why = "blob missing" if c_missing else ("digest mismatch" if c_bad else "config")
        d.edges.append(Edge(m, c, "broken" if (c_bad or c_missing) else "ok", why))

        # layers
        owner = {h.layer_index: h for h in img.history if h.layer_index is not None}
        for i, layer in enumerate(layers):
            ly = top + (i + 1) * ROW_H
            link, diff, warn = _layer_problems(img, layer, by_digest, by_layer)
            step = owner.get(layer.index)
            content = any(
                f.code.startswith(("history.", "file.")) and SEVERITY_RANK[f.severity] <= SEVERITY_RANK[Severity.medium]
                for f in by_layer.get((img.index, layer.index), [])
            ) or bool(step is not None and step.analysis is not None and step.analysis.unexplained)
            state = "broken" if (link or diff) else ("poisoned" if content else ("warn" if warn else "ok"))
            title = f"layer {layer.index}"
            if content:
                title += f" \u26a0 contradicts step {step.index}" if step is not None else " \u26a0 content findings"
            lines = [_short(layer.digest if layer.digest else layer.actual_sha256)]
            if not layer.present and layer.actual_size is None:
                lines.append("MISSING from the archive")
            elif not layer.present:
                lines.append(f"UNREADABLE: {_size(layer.actual_size)}, truncated or corrupt")
            else:
                comp = {"none": "uncompressed", None: "?"}.get(layer.compression, layer.compression)
                lines.append(f"{comp} \u00b7 {_size(layer.actual_size)} \u00b7 {layer.entries:,} entries")
            n = Node(
                key=f"l{img.index}-{layer.index}",
                col="layer",
                y=ly,
                title=title,
                lines=lines,
                state=state,
                dashed=not layer.present,
                tooltip=layer.digest or "",
            )
            d.nodes.append(n)
            d.edges.append(Edge(m, n, "broken" if link else "ok", ", ".join(link)))
            if layer.present:
                d.edges.append(
                    Edge(
                        c,
                        n,
                        "diff-broken" if diff else "diff",
                        ", ".join(diff) if diff else "",
                        src_side="bottom",
                        dst_side="right",
                    )
                )
        if len(img.layers) > MAX_LAYERS_DRAWN:
            ly = top + (len(layers) + 1) * ROW_H
            d.nodes.append(
                Node(
                    key=f"more{img.index}",
                    col="layer",
                    y=ly,
                    title="\u2026",
                    lines=[f"{len(img.layers) - MAX_LAYERS_DRAWN} more layers not drawn", "(see the digest ledger)"],
                    state="virtual",
                    dashed=True,
                )
            )
        y += band_h + BAND_GAP
    if len(report.images) > MAX_IMAGES_DRAWN:
        d.notes.append((y + 10, f"{len(report.images) - MAX_IMAGES_DRAWN} more images not drawn."))
        y += 40

    y = max(y, ey + BAND_GAP)
    orphans = [b for b in report.blobs if b.kind == "unreferenced"]
    if orphans:
        shown = orphans[:MAX_ORPHANS_DRAWN]
        per_row = 4
        rows = (len(shown) + per_row - 1) // per_row
        band_h = BAND_TITLE_H + rows * ROW_H
        title = f"Unreferenced entries: nothing in the archive points at these {len(orphans)}"
        d.bands.append((y, band_h, title, 6))
        cols = ["entry", "manifest", "layer", "config"]
        for i, b in enumerate(shown):
            n = Node(
                key=f"o{i}",
                col=cols[i % per_row],
                y=y + BAND_TITLE_H + 6 + (i // per_row) * ROW_H,
                title=b.name.rsplit("/", 1)[-1] or b.name,
                lines=[_short(b.digest), _size(b.size)],
                state="orphan",
                dashed=True,
                tooltip=b.name,
            )
            d.nodes.append(n)
        y += band_h + BAND_GAP
        if len(orphans) > MAX_ORPHANS_DRAWN:
            d.notes.append((y, f"{len(orphans) - MAX_ORPHANS_DRAWN} more unreferenced entries not drawn."))
            y += 30
    d.notes.append((y, ""))  # marks the bottom
    return d


def _anchor(n: Node, side: str) -> tuple[float, float]:
    if side == "right":
        return n.x + n.w, n.y + NODE_H / 2
    if side == "left":
        return n.x, n.y + NODE_H / 2
    if side == "bottom":
        return n.x + n.w / 2, n.y + NODE_H
    return n.x + n.w / 2, n.y  # top


def _edge_svg(e: Edge) -> str:
    x1, y1 = _anchor(e.src, e.src_side)
    x2, y2 = _anchor(e.dst, e.dst_side)
    if e.src_side == "bottom" and e.dst_side == "top":
        path = f"M{x1:.0f},{y1:.0f} L{x2:.0f},{y2:.0f}"
        lx, ly = x1 + 6, (y1 + y2) / 2
    elif e.src_side == "bottom" and e.dst_side == "right":
        path = f"M{x1:.0f},{y1:.0f} C{x1:.0f},{y2:.0f} {x1:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
        lx, ly = x2 + 8, y2 - 4
    else:
        dx = max(30.0, (x2 - x1) / 2)
        path = f"M{x1:.0f},{y1:.0f} C{x1 + dx:.0f},{y1:.0f} {x2 - dx:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
        if abs(y2 - y1) < 1:  # a straight link: label over its middle
            lx, ly = (x1 + x2) / 2, y1 - 6
        else:  # a fan: label next to the arrow head, where it cannot be confused
            lx, ly = x2 - 12, y2 - 7
    broken = e.kind in ("broken", "diff-broken")
    color = EDGE_BROKEN if broken else (EDGE_DIFF if e.kind == "diff" else EDGE_OK)
    dash = ' stroke-dasharray="7 5"' if broken else (' stroke-dasharray="2 4"' if e.kind == "diff" else "")
    width = "2.2" if broken else "1.4"
    marker = "arrow-broken" if broken else ("arrow-diff" if e.kind == "diff" else "arrow")
    cls = "edge edge-broken" if broken else "edge"
    out = [
        f'<path class="{cls}" d="{path}" fill="none" stroke="{color}" stroke-width="{width}"{dash} '
        f'marker-end="url(#{marker})"/>'
    ]
    if e.label:
        weight = ' font-weight="700"' if broken else ""
        anchor = (
            "start" if e.dst_side == "right" else ("middle" if abs(y2 - y1) < 1 or e.src_side == "bottom" else "end")
        )
        out.append(
            f'<text x="{lx:.0f}" y="{ly:.0f}" font-size="11" text-anchor="{anchor}" fill="{color}"{weight} '
            f'paint-order="stroke" stroke="#ffffff" stroke-width="3">{_e(e.label)}</text>'
        )
    return "".join(out)


def _node_svg(n: Node) -> str:
    fill, stroke = COLORS.get(n.state, COLORS["ok"])
    dash = ' stroke-dasharray="6 4"' if n.dashed else ""
    width = "2.2" if n.state in ("broken", "orphan", "poisoned") else "1.3"
    parts = [f'<g class="node node-{_e(n.state)}">']
    if n.tooltip:
        parts.append(f"<title>{_e(n.tooltip)}</title>")
    parts.append(
        f'<rect x="{n.x:.0f}" y="{n.y:.0f}" width="{n.w:.0f}" height="{NODE_H}" rx="7" fill="{fill}" '
        f'stroke="{stroke}" stroke-width="{width}"{dash}/>'
    )
    title_color = stroke if n.state != "ok" else "#0f172a"
    parts.append(
        f'<text x="{n.x + 10:.0f}" y="{n.y + 18:.0f}" font-size="13" font-weight="700" '
        f'fill="{title_color}">{_e(_clip(n.title, int((n.w - 20) / 8.8)))}</text>'
    )
    for i, line in enumerate(n.lines[:2]):
        mono = (
            ' font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"' if line.startswith("sha") else ""
        )
        color = "#b91c1c" if line.startswith(("MISSING", "UNREADABLE")) else "#334155"
        parts.append(
            f'<text x="{n.x + 10:.0f}" y="{n.y + 34 + i * 15:.0f}" font-size="11.5"{mono} '
            f'fill="{color}">{_e(_clip(line, int((n.w - 20) / (6.9 if mono else 6.1))))}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


LEGEND = [
    ("ok", "points at, by digest: verified"),
    ("broken", "broken: blob missing or digest/size mismatch"),
    ("diff", "config rootfs.diff_ids \u2192 uncompressed layer"),
]


def render_structure_svg(report: Report) -> Markup:
    d = build_drawing(report)
    bottom = max([n.y + NODE_H for n in d.nodes] + [b[0] + b[1] for b in d.bands] + [y for y, _ in d.notes] + [TOP])
    legend_y = bottom + 24
    height = legend_y + 60
    out: list[str] = [
        f'<svg class="structure" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'width="{WIDTH}" height="{height:.0f}" role="img" aria-labelledby="structure-title structure-desc" '
        f'font-family="system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif">',
        '<title id="structure-title">Structure of the archive</title>',
        '<desc id="structure-desc">Entry documents point at manifests, manifests at the config and the layers, '
        "the config's diff_ids at the uncompressed layers. Red dashed links are broken.</desc>",
        "<defs>",
        f'<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" '
        f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{EDGE_OK}"/></marker>',
        f'<marker id="arrow-broken" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="11" markerHeight="11" '
        f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{EDGE_BROKEN}"/></marker>',
        f'<marker id="arrow-diff" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" '
        f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{EDGE_DIFF}"/></marker>',
        "</defs>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height:.0f}" fill="#ffffff"/>',
    ]
    headings = {
        "entry": "Entry documents",
        "manifest": "Manifests",
        "layer": "Layers (manifest order)",
        "config": "Config (image ID)",
    }
    for col, text in headings.items():
        x, w = COLS[col]
        out.append(
            f'<text x="{x + w / 2:.0f}" y="28" font-size="13" font-weight="700" text-anchor="middle" '
            f'fill="#334155" letter-spacing="0.04em">{_e(text.upper())}</text>'
        )
    out.append(f'<line x1="10" y1="38" x2="{WIDTH - 10}" y2="38" stroke="#cbd5e1"/>')
    for by, bh, title, bx in d.bands:
        out.append(
            f'<rect x="{bx:.0f}" y="{by:.0f}" width="{WIDTH - bx - 10:.0f}" '
            f'height="{bh:.0f}" rx="10" fill="#f1f5f9" stroke="#e2e8f0"/>'
        )
        out.append(
            f'<text x="{bx + 12:.0f}" y="{by + 20:.0f}" font-size="13" font-weight="600" '
            f'fill="#0f172a">{_e(title)}</text>'
        )
    for y, text in d.notes:
        if text:
            out.append(f'<text x="{COLS["manifest"][0]}" y="{y:.0f}" font-size="13" fill="#b91c1c">{_e(text)}</text>')
    for e in d.edges:
        if e.kind in ("diff", "ok"):
            out.append(_edge_svg(e))
    for n in d.nodes:
        out.append(_node_svg(n))
    for e in d.edges:  # broken links on top, so they are never hidden
        if e.kind not in ("diff", "ok"):
            out.append(_edge_svg(e))
    # legend
    lx = 16
    out.append(f'<line x1="10" y1="{legend_y - 14:.0f}" x2="{WIDTH - 10}" y2="{legend_y - 14:.0f}" stroke="#cbd5e1"/>')
    for kind, text in LEGEND:
        color = {"ok": EDGE_OK, "broken": EDGE_BROKEN, "diff": EDGE_DIFF}[kind]
        dash = {"ok": "", "broken": ' stroke-dasharray="7 5"', "diff": ' stroke-dasharray="2 4"'}[kind]
        marker = {"ok": "arrow", "broken": "arrow-broken", "diff": "arrow-diff"}[kind]
        out.append(
            f'<path d="M{lx},{legend_y + 6:.0f} L{lx + 44},{legend_y + 6:.0f}" stroke="{color}" '
            f'stroke-width="2"{dash} marker-end="url(#{marker})"/>'
        )
        out.append(f'<text x="{lx + 52}" y="{legend_y + 10:.0f}" font-size="12" fill="#334155">{_e(text)}</text>')
        lx += 370
    ly2 = legend_y + 30
    lx = 16
    for state, text in (
        ("ok", "verified"),
        ("broken", "fails verification"),
        ("poisoned", "content its history does not explain"),
        ("warn", "warning"),
        ("orphan", "unreferenced"),
        ("virtual", "implied (no blob)"),
    ):
        fill, stroke = COLORS[state]
        dash = ' stroke-dasharray="5 3"' if state in ("orphan", "virtual") else ""
        out.append(
            f'<rect x="{lx}" y="{ly2 - 2:.0f}" width="26" height="16" rx="4" fill="{fill}" stroke="{stroke}" '
            f'stroke-width="1.6"{dash}/>'
        )
        out.append(f'<text x="{lx + 34}" y="{ly2 + 10:.0f}" font-size="12" fill="#334155">{_e(text)}</text>')
        lx += 300 if state == "poisoned" else 165
    out.append("</svg>")
    return Markup("".join(out))
