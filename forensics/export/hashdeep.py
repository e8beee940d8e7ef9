"""`forensics hashes`: every regular file of an image in hashdeep format.

    %%%% HASHDEEP-1.0
    %%%% size,md5,sha256,filename
    ## Invoked from: /cases/IR-2291
    ## $ forensics hashes image.tar --merged
    ##
    49152,5d41...,2cf2...,usr/local/bin/relayd

Names are relative to the root, as `hashdeep -l -r *` run inside an extracted root writes
them, so `hashdeep -a -k` audits an extraction; without --layer or --merged every layer is
listed under `layer/N/`, as the layers extracted side by side would be. The sha256 comes
from the one pass; the md5 where the pass took one (package systems, /bin, /etc), else
from a second read of those members through the MemberSource.

A name is one field of one line whatever it holds: a backslash, a control, format or
separator character is written as its escape (`\\\\`, `\\n`, `\\x1b`), so no name can start a
line of its own. Commas stay: hashdeep reads the filename as the rest of the line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from forensics.export.layers import Hashed, LayerView, content_path, known_md5, md5_of
from forensics.models import FileEntry
from forensics.read.source import MemberSource
from forensics.render.safe import visible

HEADER = ("%%%% HASHDEEP-1.0", "%%%% size,md5,sha256,filename")


def safe_name(text: str) -> str:
    """One field of one line: backslashes doubled, then every invisible character escaped."""
    return visible(text.replace("\\", "\\\\"))


@dataclass(slots=True)
class Row:
    view: LayerView
    path: str  # the image path
    entry: FileEntry
    member: str  # the member holding the bytes (a hardlink's target within the layer)
    name: str  # as written in the set


def rows(views: list[LayerView], merged_nodes: dict | None, *, per_layer: bool = False) -> Iterator[Row]:
    """The files listed: every regular file (and hardlink, with its target's bytes) of the
    views, or of the merged filesystem when `merged_nodes` (Overlay.nodes) is given;
    `per_layer` names them `layer/N/<path>` (every layer listed side by side)."""
    by_index = {v.index: v for v in views}
    if merged_nodes is not None:
        for path in sorted(merged_nodes):
            node = merged_nodes[path]
            view = by_index[node.layer]
            member = content_path(view, node.entry)
            if member is not None:
                yield Row(view, path, node.entry, member, path.lstrip("/"))
        return
    for view in views:
        last = {f.path: f for f in view.files}  # a duplicated member: the copy extraction leaves
        for f in view.files:
            if last.get(f.path) is not f:
                continue
            member = content_path(view, f)
            if member is None:
                continue
            name = f.path.lstrip("/")
            yield Row(view, f.path, f, member, f"layer/{view.index}/{name}" if per_layer else name)


def _sha256(view: LayerView, member: str) -> str | None:
    f = view.find(member)
    return f.sha256 if f is not None else None


def hashdeep_lines(
    selected: list[Row], source: MemberSource, comments: list[str], stats: dict[str, int] | None = None
) -> Iterator[str]:
    """The set, one line at a time (with its newline). `stats` receives how many md5s came
    from the pass and how many from the second read."""
    need = [
        (r.view, r.member) for r in selected if known_md5(r.view, r.member, r.view.find(r.member) or r.entry) is None
    ]
    reread: dict[tuple[str, str], Hashed] = md5_of(source, iter(need)) if need else {}
    if stats is not None:
        stats.update(
            files=len(selected), md5_from_pass=len(selected) - len(need), md5_read_again=len(need), unreadable=0
        )
    yield from (h + "\n" for h in HEADER)
    for c in comments:
        yield "## " + safe_name(c) + "\n"
    yield "##\n"
    for r in selected:
        target = r.view.find(r.member) or r.entry
        sha = _sha256(r.view, r.member)
        md5 = known_md5(r.view, r.member, target)
        size = target.size
        if md5 is None:
            got = reread.get((r.view.blob or "", r.member))
            if got is None or (sha is not None and got.sha256 != sha):
                # Not readable again (damage the scan reports), or other bytes than the pass
                # hashed (custody.finish says so): no row rather than a wrong one.
                if stats is not None:
                    stats["unreadable"] += 1
                continue
            md5, size = got.md5, got.size
            sha = got.sha256
        if sha is None:
            continue
        yield f"{size},{md5},{sha},{safe_name(r.name)}\n"
