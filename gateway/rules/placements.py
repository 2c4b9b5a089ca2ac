"""TIS placements → ESR applicant records (spec 6.2, A1–A12).

Pure: a function of the placements of one file, a read-only :class:`PlacementView` of the
gateway's state and the as-of date. The placements are decided in file order, each against the
view as changed by the ones before it (an overlay), so a later placement sees an earlier one's
register rows and holds. Each placement meets these rules, in this order:

A9   A placementId already seen in the file is rejected ``DUPLICATE_IN_FILE``; the first wins and
     the later one changes nothing.
A11  A ``withdraw`` of a placement with register rows not withdrawn sends a withdraw record (the
     content last sent) and a ``WITHDRAWAL`` notice to each such VPD; of a held placement it
     clears the hold (withdrawn, nothing sent, no notice); otherwise ``UNKNOWN_PLACEMENT``.
     Withdrawals are never subject to A2/A3: an MSO must always learn of one. R4: a row whose
     create ESR failed is withdrawn in the register with no record (ESR holds no applicant).
A12  A ``Grade`` in the out-of-scope list is ``OUT_OF_SCOPE``.
A1   ``ProjectedEndDate`` must be after ``ProjectedStartDate`` (equal is ``END_BEFORE_START``).
A4   The DPN must be on the interface (P1) in some VPD: ``UNKNOWN_DPN`` when no position carries
     it at all, else ``POST_NOT_ACTIVE``.
A5   In each such VPD the DPN must be on one position on the interface: ``DUPLICATE_POSITION``.
A6   A lone VPD takes its ``HostLeadFlag`` (``Lead`` when absent); several need exactly one
     ``Lead`` and the others ``Host``: ``HOST_LEAD_CONFLICT``.
A8   Per VPD, ESR persons with the same date of birth, surname and first forename (trimmed,
     inner spaces collapsed, case-insensitive), the same GMC number (none never matches) and the
     same NINO where both have one: one gives ``ExistingEsrPersonId``, more are
     ``AMBIGUOUS_PERSON_MATCH``.
A7   On a ``Single`` position, another trainee's sent placement or ESR assignment overlapping the
     dates (both ends inclusive, open end = forever) is ``POSITION_OCCUPIED`` (the text names the
     one that starts first). The same TIS
     person, the ESR person matched by A8 and the placement's own register row never clash.
A10  Against the register rows not withdrawn (R4: nor a create ESR failed, which was never
     sent, so the placement is created again there; an update ESR failed is sent again whole,
     even when identical): identical in every VPD is ``unchanged`` (checked
     before A2/A3). A different trainee is a replacement (withdraw the old record, create the
     new, ``REPLACEMENT``); other differences are an ``update`` listing the changed elements,
     with ``CHANGE_OF_START_DATE`` / ``CHANGE_OF_END_DATE`` for dates. A VPD sent to earlier that
     no longer takes the placement (its post left the interface) gets a withdraw record.
A2   A create or update starting less than ``cutoff_days`` after as-of is ``START_TOO_SOON``.
A3   A placement with no live register row starting more than ``window_days`` after as-of is
     held (``deferred``, no record); one already sent goes out as an update however far ahead.

Otherwise each VPD gets a ``create`` (with ``READY_TO_HIRE``) or the records of A10, and any hold
of the placement is released. Every rejection raises a ``REJECTED`` notice in each VPD where the
DPN is on a position (on the interface or not) and releases a hold; rejected, deferred and
unchanged placements change no register row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import lru_cache
from typing import Protocol

from gateway.codes import INVALID_ROUTING_CODE, deanery_refusal
from gateway.config import Rules
from gateway.models import (
    ApplicantRecord,
    EsrState,
    Notice,
    NoticeType,
    Occupant,
    Outcome,
    Person,
    PersonMatch,
    Placement,
    Position,
    Post,
    Result,
    SentApplicant,
    Trainee,
    quick_init,
    shared,
)
from gateway.rules import Marks
from gateway.rules.positions import ON_INTERFACE_STATUSES, on_interface

LEAD = "Lead"
HOST = "Host"
SINGLE = "Single"
WITHDRAW = "withdraw"


class PlacementView(Protocol):
    """A read-only view of the gateway's state, as the placement rules need it."""

    def positions_with_dpn(self, dpn: str) -> Sequence[tuple[str, Position | Post]]:
        """(vpd, position) in every VPD carrying the DPN, on the interface or not."""
        ...

    def persons_like(self, vpd: str, date_of_birth: date) -> Sequence[Person | PersonMatch]:
        """Candidate ESR persons of the VPD born that day (the rules filter precisely)."""
        ...

    def sent(self, placement_id: str) -> Sequence[SentApplicant]:
        """The register rows of a placement, one per VPD it was sent to, withdrawn ones too."""
        ...

    def occupants(self, vpd: str, position_number: str) -> Sequence[Occupant]:
        """Sent placements not withdrawn and ESR assignments not terminated on a position."""
        ...

    def held(self, placement_id: str) -> Placement | None:
        """A deferred placement (A3) not yet sent."""
        ...


@dataclass(slots=True)
class PlacementDecision:
    """Everything the rules decided for some placements: outputs and state changes."""

    outcomes: list[Outcome] = field(default_factory=list)
    records: list[ApplicantRecord] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    register: list[SentApplicant] = field(default_factory=list)
    hold: list[Placement] = field(default_factory=list)
    release: list[str] = field(default_factory=list)
    _releasing: set[str] = field(default_factory=set, repr=False)  # ``release`` as a set

    def extend(self, other: PlacementDecision) -> None:
        """Append another decision's outputs and state changes to this one."""
        self.outcomes += other.outcomes
        self.records += other.records
        self.notices += other.notices
        self.register += other.register
        self.hold += other.hold
        for pid in other.release:
            self.add_release(pid)

    def add_release(self, pid: str) -> None:
        """Release ``pid``'s hold (once), in constant time whatever was released before."""
        if len(self._releasing) != len(self.release):  # appended to directly: catch up
            self._releasing = set(self.release)
        if pid not in self._releasing:
            self._releasing.add(pid)
            self.release.append(pid)


def decide(
    placements: Iterable[Placement], view: PlacementView, as_of: date, rules: Rules
) -> PlacementDecision:
    """Decide the placements of one file, in order: one outcome each (A1–A12).

    ``placements`` is iterated once, in order (the view may follow it: the flow's reads the
    state of a window of placements at a time)."""
    return Decider(as_of, rules).decide(placements, view)


class Decider:
    """Decides a file's placements in parts (windows), in file order: what it remembers between
    parts is the placement ids seen (A9: ``seen``, a set unless the flow keeps them). Within a
    part, each placement sees the view as changed by the part's earlier placements (the
    overlay); a later part's view must show what the earlier parts decided (the flow writes it
    into the store first, in the file's transaction). Deciding a whole file as one part is
    :func:`decide`."""

    def __init__(self, as_of: date, rules: Rules, seen: Marks[str] | None = None) -> None:
        self.as_of = as_of
        self.rules = rules
        self.seen: Marks[str] = set() if seen is None else seen

    def decide(self, placements: Iterable[Placement], view: PlacementView) -> PlacementDecision:
        """Decide the next placements of the file against ``view``: one outcome each."""
        state = _Overlay(view)
        decision = PlacementDecision()
        seen = self.seen
        for placement in placements:
            if placement.placement_id in seen:
                refusal = _Refusal("DUPLICATE_IN_FILE", _duplicate_text(placement))
                one = _rejected(placement, state, self.as_of, refusal, release=False)
            else:
                seen.add(placement.placement_id)
                one = _decide_one(placement, state, self.as_of, self.rules)
            state.apply(one)
            decision.extend(one)
        return decision

    def decide_released(self, placements: Sequence[Placement],
                        view: PlacementView) -> PlacementDecision:
        """The next held placements now due (:func:`decide_released`), against ``view``."""
        decision = self.decide(placements, view)
        again = {p.placement_id for p in decision.hold}
        for placement in placements:
            if placement.placement_id not in again:
                decision.add_release(placement.placement_id)
        return decision


def decide_released(
    placements: Sequence[Placement], view: PlacementView, as_of: date, rules: Rules
) -> PlacementDecision:
    """Decide held placements now due (the daily job): as :func:`decide`, every hold released.

    A placement deferred again (the window was shortened, say) keeps its new hold instead.
    """
    return Decider(as_of, rules).decide_released(placements, view)


# --- the view as changed by the file so far ------------------------------------------------------


class _Overlay:
    """The view with the register rows and holds decided earlier in the same file laid over it.

    Held for the whole file, so kept small: a list per placement and per position (most hold
    one row; a dict each was most of the memory of deciding a national file)."""

    def __init__(self, view: PlacementView) -> None:
        self._view = view
        self._by_placement: dict[str, list[SentApplicant]] = {}  # one row per VPD
        self._by_position: dict[tuple[str, str], list[SentApplicant]] = {}
        self._holds: dict[str, Placement | None] = {}

    def positions_with_dpn(self, dpn: str) -> Sequence[tuple[str, Position | Post]]:
        """As the view: the file does not change positions."""
        return self._view.positions_with_dpn(dpn)

    def persons_like(self, vpd: str, date_of_birth: date) -> Sequence[Person | PersonMatch]:
        """As the view: the file does not change persons."""
        return self._view.persons_like(vpd, date_of_birth)

    def sent(self, placement_id: str) -> Sequence[SentApplicant]:
        """The view's rows of the placement, replaced by any decided since."""
        found = self._view.sent(placement_id)
        decided = self._by_placement.get(placement_id)
        if not decided and len(found) < 2:  # nearly always: one row or none, nothing laid over
            return found
        rows = {row.vpd: row for row in found}
        rows.update((row.vpd, row) for row in decided or ())
        return [rows[vpd] for vpd in sorted(rows)]

    def occupants(self, vpd: str, position_number: str) -> Sequence[Occupant]:
        """The view's occupants, with the placements decided since in their new state."""
        decided = self._by_placement
        kept = [
            o
            for o in self._view.occupants(vpd, position_number)
            if o.placement_id is None or o.placement_id not in decided
            or self._decided(o.placement_id, vpd) is None
        ]
        added = [
            _occupant(row)
            for row in self._by_position.get((vpd, position_number), ())
            if not row.withdrawn
        ]
        return kept + added

    def held(self, placement_id: str) -> Placement | None:
        """The hold decided since, or else the view's."""
        if placement_id in self._holds:
            return self._holds[placement_id]
        return self._view.held(placement_id)

    def apply(self, decision: PlacementDecision) -> None:
        """Lay a placement's decision over the view."""
        for row in decision.register:
            rows = self._by_placement.setdefault(row.placement_id, [])
            old = self._decided(row.placement_id, row.vpd)
            if old is not None:
                rows.remove(old)
                self._by_position[(old.vpd, old.position_number)].remove(old)
            rows.append(row)
            self._by_position.setdefault((row.vpd, row.position_number), []).append(row)
        if decision.release:
            self._holds.update(dict.fromkeys(decision.release))
        if decision.hold:
            self._holds.update({p.placement_id: p for p in decision.hold})

    def _decided(self, placement_id: str, vpd: str) -> SentApplicant | None:
        """The row decided since for the placement in the VPD."""
        return next((r for r in self._by_placement.get(placement_id, ()) if r.vpd == vpd), None)


def _occupant(row: SentApplicant) -> Occupant:
    return Occupant(
        row.tis_person_id, None, row.placement.start, row.placement.end, row.placement_id
    )


# --- one placement -------------------------------------------------------------------------------


class _Refusal(Exception):
    """A rule refused the placement: the reason code and a sentence an MSO can act on."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


@quick_init
@dataclass(frozen=True, slots=True)
class _Target:
    """A VPD the placement goes to: its position, the employer role and the matched person."""

    vpd: str
    position: Position | Post
    role: str
    person_id: str | None


def _decide_one(
    placement: Placement, state: PlacementView, as_of: date, rules: Rules
) -> PlacementDecision:
    try:
        _check_routing(placement)
        if placement.action == WITHDRAW:
            return _withdraw(placement, state)
        return _upsert(placement, state, as_of, rules)
    except _Refusal as refusal:
        held = state.held(placement.placement_id) is not None
        return _rejected(placement, state, as_of, refusal, release=held)


def _withdraw(placement: Placement, state: PlacementView) -> PlacementDecision:
    """A11: withdraw what was sent, or drop a hold, or refuse."""
    pid = placement.placement_id
    held = state.held(pid) is not None
    rows = [row for row in state.sent(pid) if not row.withdrawn]
    if rows:
        decision = PlacementDecision(release=[pid] if held else [])
        sent = [row for row in rows if not row.failed_create]
        for row in sent:
            _withdraw_row(decision, row, "TIS withdrew the placement")
        for row in rows:
            if row.failed_create:  # R4: ESR never made the applicant: nothing to withdraw
                decision.register.append(replace(row, withdrawn=True))
        lead = next((row.vpd for row in rows if row.employer_role == LEAD), None)
        decision.outcomes.append(Outcome(pid, Result.WITHDRAWN, _withdrawn_text(rows), vpd=lead))
        return decision
    if held:
        text = "Withdrawn while held before sending: nothing had gone to ESR, nothing goes now."
        return PlacementDecision(outcomes=[Outcome(pid, Result.WITHDRAWN, text)], release=[pid])
    raise _Refusal(
        "UNKNOWN_PLACEMENT",
        f"Placement {pid} cannot be withdrawn: it was never sent to ESR or is already "
        "withdrawn. Nothing to do in ESR unless the trainee was hired directly.",
    )


def _withdrawn_text(rows: Sequence[SentApplicant]) -> str:
    sent = ", ".join(row.vpd for row in rows if not row.failed_create)
    failed = ", ".join(row.vpd for row in rows if row.failed_create)
    parts = [f"Withdrawal sent to ESR ({sent}): the applicant must not be hired."] if sent else []
    if failed:
        parts.append(f"ESR had failed the create ({failed}): no applicant exists there, no "
                     "withdrawal is sent.")
    return " ".join(parts)


def _upsert(
    placement: Placement, state: PlacementView, as_of: date, rules: Rules
) -> PlacementDecision:
    """A12, A1, A4–A8, A7, A10, A2, A3, then send (the routing codes checked before)."""
    pid = placement.placement_id
    _check_scope(placement, rules)
    _check_dates(placement)
    targets = _targets(placement, state, as_of)
    lead = _lead_vpd([(t.vpd, t.position) for t in targets])
    active = {
        row.vpd: row for row in state.sent(pid) if not row.withdrawn and not row.failed_create
    }  # R4: a create ESR failed was never sent
    if active:
        decision = _plan(placement, targets, active)
        if not decision.records:
            text = "Identical to what was last sent to ESR: nothing sent."
            return PlacementDecision(outcomes=[Outcome(pid, Result.UNCHANGED, text, vpd=lead)])
        _check_cutoff(placement, as_of, rules)
    else:  # a create in every VPD, so never unchanged: A2 and A3 first, no records built for
        _check_cutoff(placement, as_of, rules)  # a placement refused or held
        if (placement.start - as_of).days > rules.window_days:
            return _deferred(placement, as_of, rules, lead)
        decision = _plan(placement, targets, active)
    result = Result.UPDATED if active else Result.LOADED
    decision.outcomes.append(Outcome(pid, result, _sent_text(decision.records), vpd=lead))
    if state.held(pid) is not None:
        decision.release.append(pid)
    return decision


def _deferred(
    placement: Placement, as_of: date, rules: Rules, lead: str | None
) -> PlacementDecision:
    """A3: held until ``window_days`` before the start."""
    text = _deferred_text(placement.start, rules.window_days, as_of)
    outcome = Outcome(placement.placement_id, Result.DEFERRED, text, vpd=lead)
    return PlacementDecision(outcomes=[outcome], hold=[placement])


@lru_cache(maxsize=1024)
def _deferred_text(start: date, window_days: int, as_of: date) -> str:
    """One text per start day, however many are held (made once, not per placement)."""
    due = start - timedelta(days=window_days)
    return (f"Starts on {start}, more than {window_days} days after {as_of}: held, and sent "
            f"to ESR on the first run on or after {due}.")


def _rejected(
    placement: Placement, state: PlacementView, as_of: date, refusal: _Refusal, *, release: bool
) -> PlacementDecision:
    """A rejected outcome, and a REJECTED notice to each VPD known to carry the DPN."""
    pid = placement.placement_id
    known = state.positions_with_dpn(placement.dpn)
    by_vpd = _by_vpd(known)
    notices = [
        Notice(
            NoticeType.REJECTED,
            vpd,
            refusal.text,
            placement_id=pid,
            dpn=placement.dpn,
            position_number=_position_number(positions, as_of),
            trainee=_trainee_name(placement.trainee),
            reason=refusal.reason,
        )
        for vpd, positions in sorted(by_vpd.items())
    ]
    live = [(vpd, p) for vpd, p in known if on_interface(p, as_of)]
    outcome = Outcome(
        pid, Result.REJECTED, refusal.text, reason=refusal.reason, vpd=_lead_vpd(live or known)
    )
    return PlacementDecision(outcomes=[outcome], notices=notices, release=[pid] if release else [])


# --- A12, A1, A2 ---------------------------------------------------------------------------------


def _check_routing(placement: Placement) -> None:
    """The deanery codes (P3: ManagingDeaneryBody, the DPN's first segment) must be plain."""
    wrong = deanery_refusal(placement.managing_deanery_body, placement.dpn)
    if wrong is not None:
        raise _Refusal(
            INVALID_ROUTING_CODE,
            f"{wrong} is not a plain deanery code (A-Z, 0-9, '_' or '-', at most 16): ask the "
            "local office to correct it in TIS.",
        )


def _check_scope(placement: Placement, rules: Rules) -> None:
    """A12: grades out of scope (GP training by default) do not travel."""
    if placement.grade in rules.out_of_scope_grades:
        raise _Refusal(
            "OUT_OF_SCOPE",
            f"Grade {placement.grade} is out of scope for the interface: hire the trainee "
            "directly in ESR if your organisation employs them.",
        )


def _check_dates(placement: Placement) -> None:
    """A1: the end must be after the start."""
    if placement.end <= placement.start:
        raise _Refusal(
            "END_BEFORE_START",
            f"Projected end date {placement.end} is not after the projected start date "
            f"{placement.start}: ask the local office to correct the dates in TIS.",
        )


def _check_cutoff(placement: Placement, as_of: date, rules: Rules) -> None:
    """A2: nothing is sent later than ``cutoff_days`` before the start."""
    if (placement.start - as_of).days < rules.cutoff_days:
        raise _Refusal(
            "START_TOO_SOON",
            f"Projected start {placement.start} is less than {rules.cutoff_days} days after "
            f"{as_of}, too late for the interface: hire the trainee directly in ESR.",
        )


# --- A4, A5, A6, A8, A7: where the placement goes ------------------------------------------------


def _targets(placement: Placement, state: PlacementView, as_of: date) -> list[_Target]:
    """The VPDs the placement goes to, each with its position, role and matched person."""
    positions = _positions(placement, state, as_of)
    roles = _roles(placement.dpn, positions)
    targets = [
        _Target(vpd, position, roles[vpd], _match(placement.trainee, vpd, state))
        for vpd, position in sorted(positions.items())
    ]
    for target in targets:
        _check_occupancy(placement, target, state)
    return targets


def _positions(placement: Placement, state: PlacementView, as_of: date
               ) -> dict[str, Position | Post]:
    """A4 and A5: the one position on the interface carrying the DPN in each VPD."""
    dpn = placement.dpn
    known = state.positions_with_dpn(dpn)
    if not known:
        raise _Refusal(
            "UNKNOWN_DPN",
            f"DPN {dpn} is on no ESR position: add it to the training position in ESR, or ask "
            "the local office to correct the DPN in TIS.",
        )
    if len(known) == 1 and on_interface(known[0][1], as_of):  # nearly always: one position
        return {known[0][0]: known[0][1]}
    live = _by_vpd((vpd, p) for vpd, p in known if on_interface(p, as_of))
    if not live:
        dead = ", ".join(f"{vpd} {p.position_number} ({_why_off(p)})" for vpd, p in known)
        raise _Refusal(
            "POST_NOT_ACTIVE",
            f"DPN {dpn} is only on ESR positions not on the interface: {dead}. Reactivate the "
            "position or move the DPN in ESR, or hire the trainee directly.",
        )
    for vpd, positions in sorted(live.items()):
        if len(positions) > 1:
            numbers = ", ".join(sorted(p.position_number for p in positions))
            raise _Refusal(
                "DUPLICATE_POSITION",
                f"DPN {dpn} is on {len(positions)} positions in VPD {vpd} ({numbers}): keep it "
                "on one position only, then hire the trainee directly.",
            )
    return {vpd: positions[0] for vpd, positions in live.items()}


def _roles(dpn: str, positions: Mapping[str, Position | Post]) -> dict[str, str]:
    """A6: the employer role in each VPD; several VPDs need one Lead and the rest Host."""
    flags = {vpd: p.host_lead_flag for vpd, p in positions.items()}
    if len(flags) == 1:
        return {vpd: flag or LEAD for vpd, flag in flags.items()}
    leads = [vpd for vpd, flag in flags.items() if flag == LEAD]
    if len(leads) != 1 or any(flag not in (LEAD, HOST) for flag in flags.values()):
        listing = ", ".join(f"{vpd} ({flags[vpd] or 'no flag'})" for vpd in sorted(flags))
        raise _Refusal(
            "HOST_LEAD_CONFLICT",
            f"DPN {dpn} is on the interface in {listing}: exactly one VPD must flag it Lead and "
            "the others Host. Correct the HostLeadFlag in ESR, then hire the trainee directly.",
        )
    return {vpd: flag or HOST for vpd, flag in flags.items()}


def _match(trainee: Trainee, vpd: str, state: PlacementView) -> str | None:
    """A8: the ESR person of the VPD who is this trainee, if exactly one."""
    found = sorted(
        {
            person.esr_person_id
            for person in state.persons_like(vpd, trainee.date_of_birth)
            if _same_person(trainee, person)
        }
    )
    if len(found) > 1:
        raise _Refusal(
            "AMBIGUOUS_PERSON_MATCH",
            f"The trainee matches {len(found)} ESR employees in VPD {vpd} (ESR person ids "
            f"{', '.join(found)}): merge or correct the duplicate records in ESR, then hire the "
            "trainee directly.",
        )
    return found[0] if found else None


def _same_person(trainee: Trainee, person: Person | PersonMatch) -> bool:
    """A8: date of birth, surname, first forename, GMC number, and NINO where both have one."""
    return (
        person.date_of_birth == trainee.date_of_birth
        and _folded(person.surname) == _folded(trainee.surname)
        and _first_forename(person.forenames) == _first_forename(trainee.forenames)
        and bool(person.gmc_number)
        and _code(person.gmc_number or "") == _code(trainee.gmc_number)
        and (not person.nino or not trainee.nino or _code(person.nino) == _code(trainee.nino))
    )


def _folded(name: str) -> str:
    """A name trimmed, inner spaces collapsed, case folded."""
    return " ".join(name.split()).casefold()


def _first_forename(forenames: str) -> str:
    """The first whitespace-separated forename, case folded."""
    return next(iter(forenames.split()), "").casefold()


def _code(value: str) -> str:
    """An identifier (NINO, GMC number) without spaces, in capitals."""
    return "".join(value.split()).upper()


def _check_occupancy(placement: Placement, target: _Target, state: PlacementView) -> None:
    """A7: a Single position takes one trainee at a time."""
    position = target.position
    if position.position_type != SINGLE:
        return
    clashes = [
        occupant for occupant in state.occupants(target.vpd, position.position_number)
        if _overlaps(occupant, placement) and not _is_self(occupant, placement, target)
    ]
    if clashes:  # the earliest is named, whatever order the view gives them in
        occupant = min(clashes, key=_order)
        raise _Refusal(
            "POSITION_OCCUPIED",
            f"Position {position.position_number} in VPD {target.vpd} is a Single position "
            f"held by {_who(occupant)} from {occupant.start} to "
            f"{occupant.end or 'an open end'}, overlapping {placement.start} to "
            f"{placement.end}: end or move the other assignment, or make the position "
            "Shared, then hire the trainee directly.",
        )


def _order(occupant: Occupant) -> tuple[date, date, str, str, str]:
    return (occupant.start, occupant.end or date.max, occupant.placement_id or "",
            occupant.esr_person_id or "", occupant.tis_person_id or "")


def _overlaps(occupant: Occupant, placement: Placement) -> bool:
    """Whether the periods share at least one day (an open end runs forever)."""
    return occupant.start <= placement.end and (
        occupant.end is None or occupant.end >= placement.start
    )


def _is_self(occupant: Occupant, placement: Placement, target: _Target) -> bool:
    """The placement's own row, the same TIS person, or the ESR person matched by A8."""
    return (
        occupant.placement_id == placement.placement_id
        or (
            occupant.tis_person_id is not None
            and occupant.tis_person_id == placement.trainee.tis_person_id
        )
        or (occupant.esr_person_id is not None and occupant.esr_person_id == target.person_id)
    )


def _who(occupant: Occupant) -> str:
    if occupant.placement_id:
        return f"placement {occupant.placement_id}"
    if occupant.esr_person_id:
        return f"ESR person {occupant.esr_person_id}"
    return "another trainee"


# --- A10: what to send ---------------------------------------------------------------------------

# ApplicantRecord elements (spec 5, document order) that an update can change.
_ELEMENTS = (
    "ExistingEsrPersonId",
    "EmployerRole",
    "PositionNumber",
    "DeaneryPostNumber",
    "ProjectedHireDate",
    "ProjectedEndDate",
    "WholeTimeEquivalent",
    "Grade",
    "Specialty",
    "PlacementType",
    "Forenames",
    "Surname",
    "DateOfBirth",
    "Gender",
    "NationalInsuranceNumber",
    "GmcNumber",
    "Email",
    "MobilePhone",
    "Address",
)


def _plan(
    placement: Placement, targets: Sequence[_Target], active: Mapping[str, SentApplicant]
) -> PlacementDecision:
    """A10: the records, notices and register rows that bring each VPD up to date."""
    decision = PlacementDecision()
    for target in targets:
        row = active.get(target.vpd)
        if row is None:
            _create(decision, placement, target)
        elif row.tis_person_id != placement.trainee.tis_person_id:
            _replace(decision, placement, target, row)
        else:
            _update(decision, placement, target, row)
    wanted = {target.vpd for target in targets}
    for vpd, row in sorted(active.items()):
        if vpd not in wanted:
            _withdraw_row(decision, row, f"DPN {row.placement.dpn} left the interface here")
    return decision


def _create(decision: PlacementDecision, placement: Placement, target: _Target) -> None:
    """A new applicant in the VPD, and READY_TO_HIRE."""
    decision.records.append(_record(placement, target, "create"))
    decision.register.append(_row(placement, target))
    decision.notices.append(
        _notice(
            NoticeType.READY_TO_HIRE,
            placement,
            target,
            f"Preferred Applicant created on position {target.position.position_number} "
            f"({target.role}) from {placement.start} to {placement.end}: ready to hire.",
        )
    )


def _replace(
    decision: PlacementDecision, placement: Placement, target: _Target, row: SentApplicant
) -> None:
    """A different trainee: withdraw the old applicant, create the new one, REPLACEMENT."""
    decision.records.append(_withdrawal(row))
    old, new = _trainee_name(row.placement.trainee), _trainee_name(placement.trainee)
    decision.notices.append(
        _notice(
            NoticeType.REPLACEMENT,
            placement,
            target,
            f"The trainee of placement {placement.placement_id} changed: the old applicant is "
            "withdrawn and a new one created.",
            old_value=old,
            new_value=new,
        )
    )
    _create(decision, placement, target)


def _update(
    decision: PlacementDecision, placement: Placement, target: _Target, row: SentApplicant
) -> None:
    """The same trainee: an update listing what changed, if anything did."""
    changed = _changed(row, placement, target)
    if not changed and row.esr_state == EsrState.FAILED:
        changed = _present(placement, target)  # ESR failed the update: send it again whole
    if not changed:
        return
    decision.records.append(_record(placement, target, "update", changed))
    decision.register.append(_row(placement, target))
    dated = (
        (NoticeType.CHANGE_OF_START_DATE, "start", row.placement.start, placement.start),
        (NoticeType.CHANGE_OF_END_DATE, "end", row.placement.end, placement.end),
    )
    for kind, what, old, new in dated:
        if old != new:
            decision.notices.append(
                _notice(
                    kind,
                    placement,
                    target,
                    f"The projected {what} date changed from {old} to {new}.",
                    old_value=old.isoformat(),
                    new_value=new.isoformat(),
                )
            )


def _withdraw_row(decision: PlacementDecision, row: SentApplicant, why: str) -> None:
    """A withdraw record of what was sent, the row marked withdrawn, and WITHDRAWAL."""
    decision.records.append(_withdrawal(row))
    decision.register.append(replace(row, withdrawn=True))
    decision.notices.append(
        Notice(
            NoticeType.WITHDRAWAL,
            row.vpd,
            f"{why}: the applicant on position {row.position_number} is withdrawn and must not "
            "be hired.",
            placement_id=row.placement_id,
            dpn=row.placement.dpn,
            position_number=row.position_number,
            trainee=_trainee_name(row.placement.trainee),
        )
    )


def _changed(row: SentApplicant, placement: Placement, target: _Target) -> tuple[str, ...]:
    """The applicant record elements that differ from what was last sent."""
    sent = row.placement
    if (  # what :func:`_content` is made of, all the same (a re-send, mostly): nothing differs
        sent.trainee == placement.trainee and sent.start == placement.start
        and sent.end == placement.end and sent.dpn == placement.dpn
        and sent.wte == placement.wte and sent.grade == placement.grade
        and sent.specialty == placement.specialty
        and sent.placement_type == placement.placement_type
        and row.position_number == target.position.position_number
        and row.employer_role == target.role and row.existing_esr_person_id == target.person_id
    ):
        return ()
    old = _content(
        row.placement, row.position_number, row.employer_role, row.existing_esr_person_id
    )
    new = _content(placement, target.position.position_number, target.role, target.person_id)
    return tuple(name for name in _ELEMENTS if old[name] != new[name])


def _present(placement: Placement, target: _Target) -> tuple[str, ...]:
    """Every element the applicant record carries (an update ESR failed, sent again)."""
    new = _content(placement, target.position.position_number, target.role, target.person_id)
    return tuple(name for name in _ELEMENTS if new[name] is not None)


def _content(
    placement: Placement, position_number: str, role: str, person_id: str | None
) -> dict[str, object]:
    """The applicant record's elements by name (what A10 compares)."""
    trainee = placement.trainee
    return {
        "ExistingEsrPersonId": person_id,
        "EmployerRole": role,
        "PositionNumber": position_number,
        "DeaneryPostNumber": placement.dpn,
        "ProjectedHireDate": placement.start,
        "ProjectedEndDate": placement.end,
        "WholeTimeEquivalent": placement.wte,
        "Grade": placement.grade,
        "Specialty": placement.specialty,
        "PlacementType": placement.placement_type,
        "Forenames": trainee.forenames,
        "Surname": trainee.surname,
        "DateOfBirth": trainee.date_of_birth,
        "Gender": trainee.gender,
        "NationalInsuranceNumber": trainee.nino,
        "GmcNumber": trainee.gmc_number,
        "Email": trainee.email,
        "MobilePhone": trainee.mobile_phone,
        "Address": trainee.address,
    }


# --- building blocks -----------------------------------------------------------------------------


def _record(
    placement: Placement, target: _Target, action: str, changed: tuple[str, ...] = ()
) -> ApplicantRecord:
    return ApplicantRecord(
        placement_id=placement.placement_id,
        vpd=target.vpd,
        action=action,
        employer_role=target.role,
        position_number=target.position.position_number,
        dpn=placement.dpn,
        placement=placement,
        existing_esr_person_id=target.person_id,
        changed=changed,
    )


def _withdrawal(row: SentApplicant) -> ApplicantRecord:
    """A withdraw record carrying the content last sent."""
    return ApplicantRecord(
        placement_id=row.placement_id,
        vpd=row.vpd,
        action=WITHDRAW,
        employer_role=row.employer_role,
        position_number=row.position_number,
        dpn=row.placement.dpn,
        placement=row.placement,
        existing_esr_person_id=row.existing_esr_person_id,
    )


def _row(placement: Placement, target: _Target) -> SentApplicant:
    return SentApplicant(
        placement_id=placement.placement_id,
        vpd=target.vpd,
        tis_person_id=placement.trainee.tis_person_id,
        position_number=target.position.position_number,
        employer_role=target.role,
        placement=placement,
        existing_esr_person_id=target.person_id,
    )


def _notice(
    kind: NoticeType,
    placement: Placement,
    target: _Target,
    text: str,
    *,
    old_value: str | None = None,
    new_value: str | None = None,
) -> Notice:
    return Notice(
        kind,
        target.vpd,
        text,
        placement_id=placement.placement_id,
        dpn=placement.dpn,
        position_number=target.position.position_number,
        trainee=_trainee_name(placement.trainee),
        old_value=old_value,
        new_value=new_value,
    )


def _trainee_name(trainee: Trainee) -> str:
    """'Surname, Forenames', as MSO notices name a trainee."""
    return f"{' '.join(trainee.surname.split())}, {' '.join(trainee.forenames.split())}"


def _sent_text(records: Iterable[ApplicantRecord]) -> str:
    parts = []
    for record in records:
        changed = f" of {', '.join(record.changed)}" if record.changed else ""
        parts.append(f"{record.action}{changed} to {record.vpd} ({record.employer_role})")
    return shared(f"Sent to ESR: {'; '.join(parts)}.")  # few texts for a whole file


def _by_vpd(pairs: Iterable[tuple[str, Position | Post]]) -> dict[str, list[Position | Post]]:
    grouped: dict[str, list[Position | Post]] = {}
    for vpd, position in pairs:
        grouped.setdefault(vpd, []).append(position)
    return grouped


def _lead_vpd(pairs: Sequence[tuple[str, Position | Post]]) -> str | None:
    """The VPD an outcome is reported against: a lone VPD (whatever its flag), else the one VPD
    flagged Lead, else None."""
    vpds = {vpd for vpd, _ in pairs}
    if len(vpds) == 1:
        return vpds.pop()
    leads = {vpd for vpd, p in pairs if p.host_lead_flag == LEAD}
    return leads.pop() if len(leads) == 1 else None


def _position_number(positions: Sequence[Position | Post], as_of: date) -> str | None:
    """The VPD's position for the DPN when there is one (on the interface preferred)."""
    live = [p for p in positions if on_interface(p, as_of)] or list(positions)
    return live[0].position_number if len(live) == 1 else None


def _why_off(position: Position | Post) -> str:
    """Why a position carrying a DPN is not on the interface (P1)."""
    if position.hiring_status not in ON_INTERFACE_STATUSES:
        return position.hiring_status
    return f"ended {position.effective_to}"


def _duplicate_text(placement: Placement) -> str:
    return (
        f"Placement {placement.placement_id} appears more than once in this file: the first "
        "was processed and this one ignored. Ask the local office to send it once."
    )
