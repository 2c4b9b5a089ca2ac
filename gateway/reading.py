"""A streamed file's records, read and validated as they come: in this process, or, for a large
file on a machine with a second core, in a second process beside it (issue 13).

lxml's streaming validation and the building of each record are a fifth of a national
placements file's time, and they cannot run in a thread beside the rules: lxml takes the GIL
back for every record it hands Python (docs/performance.md). A second process reads the file
with exactly :func:`read` and sends the records over a pipe, a batch at a time, while this one
decides them; the pipe's size keeps the reader a few batches ahead, so memory stays flat.

The reader ends its stream with what it found: the end of the file, an invalid file (raised
here as :class:`ValueError` at the same point of the stream as :func:`read` raises it in
process, so the pipeline's careful path says why) or a failure of its own. A reader that dies
without saying (killed, out of memory) is a :class:`TransientError`: the file is tried again.
The reader ignores SIGINT and SIGTERM (the gateway's own process decides when to stop: a
daemon finishes the file in hand) and ends when its pipe does; the gateway kills and reaps it
whenever the stream is left early.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gateway
from gateway.config import UNKNOWN_CHANNEL
from gateway.documents import BY_NAME, BY_ROOT, DocumentKind
from gateway.errors import RejectedFile, TransientError
from gateway.transport.files import sha256_of, sha256_of_regular
from gateway.xml.schemas import schema
from gateway.xml.secure import (
    Root,
    check_well_formed,
    iter_records,
    only_routing_codes,
    read_root,
    validation_errors,
)

BESIDE_BYTES = 4 << 20
"""A file this size or larger is read beside (~6,500 placements): below it, starting a second
Python (~0.1 s) costs more than it saves."""
BATCH = 500  # records a message (~80 KB pickled)
PIPE_BYTES = 1 << 20

_RECORDS, _END, _INVALID, _FAILED = "records", "end", "invalid", "failed"
_ROOT = str(Path(gateway.__file__).resolve().parent.parent)


def _start(entry: str, *args: str, asks: bool = False) -> subprocess.Popen[bytes]:
    """A reader process running ``gateway.reading.<entry>()`` with ``args``, the same code as
    this process (its ``gateway`` first on the path); its stdout a pipe widened to
    :data:`PIPE_BYTES`, its stdin a pipe when it ``asks`` for work. Raises OSError."""
    code = (f"import sys; sys.path.insert(0, {_ROOT!r}); "
            f"from gateway.reading import {entry}; {entry}()")
    reader = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE if asks else subprocess.DEVNULL, stdout=subprocess.PIPE,
        start_new_session=True,
    )
    if reader.stdout is not None:
        _widen(reader.stdout.fileno())
    return reader


def _end(reader: subprocess.Popen[bytes]) -> None:
    """Stop a reader process if it still runs, close its pipes, reap it."""
    if reader.stdin is not None:
        with contextlib.suppress(OSError):
            reader.stdin.close()
    if reader.poll() is None:
        reader.kill()
    if reader.stdout is not None:
        reader.stdout.close()
    reader.wait()


def _ignore_stop_signals() -> None:
    """In a reader: the gateway's own process decides when to stop (a daemon finishes the file
    in hand); the reader ends when its pipe does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def read(path: Path, kind: DocumentKind, xsd: Any, limit: int) -> Iterator[Any]:
    """The records of a file, read (and validated, with ``xsd``) as they stream."""
    for element in iter_records(path, xsd, limit, kind.record_tag if xsd is not None else None):
        yield kind.read_record(element)


PERSONS_JSON, PERSONS_SENT = "persons.json", "persons.sent"
POSITIONS_JSON, POSITIONS_POSTS = "positions.json", "positions.posts"


@dataclass(frozen=True, slots=True)
class Parsed:
    """A validated inbound document and its kind; ``prepared``: work on its records that needs
    nothing but them, done where they were parsed (the look-ahead reader's, :func:`prepare`)."""

    kind: DocumentKind
    document: Any
    prepared: Mapping[str, Sequence[str]] = field(default_factory=dict)


def prepare(parsed: Parsed) -> Parsed:
    """``parsed`` with the work on its records that the flow would otherwise do in the
    gateway's own process: a person extract's persons as the store encodes them
    (:data:`PERSONS_JSON`) and the text of each that their fingerprint hashes
    (:data:`PERSONS_SENT`); a position extract's positions as the store encodes them
    (:data:`POSITIONS_JSON`) and as TIS position extracts carry them (:data:`POSITIONS_POSTS`,
    :func:`writers.post_text`). Other kinds as they are."""
    from gateway.store import codec  # noqa: PLC0415 - the reader's work only

    if parsed.kind.name == "positions":
        from gateway.xml.writers import post_text  # noqa: PLC0415 - the reader's work only

        positions = parsed.document.positions
        return Parsed(parsed.kind, parsed.document, {
            POSITIONS_JSON: tuple(codec.dumps(p) for p in positions),
            POSITIONS_POSTS: tuple(post_text(p) for p in positions),
        })
    if parsed.kind.name != "persons":
        return parsed
    from gateway.rules.persons import sent_text  # noqa: PLC0415 - the reader's work only

    persons = parsed.document.persons
    return Parsed(parsed.kind, parsed.document, {
        PERSONS_JSON: tuple(codec.dumps(p) for p in persons),
        PERSONS_SENT: tuple(sent_text(p) for p in persons),
    })


def parse(path: Path, channel: str | None, limit: int, root: Root | None = None) -> Parsed:
    """Hardened parse and XSD validation of a whole file; raises RejectedFile.

    ``channel`` is the inbox the file came from (None: any); ``limit`` bounds the bytes read;
    ``root``: the file's root element if it was read already (:func:`read_root`).
    """
    if root is None:
        root = read_root(path, limit)
    kind = BY_ROOT.get((root.namespace, root.name))
    if kind is None:
        check_well_formed(path, limit)
        raise RejectedFile.one(
            "UNKNOWN_DOCUMENT",
            f"root element {root.name} in namespace {root.namespace or '(none)'} is not a "
            "document of this interface",
            1,
        )
    if channel is not None and kind.channel != channel:
        raise RejectedFile.one(
            "WRONG_CHANNEL",
            f"a {kind.name} document belongs in inbox/{kind.channel.value}/, not "
            f"inbox/{channel}/",
        )
    xsd = schema(kind.xsd)
    try:
        try:
            records = list(read(path, kind, xsd, limit))
        except RejectedFile as invalid:
            # A record whose routing code is not plain is the record's fault, not the file's:
            # the rules refuse it with INVALID_ROUTING_CODE (issue 14) and take the others.
            schema_only = all(e.code == "SCHEMA_INVALID" for e in invalid.errors)
            if not (schema_only and kind.routing
                    and only_routing_codes(path, xsd, limit, kind.routing)):
                raise
            records = list(read(path, kind, None, limit))
    except (ValueError, KeyError, TypeError) as exc:
        # Invalid content that the streaming validator had not yet reported is a rejection; a
        # reader failing on a valid file is a bug, and is raised as one (retried, then counted).
        rejected = validation_errors(path, xsd, limit)
        if rejected is None:
            raise
        raise rejected from exc
    return Parsed(kind, kind.build(root.attributes, tuple(records)))


def streamed(path: Path, kind: DocumentKind, limit: int) -> Iterator[Any]:
    """:func:`read` with the kind's XSD: beside this process when the file is large and there
    is a core to spare (:data:`BESIDE_BYTES`), else in it. Raises as :func:`read` does."""
    if beside_worthwhile(path):
        return read_beside(path, kind, limit)
    return read(path, kind, schema(kind.xsd), limit)


def beside_worthwhile(path: Path) -> bool:
    """Whether ``path`` is large enough, and this process has a second core, to read it beside."""
    try:
        large = os.stat(path).st_size >= BESIDE_BYTES
    except OSError:
        return False  # read in process, which says why it cannot be
    return large and cores() > 1


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def read_beside(path: Path, kind: DocumentKind, limit: int) -> Iterator[Any]:
    """:func:`read` with the kind's XSD, in a second process (:func:`serve`)."""
    try:
        reader = _start("serve", str(path), kind.name, str(limit))
    except OSError as exc:  # no process to be had (a limit on processes, memory): read here
        from gateway.logs import get  # noqa: PLC0415 - the reader process never logs

        get("gateway.reading").warning("reader.not_started", file=path.name, error=str(exc))
        yield from read(path, kind, schema(kind.xsd), limit)
        return
    pipe = reader.stdout
    if pipe is None:  # for the type checker: stdout=PIPE always gives one
        raise RuntimeError("no pipe from the reader process")
    try:
        while True:
            try:
                # S301: pickles from this gateway's own reader, over a pipe only it holds; the
                # partner's text arrives inside them as strings, never as pickle opcodes
                what, value = pickle.load(pipe)  # noqa: S301
            except (EOFError, pickle.UnpicklingError, ValueError) as exc:
                code = reader.wait()
                raise TransientError(
                    f"the process reading {path.name} ended before the end of the file (exit "
                    f"status {code}): the file is tried again") from exc
            if what == _RECORDS:
                yield from value
            elif what == _END:
                return
            elif what == _INVALID:
                raise ValueError(value)
            else:
                raise RuntimeError(f"reading {path.name} failed: {value}")
    finally:
        _end(reader)


def _widen(fd: int) -> None:
    """Let the pipe hold a few windows of records (1 MiB, Linux's most for any user; 64 KiB
    by default, less than two batches): the rules take 2,000 records at once, and a reader
    held one batch ahead made them wait for the rest of every window."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or a lower limit: as it is
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def serve() -> None:
    """The reader process: ``<path> <kind> <limit>`` → pickled batches on stdout."""
    _ignore_stop_signals()
    out = sys.stdout.buffer
    try:
        path, kind, limit = sys.argv[1], BY_NAME[sys.argv[2]], int(sys.argv[3])
        batch: list[Any] = []
        try:
            for record in read(Path(path), kind, schema(kind.xsd), limit):
                batch.append(record)
                if len(batch) == BATCH:
                    pickle.dump((_RECORDS, batch), out, pickle.HIGHEST_PROTOCOL)
                    batch = []
            end = (_END, "")
        except (RejectedFile, ValueError, KeyError, TypeError) as exc:
            end = (_INVALID, str(exc))
        except Exception as exc:  # said to the gateway, which raises it
            end = (_FAILED, f"{type(exc).__name__}: {exc}")
        # the records read before an invalid part too: the stream is the one read() gives
        pickle.dump((_RECORDS, batch), out, pickle.HIGHEST_PROTOCOL)
        pickle.dump(end, out, pickle.HIGHEST_PROTOCOL)
        out.flush()
    except BrokenPipeError:  # the gateway left the stream: nobody to tell
        os._exit(1)


AHEAD_BYTES = 32 << 20
"""Files larger than this are not parsed ahead: a whole parsed document waits in memory until
its turn (a national position or person file per VPD is a few hundred KB)."""
_PARSED, _REJECTED, _SKIPPED, _CHANGED = "parsed", "rejected", "skipped", "changed"
_LENGTH = struct.Struct("<Q")  # a look-ahead reply's length, before it
PARSE_BYTES_PER_SECOND = 10 << 20
"""About how fast the gateway parses a whole file (a VPD's persons: ~7 ms for 140 KB, their
fingerprint texts and encodings ~3 ms more): how long :meth:`Ahead.take` waits for an answer
the reader is making."""
WAITING = 2
"""Files the look-ahead reader may have in hand at once; a file asked beyond them is parsed in
its turn. The gateway asks one file ahead: more waiting means the reader is behind."""


def _read_exactly(fd: int, size: int) -> bytes:
    """``size`` bytes from ``fd``, waiting for them; EOFError if the pipe ends first."""
    parts = []
    while size:
        part = os.read(fd, min(size, PIPE_BYTES))
        if not part:
            raise EOFError("the reader process ended")
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


class Ahead:
    """Whole files parsed one ahead, in a reader process, while the gateway decides the one
    before (``dit-gateway process FILE…`` on a machine with a second core; issue 13): a file
    of a VPD's positions or persons spends a third of its time being parsed.

    :meth:`ask` for a file before it is claimed; :meth:`take` when it is processed, by the
    SHA-256 of the claimed copy. The reader hashes the file before and after parsing it, and
    what it made of it is used only for a copy with that same SHA-256 and the same channel: the
    same bytes give the same document or the same rejection as :func:`parse` gives here.
    Anything else — a file changed since, a reader that failed or died, a streamed kind (read
    as it is decided instead), a file larger than :data:`AHEAD_BYTES`, a file the reader has
    not answered in time (the gateway never waits for the reader's start, and for an answer
    being made no longer than parsing the file itself would take) — is parsed here."""

    def __init__(self, limit: int, streamed: frozenset[str]) -> None:
        self.limit = limit
        self.streamed = streamed
        self._reader: subprocess.Popen[bytes] | None = None
        self._broken = False
        # ask number → the SHA-256 and size of the file it was asked with
        self._asked: dict[int, tuple[str, int]] = {}
        # ask → (sha256 read, channel, outcome, document or errors)
        self._replies: dict[int, tuple[str, str, str, Any]] = {}
        self._next = 0  # the next ask's number
        self._read = 0  # replies read so far
        self.used = 0  # answers taken: files not parsed in the gateway's own process

    def ask(self, path: Path, channel: str | None) -> None:
        """Start parsing ``path`` (as from ``channel``; None: the channel its root element
        names, as ``process`` claims a file from outside the inbox) in the reader process; not
        if the reader has :data:`WAITING` files in hand already (this one is parsed in its
        turn). Never fails: a file that cannot be read now is parsed in its turn, which says
        why; a reader that cannot be started or reached is done with."""
        if self._broken:
            return
        if self._reader is not None:
            # what it has answered, taken off the pipe: a reader never waits on a full pipe,
            # whatever is never taken (a duplicate is never parsed)
            self._collect(self._next - 1, 0.0)
            if self._broken or self._next - self._read >= WAITING:
                return
        try:
            hashed = sha256_of_regular(path, AHEAD_BYTES)  # a FIFO is never waited on
        except OSError:
            return
        if hashed is None:
            return
        size, sha = hashed
        try:
            if self._reader is None:
                self._reader = _start("serve_ahead", asks=True)
            pipe = self._reader.stdin
            if pipe is None:
                raise OSError("no pipe to the reader process")
            pickle.dump((self._next, str(path), channel, self.limit, self.streamed), pipe,
                        pickle.HIGHEST_PROTOCOL)
            pipe.flush()
        except OSError:
            self._stop()
            return
        self._asked[self._next] = (sha, size)
        self._next += 1
        for older in sorted(self._asked)[:-WAITING]:  # asked, and never taken since
            del self._asked[older]
            self._replies.pop(older, None)

    def take(self, sha256: str, channel: str, *, wait: float | None = None
             ) -> Parsed | RejectedFile | None:
        """What the reader made of the file whose copy has ``sha256`` (its document, or the
        rejection to raise), or None: parse it here. ``wait``: seconds to wait for an answer
        not yet made; by default none while the reader is starting (it has answered nothing
        yet), else about what parsing the file here would take (:data:`PARSE_BYTES_PER_SECOND`):
        the reader is then at work on it, and a little wait costs less than doing it again."""
        number = next((n for n, (sha, _size) in self._asked.items() if sha == sha256), None)
        if number is None or self._reader is None:
            return None
        if wait is None:
            wait = self._asked[number][1] / PARSE_BYTES_PER_SECOND if self._read else 0.0
        self._collect(number, wait)
        got = self._replies.pop(number, None)
        # this file and those asked before it are done with: one asked and not taken (a
        # duplicate is never parsed) never will be
        for older in [n for n in self._asked if n <= number]:
            del self._asked[older]
            self._replies.pop(older, None)
        if got is None:
            return None
        sha, asked_channel, outcome, value = got
        if sha != sha256 or asked_channel != channel:
            return None
        if outcome == _PARSED:
            name, document, prepared = value
            self.used += 1
            return Parsed(BY_NAME[name], document, prepared)
        if outcome == _REJECTED:
            self.used += 1
            return RejectedFile(value)
        return None  # skipped, changed, failed: parsed here

    def _collect(self, until: int, wait: float) -> None:
        """Read the replies to the asks up to ``until``, keeping those still wanted, waiting at
        most ``wait`` seconds for them; a reader that ended is done with."""
        deadline = time.monotonic() + wait
        while self._read <= until and self._reader is not None:
            try:
                if not self._answered(max(deadline - time.monotonic(), 0.0)):
                    return  # still parsing (or not yet started)
                answered, reply = self._receive()
            except (EOFError, pickle.UnpicklingError, ValueError, OSError, struct.error):
                self._stop()  # what it has not answered is parsed here
                return
            self._read += 1
            if answered in self._asked:
                self._replies[answered] = reply

    def _answered(self, wait: float) -> bool:
        """Whether a reply (or the end of the pipe) can be read within ``wait`` seconds."""
        poller = select.poll()
        poller.register(self._out(), select.POLLIN)
        return bool(poller.poll(wait * 1000))

    def _receive(self) -> tuple[int, tuple[str, str, str, Any]]:
        """The next reply: its length, then its pickle (read from the pipe itself, never
        through a buffer, so that :meth:`_answered` sees what is there)."""
        fd = self._out()
        (size,) = _LENGTH.unpack(_read_exactly(fd, _LENGTH.size))
        # S301: pickles from this gateway's own reader, over a pipe only it holds
        reply: tuple[int, tuple[str, str, str, Any]] = pickle.loads(  # noqa: S301
            _read_exactly(fd, size))
        return reply

    def _out(self) -> int:
        if self._reader is None or self._reader.stdout is None:
            raise OSError("no pipe from the reader process")
        return self._reader.stdout.fileno()

    def _stop(self) -> None:
        self._broken = True
        reader, self._reader = self._reader, None
        if reader is not None:
            _end(reader)

    @property
    def asked(self) -> int:
        """Files given to the reader so far."""
        return self._next

    def close(self) -> None:
        """End the reader process (it parses nothing more)."""
        self._stop()
        self._replies.clear()
        self._asked.clear()


def serve_ahead() -> None:
    """The look-ahead reader: ``(number, path, channel, limit, streamed kinds)`` on stdin, one
    ``(number, (sha256, channel, outcome, value))`` each on stdout, in order, each pickle after
    its length (:data:`_LENGTH`)."""
    _ignore_stop_signals()
    source, out = sys.stdin.buffer, sys.stdout.buffer
    try:
        while True:
            try:
                number, path, channel, limit, streamed = pickle.load(source)  # noqa: S301
            except EOFError:
                return  # the gateway is done with it
            reply = pickle.dumps((number, _parse_ahead(Path(path), channel, limit, streamed)),
                                 pickle.HIGHEST_PROTOCOL)
            out.write(_LENGTH.pack(len(reply)))
            out.write(reply)
            out.flush()
    except BrokenPipeError:
        os._exit(1)


def _parse_ahead(path: Path, channel: str | None, limit: int, streamed: frozenset[str]
                 ) -> tuple[str, str, str, Any]:
    try:
        hashed = sha256_of_regular(path)
        if hashed is None:
            return "", channel or "", _SKIPPED, None
        sha = hashed[1]
        root = read_root(path, limit)
        kind = BY_ROOT.get((root.namespace, root.name))
        if channel is None:  # the one ``process`` claims it from (cli._channel_of)
            channel = kind.channel.value if kind is not None else UNKNOWN_CHANNEL
        if kind is not None and kind.name in streamed:
            return sha, channel, _SKIPPED, None
        try:
            parsed = prepare(parse(path, channel, limit, root))
            outcome: tuple[str, Any] = (
                _PARSED, (parsed.kind.name, parsed.document, parsed.prepared))
        except RejectedFile as rejected:
            outcome = (_REJECTED, rejected.errors)
        if sha256_of(path) != sha:
            return sha, channel, _CHANGED, None
        return sha, channel, *outcome
    except Exception:  # anything else: the gateway parses the file itself
        return "", channel or "", _SKIPPED, None
