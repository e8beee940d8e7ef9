"""JSON out and in for the models, exact even for strings that are not Unicode text.

JSON text may hold a lone surrogate escape (`"\\ud800"`), and tar names that are
not UTF-8 are decoded with surrogateescape (`\\udcff`): Python strings then hold
code points UTF-8 cannot encode, and pydantic's serializer refuses the whole
report. Such a value is written as the same `\\uXXXX` escape it was read from
(the JSON stays ASCII-safe around it and parses back to the identical string);
everything else is pydantic's output unchanged.
"""

from __future__ import annotations

import json
import re
from typing import TypeVar

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

M = TypeVar("M", bound=BaseModel)

_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(m: re.Match) -> str:
    return f"\\u{ord(m.group()):04x}"


def to_json(model: BaseModel, indent: int = 1) -> str:
    try:
        return model.model_dump_json(indent=indent)
    except PydanticSerializationError:
        # mode="python" keeps every string (and dict key) as it is; mode="json" would
        # replace surrogates in keys. Surrogates can only occur inside JSON strings,
        # so escaping them in the encoded text is exact.
        data = _finite(model.model_dump(mode="python"))
        text = json.dumps(data, ensure_ascii=False, indent=indent, allow_nan=False)
        return _SURROGATE.sub(_escape, text)


def _finite(data):
    """inf and NaN as null, as pydantic writes them (json.dumps would write `Infinity`);
    iterative, since evidence values can nest as deep as the parser allowed."""
    stack = [data]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in list(items):
            if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
                node[k] = None
            elif isinstance(v, (dict, list)):
                stack.append(v)
    return data


def from_json(cls: type[M], data: str | bytes) -> M:
    """Parse what to_json wrote: pydantic's own parser rejects lone surrogate escapes."""
    try:
        return cls.model_validate_json(data)
    except ValueError as exc:
        if "surrogate" not in str(exc) and "hex escape" not in str(exc):
            raise
    return cls.model_validate(json.loads(data))
