"""What operating the gateway reads and records (spec 10): per-file record counts, the facts the
metrics and the status page show, the rotation grids written. Portable SQL through
:meth:`SqlStore.execute` (tables: migration ``0006_operations.sql``). Ids and codes only: nothing
here returns personal data, except :meth:`OperationsLedger.grid_rows`, which is for the MSO's
grid and never reaches a log or a page.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.models import Outcome, SentApplicant
from gateway.store import codec
from gateway.store.interfaces import Transactional


@dataclass(frozen=True, slots=True)
class RecentFile:
    """One file of the ledger as the status page shows it: ids and codes."""

    id: int
    name: str
    channel: str
    status: str
    code: str | None
    received: int
    rejected: int
    finished_at: str | None
    ack_name: str


class OperationsLedger:
    """Reads and writes of section 10 over one store."""

    def __init__(self, store: Transactional) -> None:
        self.store = store

    # --- written with a file (inside its transaction) -------------------------------------------

    def record(self, rid: int, flow: str, vpd: str | None, outcomes: Iterable[Outcome]) -> None:
        """The file's kind and VPD, and its records counted by result, reason and VPD."""
        self.record_counts(rid, flow, vpd, Counter(
            (o.result.value, o.reason or "", o.vpd or "") for o in outcomes))

    def record_counts(self, rid: int, flow: str, vpd: str | None,
                      counts: Mapping[tuple[str, str, str], int]) -> None:
        """:meth:`record` from the counts of (result, reason, VPD) of the file's records."""
        self.store.execute("UPDATE receipts SET kind = ?, vpd = ? WHERE id = ?", (flow, vpd, rid))
        self.store.executemany(
            "INSERT INTO outcome_counts (receipt_id, flow, result, reason, vpd, count)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(rid, flow, result, reason, v, n) for (result, reason, v), n in counts.items()],
        )

    # --- read by /metrics and the status page ---------------------------------------------------

    def files_by_status(self) -> list[tuple[str, str, int]]:
        """(channel, status, files) over the ledger (open claims as ``claimed``)."""
        rows = self.store.execute(
            "SELECT channel, status, COUNT(*) FROM receipts GROUP BY channel, status"
        )
        return [(str(c), str(s), int(n)) for c, s, n in rows]

    def records(self) -> list[tuple[str, str, str, str, int]]:
        """(flow, result, reason, vpd, records) over every file."""
        rows = self.store.execute(
            "SELECT flow, result, reason, vpd, SUM(count) FROM outcome_counts"
            " GROUP BY flow, result, reason, vpd"
        )
        return [(str(f), str(r), str(c), str(v), int(n)) for f, r, c, v, n in rows]

    def open_by_channel(self) -> dict[str, int]:
        """Files claimed and not yet finished, by channel."""
        rows = self.store.execute(
            "SELECT channel, COUNT(*) FROM receipts WHERE closed = 0 GROUP BY channel"
        )
        return {str(c): int(n) for c, n in rows}

    def recent(self, limit: int = 50) -> list[RecentFile]:
        """The last ``limit`` files finished or in hand, newest first."""
        rows = self.store.execute(
            "SELECT id, name, channel, status, code, totals, finished_at, ack_name FROM receipts"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        found = []
        for rid, name, channel, status, code, totals, finished, ack in rows:
            counts = json.loads(totals) if totals else {}
            found.append(RecentFile(
                int(rid), str(name), str(channel), str(status), code,
                int(counts.get("received", 0)), int(counts.get("rejected", 0)), finished,
                str(ack),
            ))
        return found

    def ack_name(self, rid: int) -> str | None:
        """The acknowledgement's file name of receipt ``rid``."""
        rows = self.store.execute("SELECT ack_name FROM receipts WHERE id = ?", (rid,))
        return str(rows[0][0]) if rows else None

    def file_rejections(self) -> list[tuple[str, str, int]]:
        """(channel, code, files) of files rejected whole."""
        rows = self.store.execute(
            "SELECT channel, code, COUNT(*) FROM receipts WHERE status = 'rejected'"
            " GROUP BY channel, code ORDER BY channel, code"
        )
        return [(str(c), str(k or ""), int(n)) for c, k, n in rows]

    def last_arrival(self, channel: str, vpd: str = "") -> str | None:
        """When the last file of ``channel`` (and ``vpd``) was processed, or None."""
        sql = ("SELECT MAX(finished_at) FROM receipts WHERE channel = ? AND status IN"
               " ('processed', 'duplicate')")
        params: tuple[Any, ...] = (channel,)
        if vpd:
            sql += " AND vpd = ?"
            params += (vpd,)
        rows = self.store.execute(sql, params)
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def last_take(self, partner: str) -> str | None:
        """When a file was last taken from an SFTP partner, or None."""
        rows = self.store.execute(
            "SELECT MAX(taken_at) FROM sftp_takes WHERE partner = ?", (partner,)
        )
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def ping(self) -> None:
        """A round trip to the store (raises when it cannot be reached)."""
        self.store.execute("SELECT 1")

    # --- the rotation grid ----------------------------------------------------------------------

    def applicants_of(self, vpd: str) -> list[SentApplicant]:
        """Every placement sent to ``vpd`` and not withdrawn (personal data: for the grid only)."""
        rows = self.store.execute(
            "SELECT data FROM applicants WHERE vpd = ? AND withdrawn = 0 ORDER BY placement_id",
            (vpd,),
        )
        return [codec.loads(SentApplicant, r[0]) for r in rows]

    def grid_fingerprint(self, vpd: str) -> str | None:
        """The fingerprint of the grid last written for ``vpd``."""
        rows = self.store.execute(
            "SELECT fingerprint FROM rotation_grids WHERE vpd = ?", (vpd,)
        )
        return str(rows[0][0]) if rows else None

    def grid_written(self, vpd: str, fingerprint: str, day: str) -> None:
        """Record the grid written for ``vpd`` (inside the job's transaction)."""
        self.store.execute(
            "INSERT INTO rotation_grids (vpd, fingerprint, written_on) VALUES (?, ?, ?)"
            " ON CONFLICT (vpd) DO UPDATE SET fingerprint = excluded.fingerprint,"
            " written_on = excluded.written_on",
            (vpd, fingerprint, day),
        )
