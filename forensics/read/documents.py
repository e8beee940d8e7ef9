"""The small JSON documents of both layouts, parsed as untrusted input.

A document that cannot be read becomes archive.malformed (or archive.limit-exceeded for
one too large or too deep to hold); a descriptor keeps what it declares, each field
typed or dropped, and says whether its digest is well formed.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from forensics.findings import Code, finding
from forensics.models import Finding
from forensics.read.model import Descriptor, Entry

RAISES: tuple[Code, ...] = ("archive.limit-exceeded", "archive.malformed")

DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")


def load_json(entry: Entry | None, what: str, out: list[Finding], *, digest: str | None = None) -> Any:
    """Parse a kept document; an unreadable one becomes archive.malformed."""
    if entry is None:
        return None
    where = dict(entry=entry.name, digest=digest)
    if entry.data is None and entry.json_limit is not None and entry.layer is None:
        out.append(
            finding(
                "archive.limit-exceeded",
                "high",
                f"{entry.name}: max_json",
                f"{what} {entry.name!r} exceeds the limit max_json ({entry.json_limit:,} bytes of JSON "
                f"held in memory): its {entry.nbytes:,} bytes were hashed but not parsed; nothing it "
                "describes is analyzed",
                evidence={"limit": "max_json", "value": entry.json_limit, "count": entry.nbytes, "first": entry.name},
                **where,
            )
        )
        return None
    if entry.data is None:
        reason = "too large to be a metadata document" if entry.nbytes else "empty"
        if entry.layer is not None:
            reason = f"is a {entry.sniffed} stream, not JSON"
        out.append(
            finding(
                "archive.malformed",
                "high",
                entry.name,
                f"{what} {entry.name!r} is not a JSON document: {reason} ({entry.nbytes} bytes)",
                **where,
            )
        )
        return None
    try:
        return json.loads(entry.data)
    except RecursionError:
        # Python's JSON parser stops at the interpreter's recursion limit (about 1,000 levels);
        # no image document nests deeper than ten.
        out.append(
            finding(
                "archive.limit-exceeded",
                "high",
                f"{entry.name}: max_json_depth",
                f"{what} {entry.name!r} exceeds the limit max_json_depth (JSON nested deeper than "
                f"{sys.getrecursionlimit():,} levels): it was not parsed; nothing it describes is analyzed",
                evidence={"limit": "max_json_depth", "value": sys.getrecursionlimit(), "count": 1, "first": entry.name},
                **where,
            )
        )
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        msg = str(exc)[:200]
    out.append(
        finding("archive.malformed", "high", entry.name, f"{what} {entry.name!r} is not valid JSON: {msg}", **where)
    )
    return None


def parse_descriptor(raw: Any, where: str, out: list[Finding], doc_entry: Entry | None) -> Descriptor | None:
    if not isinstance(raw, dict):
        out.append(
            finding(
                "archive.malformed",
                "high",
                where,
                f"{where} is not a descriptor object",
                entry=doc_entry.name if doc_entry else None,
            )
        )
        return None
    digest = raw.get("digest")
    size = raw.get("size")
    for key, want in (("size", int), ("mediaType", str), ("digest", str)):
        value = raw.get(key)
        if value is not None and (
            not isinstance(value, want)
            or isinstance(value, bool)
            or (key == "size" and isinstance(value, int) and value < 0)
        ):
            out.append(
                finding(
                    "archive.malformed",
                    "high",
                    where,
                    f"{where}: {key} is {json.dumps(value)[:80]}, not a valid {key}",
                    entry=doc_entry.name if doc_entry else None,
                )
            )
    d = Descriptor(
        where=where,
        media_type=raw.get("mediaType") if isinstance(raw.get("mediaType"), str) else None,
        digest=digest if isinstance(digest, str) else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        annotations={
            k: v for k, v in (raw.get("annotations") or {}).items() if isinstance(k, str) and isinstance(v, str)
        }
        if isinstance(raw.get("annotations"), dict)
        else {},
        platform=raw.get("platform") if isinstance(raw.get("platform"), dict) else None,
        urls=[u for u in raw.get("urls") or [] if isinstance(u, str)] if isinstance(raw.get("urls"), list) else [],
        data=raw.get("data") if isinstance(raw.get("data"), str) else None,
        artifact_type=raw.get("artifactType") if isinstance(raw.get("artifactType"), str) else None,
    )
    if d.digest is None or not DIGEST_RE.match(d.digest):
        d.valid = False
        out.append(
            finding(
                "archive.malformed",
                "high",
                where,
                f"{where} has an invalid digest {str(digest)[:100]!r}",
                entry=doc_entry.name if doc_entry else None,
            )
        )
    return d


def platform_str(p: dict | None) -> str | None:
    if not p or not isinstance(p.get("os"), str) or not isinstance(p.get("architecture"), str):
        return None
    s = f"{p['os']}/{p['architecture']}"
    if isinstance(p.get("variant"), str) and p["variant"]:
        s += f"/{p['variant']}"
    return s
