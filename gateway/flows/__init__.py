"""Flows: for one parsed document, read the state the rules need, call the pure rules, and say
what to write and what to store. No flow commits anything: the pipeline does, in one transaction.

A streamed flow (:data:`Stream`: placements, checks) does the same a window of records at a time
as the file is read, inside the transaction the pipeline holds open for the file: it appends
each window's outputs to their temporary files (:class:`Sink`) and writes its state changes
into the store, so that nothing of the file is held until the end (issue 13).
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, Generic, TypeVar

from gateway import faults
from gateway.config import Settings
from gateway.errors import StorageUnavailable
from gateway.models import Notice, Outcome, Result, Totals
from gateway.paths import output_path
from gateway.store.base import Receipt
from gateway.store.interfaces import Store, Tallies
from gateway.transport import files
from gateway.transport.files import write_temp
from gateway.xml import writers


@dataclass(frozen=True, slots=True)
class Output:
    """A file to publish: its final path and how to write its bytes."""

    path: Path
    write: Callable[[BinaryIO], None]


@dataclass(slots=True)
class Plan:
    """What one file amounts to: outcomes, outputs, and the state changes to commit."""

    outcomes: list[Outcome] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    changes: list[Callable[[Store], None]] = field(default_factory=list)

    def apply(self, store: Store) -> None:
        """Make the state changes (the caller holds the transaction)."""
        for change in self.changes:
            change(store)


@dataclass(frozen=True, slots=True)
class Context:
    """What a flow may know besides the document: settings, state, time, the file."""

    settings: Settings
    store: Store
    as_of: date
    now: str
    receipt: Receipt | None = None
    # work on the document's records done where it was parsed (reading.Parsed.prepared)
    prepared: Mapping[str, Sequence[str]] = field(default_factory=dict, compare=False,
                                                  repr=False)
    # the outputs' paths as checked (:meth:`output`: a window at a time asks for the same ones)
    _paths: dict[tuple[str, str, str], Path] = field(default_factory=dict, compare=False,
                                                     repr=False)

    @property
    def sha12(self) -> str:
        """The first 12 hex digits of the input's SHA-256."""
        return self.receipt.sha256[:12] if self.receipt else "scheduled"

    @property
    def at(self) -> str:
        """The run's time, from which R6 counts hours: now when as-of is today (UTC), else
        as-of at now's time of day (so a replayed or test day keeps hours between runs)."""
        now = datetime.fromisoformat(self.now)
        if now.date() == self.as_of:
            return self.now
        return datetime.combine(self.as_of, now.timetz()).isoformat(timespec="seconds")

    def output(self, folder: str, code: str, name: str) -> Path:
        """``outbox/<folder>/<code>/<name>``, the code checked plain (:func:`output_path`)."""
        path = self._paths.get((folder, code, name))
        if path is None:
            path = output_path(self.settings.paths.outbox, folder, code, name=name)
            if len(self._paths) < 65536:
                self._paths[(folder, code, name)] = path
        return path


def notification_outputs(ctx: Context, notices: list[Notice], name: str) -> list[Output]:
    """Notification XML + CSV per VPD, named ``<name>.xml`` / ``.csv`` in the VPD's reports."""
    by_vpd: dict[str, list[Notice]] = {}
    for n in notices:
        by_vpd.setdefault(n.vpd, []).append(n)
    source = ctx.receipt.name if ctx.receipt else None
    sha = ctx.receipt.sha256 if ctx.receipt else None
    outputs = []
    for vpd, rows in sorted(by_vpd.items()):

        def xml(fh: BinaryIO, vpd: str = vpd, rows: list[Notice] = rows) -> None:
            writers.write_notifications(fh, vpd, rows, ctx.now, source, sha)

        def csv(fh: BinaryIO, rows: list[Notice] = rows) -> None:
            writers.write_notifications_csv(fh, rows)

        outputs.append(Output(ctx.output("reports", vpd, f"{name}.xml"), xml))
        outputs.append(Output(ctx.output("reports", vpd, f"{name}.csv"), csv))
    return outputs


T = TypeVar("T")


class Staging:
    """Outputs written a piece at a time while a file is decided, each under its temporary
    name (step 1 of the commit protocol, :mod:`gateway.pipeline`, done as the records come):
    nothing of a national file is held until the end (issue 13). The pieces of a few windows
    are held together (``limit`` bytes in all) and then appended to their files, each file
    opened and closed again, so that a few hundred outputs hold no descriptor between windows
    and are not opened for every window.
    """

    LIMIT = 8 << 20  # bytes of pieces held before they are appended to their files

    def __init__(self, tag: str, limit: int | None = None) -> None:
        self.tag = tag
        self.limit = self.LIMIT if limit is None else limit
        self._tails: dict[Path, tuple[Path, bytes]] = {}  # final → (temp, tail), in order
        self._begun: set[Path] = set()  # finals whose temporary file exists
        self._held: dict[Path, list[bytes]] = {}  # final → pieces not yet appended
        self._size = 0

    def append(self, final: Path, parts: writers.Parts[T], records: Sequence[T]) -> None:
        """Append ``records`` to the output ``final`` (begun with ``parts.head`` first)."""
        piece = io.BytesIO()
        if final not in self._tails:
            self._tails[final] = (files.temp_path_for(final, self.tag), parts.tail)
            piece.write(parts.head)
        parts.body(piece, records)
        data = piece.getvalue()
        self._held.setdefault(final, []).append(data)
        self._size += len(data)
        if self._size >= self.limit:
            self.flush()

    def write(self, final: Path, write: Callable[[BinaryIO], None]) -> None:
        """Write the whole output ``final`` in one piece, straight to its file (an
        acknowledgement or a workbook is not held in memory)."""
        temp = files.temp_path_for(final, self.tag)
        self._tails[final] = (temp, b"")
        self._held.pop(final, None)
        self._begun.add(final)
        files.append_temp(temp, write, create=True)

    def flush(self) -> None:
        """Append the pieces held to their files."""
        for final, pieces in self._held.items():
            self._append(final, pieces)
        self._held.clear()
        self._size = 0
        faults.crashpoint("staging-flushed")

    def _append(self, final: Path, pieces: list[bytes], *, syncs: files.Syncs | None = None
                ) -> tuple[int, int]:
        temp = self._tails[final][0]
        new = final not in self._begun
        self._begun.add(final)
        return files.append_temp(temp, partial(_put_all, pieces), create=new, syncs=syncs)

    def finish(self) -> list[files.Written]:
        """End every output with its tail and fsync it (several at once, :class:`files.Syncs`):
        (temp, final, inode, size) each."""
        written: list[files.Written] = []
        with files.Syncs() as syncs:
            for final, (temp, tail) in self._tails.items():
                pieces = self._held.pop(final, [])
                ino, size = self._append(final, [*pieces, tail], syncs=syncs)
                written.append((temp, final, ino, size))
            syncs.wait()
        self._size = 0
        return written

    def discard(self) -> None:
        """Remove every temporary file begun, and forget the pieces held."""
        self._held.clear()
        self._size = 0
        for final in self._begun:
            files.discard(self._tails[final][0])


def _put_all(pieces: list[bytes], fh: BinaryIO) -> None:
    for piece in pieces:
        fh.write(piece)


class Sink:
    """Where a streamed flow puts what it decides, window by window: outputs (``staging``),
    and outcomes, counted and (``spool``) appended to the acknowledgement's body."""

    def __init__(self, staging: Staging, spool: BinaryIO | None = None) -> None:
        self.staging = staging
        self.spool = spool
        self.counts: Counter[tuple[str, str, str]] = Counter()  # (result, reason, vpd)

    def append(self, final: Path, parts: writers.Parts[T], records: Sequence[T]) -> None:
        """Append records to an output (:meth:`Staging.append`)."""
        self.staging.append(final, parts, records)

    def outcomes(self, outcomes: Sequence[Outcome]) -> None:
        """Acknowledge records."""
        self.counts.update((o.result.value, o.reason or "", o.vpd or "") for o in outcomes)
        if self.spool is None:
            return
        try:
            writers.outcome_rows(self.spool, outcomes)
        except OSError as exc:
            raise StorageUnavailable(
                f"cannot write the acknowledgement: {exc.strerror or exc}") from exc

    @property
    def totals(self) -> Totals:
        """The acknowledgement's totals."""
        by_result = Counter[str]()
        for (result, _reason, _vpd), n in self.counts.items():
            by_result[result] += n
        return Totals(**{r.value: by_result[r.value] for r in Result})


class NoticeParts:
    """The notification outputs of a streamed file: XML and CSV per VPD (as
    :func:`notification_outputs` writes them)."""

    def __init__(self, ctx: Context, name: str) -> None:
        self.ctx = ctx
        self.name = name
        self.source = ctx.receipt.name if ctx.receipt else None
        self.sha = ctx.receipt.sha256 if ctx.receipt else None
        self.parts: dict[str, writers.Parts[Notice]] = {}
        self.csv = writers.notifications_csv_parts()

    def append(self, sink: Sink, notices: Sequence[Notice]) -> None:
        """Append notices to their VPDs' outputs."""
        by_vpd: dict[str, list[Notice]] = {}
        for n in notices:
            by_vpd.setdefault(n.vpd, []).append(n)
        for vpd, rows in sorted(by_vpd.items()):
            if vpd not in self.parts:
                self.parts[vpd] = writers.notifications_parts(vpd, self.ctx.now, self.source,
                                                              self.sha)
            sink.append(self.ctx.output("reports", vpd, f"{self.name}.xml"), self.parts[vpd],
                        rows)
            sink.append(self.ctx.output("reports", vpd, f"{self.name}.csv"), self.csv, rows)


Stream = Callable[[Iterable[Any], Context, Sink], None]
"""A flow that decides a file window by window as its records are read: writes its outputs
through the sink, and its state changes into the store (the caller holds the transaction)."""


def windows(records: Iterable[T], size: int) -> Iterator[list[T]]:
    """``records`` in lists of ``size`` (the last shorter), read as they are needed."""
    it = iter(records)
    while window := list(islice(it, size)):
        yield window


K = TypeVar("K", bound=Hashable)


class Held:
    """How many keys the tallies of one file (:class:`Tally`) may keep in memory together."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.tallies: list[Tally[Any]] = []

    def over(self) -> bool:
        """Whether the tallies keep more keys than ``limit``."""
        return sum(tally.kept for tally in self.tallies) > self.limit


class Tally(Generic[K]):
    """A count per key that a file decided a window at a time keeps across its windows (A9's
    placement ids, A13's records per position, C3's transfers). Between :meth:`read` (the keys
    the next window will ask) and :meth:`write` (after it), it answers as a dict of counts
    (``get``, ``[]=``) and as a set (``in``, ``add``).

    Given ``held``, it keeps every count in memory, and asks and writes nothing, while the
    file's tallies together keep at most ``held.limit`` keys. At the first :meth:`write` that
    finds more, all of them move into the store for the file's transaction
    (:class:`~gateway.store.interfaces.Tallies`); from then on each holds only the keys read
    for the window, and those set since, so that memory does not grow with the file, and a
    key not read is asked of the store. Without ``held``: the store from the start.

    Without a store it is a plain dict that never forgets (a file decided whole)."""

    def __init__(self, store: Tallies | None, name: str,
                 pair: Callable[[K], tuple[str, str]], held: Held | None = None) -> None:
        self.store = store
        self.name = name
        self._pair = pair
        self._held = held
        self._whole = store is None or held is not None  # _known has every count so far
        self._known: dict[K, int] = {}  # counts read or set; a key read without one: 0
        self._changed: dict[K, int] = {}
        if held is not None and store is not None:
            held.tallies.append(self)

    @property
    def in_store(self) -> bool:
        """Whether the counts have moved into the store."""
        return not self._whole

    @property
    def kept(self) -> int:
        """The keys it keeps in memory for the whole file (none once in the store)."""
        return len(self._known) if self._whole else 0

    def read(self, keys: Iterable[K]) -> None:
        """Let the last window's counts go and read those of ``keys`` (held: nothing to do)."""
        if self._whole or self.store is None:
            return
        asked = {self._pair(key): key for key in keys}
        found = self.store.tallies(self.name, asked)
        self._known = {key: found.get(pair, 0) for pair, key in asked.items()}
        self._changed = {}

    def write(self) -> None:
        """Write the counts set since :meth:`read` into the store; or, held, move every tally
        of the file there once they keep too many keys."""
        if self.store is None:
            return
        if self._whole:
            if self._held is not None and self._held.over():
                for tally in self._held.tallies:
                    tally._move()
            return
        if self._changed:
            self.store.set_tallies(self.name, {self._pair(k): n for k, n in self._changed.items()})
        self._changed = {}

    def _move(self) -> None:
        """Every count kept in memory into the store, 2,000 at a time (not a second copy of
        them all at once, at the peak); from now on, a window at a time."""
        if not self._whole or self.store is None:
            return
        counts = iter(self._known.items())
        while chunk := list(islice(counts, 2000)):
            self.store.set_tallies(self.name, {self._pair(k): n for k, n in chunk if n})
        self._whole = False
        self._known = {}
        self._changed = {}

    def get(self, key: K, default: int = 0) -> int:
        """The count of ``key``."""
        n = self._known.get(key)
        if n is None:
            n = 0
            if not self._whole and self.store is not None:
                n = self.store.tallies(self.name, [self._pair(key)]).get(self._pair(key), 0)
                self._known[key] = n
        return n or default

    def __setitem__(self, key: K, n: int) -> None:
        self._known[key] = n
        if not self._whole:
            self._changed[key] = n

    def __contains__(self, key: object) -> bool:
        return self.get(key) > 0  # type: ignore[arg-type]

    def add(self, key: K) -> None:
        """Count ``key`` as shown (a set's ``add``)."""
        self[key] = max(self.get(key), 1)


# Keys the tallies of a streamed placement file keep in memory together before they move into
# the store: a national file's fit (60,000 placement ids for A9 and ~42,000 positions for
# A13), and a larger file's peak is no higher than a national one's (a check file's C3 has
# its own, flows.checks.HELD).
HELD = 110_000


def one_key(key: str) -> tuple[str, str]:
    """A :class:`Tally`'s pair for a key that is one string."""
    return ("", key)


def two_keys(key: tuple[str, str]) -> tuple[str, str]:
    """A :class:`Tally`'s pair for a key that is two strings."""
    return key


R = TypeVar("R")  # a record of a file
V = TypeVar("V")  # the view of the store the rules ask


class Windowed(Generic[R, V]):
    """The rules' view of the store, read a window of records at a time (issue 13): as the
    rules go through the file (:meth:`over`), the view read for the next ``size`` records
    replaces the last one's, so what is held of the store does not grow with the file; outside
    a window, ``idle`` answers. The answers are the same whatever the window, as long as the
    view read for some records answers every question (asking the store about the rest) and the
    rules keep what the file itself changed."""

    def __init__(self, read: Callable[[Sequence[R]], V], idle: V, size: int) -> None:
        self._read = read
        self._idle = idle
        self.size = size
        self.current = idle

    def over(self, records: Sequence[R]) -> Iterator[R]:
        """``records`` in order, the view following them window by window."""
        for start in range(0, len(records), self.size):
            window = records[start:start + self.size]
            self.current = self._idle  # let the last window's state go before reading the next
            self.current = self._read(window)
            yield from window
        self.current = self._idle


Flow = Callable[[Any, Context], Plan]

__all__ = [
    "Context",
    "Flow",
    "NoticeParts",
    "Output",
    "Plan",
    "Sink",
    "Staging",
    "Stream",
    "Tally",
    "Windowed",
    "notification_outputs",
    "windows",
    "write_temp",
]
