"""JSON out and in for the models, exact even for strings that are not Unicode text.

JSON text may hold a lone surrogate escape (`"\\ud800"`), and tar names that are
not UTF-8 are decoded with surrogateescape (`\\udcff`): Python strings then hold
code points UTF-8 cannot encode, and pydantic's serializer refuses the whole
report. Such a value is written as the same `\\uXXXX` escape it was read from
(the JSON stays ASCII-safe around it and parses back to the identical string);
everything else is pydantic's output unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter
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


def write_json(model: BaseModel, write: Callable[[bytes], object], indent: int = 1) -> None:
    """`to_json(model, indent) + "\n"`, written in pieces of about a megabyte: the report of
    an image of 375,000 files is some 150 MB of JSON, and one string of it (plus its UTF-8
    copy) would double the peak memory of the run. The models are walked down to the ones
    without nested models (a FileEntry, a Finding) and each piece is pydantic's own output
    for it, re-indented to where it sits, so the text is the same to the byte."""
    out = _Buffered(write)
    _write_model(model, out, indent, 0)
    out("\n")
    out.flush()


class _Buffered:
    def __init__(self, write: Callable[[bytes], object], size: int = 1 << 20) -> None:
        self._write, self._size = write, size
        self._parts: list[str] = []
        self._n = 0

    def __call__(self, text: str) -> None:
        self._parts.append(text)
        self._n += len(text)
        if self._n >= self._size:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            self._write("".join(self._parts).encode("utf-8"))
            self._parts, self._n = [], 0


_MANY = 32  # a list of more models than this is written item by item


def _is_item(v: object) -> bool:
    """A model, or one of the slotted dataclasses the report holds one of per file."""
    return isinstance(v, BaseModel) or dataclasses.is_dataclass(v)


def _nests(model: BaseModel) -> bool:
    for v in model.__dict__.values():
        if isinstance(v, BaseModel) or (isinstance(v, list) and len(v) > _MANY and _is_item(v[0])):
            return True
    return False


_ADAPTERS: dict[type, TypeAdapter] = {}


def _adapter(cls: type) -> TypeAdapter:
    ta = _ADAPTERS.get(cls)
    if ta is None:
        ta = _ADAPTERS[cls] = TypeAdapter(cls)
    return ta


def _dump_item(item: object, indent: int) -> str:
    """A dataclass item as pydantic writes it inside its model."""
    ta = _adapter(type(item))
    try:
        return ta.dump_json(item, indent=indent).decode("utf-8")
    except PydanticSerializationError:
        data = _finite(ta.dump_python(item, mode="python"))
        return _SURROGATE.sub(_escape, json.dumps(data, ensure_ascii=False, indent=indent, allow_nan=False))


_BATCH = 512  # dataclass items serialized per call
_LIST_ADAPTERS: dict[type, TypeAdapter] = {}


def _dump_items(items: list, indent: int, prefix: str) -> str:
    """Items of one dataclass type as `_dump_item` writes each, joined by `,\n`, every line
    after the first indented by `prefix`: pydantic's text for the list, brackets off."""
    cls = type(items[0])
    ta = _LIST_ADAPTERS.get(cls)
    if ta is None:
        ta = _LIST_ADAPTERS[cls] = TypeAdapter(list[cls])  # type: ignore[valid-type]
    try:
        text = ta.dump_json(items, indent=indent).decode("utf-8")
    except PydanticSerializationError:  # a string that is not Unicode text: item by item
        return ",\n".join(_dump_item(item, indent) for item in items).replace("\n", "\n" + prefix)
    # "[\n" + " " * indent + item + ",\n" + ... + "\n]": every line one level in, which
    # `prefix` replaces (a JSON string holds no raw newline)
    return text[2 + indent : -2].replace("\n" + " " * indent, "\n" + prefix)


def _dump(model: BaseModel, indent: int, include: set[str] | None = None) -> str:
    try:
        return model.model_dump_json(indent=indent, include=include)
    except PydanticSerializationError:
        data = _finite(model.model_dump(mode="python", include=include))
        return _SURROGATE.sub(_escape, json.dumps(data, ensure_ascii=False, indent=indent, allow_nan=False))


def _write_model(model: BaseModel, out: _Buffered, indent: int, depth: int) -> None:
    if not _nests(model):
        out(_dump(model, indent).replace("\n", "\n" + " " * (indent * depth)))
        return
    pad = " " * (indent * (depth + 1))
    out("{")
    # a field declared exclude=True is kept in memory only (as model_dump_json leaves it out)
    names = [name for name, info in type(model).model_fields.items() if not info.exclude]
    for n, name in enumerate(names):
        out(",\n" if n else "\n")
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out(f"{pad}{json.dumps(name)}: ")
            _write_model(value, out, indent, depth + 1)
        elif isinstance(value, list) and value and all(_is_item(v) for v in value):
            out(f"{pad}{json.dumps(name)}: [")
            inner = " " * (indent * (depth + 2))
            i = 0
            while i < len(value):
                item = value[i]
                out(f",\n{inner}" if i else f"\n{inner}")
                if isinstance(item, BaseModel):
                    _write_model(item, out, indent, depth + 2)
                    i += 1
                    continue
                # A run of dataclass items (a layer's files, a step's changes) in one call
                # of pydantic's list serializer: one call per item costs more than the item.
                cls = type(item)
                end = i + 1
                while end < len(value) and end - i < _BATCH and type(value[end]) is cls:
                    end += 1
                out(_dump_items(value[i:end], indent, inner))
                i = end
            out(f"\n{pad}]")
        else:
            # pydantic's text for this one field, `{\n<indent>"name": value\n}`, without its braces
            text = _dump(model, indent, {name})
            out(pad + text[2 + indent : -2].replace("\n", "\n" + " " * (indent * depth)))
    out("\n" + " " * (indent * depth) + "}")


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
