"""Flows: for one parsed document, read the state the rules need, call the pure rules, and say
what to write and what to store. No flow commits anything: the pipeline does, in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, Generic, TypeVar

from gateway.config import Settings
from gateway.models import Notice, Outcome
from gateway.paths import output_path
from gateway.store.base import Receipt
from gateway.store.interfaces import Store
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
        return output_path(self.settings.paths.outbox, folder, code, name=name)


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

__all__ = ["Context", "Flow", "Output", "Plan", "Windowed", "notification_outputs", "write_temp"]
