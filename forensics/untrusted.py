"""Untrusted JSON as typed values: the one place a config field gets its type.

Every byte of an image config is the attacker's: `"created": 5`, `"Labels": []`,
`"Env": [1, null]` are legal JSON. Code that reads them as the image spec
says (a string, a list of strings) would raise on the first `.strip()`, and
one chosen field would throw the whole analysis away. A `Doc` reads each
field with the type the spec gives it; a value of another type reads as
absent (JSON null is absent too, without a finding: builders write it) and
becomes one `archive.malformed` finding naming the field, and the analysis
goes on with the rest.
"""

from __future__ import annotations

from typing import Any

from forensics.findings import Code, finding
from forensics.models import Finding

RAISES: tuple[Code, ...] = ("archive.malformed",)

# A document with thousands of wrong values says so once, not thousands of times.
MAX_FINDINGS_PER_DOC = 20

_JSON_TYPE = {
    str: "string",
    bool: "boolean",
    int: "number",
    float: "number",
    list: "array",
    dict: "object",
    type(None): "null",
}


def json_type(value: Any) -> str:
    return _JSON_TYPE.get(type(value), type(value).__name__)


class Doc:
    """Typed reads from one untrusted JSON document (`where` names it in findings).

    `path` arguments are the field's JSON path for people (`history[3].created`).
    Fields the analysis compares (history, created) are read at `severity`
    "medium" by the caller; descriptive ones (labels, env) at "low".
    """

    def __init__(self, where: str, *, image: int | None = None, entry: str | None = None) -> None:
        self.where = where
        self.image = image
        self.entry = entry
        self.findings: list[Finding] = []
        self._dropped = 0

    def wrong(self, path: str, value: Any, expected: str, severity: str = "low") -> None:
        if len(self.findings) >= MAX_FINDINGS_PER_DOC:
            self._dropped += 1
            return
        self.findings.append(
            finding(
                "archive.malformed",
                severity,
                f"{self.where}: {path}",
                f"{path} is a JSON {json_type(value)} where the image spec has {expected}; it is read as absent "
                "and the analysis goes on without it",
                image=self.image,
                entry=self.entry,
                evidence={"field": path, "json_type": json_type(value)},
            )
        )

    def done(self) -> list[Finding]:
        """The findings, with one more saying how many were not listed."""
        out = list(self.findings)
        if self._dropped:
            out.append(
                finding(
                    "archive.malformed",
                    "low",
                    f"{self.where}: more wrongly typed values",
                    f"{self._dropped} more values of {self.where} have the wrong type (the first "
                    f"{MAX_FINDINGS_PER_DOC} are listed); each is read as absent",
                    image=self.image,
                    entry=self.entry,
                    evidence={"more": self._dropped},
                )
            )
        return out

    # --- typed reads ---------------------------------------------------------------
    def obj(self, parent: Any, key: str, path: str, severity: str = "low") -> dict | None:
        v = parent.get(key) if isinstance(parent, dict) else None
        if v is None or isinstance(v, dict):
            return v
        self.wrong(path, v, "an object", severity)
        return None

    def text(self, parent: Any, key: str, path: str, severity: str = "low") -> str | None:
        v = parent.get(key) if isinstance(parent, dict) else None
        if v is None or isinstance(v, str):
            return v
        self.wrong(path, v, "a string", severity)
        return None

    def flag(self, parent: Any, key: str, path: str, severity: str = "low") -> bool | None:
        v = parent.get(key) if isinstance(parent, dict) else None
        if v is None or isinstance(v, bool):
            return v
        self.wrong(path, v, "a boolean", severity)
        return None

    def array(self, parent: Any, key: str, path: str, severity: str = "low") -> list | None:
        v = parent.get(key) if isinstance(parent, dict) else None
        if v is None or isinstance(v, list):
            return v
        self.wrong(path, v, "an array", severity)
        return None

    def texts(self, parent: Any, key: str, path: str, severity: str = "low") -> list[str] | None:
        """A list of strings; an element of another type is left out (and named)."""
        items = self.array(parent, key, path, severity)
        if items is None:
            return None
        out = []
        for i, x in enumerate(items):
            if isinstance(x, str):
                out.append(x)
            else:
                self.wrong(f"{path}[{i}]", x, "a string", severity)
        return out

    def text_map(self, parent: Any, key: str, path: str, severity: str = "low") -> dict[str, str] | None:
        """An object of string values (Labels)."""
        m = self.obj(parent, key, path, severity)
        if m is None:
            return None
        out = {}
        for k, x in m.items():
            if isinstance(x, str):
                out[k] = x
            else:
                self.wrong(f"{path}[{k!r}]", x, "a string", severity)
        return out

    def key_set(self, parent: Any, key: str, path: str, severity: str = "low") -> list[str] | None:
        """An object used as a set (ExposedPorts, Volumes): its keys, sorted."""
        m = self.obj(parent, key, path, severity)
        return None if m is None else sorted(m)

    def objs(self, parent: Any, key: str, path: str, severity: str = "low") -> list[dict] | None:
        """A list of objects (history); an element of another type reads as an empty object,
        so the positions of the others (and the layers they own) stay where they were."""
        items = self.array(parent, key, path, severity)
        if items is None:
            return None
        out = []
        for i, x in enumerate(items):
            if isinstance(x, dict):
                out.append(x)
            else:
                self.wrong(f"{path}[{i}]", x, "an object", severity)
                out.append({})
        return out


__all__ = ["Doc", "MAX_FINDINGS_PER_DOC", "json_type"]
