"""Flows: for one parsed document, read the state the rules need, call the pure rules, and say
what to write and what to store. No flow commits anything: the pipeline does, in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO

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


Flow = Callable[[Any, Context], Plan]

__all__ = ["Context", "Flow", "Output", "Plan", "notification_outputs", "write_temp"]
