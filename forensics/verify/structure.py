"""archive.* findings about the container itself: damage, unsafe names, duplicates.

Covers the outer tar and every layer tar. A docker-archive's `<v1id>/layer.tar ->
../<diffid>.tar` symlinks are normal; only links that leave the archive root are not.
"""

from __future__ import annotations

import posixpath

from forensics.findings import Code, finding
from forensics.models import FileEntry, Finding
from forensics.paths import norm_outer, resolve_link_target
from forensics.read.model import Archive, Entry, Resolved

RAISES: tuple[Code, ...] = ("archive.duplicate-entry", "archive.malformed", "archive.unsafe-path")


def _layer_positions(res: Resolved | None) -> dict[str, tuple[int, int]]:
    """entry path -> (image, layer) for entries that are some image's layer."""
    pos: dict[str, tuple[int, int]] = {}
    for img in res.images if res else []:
        for lr in img.layers:
            for p in (lr.descriptor.path, lr.descriptor.entry.path if lr.descriptor.entry else None):
                if p:
                    pos.setdefault(p, (img.index, lr.index))
    return pos


def check_outer(inv: Archive, res: Resolved | None = None) -> list[Finding]:
    out: list[Finding] = []
    positions = _layer_positions(res)
    for err in inv.errors:
        entry = None
        if "entry '" in err:
            entry = err.split("entry '", 1)[1].split("'", 1)[0]
        out.append(
            finding(
                "archive.malformed",
                "high",
                entry or inv.source,
                err + ("; the analysis covers what was read before this point" if inv.truncated else ""),
                entry=entry,
            )
        )
    for e in inv.entries:
        _, unsafe = norm_outer(e.name)
        if unsafe:
            out.append(
                finding(
                    "archive.unsafe-path",
                    "high",
                    e.name,
                    f"outer entry {e.name!r} is absolute or climbs out of the archive root; "
                    "a naive extraction writes it outside the target directory",
                    entry=e.name,
                )
            )
        if e.type in ("symlink", "hardlink") and e.linkname:
            base = "" if e.type == "hardlink" else posixpath.dirname(e.path)
            target = posixpath.join(base, e.linkname) if not e.linkname.startswith("/") else e.linkname
            _, escapes = norm_outer(target)
            if escapes:
                out.append(
                    finding(
                        "archive.unsafe-path",
                        "high",
                        e.name,
                        f"outer {e.type} {e.name!r} -> {e.linkname!r} points outside the archive root",
                        entry=e.name,
                    )
                )
    for where, path in res.unsafe_refs if res else []:
        out.append(
            finding(
                "archive.unsafe-path",
                "high",
                path,
                f"{where} names {path!r}, a path outside the archive root",
                entry=path,
            )
        )
    seen: dict[str, list[Entry]] = {}
    for e in inv.entries:
        if e.type != "dir":
            seen.setdefault(e.path, []).append(e)
    for path, copies in seen.items():
        if len(copies) < 2:
            continue
        digests = [c.sha256 or c.linkname or c.type for c in copies]
        same = len(set(digests)) == 1
        listing = ", ".join(f"#{c.seq} {c.digest or c.type}" for c in copies)
        out.append(
            finding(
                "archive.duplicate-entry",
                "low" if same else "high",
                copies[0].name,
                f"{len(copies)} entries named {copies[0].name!r} ({listing}); "
                + (
                    "identical content"
                    if same
                    else "their content differs: extraction and docker load keep the last "
                    "copy, which is the one analyzed here"
                ),
                entry=copies[0].name,
                evidence={"copies": [c.sha256 for c in copies]},
                image=positions.get(path, (None, None))[0],
                layer=positions.get(path, (None, None))[1],
            )
        )
    return out


def check_layer_entries(
    layer_index: int,
    entry_name: str,
    files: list[FileEntry],
    escaping_names: list[tuple[str, str]],
    image_index: int | None = None,
) -> list[Finding]:
    out: list[Finding] = []
    for raw, why in escaping_names:
        out.append(
            finding(
                "archive.unsafe-path",
                "high",
                f"layer[{layer_index}]:{raw}",
                f"layer {layer_index} tar entry {raw} escapes the root filesystem: {why}",
                layer=layer_index,
                path=raw,
                entry=entry_name,
                image=image_index,
            )
        )
    escaping_links: dict[str, str] = {}
    counts: dict[str, int] = {}
    for f in files:
        if f.type == "symlink" and f.link:
            _, escapes = resolve_link_target(f.path, f.link)
            if escapes and not f.link.startswith("/"):
                escaping_links[f.path] = f.link
                out.append(
                    finding(
                        "archive.unsafe-path",
                        "high",
                        f"layer[{layer_index}]:{f.path}",
                        f"symlink {f.path} -> {f.link} resolves outside the root",
                        layer=layer_index,
                        path=f.path,
                        entry=entry_name,
                        image=image_index,
                    )
                )
        if f.type != "opaque":  # the marker shares its directory's path by design
            counts[f.path] = counts.get(f.path, 0) + 1
    if escaping_links:
        for f in files:
            parent = posixpath.dirname(f.path)
            while parent not in ("/", ""):
                if parent in escaping_links:
                    out.append(
                        finding(
                            "archive.unsafe-path",
                            "high",
                            f"layer[{layer_index}]:{f.path}",
                            f"{f.type} {f.path} is written through the escaping symlink {parent}",
                            layer=layer_index,
                            path=f.path,
                            entry=entry_name,
                            image=image_index,
                        )
                    )
                    break
                parent = posixpath.dirname(parent)
    for path, n in counts.items():
        if n > 1:
            kinds = [f for f in files if f.path == path and f.type != "opaque"]
            if all(k.type == "dir" for k in kinds):
                continue  # repeated directory headers are harmless
            out.append(
                finding(
                    "archive.duplicate-entry",
                    "medium",
                    f"layer[{layer_index}]:{path}",
                    f"{path} occurs {n} times in layer {layer_index}; extractors disagree on which wins",
                    layer=layer_index,
                    path=path,
                    entry=entry_name,
                    image=image_index,
                )
            )
    return out


def check_layer_stream(res: Resolved) -> list[Finding]:
    """archive.malformed for layers that could not be read to their end."""
    out: list[Finding] = []
    reported: set[str] = set()
    for img in res.images:
        for lr in img.layers:
            e = lr.descriptor.entry
            if e is None or e.path in reported:
                continue
            problem = None
            if e.layer is None:
                problem = f"is not a layer: its bytes are {e.sniffed or 'unreadable'}, not tar, gzip or zstd"
            elif e.layer.error:
                problem = e.layer.error
            elif not e.layer.is_tar:
                problem = "decompresses to something that is not a tar"
            elif e.layer.trailing_garbage:
                problem = f"{e.layer.trailing_garbage} bytes of trailing data after the compressed stream"
            if e.error:
                problem = f"entry truncated: {e.error}" + (f"; {problem}" if problem else "")
            if problem:
                reported.add(e.path)
                out.append(
                    finding(
                        "archive.malformed",
                        "high",
                        e.name,
                        f"layer {lr.index} ({e.name}) {problem}",
                        layer=lr.index,
                        entry=e.name,
                        digest=lr.descriptor.digest,
                        image=img.index,
                    )
                )
    return out
