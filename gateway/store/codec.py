"""Model records ↔ JSON text, for storing them in one column. Pure and generic."""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Callable
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


Converter = Callable[[Any], Any]


@functools.cache
def _converter(hint: Any) -> Converter | None:  # noqa: PLR0911  (one return per kind of type)
    """How to rebuild a value of type ``hint`` from JSON data; None when it is already right.

    Compiled once per type, so that decoding many records does no type introspection.
    """
    origin = typing.get_origin(hint)
    if isinstance(hint, types.UnionType) or origin is typing.Union:
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _converter(inner[0])
    if origin is tuple:
        args = typing.get_args(hint)
        item = _converter(args[0])
        if item is None:
            return tuple
        return lambda values: tuple(item(v) for v in values)
    if hint is date:
        return date.fromisoformat
    if hint is bytes:
        return lambda text: text.encode("utf-8")
    if dataclasses.is_dataclass(hint):
        cls = typing.cast(type[Any], hint)
        return lambda data: loads_into(cls, data)
    return None


@functools.cache
def _plan(cls: type) -> tuple[tuple[str, Converter | None], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _converter(hints[f.name])) for f in dataclasses.fields(cls))


def loads_into(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a dataclass of type ``cls`` from plain data."""
    values = {}
    for name, convert in _plan(typing.cast(type, cls)):
        if name in data:
            value = data[name]
            values[name] = value if convert is None or value is None else convert(value)
    return cls(**values)


def loads(cls: type[T], text: str) -> T:
    """Rebuild a record of type ``cls`` from :func:`dumps` output."""
    return loads_into(cls, json.loads(text))
