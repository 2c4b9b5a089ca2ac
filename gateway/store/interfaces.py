"""The store as small interfaces, one per domain, each a ``typing.Protocol``.

A flow depends on the interfaces it uses (the positions flow on :class:`Positions`, the checks
flow on :class:`Applicants` and :class:`CheckTransfers`, …), never on a backend. Each backend
(``sqlite.py``, ``postgres.py``) provides all of them through :class:`~gateway.store.base.SqlStore`,
whose SQL is portable, with the dialect's differences (placeholders, identity columns, locks)
in the backend. :class:`Store` is the whole; the SFTP exchange's ledger is
:class:`~gateway.store.exchange.ExchangeLedger`, over :class:`Transactional`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from gateway.models import (
    Awaiting,
    Kept,
    LoadFile,
    Occupant,
    Person,
    PersonMatch,
    Placement,
    Position,
    Post,
    SentApplicant,
)
from gateway.store.base import Held, PendingOutput, Receipt


class Transactional(Protocol):
    """Transactions, locks across processes and nodes, and the store's identity."""

    single_node: bool  # a store of one machine (SQLite: one writer at a time), not shared

    def transaction(self) -> AbstractContextManager[None]:
        """All writes inside happen together or not at all."""
        ...

    def work_lock(self) -> AbstractContextManager[None]:
        """Held while a file or a job changes state: one at a time across every process."""
        ...

    def exclusive(self, name: str) -> AbstractContextManager[bool]:
        """Try to hold the lock ``name`` for the block, across processes and nodes (yields
        whether this process holds it)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...

    def __enter__(self) -> Any:
        """The store itself."""
        ...

    def __exit__(self, *exc: object) -> None:
        """Closes the store."""
        ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one portable SQL statement (``?`` placeholders), for ledgers in other modules."""
        ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one portable SQL statement for many rows."""
        ...

    def store_id(self) -> tuple[str, bool]:
        """This store's identity (``var/store-id``), and whether the store is new."""
        ...


class Ledger(Protocol):
    """Inbound files: claims owned and leased, attempts, fates, outputs to publish."""

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
        """Record a file about to be claimed into ``folder``, owned by ``owner``."""
        ...

    def claimed(self, rid: int, sha256: str) -> Receipt:
        """The file is in ``var/processing/`` and its content hashed."""
        ...

    def drop_claim(self, rid: int) -> None:
        """Forget a claim whose file never reached ``var/processing/``."""
        ...

    def receipt(self, rid: int) -> Receipt:
        """A receipt by id."""
        ...

    def open_receipts(self) -> list[Receipt]:
        """Receipts whose input has not yet been archived or quarantined."""
        ...

    def held_receipts(self) -> list[Held]:
        """Open receipts with their owners' leases, oldest first."""
        ...

    def take_over(self, rid: int, old_owner: str | None, owner: str, lease_until: float) -> bool:
        """Become the owner of an open receipt if ``old_owner`` still holds it (one wins)."""
        ...

    def clock(self) -> float:
        """Seconds since the epoch by the store's clock, in which leases are set and compared
        (on PostgreSQL the server's, shared by every node; on SQLite this host's)."""
        ...

    def wait_at_most(self, seconds: float) -> None:
        """From now on, this thread waits at most ``seconds`` for a connection to the store
        before :class:`~gateway.errors.StoreUnavailable` (the operator's pages: a store that
        is down is said at once, not after the pipeline's patience)."""
        ...

    def renew(self, owner: str, lease_until: float) -> int:
        """Extend the lease on every open receipt ``owner`` holds; returns how many."""
        ...

    def begin_attempt(self, rid: int, owner: str, *, give_back: int = 0) -> int:
        """Count one more start of work on a file (before the work); returns the count."""
        ...

    def undo_attempt(self, rid: int, error: str) -> None:
        """Give back an attempt that failed for a reason that was not the file's."""
        ...

    def last_error(self, rid: int) -> str | None:
        """The last error noted for a file."""
        ...

    def note_error(self, rid: int, error: str) -> None:
        """Keep the last error of a file's failed attempt."""
        ...

    def processed_file(self, sha256: str) -> str | None:
        """The name of an earlier file with these exact bytes that was processed, if any."""
        ...

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
        ...

    def add_pending_outputs(
        self, rid: int, outputs: Sequence[tuple[Path, Path, int | None, int | None]]
    ) -> None:
        """List outputs written under temporary names (with inode and size), to rename once"""
        ...

    def pending_outputs(self, rid: int | None = None) -> list[PendingOutput]:
        """Outputs committed but perhaps not yet renamed into place: those of receipt ``rid``
        (0: of the jobs), or all of them."""
        ...

    def clear_outputs(self, rid: int) -> None:
        """Forget the pending outputs of a receipt once they are all in place."""
        ...

    def close_receipt(self, rid: int) -> None:
        """The input has left ``var/processing/`` and the outputs are in place: nothing more to
        recover for it; its pending outputs forgotten with it, in one transaction."""
        ...

    def file_counts(self) -> list[tuple[str, str, int]]:
        """(channel, status, count) over the whole ledger."""
        ...

    def receipts_since(self, after_id: int = 0) -> list[tuple[int, str, str, str]]:
        """(id, name, status, ack_name) of receipts after ``after_id``."""
        ...


class Positions(Protocol):
    """The position register per VPD, DPNs seen, what is on the interface, extracts."""

    def positions(self, vpd: str) -> dict[int, Position]:
        """The position register of a VPD, by ESR position id."""
        ...

    def posts(self, vpd: str) -> list[Post]:
        """What the person rules need of each position of the VPD's register."""
        ...

    def positions_with_dpn(self, dpn: str) -> list[tuple[str, Position]]:
        """(vpd, position) of every registered position carrying ``dpn``, in any VPD."""
        ...

    def save_positions(self, vpd: str, positions: Sequence[Position], *, replace: bool,
                       encoded: Sequence[str] | None = None) -> None:
        """Write positions into a VPD's register; ``replace`` drops those not given.
        ``encoded``: each one as the store encodes it, in order, if made already."""
        ...

    def seen_dpns(self, vpd: str) -> set[str]:
        """Every DPN ever seen in the VPD."""
        ...

    def add_seen_dpns(self, vpd: str, dpns: Sequence[str], at: str) -> None:
        """Remember DPNs as seen in the VPD."""
        ...

    def interface_posts(self, vpd: str) -> dict[int, tuple[str, str]]:
        """What was on the interface at the VPD's last extract: id → (dpn, deanery)."""
        ...

    def set_interface_posts(self, vpd: str, posts: dict[int, tuple[str, str]]) -> None:
        """Replace the VPD's record of what is on the interface."""
        ...

    def vpds(self) -> list[str]:
        """Every VPD with a position register."""
        ...

    def record_extract(
        self, kind: str, vpd: str, deanery: str, extract_date: str, path: str, at: str
    ) -> None:
        """Note the last extract written for (kind, VPD, deanery)."""
        ...

    def extracts(self) -> list[tuple[str, str, str, str]]:
        """(kind, vpd, deanery, extract_date) of the last extract of each."""
        ...

    def positions_with_dpns(self, dpns: Collection[str]) -> dict[str, list[tuple[str, Post]]]:
        """(vpd, post) of every registered position carrying each DPN, in any VPD."""
        ...


class Persons(Protocol):
    """ESR persons and their assignments per VPD, and what was last sent to TIS."""

    def replace_persons(self, vpd: str, persons: Sequence[Person],
                        encoded: Sequence[str] | None = None) -> None:
        """Make ``persons`` the VPD's persons (a person extract is a full snapshot);
        ``encoded``: each one as the store encodes it, in order, if made already."""
        ...

    def persons(self, vpd: str) -> list[Person]:
        """Every person of the VPD."""
        ...

    def persons_born(self, vpd: str, date_of_birth: str) -> list[Person]:
        """Persons of the VPD born on that day (candidates for a match)."""
        ...

    def assignment_occupants(self, vpd: str, position_number: str) -> list[Occupant]:
        """ESR assignments on a position that are not terminated."""
        ...

    def fingerprints(self, vpd: str) -> dict[str, tuple[str, bool]]:
        """esr_person_id → (fingerprint last sent, whether the person was in scope)."""
        ...

    def save_fingerprints(self, vpd: str, rows: Sequence[tuple[str, str, bool]], at: str) -> None:
        """Upsert (esr_person_id, fingerprint, in_scope) rows."""
        ...

    def persons_born_on(
        self, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], list[PersonMatch]]:
        """What A8 compares of the persons of each (VPD, date of birth)."""
        ...


class Applicants(Protocol):
    """The applicant register: what was sent to ESR for each placement and VPD."""

    def save_applicants(self, rows: Sequence[SentApplicant], at: str,
                        loads: Sequence[LoadFile] = ()) -> None:
        """Upsert applicant register rows; those whose placement goes in ``loads`` (to their
        VPD) record that load as :meth:`record_loads` does."""
        ...

    def sent(self, placement_id: str) -> list[SentApplicant]:
        """The register rows of a placement, one per VPD it was sent to."""
        ...

    def applicants_on(self, vpd: str, position_number: str) -> list[SentApplicant]:
        """Applicants sent (and not withdrawn) for a position."""
        ...

    def applicants_born(self, vpd: str, date_of_birth: str) -> list[SentApplicant]:
        """Applicants of the VPD (withdrawn or not) whose trainee was born that day."""
        ...

    def sent_many(self, placement_ids: Collection[str]) -> dict[str, list[SentApplicant]]:
        """The register rows of each placement, one per VPD it was sent to."""
        ...

    def occupants_of(
        self, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], list[Occupant]]:
        """For each (VPD, position number): applicants and ESR assignments on it."""
        ...


class Holds(Protocol):
    """Placements deferred by A3 until they are due."""

    def hold(self, placement: Placement, source_file: str, sha256: str, due: str, at: str) -> None:
        """Hold a deferred placement until ``due`` (A3), replacing an earlier hold."""
        ...

    def hold_many(
        self, holds: Sequence[tuple[Placement, str]], source_file: str, sha256: str, at: str
    ) -> None:
        """Hold many deferred placements, each until its due date, replacing earlier holds."""
        ...

    def release(self, placement_ids: Sequence[str]) -> None:
        """Forget holds."""
        ...

    def held(self, placement_id: str) -> Placement | None:
        """A held placement, if any."""
        ...

    def held_due(self, as_of: str) -> list[Placement]:
        """Held placements due on or before ``as_of``, earliest first."""
        ...

    def held_due_page(
        self, as_of: str, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[Placement, str, str, str]]:
        """:meth:`held_due` a page at a time, after the (due, placement id) ``after``: each
        hold's (placement, due, source file, source SHA-256)."""
        ...

    def held_sources(self) -> list[tuple[str, str, str, str]]:
        """(placement id, due, source file, source SHA-256) of every hold."""
        ...

    def held_all(self) -> list[tuple[str, str, str]]:
        """(placement id, due date, source file) of every hold."""
        ...

    def held_many(self, placement_ids: Collection[str]) -> dict[str, Placement]:
        """The held placements among ``placement_ids``."""
        ...


class CheckTransfers(Protocol):
    """Trac checks transferred (C3: once per applicant)."""

    def transferred(self, vpd: str, placement_id: str) -> bool:
        """Whether checks already went for this applicant (C3)."""
        ...

    def record_transfer(
        self, vpd: str, placement_id: str, trac_applicant_id: str, sha256: str, at: str
    ) -> None:
        """Remember a one-off check transfer."""
        ...

    def applicants_born_many(
        self, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], list[SentApplicant]]:
        """Applicants by (vpd, date of birth) for many pairs at once (every pair present)."""
        ...

    def transferred_many(self, placement_ids: Collection[str]) -> set[tuple[str, str]]:
        """(vpd, placement id) of every one-off transfer of these placements (C3)."""
        ...

    def record_transfers(self, rows: Sequence[tuple[str, str, str, str, str]]) -> None:
        """Remember many one-off transfers: (vpd, placement, applicant, sha256, at)."""
        ...


class Tallies(Protocol):
    """What a file decided a window at a time remembers across its windows (A9, A13, C3):
    counts by (tally, a, b), in the store for the file's transaction only."""

    def begin_tallies(self) -> None:
        """Start the file's tallies afresh (inside its transaction)."""
        ...

    def tallies(self, tally: str, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The counts of ``tally`` of these (a, b) keys that have one."""
        ...

    def set_tallies(self, tally: str, counts: Mapping[tuple[str, str], int]) -> None:
        """Set the counts of ``tally`` of these (a, b) keys."""
        ...


class Jobs(Protocol):
    """When each scheduled job last ran."""

    def job_last_run(self, name: str) -> str | None:
        """When a scheduled job last ran (its own key: a date, a week)."""
        ...

    def set_job_run(self, name: str, key: str) -> None:
        """Record that a scheduled job ran for ``key``."""
        ...


class Loads(Protocol):
    """Applicant load files written and what ESR confirmed of them (spec 6.5, R1–R6)."""

    def record_loads(self, loads: Sequence[LoadFile], at: str,
                     registered: Collection[tuple[str, str]] = ()) -> None:
        """Remember applicant load files written (R1, R6), and in the register where each
        placement last went: that load and record, the action, state ``sent`` (but for the
        (placement id, VPD) pairs ``registered``, whose :meth:`save_applicants` did)."""
        ...

    def add_load_records(self, loads: Sequence[LoadFile],
                         registered: Collection[tuple[str, str]] = ()) -> None:
        """Add records to load files already remembered (a file decided a window at a time);
        ``registered`` as :meth:`record_loads`."""
        ...

    def load_file(self, vpd: str, name: str) -> LoadFile | None:
        """An applicant load file written for the VPD, with its records, if any."""
        ...

    def confirm_records(
        self, vpd: str, load_file: str, rows: Sequence[tuple[str, str, str]], at: str
    ) -> None:
        """Mark load records (placement id, action, status) as confirmed by ESR."""
        ...

    def set_esr_states(
        self, rows: Sequence[tuple[str, str, str, str | None, str | None, str | None]]
    ) -> None:
        """(placement id, vpd, state, applicant number, assignment id, ESR's message): the
        register's ESR state of an applicant; a number or id not given is kept."""
        ...

    def esr_state(self, placement_id: str, vpd: str) -> tuple[str, str | None, str | None,
                                                               str | None] | None:
        """(state, applicant number, assignment id, ESR's message) of a register row."""
        ...

    def loads_awaiting(self) -> list[Awaiting]:
        """Load files with records ESR has not confirmed, oldest first, counted."""
        ...

    def unconfirmed_ids(self, files: Collection[tuple[str, str]], first: int
                        ) -> dict[tuple[str, str], list[str]]:
        """The ``first`` placement ids (sorted, each once) of each (vpd, name) load file's
        records ESR has not confirmed."""
        ...

    def unconfirmed_raised(self) -> set[tuple[str, str]]:
        """(vpd, name) of load files LOAD_UNCONFIRMED was raised for (R6: once)."""
        ...

    def mark_unconfirmed(self, keys: Sequence[tuple[str, str]], at: str) -> None:
        """Record that LOAD_UNCONFIRMED was raised for these (vpd, name) load files."""
        ...

    def failed_applicants(self) -> list[tuple[str, str, str, str | None]]:
        """(placement id, vpd, last action, load file) of register rows ESR failed."""
        ...


class Resends(Protocol):
    """R7: placements kept to re-send, and the numbering of re-sends."""

    def keep(self, kept: Sequence[Kept], at: str) -> None:
        """R7: keep (replace) the last version of placements to re-send."""
        ...

    def unkeep(self, placement_ids: Collection[str]) -> None:
        """Forget kept placements (sent, withdrawn or superseded)."""
        ...

    def kept(self, placement_id: str | None = None) -> list[Kept]:
        """Kept placements (one, or all), by placement id."""
        ...

    def next_resend(self, day: str) -> int:
        """The n of the next ``resend-<day>-<n>`` (call under the work lock)."""
        ...

    def record_resend(self, day: str, n: int, at: str) -> None:
        """A resend committed (inside its transaction): its n is taken."""
        ...


class Requeues(Protocol):
    """Quarantined files taken through the pipeline again, linked in the ledger."""

    def quarantined(self, name: str) -> tuple[int, str] | None:
        """(receipt id, channel) of the latest rejected receipt stored as ``name``."""
        ...

    def link_requeue(self, rid: int, requeued_from: int) -> None:
        """The ledger links a requeued file's receipt to the one that quarantined it."""
        ...

    def requeued_from(self, rid: int) -> int | None:
        """The receipt a requeued file came from."""
        ...


class Store(
    Transactional, Ledger, Positions, Persons, Applicants, Holds, CheckTransfers, Jobs, Loads,
    Resends, Requeues, Tallies, Protocol
):
    """Every interface of the gateway's state: what a backend provides."""


class PlacementState(Positions, Persons, Applicants, Holds, Loads, Resends, Tallies,
                     Protocol):
    """What the placements flow reads and writes."""


class PersonState(Positions, Persons, Protocol):
    """What the persons flow reads and writes."""


class CheckState(Applicants, CheckTransfers, Tallies, Protocol):
    """What the checks flow reads and writes."""


class ConfirmationState(Positions, Applicants, Loads, Resends, Protocol):
    """What the confirmations flow reads and writes."""
