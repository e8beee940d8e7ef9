"""ref.* findings: tags that disagree across the archive, and user-pinned digests."""

from __future__ import annotations

import posixpath

from forensics.findings import Code, finding
from forensics.models import Finding
from forensics.read.model import Archive, Resolved, ResolvedImage

RAISES: tuple[Code, ...] = ("ref.conflict", "ref.pin-mismatch")


def short_name(name: str) -> str:
    """docker.io/library/x:1 -> x:1: the form `docker images` shows."""
    name = name.strip()
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    if name.startswith("library/"):
        name = name[len("library/") :]
    return name


def familiar(name: str) -> str:
    """docker.io/library/x:1 and x:1 are the same reference; x means x:latest."""
    name = short_name(name)
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        name += ":latest"
    return name


def _image_key(img: ResolvedImage) -> str:
    return (img.config.digest if img.config else None) or f"image[{img.index}]"


def _repositories_targets(img: ResolvedImage, inv: Archive) -> set[str]:
    """What a `repositories` value may say for this image: the top layer's v1 id
    (Docker <=24; skopeo, whose <v1id>/layer.tar is a symlink to <diffid>.tar),
    its diff_id hex (Docker 25+), or the config hex."""
    keys: set[str] = set()
    if img.layers:
        top = img.layers[-1].descriptor
        if (top.path or "").endswith("/layer.tar"):
            keys.add(posixpath.basename(posixpath.dirname(top.path)))
        if top.entry is not None:
            for e in inv.entries:
                if e.path.endswith("/layer.tar") and inv.follow(e.path)[0] is top.entry:
                    keys.add(posixpath.dirname(e.path))
    if img.diff_ids:
        keys.add(img.diff_ids[-1].split(":", 1)[-1])
    if img.config and img.config.digest:
        keys.add(img.config.digest.split(":", 1)[-1])
    return keys


def check_conflicts(res: Resolved, inv: Archive) -> list[Finding]:
    claims: dict[str, dict[str, set[str]]] = {}  # tag -> source -> image keys

    def claim(tag: str, source: str, key: str) -> None:
        claims.setdefault(familiar(tag), {}).setdefault(source, set()).add(key)

    for img in res.images:
        key = _image_key(img)
        for t in img.repo_tags:
            claim(t, "manifest.json", key)
        if img.source == "docker":
            continue
        if img.manifest is not None:
            full = img.manifest.annotations.get("io.containerd.image.name")
            if full:
                claim(full, "index.json", key)
    if isinstance(res.repositories, dict):
        targets = {i.index: _repositories_targets(i, inv) for i in res.images}
        for repo, tags in res.repositories.items():
            if not isinstance(tags, dict):
                continue
            for tag, target in tags.items():
                if not isinstance(target, str):
                    continue
                target = target.split(":", 1)[-1]
                owners = {_image_key(i) for i in res.images if target in targets[i.index]}
                for k in owners:  # an id we cannot place (dangling layer) proves nothing
                    claim(f"{repo}:{tag}", "repositories", k)
    out: list[Finding] = []
    for tag, sources in sorted(claims.items()):
        everyone = set().union(*sources.values())
        if len(everyone) < 2:
            continue
        said = "; ".join(f"{src} -> {', '.join(sorted(k[:19] for k in keys))}" for src, keys in sorted(sources.items()))
        out.append(
            finding(
                "ref.conflict",
                "medium",
                tag,
                f"tag {tag} points at {len(everyone)} different images: {said}",
                evidence={src: sorted(keys) for src, keys in sources.items()},
            )
        )
    return out


def check_pins(res: Resolved, expect: list[str]) -> list[Finding]:
    out: list[Finding] = []
    if not expect:
        return out
    known: dict[str, str] = {}
    for d in res.descriptors:
        if d.where.startswith("index.json") and d.digest:
            known[d.digest] = f"index.json entry ({d.media_type})"
    for img in res.images:
        if img.manifest is not None and img.manifest.digest:
            known[img.manifest.digest] = f"manifest of image[{img.index}]"
        if img.config is not None and img.config.entry is not None and img.config.entry.digest:
            known[img.config.entry.digest] = f"config (image ID) of image[{img.index}]"
    for pin in expect:
        pin_norm = pin if pin.startswith("sha256:") else f"sha256:{pin}"
        pin_norm = pin_norm.split("@", 1)[-1]
        if pin_norm in known:
            continue
        note = ""
        if all(img.manifest is None for img in res.images):
            note = (
                " This archive holds no manifest blob (a graphdriver docker save drops it): only the "
                "image ID (config digest) can be pinned here, not a registry manifest digest."
            )
        have = ", ".join(f"{d} ({w})" for d, w in known.items()) or "none"
        out.append(
            finding(
                "ref.pin-mismatch",
                "critical",
                pin,
                f"expected digest {pin} matches no manifest, index or config in the archive; "
                f"the archive has: {have}.{note}",
                digest=pin_norm,
            )
        )
    return out
