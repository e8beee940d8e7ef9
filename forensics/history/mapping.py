"""Pair history entries with layers; history.count-mismatch and history.empty-layer-mismatch.

The rule every runtime uses (moby, umoci, dive): walk history, each entry without
`empty_layer: true` consumes the next layer. Where the counts disagree we still
try to find the pairing a builder would have produced, so the rest of the
analysis can go on: an entry that writes files (RUN/COPY/ADD) but claims to be
empty is the usual culprit.
"""

from __future__ import annotations

from itertools import combinations

from forensics.findings import Code, finding
from forensics.history.instructions import Instruction
from forensics.models import Finding, Image

RAISES: tuple[Code, ...] = ("history.count-mismatch", "history.empty-layer-mismatch")

EMPTY_TAR_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
FILE_WRITING = {"RUN", "COPY", "ADD"}


def _fit(img: Image, instructions: list[Instruction], owners: list[int]) -> int:
    """How well a pairing fits: COPY/ADD/WORKDIR destinations found in their layer score."""
    score = 0
    for layer_index, h in enumerate(owners[: len(img.layers)]):
        ins = instructions[h]
        if ins.kind not in ("COPY", "ADD", "WORKDIR") or not ins.dest:
            continue
        dest = ins.dest.rstrip("/") or "/"
        files = img.layers[layer_index].files
        hit = dest == "/" or any(f.path == dest or f.path.startswith(dest + "/") for f in files)
        score += 1 if hit else -1
    return score


def _drop_extra(img: Image, instructions: list[Instruction], owners: list[int]) -> list[int]:
    """Which non-empty entries own no layer: the choice whose pairing fits best."""
    extra = len(owners) - len(img.layers)
    if extra > 3 or len(owners) > 200:
        return owners[len(img.layers) :]  # too many to search: assume the trailing ones
    best, best_score = owners[len(img.layers) :], None
    for dropped in combinations(owners, extra):
        kept = [h for h in owners if h not in dropped]
        score = _fit(img, instructions, kept)
        if best_score is None or score > best_score:
            best, best_score = list(dropped), score
    return best


def map_history(img: Image, instructions: list[Instruction]) -> list[Finding]:
    out: list[Finding] = []
    hist = img.history
    n_layers = len(img.layers)
    if not hist:
        return out  # history is optional (docker import, hand-made images): nothing to pair
    owners = [h.index for h in hist if not h.empty_layer]
    if len(owners) > n_layers:
        dropped = _drop_extra(img, instructions, owners)
        for i in dropped:
            out.append(
                finding(
                    "history.count-mismatch",
                    "medium",
                    f"history[{i}]",
                    f"{len(owners)} history entries own a layer (empty_layer not true) but the image has {n_layers} "
                    f"layers; history[{i}] ({instructions[i].kind} {instructions[i].args[:80]}) is the one that fits "
                    "no layer",
                    image=img.index,
                    history=i,
                    evidence={"non_empty_entries": len(owners), "layers": n_layers},
                )
            )
        owners = [h for h in owners if h not in dropped]
    elif len(owners) < n_layers:
        out.append(
            finding(
                "history.count-mismatch",
                "medium",
                f"image[{img.index}]",
                f"{len(owners)} history entries own a layer (empty_layer not true) but the image has {n_layers} layers",
                image=img.index,
                evidence={"non_empty_entries": len(owners), "layers": n_layers},
            )
        )
    if len(owners) < n_layers:
        # Entries that say "empty" but are of a kind that writes files: if there are exactly
        # as many as missing layers, they are the ones that own them.
        liars = [h.index for h in hist if h.empty_layer and instructions[h.index].kind in FILE_WRITING]
        for i in liars:
            out.append(
                finding(
                    "history.empty-layer-mismatch",
                    "high",
                    f"history[{i}]",
                    f"history[{i}] ({instructions[i].kind}) is marked empty_layer, yet the image has "
                    f"{n_layers - len(owners)} more layer(s) than non-empty entries",
                    image=img.index,
                    history=i,
                )
            )
        if len(liars) == n_layers - len(owners):
            owners = sorted(owners + liars)
    for h in hist:
        h.layer_index = None
    for layer_index, hist_index in enumerate(owners[:n_layers]):
        hist[hist_index].layer_index = layer_index
    previous_owner = -1
    for h in hist:
        ins = instructions[h.index]
        if h.layer_index is None:
            continue
        squashed = any(
            hist[i].empty_layer and instructions[i].kind in FILE_WRITING for i in range(previous_owner + 1, h.index)
        )
        previous_owner = h.index
        if not ins.metadata_only or squashed:
            continue  # buildah --layers=false: the last step owns the changes of the ones before
        layer = img.layers[h.layer_index]
        if layer.diff_id == EMPTY_TAR_DIFF_ID or (layer.entries == 0 and layer.present):
            continue  # BuildKit gives such steps the empty tar: not a lie
        out.append(
            finding(
                "history.empty-layer-mismatch",
                "medium",
                f"history[{h.index}]",
                f"history[{h.index}] is a {ins.kind} instruction, which never writes files, yet it owns layer "
                f"{h.layer_index} with {layer.entries} entries",
                image=img.index,
                history=h.index,
                layer=h.layer_index,
            )
        )
    return out
