"""``[[expect]]``: the file that never came (spec 10).

Each expectation names a channel and optionally a VPD or an SFTP partner, and how often a file
should come. When none has come for longer than that (counted from the last one in the ledger,
or from the daemon's start when there never was one), the expectation is *overdue*: one log
event ``expected_file_missing`` per lapse (not per check), a gauge, a line on the status page.
When a file comes, one ``expected_file_arrived`` and the lapse is over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway import logs
from gateway.config import Expect
from gateway.store.operations import OperationsLedger

log = logs.get("gateway.expect")


@dataclass(frozen=True, slots=True)
class Overdue:
    """An expectation that is overdue: what, since when, and how often it should come."""

    key: str
    last: str | None  # when the last such file came (None: never, since the daemon started)
    every_hours: float


class ExpectWatch:
    """Checks the expectations against the ledger; remembers which are lapsed."""

    def __init__(
        self, expects: Sequence[Expect], ledger: OperationsLedger, started: datetime
    ) -> None:
        self.expects = tuple(expects)
        self.ledger = ledger
        self.started = started
        self.overdue: list[Overdue] = []
        self.checks = 0  # how many times the expectations were checked (a metric)
        self._lapsed: set[str] = set()

    @property
    def interval(self) -> float:
        """Seconds between checks: 5, or a quarter of the shortest period if that is shorter."""
        shortest = min((e.every_hours for e in self.expects), default=1.0) * 3600
        return min(5.0, shortest / 4)

    def check(self, now: datetime | None = None) -> list[Overdue]:
        """Evaluate every expectation now; log each lapse once, and each end of one."""
        now = now or datetime.now(UTC)
        overdue = []
        for expect in self.expects:
            last = (self.ledger.last_take(expect.partner) if expect.partner
                    else self.ledger.last_arrival(expect.channel, expect.vpd))
            since = datetime.fromisoformat(last) if last else self.started
            if now - since > timedelta(hours=expect.every_hours):
                overdue.append(Overdue(expect.key, last, expect.every_hours))
                if expect.key not in self._lapsed:
                    self._lapsed.add(expect.key)
                    log.warning("expected_file_missing", expected=expect.key,
                                every_hours=expect.every_hours, since=last or "never")
            elif expect.key in self._lapsed:
                self._lapsed.discard(expect.key)
                log.info("expected_file_arrived", expected=expect.key, since=last)
        self.overdue = overdue
        self.checks += 1
        return overdue
