"""How the model names paths: outer entries (relative, no leading "./" or "/") and layer
members (absolute, collapsed). Pure functions shared by the readers and the checks."""

from __future__ import annotations

import posixpath


def norm_outer(name: str) -> tuple[str, bool]:
    """Normalize an outer entry name; say whether it is unsafe (absolute or escaping)."""
    unsafe = name.startswith("/")
    path = posixpath.normpath("/" + name.replace("\\", "/")) if name else "/"
    stripped = name.lstrip("/")
    parts = [p for p in stripped.split("/") if p not in ("", ".")]
    depth = 0
    for p in parts:
        depth = depth - 1 if p == ".." else depth + 1
        if depth < 0:
            unsafe = True
            break
    return path.lstrip("/"), unsafe


def norm_layer_path(name: str) -> tuple[str, bool]:
    """(normalized absolute path, escapes_root)."""
    if "//" not in name and "\\" not in name and "/." not in "/" + name:
        return "/" + name.strip("/"), False  # no "", "." or ".." component: nothing to collapse
    parts: list[str] = []
    escapes = False
    for p in name.replace("\\", "/").split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not parts:
                escapes = True
                continue
            parts.pop()
        else:
            parts.append(p)
    return "/" + "/".join(parts), escapes


def resolve_link_target(link_path: str, target: str) -> tuple[str, bool]:
    """Where a symlink at link_path points, inside the root; and whether it climbs out."""
    if target.startswith("/"):
        return norm_layer_path(target)
    return norm_layer_path(posixpath.join(posixpath.dirname(link_path), target))
