"""The store's codec: records round-trip, and rows written by earlier versions still decode."""

from __future__ import annotations

import dataclasses
from datetime import date

from gateway.models import (
    Absence,
    Address,
    Assignment,
    Person,
    Placement,
    SentApplicant,
    Trainee,
)
from gateway.store import codec

TRAINEE = Trainee("TP1", "Zoë", "O'Neil", date(1990, 1, 2), "F", "1234567",
                  address=Address("1 St", postcode="AB"))
PLACEMENT = Placement("P1", "upsert", "D/1", "In Post", "F1", "GM", date(2026, 12, 2),
                      date(2027, 8, 1), "1.0", TRAINEE)

# As the json-module codec of 0.1-0.4 wrote it: ASCII-escaped, and (before 0.3) without
# last_action, esr_state, load_file and load_record.
EARLIER = (
    '{"employer_role":"Lead","existing_esr_person_id":null,"placement":{"action":"upsert",'
    '"dpn":"D/1","end":"2027-08-01","grade":"F1","line":null,"managing_deanery_body":null,'
    '"placement_id":"P1","placement_type":"In Post","specialty":"GM","start":"2026-12-02",'
    '"trainee":{"address":{"country":null,"county":null,"line1":"1 St","line2":null,'
    '"line3":null,"postcode":"AB","town":null},"date_of_birth":"1990-01-02","email":null,'
    '"forenames":"Zo\\u00eb","gender":"F","gmc_number":"1234567","mobile_phone":null,'
    '"nino":null,"surname":"O\'Neil","tis_person_id":"TP1"},"wte":"1.0"},"placement_id":"P1",'
    '"position_number":"1001","tis_person_id":"TP1","vpd":"RGT","withdrawn":true}'
)


def test_a_row_written_by_an_earlier_version_decodes() -> None:
    row = codec.loads(SentApplicant, EARLIER)
    assert row == SentApplicant("P1", "RGT", "TP1", "1001", "Lead", PLACEMENT, withdrawn=True)
    assert row.esr_state == "sent"
    assert row.placement.trainee.forenames == "Zoë"


def test_records_round_trip_with_sorted_keys() -> None:
    person = Person(
        "E1", "Zoë", "Smith", date(1991, 3, 4), "F",
        (Assignment("A1", "1001", "Active", False, date(2025, 8, 1), None, date(2026, 8, 1)),),
        address=Address("2 St", town="Leeds"),
        absences=(Absence("Maternity", date(2026, 1, 1)),),
    )
    sent = SentApplicant("P1", "RGT", "TP1", "1001", "Lead", PLACEMENT, last_action="create",
                         esr_state="failed", load_file="applicants-x.xml", load_record=2)
    for record in (person, sent, PLACEMENT):
        text = codec.dumps(record)
        assert codec.loads(type(record), text) == record
        assert text.startswith('{"')
        assert ", " not in text
    assert codec.dumps(PLACEMENT).index('"action"') < codec.dumps(PLACEMENT).index('"wte"')


def test_a_register_row_keeps_its_content_and_takes_what_esr_made_of_it_from_its_columns(
) -> None:
    """The store's register read builds the row anew from the decoded one: every field but the
    four kept in columns comes from the JSON. Each field here differs from its default, so a
    field added to SentApplicant and forgotten there fails this."""
    from gateway.store.base import _registered  # noqa: PLC0415

    stored = SentApplicant("P1", "RGT", "TP1", "1001", "Lead", PLACEMENT,
                           existing_esr_person_id="E7", withdrawn=True, last_action="update",
                           esr_state="loaded", load_file="old.xml", load_record=9)
    for f in dataclasses.fields(SentApplicant):
        assert getattr(stored, f.name) != f.default, f.name
    row = _registered(codec.dumps(stored), "create", "failed", "applicants-x.xml", 2)
    assert row == dataclasses.replace(stored, last_action="create", esr_state="failed",
                                      load_file="applicants-x.xml", load_record=2)
