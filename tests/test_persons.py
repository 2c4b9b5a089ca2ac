"""ESR persons → TIS person update: scope (U1), delta (U2), routing (U3), crash safety."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.models import Absence, Address, Assignment, Person
from gateway.rules.persons import fingerprint, sent_text
from tests import builders as b
from tests.conftest import Gateway
from tests.xsdcheck import assert_valid

AS_OF = date(2026, 11, 2)
PU = "{urn:dit-gateway:tis:person-update:1}"
DPN = "EOE/RGT00/001/FY1/001"


def positions_xml() -> str:
    """RGT's register: an interface post, an end-dated post, a post without DPN, a London post."""
    return b.positions(
        "RGT",
        [
            b.position(1, "1001", dpn=DPN),
            b.position(2, "1002", dpn="EOE/RGT00/002/FY1/001", effective_to="2026-10-01"),
            b.position(3, "1003", dpn=None),
            b.position(4, "1004", dpn="LDN/RGT00/004/CT1/001"),
        ],
    )


def update_files(gw: Gateway) -> list[Path]:
    """Person update files published so far."""
    return gw.outbox("tis/*/persons-*.xml")


def sent_ids(path: Path) -> list[str]:
    """esrPersonIds in a person update (validated against its XSD)."""
    root = assert_valid(path)
    return [p.get("esrPersonId", "") for p in root.findall(f"{PU}Person")]


@pytest.mark.parametrize(
    ("assignment", "in_scope"),
    [
        pytest.param(b.assignment("A1", "1001"), True, id="U1 active paid post on interface"),
        pytest.param(b.assignment("A1", "1001", honorary=True), False, id="U1 honorary never"),
        pytest.param(b.assignment("A1", "1001", status="Terminated"), False,
                     id="U1 terminated out"),
        pytest.param(b.assignment("A1", "1001", status="Maternity & Adoption"), True,
                     id="U1 maternity in"),
        pytest.param(b.assignment("A1", "1003"), False, id="U1 post without DPN out"),
        pytest.param(b.assignment("A1", "1002"), False, id="U1 end-dated post out"),
        pytest.param(b.assignment("A1", "9999"), False, id="U1 post of another VPD out"),
    ],
)
def test_scope(gateway: Gateway, assignment: str, in_scope: bool) -> None:
    """U1: only non-honorary Active/Maternity assignments on interface posts of the VPD flow."""
    gateway.process("esr", "pos.xml", positions_xml(), AS_OF)
    gateway.process("esr", "persons.xml", b.persons("RGT", [b.person("P1", [assignment])]), AS_OF)
    files = update_files(gateway)
    assert (files != []) is in_scope
    if in_scope:
        assert [f.name for f in files] == ["persons-RGT-2026-11-02.xml"]
        assert sent_ids(files[0]) == ["P1"]


def test_routing_per_deanery_and_absences_travel(gateway: Gateway) -> None:
    """U3: each person goes to their DPN's deanery, with their absences."""
    gateway.process("esr", "pos.xml", positions_xml(), AS_OF)
    people = [
        b.person("P1", [b.assignment("A1", "1001")],
                 absences=[("Maternity", "2026-09-01", None)]),
        b.person("P2", [b.assignment("A2", "1004")], surname="Jones"),
    ]
    gateway.process("esr", "persons.xml", b.persons("RGT", people), AS_OF)
    eoe = gateway.settings.paths.outbox / "tis" / "EOE" / "persons-RGT-2026-11-02.xml"
    ldn = gateway.settings.paths.outbox / "tis" / "LDN" / "persons-RGT-2026-11-02.xml"
    assert sent_ids(eoe) == ["P1"]
    assert sent_ids(ldn) == ["P2"]
    absence = etree.parse(str(eoe)).getroot().find(f"{PU}Person/{PU}Absence/{PU}Type")
    assert absence is not None
    assert absence.text == "Maternity"


def test_delta_sends_only_the_changed_person(gateway: Gateway) -> None:
    """U2: one field changed → that one person sent; nothing changed → no file."""
    gateway.process("esr", "pos.xml", positions_xml(), AS_OF)
    people = [b.person(f"P{i}", [b.assignment(f"A{i}", "1001")], gmc=f"712345{i}")
              for i in range(3)]
    gateway.process("esr", "p1.xml", b.persons("RGT", people, extract_date="2026-11-02"), AS_OF)
    first = update_files(gateway)
    assert sent_ids(first[0]) == ["P0", "P1", "P2"]

    people[1] = b.person("P1", [b.assignment("A1", "1001")], gmc="7123451", email="new@x.org")
    gateway.process("esr", "p2.xml", b.persons("RGT", people, extract_date="2026-11-03"), AS_OF)
    day2 = gateway.settings.paths.outbox / "tis" / "EOE" / "persons-RGT-2026-11-03.xml"
    assert sent_ids(day2) == ["P1"]

    gateway.process("esr", "p3.xml", b.persons("RGT", people, extract_date="2026-11-04"), AS_OF)
    assert not (gateway.settings.paths.outbox / "tis" / "EOE" / "persons-RGT-2026-11-04.xml"
                ).exists()
    ack = assert_valid(gateway.settings.paths.acks / "p3.ack.xml")
    results = [o.get("result") for o in ack.findall("{urn:dit-gateway:ack:1}Outcome")]
    assert results == ["unchanged"] * 3


def test_person_who_left_scope_is_not_sent_again(gateway: Gateway) -> None:
    """U2: a person who leaves scope is not sent; coming back in scope sends them again."""
    gateway.process("esr", "pos.xml", positions_xml(), AS_OF)
    active = b.persons("RGT", [b.person("P1", [b.assignment("A1", "1001")])],
                       extract_date="2026-11-02")
    gone = b.persons("RGT", [b.person("P1", [b.assignment("A1", "1001", status="Terminated")])],
                     extract_date="2026-11-03")
    back = b.persons("RGT", [b.person("P1", [b.assignment("A1", "1001")])],
                     extract_date="2026-11-04")
    gateway.process("esr", "a.xml", active, AS_OF)
    gateway.process("esr", "b.xml", gone, AS_OF)
    gateway.process("esr", "c.xml", back, AS_OF)
    names = [p.name for p in update_files(gateway)]
    assert names == ["persons-RGT-2026-11-02.xml", "persons-RGT-2026-11-04.xml"]


def test_full_extract_command_sends_everyone_in_scope(gateway: Gateway) -> None:
    """``extract persons --vpd RGT --full`` sends everyone in scope, type=full."""
    gateway.process("esr", "pos.xml", positions_xml(), AS_OF)
    people = [b.person("P1", [b.assignment("A1", "1001")]),
              b.person("P2", [b.assignment("A2", "1001", honorary=True)])]
    gateway.process("esr", "p.xml", b.persons("RGT", people), AS_OF)
    gateway.store.close()
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "extract", "persons", "--config",
         str(gateway.root / "gateway.toml"), "--vpd", "RGT", "--full", "--as-of", "2026-11-09"],
        capture_output=True, text=True, check=False, cwd=gateway.root,
    )
    assert result.returncode == 0, result.stderr
    path = gateway.settings.paths.outbox / "tis" / "EOE" / "persons-RGT-2026-11-09.xml"
    assert sent_ids(path) == ["P1"]
    assert etree.parse(str(path)).getroot().get("type") == "full"
    assert "1 person(s) in scope sent" in result.stdout


def test_crash_between_extract_and_fingerprints_loses_and_repeats_nothing(
    gateway: Gateway,
) -> None:
    """Killed after writing the update but before committing the fingerprints, the gateway
    writes the same update on restart; killed after the commit, it publishes it and sends
    nothing twice."""
    gateway.process("esr", "pos.xml", positions_xml(), AS_OF)
    config = str(gateway.root / "gateway.toml")
    people = b.persons("RGT", [b.person("P1", [b.assignment("A1", "1001")])])
    source = gateway.root / "persons.xml"
    source.write_text(people)
    gateway.store.close()

    def run(crash: str, *files: Path) -> int:
        env = {**os.environ, "DIT_GATEWAY_CRASH_AT": crash}
        return subprocess.run(
            [sys.executable, "-m", "gateway", "process", "--config", config,
             "--as-of", "2026-11-02", *map(str, files)],
            env=env, capture_output=True, check=False, cwd=gateway.root,
        ).returncode

    assert run("outputs-written", source) == -signal.SIGKILL
    assert update_files(gateway) == []
    todo = gateway.pipeline.recover()
    assert len(todo) == 1
    assert gateway.pipeline.process(todo[0], AS_OF) == "processed"
    files = update_files(gateway)
    assert [sent_ids(f) for f in files] == [["P1"]]

    changed = b.persons("RGT", [b.person("P1", [b.assignment("A1", "1001")], email="n@x.org")],
                        extract_date="2026-11-03")
    again = gateway.root / "persons2.xml"
    again.write_text(changed)
    assert run("committed", again) == -signal.SIGKILL
    day2 = gateway.settings.paths.outbox / "tis" / "EOE" / "persons-RGT-2026-11-03.xml"
    assert not day2.exists(), "published before recovery"
    assert gateway.pipeline.recover() == []
    assert sent_ids(day2) == ["P1"]

    same = changed.replace("2026-11-03", "2026-11-04")
    assert gateway.process("esr", "persons3.xml", same, AS_OF) == "processed"
    day3 = gateway.settings.paths.outbox / "tis" / "EOE" / "persons-RGT-2026-11-04.xml"
    assert not day3.exists(), "the committed fingerprint was lost: P1 sent twice"
    assert sorted(p.name for p in gateway.settings.paths.acks.iterdir()) == [
        "persons.ack.xml", "persons2.ack.xml", "persons3.ack.xml", "pos.ack.xml"]


_TEXT = st.text(max_size=12)
_MAYBE = st.none() | _TEXT
_MAYBE_DAY = st.none() | st.dates()


@settings(max_examples=300, deadline=None)
@given(
    person=st.builds(
        Person,
        esr_person_id=_TEXT, forenames=_TEXT, surname=_TEXT, date_of_birth=st.dates(),
        gender=_TEXT,
        assignments=st.lists(st.builds(
            Assignment, assignment_number=_TEXT, position_number=_TEXT, status=_TEXT,
            honorary=st.booleans(), start_date=st.dates(), projected_end_date=_MAYBE_DAY,
            end_date=_MAYBE_DAY), max_size=2).map(tuple),
        title=_MAYBE, previous_surname=_MAYBE, known_as=_MAYBE, nino=_MAYBE,
        ethnic_origin=_MAYBE, email=_MAYBE, home_phone=_MAYBE, mobile_phone=_MAYBE,
        address=st.none() | st.builds(
            Address, line1=_TEXT, line2=_MAYBE, line3=_MAYBE, town=_MAYBE, county=_MAYBE,
            postcode=_MAYBE, country=_MAYBE),
        gmc_number=_MAYBE,
        absences=st.lists(st.builds(Absence, type=_TEXT, start_date=st.dates(),
                                    end_date=_MAYBE_DAY), max_size=2).map(tuple),
    ),
    dpn=_TEXT,
    number=_TEXT,
)
def test_a_fingerprint_hashes_what_earlier_versions_hashed(
    person: Person, dpn: str, number: str
) -> None:
    """U2's fingerprint, made without copying the person, is the hash of the same text as
    before (the person without assignments, the DPN and the position): fingerprints stored by
    earlier versions still match, so an upgrade sends nobody to TIS again. So is the one made
    from the person's part of the text made beforehand (by the look-ahead reader)."""
    text = repr((replace(person, assignments=()), dpn, number))
    expected = hashlib.sha256(text.encode()).hexdigest()
    assert fingerprint(person, dpn, number) == expected
    assert fingerprint(person, dpn, number, sent_text(person)) == expected
