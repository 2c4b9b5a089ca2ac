"""TIS placement file → ESR applicant loads, MSO notifications, the applicant register (6.2).

Also the daily release of held placements (A3), as a scheduled job.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial

from gateway import faults
from gateway.flows import (
    HELD,
    Context,
    Held,
    NoticeParts,
    Output,
    Plan,
    Sink,
    Tally,
    Windowed,
    notification_outputs,
    one_key,
    two_keys,
    windows,
)
from gateway.models import (
    ApplicantRecord,
    Kept,
    LoadFile,
    LoadRecord,
    Occupant,
    Person,
    PersonMatch,
    Placement,
    PlacementFile,
    Position,
    Post,
    Result,
    SentApplicant,
)
from gateway.rules.placements import (
    Decider,
    PlacementDecision,
    PlacementView,
    decide,
    decide_released,
)
from gateway.store.base import stem_of
from gateway.store.interfaces import PlacementState
from gateway.xml import writers

MAX_PER_POSITION = 40  # A13: ESR quarantines a load with more records against one position
WINDOW = 2000  # placements whose state is read (and held) at once


@dataclass(frozen=True, slots=True)
class StoreView:
    """The read-only view of state the placement rules ask for, answered by the store."""

    store: PlacementState

    def positions_with_dpn(self, dpn: str) -> Sequence[tuple[str, Position | Post]]:
        """(vpd, position) of every position carrying the DPN."""
        return self.store.positions_with_dpn(dpn)

    def persons_like(self, vpd: str, date_of_birth: date) -> Sequence[Person | PersonMatch]:
        """ESR persons of the VPD born that day."""
        return self.store.persons_born(vpd, date_of_birth.isoformat())

    def sent(self, placement_id: str) -> Sequence[SentApplicant]:
        """The applicant register rows of a placement."""
        return self.store.sent(placement_id)

    def occupants(self, vpd: str, position_number: str) -> Sequence[Occupant]:
        """Sent placements and ESR assignments on a position."""
        sent = [
            Occupant(
                a.tis_person_id, None, a.placement.start, a.placement.end, a.placement_id
            )
            for a in self.store.applicants_on(vpd, position_number)
        ]
        return sent + self.store.assignment_occupants(vpd, position_number)

    def held(self, placement_id: str) -> Placement | None:
        """A held (deferred) placement."""
        return self.store.held(placement_id)


@dataclass(frozen=True, slots=True)
class PrefetchedView:
    """The state the placement rules need for a batch of placements, read at once: a few
    statements per file (per 2,000 distinct keys), not six per placement. Plain values; a
    question about something not prefetched (none is expected) is asked of the store."""

    store: PlacementState
    positions: dict[str, list[tuple[str, Post]]]
    persons: dict[tuple[str, str], list[PersonMatch]]
    register: dict[str, list[SentApplicant]]
    occupancy: dict[tuple[str, str], list[Occupant]]
    holds: dict[str, Placement]
    asked: frozenset[str]

    @classmethod
    def of(cls, store: PlacementState, placements: Sequence[Placement]) -> PrefetchedView:
        """Read what the rules will ask about ``placements``."""
        pids = {p.placement_id for p in placements}
        positions = store.positions_with_dpns({p.dpn for p in placements})
        births = {
            (vpd, p.trainee.date_of_birth.isoformat())
            for p in placements
            for vpd, _position in positions.get(p.dpn, ())
        }
        register = store.sent_many(pids)
        posts = {(vpd, pos.position_number) for found in positions.values() for vpd, pos in found}
        posts |= {(r.vpd, r.position_number) for rows in register.values() for r in rows}
        return cls(store, positions, store.persons_born_on(births), register,
                   store.occupants_of(posts), store.held_many(pids), frozenset(pids))

    def positions_with_dpn(self, dpn: str) -> Sequence[tuple[str, Position | Post]]:
        """(vpd, position) of every position carrying the DPN."""
        found = self.positions.get(dpn)
        return found if found is not None else self.store.positions_with_dpn(dpn)

    def persons_like(self, vpd: str, date_of_birth: date) -> Sequence[Person | PersonMatch]:
        """ESR persons of the VPD born that day."""
        key = (vpd, date_of_birth.isoformat())
        found = self.persons.get(key)
        return found if found is not None else self.store.persons_born(vpd, key[1])

    def sent(self, placement_id: str) -> Sequence[SentApplicant]:
        """The applicant register rows of a placement."""
        found = self.register.get(placement_id)
        return found if found is not None else self.store.sent(placement_id)

    def occupants(self, vpd: str, position_number: str) -> Sequence[Occupant]:
        """Sent placements and ESR assignments on a position."""
        found = self.occupancy.get((vpd, position_number))
        return found if found is not None else StoreView(self.store).occupants(
            vpd, position_number)

    def held(self, placement_id: str) -> Placement | None:
        """A held (deferred) placement."""
        if placement_id in self.asked:
            return self.holds.get(placement_id)
        return self.store.held(placement_id)


class WindowedView(Windowed[Placement, PlacementView]):
    """The placement rules' view, read a window of placements at a time (:class:`Windowed`):
    a :class:`PrefetchedView` per window, the store itself outside one."""

    def __init__(self, store: PlacementState, size: int = WINDOW) -> None:
        super().__init__(partial(PrefetchedView.of, store), StoreView(store), size)

    def positions_with_dpn(self, dpn: str) -> Sequence[tuple[str, Position | Post]]:
        """(vpd, position) of every position carrying the DPN."""
        return self.current.positions_with_dpn(dpn)

    def persons_like(self, vpd: str, date_of_birth: date) -> Sequence[Person | PersonMatch]:
        """ESR persons of the VPD born that day."""
        return self.current.persons_like(vpd, date_of_birth)

    def sent(self, placement_id: str) -> Sequence[SentApplicant]:
        """The applicant register rows of a placement."""
        return self.current.sent(placement_id)

    def occupants(self, vpd: str, position_number: str) -> Sequence[Occupant]:
        """Sent placements and ESR assignments on a position."""
        return self.current.occupants(vpd, position_number)

    def held(self, placement_id: str) -> Placement | None:
        """A held (deferred) placement."""
        return self.current.held(placement_id)


def plan(document: PlacementFile, ctx: Context) -> Plan:
    """Apply rules A1–A13 to a placement file."""
    view = WindowedView(ctx.store)
    decision = decide(view.over(document.placements), view, ctx.as_of, ctx.settings.rules)
    stem = ctx.receipt.stem if ctx.receipt else "placements"
    source = ctx.receipt.name if ctx.receipt else stem
    sha = ctx.receipt.sha256 if ctx.receipt else ""
    name = f"{stem}-{ctx.sha12}"
    loads = split_loads(decision.records, name, source)
    outputs = load_outputs(ctx, decision.records, name, source, sha)
    outputs += notification_outputs(ctx, decision.notices, f"notifications-{name}")
    result = Plan(outcomes=decision.outcomes, outputs=outputs)
    kept = kept_placements(decision, document.placements)  # the file's records are let go
    result.changes.append(partial(remember, decision, ctx, source, sha, loads, kept))
    return result


class _LoadSplit:
    """A13 over a file's records, as they come: per VPD, never more than 40 records against one
    position in a load file: ``applicants-<name>.xml``, then ``-2.xml``, … (from ``source``)."""

    def __init__(self, name: str, source: str, sha: str = "",
                 per_position: Tally[tuple[str, str]] | None = None) -> None:
        self.name = name
        self.source = source
        self.sha = sha
        # (vpd, position number) → records so far: in the store when the file is streamed
        self.per_position = Tally(None, "", two_keys) if per_position is None else per_position
        self.per_file: dict[tuple[str, int], int] = {}  # records in each file so far
        self._parts: dict[str, writers.Parts[ApplicantRecord]] = {}  # each VPD's load file

    def split(self, records: Sequence[ApplicantRecord]) -> list[_Part]:
        """The next records in their files, in order of files (VPD, then index)."""
        found: dict[tuple[str, int], list[ApplicantRecord]] = {}
        per_position = self.per_position
        per_position.read((record.vpd, record.position_number) for record in records)
        for record in records:
            key = (record.vpd, record.position_number)
            count = per_position.get(key)
            per_position[key] = count + 1
            found.setdefault((record.vpd, count // MAX_PER_POSITION), []).append(record)
        per_position.write()
        parts = []
        for (vpd, index), rows in sorted(found.items()):
            before = self.per_file.get((vpd, index), 0)
            self.per_file[(vpd, index)] = before + len(rows)
            name = f"applicants-{self.name}{'' if index == 0 else f'-{index + 1}'}.xml"
            parts.append(_Part(vpd, name, rows, before, self.source))
        return parts

    def append(self, sink: Sink, ctx: Context, records: Sequence[ApplicantRecord]
               ) -> list[_Part]:
        """:meth:`split`, each part appended to its load file's temporary output."""
        parts = self.split(records)
        for part in parts:
            if part.vpd not in self._parts:
                self._parts[part.vpd] = writers.applicant_load_parts(
                    part.vpd, ctx.now, self.source, self.sha)
            sink.append(ctx.output("esr", part.vpd, part.name), self._parts[part.vpd], part.rows)
        return parts


@dataclass(frozen=True, slots=True)
class _Part:
    """Records of one load file: ``rows``, after the ``before`` written into it already."""

    vpd: str
    name: str
    rows: list[ApplicantRecord]
    before: int
    source: str

    def load(self) -> LoadFile:
        """The part as the store remembers it (R1, R6): records numbered within the file."""
        return LoadFile(self.vpd, self.name, self.source, "", tuple(
            LoadRecord(r.placement_id, r.action, n, r.dpn, r.position_number)
            for n, r in enumerate(self.rows, self.before + 1)
        ))


def split_loads(records: Sequence[ApplicantRecord], name: str, source: str) -> list[LoadFile]:
    """The load files :func:`load_outputs` writes, as the store remembers them (R1, R6)."""
    return [part.load() for part in _LoadSplit(name, source).split(records)]


def stream(placements: Iterable[Placement], ctx: Context, sink: Sink) -> None:
    """:func:`plan` a window of placements at a time, as the file is read (issue 13): each
    window is decided against the store as the earlier windows left it (their changes are
    written into the caller's transaction before the next window's state is read), its records,
    notices and outcomes are appended to the outputs, and then it is let go. The outputs are
    those :func:`plan` gives for the whole file."""
    stem = ctx.receipt.stem if ctx.receipt else "placements"
    source = ctx.receipt.name if ctx.receipt else stem
    sha = ctx.receipt.sha256 if ctx.receipt else ""
    name = f"{stem}-{ctx.sha12}"
    ctx.store.begin_tallies()
    held = Held(HELD)
    seen = Tally(ctx.store, "A9", one_key, held)
    decider = Decider(ctx.as_of, ctx.settings.rules, seen)
    split = _LoadSplit(name, source, sha, Tally(ctx.store, "A13", two_keys, held))
    notices = NoticeParts(ctx, f"notifications-{name}")
    for window in windows(placements, WINDOW):
        seen.read(placement.placement_id for placement in window)
        decision = decider.decide(window, PrefetchedView.of(ctx.store, window))
        seen.write()
        parts = split.append(sink, ctx, decision.records)
        notices.append(sink, decision.notices)
        sink.outcomes(decision.outcomes)
        _remember_window(decision, ctx, source, sha, parts, kept_placements(decision, window))
        faults.crashpoint("window-written")


def _remember_window(decision: PlacementDecision, ctx: Context, source: str, sha: str,
                     parts: Sequence[_Part], kept: tuple[list[Kept], list[str]]) -> None:
    """:func:`remember` a window's decision, its load files continuing those of earlier
    windows."""
    remember(decision, ctx, source, sha, [part.load() for part in parts], kept, ctx.store,
             continued={(part.vpd, part.name) for part in parts if part.before})


def load_outputs(
    ctx: Context, records: Sequence[ApplicantRecord], name: str, source: str, sha: str
) -> list[Output]:
    """Applicant load files per VPD, never more than 40 records against one position (A13)."""
    outputs = []
    for part in _LoadSplit(name, source, sha).split(records):
        write = partial(
            writers.write_applicant_load, vpd=part.vpd, generated_at=ctx.now, source_file=source,
            source_sha256=sha, records=part.rows,
        )
        outputs.append(Output(ctx.output("esr", part.vpd, part.name), write))
    return outputs


def remember(
    decision: PlacementDecision,
    ctx: Context,
    source: str,
    sha: str,
    loads: Sequence[LoadFile],
    kept: tuple[list[Kept], list[str]],
    store: PlacementState,
    continued: Collection[tuple[str, str]] = (),
) -> None:
    """Commit a placement decision: the register, the loads, holds, and what R7 keeps
    (``kept``: :func:`kept_placements`). The loads ``continued`` ((vpd, name)) add records to
    one remembered by an earlier window of the file."""
    new = [load for load in loads if (load.vpd, load.name) not in continued]
    more = [load for load in loads if (load.vpd, load.name) in continued]
    store.save_applicants(decision.register, ctx.now, [*new, *more])
    registered = {(row.placement_id, row.vpd) for row in decision.register}
    store.record_loads(new, ctx.at, registered)
    store.add_load_records(more, registered)
    store.release(decision.release)
    window = timedelta(days=ctx.settings.rules.window_days)
    store.hold_many([(p, (p.start - window).isoformat()) for p in decision.hold], source, sha,
                    ctx.now)
    keep, unkeep = kept
    store.unkeep(unkeep)
    store.keep(keep, ctx.now)


def kept_placements(
    decision: PlacementDecision, received: Sequence[Placement]
) -> tuple[list[Kept], list[str]]:
    """R7: the upserts the rules rejected are kept to re-send (their last version); any other
    outcome of a placement (sent, unchanged, held, a withdraw) forgets what was kept of it."""
    first: dict[str, Placement] = {}
    for placement in received:
        first.setdefault(placement.placement_id, placement)
    keep, unkeep = [], []
    for outcome in decision.outcomes:
        found = first.get(outcome.record_id)
        if found is None or outcome.reason == "DUPLICATE_IN_FILE":
            continue
        if outcome.result == Result.REJECTED and found.action != "withdraw":
            keep.append(Kept(found, "rejected", outcome.vpd, outcome.reason))
        else:  # sent, unchanged, held, or withdrawn by TIS (even if never sent)
            unkeep.append(outcome.record_id)
    return keep, unkeep


def release_stream(ctx: Context, sink: Sink) -> Plan:
    """:func:`release_plan` a window of due holds at a time (issue 13), inside the caller's
    transaction, as :func:`stream` does for a file: the outputs are those of
    :func:`release_plan`."""
    as_of = ctx.as_of.isoformat()
    name = f"released-{as_of}"
    ctx.store.begin_tallies()
    seen = Tally(ctx.store, "A9", one_key, Held(HELD))
    decider = Decider(ctx.as_of, ctx.settings.rules, seen)
    splits: dict[tuple[str, str], _LoadSplit] = {}
    notices = NoticeParts(ctx, f"notifications-{name}")
    after: tuple[str, str] | None = None
    while page := ctx.store.held_due_page(as_of, after, WINDOW):
        after = (page[-1][1], page[-1][0].placement_id)
        due = [placement for placement, _due, _f, _s in page]
        sources = {placement.placement_id: (f, s) for placement, _due, f, s in page}
        seen.read(placement.placement_id for placement in due)
        decision = decider.decide_released(due, PrefetchedView.of(ctx.store, due))
        seen.write()
        by_source: dict[tuple[str, str], list[ApplicantRecord]] = {}
        for record in decision.records:
            by_source.setdefault(sources[record.placement_id], []).append(record)
        parts = []
        for (source, sha), records in sorted(by_source.items()):
            split = splits.get((source, sha))
            if split is None:
                per_position = Tally(ctx.store, f"A13 {len(splits)}", two_keys)
                split = splits[(source, sha)] = _LoadSplit(
                    f"{stem_of(source)}-{sha[:12]}-{name}", source, sha, per_position)
            parts += split.append(sink, ctx, records)
        notices.append(sink, decision.notices)
        sink.outcomes(decision.outcomes)
        _remember_window(decision, ctx, "released", "0" * 64, parts,
                         kept_placements(decision, due))
    return Plan()  # its changes are made as it goes


def release_plan(ctx: Context) -> Plan:
    """The daily job: send held placements now due (start − 91 days ≤ as-of), rules applied
    afresh; their outcomes reach the MSO as READY_TO_HIRE or REJECTED notifications."""
    due = ctx.store.held_due(ctx.as_of.isoformat())
    if not due:
        return Plan()
    decision = decide_released(due, PrefetchedView.of(ctx.store, due), ctx.as_of,
                               ctx.settings.rules)
    name = f"released-{ctx.as_of.isoformat()}"
    sources = {pid: (f, s) for pid, _due, f, s in ctx.store.held_sources()}
    outputs: list[Output] = []
    by_source: dict[tuple[str, str], list[ApplicantRecord]] = {}
    for record in decision.records:
        by_source.setdefault(sources.get(record.placement_id, ("released", "0" * 64)), []).append(
            record
        )
    loads: list[LoadFile] = []
    for (source, sha), records in sorted(by_source.items()):
        name_ = f"{stem_of(source)}-{sha[:12]}-{name}"
        outputs += load_outputs(ctx, records, name_, source, sha)
        loads += split_loads(records, name_, source)
    outputs += notification_outputs(ctx, decision.notices, f"notifications-{name}")
    result = Plan(outcomes=decision.outcomes, outputs=outputs)
    result.changes.append(partial(remember, decision, ctx, "released", "0" * 64, loads,
                                  kept_placements(decision, due)))
    return result
