"""Findings across a fleet, from the archives' summaries (forensics.fleet.job).

- `ref.conflict`: one tag or name pointing at different image digests in different archives.
- `compare.history-equal-content-differs`: `forensics diff` across the fleet. Images whose
  histories are identical step by step (every created_by, every empty_layer) are one group;
  at each layer position the digest of the layer's file index (`files_digest`) is counted,
  one vote per image digest however many archives hold it, and where a majority agrees, an image that differs is the odd one: named with its step,
  that step's created_by and the paths that differ. Those paths come from the odd image's
  report and one of the majority's, read again only for that layer: the summaries carry one
  digest per layer, not the file lists.
- The same image digest seen with different findings in different archives: a note, not a
  finding (the vocabulary has no code for it): the archives around one image differ (an
  extra blob, a missing one) or were scanned by different versions or options.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict

from forensics.findings import Code, finding

RAISES: tuple[Code, ...] = ("ref.conflict", "compare.history-equal-content-differs")

MAX_PATHS = 50


def _images(lines: list[dict]):
    for line in lines:
        for img in line.get("images") or []:
            yield line, img


def ref_conflicts(lines: list[dict]) -> list[dict]:
    where: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for line, img in _images(lines):
        if img.get("digest"):
            for ref in img.get("refs") or []:
                where[ref][img["digest"]].append(line["path"])
    out = []
    for ref in sorted(where):
        by_digest = where[ref]
        if len(by_digest) < 2:
            continue
        said = "; ".join(f"{d} in {', '.join(sorted(paths))}" for d, paths in sorted(by_digest.items()))
        f = finding(
            "ref.conflict",
            "medium",
            ref,
            f"across the fleet, {ref} points at {len(by_digest)} different images: {said}",
            evidence={d: sorted(p) for d, p in sorted(by_digest.items())},
        )
        out.append(_out(f, sorted({p for ps in by_digest.values() for p in ps})))
    return out


def _out(f, archives: list[str]) -> dict:
    d = f.model_dump(mode="json", exclude_none=True)
    d["archives"] = archives
    return d


def _layer_files(out: str, line: dict, image: int, layer: int) -> dict[str, tuple] | None:
    try:
        with open(os.path.join(out, line["report"]), encoding="utf-8") as fh:
            report = json.load(fh)
        files = report["images"][image]["layers"][layer]["files"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    return {
        f["path"]: (f.get("type"), f.get("mode"), f.get("uid"), f.get("gid"), f.get("link"), f.get("sha256"))
        for f in files
    }


def _differing(a: dict[str, tuple], b: dict[str, tuple]) -> list[str]:
    return sorted(p for p in a.keys() | b.keys() if a.get(p) != b.get(p))


def history_equal_content_differs(lines: list[dict], out: str) -> list[dict]:
    groups: dict[tuple, list[tuple[dict, dict]]] = defaultdict(list)
    for line, img in _images(lines):
        hist = img.get("history") or []
        if not hist or not line.get("report"):
            continue
        key = (tuple((h["created_by"], h["empty_layer"]) for h in hist), len(img["layers"]))
        groups[key].append((line, img))
    found = []
    for (_, nlayers), members in groups.items():
        if len(members) < 3:
            continue
        # One vote per image: copies of one image in several archives do not make a majority.
        images = {img.get("digest") or f"{line['path']}#{img['index']}": img for line, img in members}
        if len(images) < 3:
            continue
        for pos in range(nlayers):
            counts = Counter(img["layers"][pos]["files_digest"] for img in images.values())
            usual, agree = counts.most_common(1)[0]
            if agree < 2 or agree * 2 <= len(images) or len(counts) == 1:
                continue
            ref_line, ref_img = next((ln, im) for ln, im in members if im["layers"][pos]["files_digest"] == usual)
            usual_files = _layer_files(out, ref_line, ref_img["index"], pos)
            for line, img in members:
                lr = img["layers"][pos]
                if lr["files_digest"] == usual:
                    continue
                step = next((i for i, h in enumerate(img["history"]) if h["layer_index"] == pos), None)
                created_by = img["history"][step]["created_by"] if step is not None else None
                odd_files = _layer_files(out, line, img["index"], pos)
                paths = _differing(odd_files, usual_files) if odd_files is not None and usual_files else []
                shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
                f = finding(
                    "compare.history-equal-content-differs",
                    "critical",
                    "history",
                    f"{len(images)} images share this history step by step, and {agree} of them agree on "
                    f"layer {pos}; this one differs there, at step {step} (`{created_by}`)"
                    + (f": {len(paths)} path{'s' if len(paths) != 1 else ''} differ ({shown})" if paths else ""),
                    image=img["index"],
                    layer=pos,
                    history=step,
                    digest=img.get("digest"),
                    evidence={
                        "step": step,
                        "created_by": created_by,
                        "paths": paths[:MAX_PATHS],
                        "paths_total": len(paths),
                        "files_digest": lr["files_digest"],
                        "usual_files_digest": usual,
                        "diff_id": lr.get("diff_id"),
                        "usual_diff_id": ref_img["layers"][pos].get("diff_id"),
                        "agree": sorted(
                            {ln["path"] for ln, im in members if im["layers"][pos]["files_digest"] == usual}
                        ),
                    },
                )
                found.append(_out(f, [line["path"]]))
    return sorted(found, key=lambda d: (d["archives"], d.get("layer", 0)))


def same_digest_different_findings(lines: list[dict]) -> list[dict]:
    by: dict[str, dict[str, tuple[str, ...]]] = defaultdict(dict)
    for line, img in _images(lines):
        if img.get("digest"):
            by[img["digest"]][line["path"]] = tuple(line.get("codes") or [])
    notes = []
    for digest in sorted(by):
        seen = by[digest]
        if len(set(seen.values())) > 1:
            notes.append(
                {
                    "kind": "same-digest-different-findings",
                    "digest": digest,
                    "archives": [{"path": p, "codes": list(c)} for p, c in sorted(seen.items())],
                }
            )
    return notes


def fleet_checks(lines: list[dict], out: str) -> tuple[list[dict], list[dict]]:
    """(findings, notes) over the lines that were analyzed."""
    ok = [ln for ln in lines if ln.get("images")]
    return ref_conflicts(ok) + history_equal_content_differs(ok, out), same_digest_different_findings(ok)
