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


Texts = dict[str, str | None]
_NONE: frozenset[str] = frozenset()


def _texts(element: Any, parts: frozenset[str] = _NONE) -> tuple[Texts, dict[str, list[Any]]]:
    """The children of ``element`` in one pass: the stripped text of each simple child by its
    local name (the first of each name: spec documents repeat no simple child), and the
    elements of each child named in ``parts``, in order. Comments and processing instructions
    are skipped.

    A national file has a million of these children: one pass, each child's name and text read
    once (lxml makes a new string for each read), a third faster than a dict of elements read
    field by field."""
    texts: Texts = {}
    elements: dict[str, list[Any]] = {}
    for child in element:
        tag = child.tag
        if tag.__class__ is str:
            name = _local_name(tag)
            if name in parts:
                found = elements.get(name)
                if found is None:
                    elements[name] = [child]
                else:
                    found.append(child)
            elif name not in texts:
                text = child.text
                texts[name] = None if text is None else text.strip()
    return texts, elements


def _first(elements: dict[str, list[Any]], name: str) -> Any:
    """The first of the ``name`` parts :func:`_texts` found, or None."""
    found = elements.get(name)
    return found[0] if found else None


def _req(texts: Texts, name: str) -> str:
    value = texts.get(name)
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


def _shared(texts: Texts, name: str) -> str:
    """A required value of few distinct values (a code, a grade), one string object each."""
    return shared(_req(texts, name))


def _date(texts: Texts, name: str) -> date | None:
    value = texts.get(name)
    return None if value is None else _day(value)


def _req_date(texts: Texts, name: str) -> date:
    return _day(_req(texts, name))


_ADDRESS = frozenset({"Address"})


def _address(element: Any) -> Address | None:
    if element is None:
        return None
    t, _ = _texts(element)
    return Address(
        line1=_req(t, "Line1"),
        line2=t.get("Line2"),
        line3=t.get("Line3"),
        town=t.get("Town"),
        county=t.get("County"),
        postcode=t.get("Postcode"),
        country=t.get("Country"),
    )


_PAYSCALES = frozenset({"Payscale"})


def position(element: Any) -> Position:
    """A ``Position`` element of an ESR position extract."""
    t, parts = _texts(element, _PAYSCALES)
    payscales = [str(p.text).strip() for p in parts.get("Payscale", ())]
    return Position(
        esr_position_id=int(element.get("esrPositionId")),
        position_number=_req(t, "PositionNumber"),
        position_name=_req(t, "PositionName"),
        effective_from=_req_date(t, "EffectiveFromDate"),
        effective_to=_date(t, "EffectiveToDate"),
        budgeted_fte=t.get("BudgetedFte"),
        subjective_code=t.get("SubjectiveCode"),
        job_staff_group=t.get("JobStaffGroup"),
        job_role=t.get("JobRole"),
        occupation_code=t.get("OccupationCode"),
        payscales=tuple(payscales),
        grade_step=t.get("GradeStep"),
        esr_organisation_id=t.get("EsrOrganisationId"),
        hiring_status=_req(t, "HiringStatus"),
        position_type=_req(t, "PositionType"),
        dpn=t.get("DeaneryPostNumber"),
        managing_deanery_body=t.get("ManagingDeaneryBody"),
        host_lead_flag=t.get("HostLeadFlag"),
        workplace_org_code=t.get("WorkplaceOrgCode"),
        esr_last_update=_req_date(t, "EsrLastUpdateDate"),
    )


_PERSON_PARTS = frozenset({"Assignment", "Absence", "Address"})


def person(element: Any) -> Person:
    """A ``Person`` element of an ESR person extract."""
    t, parts = _texts(element, _PERSON_PARTS)
    assignments = []
    for child in parts.get("Assignment", ()):
        a, _ = _texts(child)
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
    absences = []
    for child in parts.get("Absence", ()):
        a, _ = _texts(child)
        absences.append(Absence(_req(a, "Type"), _req_date(a, "StartDate"), _date(a, "EndDate")))
    return Person(
        esr_person_id=element.get("esrPersonId"),
        title=t.get("Title"),
        forenames=_req(t, "Forenames"),
        surname=_req(t, "Surname"),
        previous_surname=t.get("PreviousSurname"),
        known_as=t.get("KnownAs"),
        date_of_birth=_req_date(t, "DateOfBirth"),
        gender=_req(t, "Gender"),
        nino=t.get("NationalInsuranceNumber"),
        ethnic_origin=t.get("EthnicOrigin"),
        email=t.get("Email"),
        home_phone=t.get("HomePhone"),
        mobile_phone=t.get("MobilePhone"),
        address=_address(_first(parts, "Address")),
        gmc_number=t.get("GmcNumber"),
        assignments=tuple(assignments),
        absences=tuple(absences),
    )


_TRAINEE = frozenset({"Trainee"})


def placement(element: Any) -> Placement:
    """A ``Placement`` element of a TIS placement file."""
    p, kids = _texts(element, _TRAINEE)
    trainee_el = kids["Trainee"][0]
    t, parts = _texts(trainee_el, _ADDRESS)
    trainee = Trainee(
        tis_person_id=trainee_el.get("tisPersonId"),
        forenames=_req(t, "Forenames"),
        surname=_req(t, "Surname"),
        date_of_birth=_req_date(t, "DateOfBirth"),
        gender=_shared(t, "Gender"),
        nino=t.get("NationalInsuranceNumber"),
        gmc_number=_req(t, "GmcNumber"),
        email=t.get("Email"),
        mobile_phone=t.get("MobilePhone"),
        address=_address(_first(parts, "Address")),
    )
    return Placement(
        placement_id=element.get("placementId"),
        action=shared(element.get("action")),
        dpn=_req(p, "DeaneryPostNumber"),
        managing_deanery_body=p.get("ManagingDeaneryBody"),
        placement_type=_shared(p, "PlacementType"),
        grade=_shared(p, "Grade"),
        specialty=_shared(p, "Specialty"),
        start=_req_date(p, "ProjectedStartDate"),
        end=_req_date(p, "ProjectedEndDate"),
        wte=_shared(p, "WholeTimeEquivalent"),
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


_APPLICANT = frozenset({"Match", "Checks"})


def check_applicant(element: Any) -> CheckApplicant:
    """An ``Applicant`` element of a Trac check file; ``Identity`` is noted, never kept."""
    t, kids = _texts(element, _APPLICANT)
    m, _ = _texts(kids["Match"][0])
    match = CheckMatch(
        tis_placement_id=m.get("TisPlacementId"),
        forenames=_req(m, "Forenames"),
        surname=_req(m, "Surname"),
        date_of_birth=_req_date(m, "DateOfBirth"),
        nino=m.get("NationalInsuranceNumber"),
        gmc_number=m.get("GmcNumber"),
    )
    checks = []
    has_identity = False
    checks_el = _first(kids, "Checks")
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
        status=_shared(t, "Status"),
        match=match,
        checks=tuple(checks),
        has_identity=has_identity,
    )


def confirmation(element: Any) -> Confirmation:
    """A ``Confirmation`` element of an ESR load confirmation."""
    t, _ = _texts(element)
    return Confirmation(
        placement_id=element.get("placementId"),
        action=element.get("action"),
        status=element.get("status"),
        applicant_number=t.get("ApplicantNumber"),
        assignment_id=t.get("AssignmentId"),
        message_type=t.get("MessageType"),
        message_text=t.get("MessageText") or None,
    )
