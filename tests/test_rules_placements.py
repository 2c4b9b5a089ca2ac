"""Rules A1–A12: TIS placements → ESR applicant records (pure functions, plain values)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import Rules
from gateway.models import (
    Address,
    NoticeType,
    Occupant,
    Outcome,
    Person,
    Placement,
    Position,
    Result,
    SentApplicant,
    Totals,
    Trainee,
)
from gateway.rules.placements import PlacementDecision, decide, decide_released

AS_OF = date(2027, 5, 3)
RULES = Rules()
DPN = "EOE/RGT00/001/FY1/001"


def day(n: int) -> date:
    """The date ``n`` days after as-of."""
    return AS_OF + timedelta(days=n)


def position(number: str = "1001", dpn: str | None = DPN, **kw: object) -> Position:
    """An active Single ESR position carrying the DPN, with no Host/Lead flag."""
    base = Position(
        esr_position_id=int(number),
        position_number=number,
        position_name="FY1 General Medicine",
        effective_from=date(2020, 1, 1),
        hiring_status="Active",
        position_type="Single",
        esr_last_update=date(2027, 1, 1),
        dpn=dpn,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def trainee(**kw: object) -> Trainee:
    """Alex Jo Smith, TIS person T1."""
    base = Trainee(
        tis_person_id="T1",
        forenames="Alex Jo",
        surname="Smith",
        date_of_birth=date(1995, 4, 1),
        gender="F",
        gmc_number="7654321",
        nino="AB123456C",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


OTHER = trainee(tis_person_id="T2", forenames="Sam", surname="Jones", gmc_number="1234567")


def placement(pid: str = "P1", start: int = 30, end: int | None = None, **kw: object) -> Placement:
    """An upsert of T1 into the DPN, starting ``start`` days after as-of (181 days long)."""
    base = Placement(
        placement_id=pid,
        action="upsert",
        dpn=DPN,
        placement_type="In Post",
        grade="F1",
        specialty="General Medicine",
        start=day(start),
        end=day(start + 181 if end is None else end),
        wte="1.0",
        trainee=trainee(),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def withdrawal(pid: str = "P1", *, start: int = 30, **kw: object) -> Placement:
    """A withdraw of a placement."""
    return replace(placement(pid, start), action="withdraw", **kw)  # type: ignore[arg-type]


def person(esr_person_id: str = "E1", **kw: object) -> Person:
    """The ESR employee who is T1 (no NINO recorded)."""
    base = Person(
        esr_person_id=esr_person_id,
        forenames="Alex",
        surname="Smith",
        date_of_birth=date(1995, 4, 1),
        gender="F",
        assignments=(),
        gmc_number="7654321",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def sent_row(
    p: Placement,
    vpd: str = "RGT",
    number: str = "1001",
    role: str = "Lead",
    esr_person_id: str | None = None,
    *,
    withdrawn: bool = False,
) -> SentApplicant:
    """An applicant register row: ``p`` as sent to ``vpd``."""
    return SentApplicant(
        p.placement_id, vpd, p.trainee.tis_person_id, number, role, p, esr_person_id, withdrawn
    )


@dataclass
class FakeView:
    """The gateway's state as plain lists and dicts."""

    positions: list[tuple[str, Position]] = field(default_factory=lambda: [("RGT", position())])
    persons: list[tuple[str, Person]] = field(default_factory=list)
    assignments: list[tuple[str, str, Occupant]] = field(default_factory=list)
    register: dict[tuple[str, str], SentApplicant] = field(default_factory=dict)
    holds: dict[str, Placement] = field(default_factory=dict)

    def positions_with_dpn(self, dpn: str) -> Sequence[tuple[str, Position]]:
        """Every (vpd, position) carrying the DPN."""
        return [(vpd, p) for vpd, p in self.positions if p.dpn == dpn]

    def persons_like(self, vpd: str, date_of_birth: date) -> Sequence[Person]:
        """Every person of the VPD: a loose superset, so the rules must filter precisely."""
        return [p for v, p in self.persons if v == vpd]

    def sent(self, placement_id: str) -> Sequence[SentApplicant]:
        """The register rows of a placement."""
        return [row for (pid, _), row in sorted(self.register.items()) if pid == placement_id]

    def occupants(self, vpd: str, position_number: str) -> Sequence[Occupant]:
        """Live register rows and ESR assignments on a position."""
        rows = [
            Occupant(r.tis_person_id, None, r.placement.start, r.placement.end, r.placement_id)
            for r in self.register.values()
            if r.vpd == vpd and r.position_number == position_number and not r.withdrawn
        ]
        esr = [o for v, n, o in self.assignments if v == vpd and n == position_number]
        return rows + esr

    def held(self, placement_id: str) -> Placement | None:
        """A held placement."""
        return self.holds.get(placement_id)

    def with_sent(self, *rows: SentApplicant) -> FakeView:
        """This view with more register rows."""
        register = self.register | {(r.placement_id, r.vpd): r for r in rows}
        return replace(self, register=register)

    def after(self, decision: PlacementDecision) -> FakeView:
        """The view once a decision is committed, as the store would commit it."""
        holds = {k: v for k, v in self.holds.items() if k not in decision.release}
        holds |= {p.placement_id: p for p in decision.hold}
        return replace(self.with_sent(*decision.register), holds=holds)


def esr_occupant(
    start: int, end: int | None, esr_person_id: str = "E9"
) -> tuple[str, str, Occupant]:
    """An ESR assignment on RGT position 1001 from ``start`` to ``end`` days after as-of."""
    return (
        "RGT",
        "1001",
        Occupant(None, esr_person_id, day(start), None if end is None else day(end)),
    )


LEAD_HOST = [
    ("RGT", position("1001", host_lead_flag="Lead")),
    ("R1K", position("2001", host_lead_flag="Host")),
]


def run(
    *placements: Placement, view: FakeView | None = None, as_of: date = AS_OF, rules: Rules = RULES
) -> PlacementDecision:
    """Decide a file of placements."""
    return decide(placements, view or FakeView(), as_of, rules)


def only(decision: PlacementDecision) -> Outcome:
    """The one outcome of a one-placement file."""
    (outcome,) = decision.outcomes
    return outcome


def assert_rejected(decision: PlacementDecision, reason: str) -> None:
    """Rejected for ``reason``, nothing sent and no register row written."""
    outcome = only(decision)
    assert (outcome.result, outcome.reason) == (Result.REJECTED, reason)
    assert decision.records == []
    assert decision.register == []
    assert decision.hold == []


# --- sending -------------------------------------------------------------------------------------


def test_create_sends_a_record_a_register_row_and_ready_to_hire() -> None:
    """A new placement goes to its VPD as a create, is registered and raises READY_TO_HIRE."""
    p = placement()
    decision = run(p)
    outcome = only(decision)
    assert (outcome.record_id, outcome.result, outcome.vpd) == ("P1", Result.LOADED, "RGT")
    (record,) = decision.records
    assert (record.action, record.vpd, record.employer_role, record.position_number) == (
        "create",
        "RGT",
        "Lead",
        "1001",
    )
    assert record.placement == p
    assert decision.register == [sent_row(p)]
    (notice,) = decision.notices
    assert notice.type is NoticeType.READY_TO_HIRE
    assert (notice.placement_id, notice.dpn, notice.position_number, notice.trainee) == (
        "P1",
        DPN,
        "1001",
        "Smith, Alex Jo",
    )


def test_rejection_notifies_every_known_vpd_with_the_trainee() -> None:
    """Every rejection raises REJECTED (reason, trainee 'Surname, Forenames') where the DPN is."""
    decision = run(placement(grade="GPST2"), view=FakeView(positions=LEAD_HOST))
    assert only(decision).vpd == "RGT"
    assert [(n.type, n.vpd, n.reason, n.trainee, n.position_number) for n in decision.notices] == [
        (NoticeType.REJECTED, "R1K", "OUT_OF_SCOPE", "Smith, Alex Jo", "2001"),
        (NoticeType.REJECTED, "RGT", "OUT_OF_SCOPE", "Smith, Alex Jo", "1001"),
    ]


# --- A2, A3 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "result"),
    [
        pytest.param(-3, Result.REJECTED, id="A2 start already past is too soon"),
        pytest.param(0, Result.REJECTED, id="A2 start today is too soon"),
        pytest.param(1, Result.REJECTED, id="A2 start 1 day ahead is too soon"),
        pytest.param(2, Result.LOADED, id="A2 start 2 days ahead is sent"),
        pytest.param(3, Result.LOADED, id="A2 start 3 days ahead is sent"),
    ],
)
def test_a2_cutoff(start: int, result: Result) -> None:
    """A2: nothing is sent later than 2 days before the start."""
    decision = run(placement(start=start))
    if result is Result.REJECTED:
        assert_rejected(decision, "START_TOO_SOON")
        assert [n.type for n in decision.notices] == [NoticeType.REJECTED]
    else:
        assert only(decision).result is result


@pytest.mark.parametrize(
    ("start", "result"),
    [
        pytest.param(90, Result.LOADED, id="A3 start 90 days ahead is sent"),
        pytest.param(91, Result.LOADED, id="A3 start 91 days ahead is sent"),
        pytest.param(92, Result.DEFERRED, id="A3 start 92 days ahead is held"),
    ],
)
def test_a3_window(start: int, result: Result) -> None:
    """A3: a placement more than 91 days ahead is held, with no reason and nothing sent."""
    p = placement(start=start)
    decision = run(p)
    outcome = only(decision)
    assert outcome.result is result
    if result is Result.DEFERRED:
        assert outcome.reason is None
        assert (decision.hold, decision.records, decision.notices) == ([p], [], [])
        assert decision.register == []
    else:
        assert decision.hold == []


def test_a3_changed_placement_already_sent_goes_out_however_far_ahead() -> None:
    """A3 holds only placements never sent: a sent one moved far ahead is an update."""
    old = placement(start=30, end=200)
    decision = run(placement(start=150, end=200), view=FakeView().with_sent(sent_row(old)))
    assert only(decision).result is Result.UPDATED
    (record,) = decision.records
    assert (record.action, record.changed) == ("update", ("ProjectedHireDate",))
    assert decision.hold == []


def test_a3_held_placement_sent_again_far_ahead_is_held_again() -> None:
    """A3: re-sending a held placement still far ahead replaces the hold, never releases it."""
    view = FakeView(holds={"P1": placement(start=100)})
    p = placement(start=120)
    decision = run(p, view=view)
    assert only(decision).result is Result.DEFERRED
    assert (decision.hold, decision.release) == ([p], [])


def test_a3_held_placement_sent_again_within_the_window_is_sent_and_released() -> None:
    """A3: a held placement re-sent once due is created and its hold released."""
    decision = run(placement(start=60), view=FakeView(holds={"P1": placement(start=100)}))
    assert only(decision).result is Result.LOADED
    assert decision.release == ["P1"]


def test_a3_placement_only_withdrawn_before_counts_as_never_sent() -> None:
    """A3: a placement whose register rows are all withdrawn is held like a new one."""
    view = FakeView().with_sent(sent_row(placement(start=30), withdrawn=True))
    decision = run(placement(start=100), view=view)
    assert only(decision).result is Result.DEFERRED


def test_a3_re_created_after_withdrawal_is_a_create() -> None:
    """A placement sent again after its withdrawal is created afresh, READY_TO_HIRE."""
    view = FakeView().with_sent(sent_row(placement(start=30), withdrawn=True))
    decision = run(placement(start=40), view=view)
    assert only(decision).result is Result.LOADED
    assert [r.action for r in decision.records] == ["create"]
    assert [n.type for n in decision.notices] == [NoticeType.READY_TO_HIRE]
    assert decision.register[0].withdrawn is False


# --- A7 ------------------------------------------------------------------------------------------


# The placement runs from day 30 to day 211.
@pytest.mark.parametrize(
    ("occupant", "kind", "result"),
    [
        pytest.param(esr_occupant(0, 30), "Single", Result.REJECTED,
                     id="A7 ESR assignment ending on the start day overlaps by one day"),
        pytest.param(esr_occupant(0, 29), "Single", Result.LOADED,
                     id="A7 ESR assignment ending the day before is adjacent"),
        pytest.param(esr_occupant(211, 300), "Single", Result.REJECTED,
                     id="A7 ESR assignment starting on the end day overlaps by one day"),
        pytest.param(esr_occupant(212, 300), "Single", Result.LOADED,
                     id="A7 ESR assignment starting the day after the end is adjacent"),
        pytest.param(esr_occupant(-400, None), "Single", Result.REJECTED,
                     id="A7 open-ended ESR assignment overlaps"),
        pytest.param(esr_occupant(212, None), "Single", Result.LOADED,
                     id="A7 open-ended ESR assignment starting after the end is no clash"),
        pytest.param(esr_occupant(0, 100), "Shared", Result.LOADED,
                     id="A7 Shared position never clashes"),
        pytest.param(esr_occupant(0, 100), "Pooled", Result.LOADED,
                     id="A7 Pooled position never clashes"),
        pytest.param(esr_occupant(0, 100), "None", Result.LOADED,
                     id="A7 position type None never clashes"),
    ],
)  # fmt: skip
def test_a7_occupancy_by_esr_assignment(
    occupant: tuple[str, str, Occupant], kind: str, result: Result
) -> None:
    """A7: another person's ESR assignment on a Single position clashes when dates overlap."""
    view = FakeView(positions=[("RGT", position(position_type=kind))], assignments=[occupant])
    decision = run(placement(start=30, end=211), view=view)
    if result is Result.REJECTED:
        assert_rejected(decision, "POSITION_OCCUPIED")
    else:
        assert only(decision).result is result


@pytest.mark.parametrize(
    ("second_start", "kind", "result"),
    [
        pytest.param(60, "Single", Result.REJECTED,
                     id="A7 same file Single post overlapping by one day clashes"),
        pytest.param(61, "Single", Result.LOADED,
                     id="A7 same file Single post adjacent dates do not clash"),
        pytest.param(40, "Shared", Result.LOADED,
                     id="A7 same file Shared post takes both"),
    ],
)  # fmt: skip
def test_a7_two_placements_of_the_same_file(second_start: int, kind: str, result: Result) -> None:
    """A7: a later placement of the file clashes with an earlier accepted one."""
    view = FakeView(positions=[("RGT", position(position_type=kind))])
    first = placement("P1", start=30, end=60)
    second = placement("P2", start=second_start, end=second_start + 20, trainee=OTHER)
    decision = run(first, second, view=view)
    assert [o.result for o in decision.outcomes] == [Result.LOADED, result]
    if result is Result.REJECTED:
        assert decision.outcomes[1].reason == "POSITION_OCCUPIED"
        assert {r.placement_id for r in decision.records} == {"P1"}


@pytest.mark.parametrize("reverse", [False, True])
def test_a7_names_the_earliest_clash_whatever_the_order_asked(reverse: bool) -> None:
    """A7 with two clashes: the text names the one that starts first, in whichever order the
    view lists them (a streamed file's earlier windows are the store's rows, listed before its
    ESR assignments; the whole file's overlay lists them after)."""
    occupants = [esr_occupant(10, 100), esr_occupant(-50, 40)]
    view = FakeView(positions=[("RGT", position())],
                    assignments=occupants[::-1] if reverse else occupants)
    decision = run(placement(start=30), view=view)
    assert_rejected(decision, "POSITION_OCCUPIED")
    assert f"from {day(-50)} to {day(40)}" in decision.outcomes[0].text


def test_a7_sent_placement_of_another_trainee_clashes() -> None:
    """A7: another trainee's placement already sent to the Single position clashes."""
    view = FakeView().with_sent(sent_row(placement("P0", start=0, end=40, trainee=OTHER)))
    assert_rejected(run(placement(start=30), view=view), "POSITION_OCCUPIED")


def test_a7_same_trainee_is_no_clash() -> None:
    """A7: the same TIS person's other placement on the position is not a clash."""
    view = FakeView().with_sent(sent_row(placement("P0", start=0, end=40)))
    assert only(run(placement(start=30), view=view)).result is Result.LOADED


def test_a7_matched_esr_person_is_no_clash() -> None:
    """A7: the ESR assignment of the person matched by A8 is the trainee, not a clash."""
    view = FakeView(persons=[("RGT", person("E1"))], assignments=[esr_occupant(0, None, "E1")])
    decision = run(placement(), view=view)
    assert only(decision).result is Result.LOADED
    assert decision.records[0].existing_esr_person_id == "E1"


def test_a7_own_register_row_is_no_clash() -> None:
    """A7: the placement's own earlier register row (even for another trainee) is not a clash."""
    view = FakeView().with_sent(sent_row(placement(start=30, trainee=OTHER)))
    assert only(run(placement(start=40), view=view)).result is Result.UPDATED


def test_a7_withdrawal_earlier_in_the_file_frees_the_position() -> None:
    """A7: a withdrawal earlier in the same file frees the Single position."""
    view = FakeView().with_sent(sent_row(placement("P0", start=0, end=100, trainee=OTHER)))
    decision = run(withdrawal("P0", trainee=OTHER), placement("P1", start=30), view=view)
    assert [o.result for o in decision.outcomes] == [Result.WITHDRAWN, Result.LOADED]


def test_a7_update_earlier_in_the_file_moves_the_occupancy() -> None:
    """A7: a sent placement moved away earlier in the file no longer holds its old dates."""
    old = placement("P0", start=0, end=100, trainee=OTHER)
    view = FakeView().with_sent(sent_row(old))
    moved = replace(old, start=day(300), end=day(400))
    decision = run(moved, placement("P1", start=30), view=view)
    assert [o.result for o in decision.outcomes] == [Result.UPDATED, Result.LOADED]


def test_a7_held_placement_meets_a_post_taken_since() -> None:
    """A7: a held placement does not occupy its post; once due it can meet a later taker."""
    held = placement("P1", start=95, end=120)
    taker = placement("P2", start=60, end=100, trainee=OTHER)
    first = run(held, taker)
    assert [o.result for o in first.outcomes] == [Result.DEFERRED, Result.LOADED]
    again = run(held, taker, view=FakeView().after(first))
    assert [(o.result, o.reason) for o in again.outcomes] == [
        (Result.REJECTED, "POSITION_OCCUPIED"),
        (Result.UNCHANGED, None),
    ]


# --- A8 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("the_trainee", "the_person", "matched"),
    [
        pytest.param(trainee(surname="  smith "), person(surname="SMITH"), True,
                     id="A8 surname '  smith ' matches 'SMITH'"),
        pytest.param(trainee(surname="van  der Berg"), person(surname="Van der BERG"), True,
                     id="A8 inner spaces of a surname are collapsed"),
        pytest.param(trainee(forenames="Alex  Jo"), person(forenames="ALEX"), True,
                     id="A8 first forename of 'Alex  Jo' is 'alex'"),
        pytest.param(trainee(forenames=" alex"), person(forenames="Alex Sam"), True,
                     id="A8 only the first forename is compared"),
        pytest.param(trainee(), person(forenames="Alexander"), False,
                     id="A8 another first forename does not match"),
        pytest.param(trainee(), person(surname="Smyth"), False,
                     id="A8 another surname does not match"),
        pytest.param(trainee(), person(date_of_birth=date(1995, 4, 2)), False,
                     id="A8 another date of birth does not match"),
        pytest.param(trainee(nino="AB123456C"), person(nino=None), True,
                     id="A8 NINO only on the trainee still matches"),
        pytest.param(trainee(nino=None), person(nino="AB123456C"), True,
                     id="A8 NINO only on the person still matches"),
        pytest.param(trainee(nino="AB123456C"), person(nino="ab 12 34 56 c"), True,
                     id="A8 NINO compared in capitals without spaces"),
        pytest.param(trainee(nino="AB123456C"), person(nino="AB123456D"), False,
                     id="A8 different NINOs do not match"),
        pytest.param(trainee(), person(gmc_number=None), False,
                     id="A8 a person without GMC number does not match"),
        pytest.param(trainee(), person(gmc_number="7654322"), False,
                     id="A8 another GMC number does not match"),
    ],
)  # fmt: skip
def test_a8_existing_employee_match(
    the_trainee: Trainee, the_person: Person, matched: bool
) -> None:
    """A8: one ESR person matching precisely becomes ExistingEsrPersonId."""
    view = FakeView(persons=[("RGT", the_person)])
    decision = run(placement(trainee=the_trainee), view=view)
    assert only(decision).result is Result.LOADED
    assert decision.records[0].existing_esr_person_id == ("E1" if matched else None)


def test_a8_two_matching_employees_are_ambiguous() -> None:
    """A8: two ESR persons matching the trainee is AMBIGUOUS_PERSON_MATCH."""
    view = FakeView(persons=[("RGT", person("E1")), ("RGT", person("E2", surname="SMITH"))])
    decision = run(placement(), view=view)
    assert_rejected(decision, "AMBIGUOUS_PERSON_MATCH")
    assert [(n.type, n.vpd) for n in decision.notices] == [(NoticeType.REJECTED, "RGT")]


def test_a8_match_is_per_vpd() -> None:
    """A8: each VPD gets its own employee's id; a person of another VPD never matches."""
    view = FakeView(positions=LEAD_HOST, persons=[("R1K", person("K7"))])
    decision = run(placement(), view=view)
    ids = {r.vpd: r.existing_esr_person_id for r in decision.records}
    assert ids == {"RGT": None, "R1K": "K7"}


# --- A1, A4, A5, A6 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "end",
    [
        pytest.param(30, id="A1 end equal to start is END_BEFORE_START"),
        pytest.param(29, id="A1 end before start is END_BEFORE_START"),
    ],
)
def test_a1_end_after_start(end: int) -> None:
    """A1: the projected end must be after the projected start."""
    assert_rejected(run(placement(start=30, end=end)), "END_BEFORE_START")


def test_a1_one_day_placement_is_fine() -> None:
    """A1: an end one day after the start is accepted."""
    assert only(run(placement(start=30, end=31))).result is Result.LOADED


def test_a4_unknown_dpn_notifies_nobody() -> None:
    """A4: a DPN on no position is UNKNOWN_DPN; no VPD is known, so no notice."""
    decision = run(placement(dpn="EOE/XXX/999"))
    assert_rejected(decision, "UNKNOWN_DPN")
    assert decision.notices == []
    assert only(decision).vpd is None


@pytest.mark.parametrize(
    "dead",
    [
        pytest.param(position(hiring_status="Frozen"), id="A4 frozen post is POST_NOT_ACTIVE"),
        pytest.param(position(hiring_status="Eliminated"), id="A4 eliminated post is not active"),
        pytest.param(position(effective_to=day(-1)), id="A4 post end-dated before as-of"),
    ],
)
def test_a4_post_not_active(dead: Position) -> None:
    """A4: a DPN only on positions off the interface is POST_NOT_ACTIVE, notified to its VPD."""
    decision = run(placement(), view=FakeView(positions=[("RGT", dead)]))
    assert_rejected(decision, "POST_NOT_ACTIVE")
    assert [(n.type, n.vpd, n.position_number) for n in decision.notices] == [
        (NoticeType.REJECTED, "RGT", "1001")
    ]


def test_a4_post_ending_today_is_on_the_interface() -> None:
    """A4: a position end-dated on as-of is still on the interface."""
    view = FakeView(positions=[("RGT", position(effective_to=AS_OF))])
    assert only(run(placement(), view=view)).result is Result.LOADED


def test_a4_only_vpds_on_the_interface_get_the_placement() -> None:
    """A4: of a Lead and a frozen Host, only the Lead's VPD is sent to."""
    view = FakeView(
        positions=[
            LEAD_HOST[0],
            ("R1K", position("2001", host_lead_flag="Host", hiring_status="Frozen")),
        ]
    )
    decision = run(placement(), view=view)
    assert [(r.vpd, r.employer_role) for r in decision.records] == [("RGT", "Lead")]


def test_a5_dpn_on_two_positions_of_a_vpd() -> None:
    """A5: a DPN on two positions on the interface of one VPD is DUPLICATE_POSITION."""
    view = FakeView(positions=[("RGT", position("1001")), ("RGT", position("1002"))])
    decision = run(placement(), view=view)
    assert_rejected(decision, "DUPLICATE_POSITION")
    assert [(n.vpd, n.position_number) for n in decision.notices] == [("RGT", None)]


def test_a5_a_second_position_off_the_interface_is_no_duplicate() -> None:
    """A5: only positions on the interface count; a frozen twin does not."""
    view = FakeView(
        positions=[("RGT", position("1001")), ("RGT", position("1002", hiring_status="Frozen"))]
    )
    decision = run(placement(), view=view)
    assert [r.position_number for r in decision.records] == ["1001"]


def test_a6_lead_and_host_each_get_a_record() -> None:
    """A6: a Lead and a Host VPD each get a create with their EmployerRole."""
    decision = run(placement(), view=FakeView(positions=LEAD_HOST))
    assert only(decision).vpd == "RGT"
    roles = [(r.vpd, r.employer_role, r.position_number) for r in decision.records]
    assert roles == [("R1K", "Host", "2001"), ("RGT", "Lead", "1001")]
    ready = [(n.type, n.vpd) for n in decision.notices]
    assert ready == [(NoticeType.READY_TO_HIRE, "R1K"), (NoticeType.READY_TO_HIRE, "RGT")]


@pytest.mark.parametrize(
    ("flags"),
    [
        pytest.param(("Lead", "Lead"), id="A6 two leads conflict"),
        pytest.param(("Host", "Host"), id="A6 two hosts conflict"),
        pytest.param(("Lead", None), id="A6 lead and unflagged conflict"),
    ],
)
def test_a6_host_lead_conflict(flags: tuple[str | None, str | None]) -> None:
    """A6: several VPDs need exactly one Lead and the others Host."""
    positions = [
        ("RGT", position("1001", host_lead_flag=flags[0])),
        ("R1K", position("2001", host_lead_flag=flags[1])),
    ]
    decision = run(placement(), view=FakeView(positions=positions))
    assert_rejected(decision, "HOST_LEAD_CONFLICT")
    assert only(decision).vpd == ("RGT" if flags.count("Lead") == 1 else None)
    assert {n.vpd for n in decision.notices} == {"RGT", "R1K"}


@pytest.mark.parametrize(
    ("flag", "role", "vpd"),
    [
        pytest.param(None, "Lead", "RGT", id="A6 single VPD without flag is Lead"),
        pytest.param("Lead", "Lead", "RGT", id="A6 single VPD flagged Lead is Lead"),
        pytest.param("Host", "Host", "RGT", id="A6 single VPD flagged Host is Host"),
    ],
)
def test_a6_single_vpd(flag: str | None, role: str, vpd: str | None) -> None:
    """A6: one VPD takes its HostLeadFlag, Lead when absent."""
    view = FakeView(positions=[("RGT", position(host_lead_flag=flag))])
    decision = run(placement(), view=view)
    assert [r.employer_role for r in decision.records] == [role]
    assert only(decision).vpd == vpd


# --- A9 ------------------------------------------------------------------------------------------


def test_a9_same_placement_twice_in_a_file() -> None:
    """A9: the first of two records with one placementId wins; the later changes nothing."""
    first = placement(start=30)
    decision = run(first, placement(start=50, grade="ST1"))
    assert [(o.result, o.reason) for o in decision.outcomes] == [
        (Result.LOADED, None),
        (Result.REJECTED, "DUPLICATE_IN_FILE"),
    ]
    assert [r.placement for r in decision.records] == [first]
    assert decision.register == [sent_row(first)]
    assert [n.type for n in decision.notices] == [NoticeType.READY_TO_HIRE, NoticeType.REJECTED]


def test_a9_a_later_withdrawal_of_the_same_id_is_a_duplicate() -> None:
    """A9: a withdraw after an upsert of the same placementId in one file is ignored."""
    decision = run(placement(), withdrawal())
    assert [o.reason for o in decision.outcomes] == [None, "DUPLICATE_IN_FILE"]
    assert [r.action for r in decision.records] == ["create"]


def test_a9_duplicate_of_a_held_placement_does_not_release_it() -> None:
    """A9: the ignored duplicate leaves the first record's hold in place."""
    p = placement(start=100)
    decision = run(p, placement(start=120), view=FakeView(holds={"P1": placement(start=95)}))
    assert [o.result for o in decision.outcomes] == [Result.DEFERRED, Result.REJECTED]
    assert (decision.hold, decision.release) == ([p], [])


# --- A10 -----------------------------------------------------------------------------------------


def sent_view(p: Placement, view: FakeView | None = None) -> FakeView:
    """The view after ``p`` was decided and committed."""
    base = view or FakeView()
    return base.after(run(p, view=base))


def test_a10_identical_upsert_is_unchanged() -> None:
    """A10: an upsert identical to what was sent is unchanged: nothing sent or written."""
    view = sent_view(placement(), FakeView(positions=LEAD_HOST, persons=[("RGT", person())]))
    decision = run(placement(line=42), view=view)
    assert only(decision).result is Result.UNCHANGED
    assert only(decision).vpd == "RGT"
    assert (decision.records, decision.notices, decision.register) == ([], [], [])


def test_a10_unchanged_is_decided_before_the_cutoff() -> None:
    """A10 before A2: an identical re-send a day before the start is unchanged, not rejected."""
    p = placement(start=30)
    decision = run(p, view=sent_view(p), as_of=day(29))
    assert only(decision).result is Result.UNCHANGED


def test_a10_managing_deanery_body_alone_is_unchanged() -> None:
    """A10: ManagingDeaneryBody is not in the applicant record, so a change to it alone is none."""
    p = placement()
    decision = run(replace(p, managing_deanery_body="LDN"), view=sent_view(p))
    assert only(decision).result is Result.UNCHANGED


def test_a10_start_date_change() -> None:
    """A10: a new start date is an update with CHANGE_OF_START_DATE (old and new values)."""
    view = sent_view(placement(start=30, end=200))
    decision = run(placement(start=35, end=200), view=view)
    assert only(decision).result is Result.UPDATED
    (record,) = decision.records
    assert (record.action, record.changed) == ("update", ("ProjectedHireDate",))
    (notice,) = decision.notices
    assert (notice.type, notice.old_value, notice.new_value) == (
        NoticeType.CHANGE_OF_START_DATE,
        day(30).isoformat(),
        day(35).isoformat(),
    )
    assert decision.register[0].placement.start == day(35)


def test_a10_both_dates_change() -> None:
    """A10: new start and end dates raise both date notices and list both elements."""
    view = sent_view(placement(start=30, end=200))
    decision = run(placement(start=35, end=210), view=view)
    assert decision.records[0].changed == ("ProjectedHireDate", "ProjectedEndDate")
    assert [n.type for n in decision.notices] == [
        NoticeType.CHANGE_OF_START_DATE,
        NoticeType.CHANGE_OF_END_DATE,
    ]


@pytest.mark.parametrize(
    ("change", "changed"),
    [
        pytest.param({"grade": "F2"}, ("Grade",), id="A10 grade change lists Grade"),
        pytest.param({"wte": "0.8", "specialty": "Surgery"},
                     ("WholeTimeEquivalent", "Specialty"), id="A10 WTE and specialty change"),
        pytest.param({"trainee": trainee(email="a@example.org", address=Address("1 Road"))},
                     ("Email", "Address"), id="A10 trainee contact change"),
    ],
)  # fmt: skip
def test_a10_other_changes(change: dict[str, object], changed: tuple[str, ...]) -> None:
    """A10: other changes are an update listing the changed elements, with no notice."""
    p = placement()
    decision = run(replace(p, **change), view=sent_view(p))  # type: ignore[arg-type]
    assert only(decision).result is Result.UPDATED
    assert [(r.action, r.changed) for r in decision.records] == [("update", changed)]
    assert decision.notices == []


def test_a10_new_esr_match_is_an_update() -> None:
    """A10: a person matched since the last send changes ExistingEsrPersonId."""
    p = placement()
    view = replace(sent_view(p), persons=[("RGT", person("E1"))])
    decision = run(p, view=view)
    (record,) = decision.records
    assert (record.changed, record.existing_esr_person_id) == (("ExistingEsrPersonId",), "E1")


def test_a10_replacement() -> None:
    """A10: a different trainee withdraws the old applicant, creates the new, REPLACEMENT."""
    old = placement(trainee=OTHER)
    new = placement()
    decision = run(new, view=sent_view(old))
    assert only(decision).result is Result.UPDATED
    assert [(r.action, r.placement) for r in decision.records] == [
        ("withdraw", old),
        ("create", new),
    ]
    kinds = [(n.type, n.old_value, n.new_value) for n in decision.notices]
    assert kinds == [
        (NoticeType.REPLACEMENT, "Jones, Sam", "Smith, Alex Jo"),
        (NoticeType.READY_TO_HIRE, None, None),
    ]
    (row,) = decision.register
    assert (row.tis_person_id, row.withdrawn) == ("T1", False)


def test_a10_update_too_soon_is_rejected() -> None:
    """A10 then A2: a change within 2 days of the start is START_TOO_SOON, register untouched."""
    view = sent_view(placement(start=30))
    decision = run(placement(start=30, grade="F2"), view=view, as_of=day(29))
    assert_rejected(decision, "START_TOO_SOON")


def test_a10_vpd_that_left_the_interface_gets_a_withdraw() -> None:
    """A10: a VPD sent to earlier whose post left the interface is withdrawn from."""
    p = placement()
    view = sent_view(p, FakeView(positions=LEAD_HOST))
    view = replace(
        view, positions=[LEAD_HOST[0], ("R1K", position("2001", hiring_status="Frozen"))]
    )
    decision = run(p, view=view)
    assert only(decision).result is Result.UPDATED
    assert [(r.vpd, r.action) for r in decision.records] == [("R1K", "withdraw")]
    assert [(n.type, n.vpd) for n in decision.notices] == [(NoticeType.WITHDRAWAL, "R1K")]
    assert [(r.vpd, r.withdrawn) for r in decision.register] == [("R1K", True)]


# --- A11 -----------------------------------------------------------------------------------------


def test_a11_withdraw_sent() -> None:
    """A11: a withdraw of a sent placement sends the content last sent and WITHDRAWAL."""
    sent = placement(grade="F1")
    view = sent_view(sent, FakeView(positions=LEAD_HOST))
    decision = run(withdrawal(grade="F2"), view=view)
    outcome = only(decision)
    assert (outcome.result, outcome.vpd) == (Result.WITHDRAWN, "RGT")
    assert [(r.vpd, r.action, r.employer_role, r.placement) for r in decision.records] == [
        ("R1K", "withdraw", "Host", sent),
        ("RGT", "withdraw", "Lead", sent),
    ]
    assert [(n.type, n.vpd) for n in decision.notices] == [
        (NoticeType.WITHDRAWAL, "R1K"),
        (NoticeType.WITHDRAWAL, "RGT"),
    ]
    assert all(row.withdrawn for row in decision.register)
    assert len(decision.register) == 2


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(-10, id="A11 withdraw after the start is still sent (no A2)"),
        pytest.param(200, id="A11 withdraw far ahead is still sent (no A3)"),
    ],
)
def test_a11_withdraw_ignores_cutoff_and_window(start: int) -> None:
    """A11: withdrawals are never subject to A2/A3."""
    view = FakeView().with_sent(sent_row(placement(start=start)))
    decision = run(withdrawal(start=start), view=view)
    assert only(decision).result is Result.WITHDRAWN
    assert [r.action for r in decision.records] == ["withdraw"]


def test_a11_withdraw_held() -> None:
    """A11: a withdraw of a held placement clears the hold: withdrawn, nothing sent, no notice."""
    decision = run(withdrawal(), view=FakeView(holds={"P1": placement(start=100)}))
    assert only(decision).result is Result.WITHDRAWN
    assert (decision.records, decision.notices, decision.register) == ([], [], [])
    assert decision.release == ["P1"]


@pytest.mark.parametrize(
    "view",
    [
        pytest.param(FakeView(), id="A11 withdraw of an unknown placement"),
        pytest.param(FakeView().with_sent(sent_row(placement(), withdrawn=True)),
                     id="A11 withdraw of a placement already withdrawn"),
    ],
)  # fmt: skip
def test_a11_withdraw_unknown(view: FakeView) -> None:
    """A11: a withdraw of a placement never sent, or already withdrawn, is UNKNOWN_PLACEMENT."""
    decision = run(withdrawal(), view=view)
    assert_rejected(decision, "UNKNOWN_PLACEMENT")
    assert [(n.type, n.vpd) for n in decision.notices] == [(NoticeType.REJECTED, "RGT")]


# --- A12 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "grade",
    [
        pytest.param("GPST1", id="A12 GPST1 is out of scope"),
        pytest.param("GPST4", id="A12 GPST4 is out of scope"),
    ],
)
def test_a12_out_of_scope_grade(grade: str) -> None:
    """A12: GP specialty training grades are OUT_OF_SCOPE."""
    assert_rejected(run(placement(grade=grade)), "OUT_OF_SCOPE")


def test_a12_configured_grades_are_used() -> None:
    """A12: the out-of-scope list comes from the rules settings."""
    rules = Rules(out_of_scope_grades=("F1",))
    assert_rejected(run(placement(grade="F1"), rules=rules), "OUT_OF_SCOPE")
    assert only(run(placement(grade="GPST1"), rules=rules)).result is Result.LOADED


def test_a12_rejected_held_placement_is_released() -> None:
    """A12: a held placement re-sent out of scope is rejected and its hold cleared."""
    decision = run(placement(grade="GPST1"), view=FakeView(holds={"P1": placement(start=100)}))
    assert_rejected(decision, "OUT_OF_SCOPE")
    assert decision.release == ["P1"]


# --- held placements now due ---------------------------------------------------------------------


def test_released_placement_is_sent_with_ready_to_hire() -> None:
    """Daily job: a held placement now due is created, notified and released."""
    p = placement(start=91)
    decision = decide_released([p], FakeView(holds={"P1": p}), AS_OF, RULES)
    assert only(decision).result is Result.LOADED
    assert [n.type for n in decision.notices] == [NoticeType.READY_TO_HIRE]
    assert decision.release == ["P1"]


def test_released_placement_now_rejected_is_notified_and_released() -> None:
    """Daily job: a held placement whose post left the interface is REJECTED and released."""
    p = placement(start=91)
    view = FakeView(positions=[("RGT", position(hiring_status="Frozen"))], holds={"P1": p})
    decision = decide_released([p], view, AS_OF, RULES)
    assert_rejected(decision, "POST_NOT_ACTIVE")
    assert [n.type for n in decision.notices] == [NoticeType.REJECTED]
    assert decision.release == ["P1"]


def test_released_placement_not_yet_due_keeps_its_hold() -> None:
    """Daily job: a placement deferred again keeps a hold and is not released."""
    p = placement(start=91)
    decision = decide_released([p], FakeView(holds={"P1": p}), AS_OF, Rules(window_days=60))
    assert only(decision).result is Result.DEFERRED
    assert (decision.hold, decision.release) == ([p], [])


# --- properties ----------------------------------------------------------------------------------

SHARED_DPN = "EOE/RGT00/002/FY2/001"
FROZEN_DPN = "EOE/RGT00/003/CT1/001"
TWIN_DPN = "EOE/RGT00/004/ST3/001"
PROPERTY_POSITIONS = [
    *LEAD_HOST,
    ("RGT", position("1002", SHARED_DPN, position_type="Shared")),
    ("RGT", position("1003", FROZEN_DPN, hiring_status="Frozen")),
    ("RGT", position("1004", TWIN_DPN)),
    ("RGT", position("1005", TWIN_DPN)),
]
FRESH = FakeView(
    positions=PROPERTY_POSITIONS,
    persons=[("RGT", person("E1")), ("R1K", person("K1", forenames="SAM"))],
    assignments=[esr_occupant(150, 160)],
)
# P7 was sent to the Shared post (so withdrawing or moving it frees no Single post); P8 is held.
BUSY = replace(
    FRESH.with_sent(
        sent_row(placement("P7", start=10, trainee=OTHER, dpn=SHARED_DPN), number="1002")
    ),
    holds={"P8": placement("P8", start=120)},
)
TRAINEES = [
    trainee(),
    OTHER,
    trainee(tis_person_id="T3", forenames="Kim", surname="Lee", gmc_number="2345678", nino=None),
]


@st.composite
def placements(draw: st.DrawFn) -> Placement:
    """Any placement of the few ids, DPNs and trainees the property views know."""
    start = draw(st.integers(-3, 130))
    return placement(
        draw(st.sampled_from(["P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8"])),
        start=start,
        end=start + draw(st.integers(-1, 120)),
        action=draw(st.sampled_from(["upsert", "upsert", "upsert", "withdraw"])),
        dpn=draw(st.sampled_from([DPN, DPN, SHARED_DPN, FROZEN_DPN, TWIN_DPN, "XX/NONE"])),
        grade=draw(st.sampled_from(["F1", "F1", "F2", "GPST1"])),
        trainee=draw(st.sampled_from(TRAINEES)),
    )


FILES = st.lists(placements(), max_size=8)
PROPERTY = settings(max_examples=150, deadline=None)


@PROPERTY
@given(FILES, st.sampled_from([FRESH, BUSY]))
def test_property_one_outcome_per_placement_and_totals_add_up(
    file: list[Placement], view: FakeView
) -> None:
    """Every placement gets exactly one outcome, in order, and the totals add up."""
    decision = decide(file, view, AS_OF, RULES)
    assert [o.record_id for o in decision.outcomes] == [p.placement_id for p in file]
    totals = Totals.of(decision.outcomes)
    assert totals.received == len(file)
    assert totals.rejected == sum(o.result is Result.REJECTED for o in decision.outcomes)


@PROPERTY
@given(FILES, st.sampled_from([FRESH, BUSY]))
def test_property_rejected_placements_send_nothing(file: list[Placement], view: FakeView) -> None:
    """A placement rejected every time it appears is in no applicant record or register row."""
    decision = decide(file, view, AS_OF, RULES)
    results: dict[str, set[Result]] = {}
    for outcome in decision.outcomes:
        results.setdefault(outcome.record_id, set()).add(outcome.result)
    rejected = {pid for pid, seen in results.items() if seen == {Result.REJECTED}}
    assert not rejected & {r.placement_id for r in decision.records}
    assert not rejected & {r.placement_id for r in decision.register}


SENT = {Result.LOADED, Result.UPDATED, Result.UNCHANGED}
# Only A7 lets one placement of a file affect another: a placement not sent in the first run
# (deferred, or START_TOO_SOON, decided after A7) can meet in the second run the register row of
# a later placement of the same file that took its Single position.
NOT_SENT_AFTER_A7 = {(Result.DEFERRED, None), (Result.REJECTED, "START_TOO_SOON")}


@PROPERTY
@given(FILES, st.sampled_from([FRESH, BUSY]))
def test_property_deciding_twice_changes_nothing(file: list[Placement], view: FakeView) -> None:
    """Deciding a file again over the state it left sends nothing and says the same."""
    first = decide(file, view, AS_OF, RULES)
    second = decide(file, view.after(first), AS_OF, RULES)
    assert (second.records, second.register) == ([], [])
    for before, after in zip(first.outcomes, second.outcomes, strict=True):
        if before.result in SENT:
            assert after.result is Result.UNCHANGED
        elif before.result is Result.WITHDRAWN:  # nothing left to withdraw
            assert (after.result, after.reason) == (Result.REJECTED, "UNKNOWN_PLACEMENT")
        elif (after.result, after.reason) == (Result.REJECTED, "POSITION_OCCUPIED"):
            assert (before.result, before.reason) in NOT_SENT_AFTER_A7 | {
                (Result.REJECTED, "POSITION_OCCUPIED")
            }
        else:
            assert (after.result, after.reason) == (before.result, before.reason)


# --- R4: a create ESR failed was never sent (spec 6.5) -------------------------------------------


def failed(row: SentApplicant, action: str = "create") -> SentApplicant:
    """A register row whose last record (``action``) ESR failed."""
    return replace(row, last_action=action, esr_state="failed")


def test_r4_identical_upsert_after_a_failed_create_is_created_again() -> None:
    """R4: an upsert identical to a create ESR failed goes out as a create (READY_TO_HIRE)."""
    p = placement()
    decision = run(p, view=FakeView().with_sent(failed(sent_row(p))))
    assert only(decision).result == Result.LOADED
    assert [(r.action, r.vpd) for r in decision.records] == [("create", "RGT")]
    assert [n.type for n in decision.notices] == [NoticeType.READY_TO_HIRE]


def test_r4_a_failed_create_still_meets_a2() -> None:
    """R4 with A2: the create again is START_TOO_SOON when the start is now too close."""
    p = placement(start=1)
    assert_rejected(run(p, view=FakeView().with_sent(failed(sent_row(p)))), "START_TOO_SOON")


def test_r4_withdraw_of_a_failed_create_sends_nothing() -> None:
    """R4: a withdraw of a placement whose create ESR failed is withdrawn with no ESR record."""
    p = placement()
    decision = run(withdrawal(), view=FakeView().with_sent(failed(sent_row(p))))
    assert only(decision).result == Result.WITHDRAWN
    assert decision.records == []
    assert decision.notices == []
    assert [row.withdrawn for row in decision.register] == [True]


def test_identical_upsert_after_a_failed_update_sends_the_update_again_whole() -> None:
    """An update ESR failed is sent again, every element listed, even when identical."""
    p = placement()
    decision = run(p, view=FakeView().with_sent(failed(sent_row(p), "update")))
    assert only(decision).result == Result.UPDATED
    (record,) = decision.records
    assert record.action == "update"
    assert "ProjectedHireDate" in record.changed


def test_identical_upsert_after_a_success_is_unchanged() -> None:
    """After SUCCESS (in ESR) an identical upsert is unchanged, as before."""
    p = placement()
    row = replace(sent_row(p), last_action="create", esr_state="in ESR")
    assert only(run(p, view=FakeView().with_sent(row))).result == Result.UNCHANGED


CHANGED = {  # what A10 compares (and what it does not), each to another value
    "dpn": "EOE/RGT00/002/FY1/001", "start": day(31), "end": day(220), "wte": "0.8",
    "grade": "F2", "specialty": "Cardiology", "placement_type": "Out of Programme",
    "forenames": "alex  jo", "surname": "Smyth", "date_of_birth": date(1995, 4, 2),
    "gender": "M", "nino": None, "gmc_number": "7654322", "email": "a@example.org",
    "mobile_phone": "07700 900000", "address": Address(line1="2 Lane", town="York",
                                                       postcode="YO1 1AA"),
    "tis_person_id": "T1b", "line": 7, "position_number": "1009", "role": "Host",
    "person_id": None,
}


def what_changed(changes: dict[str, object]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A10's comparison of what was last sent with the placement now, after ``changes``, and
    the elements whose values differ in the whole records."""
    from gateway.rules import placements as rules  # noqa: PLC0415 - its private parts

    fields = {f: changes[f] for f in ("dpn", "start", "end", "wte", "grade", "specialty",
                                      "placement_type", "line") if f in changes}
    people = {f: changes[f] for f in ("forenames", "surname", "date_of_birth", "gender", "nino",
                                      "gmc_number", "email", "mobile_phone", "address",
                                      "tis_person_id") if f in changes}
    sent = placement()
    now = replace(sent, trainee=replace(sent.trainee, **people), **fields)  # type: ignore[arg-type]
    row = SentApplicant("P1", "RGT", "T1", "1001", "Lead", sent, existing_esr_person_id="E1")
    target = rules._Target(
        "RGT", position(str(changes.get("position_number", "1001"))),
        str(changes.get("role", "Lead")), changes.get("person_id", "E1"),  # type: ignore[arg-type]
    )
    old = rules._content(sent, row.position_number, row.employer_role, row.existing_esr_person_id)
    new = rules._content(now, target.position.position_number, target.role, target.person_id)
    expected = tuple(name for name in rules._ELEMENTS if old[name] != new[name])
    return rules._changed(row, now, target), expected


@pytest.mark.parametrize("key", ["", *CHANGED])
def test_what_changed_is_what_the_whole_records_say(key: str) -> None:
    """A10's comparison (the quick look first: nothing changed) names exactly the element that
    differs when one thing changed, and none when nothing A10 compares did (the line, TIS's
    person id)."""
    got, expected = what_changed({key: CHANGED[key]} if key else {})
    assert got == expected
    assert bool(got) == (key not in ("", "line", "tis_person_id"))


@PROPERTY
@given(st.sets(st.sampled_from(sorted(CHANGED)), max_size=4))
def test_property_what_changed_is_what_the_whole_records_say(keys: set[str]) -> None:
    """The same, whichever few changed together."""
    got, expected = what_changed({key: CHANGED[key] for key in keys})
    assert got == expected
