"""The SFTP exchange's ledgers: files taken from partners, outputs delivered to them, and each
partner's connection state. Portable SQL through :meth:`SqlStore.execute` (tables: migration
``0003_sftp.sql``); safe to use from one thread per partner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.store.interfaces import Transactional

FETCHED, PUBLISHED, DONE = "fetched", "published", "done"
SENDING, SENT = "sending", "sent"

_SELECT_TAKES = (
    "SELECT id, partner, remote_name, size, mtime, sha256, temp_path, local_path, state"
    " FROM sftp_takes"
)


@dataclass(frozen=True, slots=True)
class Take:
    """One remote file taken (or being taken) from a partner."""

    id: int
    partner: str
    remote_name: str
    size: int
    mtime: int
    sha256: str
    temp_path: str
    local_path: str
    state: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """One output uploaded whole under ``remote_temp`` and perhaps not yet renamed."""

    partner: str
    path: str
    sha256: str
    remote_temp: str
    remote_path: str
    bytes: int


@dataclass(frozen=True, slots=True)
class PartnerState:
    """What ``status`` shows of a partner."""

    name: str
    state: str
    last_success: str | None
    last_error: str | None
    changed_at: str
    taken: int
    delivered: int


class ExchangeLedger:
    """Queries of the SFTP exchange, over any store (:class:`Transactional`)."""

    def __init__(self, store: Transactional) -> None:
        self.store = store

    # --- takes ---------------------------------------------------------------------------------

    def open_takes(self, partner: str) -> list[Take]:
        """Takes not yet done (a crash or a lost connection interrupted them), oldest first."""
        rows = self.store.execute(
            _SELECT_TAKES + " WHERE partner = ? AND state <> ? ORDER BY id",
            (partner, DONE),
        )
        return [_take(r) for r in rows]

    def open_take(self, partner: str, remote_name: str, size: int, mtime: int) -> Take | None:
        """The unfinished take of exactly this remote file (same name, size and mtime), if any."""
        rows = self.store.execute(
            _SELECT_TAKES + " WHERE partner = ? AND remote_name = ? AND size = ? AND mtime = ?"
            " AND state <> ? ORDER BY id",
            (partner, remote_name, size, mtime, DONE),
        )
        return _take(rows[0]) if rows else None

    def record_fetched(
        self,
        partner: str,
        remote_name: str,
        *,
        size: int,
        mtime: int,
        sha256: str,
        temp_path: str,
        local_path: str,
        at: str,
    ) -> Take:
        """A remote file is downloaded whole and fsynced under ``temp_path``."""
        with self.store.transaction():
            self.store.execute(
                "INSERT INTO sftp_takes (partner, remote_name, size, mtime, sha256, temp_path,"
                " local_path, state, taken_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (partner, remote_name, size, mtime, sha256, temp_path, local_path, FETCHED, at),
            )
            rows = self.store.execute(
                _SELECT_TAKES + " WHERE partner = ? AND temp_path = ? AND state = ?"
                " ORDER BY id DESC",
                (partner, temp_path, FETCHED),
            )
        return _take(rows[0])

    def mark_published(self, take_id: int, local_path: str) -> None:
        """The download is in the local inbox under ``local_path``."""
        self.store.execute(
            "UPDATE sftp_takes SET state = ?, local_path = ? WHERE id = ?",
            (PUBLISHED, local_path, take_id),
        )

    def mark_done(self, take_id: int, at: str) -> None:
        """The remote file has been moved to ``remote_done`` or deleted (or was gone)."""
        self.store.execute(
            "UPDATE sftp_takes SET state = ?, done_at = ? WHERE id = ?", (DONE, at, take_id)
        )

    def takes(self, partner: str) -> list[Take]:
        """Every take of a partner, oldest first (for tests and audits)."""
        rows = self.store.execute(
            _SELECT_TAKES + " WHERE partner = ? ORDER BY id", (partner,)
        )
        return [_take(r) for r in rows]

    # --- deliveries ----------------------------------------------------------------------------

    def delivered(self, partner: str, path: str, sha256: str) -> bool:
        """Whether this content of this output reached the partner (or is about to)."""
        rows = self.store.execute(
            "SELECT 1 FROM sftp_deliveries WHERE partner = ? AND path = ? AND sha256 = ?",
            (partner, path, sha256),
        )
        return bool(rows)

    def sent(self, partner: str, path: str, sha256: str) -> bool:
        """Whether this content of this output is on the partner's server under its name (not
        merely uploaded under a temporary one)."""
        rows = self.store.execute(
            "SELECT 1 FROM sftp_deliveries WHERE partner = ? AND path = ? AND sha256 = ?"
            " AND state = ?",
            (partner, path, sha256, SENT),
        )
        return bool(rows)

    def record_sending(self, delivery: Delivery, at: str) -> None:
        """The output is on the server whole, under its temporary name."""
        self.store.execute(
            "INSERT INTO sftp_deliveries (partner, path, sha256, remote_temp, remote_path,"
            " bytes, state, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (delivery.partner, delivery.path, delivery.sha256, delivery.remote_temp,
             delivery.remote_path, delivery.bytes, SENDING, at),
        )  # fmt: skip

    def mark_sent(self, delivery: Delivery, remote_path: str, at: str) -> None:
        """The output has its final name on the server."""
        self.store.execute(
            "UPDATE sftp_deliveries SET state = ?, remote_path = ?, sent_at = ?"
            " WHERE partner = ? AND path = ? AND sha256 = ?",
            (SENT, remote_path, at, delivery.partner, delivery.path, delivery.sha256),
        )

    def sending(self, partner: str) -> list[Delivery]:
        """Uploads recorded whole but perhaps not yet renamed on the server."""
        rows = self.store.execute(
            "SELECT partner, path, sha256, remote_temp, remote_path, bytes FROM sftp_deliveries"
            " WHERE partner = ? AND state = ? ORDER BY sent_at, path",
            (partner, SENDING),
        )
        return [
            Delivery(str(a), str(b), str(c), str(d), str(e), int(f)) for a, b, c, d, e, f in rows
        ]

    def deliveries(self, partner: str) -> list[tuple[str, str, str, str]]:
        """(path, sha256, remote path, state) of every delivery to a partner."""
        rows = self.store.execute(
            "SELECT path, sha256, remote_path, state FROM sftp_deliveries WHERE partner = ?"
            " ORDER BY path, sent_at",
            (partner,),
        )
        return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]

    # --- partner state -------------------------------------------------------------------------

    def set_state(
        self, partner: str, state: str, at: str, *, error: str | None = None,
        success: bool = False,
    ) -> None:
        """Record a partner's connection state; ``success`` also sets its last success."""
        with self.store.transaction():
            self.store.execute(
                "INSERT INTO partners (name, state, changed_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO NOTHING",
                (partner, state, at),
            )
            self.store.execute(
                "UPDATE partners SET state = ?, last_error = ?, changed_at = ? WHERE name = ?",
                (state, error, at, partner),
            )
            if success:
                self.store.execute(
                    "UPDATE partners SET last_success = ? WHERE name = ?", (at, partner)
                )

    def partners(self) -> list[PartnerState]:
        """Every partner that has run, with its counts of takes and deliveries."""
        rows = self.store.execute(
            "SELECT p.name, p.state, p.last_success, p.last_error, p.changed_at,"
            " (SELECT COUNT(*) FROM sftp_takes t WHERE t.partner = p.name AND t.state = ?),"
            " (SELECT COUNT(*) FROM sftp_deliveries d WHERE d.partner = p.name AND d.state = ?)"
            " FROM partners p ORDER BY p.name",
            (DONE, SENT),
        )
        return [
            PartnerState(str(n), str(s), _opt(ok), _opt(err), str(at), int(t), int(d))
            for n, s, ok, err, at, t, d in rows
        ]


def _take(row: tuple[Any, ...]) -> Take:
    i, partner, name, size, mtime, sha, temp, local, state = row
    return Take(
        int(i), str(partner), str(name), int(size), int(mtime), str(sha), str(temp), str(local),
        str(state),
    )  # fmt: skip


def _opt(value: object) -> str | None:
    return None if value is None else str(value)
