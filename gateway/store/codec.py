"""Model records ↔ JSON text, for storing them in one column. Pure and generic.

msgspec encodes and decodes the frozen dataclasses of :mod:`gateway.models` directly, typed by
their annotations (dates as ISO text, enums by value, tuples as arrays): an order of magnitude
faster than building dicts for :mod:`json`, and the hot path of every flow that reads the
register (docs/performance.md). The text is compact with sorted keys, as it always was, so rows
written by earlier versions decode the same.
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

_ENCODER = msgspec.json.Encoder(order="sorted")


def dumps(record: Any) -> str:
    """A record as compact, key-sorted JSON."""
    return _ENCODER.encode(record).decode("utf-8")


@functools.cache
def _decoder(cls: type[Any]) -> msgspec.json.Decoder[Any]:
    # Not strict: a value stored by an earlier version as a string where the model now says a
    # number (or the reverse) still decodes.
    return msgspec.json.Decoder(cls, strict=False)


def loads(cls: type[T], text: str | bytes) -> T:
    """Rebuild a record of type ``cls`` from :func:`dumps` output."""
    record: T = _decoder(cls).decode(text)  # type: ignore[arg-type]  # a class is hashable
    return record
