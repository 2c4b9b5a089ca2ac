"""Rules C1–C6: Trac checks onto the applicants TIS created (pure functions, plain values)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date
from typing import Any

import pytest

from gateway.models import (
    CheckApplicant,
    CheckMatch,
    CheckRecord,
    NoticeType,
    Placement,
    Result,
    SentApplicant,
    Trainee,
)
from gateway.rules.checks import CheckDecision, CheckView, decide

NS = "urn:dit-gateway:trac:checks:1"
AS_OF = date(2027, 7, 1)
DOB = date(1995, 3, 4)
NINO = "QQ123456C"
GMC = "7123456"
CERT = "001234567890"
CERT_11 = "12345678901"
CERT_13 = "0012345678901"


# --- builders ------------------------------------------------------------------------------------


def record(kind: str, *pairs: tuple[str, str]) -> CheckRecord:
    """A check record as the reader builds it: canonical XML, every date, simple values."""
    body = "".join(f"<{k}>{v}</{k}>" for k, v in pairs)
    dates = tuple(date.fromisoformat(v) for _k, v in pairs if len(v) == 10 and v[4] == "-")
    xml = f'<{kind} xmlns="{NS}">{body}</{kind}>'.encode()
    return CheckRecord(kind=kind, xml=xml, dates=dates, fields=pairs)


def dbs(number: str = CERT, issued: str = "2027-06-10") -> CheckRecord:
    """A DBS check."""
    return record(
        "DbsCheck",
        ("CertificateNumber", number),
        ("DisclosureLevel", "Enhanced"),
        ("IssueDate", issued),
        ("Outcome", "Clear"),
    )


def reference(received: str = "2027-05-29", referee: str = "Dr Eleanor Marsh") -> CheckRecord:
    """A reference."""
    return record(
        "Reference",
        ("RefereeName", referee),
        ("ReceivedDate", received),
        ("Outcome", "Satisfactory"),
    )


def illegal_working(checked: str = "2027-06-11") -> CheckRecord:
    """A right-to-work check with a visa expiry and follow-up in the future."""
    return record(
        "IllegalWorkingChecklist",
        ("DocumentType", "Biometric residence permit"),
        ("CheckedDate", checked),
        ("ExpiryDate", "2029-01-31"),
        ("FollowUpDate", "2028-12-31"),
    )


def eu_status() -> CheckRecord:
    """An EU status check."""
    return record("EuStatus", ("Status", "Pre-Settled"), ("CheckedDate", "2027-06-11"))


def match(**kw: object) -> CheckMatch:
    """Trac's view of the trainee: Alex Smith, with NINO and GMC number, no placement id."""
    base = CheckMatch(
        forenames="Alex", surname="Smith", date_of_birth=DOB, nino=NINO, gmc_number=GMC
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def applicant(
    tid: str = "TRAC-1",
    *,
    vpd: str = "RGT",
    status: str = "Outcome Recruited",
    who: CheckMatch | None = None,
    checks: Sequence[CheckRecord] = (dbs(), reference()),
    has_identity: bool = False,
) -> CheckApplicant:
    """A Trac applicant of VPD RGT, recruited, with a DBS check and a reference."""
    return CheckApplicant(tid, vpd, status, who or match(), tuple(checks), has_identity)


def row(
    placement_id: str = "P-1", *, vpd: str = "RGT", withdrawn: bool = False, **kw: object
) -> SentApplicant:
    """A register row: the applicant the gateway created from a TIS placement."""
    trainee = replace(
        Trainee("T1", "Alex", "Smith", DOB, "F", gmc_number=GMC, nino=NINO),
        **kw,  # type: ignore[arg-type]
    )
    placement = Placement(
        placement_id,
        "upsert",
        "EOE/RGT00/001/FY1/001",
        "In Post",
        "F1",
        "General Medicine",
        date(2027, 8, 4),
        date(2028, 8, 1),
        "1.0",
        trainee,
    )
    return SentApplicant(
        placement_id, vpd, trainee.tis_person_id, "1001", "Lead", placement, withdrawn=withdrawn
    )


@dataclass
class FakeView:
    """The applicant register and the transfer ledger, in memory."""

    rows: list[SentApplicant] = field(default_factory=list)
    done: set[tuple[str, str]] = field(default_factory=set)

    def sent(self, placement_id: str) -> Sequence[SentApplicant]:
        """Rows of a placement, every VPD."""
        return [r for r in self.rows if r.placement_id == placement_id]

    def applicants_born(self, vpd: str, date_of_birth: date) -> Sequence[SentApplicant]:
        """Rows of a VPD whose trainee has that date of birth."""
        return [
            r
            for r in self.rows
            if r.vpd == vpd and r.placement.trainee.date_of_birth == date_of_birth
        ]

    def transferred(self, vpd: str, placement_id: str) -> bool:
        """Whether checks already went for the applicant."""
        return (vpd, placement_id) in self.done


def run(*applicants: CheckApplicant, view: CheckView | None = None) -> CheckDecision:
    """Decide a file of applicants against a register holding row P-1 by default."""
    return decide(applicants, view or FakeView([row()]), AS_OF)


def only_reason(decision: CheckDecision) -> str | None:
    """The reason of the single outcome, after checking refusals carry a notice."""
    (outcome,) = decision.outcomes
    if outcome.result is Result.REJECTED:
        assert decision.transfers == []
        (notice,) = decision.notices
        assert notice.type is NoticeType.REJECTED
        assert notice.reason == outcome.reason
    return outcome.reason


# --- C1 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status",
    [
        pytest.param("Offer Made", id="C1 offer made"),
        pytest.param("Conditional Offer", id="C1 conditional offer"),
        pytest.param("Withdrawn", id="C1 withdrawn"),
        pytest.param("Pre-employment checks", id="C1 other text"),
        pytest.param("outcome recruited", id="C1 case matters"),
        pytest.param("Outcome  Recruited", id="C1 inner spaces matter"),
    ],
)
def test_c1_only_outcome_recruited_transfers(status: str) -> None:
    """C1: any status but 'Outcome Recruited' is refused NOT_RECRUITED, with no placement."""
    decision = run(applicant(status=status))
    assert only_reason(decision) == "NOT_RECRUITED"
    assert decision.notices[0].placement_id is None
    assert decision.notices[0].trainee == "Smith, Alex"


def test_c1_status_is_trimmed() -> None:
    """C1: surrounding spaces around 'Outcome Recruited' do not matter."""
    assert only_reason(run(applicant(status="  Outcome Recruited \n"))) is None


# --- C2 ------------------------------------------------------------------------------------------


def test_c2_by_placement_id_decides_alone() -> None:
    """C2: a TisPlacementId finds its row even when the demographics differ."""
    who = match(tis_placement_id="P-2", surname="Jones", gmc_number="7999999")
    view = FakeView([row(), row("P-2", forenames="Sam", surname="Patel")])
    decision = run(applicant(who=who), view=view)
    assert only_reason(decision) is None
    assert [t.placement_id for t in decision.transfers] == ["P-2"]


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param([row()], id="C2 unknown placement id"),
        pytest.param([row(), row("P-9", withdrawn=True)], id="C2 placement id only withdrawn"),
        pytest.param([row(), row("P-9", vpd="R1K")], id="C2 placement id of another VPD"),
    ],
)
def test_c2_placement_id_without_live_row_never_falls_back(rows: list[SentApplicant]) -> None:
    """C2: a TisPlacementId with no live row of the VPD is NO_MATCHING_APPLICANT, no fallback."""
    decision = run(applicant(who=match(tis_placement_id="P-9")), view=FakeView(rows))
    assert only_reason(decision) == "NO_MATCHING_APPLICANT"
    assert "P-9" in decision.outcomes[0].text


def test_c2_by_demographics_ignores_case_and_spaces() -> None:
    """C2: '  SMITH ' and 'alex  jo' match Smith, Alex Joanne (first forename only)."""
    view = FakeView([row(forenames="Alex Joanne")])
    decision = run(applicant(who=match(surname="  SMITH ", forenames="alex  jo")), view=view)
    assert only_reason(decision) is None
    assert decision.transfers[0].placement_id == "P-1"


def test_c2_surname_inner_spaces_collapse() -> None:
    """C2: a double-barrelled surname matches with its inner spaces collapsed."""
    view = FakeView([row(surname="Lloyd Webber")])
    assert only_reason(run(applicant(who=match(surname=" lloyd   WEBBER")), view=view)) is None


@pytest.mark.parametrize(
    ("who", "kw"),
    [
        pytest.param(match(nino=None), {}, id="C2 NINO in the register only"),
        pytest.param(match(), {"nino": None}, id="C2 NINO in Trac only"),
        pytest.param(match(nino="qq 12 34 56 c"), {}, id="C2 NINO spaced and lower case"),
        pytest.param(match(gmc_number=None), {}, id="C2 GMC number in the register only"),
        pytest.param(match(), {"gmc_number": ""}, id="C2 GMC number in Trac only"),
    ],
)
def test_c2_identifiers_compare_only_where_both_sides_have_one(
    who: CheckMatch, kw: dict[str, Any]
) -> None:
    """C2: a NINO or GMC number on one side only does not prevent the match."""
    assert only_reason(run(applicant(who=who), view=FakeView([row(**kw)]))) is None


@pytest.mark.parametrize(
    "who",
    [
        pytest.param(match(gmc_number="7654321"), id="C2 different GMC number"),
        pytest.param(match(nino="QQ654321C"), id="C2 different NINO"),
        pytest.param(match(surname="Smyth"), id="C2 different surname"),
        pytest.param(match(forenames="Alexandra"), id="C2 different first forename"),
        pytest.param(match(forenames="Jo Alex"), id="C2 second forename does not count"),
        pytest.param(match(date_of_birth=date(1995, 3, 5)), id="C2 different date of birth"),
    ],
)
def test_c2_demographic_mismatch_is_no_match(who: CheckMatch) -> None:
    """C2: any differing demographic item means NO_MATCHING_APPLICANT."""
    decision = run(applicant(who=who))
    assert only_reason(decision) == "NO_MATCHING_APPLICANT"
    assert decision.notices[0].placement_id is None


def test_c2_withdrawn_applicant_is_no_match() -> None:
    """C2: a withdrawn register row is not an applicant to copy checks onto."""
    decision = run(applicant(), view=FakeView([row(withdrawn=True)]))
    assert only_reason(decision) == "NO_MATCHING_APPLICANT"


def test_c2_withdrawn_row_does_not_make_a_live_one_ambiguous() -> None:
    """C2: beside a withdrawn placement of the same trainee, the live one is the match."""
    view = FakeView([row("P-1", withdrawn=True), row("P-2")])
    decision = run(applicant(), view=view)
    assert only_reason(decision) is None
    assert decision.transfers[0].placement_id == "P-2"


def test_c2_two_candidates_are_ambiguous() -> None:
    """C2: two live placements matching the demographics are AMBIGUOUS_APPLICANT_MATCH."""
    decision = run(applicant(), view=FakeView([row("P-1"), row("P-2", nino=None)]))
    assert only_reason(decision) == "AMBIGUOUS_APPLICANT_MATCH"
    assert "P-1" in decision.outcomes[0].text
    assert "P-2" in decision.outcomes[0].text


def test_c2_placement_id_settles_what_demographics_cannot() -> None:
    """C2: with two candidates, a TisPlacementId picks one."""
    view = FakeView([row("P-1"), row("P-2")])
    decision = run(applicant(who=match(tis_placement_id="P-2")), view=view)
    assert [t.placement_id for t in decision.transfers] == ["P-2"]


def test_c2_wrong_vpd_is_no_match() -> None:
    """C2: the trainee's applicant in another VPD is never matched, by demographics or by id."""
    view = FakeView([row(vpd="R1K")])
    by_names = run(applicant(), view=view)
    by_id = run(applicant(who=match(tis_placement_id="P-1")), view=view)
    assert only_reason(by_names) == "NO_MATCHING_APPLICANT"
    assert only_reason(by_id) == "NO_MATCHING_APPLICANT"
    assert by_names.notices[0].vpd == "RGT"


def test_c2_same_placement_in_two_vpds_matches_the_applicants_own() -> None:
    """C2: a placement sent to a lead and a host VPD matches the row of the applicant's VPD."""
    view = FakeView([row(vpd="R1K"), row(vpd="RGT")])
    decision = run(applicant(vpd="R1K"), view=view)
    assert [(t.vpd, t.placement_id) for t in decision.transfers] == [("R1K", "P-1")]


# --- C3 ------------------------------------------------------------------------------------------


def test_c3_already_transferred_in_the_store() -> None:
    """C3: checks that went in an earlier file are refused ALREADY_TRANSFERRED."""
    view = FakeView([row()], done={("RGT", "P-1")})
    decision = run(applicant(), view=view)
    assert only_reason(decision) == "ALREADY_TRANSFERRED"
    assert decision.notices[0].placement_id == "P-1"
    assert decision.notices[0].trainee == "Smith, Alex"


def test_c3_transfer_in_another_vpd_does_not_count() -> None:
    """C3: the one-off transfer is per VPD: the host's copy is still due after the lead's."""
    view = FakeView([row(vpd="R1K"), row(vpd="RGT")], done={("R1K", "P-1")})
    assert only_reason(run(applicant(), view=view)) is None


def test_c3_twice_in_one_file() -> None:
    """C3: a second applicant of the file for the same placement is ALREADY_TRANSFERRED."""
    decision = run(applicant("TRAC-1"), applicant("TRAC-2", who=match(tis_placement_id="P-1")))
    assert [(o.record_id, o.result, o.reason) for o in decision.outcomes] == [
        ("TRAC-1", Result.LOADED, None),
        ("TRAC-2", Result.REJECTED, "ALREADY_TRANSFERRED"),
    ]
    assert [t.trac_applicant_id for t in decision.transfers] == ["TRAC-1"]
    assert "earlier in this file" in decision.outcomes[1].text


def test_c3_refused_earlier_applicant_does_not_block_a_later_one() -> None:
    """C3: only a transfer counts; an earlier refused applicant leaves the placement open."""
    decision = run(applicant("TRAC-1", checks=[dbs(CERT_11)]), applicant("TRAC-2"))
    assert [o.result for o in decision.outcomes] == [Result.REJECTED, Result.LOADED]
    assert [t.trac_applicant_id for t in decision.transfers] == ["TRAC-2"]


# --- C4 ------------------------------------------------------------------------------------------


def test_c4_eligible_checks_travel_in_document_order() -> None:
    """C4: every eligible record goes, exactly as received and in order; outcome loaded."""
    checks = [
        dbs(),
        reference(),
        reference(referee="Prof Daniel Osei"),
        illegal_working(),
        eu_status(),
    ]
    decision = run(applicant(checks=checks))
    (transfer,) = decision.transfers
    assert transfer.checks == tuple(checks)
    assert (transfer.vpd, transfer.placement_id, transfer.trac_applicant_id) == (
        "RGT",
        "P-1",
        "TRAC-1",
    )
    (outcome,) = decision.outcomes
    assert (outcome.record_id, outcome.result, outcome.vpd) == ("TRAC-1", Result.LOADED, "RGT")
    assert "P-1" in outcome.text
    assert "identity" not in outcome.text.lower()
    assert decision.notices == []


def test_c4_identity_dropped_and_noted() -> None:
    """C4: with identity present the rest still loads, and the outcome says identity was dropped."""
    decision = run(applicant(has_identity=True))
    (outcome,) = decision.outcomes
    assert outcome.result is Result.LOADED
    assert "identity record was dropped and never transferred" in outcome.text
    assert all(c.kind != "Identity" for t in decision.transfers for c in t.checks)


def test_c4_identity_record_never_travels_even_if_handed_over() -> None:
    """C4: an Identity record reaching the rules is filtered out, never transferred."""
    identity = record(
        "Identity",
        ("DocumentType", "Passport"),
        ("DocumentNumber", "925076473"),
        ("CheckedDate", "2027-06-11"),
    )
    decision = run(applicant(checks=[identity, dbs()]))
    (transfer,) = decision.transfers
    assert [c.kind for c in transfer.checks] == ["DbsCheck"]
    assert all(b"Identity" not in c.xml for c in transfer.checks)
    assert "identity record was dropped" in decision.outcomes[0].text
    assert "925076473" not in decision.outcomes[0].text


# --- C5 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "has_identity",
    [pytest.param(True, id="C5 identity only"), pytest.param(False, id="C5 no checks at all")],
)
def test_c5_nothing_eligible(has_identity: bool) -> None:
    """C5: an applicant with no eligible record is NO_ELIGIBLE_CHECKS, nothing transferred."""
    decision = run(applicant(checks=(), has_identity=has_identity))
    assert only_reason(decision) == "NO_ELIGIBLE_CHECKS"
    assert decision.notices[0].placement_id == "P-1"
    assert ("identity" in decision.outcomes[0].text) is has_identity


# --- C6 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "checks",
    [
        pytest.param([dbs(issued="2027-07-02")], id="C6 DBS issued tomorrow"),
        pytest.param([dbs(), reference(received="2028-01-01")], id="C6 future reference"),
        pytest.param([illegal_working(checked="2027-07-02")], id="C6 future right-to-work check"),
    ],
)
def test_c6_future_date_refuses_the_whole_applicant(checks: list[CheckRecord]) -> None:
    """C6: a check dated after as-of is INVALID_CHECK; the text names the check, not the date."""
    decision = run(applicant(checks=checks))
    assert only_reason(decision) == "INVALID_CHECK"
    text = decision.outcomes[0].text
    assert checks[-1].kind in text
    assert all(d.isoformat() not in text for c in checks for d in c.dates)


def test_c6_today_is_not_in_the_future() -> None:
    """C6: a check dated on as-of is fine."""
    assert only_reason(run(applicant(checks=[dbs(issued=AS_OF.isoformat())]))) is None


def test_c6_expiry_and_follow_up_dates_may_lie_ahead() -> None:
    """C6 decision: ExpiryDate and FollowUpDate look forward and are not check dates."""
    registration = record(
        "ProfessionalRegistration",
        ("Body", "GMC"),
        ("RegistrationNumber", GMC),
        ("ExpiryDate", "2028-08-31"),
        ("VerifiedDate", "2027-06-11"),
    )
    decision = run(applicant(checks=[illegal_working(), registration]))
    assert only_reason(decision) is None


def test_c6_expiry_date_does_not_excuse_an_equal_check_date() -> None:
    """C6: a future CheckedDate is refused even when it equals the (exempt) ExpiryDate."""
    check = record(
        "IllegalWorkingChecklist",
        ("DocumentType", "Visa"),
        ("CheckedDate", "2029-01-31"),
        ("ExpiryDate", "2029-01-31"),
    )
    assert only_reason(run(applicant(checks=[check]))) == "INVALID_CHECK"


@pytest.mark.parametrize(
    "number",
    [
        pytest.param(CERT_11, id="C6 11-digit DBS number"),
        pytest.param(CERT_13, id="C6 13-digit DBS number"),
        pytest.param("00123456789A", id="C6 DBS number with a letter"),
        pytest.param("٠٠١٢٣٤٥٦٧٨٩٠", id="C6 DBS number in non-ASCII digits"),
    ],
)
def test_c6_dbs_certificate_number_must_be_12_digits(number: str) -> None:
    """C6: a DBS certificate number other than exactly 12 digits is INVALID_CHECK."""
    decision = run(applicant(checks=[dbs(number), reference()]))
    assert only_reason(decision) == "INVALID_CHECK"
    assert "DbsCheck" in decision.outcomes[0].text
    assert number not in decision.outcomes[0].text


def test_c6_missing_dbs_certificate_number() -> None:
    """C6: a DbsCheck without a certificate number is INVALID_CHECK."""
    check = record("DbsCheck", ("DisclosureLevel", "Basic"), ("IssueDate", "2027-06-10"))
    assert only_reason(run(applicant(checks=[check]))) == "INVALID_CHECK"


# --- order and shape -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app", "view", "reason"),
    [
        pytest.param(
            applicant(status="Offer Made", checks=[dbs(CERT_11)]),
            FakeView(),
            "NOT_RECRUITED",
            id="C1 before C2 and C6",
        ),
        pytest.param(
            applicant(checks=[dbs(CERT_11)]),
            FakeView(),
            "NO_MATCHING_APPLICANT",
            id="C2 before C6",
        ),
        pytest.param(
            applicant(checks=[dbs(CERT_11)]),
            FakeView([row()], done={("RGT", "P-1")}),
            "ALREADY_TRANSFERRED",
            id="C3 before C6",
        ),
        pytest.param(
            applicant(checks=()),
            FakeView([row()], done={("RGT", "P-1")}),
            "ALREADY_TRANSFERRED",
            id="C3 before C5",
        ),
    ],
)
def test_rules_apply_in_order(app: CheckApplicant, view: FakeView, reason: str) -> None:
    """C1, C2, C3, C6, C5 refuse in that order when several apply."""
    assert only_reason(run(app, view=view)) == reason


def mixed_file() -> tuple[list[CheckApplicant], FakeView]:
    """One file touching every rule, with the personal data the texts must never show."""
    view = FakeView([row("P-1"), row("P-2", surname="Jones"), row("P-3", surname="Patel")])
    view.rows.append(row("P-4", surname="Patel", forenames="ALEX Marie"))
    view.done.add(("RGT", "P-2"))
    apps = [
        applicant("A1", status="Offer Made"),
        applicant("A2", who=match(gmc_number="7654321")),
        applicant("A3", who=match(surname="Patel")),
        applicant("A4", who=match(surname="Jones")),
        applicant("A5", checks=[dbs(CERT_11)]),
        applicant("A6", checks=[dbs(CERT_13, issued="2027-12-01")]),
        applicant("A7", checks=(), has_identity=True),
        applicant("A8", has_identity=True),
        applicant("A9", who=match(tis_placement_id="P-1")),
    ]
    return apps, view


def test_one_outcome_per_applicant_in_order_and_a_notice_per_refusal() -> None:
    """Every applicant gets exactly one outcome, in order, with its VPD; each refusal a notice."""
    apps, view = mixed_file()
    decision = decide(apps, view, AS_OF)
    assert [(o.record_id, o.reason) for o in decision.outcomes] == [
        ("A1", "NOT_RECRUITED"),
        ("A2", "NO_MATCHING_APPLICANT"),
        ("A3", "AMBIGUOUS_APPLICANT_MATCH"),
        ("A4", "ALREADY_TRANSFERRED"),
        ("A5", "INVALID_CHECK"),
        ("A6", "INVALID_CHECK"),
        ("A7", "NO_ELIGIBLE_CHECKS"),
        ("A8", None),
        ("A9", "ALREADY_TRANSFERRED"),
    ]
    assert all(o.vpd == "RGT" for o in decision.outcomes)
    rejected = [o for o in decision.outcomes if o.result is Result.REJECTED]
    assert [n.reason for n in decision.notices] == [o.reason for o in rejected]
    assert all(n.vpd == "RGT" and n.type is NoticeType.REJECTED for n in decision.notices)
    assert [n.placement_id for n in decision.notices] == [
        None,
        None,
        None,
        "P-2",
        "P-1",
        "P-1",
        "P-1",
        "P-1",
    ]
    assert [n.trainee for n in decision.notices][:4] == [
        "Smith, Alex",
        "Smith, Alex",
        "Patel, Alex",
        "Jones, Alex",
    ]
    assert [(t.trac_applicant_id, t.placement_id) for t in decision.transfers] == [("A8", "P-1")]


def test_no_personal_data_in_outcome_texts_or_notices() -> None:
    """No outcome text or notice field shows a NINO, GMC, date of birth or certificate number."""
    apps, view = mixed_file()
    decision = decide(apps, view, AS_OF)
    secrets = {
        NINO,
        "QQ 12 34 56 C",
        GMC,
        "7654321",
        CERT,
        CERT_11,
        CERT_13,
        DOB.isoformat(),
        DOB.strftime("%d/%m/%Y"),
        DOB.strftime("%d-%m-%Y"),
        "1995",
    }
    shown = [o.text for o in decision.outcomes] + [
        str(getattr(n, f.name)) for n in decision.notices for f in fields(n)
    ]
    assert not [(s, text) for s in secrets for text in shown if s.casefold() in text.casefold()]
    names = {"Smith", "Alex", "Patel", "Jones", "Marsh", "Osei"}
    texts = [o.text for o in decision.outcomes] + [n.text for n in decision.notices]
    assert not [(n, text) for n in names for text in texts if n.casefold() in text.casefold()]
