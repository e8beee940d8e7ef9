"""BuildKit provenance attestations, cross-checked against the history and the layers.

An OCI export from BuildKit can carry, next to each platform manifest, an
attestation manifest (`vnd.docker.reference.type: attestation-manifest`) whose
in-toto statements record the build. With `mode=max` they hold the Dockerfile
text itself and the layer descriptors each step produced. They are not signed,
but a forger who rewrites `config.history` rarely rewrites them too: every
history instruction must occur in the recorded Dockerfile, and every layer of
the image must be one the recorded build produced.
"""

from __future__ import annotations

import base64
import json

from forensics.findings import Code, finding
from forensics.history.instructions import parse_created_by
from forensics.models import Finding, Image
from forensics.read.model import Archive, Digest, Resolved

RAISES: tuple[Code, ...] = ("history.unexplained-change",)

BUILDKIT_METADATA = "https://mobyproject.org/buildkit@v1#metadata"


def _blob_json(inv: Archive, digest: str | None):
    d = Digest.parse(digest)
    if d is None:
        return None
    e = inv.get(f"blobs/sha256/{d.hex}")
    if e is None or e.data is None:
        return None
    try:
        return json.loads(e.data)
    except (ValueError, RecursionError):
        return None


def _metadata(predicate: dict) -> dict:
    """buildkit metadata in provenance v1 (runDetails) or v0.2 (metadata[URI])."""
    v1 = ((predicate.get("runDetails") or {}).get("metadata") or {}).get("buildkit_metadata")
    if isinstance(v1, dict):
        return v1
    v02 = (predicate.get("metadata") or {}).get(BUILDKIT_METADATA)
    return v02 if isinstance(v02, dict) else {}


def statements_for(inv: Archive, res: Resolved) -> dict[str, list[dict]]:
    """Provenance statements by the manifest digest they describe."""
    out: dict[str, list[dict]] = {}
    for d in res.artifacts:
        if d.entry is None or d.entry.data is None:
            continue
        try:
            man = json.loads(d.entry.data)
        except (ValueError, RecursionError):
            continue
        if not isinstance(man, dict):
            continue
        target = d.annotations.get("vnd.docker.reference.digest")
        if isinstance(man.get("subject"), dict):
            target = man["subject"].get("digest") or target
        for layer in man.get("layers") or []:
            if not isinstance(layer, dict) or "in-toto" not in str(layer.get("mediaType")):
                continue
            st = _blob_json(inv, layer.get("digest"))
            if (
                isinstance(st, dict)
                and "provenance" in str(st.get("predicateType"))
                and isinstance(st.get("predicate"), dict)
            ):
                subjects = [s.get("digest", {}).get("sha256") for s in st.get("subject") or [] if isinstance(s, dict)]
                for key in {target, *(Digest.parse_hex(s) for s in subjects)}:
                    if key is not None:  # no reference annotation, or a subject that is not a digest
                        out.setdefault(key, []).append(st)
    return out


def _dockerfiles(meta: dict) -> list[str]:
    infos = ((meta.get("source") or {}).get("infos")) or []
    texts = []
    for info in infos if isinstance(infos, list) else []:
        if isinstance(info, dict) and isinstance(info.get("data"), str):
            try:
                texts.append(base64.b64decode(info["data"]).decode("utf-8", "replace"))
            except ValueError:
                continue
    return texts


def _squash(text: str) -> str:
    return " ".join(text.replace("\\\n", " ").split())


def _layer_digests(meta: dict) -> set[str]:
    found: set[str] = set()

    def walk(x) -> None:
        if isinstance(x, dict):
            if isinstance(x.get("digest"), str) and "mediaType" in x:
                found.add(x["digest"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(meta.get("layers"))
    return found


def check_provenance(img: Image, statements: list[dict]) -> list[Finding]:
    out: list[Finding] = []
    for st in statements:
        meta = _metadata(st["predicate"])
        files = _dockerfiles(meta)
        if files and not any("<<" in f for f in files):  # heredocs: history text differs from the file
            dockerfile = _squash("\n".join(files))
            for h in img.history:
                if h.comment != "buildkit.dockerfile.v0" or not h.created_by:
                    continue
                ins = parse_created_by(h.created_by, h.comment, h.author)
                if ins.kind not in ("RUN", "COPY", "ADD"):
                    continue
                if ins.argv:  # exec form: history re-serializes the JSON array
                    continue
                bodies = [b for b in (ins.shell, ins.args) if b]
                if bodies and not any(_squash(b) in dockerfile for b in bodies):
                    out.append(
                        finding(
                            "history.unexplained-change",
                            "high",
                            f"history[{h.index}]",
                            f"history[{h.index}] says {h.created_by[:200]!r}, but the Dockerfile recorded in the "
                            "image's BuildKit provenance attestation has no such instruction",
                            image=img.index,
                            history=h.index,
                            layer=h.layer_index,
                            evidence={"record": "provenance source.infos", "history": h.created_by},
                        )
                    )
        produced = _layer_digests(meta)
        if produced:
            owners = {h.layer_index: h for h in img.history if h.layer_index is not None}
            for layer in img.layers:
                owner_h = owners.get(layer.index)
                if owner_h is None or owner_h.comment != "buildkit.dockerfile.v0":
                    continue  # base-image layers are not this build's output
                if layer.digest and layer.digest not in produced:
                    owner = owner_h.index
                    out.append(
                        finding(
                            "history.unexplained-change",
                            "high",
                            f"layer[{layer.index}]",
                            f"layer {layer.index} ({layer.digest}) is not among the layers the BuildKit provenance "
                            "attestation records the build as producing",
                            image=img.index,
                            layer=layer.index,
                            history=owner,
                            digest=layer.digest,
                            evidence={"record": "provenance layers", "recorded": sorted(produced)},
                        )
                    )
    return out
