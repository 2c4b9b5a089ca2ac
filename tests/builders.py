"""Builders of inbound documents for tests: small dicts in, valid XML text out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any
from xml.sax.saxutils import escape, quoteattr

POSITIONS_NS = "urn:dit-gateway:esr:positions:1"
PERSONS_NS = "urn:dit-gateway:esr:persons:1"
PLACEMENTS_NS = "urn:dit-gateway:tis:placements:1"
CHECKS_NS = "urn:dit-gateway:trac:checks:1"


def _el(name: str, value: Any) -> str:
    if value is None:
        return ""
    return f"<{name}>{escape(str(value))}</{name}>"


def _els(pairs: Iterable[tuple[str, Any]]) -> str:
    return "".join(_el(k, v) for k, v in pairs)


def _address(address: Mapping[str, str] | None) -> str:
    if not address:
        return ""
    keys = ("Line1", "Line2", "Line3", "Town", "County", "Postcode", "Country")
    return "<Address>" + _els((k, address.get(k)) for k in keys) + "</Address>"


def position(
    esr_position_id: int,
    number: str | None = None,
    *,
    dpn: str | None = "EOE/RGT00/001/FY1/001",
    status: str = "Active",
    ptype: str = "Single",
    name: str = "FY1 General Medicine",
    effective_from: str = "2020-01-01",
    effective_to: str | None = None,
    occupation: str | None = None,
    mdb: str | None = None,
    host_lead: str | None = None,
    payscales: Iterable[str] = ("MF01",),
) -> str:
    """A ``Position`` element."""
    number = number or str(esr_position_id)
    body = _els(
        [
            ("PositionNumber", number),
            ("PositionName", name),
            ("EffectiveFromDate", effective_from),
            ("EffectiveToDate", effective_to),
            ("OccupationCode", occupation),
        ]
    )
    body += "".join(_el("Payscale", p) for p in payscales)
    body += _els(
        [
            ("HiringStatus", status),
            ("PositionType", ptype),
            ("DeaneryPostNumber", dpn),
            ("ManagingDeaneryBody", mdb),
            ("HostLeadFlag", host_lead),
            ("EsrLastUpdateDate", "2026-01-01"),
        ]
    )
    return f'<Position esrPositionId="{esr_position_id}">{body}</Position>'


def positions(
    vpd: str, positions: Iterable[str], *, kind: str = "full", extract_date: str = "2026-11-02"
) -> str:
    """An ESR position extract."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<PositionExtract xmlns="{POSITIONS_NS}" '
        f'vpd="{vpd}" extractDate="{extract_date}" type="{kind}">\n'
        + "\n".join(positions)
        + "\n</PositionExtract>\n"
    )


def trainee(
    tis_person_id: str = "T1",
    *,
    forenames: str = "Alex",
    surname: str = "Smith",
    dob: str = "1995-03-04",
    gender: str = "F",
    nino: str | None = "QQ123456C",
    gmc: str = "7123456",
    email: str | None = "alex.smith@example.org",
    mobile: str | None = None,
    address: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Trainee details for :func:`placement`."""
    return {
        "id": tis_person_id, "Forenames": forenames, "Surname": surname, "DateOfBirth": dob,
        "Gender": gender, "NationalInsuranceNumber": nino, "GmcNumber": gmc, "Email": email,
        "MobilePhone": mobile, "Address": address,
    }


def placement(
    placement_id: str,
    *,
    dpn: str = "EOE/RGT00/001/FY1/001",
    start: str = "2027-02-01",
    end: str = "2027-08-01",
    action: str = "upsert",
    grade: str = "F1",
    specialty: str = "General Medicine",
    ptype: str = "In Post",
    wte: str = "1.0",
    mdb: str | None = None,
    person: Mapping[str, Any] | None = None,
) -> str:
    """A ``Placement`` element."""
    t = dict(person or trainee())
    trainee_xml = (
        f'<Trainee tisPersonId={quoteattr(str(t["id"]))}>'
        + _els((k, t[k]) for k in ("Forenames", "Surname", "DateOfBirth", "Gender",
                                   "NationalInsuranceNumber", "GmcNumber", "Email",
                                   "MobilePhone"))
        + _address(t.get("Address"))
        + "</Trainee>"
    )
    body = _els(
        [
            ("DeaneryPostNumber", dpn),
            ("ManagingDeaneryBody", mdb),
            ("PlacementType", ptype),
            ("Grade", grade),
            ("Specialty", specialty),
            ("ProjectedStartDate", start),
            ("ProjectedEndDate", end),
            ("WholeTimeEquivalent", wte),
        ]
    )
    return (
        f"<Placement placementId={quoteattr(placement_id)} action={quoteattr(action)}>"
        f"{body}{trainee_xml}</Placement>"
    )


def placements(placements: Iterable[str], *, local_office: str = "EOE") -> str:
    """A TIS placement file."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<PlacementFile xmlns="{PLACEMENTS_NS}" '
        f'localOffice="{local_office}" createdAt="2026-11-02T09:00:00Z">\n'
        + "\n".join(placements)
        + "\n</PlacementFile>\n"
    )


ROTATION_DPN = "EOE/RGT00/001/FY1/001"


def rotation_post() -> str:
    """An ESR position extract of one Shared post in RGT, carrying :data:`ROTATION_DPN`."""
    return positions("RGT", [position(1, "1001", dpn=ROTATION_DPN, ptype="Shared")])


def rotation(count: int, start: date) -> str:
    """A TIS file of ``count`` placements ``P0000``… on :func:`rotation_post`, one trainee each,
    from ``start`` for 180 days (a file of several windows, every placement sent)."""
    end = (start + timedelta(days=180)).isoformat()
    return placements(
        placement(f"P{i:04d}", dpn=ROTATION_DPN, start=start.isoformat(), end=end,
                  person=trainee(f"T{i:04d}"))
        for i in range(count)
    )


def assignment(
    number: str,
    position_number: str,
    *,
    status: str = "Active",
    honorary: bool = False,
    start: str = "2026-08-01",
    projected_end: str | None = None,
    end: str | None = None,
) -> str:
    """An ``Assignment`` element."""
    body = _els(
        [
            ("Status", status),
            ("Honorary", "true" if honorary else "false"),
            ("StartDate", start),
            ("ProjectedEndDate", projected_end),
            ("EndDate", end),
        ]
    )
    return (
        f"<Assignment assignmentNumber={quoteattr(number)} "
        f"positionNumber={quoteattr(position_number)}>{body}</Assignment>"
    )


def person(
    esr_person_id: str,
    assignments: Iterable[str],
    *,
    forenames: str = "Alex",
    surname: str = "Smith",
    dob: str = "1995-03-04",
    gender: str = "F",
    nino: str | None = "QQ123456C",
    gmc: str | None = "7123456",
    email: str | None = None,
    title: str | None = None,
    address: Mapping[str, str] | None = None,
    absences: Iterable[tuple[str, str, str | None]] = (),
) -> str:
    """A ``Person`` element."""
    body = _els(
        [
            ("Title", title),
            ("Forenames", forenames),
            ("Surname", surname),
            ("DateOfBirth", dob),
            ("Gender", gender),
            ("NationalInsuranceNumber", nino),
            ("Email", email),
        ]
    )
    body += _address(address) + _el("GmcNumber", gmc) + "".join(assignments)
    for kind, start, end in absences:
        body += "<Absence>" + _els([("Type", kind), ("StartDate", start), ("EndDate", end)])
        body += "</Absence>"
    return f"<Person esrPersonId={quoteattr(esr_person_id)}>{body}</Person>"


def persons(vpd: str, persons: Iterable[str], *, extract_date: str = "2026-11-02") -> str:
    """An ESR person extract."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<PersonExtract xmlns="{PERSONS_NS}" '
        f'vpd="{vpd}" extractDate="{extract_date}">\n'
        + "\n".join(persons)
        + "\n</PersonExtract>\n"
    )


def dbs(number: str = "001234567890", issued: str = "2027-04-01") -> str:
    """A DbsCheck element."""
    return (
        f"<DbsCheck>{_el('CertificateNumber', number)}{_el('DisclosureLevel', 'Enhanced')}"
        f"{_el('IssueDate', issued)}{_el('Outcome', 'Clear')}</DbsCheck>"
    )


def reference(received: str = "2027-04-02") -> str:
    """A Reference element."""
    return (
        f"<Reference>{_el('RefereeName', 'Dr Referee')}{_el('ReceivedDate', received)}"
        f"{_el('Outcome', 'Satisfactory')}</Reference>"
    )


def identity(number: str) -> str:
    """An Identity element (never transferred)."""
    return (
        f"<Identity>{_el('DocumentType', 'Passport')}{_el('DocumentNumber', number)}"
        f"{_el('CheckedDate', '2027-04-01')}</Identity>"
    )


def applicant(
    trac_id: str,
    vpd: str = "RGT",
    *,
    status: str = "Outcome Recruited",
    placement_id: str | None = None,
    forenames: str = "Alex",
    surname: str = "Smith",
    dob: str = "1995-03-04",
    nino: str | None = None,
    gmc: str | None = None,
    checks: Iterable[str] = (),
) -> str:
    """A Trac ``Applicant`` element."""
    match = _els(
        [
            ("TisPlacementId", placement_id),
            ("Forenames", forenames),
            ("Surname", surname),
            ("DateOfBirth", dob),
            ("NationalInsuranceNumber", nino),
            ("GmcNumber", gmc),
        ]
    )
    return (
        f"<Applicant tracApplicantId={quoteattr(trac_id)} vpd={quoteattr(vpd)}>"
        f"{_el('Status', status)}<Match>{match}</Match><Checks>{''.join(checks)}</Checks>"
        "</Applicant>"
    )


def checks(applicants: Iterable[str], *, trust: str = "RGT") -> str:
    """A Trac check file."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<CheckFile xmlns="{CHECKS_NS}" '
        f'trust="{trust}" createdAt="2027-05-03T09:00:00Z">\n'
        + "\n".join(applicants)
        + "\n</CheckFile>\n"
    )


CONFIRMATION_NS = "urn:dit-gateway:esr:applicant-confirmation:1"


def confirmation(
    placement_id: str,
    status: str = "SUCCESS",
    *,
    action: str = "create",
    number: str | None = None,
    assignment_id: str | None = None,
    message_type: str | None = None,
    message: str | None = None,
) -> str:
    """A ``Confirmation`` element of an ESR load confirmation."""
    body = _els([("ApplicantNumber", number), ("AssignmentId", assignment_id),
                 ("MessageType", message_type), ("MessageText", message)])
    return (
        f"<Confirmation placementId={quoteattr(placement_id)} action={quoteattr(action)} "
        f"status={quoteattr(status)}>{body}</Confirmation>"
    )


def confirmations(
    vpd: str, load_file: str, rows: Iterable[str], *,
    processed_at: str = "2027-05-02T03:00:00Z",
) -> str:
    """An ESR load confirmation answering ``load_file``."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<LoadConfirmation xmlns="{CONFIRMATION_NS}" '
        f'vpd="{vpd}" loadFile={quoteattr(load_file)} processedAt="{processed_at}">\n'
        + "\n".join(rows)
        + "\n</LoadConfirmation>\n"
    )
