"""Model records ↔ JSON text, for storing them in one column. Pure and generic."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from datetime import date
from typing import Any, TypeVar

T = TypeVar("T")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
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


def _build(hint: Any, value: Any) -> Any:  # noqa: PLR0911
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


def loads_into(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a dataclass of type ``cls`` from plain data."""
    hints = typing.get_type_hints(cls)
    return cls(**{k: _build(hints[k], v) for k, v in data.items() if k in hints})


def loads(cls: type[T], text: str) -> T:
    """Rebuild a record of type ``cls`` from :func:`dumps` output."""
    return loads_into(cls, json.loads(text))
