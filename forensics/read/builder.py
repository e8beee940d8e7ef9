"""What every reader shares while it reads: the archive, the result so far, its findings."""

from __future__ import annotations

from forensics.findings import Code, finding
from forensics.models import Finding, Format
from forensics.read.documents import load_json, platform_str
from forensics.read.model import Archive, Descriptor, Entry, Resolved, ResolvedImage

RAISES: tuple[Code, ...] = ("archive.malformed",)


class Builder:
    def __init__(self, archive: Archive, fmt: Format) -> None:
        self.archive = archive
        self.out: list[Finding] = []
        self.res = Resolved(format=fmt, archive=archive)
        self.indexes_walked: set[str] = set()
        for meta in ("index.json", "manifest.json", "oci-layout", "repositories"):
            if archive.get(meta) is not None:
                self.res.referenced.add(meta)

    def blob(self, d: Descriptor) -> None:
        """Attach the entry at blobs/<alg>/<hex> to a descriptor."""
        if not d.valid or d.digest is None:  # valid implies a digest; the reader reported it otherwise
            return
        alg, hexpart = d.digest.split(":", 1)
        d.path = f"blobs/{alg}/{hexpart}"
        d.entry, resolved = self.archive.follow(d.path)
        self.res.referenced.add(d.path)
        if d.entry is not None:
            self.res.referenced.add(resolved)

    def config(self, entry: Entry, digest: str | None) -> dict | None:
        doc = load_json(entry, "image config", self.out, digest=digest)
        if doc is None and entry.data is not None and entry.data.strip() == b"null":
            doc = "null"  # reported below like any other non-object
        if doc is not None and not isinstance(doc, dict):
            self.out.append(
                finding(
                    "archive.malformed",
                    "high",
                    entry.name,
                    "image config is not a JSON object",
                    entry=entry.name,
                    digest=digest,
                )
            )
            return None
        return doc

    def finish_image(self, img: ResolvedImage, descriptor_platform: str | None) -> None:
        cfg = img.config_doc or {}
        rootfs = r if isinstance(r := cfg.get("rootfs"), dict) else {}
        diff_ids = ids if isinstance(ids := rootfs.get("diff_ids"), list) else []
        img.diff_ids = [x if isinstance(x, str) else str(x) for x in diff_ids]
        for lr in img.layers:
            if lr.index < len(img.diff_ids):
                lr.declared_diff_id = img.diff_ids[lr.index]
        img.platform = platform_str(cfg) or descriptor_platform

    def done(self) -> Resolved:
        """Read `repositories` (docker's tag file, in any layout that carries one), number
        the images, hand over the findings."""
        repos = self.archive.get("repositories")
        if repos is not None:
            doc = load_json(repos, "repositories", self.out)
            self.res.repositories = doc if isinstance(doc, dict) else None
        for i, img in enumerate(self.res.images):
            img.index = i
        self.res.findings = self.out
        return self.res
