"""The writers produce their text themselves (for speed): what they escape must come back
exactly from a parser, valid against the document's XSD, and what XML cannot carry is refused."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path
from xml.sax import saxutils

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from gateway.errors import FileError
from gateway.models import (
    Address,
    ApplicantRecord,
    Notice,
    NoticeType,
    Outcome,
    Placement,
    Position,
    Result,
    Totals,
    Trainee,
)
from gateway.xml import writers
from tests.xsdcheck import assert_valid

AWKWARD = 'Ann & <Bob> "O\'Neil" ]]> – Zoë\ttab'
NS = "{urn:dit-gateway:esr:applicant-load:1}"


def _record(forenames: str = AWKWARD, line1: str = "1 <High> & Low St") -> ApplicantRecord:
    trainee = Trainee("TP1", forenames, "Smith", date(1990, 1, 2), "F", "1234567",
                      address=Address(line1, postcode="AB1 2CD"))
    placement = Placement("P&1", "upsert", "EOE/RGT00/001/FY1/001", "In Post", "F1", "GM",
                          date(2026, 12, 2), date(2027, 8, 1), "1.0", trainee)
    return ApplicantRecord("P&1", "RGT", "create", "Lead", "1001", placement.dpn, placement,
                           changed=("Surname",))


def test_applicant_load_round_trips_what_it_escapes(tmp_path: Path) -> None:
    out = tmp_path / "load.xml"
    with out.open("wb") as fh:
        writers.write_applicant_load(fh, "RGT", "2026-11-02T10:00:00Z", 'a "b"\n.xml',
                                     "0" * 64, [_record(), _record("Plain")])
    root = assert_valid(out)
    assert root.get("sourceFile") == 'a "b"\n.xml'
    first, second = root.findall(f"{NS}Applicant")
    assert first.get("placementId") == "P&1"
    assert first.findtext(f"{NS}Forenames") == AWKWARD
    assert first.findtext(f"{NS}Address/{NS}Line1") == "1 <High> & Low St"
    assert first.findtext(f"{NS}Changed/{NS}Field") == "Surname"
    assert second.findtext(f"{NS}Forenames") == "Plain"


def test_ack_and_notifications_round_trip(tmp_path: Path) -> None:
    ack = tmp_path / "ack.xml"
    header = writers.AckHeader("f&<>.xml", "a" * 64, "2026-11-02T10:00:00Z", "tis",
                               "processed", "2026-11-02T10:00:01Z")
    outcomes = [Outcome("R<1>", Result.REJECTED, "bad & \"worse\"\r\nthen", "UNKNOWN_DPN", "RGT")]
    with ack.open("wb") as fh:
        writers.write_ack(fh, header, [FileError("SCHEMA_INVALID", "x < y", 3, 4)], outcomes,
                          Totals.of(outcomes))
    root = assert_valid(ack)
    ns = "{urn:dit-gateway:ack:1}"
    assert root.get("file") == "f&<>.xml"
    assert root.findtext(f"{ns}Error") == "x < y"
    outcome = root.find(f"{ns}Outcome")
    assert outcome is not None
    assert outcome.get("recordId") == "R<1>"
    assert outcome.text == 'bad & "worse"\r\nthen'  # \r kept as a character reference

    notes = tmp_path / "n.xml"
    with notes.open("wb") as fh:
        writers.write_notifications(fh, "RGT", [Notice(NoticeType.REJECTED, "RGT", AWKWARD,
                                                       trainee="A\nB")], "2026-11-02T10:00:00Z")
    row = assert_valid(notes)[0]
    assert (row.text, row.get("trainee")) == (AWKWARD, "A\nB")


@pytest.mark.parametrize("bad", ["\x00", "\x07", "\x1b", "\ufffe"])
def test_a_character_xml_cannot_carry_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="cannot be written in XML"):
        writers.write_applicant_load(io.BytesIO(), "RGT", "now", "f.xml", "0" * 64,
                                     [_record(f"A{bad}B")])


def test_large_documents_are_written_in_chunks_and_stay_well_formed() -> None:
    fh = io.BytesIO()
    records = [_record(f"N{i}") for i in range(10_000)]
    writers.write_applicant_load(fh, "RGT", "now", "f.xml", "0" * 64, records)
    root = etree.fromstring(fh.getvalue())
    names = [a.findtext(f"{NS}Forenames") for a in root]
    assert names == [f"N{i}" for i in range(10_000)]


def test_a_position_extract_round_trips_every_field_and_leaves_out_the_absent(
    tmp_path: Path,
) -> None:
    def post(number: str, **fields: object) -> writers.ExtractPost:
        base: dict[str, object] = dict(
            esr_position_id=7, position_number=number, position_name=AWKWARD,
            effective_from=date(2020, 1, 1), effective_to=None, budgeted_fte=None,
            subjective_code=None, job_staff_group=None, job_role=None, occupation_code=None,
            payscales=(), grade_step=None, esr_organisation_id=None, hiring_status="Active",
            position_type="Shared", dpn="EOE/RGT/1/F1/001", managing_deanery_body=None,
            host_lead_flag=None, workplace_org_code=None, esr_last_update=date(2026, 1, 1))
        base.update(fields)
        return writers.ExtractPost(Position(**base), duplicate=number == "2")  # type: ignore[arg-type]

    out = tmp_path / "posts.xml"
    with out.open("wb") as fh:
        writers.write_position_extract(fh, "EOE", "RGT", "2026-11-02", "2026-11-02T10:00:00Z", [
            post("1", host_lead_flag="Host", managing_deanery_body="LDN",
                 workplace_org_code="RGT01", occupation_code="M&D <1>", payscales=("MF01", "MF02"),
                 effective_to=date(2027, 3, 31)),
            post("2"),
        ])
    ns = "{urn:dit-gateway:tis:position-extract:1}"
    first, second = assert_valid(out).findall(f"{ns}Post")
    assert [(e.tag.removeprefix(ns), e.text) for e in first] == [
        ("DeaneryPostNumber", "EOE/RGT/1/F1/001"), ("PositionNumber", "1"),
        ("PositionName", AWKWARD), ("EsrPositionId", "7"), ("HostLeadFlag", "Host"),
        ("ManagingDeaneryBody", "LDN"), ("WorkplaceOrgCode", "RGT01"),
        ("OccupationCode", "M&D <1>"), ("Payscale", "MF01"), ("Payscale", "MF02"),
        ("PositionType", "Shared"),
        ("EffectiveFromDate", "2020-01-01"), ("EffectiveToDate", "2027-03-31"),
        ("Duplicate", "false"),
    ]
    assert [e.tag.removeprefix(ns) for e in second] == [
        "DeaneryPostNumber", "PositionNumber", "PositionName", "EsrPositionId", "PositionType",
        "EffectiveFromDate", "Duplicate"]
    assert second.findtext(f"{ns}Duplicate") == "true"


def test_a_notification_carries_its_set_attributes_in_order_and_no_empty_one(
    tmp_path: Path,
) -> None:
    out = tmp_path / "n.xml"
    full = Notice(NoticeType.CHANGE_OF_START_DATE, "RGT", "moved & <why>", placement_id="P\"1",
                  dpn="D/1", position_number="1001", trainee="Lee, Ann", old_value="2026-12-01",
                  new_value="2026-12-08", reason="UNKNOWN_DPN")
    with out.open("wb") as fh:
        bare = Notice(NoticeType.NEW_DPN, "RGT", "", dpn="D/2", reason="")
        writers.write_notifications(fh, "RGT", [full, bare], "2026-11-02T10:00:00Z")
    first, second = assert_valid(out)
    assert list(first.attrib.items()) == [
        ("type", "CHANGE_OF_START_DATE"), ("placementId", 'P"1'), ("deaneryPostNumber", "D/1"),
        ("positionNumber", "1001"), ("trainee", "Lee, Ann"), ("oldValue", "2026-12-01"),
        ("newValue", "2026-12-08"), ("reason", "UNKNOWN_DPN")]
    assert first.text == "moved & <why>"
    assert dict(second.attrib) == {"type": "NEW_DPN", "deaneryPostNumber": "D/2"}
    assert second.text is None


def test_an_outcome_without_reason_or_vpd_carries_neither(tmp_path: Path) -> None:
    ack = tmp_path / "ack.xml"
    header = writers.AckHeader("f.xml", "a" * 64, "2026-11-02T10:00:00Z", "esr", "processed",
                               "2026-11-02T10:00:01Z")
    outcomes = [Outcome("E1", Result.LOADED, "Sent."),
                Outcome("E2", Result.REJECTED, "No.", "UNKNOWN_DPN", "RGT")]
    with ack.open("wb") as fh:
        writers.write_ack(fh, header, [], outcomes, Totals.of(outcomes))
    first, second = assert_valid(ack).findall("{urn:dit-gateway:ack:1}Outcome")
    assert dict(first.attrib) == {"recordId": "E1", "result": "loaded"}
    assert list(second.attrib.items()) == [
        ("recordId", "E2"), ("result", "rejected"), ("reason", "UNKNOWN_DPN"), ("vpd", "RGT")]


@given(st.text(alphabet=st.sampled_from('&<>"\'\t\r\n ax–]')))
def test_escape_is_the_standard_librarys(value: str) -> None:
    """The writers' own ``escape`` gives what ``xml.sax.saxutils.escape`` gives, for text and
    for attributes, and a parser reads the value back unchanged."""
    for entities in (writers._TEXT_ENTITIES, writers._ATTR_ENTITIES):
        assert writers.escape(value, entities) == saxutils.escape(value, entities)
    element = etree.fromstring(f'<a b="{writers._attr(value)}">{writers._text(value)}</a>')
    assert element.get("b") == value
    assert (element.text or "") == value


_FIELD = st.text(alphabet=st.sampled_from(',"\r\n \tax–é'), max_size=6)


@given(st.lists(st.lists(_FIELD, min_size=1, max_size=9), max_size=6))
def test_csv_rows_are_the_csv_modules(rows: list[list[str]]) -> None:
    """Rows joined by the writers' own fast path are byte for byte what the csv module writes
    (commas, quotes and line breaks in fields, empty fields, a row of one empty field), and a
    CSV reader reads them back unchanged."""
    ours = io.BytesIO()
    writers._write_csv(ours, rows)
    text = io.StringIO(newline="")
    csv.writer(text, lineterminator="\r\n").writerows(rows)
    assert ours.getvalue() == text.getvalue().encode("utf-8")
    back = list(csv.reader(io.StringIO(ours.getvalue().decode("utf-8"), newline="")))
    assert back == rows


_CHARS = "a–é\t\n\r\x00\x08\x0b\x0c\x1f\x7f \ufffd\ufffe\uffff\uffbf\u0fff\ud800"


@given(st.text(alphabet=st.sampled_from(_CHARS), max_size=12))
def test_a_chunk_is_refused_exactly_when_xml_cannot_carry_a_character_of_it(text: str) -> None:
    """What a document writes is checked on its UTF-8 bytes: refused, naming the first
    character XML cannot carry, exactly when the character expression finds one (a lone
    surrogate is refused by the encoding); otherwise written as it is."""
    fh = io.BytesIO()
    doc = writers._Doc(fh, "urn:x")
    doc._put(text)
    bad = writers._NOT_XML.search(text)
    if bad:
        with pytest.raises(ValueError, match=f"U\\+{ord(bad.group()):04X} cannot be written"):
            doc.flush()
    elif "\ud800" in text:
        with pytest.raises(UnicodeEncodeError):
            doc.flush()
    else:
        doc.flush()
    assert fh.getvalue() == (b"" if bad or "\ud800" in text else text.encode("utf-8"))
