"""Inbound elements → model records (spec section 4). Pure: elements in, values out."""

from __future__ import annotations

import contextlib
import functools
from datetime import date
from typing import Any

from lxml import etree

from gateway.models import (
    ELIGIBLE_CHECKS,
    Absence,
    Address,
    Assignment,
    CheckApplicant,
    CheckMatch,
    CheckRecord,
    Confirmation,
    Person,
    Placement,
    Position,
    Trainee,
    shared,
)

CHECK_KINDS = ELIGIBLE_CHECKS


def _local(element: Any) -> str:
    return _local_name(element.tag)


@functools.lru_cache(maxsize=4096)
def _local_name(tag: str) -> str:
    """``{namespace}Name`` → ``Name``: one string per element name, not one per element (a
    check file's records keep their element names, hundreds of thousands of them)."""
    return tag.rpartition("}")[2]


def _children(element: Any) -> dict[str, Any]:
    """First child of each name (spec documents have no repeated simple children)."""
    found: dict[str, Any] = {}
    for child in element:
        if isinstance(child.tag, str):
            found.setdefault(_local(child), child)
    return found


def _text(kids: dict[str, Any], name: str) -> str | None:
    child = kids.get(name)
    if child is None or child.text is None:
        return None
    return str(child.text).strip()


def _req(kids: dict[str, Any], name: str) -> str:
    value = _text(kids, name)
    if value is None:
        raise ValueError(f"{name} is missing")
    return value


# A large file repeats a few hundred days and a few dozen grades, specialties and types; one
# object each instead of one per record keeps a national file's records a third smaller.
_day = functools.lru_cache(maxsize=8192)(date.fromisoformat)


@functools.lru_cache(maxsize=8192)
def _field(name: str, text: str) -> tuple[str, str]:
    """A check record's (element name, value), one tuple per pair seen lately: a day, a level
    or an outcome under the same name recurs across a file (sharing them took 60,000 parsed
    applicants from 70 to 62 MiB). Bounded, so a daemon keeps no partner's values for good."""
    return name, text


def _shared(kids: dict[str, Any], name: str) -> str:
    """A required value of few distinct values (a code, a grade), one string object each."""
    return shared(_req(kids, name))


def _date(kids: dict[str, Any], name: str) -> date | None:
    value = _text(kids, name)
    return None if value is None else _day(value)


def _req_date(kids: dict[str, Any], name: str) -> date:
    return _day(_req(kids, name))


def _address(element: Any) -> Address | None:
    if element is None:
        return None
    kids = _children(element)
    return Address(
        line1=_req(kids, "Line1"),
        line2=_text(kids, "Line2"),
        line3=_text(kids, "Line3"),
        town=_text(kids, "Town"),
        county=_text(kids, "County"),
        postcode=_text(kids, "Postcode"),
        country=_text(kids, "Country"),
    )


def position(element: Any) -> Position:
    """A ``Position`` element of an ESR position extract."""
    kids = _children(element)
    payscales = tuple(
        str(c.text).strip() for c in element if isinstance(c.tag, str) and _local(c) == "Payscale"
    )
    return Position(
        esr_position_id=int(element.get("esrPositionId")),
        position_number=_req(kids, "PositionNumber"),
        position_name=_req(kids, "PositionName"),
        effective_from=_req_date(kids, "EffectiveFromDate"),
        effective_to=_date(kids, "EffectiveToDate"),
        budgeted_fte=_text(kids, "BudgetedFte"),
        subjective_code=_text(kids, "SubjectiveCode"),
        job_staff_group=_text(kids, "JobStaffGroup"),
        job_role=_text(kids, "JobRole"),
        occupation_code=_text(kids, "OccupationCode"),
        payscales=payscales,
        grade_step=_text(kids, "GradeStep"),
        esr_organisation_id=_text(kids, "EsrOrganisationId"),
        hiring_status=_req(kids, "HiringStatus"),
        position_type=_req(kids, "PositionType"),
        dpn=_text(kids, "DeaneryPostNumber"),
        managing_deanery_body=_text(kids, "ManagingDeaneryBody"),
        host_lead_flag=_text(kids, "HostLeadFlag"),
        workplace_org_code=_text(kids, "WorkplaceOrgCode"),
        esr_last_update=_req_date(kids, "EsrLastUpdateDate"),
    )


def person(element: Any) -> Person:
    """A ``Person`` element of an ESR person extract."""
    kids = _children(element)
    assignments = []
    absences = []
    for child in element:
        if not isinstance(child.tag, str):
            continue
        name = _local(child)
        if name == "Assignment":
            a = _children(child)
            assignments.append(
                Assignment(
                    assignment_number=child.get("assignmentNumber"),
                    position_number=child.get("positionNumber"),
                    status=_req(a, "Status"),
                    honorary=_req(a, "Honorary") in ("true", "1"),
                    start_date=_req_date(a, "StartDate"),
                    projected_end_date=_date(a, "ProjectedEndDate"),
                    end_date=_date(a, "EndDate"),
                )
            )
        elif name == "Absence":
            a = _children(child)
            absences.append(
                Absence(_req(a, "Type"), _req_date(a, "StartDate"), _date(a, "EndDate"))
            )
    return Person(
        esr_person_id=element.get("esrPersonId"),
        title=_text(kids, "Title"),
        forenames=_req(kids, "Forenames"),
        surname=_req(kids, "Surname"),
        previous_surname=_text(kids, "PreviousSurname"),
        known_as=_text(kids, "KnownAs"),
        date_of_birth=_req_date(kids, "DateOfBirth"),
        gender=_req(kids, "Gender"),
        nino=_text(kids, "NationalInsuranceNumber"),
        ethnic_origin=_text(kids, "EthnicOrigin"),
        email=_text(kids, "Email"),
        home_phone=_text(kids, "HomePhone"),
        mobile_phone=_text(kids, "MobilePhone"),
        address=_address(kids.get("Address")),
        gmc_number=_text(kids, "GmcNumber"),
        assignments=tuple(assignments),
        absences=tuple(absences),
    )


def placement(element: Any) -> Placement:
    """A ``Placement`` element of a TIS placement file."""
    kids = _children(element)
    trainee_el = kids["Trainee"]
    t = _children(trainee_el)
    trainee = Trainee(
        tis_person_id=trainee_el.get("tisPersonId"),
        forenames=_req(t, "Forenames"),
        surname=_req(t, "Surname"),
        date_of_birth=_req_date(t, "DateOfBirth"),
        gender=_shared(t, "Gender"),
        nino=_text(t, "NationalInsuranceNumber"),
        gmc_number=_req(t, "GmcNumber"),
        email=_text(t, "Email"),
        mobile_phone=_text(t, "MobilePhone"),
        address=_address(t.get("Address")),
    )
    return Placement(
        placement_id=element.get("placementId"),
        action=shared(element.get("action")),
        dpn=_req(kids, "DeaneryPostNumber"),
        managing_deanery_body=_text(kids, "ManagingDeaneryBody"),
        placement_type=_shared(kids, "PlacementType"),
        grade=_shared(kids, "Grade"),
        specialty=_shared(kids, "Specialty"),
        start=_req_date(kids, "ProjectedStartDate"),
        end=_req_date(kids, "ProjectedEndDate"),
        wte=_shared(kids, "WholeTimeEquivalent"),
        trainee=trainee,
        line=element.sourceline,
    )


def _check_record(element: Any) -> CheckRecord:
    dates: list[date] = []
    fields: list[tuple[str, str]] = []
    for child in element.iter():
        if not isinstance(child.tag, str) or child is element:
            continue
        text = (child.text or "").strip()
        if not text or len(child):
            continue
        text = shared(text)  # days, levels, outcomes: few distinct values in a whole file
        if len(text) == 10 and text[4] == "-" and text[7] == "-":
            with contextlib.suppress(ValueError):
                dates.append(_day(text))
        fields.append(_field(_local(child), text))
    return CheckRecord(
        kind=_local(element),
        xml=etree.tostring(element, method="c14n"),
        dates=tuple(dates),
        fields=tuple(fields),
    )


def check_applicant(element: Any) -> CheckApplicant:
    """An ``Applicant`` element of a Trac check file; ``Identity`` is noted, never kept."""
    kids = _children(element)
    m = _children(kids["Match"])
    match = CheckMatch(
        tis_placement_id=_text(m, "TisPlacementId"),
        forenames=_req(m, "Forenames"),
        surname=_req(m, "Surname"),
        date_of_birth=_req_date(m, "DateOfBirth"),
        nino=_text(m, "NationalInsuranceNumber"),
        gmc_number=_text(m, "GmcNumber"),
    )
    checks = []
    has_identity = False
    checks_el = kids.get("Checks")
    for child in checks_el if checks_el is not None else ():
        if not isinstance(child.tag, str):
            continue
        kind = _local(child)
        if kind == "Identity":
            has_identity = True
        elif kind in CHECK_KINDS:
            checks.append(_check_record(child))
    return CheckApplicant(
        trac_applicant_id=element.get("tracApplicantId"),
        vpd=element.get("vpd"),
        status=_shared(kids, "Status"),
        match=match,
        checks=tuple(checks),
        has_identity=has_identity,
    )


def confirmation(element: Any) -> Confirmation:
    """A ``Confirmation`` element of an ESR load confirmation."""
    kids = _children(element)
    return Confirmation(
        placement_id=element.get("placementId"),
        action=element.get("action"),
        status=element.get("status"),
        applicant_number=_text(kids, "ApplicantNumber"),
        assignment_id=_text(kids, "AssignmentId"),
        message_type=_text(kids, "MessageType"),
        message_text=_text(kids, "MessageText") or None,
    )
