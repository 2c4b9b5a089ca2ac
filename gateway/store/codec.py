"""Model records ↔ JSON text, for storing them in one column. Pure and generic."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from datetime import date
from typing import Any, TypeVar

T = TypeVar("T")


_FIELDS: dict[type, tuple[str, ...]] = {}
_SIMPLE = (str, int, float, bool, type(None))


def _names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _plain(value: Any) -> Any:  # noqa: PLR0911  (one return per kind of value)
    if isinstance(value, _SIMPLE):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(getattr(value, name)) for name in _names(type(value))}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


def dumps(record: Any) -> str:
    """A record as compact, key-sorted JSON (stable: usable as a fingerprint)."""
    return json.dumps(_plain(record), sort_keys=True, separators=(",", ":"))


def _build(hint: Any, value: Any) -> Any:  # noqa: PLR0911  (one return per kind of type)
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if isinstance(hint, types.UnionType) or origin is typing.Union:
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _build(inner[0], value)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v) for v in value)
        return tuple(_build(a, v) for a, v in zip(args, value, strict=True))
    if hint is date:
        return date.fromisoformat(value)
    if hint is bytes:
        return value.encode("utf-8")
    if dataclasses.is_dataclass(hint):
        return loads_into(typing.cast(type[Any], hint), value)
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def loads_into(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a dataclass of type ``cls`` from plain data."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return cls(**{k: _build(hints[k], v) for k, v in data.items() if k in hints})


def loads(cls: type[T], text: str) -> T:
    """Rebuild a record of type ``cls`` from :func:`dumps` output."""
    return loads_into(cls, json.loads(text))
