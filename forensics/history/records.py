"""Other copies of the build record, cross-checked against `config.history`.

A forger who rewrites `history` rarely rewrites every copy: the classic builder
stores the last step's command again in `container_config.Cmd` (its build cache
relies on that equality, moby image/cache), and a legacy `docker save` writes
the top layer's `<v1id>/json` with its own `created`, `container_config` and
`config`. Each disagreement is reported with both values.
"""

from __future__ import annotations

import json
import posixpath

from forensics.findings import Code, finding
from forensics.history.config import _BUILDAH_NOP
from forensics.history.timeline import EPOCH_FLOOR, parse_time
from forensics.models import Finding, Image
from forensics.read.model import Archive, ResolvedImage
from forensics.untrusted import Doc

RAISES: tuple[Code, ...] = ("history.time-anomaly", "history.unexplained-change")


def _cmd(cc) -> str | None:
    if isinstance(cc, dict) and isinstance(cc.get("Cmd"), list) and cc["Cmd"]:
        return " ".join(str(x) for x in cc["Cmd"])
    return None


def _top_v1_json(rimg: ResolvedImage, inv: Archive) -> tuple[str, dict] | None:
    if not rimg.layers:
        return None
    top = rimg.layers[-1].descriptor
    dirs = set()
    if top.path and top.path.endswith("/layer.tar"):
        dirs.add(posixpath.dirname(top.path))
    if top.entry is not None:
        for e in inv.entries:
            if e.path.endswith("/layer.tar") and inv.follow(e.path)[0] is top.entry:
                dirs.add(posixpath.dirname(e.path))
    for d in sorted(dirs):
        v1 = inv.get(f"{d}/json")
        if v1 is not None and v1.data:
            try:
                doc = json.loads(v1.data)
            except (ValueError, RecursionError):
                continue
            if isinstance(doc, dict):
                return v1.name, doc
    return None


def check_records(img: Image, rimg: ResolvedImage, inv: Archive) -> list[Finding]:
    out: list[Finding] = []
    cfg = rimg.config_doc if isinstance(rimg.config_doc, dict) else {}
    if not img.history:
        return out
    last = img.history[-1]
    cmd = _cmd(cfg.get("container_config"))
    # buildah's docker format copies the config (its Cmd) into container_config: only the
    # classic builder writes the last step's command there.
    buildah = any((h.comment or "").startswith("FROM ") or _BUILDAH_NOP.search(h.created_by or "") for h in img.history)
    if cmd is not None and last.created_by is not None and cmd.strip() != last.created_by.strip() and not buildah:
        out.append(
            finding(
                "history.unexplained-change",
                "medium",
                f"history[{last.index}]",
                f"the config's container_config.Cmd records the last step as {cmd[:200]!r}, but history[{last.index}] "
                f"says {last.created_by[:200]!r}: the classic builder writes the same command to both, so one was edited",
                image=img.index,
                history=last.index,
                evidence={"container_config.Cmd": cmd, "history.created_by": last.created_by},
            )
        )
    found = _top_v1_json(rimg, inv)
    if found is None:
        return out
    name, v1 = found
    doc = Doc(name, image=img.index, entry=name)
    created_cfg = img.config.created if img.config else None  # typed (and reported) by the pipeline
    created_v1 = doc.text(v1, "created", "created", "medium")
    out += doc.done()
    t_cfg, t_v1 = parse_time(created_cfg), parse_time(created_v1)
    # An epoch stamp means "not recorded" (lower layers, shared layer directories).
    if t_cfg is not None and t_v1 is not None and t_v1 >= EPOCH_FLOOR and abs(t_cfg - t_v1) > 1:
        out.append(
            finding(
                "history.time-anomaly",
                "medium",
                name,
                f"{name} (the legacy copy of the image config) says created {created_v1}, the config says "
                f"{created_cfg}",
                image=img.index,
                entry=name,
                evidence={"legacy": created_v1, "config": created_cfg},
            )
        )
    v1_cmd = _cmd(v1.get("container_config"))
    if v1_cmd is not None and cmd is not None and v1_cmd.strip() != cmd.strip():
        out.append(
            finding(
                "history.unexplained-change",
                "medium",
                name,
                f"{name} records the last build command as {v1_cmd[:200]!r}, the config's container_config as "
                f"{cmd[:200]!r}",
                image=img.index,
                history=last.index,
                entry=name,
                evidence={"legacy": v1_cmd, "config": cmd},
            )
        )
    for key in ("Entrypoint", "Cmd", "User", "Env"):
        a = (cfg.get("config") or {}).get(key) if isinstance(cfg.get("config"), dict) else None
        b = (v1.get("config") or {}).get(key) if isinstance(v1.get("config"), dict) else None
        if "config" in v1 and isinstance(v1.get("config"), dict) and (a or None) != (b or None):
            out.append(
                finding(
                    "history.unexplained-change",
                    "medium",
                    name,
                    f"{name} gives config.{key} = {json.dumps(b)[:200]}, the image config {json.dumps(a)[:200]}: "
                    "the two copies of the run configuration disagree",
                    image=img.index,
                    entry=name,
                    evidence={"legacy": b, "config": a, "field": key},
                )
            )
    return out
