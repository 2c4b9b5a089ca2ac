"""R1–R6 as pure functions over plain values (spec 6.5)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from gateway.models import (
    Awaiting,
    Confirmation,
    LoadConfirmation,
    LoadFile,
    LoadRecord,
    NoticeType,
    Placement,
    Result,
    SentApplicant,
    Trainee,
)
from gateway.rules.confirmations import LoadView, decide, overdue, unconfirmed_notice

DPN = "EOE/RGT00/001/FY1/001"
LOAD = "applicants-tis-1-0123456789ab.xml"
TRAINEE = Trainee("T1", "Alex", "Smith", date(1995, 3, 4), "M", "7123456")
PLACEMENT = Placement("P1", "upsert", DPN, "In Post", "F1", "Medicine", date(2027, 6, 1),
                      date(2027, 12, 1), "1.0", TRAINEE)


def _row(record: int = 1, load: str = LOAD) -> SentApplicant:
    return SentApplicant("P1", "RGT", "T1", "1001", "Lead", PLACEMENT, last_action="create",
                         load_file=load, load_record=record)


def _load(status: str | None = None) -> LoadFile:
    return LoadFile("RGT", LOAD, "tis-1.xml", "2027-05-01T10:00:00+00:00",
                    (LoadRecord("P1", "create", 1, DPN, "1001", status),))


def _doc(*confirmations: Confirmation, load: str = LOAD) -> LoadConfirmation:
    return LoadConfirmation("RGT", load, "2027-05-02T03:00:00Z", confirmations)


def test_success_puts_the_applicant_in_esr_and_tells_tis() -> None:
    """R2: SUCCESS of the register's last record: in ESR with its numbers, LOADED to TIS."""
    view = LoadView(_load(), {"P1": _row()}, {"P1": "EOE"})
    decision = decide(_doc(Confirmation("P1", "create", "SUCCESS", "APP-1", "AS-1")), view)
    assert [(o.result, o.reason) for o in decision.outcomes] == [(Result.UPDATED, None)]
    assert [(s.state, s.applicant_number, s.assignment_id) for s in decision.states] == [
        ("in ESR", "APP-1", "AS-1")]
    assert [(t.deanery, t.status, t.applicant_number) for t in decision.tis] == [
        ("EOE", "LOADED", "APP-1")]
    assert decision.notices == []
    assert decision.unkeep == ["P1"]


def test_fail_raises_load_failed_with_esr_message_and_keeps_the_placement() -> None:
    """R3: FAIL: failed with ESR's message, LOAD_FAILED to the VPD, FAILED to TIS, kept (R7)."""
    view = LoadView(_load(), {"P1": _row()}, {})
    msg = "Mandatory field missing"
    decision = decide(_doc(Confirmation("P1", "create", "FAIL", message_text=msg)), view)
    assert [(s.state, s.message) for s in decision.states] == [("failed", msg)]
    assert [(n.type, n.vpd, n.placement_id) for n in decision.notices] == [
        (NoticeType.LOAD_FAILED, "RGT", "P1")]
    assert msg in decision.notices[0].text
    assert [(t.deanery, t.status, t.message) for t in decision.tis] == [("EOE", "FAILED", msg)]
    assert [(k.placement.placement_id, k.cause) for k in decision.keep] == [("P1", "failed")]


def test_unknown_load_and_record_not_in_load_are_rejected() -> None:
    """R1: a load never written is UNKNOWN_LOAD; a record not in it is NOT_IN_LOAD."""
    unknown = decide(_doc(Confirmation("P1", "create", "SUCCESS")), LoadView(None, {}, {}))
    assert [o.reason for o in unknown.outcomes] == ["UNKNOWN_LOAD"]
    view = LoadView(_load(), {"P1": _row()}, {})
    missing = decide(_doc(Confirmation("P1", "update", "SUCCESS"),
                          Confirmation("P2", "create", "SUCCESS")), view)
    assert [o.reason for o in missing.outcomes] == ["NOT_IN_LOAD", "NOT_IN_LOAD"]
    assert missing.confirmed == []
    assert missing.tis == []


def test_the_same_confirmation_again_is_unchanged() -> None:
    """R5: the status already recorded, or given twice in one file, is unchanged."""
    view = LoadView(_load("SUCCESS"), {"P1": _row()}, {})
    again = decide(_doc(Confirmation("P1", "create", "SUCCESS")), view)
    assert [o.result for o in again.outcomes] == [Result.UNCHANGED]
    assert again.confirmed == []
    assert again.tis == []
    twice = decide(_doc(Confirmation("P1", "create", "FAIL"), Confirmation("P1", "create", "FAIL")),
                   LoadView(_load(), {"P1": _row()}, {}))
    assert [o.result for o in twice.outcomes] == [Result.UPDATED, Result.UNCHANGED]


def test_a_confirmation_of_an_older_record_leaves_the_register_alone() -> None:
    """A late answer about a record superseded since changes the load record only."""
    view = LoadView(_load(), {"P1": _row(load="applicants-later-1.xml")}, {})
    decision = decide(_doc(Confirmation("P1", "create", "FAIL", message_text="x")), view)
    assert decision.confirmed == [("P1", "create", "FAIL")]
    assert decision.states == []
    assert decision.keep == []
    assert [o.result for o in decision.outcomes] == [Result.UPDATED]


def test_deanery_falls_back_to_the_dpn_first_segment() -> None:
    """P3 on the placement's DPN when its position is not known any more."""
    decision = decide(_doc(Confirmation("P1", "create", "SUCCESS")),
                      LoadView(_load(), {"P1": _row()}, {}))
    assert [t.deanery for t in decision.tis] == ["EOE"]


def test_overdue_counts_hours_from_written_at_and_raises_once() -> None:
    """R6: a load with unconfirmed records is overdue at confirm_hours exactly, not before,
    and not again once raised; a wholly confirmed load never is."""
    load = Awaiting("RGT", LOAD, "2027-05-01T10:00:00+00:00", 1, 1)
    at = datetime.fromisoformat("2027-05-03T10:00:00+00:00")
    assert overdue([load], at, 48, []) == [load]
    assert overdue([load], replace_hour(at, 9), 48, []) == []
    assert overdue([load], at, 48, [("RGT", LOAD)]) == []
    assert overdue([replace(load, records=0, placements=0)], at, 48, []) == []
    notice = unconfirmed_notice(load, ["P1"], 48)
    assert notice.type == NoticeType.LOAD_UNCONFIRMED
    assert LOAD in notice.text
    assert "1 record(s)" in notice.text
    assert "placements P1." in notice.text


def test_unconfirmed_notice_names_ten_placements_and_counts_the_rest() -> None:
    """R6 on a large load: 14 records of 12 placements, the first ten named, two counted."""
    load = Awaiting("RGT", LOAD, "2027-05-01T10:00:00+00:00", 14, 12)
    first = [f"P{i:02d}" for i in range(10)]
    notice = unconfirmed_notice(load, first, 48)
    assert "ESR has not confirmed 14 record(s)" in notice.text
    assert "placements P00, P01, P02, P03, P04, P05, P06, P07, P08, P09 and 2 more." in (
        notice.text)


def replace_hour(at: datetime, hour: int) -> datetime:
    """The same day at another hour."""
    return at.replace(hour=hour, minute=59)
