"""Files whose bytes are in a known-bad hash set the user supplied (`scan --known-bad FILE`).

Every regular file of every layer is held to the set, not only the merged filesystem:
a file a later layer deletes is still in the image's blobs, and still shipped to every
host that pulls it."""

from __future__ import annotations

from forensics.findings import Code, finding
from forensics.hashsets import HashSet
from forensics.models import Finding, Image
from forensics.read.model import Digest

RAISES: tuple[Code, ...] = ("file.known-bad",)


def check(images: list[Image], known_bad: HashSet | None) -> list[Finding]:
    if known_bad is None or not len(known_bad):
        return []
    out: list[Finding] = []
    for img in images:
        for layer in img.layers:
            for f in layer.files:
                if f.type != "file" or not f.sha256:
                    continue  # a hardlink's bytes are its target's, matched there
                hit = known_bad.get(f.sha256)
                if hit is None:
                    continue
                label = f" ({hit.label})" if hit.label else ""
                out.append(
                    finding(
                        "file.known-bad",
                        "high",
                        f"layer[{layer.index}]:{f.path}",
                        f"layer {layer.index} holds {f.path} ({f.size} bytes, sha256:{f.sha256}), listed in the "
                        f"known-bad set at {hit.where}{label}",
                        image=img.index,
                        layer=layer.index,
                        path=f.path,
                        digest=Digest.of_hex(f.sha256),
                        evidence={"set": hit.where, "label": hit.label, "size": f.size, "mode": f.mode},
                    )
                )
    return out
