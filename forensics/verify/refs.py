"""ref.* findings: tags that disagree across the archive, and user-pinned digests."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from forensics.findings import Code, finding
from forensics.models import Finding, PinResult
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
        if top.path is not None and top.path.endswith("/layer.tar"):
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
        said = "; ".join(f"{src} -> {', '.join(sorted(keys))}" for src, keys in sorted(sources.items()))
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


# ---------------------------------------------------------------- pins (--expect, --expect-file)

PIN_FORM = (
    "a pin is sha256: followed by 64 lowercase hex digits (the form `crane digest` and "
    "`docker buildx imagetools inspect` print), or NAME@sha256:<64 hex> to pin a named ref"
)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class PinError(ValueError):
    """A pin that is not a digest: bad usage, never evidence (the CLI exits 2)."""


@dataclass(frozen=True)
class Pin:
    text: str  # as given
    digest: str
    name: str | None = None
    source: str = "--expect"  # or FILE:LINE of a lock file
    lock: str | None = None  # the lock file it comes from: its pins apply to the refs it names

    def __str__(self) -> str:
        return self.text


def parse_pin(text: str, source: str = "--expect", lock: str | None = None) -> Pin:
    """`sha256:<64 lowercase hex>` or `NAME@sha256:<64 lowercase hex>`; anything else raises PinError."""
    value = text.strip()
    name, _, digest = value.rpartition("@")
    if not _DIGEST.fullmatch(digest):
        got = digest if len(digest) <= 80 else digest[:77] + "..."
        hint = ""
        if digest.lower() != digest and _DIGEST.fullmatch(digest.lower()):
            hint = " (uppercase hex)"
        elif digest.startswith("sha256:"):
            hint = f" ({len(digest) - 7} characters after sha256:, not 64 hex digits)"
        elif re.fullmatch(r"[0-9a-f]{64}", digest):
            hint = " (the sha256: prefix is missing)"
        raise PinError(f"{source}: {got!r} is not a digest{hint}; {PIN_FORM}")
    if "@" in value and (not name or any(c.isspace() for c in name) or "@" in name):
        raise PinError(f"{source}: {value!r}: NAME@ needs a ref name before the @; {PIN_FORM}")
    return Pin(text=value, digest=digest, name=name or None, source=source, lock=lock)


def parse_pin_file(text: str, lock: str) -> list[Pin]:
    """A deploy lock: one pin per line; `#` starts a comment; blank lines are skipped."""
    pins = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            pins.append(parse_pin(line, f"{lock}:{n}", lock=lock))
    if not pins:
        raise PinError(f"{lock}: no pin in this file; {PIN_FORM}, one per line")
    return pins


def _repo_tag(name: str) -> tuple[str, str | None]:
    name = short_name(name)
    repo, sep, tag = name.rpartition(":")
    if sep and "/" not in tag:
        return repo, tag
    return name, None


def _names(pin_name: str, ref: str) -> bool:
    """Does the archive's `ref` carry the pin's name? `repo@` names every tag of repo."""
    repo, tag = _repo_tag(pin_name)
    if ":" not in ref and "/" not in ref:  # a bare org.opencontainers.image.ref.name: a tag
        return tag is not None and ref == tag
    ref_repo, ref_tag = _repo_tag(ref)
    return ref_repo == repo and (tag is None or (ref_tag or "latest") == tag)


@dataclass
class _Target:
    digest: str
    against: str  # "manifest digest", "image ID (config digest)", "index.json entry"
    image: int | None
    refs: list[str]


def _targets(res: Resolved) -> list[_Target]:
    out: list[_Target] = []
    for img in res.images:
        if img.manifest is not None and img.manifest.digest:
            out.append(_Target(img.manifest.digest, "manifest digest", img.index, list(img.refs)))
        if img.config is not None and img.config.entry is not None and img.config.entry.digest:
            out.append(_Target(img.config.entry.digest, "image ID (config digest)", img.index, list(img.refs)))
    for d in res.descriptors:  # after the images: a manifest digest is named as one
        if d.where.startswith("index.json") and d.digest:
            refs = [v for k, v in d.annotations.items() if k.endswith(("image.name", "image.ref.name"))]
            out.append(_Target(d.digest, f"index.json entry ({d.media_type or 'no media type'})", None, refs))
    return out


def pin_results(res: Resolved, expect: list[Pin]) -> list[PinResult]:
    """Each pin held to the archive. A bare digest must be one of the archive's manifest,
    index.json entry or config digests; NAME@digest must also be what NAME labels here.
    A lock file's pin whose NAME the archive does not carry is "absent", no finding: a
    lock lists every image deployed, the archive holds a few."""
    targets = _targets(res)
    results: list[PinResult] = []
    for pin in expect:
        base = dict(pin=pin.text, name=pin.name, digest=pin.digest, source=pin.source)
        hits = [t for t in targets if t.digest == pin.digest]
        if pin.name is not None:
            named = [t for t in targets if any(_names(pin.name, r) for r in t.refs)]
            if not named:
                refs = sorted({r for t in targets for r in t.refs})
                results.append(
                    PinResult(
                        **base,
                        matched=False,
                        status="absent",
                        detail=f"no ref of the archive is {pin.name} (its refs: {', '.join(refs) or 'none'})",
                    )
                )
                continue
            hits = [t for t in named if t.digest == pin.digest]
            if not hits:
                said = ", ".join(f"{t.digest} ({t.against})" for t in named)
                results.append(
                    PinResult(
                        **base, matched=False, status="mismatch", detail=f"{pin.name} labels {said} in this archive"
                    )
                )
                continue
        if hits:
            t = hits[0]
            results.append(
                PinResult(
                    **base,
                    matched=True,
                    status="matched",
                    against=t.against,
                    image=t.image,
                    detail=f"pinned: {t.against} {t.digest} matches"
                    + (f" for {pin.name}" if pin.name else "")
                    + ("" if t.image is None else f" (image {t.image})"),
                )
            )
            continue
        have = ", ".join(f"{t.digest} ({t.against})" for t in targets) or "none"
        note = ""
        if all(img.manifest is None for img in res.images):
            note = (
                " This archive holds no manifest blob (a graphdriver docker save drops it): only the "
                "image ID (config digest) can be pinned here, not a registry manifest digest."
            )
        results.append(
            PinResult(
                **base,
                matched=False,
                status="mismatch" if pin.lock is None else "absent",
                detail=f"matches no manifest, index or config in the archive; the archive has: {have}.{note}",
            )
        )
    return results


def check_pins(res: Resolved, expect: list[Pin]) -> list[Finding]:
    """ref.pin-mismatch for every pin that fails, and for a lock file none of whose pins applies."""
    out: list[Finding] = []
    results = pin_results(res, expect)
    for pin, r in zip(expect, results):
        if r.status == "mismatch" or (r.status == "absent" and pin.lock is None):
            out.append(
                finding(
                    "ref.pin-mismatch",
                    "critical",
                    pin.text,
                    f"expected digest {pin.text} ({pin.source}): {r.detail}",
                    digest=pin.digest,
                )
            )
    locks: dict[str, list[PinResult]] = {}
    for pin, r in zip(expect, results):
        if pin.lock is not None:
            locks.setdefault(pin.lock, []).append(r)
    for lock, rs in locks.items():
        if not any(r.status in ("matched", "mismatch") for r in rs):
            refs = sorted({r for t in _targets(res) for r in t.refs})
            out.append(
                finding(
                    "ref.pin-mismatch",
                    "critical",
                    lock,
                    f"none of the {len(rs)} pin(s) of the lock file {lock} applies to this archive: no pinned "
                    f"digest is in it and no pinned name is one of its refs ({', '.join(refs) or 'none'}); "
                    "the archive is not an image the lock deploys",
                )
            )
    return out
