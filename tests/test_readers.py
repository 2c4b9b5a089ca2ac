"""The readers: inbound elements → records, field by field, whatever lies between the fields."""

from __future__ import annotations

from datetime import date

import pytest
from lxml import etree

from gateway.models import Address, Assignment
from gateway.xml import readers

NS = "urn:dit-gateway:test"


def _element(xml: str) -> etree._Element:
    """``xml`` with the test namespace on its root, as the readers get a record."""
    return etree.fromstring(xml.replace(">", f' xmlns="{NS}">', 1))


def test_a_position_is_read_field_by_field_past_comments_and_instructions() -> None:
    position = readers.position(_element(
        '<Position esrPositionId="7"><PositionNumber> 1001 </PositionNumber><!-- a note -->'
        "<PositionName>FY1 Medicine</PositionName><?audit x?>"
        "<EffectiveFromDate>2020-01-01</EffectiveFromDate><Payscale> MF01 </Payscale>"
        "<Payscale>MF02</Payscale><HiringStatus>Active</HiringStatus>"
        "<PositionType>Shared</PositionType><DeaneryPostNumber>EOE/V001/1/F1/001"
        "</DeaneryPostNumber><HostLeadFlag>H</HostLeadFlag>"
        "<EsrLastUpdateDate>2026-01-02</EsrLastUpdateDate></Position>"
    ))
    assert position.esr_position_id == 7
    assert position.position_number == "1001"
    assert position.position_name == "FY1 Medicine"
    assert position.effective_from == date(2020, 1, 1)
    assert position.effective_to is None
    assert position.payscales == ("MF01", "MF02")
    assert (position.hiring_status, position.position_type) == ("Active", "Shared")
    assert position.dpn == "EOE/V001/1/F1/001"
    assert position.host_lead_flag == "H"
    assert position.budgeted_fte is None
    assert position.esr_last_update == date(2026, 1, 2)


def test_a_missing_required_field_is_named() -> None:
    with pytest.raises(ValueError, match="PositionName is missing"):
        readers.position(_element(
            '<Position esrPositionId="7"><PositionNumber>1</PositionNumber>'
            "<EffectiveFromDate>2020-01-01</EffectiveFromDate><HiringStatus>A</HiringStatus>"
            "<PositionType>S</PositionType><EsrLastUpdateDate>2026-01-02</EsrLastUpdateDate>"
            "</Position>"
        ))


def test_a_placement_reads_its_trainee_and_address_and_the_first_of_a_repeated_field() -> None:
    placement = readers.placement(_element(
        '<Placement placementId="P1" action="upsert"><DeaneryPostNumber>D/1</DeaneryPostNumber>'
        "<DeaneryPostNumber>D/2</DeaneryPostNumber><!-- c --><PlacementType>In Post"
        "</PlacementType><Grade>F1</Grade><Specialty>Medicine</Specialty>"
        "<ProjectedStartDate>2026-11-12</ProjectedStartDate>"
        "<ProjectedEndDate>2027-05-13</ProjectedEndDate>"
        "<WholeTimeEquivalent>0.6</WholeTimeEquivalent>"
        '<Trainee tisPersonId="T9"><Forenames> Ann </Forenames><!-- c --><Surname>Lee</Surname>'
        "<DateOfBirth>1990-02-03</DateOfBirth><Gender>F</Gender><GmcNumber>7000001</GmcNumber>"
        "<Address><Line1>1 High St</Line1><Postcode>AB1 2CD</Postcode></Address>"
        "</Trainee></Placement>"
    ))
    assert (placement.placement_id, placement.action) == ("P1", "upsert")
    assert placement.dpn == "D/1"
    assert placement.managing_deanery_body is None
    assert (placement.placement_type, placement.grade, placement.wte) == ("In Post", "F1", "0.6")
    assert (placement.start, placement.end) == (date(2026, 11, 12), date(2027, 5, 13))
    trainee = placement.trainee
    assert (trainee.tis_person_id, trainee.forenames, trainee.surname) == ("T9", "Ann", "Lee")
    assert trainee.date_of_birth == date(1990, 2, 3)
    assert trainee.nino is None
    assert trainee.address == Address(line1="1 High St", postcode="AB1 2CD")
    assert placement.line == 1


def test_a_person_reads_its_assignments_absences_and_address() -> None:
    person = readers.person(_element(
        '<Person esrPersonId="E1"><Forenames>Bo</Forenames><Surname>Ray</Surname>'
        "<DateOfBirth>1985-06-07</DateOfBirth><Gender>M</Gender>"
        "<Address><Line1>2 Low Rd</Line1></Address><GmcNumber> 7000002 </GmcNumber>"
        '<Assignment assignmentNumber="A1" positionNumber="1001"><Status>Active</Status>'
        "<Honorary>true</Honorary><StartDate>2026-08-01</StartDate></Assignment><!-- c -->"
        '<Assignment assignmentNumber="A2" positionNumber="1002"><Status>Active</Status>'
        "<Honorary>false</Honorary><StartDate>2026-08-02</StartDate>"
        "<EndDate>2026-09-01</EndDate></Assignment>"
        "<Absence><Type>Maternity</Type><StartDate>2026-10-01</StartDate></Absence></Person>"
    ))
    assert (person.esr_person_id, person.forenames, person.surname) == ("E1", "Bo", "Ray")
    assert person.gmc_number == "7000002"
    assert person.title is None
    assert person.address == Address(line1="2 Low Rd")
    assert person.assignments == (
        Assignment("A1", "1001", "Active", True, date(2026, 8, 1), None, None),
        Assignment("A2", "1002", "Active", False, date(2026, 8, 2), None, date(2026, 9, 1)),
    )
    assert [(a.type, a.start_date, a.end_date) for a in person.absences] == [
        ("Maternity", date(2026, 10, 1), None)
    ]


def test_a_check_applicant_keeps_its_checks_and_notes_identity() -> None:
    applicant = readers.check_applicant(_element(
        '<Applicant tracApplicantId="A1" vpd="V001"><Status> Cleared </Status>'
        "<Match><TisPlacementId>P1</TisPlacementId><Forenames>Cy</Forenames>"
        "<Surname>Dee</Surname><DateOfBirth>1991-01-01</DateOfBirth></Match>"
        "<Checks><Identity><Seen>true</Seen></Identity><!-- c -->"
        "<DbsCheck><Outcome>Clear</Outcome><Date>2026-10-10</Date>"
        "</DbsCheck></Checks></Applicant>"
    ))
    assert (applicant.trac_applicant_id, applicant.vpd, applicant.status) == (
        "A1", "V001", "Cleared")
    assert applicant.match.tis_placement_id == "P1"
    assert applicant.match.nino is None
    assert applicant.has_identity
    assert [c.kind for c in applicant.checks] == ["DbsCheck"]
    assert applicant.checks[0].fields == (("Outcome", "Clear"), ("Date", "2026-10-10"))
    assert applicant.checks[0].dates == (date(2026, 10, 10),)


def test_a_confirmation_with_an_empty_message_has_none() -> None:
    confirmation = readers.confirmation(_element(
        '<Confirmation placementId="P1" action="upsert" status="failed">'
        "<MessageType>E</MessageType><MessageText>  </MessageText></Confirmation>"
    ))
    assert (confirmation.placement_id, confirmation.status) == ("P1", "failed")
    assert confirmation.message_type == "E"
    assert confirmation.message_text is None
    assert confirmation.applicant_number is None
