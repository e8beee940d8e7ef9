"""History against layers: what each step says, what its layer really changed.

Stage order per image: parse every `created_by` (instructions), pair entries with
layers (mapping), check the timeline, then replay the layers over a merged
filesystem (overlay), explain each change from its step (explain), check what
was written (content), and verify package files against their records
(packages).
"""

from __future__ import annotations

import time
from collections.abc import Container

from forensics.history import config, provenance, records, timeline
from forensics.history.early import EarlyHistory
from forensics.history.npmcache import Tarballs
from forensics.history.replay import ImageReplay
from forensics.models import Finding, Image, ImagePackages
from forensics.read.model import Resolved
from forensics.read.source import MemberSource
from forensics.sbom.attestations import sbom_statements
from forensics.sbom.compare import compare_statement


def analyze_images(
    images: list[Image],
    res: Resolved,
    source: MemberSource,
    verify_packages: str = "all",
    packages_out: list[ImagePackages] | None = None,
    *,
    known_good: Container[str] | None = None,
    early: EarlyHistory | None = None,
    npm_tarballs: Tarballs | None = None,
) -> list[Finding]:
    """`early`: the replays started while the input was read (forensics.history.early);
    an image it did not replay as the final model holds it is replayed here.
    `verify_packages`: "all" (default) checks every recorded package digest, reading the
    md5/sha1-recorded files again through `source` (a second, targeted pass); "changed"
    reads again only files whose content changed after their record (sha256-family records
    are always checked for every file, from the first pass)."""
    now = time.time()
    out: list[Finding] = []
    archive = res.archive
    attested = provenance.statements_for(archive, res)
    sboms = sbom_statements(res)
    inventories: list[ImagePackages] = packages_out if packages_out is not None else []
    stamps = [e.mtime for e in archive.entries if timeline.EPOCH_FLOOR <= e.mtime <= timeline.MAX_TIME]
    archive_time = max(stamps) if stamps and not archive.is_dir else None
    for slot, (img, rimg) in enumerate(zip(images, res.images)):
        captured = []
        entries = []
        known = []  # md5/sha1 taken in the pass, per layer (archive.layerscan.record_digests)
        for lr in rimg.layers:
            e = lr.descriptor.entry
            captured.append(e.layer.captured if e is not None and e.layer is not None else {})
            known.append(e.layer.record_digests if e is not None and e.layer is not None else {})
            entries.append(e.path if e is not None else None)
        replay = early.replay_for(slot, img, captured) if early is not None else None
        if replay is None:
            replay = ImageReplay(img)
            for layer in img.layers:
                replay.layer(layer.index, layer.files, captured[layer.index])
        out += replay.finish(
            entries, source, now, archive_time, verify_packages, known, inventories, known_good, npm_tarballs
        )
        out += records.check_records(img, rimg, archive)
        out += config.check_config(img, doc=rimg.config_doc if isinstance(rimg.config_doc, dict) else None)
        if img.manifest_digest in attested:
            out += provenance.check_provenance(img, attested[img.manifest_digest])
        for st in sboms.get(img.manifest_digest or "", []):  # forensics.sbom.compare
            out += compare_statement(st.statement, inventories[-1], image=img.index, source=st.where, digest=st.digest)
    return out
