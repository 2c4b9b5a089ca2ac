"""The state store: a narrow interface over portable SQL.

:class:`SqlStore` holds every query, written in the SQL that SQLite and PostgreSQL share, with
``?`` placeholders. An implementation supplies connections and transactions only. Stores are
context managers; all state is keyed by VPD.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from gateway.errors import ClaimLost
from gateway.models import (
    Awaiting,
    Kept,
    LoadFile,
    LoadRecord,
    Occupant,
    Person,
    PersonMatch,
    Placement,
    Position,
    Post,
    SentApplicant,
    quick_init,
    shared,
)
from gateway.store import codec

T = TypeVar("T")
K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Receipt:
    """One inbound file as the ledger knows it."""

    id: int
    name: str
    channel: str
    sha256: str
    processing_path: str
    ack_name: str
    status: str
    attempts: int
    claimed_at: str
    original_name: str = ""
    owner: str | None = None

    @property
    def stem(self) -> str:
        """The input's name without its extension(s) — the root of every output name."""
        return stem_of(self.name)

    @property
    def sent_name(self) -> str:
        """The file's name as the partner sent it (the safe name for files from before 0.2)."""
        return self.original_name or self.name


@dataclass(frozen=True, slots=True)
class Held:
    """An open receipt with what recovery needs to decide whether its owner is gone."""

    receipt: Receipt
    lease_until: float | None
    source_path: str | None
    source_ino: int | None


@dataclass(frozen=True, slots=True)
class PendingOutput:
    """An output committed with its file but perhaps not yet renamed into place."""

    receipt_id: int
    temp: Path
    final: Path
    ino: int | None
    size: int | None


def stem_of(name: str) -> str:
    """A file name without ``.xml`` / ``.gz`` (``a.xml.gz`` → ``a``)."""
    for suffix in (".gz", ".xml"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or "file"


_RECEIPT_COLUMNS = (
    "id, name, channel, sha256, processing_path, ack_name, status, attempts, claimed_at,"
    " COALESCE(original_name, ''), owner"
)
CLAIMING, CLAIMED = "claiming", "claimed"
_REGISTER_COLUMNS = "data, last_action, esr_state, load_file, load_record"
# R4: a create ESR failed made no applicant, so it occupies no position (A7).
_NOT_FAILED_CREATE = "NOT (esr_state = 'failed' AND COALESCE(last_action, '') = 'create')"


@quick_init
@dataclass(frozen=True, slots=True)
class _Period:
    start: date
    end: date


@quick_init
@dataclass(frozen=True, slots=True)
class _Occupying:
    """The part of a register row that occupancy needs: decoding only these fields of its
    JSON skips the rest (the trainee, the address) unbuilt."""

    placement_id: str
    tis_person_id: str
    placement: _Period


def _registered(
    data: str, last_action: str | None, esr_state: str, load_file: str | None,
    load_record: int | None,
) -> SentApplicant:
    """A register row: the content as sent, with what ESR made of it (kept in columns)."""
    row = codec.loads(SentApplicant, data)
    # Built anew rather than dataclasses.replace, which walks the fields generically (the
    # re-send reads 60,000 of these).
    return SentApplicant(
        placement_id=row.placement_id,
        vpd=row.vpd,
        tis_person_id=row.tis_person_id,
        position_number=row.position_number,
        employer_role=row.employer_role,
        placement=row.placement,
        existing_esr_person_id=row.existing_esr_person_id,
        withdrawn=row.withdrawn,
        last_action=last_action,
        esr_state=esr_state,
        load_file=load_file,
        load_record=None if load_record is None else int(load_record),
    )


class SqlStore:
    """Every query of the gateway's state, shared by the SQLite and PostgreSQL stores."""

    single_node = True  # one machine's store (SQLite); PostgreSQL's is shared by nodes

    # --- provided by an implementation ---------------------------------------------------------

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """One statement for many rows; ``rows`` may be a generator (consumed once: a large
        batch is then never held whole)."""
        raise NotImplementedError

    def _select_in(self, sql: str, chunk: Sequence[str]) -> list[tuple[Any, ...]]:
        """``sql``, whose one ``IN (?)`` stands for the values of ``chunk``."""
        return self._execute(sql.replace("IN (?)", f"IN ({_marks(chunk)})"), chunk)

    def _select_pairs(self, sql: str, pairs: Sequence[tuple[str, str]]) -> list[tuple[Any, ...]]:
        """``sql``, whose one ``(a, b) IN (?)`` stands for the pairs of ``pairs``: one JSON
        parameter (SQLite searches a two-column index with it; a ``VALUES`` list it scans)."""
        return self._execute(
            sql.replace("IN (?)", "IN (SELECT json_extract(value, '$[0]'),"
                                  " json_extract(value, '$[1]') FROM json_each(?))"),
            (json.dumps(pairs),),
        )

    def transaction(self) -> AbstractContextManager[None]:
        """All writes inside happen together or not at all."""
        raise NotImplementedError

    def work_lock(self) -> AbstractContextManager[None]:
        """Held while a file or a job changes state: one at a time across every process."""
        raise NotImplementedError

    def exclusive(self, name: str) -> AbstractContextManager[bool]:
        """Try to hold the lock ``name`` for the block, across every process and node: yields
        whether this process holds it (False: someone else does; skip the work)."""
        raise NotImplementedError

    def serialize(self, name: str) -> None:
        """Inside a transaction: make every other transaction that serializes on ``name`` wait
        for this one (SQLite's write transactions are serial already)."""

    def ddl(self, statement: str) -> str:
        """A statement of a migration in this store's dialect (SQLite's is the one written)."""
        return statement

    def close(self) -> None:
        """Release connections."""
        raise NotImplementedError

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one portable SQL statement (``?`` placeholders), for ledgers in other modules."""
        return self._execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one portable SQL statement for many rows."""
        self._executemany(sql, rows)

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- identity ------------------------------------------------------------------------------

    def store_id(self) -> tuple[str, bool]:
        """This store's identity (see ``var/store-id``), and whether it was made just now for
        a store with no history (a new store; not one upgraded from before identities)."""
        with self.transaction():
            made = self._execute(
                "INSERT INTO store_meta (key, value) VALUES ('store_id', ?)"
                " ON CONFLICT (key) DO NOTHING RETURNING value",
                (uuid.uuid4().hex,),
            )
            sid = str(self._execute("SELECT value FROM store_meta WHERE key = 'store_id'")[0][0])
            fresh = bool(made) and not self._execute("SELECT 1 FROM receipts LIMIT 1")
        return sid, fresh

    # --- ledger --------------------------------------------------------------------------------

    def claim(
        self,
        name: str,
        channel: str,
        folder: Path,
        *,
        at: str,
        owner: str,
        lease_until: float,
        original_name: str = "",
        source: tuple[str, int | None] | None = None,
    ) -> Receipt:
        """Record a file about to be claimed into ``folder``, owned by ``owner``.

        Its place in ``var/processing/`` is fixed now from the receipt's id, unique whatever else
        claims at the same time; so is a provisional acknowledgement name, ``<stem>.<id>.ack.xml``,
        until :meth:`claimed` (see there).
        """
        stem = stem_of(name)
        source_path, source_ino = source or (None, None)
        with self.transaction():
            rid = int(self._execute(
                "INSERT INTO receipts (name, original_name, channel, sha256, processing_path,"
                " ack_name, status, claimed_at, owner, lease_until, source_path, source_ino)"
                " VALUES (?, ?, ?, '', ?, ?, 'claiming', ?, ?, ?, ?, ?) RETURNING id",
                (name, original_name or name, channel, f"pending:{owner}:{at}",
                 f"pending:{owner}:{at}:{name}", at, owner, lease_until, source_path,
                 source_ino),
            )[0][0])
            self._execute(
                "UPDATE receipts SET ack_name = ?, processing_path = ? WHERE id = ?",
                (f"{stem}.{rid}.ack.xml", str(folder / f"{rid}-{name}"), rid),
            )
        return self.receipt(rid)

    def claimed(self, rid: int, sha256: str) -> Receipt:
        """The file is in ``var/processing/`` and its content hashed.

        Its acknowledgement name is fixed now, when the claim is won: ``<stem>.ack.xml`` unless
        another file of that name already has it (then the provisional ``<stem>.<id>.ack.xml``
        stays). Fixed earlier, a competing claim of the same file by a node that died before
        its move would have pushed the file's only acknowledgement onto the numbered name.
        """
        with self.transaction():
            self.serialize("receipts.ack_name")
            name = self._execute(
                "SELECT name FROM receipts WHERE id = ? AND status = ?", (rid, CLAIMING))
            if name:
                plain = f"{stem_of(str(name[0][0]))}.ack.xml"
                if not self._execute("SELECT 1 FROM receipts WHERE ack_name = ?", (plain,)):
                    self._execute("UPDATE receipts SET ack_name = ? WHERE id = ?", (plain, rid))
                self._execute(
                    "UPDATE receipts SET sha256 = ?, status = 'claimed' WHERE id = ?",
                    (sha256, rid),
                )
        return self.receipt(rid)

    def drop_claim(self, rid: int) -> None:
        """Forget a claim whose file never reached ``var/processing/``."""
        self._execute("DELETE FROM receipts WHERE id = ? AND status = ?", (rid, CLAIMING))

    def receipt(self, rid: int) -> Receipt:
        """A receipt by id."""
        rows = self._execute(f"SELECT {_RECEIPT_COLUMNS} FROM receipts WHERE id = ?", (rid,))
        return Receipt(*rows[0])

    def open_receipts(self) -> list[Receipt]:
        """Receipts whose input has not yet been archived or quarantined."""
        return [h.receipt for h in self.held_receipts()]

    def held_receipts(self) -> list[Held]:
        """Open receipts with their owners' leases, oldest first."""
        rows = self._execute(
            f"SELECT {_RECEIPT_COLUMNS}, lease_until, source_path, source_ino FROM receipts"
            " WHERE closed = 0 ORDER BY id"
        )
        return [Held(Receipt(*r[:11]), r[11], r[12], r[13]) for r in rows]

    def take_over(self, rid: int, old_owner: str | None, owner: str, lease_until: float) -> bool:
        """Become the owner of an open receipt if ``old_owner`` still holds it (one wins)."""
        held_by = "owner IS NULL" if old_owner is None else "owner = ?"
        rows = self._execute(
            "UPDATE receipts SET owner = ?, lease_until = ? WHERE id = ? AND closed = 0"
            f" AND {held_by} RETURNING id",
            (owner, lease_until, rid) + (() if old_owner is None else (old_owner,)),
        )
        return bool(rows)

    def clock(self) -> float:
        """This host's clock: SQLite is one node's (PostgreSQL asks its server)."""
        return time.time()

    def wait_at_most(self, seconds: float) -> None:
        """Nothing to wait for on SQLite: a file on this host (PostgreSQL waits for its pool)."""

    def renew(self, owner: str, lease_until: float) -> int:
        """Extend the lease on every open receipt ``owner`` holds; returns how many."""
        rows = self._execute(
            "UPDATE receipts SET lease_until = ? WHERE owner = ? AND closed = 0 RETURNING id",
            (lease_until, owner),
        )
        return len(rows)

    def begin_attempt(self, rid: int, owner: str, *, give_back: int = 0) -> int:
        """Count one more start of work on a file (before the work); returns the count.

        Counted before, so that a file that kills the process is counted too; an attempt that
        failed for the machine's sake (a full disk) is given back with :meth:`undo_attempt`,
        or here (``give_back``) when the store could not take it back at the time.
        """
        rows = self._execute(
            "UPDATE receipts SET attempts = CASE WHEN attempts + 1 - ? < 1 THEN 1"
            " ELSE attempts + 1 - ? END WHERE id = ? AND owner = ?"
            " AND closed = 0 AND status = 'claimed' RETURNING attempts",
            (give_back, give_back, rid, owner),
        )
        if not rows:
            raise ClaimLost(f"receipt {rid} is no longer held by this process")
        return int(rows[0][0])

    def undo_attempt(self, rid: int, error: str) -> None:
        """Give back an attempt that failed for a reason that was not the file's."""
        self._execute(
            "UPDATE receipts SET attempts = attempts - 1, last_error = ? WHERE id = ?"
            " AND attempts > 0",
            (error, rid),
        )

    def last_error(self, rid: int) -> str | None:
        """The last error noted for a file."""
        rows = self._execute("SELECT last_error FROM receipts WHERE id = ?", (rid,))
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def note_error(self, rid: int, error: str) -> None:
        """Keep the last error of a file's failed attempt."""
        self._execute("UPDATE receipts SET last_error = ? WHERE id = ?", (error, rid))

    def processed_file(self, sha256: str) -> str | None:
        """The name of an earlier file with these exact bytes that was processed, if any."""
        rows = self._execute(
            "SELECT name FROM receipts WHERE sha256 = ? AND status = 'processed' ORDER BY id",
            (sha256,),
        )
        return str(rows[0][0]) if rows else None

    def finish(
        self,
        rid: int,
        status: str,
        *,
        at: str,
        owner: str | None = None,
        code: str | None = None,
        duplicate_of: str | None = None,
        totals: dict[str, int] | None = None,
    ) -> None:
        """Mark a file's fate (call inside the file's transaction); only its owner may."""
        rows = self._execute(
            "UPDATE receipts SET status = ?, code = ?, duplicate_of = ?, totals = ?,"
            " finished_at = ? WHERE id = ? AND status = 'claimed' AND closed = 0"
            + ("" if owner is None else " AND owner = ?") + " RETURNING id",
            (status, code, duplicate_of, json.dumps(totals) if totals else None, at, rid)
            + (() if owner is None else (owner,)),
        )
        if not rows:
            raise ClaimLost(f"receipt {rid} was finished or taken over by another process")

    def add_pending_outputs(
        self, rid: int, outputs: Sequence[tuple[Path, Path, int | None, int | None]]
    ) -> None:
        """List outputs written under temporary names (with inode and size), to rename once
        committed (receipt 0: a job)."""
        self._executemany(
            "INSERT INTO pending_outputs (receipt_id, temp_path, final_path, ino, size)"
            " VALUES (?, ?, ?, ?, ?)",
            [(rid, str(t), str(f), ino, size) for t, f, ino, size in outputs],
        )

    def pending_outputs(self, rid: int | None = None) -> list[PendingOutput]:
        """Outputs committed but perhaps not yet renamed into place: those of receipt ``rid``
        (0: of the jobs), or all of them."""
        sql = "SELECT receipt_id, temp_path, final_path, ino, size FROM pending_outputs"
        rows = (
            self._execute(sql) if rid is None
            else self._execute(sql + " WHERE receipt_id = ?", (rid,))
        )
        return [PendingOutput(int(r[0]), Path(r[1]), Path(r[2]), r[3], r[4]) for r in rows]

    def clear_outputs(self, rid: int) -> None:
        """Forget the pending outputs of a receipt once they are all in place."""
        self._execute("DELETE FROM pending_outputs WHERE receipt_id = ?", (rid,))

    def close_receipt(self, rid: int) -> None:
        """The input has left ``var/processing/`` and the outputs are in place: nothing more to
        recover for it. Its pending outputs are forgotten in the same transaction (one commit
        for both: a file's last)."""
        with self.transaction():
            self._execute("DELETE FROM pending_outputs WHERE receipt_id = ?", (rid,))
            self._execute(
                "UPDATE receipts SET closed = 1, owner = NULL, lease_until = NULL WHERE id = ?",
                (rid,),
            )

    def file_counts(self) -> list[tuple[str, str, int]]:
        """(channel, status, count) over the whole ledger."""
        rows = self._execute(
            "SELECT channel, status, COUNT(*) FROM receipts GROUP BY channel, status"
            " ORDER BY channel, status"
        )
        return [(str(c), str(s), int(n)) for c, s, n in rows]

    def receipts_since(self, after_id: int = 0) -> list[tuple[int, str, str, str]]:
        """(id, name, status, ack_name) of receipts after ``after_id``."""
        rows = self._execute(
            "SELECT id, name, status, ack_name FROM receipts WHERE id > ? ORDER BY id", (after_id,)
        )
        return [(int(a), str(b), str(c), str(d)) for a, b, c, d in rows]

    # --- positions -----------------------------------------------------------------------------

    def positions(self, vpd: str) -> dict[int, Position]:
        """The position register of a VPD, by ESR position id."""
        rows = self._execute("SELECT data FROM positions WHERE vpd = ?", (vpd,))
        found = (codec.loads(Position, r[0]) for r in rows)
        return {p.esr_position_id: p for p in found}

    def posts(self, vpd: str) -> list[Post]:
        """What the person rules need of each position of a VPD's register (:class:`Post`):
        the fields decoded, the rest of each row's JSON skipped unbuilt."""
        rows = self._execute("SELECT data FROM positions WHERE vpd = ?", (vpd,))
        return [codec.loads(Post, r[0]) for r in rows]

    def positions_with_dpn(self, dpn: str) -> list[tuple[str, Position]]:
        """(vpd, position) of every registered position carrying ``dpn``, in any VPD."""
        rows = self._execute(
            "SELECT vpd, data FROM positions WHERE dpn = ? ORDER BY vpd, esr_position_id", (dpn,)
        )
        return [(str(v), codec.loads(Position, d)) for v, d in rows]

    def save_positions(self, vpd: str, positions: Sequence[Position], *, replace: bool,
                       encoded: Sequence[str] | None = None) -> None:
        """Write positions into a VPD's register; ``replace`` drops those not given. Only what
        differs from the register is written (a full extract repeats most of it).
        ``encoded``: each one's :func:`codec.dumps`, in order, if made already."""
        stored = dict(self._execute(
            "SELECT esr_position_id, data FROM positions WHERE vpd = ?", (vpd,)))
        changed, same = _changes(stored, positions, lambda p: p.esr_position_id, encoded)
        given = {p.esr_position_id for p in positions}
        stale = [(vpd, pid) for pid in stored
                 if pid not in same and (replace or pid in given)]  # gone, or changed
        if stale:
            self._executemany(
                "DELETE FROM positions WHERE vpd = ? AND esr_position_id = ?", stale)
        self._executemany(
            "INSERT INTO positions (vpd, esr_position_id, dpn, data) VALUES (?, ?, ?, ?)",
            [(vpd, p.esr_position_id, p.dpn, data) for p, data in changed],
        )

    def seen_dpns(self, vpd: str) -> set[str]:
        """Every DPN ever seen in the VPD."""
        return {str(r[0]) for r in self._execute("SELECT dpn FROM dpns_seen WHERE vpd = ?", (vpd,))}

    def add_seen_dpns(self, vpd: str, dpns: Sequence[str], at: str) -> None:
        """Remember DPNs as seen in the VPD."""
        self._executemany(
            "INSERT INTO dpns_seen (vpd, dpn, first_seen) VALUES (?, ?, ?)",
            [(vpd, d, at) for d in dpns],
        )

    def interface_posts(self, vpd: str) -> dict[int, tuple[str, str]]:
        """What was on the interface at the VPD's last extract: id → (dpn, deanery)."""
        rows = self._execute(
            "SELECT esr_position_id, dpn, deanery FROM interface_posts WHERE vpd = ?", (vpd,)
        )
        return {int(i): (str(d), str(n)) for i, d, n in rows}

    def set_interface_posts(self, vpd: str, posts: dict[int, tuple[str, str]]) -> None:
        """Replace the VPD's record of what is on the interface. Only what differs from the
        record is written (a daily full extract leaves nearly all of it as it was)."""
        before = self.interface_posts(vpd)
        stale = [(vpd, i) for i, post in before.items() if posts.get(i) != post]
        if stale:
            self._executemany(
                "DELETE FROM interface_posts WHERE vpd = ? AND esr_position_id = ?", stale)
        new = [(vpd, i, d, n) for i, (d, n) in posts.items() if before.get(i) != (d, n)]
        if new:
            self._executemany(
                "INSERT INTO interface_posts (vpd, esr_position_id, dpn, deanery)"
                " VALUES (?, ?, ?, ?)", new)

    def vpds(self) -> list[str]:
        """Every VPD with a position register."""
        return [str(r[0]) for r in self._execute("SELECT DISTINCT vpd FROM positions ORDER BY vpd")]

    def record_extract(
        self, kind: str, vpd: str, deanery: str, extract_date: str, path: str, at: str
    ) -> None:
        """Note the last extract written for (kind, VPD, deanery)."""
        self._execute(
            "DELETE FROM extracts WHERE kind = ? AND vpd = ? AND deanery = ?", (kind, vpd, deanery)
        )
        self._execute(
            "INSERT INTO extracts (kind, vpd, deanery, extract_date, path, written_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (kind, vpd, deanery, extract_date, path, at),
        )

    def extracts(self) -> list[tuple[str, str, str, str]]:
        """(kind, vpd, deanery, extract_date) of the last extract of each."""
        rows = self._execute(
            "SELECT kind, vpd, deanery, extract_date FROM extracts ORDER BY kind, vpd, deanery"
        )
        return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]

    # --- persons -------------------------------------------------------------------------------

    def replace_persons(self, vpd: str, persons: Sequence[Person],
                        encoded: Sequence[str] | None = None) -> None:
        """Make ``persons`` the VPD's persons (a person extract is a full snapshot);
        ``encoded``: each one's :func:`codec.dumps`, in order, if made already.

        Only what differs is written: a daily extract changes a few persons of hundreds, and
        rewriting them all (with their assignments and four indexes) was most of its store time.
        """
        stored = dict(self._execute(
            "SELECT esr_person_id, data FROM persons WHERE vpd = ?", (vpd,)))
        changed, same = _changes(stored, persons, lambda p: p.esr_person_id, encoded)
        stale = [(vpd, pid) for pid in stored if pid not in same]  # gone, or changed
        if stale:
            self._executemany("DELETE FROM persons WHERE vpd = ? AND esr_person_id = ?", stale)
            self._executemany(
                "DELETE FROM assignments WHERE vpd = ? AND esr_person_id = ?", stale)
        if not changed:
            return
        self._executemany(
            "INSERT INTO persons (vpd, esr_person_id, date_of_birth, data) VALUES (?, ?, ?, ?)",
            [(vpd, p.esr_person_id, p.date_of_birth.isoformat(), data) for p, data in changed],
        )
        self._executemany(
            "INSERT INTO assignments (vpd, position_number, esr_person_id, status, start_date,"
            " end_date) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (vpd, a.position_number, p.esr_person_id, a.status, a.start_date.isoformat(),
                 _iso(a.end_date or a.projected_end_date))
                for p, _data in changed
                for a in p.assignments
            ],
        )

    def persons(self, vpd: str) -> list[Person]:
        """Every person of the VPD."""
        rows = self._execute(
            "SELECT data FROM persons WHERE vpd = ? ORDER BY esr_person_id", (vpd,)
        )
        return [codec.loads(Person, r[0]) for r in rows]

    def persons_born(self, vpd: str, date_of_birth: str) -> list[Person]:
        """Persons of the VPD born on that day (candidates for a match)."""
        rows = self._execute(
            "SELECT data FROM persons WHERE vpd = ? AND date_of_birth = ?", (vpd, date_of_birth)
        )
        return [codec.loads(Person, r[0]) for r in rows]

    def assignment_occupants(self, vpd: str, position_number: str) -> list[Occupant]:
        """ESR assignments on a position that are not terminated."""
        rows = self._execute(
            "SELECT esr_person_id, start_date, end_date FROM assignments"
            " WHERE vpd = ? AND position_number = ? AND status <> 'Terminated'",
            (vpd, position_number),
        )
        return [
            Occupant(None, str(pid), _day(start), _day(end) if end else None)
            for pid, start, end in rows
        ]

    # --- applicant register --------------------------------------------------------------------

    def save_applicants(self, rows: Sequence[SentApplicant], at: str,
                        loads: Sequence[LoadFile] = ()) -> None:
        """Upsert applicant register rows (one statement per row, batched). A row whose
        placement goes to its VPD in one of ``loads`` records that load and record, the action
        and state ``sent`` in the same statement, as :meth:`record_loads` would after it (pass
        it the rows as ``registered``): one write of the row, not two."""
        went = {(r.placement_id, load.vpd): (load.name, r.record, r.action)
                for load in loads for r in load.records}
        none = (None, None, None)
        self._executemany(
            "INSERT INTO applicants (placement_id, vpd, tis_person_id, position_number,"
            " date_of_birth, withdrawn, data, updated_at, load_file, load_record, last_action)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (placement_id, vpd) DO UPDATE SET"
            " tis_person_id = excluded.tis_person_id,"
            " position_number = excluded.position_number,"
            " date_of_birth = excluded.date_of_birth, withdrawn = excluded.withdrawn,"
            " data = excluded.data, updated_at = excluded.updated_at,"
            " load_file = COALESCE(excluded.load_file, applicants.load_file),"
            " load_record = CASE WHEN excluded.load_file IS NULL THEN applicants.load_record"
            " ELSE excluded.load_record END,"
            " last_action = CASE WHEN excluded.load_file IS NULL THEN applicants.last_action"
            " ELSE excluded.last_action END,"
            " esr_state = CASE WHEN excluded.load_file IS NULL THEN applicants.esr_state"
            " ELSE 'sent' END,"
            " esr_message = CASE WHEN excluded.load_file IS NULL THEN applicants.esr_message"
            " ELSE NULL END",
            (
                (
                    r.placement_id,
                    r.vpd,
                    r.tis_person_id,
                    r.position_number,
                    r.placement.trainee.date_of_birth.isoformat(),
                    1 if r.withdrawn else 0,
                    codec.dumps(r),
                    at,
                    *went.get((r.placement_id, r.vpd), none),
                )
                for r in rows
            ),
        )

    def sent(self, placement_id: str) -> list[SentApplicant]:
        """The register rows of a placement, one per VPD it was sent to."""
        rows = self._execute(
            f"SELECT {_REGISTER_COLUMNS} FROM applicants WHERE placement_id = ? ORDER BY vpd",
            (placement_id,),
        )
        return [_registered(*r) for r in rows]

    def applicants_on(self, vpd: str, position_number: str) -> list[SentApplicant]:
        """Applicants sent (and not withdrawn) for a position."""
        rows = self._execute(
            "SELECT data FROM applicants WHERE vpd = ? AND position_number = ? AND withdrawn = 0"
            f" AND {_NOT_FAILED_CREATE}",
            (vpd, position_number),
        )
        return [codec.loads(SentApplicant, r[0]) for r in rows]

    def applicants_born(self, vpd: str, date_of_birth: str) -> list[SentApplicant]:
        """Applicants of the VPD (withdrawn or not) whose trainee was born that day."""
        rows = self._execute(
            "SELECT data FROM applicants WHERE vpd = ? AND date_of_birth = ? ORDER BY placement_id",
            (vpd, date_of_birth),
        )
        return [codec.loads(SentApplicant, r[0]) for r in rows]

    def hold(self, placement: Placement, source_file: str, sha256: str, due: str, at: str) -> None:
        """Hold a deferred placement until ``due`` (A3), replacing an earlier hold."""
        self.release([placement.placement_id])
        self._execute(
            "INSERT INTO held_placements (placement_id, due, data, source_file, source_sha256,"
            " held_at) VALUES (?, ?, ?, ?, ?, ?)",
            (placement.placement_id, due, codec.dumps(placement), source_file, sha256, at),
        )

    def hold_many(
        self, holds: Sequence[tuple[Placement, str]], source_file: str, sha256: str, at: str
    ) -> None:
        """:meth:`hold` of many (placement, due) at once: two statements, not two each (the
        last of a placement held twice wins, as with :meth:`hold`)."""
        holds = list({placement.placement_id: (placement, due)
                      for placement, due in holds}.values())
        self.release([placement.placement_id for placement, _due in holds])
        self._executemany(
            "INSERT INTO held_placements (placement_id, due, data, source_file, source_sha256,"
            " held_at) VALUES (?, ?, ?, ?, ?, ?)",
            ((placement.placement_id, due, codec.dumps(placement), source_file, sha256, at)
             for placement, due in holds),
        )

    def release(self, placement_ids: Sequence[str]) -> None:
        """Forget holds."""
        self._executemany(
            "DELETE FROM held_placements WHERE placement_id = ?", [(p,) for p in placement_ids]
        )

    def held(self, placement_id: str) -> Placement | None:
        """A held placement, if any."""
        rows = self._execute(
            "SELECT data FROM held_placements WHERE placement_id = ?", (placement_id,)
        )
        return codec.loads(Placement, rows[0][0]) if rows else None

    def held_due(self, as_of: str) -> list[Placement]:
        """Held placements due on or before ``as_of``, earliest first."""
        rows = self._execute(
            "SELECT data FROM held_placements WHERE due <= ? ORDER BY due, placement_id", (as_of,)
        )
        return [codec.loads(Placement, r[0]) for r in rows]

    def held_due_page(
        self, as_of: str, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[Placement, str, str, str]]:
        """:meth:`held_due` a page at a time: (placement, due, source file, source SHA-256) of
        the next ``limit`` holds due on or before ``as_of`` after the (due, placement id)
        ``after`` (None: from the first), in that order."""
        due, pid = after or ("", "")
        rows = self._execute(
            "SELECT data, due, source_file, source_sha256 FROM held_placements"
            " WHERE due <= ? AND (due > ? OR (due = ? AND placement_id > ?))"
            " ORDER BY due, placement_id LIMIT ?",
            (as_of, due, due, pid, limit),
        )
        return [(codec.loads(Placement, r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]

    def held_sources(self) -> list[tuple[str, str, str, str]]:
        """(placement id, due, source file, source SHA-256) of every hold."""
        rows = self._execute(
            "SELECT placement_id, due, source_file, source_sha256 FROM held_placements"
        )
        return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]

    def held_all(self) -> list[tuple[str, str, str]]:
        """(placement id, due date, source file) of every hold."""
        rows = self._execute(
            "SELECT placement_id, due, source_file FROM held_placements ORDER BY due, placement_id"
        )
        return [(str(a), str(b), str(c)) for a, b, c in rows]

    # --- bulk reads of one file's state (a few statements per file, not per record) -----------

    def positions_with_dpns(self, dpns: Collection[str]) -> dict[str, list[tuple[str, Post]]]:
        """(vpd, post) of every registered position carrying each DPN, in any VPD: what the
        rules need of each (:class:`Post`), the rest of its JSON skipped unbuilt."""
        found: dict[str, list[tuple[str, Post]]] = {d: [] for d in dpns}
        for chunk in _chunks(sorted(dpns)):
            for vpd, dpn, data in self._select_in(
                "SELECT vpd, dpn, data FROM positions WHERE dpn IN (?)"
                " ORDER BY vpd, esr_position_id",
                chunk,
            ):
                found[str(dpn)].append((_vpd(vpd), codec.loads(Post, data)))
        return found

    def persons_born_on(
        self, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], list[PersonMatch]]:
        """What A8 compares of the persons of each (VPD, date of birth)."""
        return self._born(PersonMatch, "SELECT vpd, date_of_birth, data FROM persons"
                          " WHERE (vpd, date_of_birth) IN (?)", keys)

    def _born(
        self, cls: type[T], sql: str, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], list[T]]:
        """Rows (vpd, date of birth, data) of ``sql`` for each (VPD, date of birth) key, asked by
        the pair (the (vpd, date_of_birth) index; asked by date alone, a day's persons in every
        VPD came back to be thrown away: all of them, when they shared a birthday)."""
        found: dict[tuple[str, str], list[T]] = {k: [] for k in keys}
        for chunk in _chunks(sorted(found)):
            for vpd, born, data in self._select_pairs(sql, chunk):
                found[(str(vpd), str(born))].append(codec.loads(cls, data))
        return found

    def sent_many(self, placement_ids: Collection[str]) -> dict[str, list[SentApplicant]]:
        """The register rows of each placement, one per VPD it was sent to."""
        found: dict[str, list[SentApplicant]] = {p: [] for p in placement_ids}
        for chunk in _chunks(sorted(placement_ids)):
            for pid, *row in self._select_in(
                f"SELECT placement_id, {_REGISTER_COLUMNS} FROM applicants"
                f" WHERE placement_id IN (?) ORDER BY placement_id, vpd",
                chunk,
            ):
                found[str(pid)].append(_registered(*row))
        return found

    def occupants_of(
        self, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], list[Occupant]]:
        """For each (VPD, position number): applicants sent and not withdrawn, then ESR
        assignments not terminated (as :meth:`applicants_on` and :meth:`assignment_occupants`)."""
        found: dict[tuple[str, str], list[Occupant]] = {k: [] for k in keys}
        numbers = sorted({n for _vpd, n in keys})
        for chunk in _chunks(numbers):
            for vpd, number, data in self._select_in(
                "SELECT vpd, position_number, data FROM applicants WHERE withdrawn = 0"
                f" AND {_NOT_FAILED_CREATE} AND position_number IN (?)",
                chunk,
            ):
                rows = found.get((str(vpd), str(number)))
                if rows is not None:
                    a = codec.loads(_Occupying, data)
                    rows.append(Occupant(a.tis_person_id, None, a.placement.start,
                                         a.placement.end, a.placement_id))
        for chunk in _chunks(numbers):
            for vpd, number, pid, start, end in self._select_in(
                "SELECT vpd, position_number, esr_person_id, start_date, end_date FROM assignments"
                " WHERE status <> 'Terminated' AND position_number IN (?)",
                chunk,
            ):
                rows = found.get((str(vpd), str(number)))
                if rows is not None:
                    rows.append(Occupant(None, str(pid), _day(start), _day(end) if end else None))
        return found

    def held_many(self, placement_ids: Collection[str]) -> dict[str, Placement]:
        """The held placements among ``placement_ids``."""
        found: dict[str, Placement] = {}
        for chunk in _chunks(sorted(placement_ids)):
            for pid, data in self._select_in(
                "SELECT placement_id, data FROM held_placements"
                " WHERE placement_id IN (?)",
                chunk,
            ):
                found[str(pid)] = codec.loads(Placement, data)
        return found

    # --- check transfers -----------------------------------------------------------------------

    def transferred(self, vpd: str, placement_id: str) -> bool:
        """Whether checks already went for this applicant (C3)."""
        rows = self._execute(
            "SELECT 1 FROM check_transfers WHERE vpd = ? AND placement_id = ?", (vpd, placement_id)
        )
        return bool(rows)

    def record_transfer(
        self, vpd: str, placement_id: str, trac_applicant_id: str, sha256: str, at: str
    ) -> None:
        """Remember a one-off check transfer."""
        self._execute(
            "INSERT INTO check_transfers (vpd, placement_id, trac_applicant_id, source_sha256,"
            " transferred_at) VALUES (?, ?, ?, ?, ?)",
            (vpd, placement_id, trac_applicant_id, sha256, at),
        )

    # --- person update fingerprints ------------------------------------------------------------

    def fingerprints(self, vpd: str) -> dict[str, tuple[str, bool]]:
        """esr_person_id → (fingerprint last sent, whether the person was in scope)."""
        rows = self._execute(
            "SELECT esr_person_id, fingerprint, in_scope FROM person_fingerprints WHERE vpd = ?",
            (vpd,),
        )
        return {str(p): (str(f), bool(s)) for p, f, s in rows}

    def save_fingerprints(self, vpd: str, rows: Sequence[tuple[str, str, bool]], at: str) -> None:
        """Upsert (esr_person_id, fingerprint, in_scope) rows."""
        self._executemany(
            "DELETE FROM person_fingerprints WHERE vpd = ? AND esr_person_id = ?",
            [(vpd, p) for p, _f, _s in rows],
        )
        self._executemany(
            "INSERT INTO person_fingerprints (vpd, esr_person_id, fingerprint, in_scope, sent_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(vpd, p, f, 1 if s else 0, at) for p, f, s in rows],
        )

    # --- jobs ----------------------------------------------------------------------------------

    def job_last_run(self, name: str) -> str | None:
        """When a scheduled job last ran (its own key: a date, a week)."""
        rows = self._execute("SELECT last_run FROM jobs WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else None

    def set_job_run(self, name: str, key: str) -> None:
        """Record that a scheduled job ran for ``key``."""
        self._execute("DELETE FROM jobs WHERE name = ?", (name,))
        self._execute("INSERT INTO jobs (name, last_run) VALUES (?, ?)", (name, key))

    # --- load confirmations and re-sending (spec 6.5) -----------------------------------------

    def record_loads(self, loads: Sequence[LoadFile], at: str,
                     registered: Collection[tuple[str, str]] = ()) -> None:
        """Remember applicant load files written (R1, R6), and in the register where each
        placement last went: that load and record, the action, state ``sent`` (but for the
        (placement id, VPD) pairs ``registered``: :meth:`save_applicants` recorded it). A few
        statements, however many files."""
        if not loads:
            return
        self._executemany(
            "INSERT INTO load_files (vpd, name, written_at, source_file, records)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (vpd, name) DO UPDATE SET"
            " written_at = excluded.written_at, source_file = excluded.source_file,"
            " records = excluded.records, unconfirmed_at = NULL",
            [(load.vpd, load.name, at, load.source_file, len(load.records)) for load in loads],
        )
        self._executemany(
            "DELETE FROM load_records WHERE vpd = ? AND load_file = ?",
            [(load.vpd, load.name) for load in loads],
        )
        self._load_records(loads, registered)

    def add_load_records(self, loads: Sequence[LoadFile],
                         registered: Collection[tuple[str, str]] = ()) -> None:
        """Add records to load files already remembered (a file decided a window at a time),
        and in the register where each placement last went, as :meth:`record_loads`."""
        if not loads:
            return
        self._executemany(
            "UPDATE load_files SET records = records + ? WHERE vpd = ? AND name = ?",
            [(len(load.records), load.vpd, load.name) for load in loads],
        )
        self._load_records(loads, registered)

    def _load_records(self, loads: Sequence[LoadFile],
                      registered: Collection[tuple[str, str]]) -> None:
        self._executemany(
            "INSERT INTO load_records (vpd, load_file, placement_id, action, record, dpn,"
            " position_number) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(load.vpd, load.name, r.placement_id, r.action, r.record, r.dpn,
              r.position_number) for load in loads for r in load.records],
        )
        rest = [(load.name, r.record, r.action, r.placement_id, load.vpd)
                for load in loads for r in load.records
                if (r.placement_id, load.vpd) not in registered]
        if rest:
            self._executemany(
                "UPDATE applicants SET load_file = ?, load_record = ?, last_action = ?,"
                " esr_state = 'sent', esr_message = NULL WHERE placement_id = ? AND vpd = ?",
                rest,
            )

    def load_file(self, vpd: str, name: str) -> LoadFile | None:
        """An applicant load file written for the VPD, with its records, if any."""
        rows = self._execute(
            "SELECT source_file, written_at FROM load_files WHERE vpd = ? AND name = ?",
            (vpd, name),
        )
        if not rows:
            return None
        records = self._execute(
            "SELECT placement_id, action, record, dpn, position_number, status"
            " FROM load_records WHERE vpd = ? AND load_file = ? ORDER BY record",
            (vpd, name),
        )
        return LoadFile(vpd, name, str(rows[0][0]), str(rows[0][1]), tuple(
            LoadRecord(str(p), str(a), int(n), str(d), str(pn), s)
            for p, a, n, d, pn, s in records
        ))

    def confirm_records(
        self, vpd: str, load_file: str, rows: Sequence[tuple[str, str, str]], at: str
    ) -> None:
        """Mark load records (placement id, action, status) as confirmed by ESR."""
        self._executemany(
            "UPDATE load_records SET status = ?, confirmed_at = ? WHERE vpd = ? AND"
            " load_file = ? AND placement_id = ? AND action = ?",
            [(status, at, vpd, load_file, pid, action) for pid, action, status in rows],
        )

    def set_esr_states(
        self, rows: Sequence[tuple[str, str, str, str | None, str | None, str | None]]
    ) -> None:
        """(placement id, vpd, state, applicant number, assignment id, ESR's message): the
        register's ESR state of an applicant; a number or id not given is kept."""
        self._executemany(
            "UPDATE applicants SET esr_state = ?,"
            " applicant_number = COALESCE(?, applicant_number),"
            " assignment_id = COALESCE(?, assignment_id), esr_message = ?"
            " WHERE placement_id = ? AND vpd = ?",
            [(state, number, assignment, message, pid, vpd)
             for pid, vpd, state, number, assignment, message in rows],
        )

    def esr_state(self, placement_id: str, vpd: str) -> tuple[str, str | None, str | None,
                                                               str | None] | None:
        """(state, applicant number, assignment id, ESR's message) of a register row."""
        rows = self._execute(
            "SELECT esr_state, applicant_number, assignment_id, esr_message FROM applicants"
            " WHERE placement_id = ? AND vpd = ?",
            (placement_id, vpd),
        )
        return (str(rows[0][0]), rows[0][1], rows[0][2], rows[0][3]) if rows else None

    def loads_awaiting(self) -> list[Awaiting]:
        """Load files with records ESR has not confirmed, oldest first, counted in the store
        (a national day's loads are tens of thousands of records; none is read)."""
        rows = self._execute(
            "SELECT f.vpd, f.name, f.written_at, COUNT(*), COUNT(DISTINCT r.placement_id)"
            " FROM load_files f JOIN load_records r ON r.vpd = f.vpd AND r.load_file = f.name"
            " WHERE r.status IS NULL GROUP BY f.vpd, f.name, f.written_at"
            " ORDER BY f.written_at, f.vpd, f.name"
        )
        return [Awaiting(str(v), str(n), str(w), int(c), int(d)) for v, n, w, c, d in rows]

    def unconfirmed_ids(self, files: Collection[tuple[str, str]], first: int
                        ) -> dict[tuple[str, str], list[str]]:
        """The ``first`` placement ids (sorted, each once) of each (vpd, name) load file's
        records ESR has not confirmed; read 50 files at a time."""
        found: dict[tuple[str, str], list[str]] = {}
        ordered = sorted(set(files))
        for start in range(0, len(ordered), 50):
            chunk: dict[tuple[str, str], set[str]] = {k: set() for k in ordered[start:start + 50]}
            for vpd, name, pid in self._select_pairs(
                "SELECT vpd, load_file, placement_id FROM load_records"
                " WHERE status IS NULL AND (vpd, load_file) IN (?)",
                list(chunk),
            ):
                chunk[(str(vpd), str(name))].add(str(pid))
            found.update((key, sorted(ids)[:first]) for key, ids in chunk.items())
        return found

    def unconfirmed_raised(self) -> set[tuple[str, str]]:
        """(vpd, name) of load files LOAD_UNCONFIRMED was raised for (R6: once)."""
        rows = self._execute("SELECT vpd, name FROM load_files WHERE unconfirmed_at IS NOT NULL")
        return {(str(v), str(n)) for v, n in rows}

    def mark_unconfirmed(self, keys: Sequence[tuple[str, str]], at: str) -> None:
        """Record that LOAD_UNCONFIRMED was raised for these (vpd, name) load files."""
        self._executemany(
            "UPDATE load_files SET unconfirmed_at = ? WHERE vpd = ? AND name = ?",
            [(at, vpd, name) for vpd, name in keys],
        )

    def failed_applicants(self) -> list[tuple[str, str, str, str | None]]:
        """(placement id, vpd, last action, load file) of register rows ESR failed."""
        rows = self._execute(
            "SELECT placement_id, vpd, last_action, load_file FROM applicants"
            " WHERE esr_state = 'failed' AND withdrawn = 0 ORDER BY placement_id, vpd"
        )
        return [(str(p), str(v), str(a), f) for p, v, a, f in rows]

    def keep(self, kept: Sequence[Kept], at: str) -> None:
        """R7: keep (replace) the last version of placements to re-send."""
        self._executemany(
            "DELETE FROM resendable WHERE placement_id = ?",
            [(k.placement.placement_id,) for k in kept],
        )
        self._executemany(
            "INSERT INTO resendable (placement_id, vpd, cause, reason, data, kept_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ((k.placement.placement_id, k.vpd, k.cause, k.reason, codec.dumps(k.placement), at)
             for k in kept),
        )

    def unkeep(self, placement_ids: Collection[str]) -> None:
        """Forget kept placements (sent, withdrawn or superseded)."""
        self._executemany(
            "DELETE FROM resendable WHERE placement_id = ?", [(p,) for p in placement_ids]
        )

    def kept(self, placement_id: str | None = None) -> list[Kept]:
        """Kept placements (one, or all), by placement id."""
        sql = "SELECT data, cause, vpd, reason FROM resendable"
        rows = (
            self._execute(sql + " WHERE placement_id = ?", (placement_id,))
            if placement_id is not None
            else self._execute(sql + " ORDER BY placement_id")
        )
        return [Kept(codec.loads(Placement, d), str(c), v, r) for d, c, v, r in rows]

    def next_resend(self, day: str) -> int:
        """The n of the next ``resend-<day>-<n>`` (call under the work lock)."""
        rows = self._execute("SELECT MAX(n) FROM resends WHERE day = ?", (day,))
        return int(rows[0][0] or 0) + 1

    def record_resend(self, day: str, n: int, at: str) -> None:
        """A resend committed (inside its transaction): its n is taken."""
        self._execute("INSERT INTO resends (day, n, at) VALUES (?, ?, ?)", (day, n, at))

    def quarantined(self, name: str) -> tuple[int, str] | None:
        """(receipt id, channel) of the latest rejected receipt stored as ``name``."""
        rows = self._execute(
            "SELECT id, channel FROM receipts WHERE name = ? AND status = 'rejected'"
            " ORDER BY id DESC LIMIT 1",
            (name,),
        )
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def link_requeue(self, rid: int, requeued_from: int) -> None:
        """The ledger links a requeued file's receipt to the one that quarantined it."""
        self._execute("UPDATE receipts SET requeued_from = ? WHERE id = ?", (requeued_from, rid))

    # --- bulk reads for the checks flow (a few statements per file, not per applicant) --------

    def applicants_born_many(
        self, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], list[SentApplicant]]:
        """:meth:`applicants_born` of many (vpd, date of birth) pairs at once."""
        return self._born(SentApplicant, "SELECT vpd, date_of_birth, data FROM applicants"
                          " WHERE (vpd, date_of_birth) IN (?) ORDER BY placement_id", keys)

    def transferred_many(self, placement_ids: Collection[str]) -> set[tuple[str, str]]:
        """(vpd, placement id) of every one-off transfer of these placements (C3)."""
        done: set[tuple[str, str]] = set()
        for chunk in _chunks(sorted(set(placement_ids))):
            done |= {(str(v), str(p)) for v, p in self._select_in(
                "SELECT vpd, placement_id FROM check_transfers"
                " WHERE placement_id IN (?)",
                chunk,
            )}
        return done

    def record_transfers(self, rows: Sequence[tuple[str, str, str, str, str]]) -> None:
        """:meth:`record_transfer` of many (vpd, placement, applicant, sha256, at) at once."""
        self._executemany(
            "INSERT INTO check_transfers (vpd, placement_id, trac_applicant_id, source_sha256,"
            " transferred_at) VALUES (?, ?, ?, ?, ?)",
            rows,
        )

    # --- tallies: what a file decided a window at a time remembers across its windows ------

    _TALLY_TABLE = (
        "CREATE TEMP TABLE IF NOT EXISTS file_tally (tally TEXT NOT NULL, a TEXT NOT NULL,"
        " b TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (a, b, tally))"
    )

    def begin_tallies(self) -> None:
        """Start the file's tallies afresh, inside its transaction: a temporary table of this
        connection (never written to the WAL, never seen by another connection, gone with a
        rollback), so what a file remembers across its windows is not held in memory."""
        self._execute(self._TALLY_TABLE)
        self._execute("DELETE FROM file_tally")

    def tallies(self, tally: str, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The counts of ``tally`` of these (a, b) keys that have one."""
        found: dict[tuple[str, str], int] = {}
        for chunk in _chunks(sorted(set(keys))):
            for name, a, b, n in self._select_pairs(
                "SELECT tally, a, b, n FROM file_tally WHERE (a, b) IN (?)", chunk
            ):
                if name == tally:
                    found[(str(a), str(b))] = int(n)
        return found

    def set_tallies(self, tally: str, counts: Mapping[tuple[str, str], int]) -> None:
        """Set the counts of ``tally`` of these (a, b) keys."""
        if counts:
            self._executemany(
                "INSERT INTO file_tally (tally, a, b, n) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (a, b, tally) DO UPDATE SET n = excluded.n",
                [(tally, a, b, n) for (a, b), n in counts.items()],
            )

    def requeued_from(self, rid: int) -> int | None:
        """The receipt a requeued file came from."""
        rows = self._execute("SELECT requeued_from FROM receipts WHERE id = ?", (rid,))
        return int(rows[0][0]) if rows and rows[0][0] is not None else None


CHUNK = 2000  # values in one IN list: far below SQLite's and PostgreSQL's limits


def _chunks(values: Sequence[T]) -> Iterator[list[T]]:
    for i in range(0, len(values), CHUNK):
        yield list(values[i : i + CHUNK])


def _changes(
    stored: Mapping[K, str], records: Sequence[T], key: Callable[[T], K],
    encodings: Sequence[str] | None = None,
) -> tuple[list[tuple[T, str]], set[K]]:
    """What writing ``records`` over ``stored`` (key → JSON) changes: the records whose JSON
    differs, each with its JSON, and the keys whose stored row stays as it is. With a key twice
    nothing stays: all are written as given, and the table's key refuses them, as it always did.
    ``encodings``: the records' JSON, in order, if made already.
    """
    encoded = (
        [(r, codec.dumps(r)) for r in records] if encodings is None
        else list(zip(records, encodings, strict=True))
    )
    if len({key(r) for r in records}) < len(records):
        return encoded, set()
    same = {key(r) for r, data in encoded if stored.get(key(r)) == data}
    return [(r, data) for r, data in encoded if key(r) not in same], same


def _vpd(code: object) -> str:
    """A VPD code read from a row, as one shared string (a national file's records, register
    rows and notices hold it tens of thousands of times)."""
    return shared(str(code))


def _marks(chunk: Sequence[object]) -> str:
    return ", ".join("?" * len(chunk))


def _day(text: str) -> date:
    return date.fromisoformat(text)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def split_statements(script: str) -> list[str]:
    """The statements of an SQL script: split on ``;`` outside quotes and ``--`` comments."""
    statements: list[str] = []
    current: list[str] = []
    quote, comment = "", False
    for i, ch in enumerate(script):
        if comment:
            comment = ch != "\n"
            continue
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "-" and script[i + 1 : i + 2] == "-":
            comment = True
            continue
        elif ch == ";":
            statements.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    statements.append("".join(current).strip())
    return [s for s in statements if s]


def migrate(store: SqlStore) -> None:
    """Bring the schema up to date, in one write transaction.

    Two processes starting together on a new store: one applies the migrations, the other waits
    for its transaction and then finds nothing left to do.
    """
    with store.transaction():
        store.serialize("migrations")
        store.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = store.execute("SELECT MAX(version) FROM schema_version")[0][0] or 0
        for version, sql in migrations():
            if version > current:
                for statement in split_statements(sql):
                    store.execute(store.ddl(statement))
                store.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))


def migrations() -> Iterator[tuple[int, str]]:
    """(version, SQL) of every migration, in order."""
    folder = Path(__file__).parent / "migrations"
    for path in sorted(folder.glob("*.sql")):
        yield int(path.name.split("_", 1)[0]), path.read_text(encoding="utf-8")
