"""Hardened XML reading: no DTD, no entities, no network, bounded size and depth, streaming.

Every inbound file goes through :func:`read_root` (what document is this?) and then
:func:`iter_records` (its records, one at a time, validated against the XSD as they stream).
Anything hostile or broken becomes a :class:`RejectedFile` with a code of spec section 3:
``FORBIDDEN_XML`` (DOCTYPE, entities, XInclude, too deep, too large), ``NOT_WELL_FORMED`` or
``SCHEMA_INVALID`` with line and column.
"""

from __future__ import annotations

import gzip
import io
import re
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from lxml import etree

from gateway.codes import is_code
from gateway.errors import FileError, RejectedFile

MAX_DEPTH = 32
MAX_ERRORS = 100
XINCLUDE_NS = "http://www.w3.org/2001/XInclude"
_XINCLUDE_PREFIX = "{" + XINCLUDE_NS + "}"
_PRESCAN_BYTES = 64 * 1024
_DTD_MARKERS = tuple(
    marker.encode(enc)
    for marker in ("<!DOCTYPE", "<!ENTITY")
    for enc in ("ascii", "utf-16-le", "utf-16-be")
)
_GZIP_MAGIC = b"\x1f\x8b"


class _LimitExceeded(Exception):
    pass


class _BoundedReader(io.RawIOBase):
    """A read-only stream that refuses to deliver more than ``limit`` bytes."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(min(len(buffer), 64 * 1024))
        self.count += len(data)
        if self.count > self._limit:
            raise _LimitExceeded
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(64 * 1024), b""))
        data = self._inner.read(size)
        self.count += len(data)
        if self.count > self._limit:
            raise _LimitExceeded
        return bytes(data)


class _SmallReads:
    """A stream handed to the parser 4 KiB at a time (lxml asks for 32 KiB)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._inner.read(4096 if size < 0 else min(size, 4096))
        return data


class _DenyResolver(etree.Resolver):
    """Refuses every external resource: no file, no URL is ever read while parsing."""

    def resolve(self, system_url: str, public_id: str, context: Any = None) -> Any:
        raise RejectedFile.one(
            "FORBIDDEN_XML", "the document refers to an external resource, which is not allowed"
        )


@contextmanager
def open_bounded(path: Path, max_bytes: int) -> Iterator[_BoundedReader]:
    """Open a file for parsing, decompressing gzip ourselves, never past ``max_bytes``."""
    if path.stat().st_size > max_bytes:
        raise RejectedFile.one("FORBIDDEN_XML", f"the file is larger than {max_bytes} bytes")
    with path.open("rb") as raw:
        inner: IO[bytes] = raw
        if raw.read(2) == _GZIP_MAGIC:
            raw.seek(0)
            inner = typing.cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
        else:
            raw.seek(0)
        reader = _BoundedReader(inner, max_bytes)
        try:
            yield reader
        except _LimitExceeded as exc:
            raise RejectedFile.one(
                "FORBIDDEN_XML", f"the document is larger than {max_bytes} bytes once decompressed"
            ) from exc
        except (OSError, EOFError) as exc:
            if inner is not raw:
                raise RejectedFile.one("NOT_WELL_FORMED", f"broken gzip data: {exc}") from exc
            raise


def _prescan(path: Path, max_bytes: int) -> None:
    with open_bounded(path, max_bytes) as src:
        head = src.read(_PRESCAN_BYTES)
    if not head.strip():
        raise RejectedFile.one("NOT_WELL_FORMED", "the file is empty")
    for marker in _DTD_MARKERS:
        at = head.find(marker)
        if at >= 0:
            line = head[:at].count(b"\n") + 1
            raise RejectedFile.one(
                "FORBIDDEN_XML", "a DOCTYPE or entity declaration is not allowed", line
            )


@dataclass(frozen=True, slots=True)
class Root:
    """The root element of a document: what kind of document it is."""

    namespace: str
    name: str
    attributes: dict[str, str]


def _iterparse(
    src: Any, events: tuple[str, ...], schema: etree.XMLSchema | None, tag: str | None = None
) -> Any:
    kwargs: dict[str, Any] = {
        "events": events,
        "resolve_entities": False,
        "no_network": True,
        "load_dtd": False,
        "dtd_validation": False,
        "huge_tree": False,
        "remove_blank_text": True,
    }
    if schema is not None:
        kwargs["schema"] = schema
    if tag is not None:
        kwargs["tag"] = tag
    context = etree.iterparse(src, **kwargs)
    context.resolvers.add(_DenyResolver())
    return context


def _check_start(element: Any, depth: int) -> None:
    if depth == 1:
        info = element.getroottree().docinfo
        if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
            raise RejectedFile.one(
                "FORBIDDEN_XML", "a DOCTYPE is not allowed", element.sourceline
            )
    if depth > MAX_DEPTH:
        raise RejectedFile.one(
            "FORBIDDEN_XML", f"elements nested deeper than {MAX_DEPTH}", element.sourceline
        )
    if element.tag.startswith(_XINCLUDE_PREFIX):
        raise RejectedFile.one("FORBIDDEN_XML", "XInclude is not allowed", element.sourceline)


def _not_well_formed(exc: etree.XMLSyntaxError) -> RejectedFile:
    """The parser's refusal: ``FORBIDDEN_XML`` when it hit one of libxml2's own limits (nesting
    beyond 256, a huge text node), ``NOT_WELL_FORMED`` otherwise.

    libxml2 parses a whole block before lxml yields its events, so a deeply nested file can
    reach libxml2's depth limit before our own (:data:`MAX_DEPTH`) has seen its elements: which
    one speaks first depends on the block size and the library's version (lxml 6.2 with libxml2
    2.14 stops at 256 within the first block).
    """
    line, column = exc.position if exc.position else (exc.lineno, 0)
    message = clean_message(exc.msg or str(exc))
    if "Excessive depth" in message:
        message = f"elements nested deeper than {MAX_DEPTH}"
    # exc.code is this error's own type (exc.error_log holds earlier parses' errors too).
    elif getattr(exc, "code", None) != etree.ErrorTypes.ERR_RESOURCE_LIMIT:
        return RejectedFile.one("NOT_WELL_FORMED", message, line, column)
    return RejectedFile.one("FORBIDDEN_XML", message, line, column)


def read_root(path: Path, max_bytes: int) -> Root:
    """Parse only as far as the root element, refusing a DOCTYPE."""
    _prescan(path, max_bytes)
    with open_bounded(path, max_bytes) as src:
        try:
            # lxml parses each block it reads before it yields; the root is near the start.
            for event, element in _iterparse(_SmallReads(src), ("start", "start-ns"), None):
                if event == "start-ns":
                    if element[1] == XINCLUDE_NS:
                        raise RejectedFile.one("FORBIDDEN_XML", "XInclude is not allowed")
                    continue
                _check_start(element, 1)
                qname = etree.QName(element)
                return Root(qname.namespace or "", qname.localname, dict(element.attrib))
        except etree.XMLSyntaxError as exc:
            raise _not_well_formed(exc) from exc
    raise RejectedFile.one("NOT_WELL_FORMED", "the document has no root element")


def iter_records(
    path: Path, schema: etree.XMLSchema | None, max_bytes: int, record: str | None = None
) -> Iterator[Any]:
    """Yield each child of the root (a record) once complete, validated as the file streams.

    Each record is cleared after the consumer has taken it, so memory stays flat. If the file
    turns out invalid, :class:`RejectedFile` is raised with every schema error and its line; the
    consumer must therefore not act on records until the iterator is exhausted, or only in ways
    it can undo (a streamed flow: a store transaction and temporary outputs).

    With a schema and the records' tag (``{namespace}Name``, the only child its root may have),
    only the records' own end events reach Python: the schema refuses any element it does not
    declare as it streams, so no element can nest deeper than the schema allows. A file that
    fails is read again the careful way, which says why exactly (FORBIDDEN_XML for XInclude or
    deep nesting, as always).
    """
    if schema is None or record is None:
        yield from _careful_records(path, schema, max_bytes)
        return
    try:
        with open_bounded(path, max_bytes) as src:
            context = _iterparse(src, ("end", "start-ns"), schema, tag=record)
            for event, element in context:
                if event == "start-ns":
                    if element[1] == XINCLUDE_NS:
                        raise RejectedFile.one("FORBIDDEN_XML", "XInclude is not allowed")
                    continue
                parent = element.getparent()
                if parent is None or parent.getparent() is not None:
                    continue  # not a child of the root (the schema allows none such)
                yield element
                _let_go(element, parent)
    except (etree.XMLSyntaxError, RejectedFile) as fast:
        for _record in _careful_records(path, schema, max_bytes):
            pass
        raise (fast if isinstance(fast, RejectedFile) else _not_well_formed(fast)) from None


def _careful_records(
    path: Path, schema: etree.XMLSchema | None, max_bytes: int
) -> Iterator[Any]:
    """:func:`iter_records` with every element's start checked (depth, XInclude, DOCTYPE)."""
    depth = 0
    try:
        with open_bounded(path, max_bytes) as src:
            for event, element in _iterparse(src, ("start", "end", "start-ns"), schema):
                if event == "start-ns":
                    if element[1] == XINCLUDE_NS:
                        raise RejectedFile.one("FORBIDDEN_XML", "XInclude is not allowed")
                elif event == "start":
                    depth += 1
                    _check_start(element, depth)
                else:
                    depth -= 1
                    if depth == 1:
                        yield element
                        _let_go(element, element.getparent())
    except etree.XMLSyntaxError as exc:
        log: Any = exc.error_log
        schema_invalid = any(e.domain == etree.ErrorDomains.SCHEMASV for e in log)
        if schema is not None and schema_invalid:
            raise schema_errors(path, schema, max_bytes) from exc
        raise _not_well_formed(exc) from exc


def _let_go(record: Any, root: Any) -> None:
    """Free a record the consumer has taken, and the records before it (memory stays flat)."""
    record.clear(keep_tail=False)
    if root is not None:
        while record.getprevious() is not None:
            del root[0]


def check_well_formed(path: Path, max_bytes: int) -> None:
    """Read the whole document (streaming, no schema); raises RejectedFile if it is broken."""
    for _record in iter_records(path, None, max_bytes):
        pass


def schema_errors(path: Path, schema: etree.XMLSchema, max_bytes: int) -> RejectedFile:
    """Validate the whole tree (only done for an invalid file) and report every error's place."""
    return validation_errors(path, schema, max_bytes) or RejectedFile(
        [FileError("SCHEMA_INVALID", "the document does not match its schema")]
    )


def _whole_tree(path: Path, max_bytes: int) -> Any:
    """The whole document as a tree, parsed as hardened as the stream (only for invalid files)."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    parser.resolvers.add(_DenyResolver())
    with open_bounded(path, max_bytes) as src:
        return etree.parse(typing.cast(IO[bytes], src), parser)


def validation_errors(
    path: Path, schema: etree.XMLSchema, max_bytes: int
) -> RejectedFile | None:
    """Validate the whole tree; every error with its place, or None when the file is valid."""
    try:
        tree = _whole_tree(path, max_bytes)
    except etree.XMLSyntaxError as exc:
        return _not_well_formed(exc)
    schema.validate(tree)
    lines = _Lines(path, max_bytes)
    errors = []
    log: Any = schema.error_log
    for entry in list(log)[:MAX_ERRORS]:
        message = clean_message(entry.message)
        errors.append(
            FileError("SCHEMA_INVALID", message, entry.line, lines.column(entry.line, message))
        )
    return RejectedFile(errors) if errors else None


def only_routing_codes(
    path: Path, schema: etree.XMLSchema, max_bytes: int, fields: frozenset[str]
) -> bool:
    """Whether an invalid file is invalid only because of routing codes inside its records.

    ``fields`` names the record's routing fields: child elements (``DeaneryPostNumber``, whose
    first segment is the code, ``ManagingDeaneryBody``) and attributes (``@vpd``). Every value
    whose code is not plain is replaced by a plain code, and the file validated again: if it is
    then valid, each such record is refused by the rules with ``INVALID_ROUTING_CODE`` and the
    others go on (spec 3.4: a rejected record never stops the others). Root attributes are
    never patched: a file-level code that is not plain stays ``SCHEMA_INVALID``.
    """
    try:
        tree = _whole_tree(path, max_bytes)
    except etree.XMLSyntaxError:
        return False
    patched = False
    for record in tree.getroot():
        if not isinstance(record.tag, str):
            continue
        for name, value in record.attrib.items():
            if f"@{name!s}" in fields and not is_code(str(value).strip()):
                record.set(name, _PLAIN)
                patched = True
        for child in record:
            if not isinstance(child.tag, str) or child.text is None:
                continue  # an empty element reads as absent: its own schema error stands
            local = etree.QName(child).localname
            if local not in fields:
                continue
            text = child.text.strip()
            code = text.split("/", 1)[0] if local == "DeaneryPostNumber" else text
            if not is_code(code):
                child.text = _PLAIN  # the whole value: a DPN may be a bare code
                patched = True
    return patched and schema.validate(tree)


_PLAIN = "XXX"  # a plain code that every routing type accepts (VpdCode is 3 or 4 characters)


class _Lines:
    """Finds the column of the element an error names (libxml2 reports column 0)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self._path = path
        self._max = max_bytes
        self._cache: dict[int, bytes] | None = None

    def column(self, line: int, message: str) -> int:
        match = re.match(r"Element '([\w.-]+)'", message)
        if not match or line <= 0:
            return 1
        if self._cache is None:
            with open_bounded(self._path, self._max) as src:
                self._cache = dict(enumerate(src.read().splitlines(), start=1))
        text = self._cache.get(line, b"")
        found = re.search(rb"<(?:[\w.-]+:)?" + re.escape(match.group(1).encode()) + rb"\b", text)
        return found.start() + 1 if found else 1


_VALUE_PATTERNS = (
    (re.compile(r"The value '[^']*'"), "The value"),
    (re.compile(r": '[^']*' is not a valid value"), ": the value is not a valid value"),
    (re.compile(r"\{[^}]*\}"), ""),
)


def clean_message(message: str) -> str:
    """An lxml message with namespaces shortened and the offending *values* removed.

    Values are personal data (a name, a NINO, a document number); the element's name and the
    line say enough to find it.
    """
    for pattern, replacement in _VALUE_PATTERNS:
        message = pattern.sub(replacement, message)
    return message.strip()
