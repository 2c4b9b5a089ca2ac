"""Trac checks → ESR check loads, end to end: once per applicant, identity never travels."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.flows.checks import PrefetchedView, WindowedView
from gateway.models import CheckApplicant
from gateway.rules.checks import decide
from tests import builders as b
from tests.conftest import Gateway, write_config
from tests.test_rules_checks import AS_OF, applicant, match, row
from tests.xsdcheck import assert_all_valid, assert_valid

ACK = "{urn:dit-gateway:ack:1}"
CL = "{urn:dit-gateway:esr:check-load:1}"
NOTE = "{urn:dit-gateway:notifications:1}Notification"
DPN = "EOE/RGT00/002/CT1/001"
PASSPORT = "PA55PORT-0042-XYZ"


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m gateway`` in ``root`` with its config."""
    command, *rest = args
    return subprocess.run(
        [sys.executable, "-m", "gateway", command, "--config", str(root / "gateway.toml"), *rest],
        capture_output=True, text=True, check=False, cwd=root, timeout=120,
    )


@pytest.fixture
def root(tmp_path: Path, store_url: str) -> Path:
    """A gateway with a position and two placements sent to RGT: P1 (Alex), P2 (Sam)."""
    write_config(tmp_path, store_url=store_url)
    (tmp_path / "pos.xml").write_text(
        b.positions("RGT", [b.position(1, "1001", dpn=DPN, ptype="Shared")]))
    (tmp_path / "tis.xml").write_text(b.placements([
        b.placement("P1", dpn=DPN, start="2027-06-01", end="2027-12-01",
                    person=b.trainee("T1", forenames="Alex", surname="Smith", dob="1995-03-04",
                                     nino="QQ123456C", gmc="7123456")),
        b.placement("P2", dpn=DPN, start="2027-06-01", end="2027-12-01",
                    person=b.trainee("T2", forenames="Sam", surname="Jones", dob="1990-02-02",
                                     nino=None, gmc="7000002")),
        b.placement("P3", dpn=DPN, start="2027-06-01", end="2027-12-01",
                    person=b.trainee("T3", forenames="Wyn", surname="Evans", dob="1991-01-01",
                                     nino=None, gmc="7000003")),
    ]))
    for name in ("pos.xml", "tis.xml"):
        result = cli(tmp_path, "process", "--as-of", "2027-05-01", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
    (tmp_path / "withdraw.xml").write_text(b.placements([
        b.placement("P3", dpn=DPN, start="2027-06-01", end="2027-12-01", action="withdraw",
                    person=b.trainee("T3", forenames="Wyn", surname="Evans", dob="1991-01-01",
                                     nino=None, gmc="7000003")),
    ]))
    assert cli(tmp_path, "process", "--as-of", "2027-05-02",
               str(tmp_path / "withdraw.xml")).returncode == 0
    return tmp_path


def outcomes(root: Path, stem: str) -> list[tuple[str, str, str | None]]:
    """(recordId, result, reason) of an acknowledgement."""
    ack = assert_valid(root / "outbox" / "reports" / "acks" / f"{stem}.ack.xml")
    return [(o.get("recordId", ""), o.get("result", ""), o.get("reason"))
            for o in ack.findall(f"{ACK}Outcome")]


def test_checks_transfer_once_and_identity_never(root: Path) -> None:
    """Eligible checks go to ESR once; identity is dropped (and said so); refusals are notified;
    the identity document number appears in no output and no log."""
    first = root / "trac-1.xml"
    first.write_text(b.checks([
        b.applicant("TR1", placement_id="P1", checks=[b.dbs(), b.reference(),
                                                      b.identity(PASSPORT)]),
        b.applicant("TR2", forenames="  SAM ", surname="jones", dob="1990-02-02",
                    checks=[b.dbs("000000000002")]),
        b.applicant("TR3", status="Offer Made", placement_id="P1", checks=[b.dbs()]),
        b.applicant("TR4", forenames="Wyn", surname="Evans", dob="1991-01-01",
                    checks=[b.dbs()]),
        b.applicant("TR5", forenames="Nobody", surname="Known", dob="1980-01-01",
                    checks=[b.dbs()]),
    ]))
    result = cli(root, "process", "--as-of", "2027-05-03", str(first))
    assert result.returncode == 0, result.stderr
    assert outcomes(root, "trac-1") == [
        ("TR1", "loaded", None),
        ("TR2", "loaded", None),
        ("TR3", "rejected", "NOT_RECRUITED"),
        ("TR4", "rejected", "NO_MATCHING_APPLICANT"),
        ("TR5", "rejected", "NO_MATCHING_APPLICANT"),
    ]
    ack = assert_valid(root / "outbox" / "reports" / "acks" / "trac-1.ack.xml")
    tr1 = ack.find(f"{ACK}Outcome")
    assert tr1 is not None
    assert "identity" in (tr1.text or "").lower()

    loads = sorted((root / "outbox" / "esr" / "RGT").glob("checks-trac-1-*.xml"))
    assert len(loads) == 1
    load = assert_valid(loads[0])
    rows = load.findall(f"{CL}ApplicantChecks")
    assert [(r.get("placementId"), r.get("tracApplicantId")) for r in rows] == [
        ("P1", "TR1"), ("P2", "TR2")]
    assert [c.tag.split("}")[1] for c in rows[0]] == ["DbsCheck", "Reference"]
    assert rows[0].findtext(f"{CL}DbsCheck/{CL}CertificateNumber") == "001234567890"
    notes = assert_valid(next((root / "outbox" / "reports" / "RGT").glob(
        "notifications-trac-1-*.xml")))
    assert sorted((n.get("type"), n.get("reason")) for n in notes.findall(NOTE)) == [
        ("REJECTED", "NOT_RECRUITED"), ("REJECTED", "NO_MATCHING_APPLICANT"),
        ("REJECTED", "NO_MATCHING_APPLICANT")]

    again = root / "trac-2.xml"
    again.write_text(b.checks([
        b.applicant("TR9", placement_id="P1", checks=[b.dbs("111111111111")]),
    ]))
    assert cli(root, "process", "--as-of", "2027-05-04", str(again)).returncode == 0
    assert outcomes(root, "trac-2") == [("TR9", "rejected", "ALREADY_TRANSFERRED")]
    assert not list((root / "outbox" / "esr" / "RGT").glob("checks-trac-2-*.xml"))

    assert assert_all_valid(root / "outbox") > 5
    for path in [*root.joinpath("outbox").rglob("*"), *root.joinpath("var").rglob("*.db*")]:
        if path.is_file():
            assert PASSPORT.encode() not in path.read_bytes(), path
    assert PASSPORT not in result.stderr


def test_one_off_rule_survives_a_restart_and_a_resent_file(root: Path) -> None:
    """C3 is held in the store: a re-sent file (duplicate) and a new file after a restart
    transfer nothing more."""
    text = b.checks([b.applicant("TR1", placement_id="P1", checks=[b.dbs()])])
    (root / "a.xml").write_text(text)
    (root / "b.xml").write_text(text)
    (root / "c.xml").write_text(text.replace("2027-05-03T09", "2027-05-05T09"))
    for name in ("a.xml", "b.xml", "c.xml"):
        assert cli(root, "process", "--as-of", "2027-05-05", str(root / name)).returncode == 0
    assert outcomes(root, "a") == [("TR1", "loaded", None)]
    assert assert_valid(root / "outbox/reports/acks/b.ack.xml").get("status") == "duplicate"
    assert outcomes(root, "c") == [("TR1", "rejected", "ALREADY_TRANSFERRED")]
    assert len(list((root / "outbox" / "esr" / "RGT").glob("checks-*.xml"))) == 1


# --- the flow's windowed view decides as the whole file's prefetch ----------------------------

_ROWS = [row("P-1"), row("P-2", vpd="R1K"), row("P-3", withdrawn=True),
         row("P-4", tis_person_id="T4", forenames="Sam", date_of_birth=date(1990, 1, 1))]


@st.composite
def _applicants(draw: st.DrawFn) -> CheckApplicant:
    """An applicant of the register's VPDs, matched by placement id or by demographics."""
    pid = draw(st.sampled_from([None, "P-1", "P-2", "P-3", "P-4", "P-9"]))
    who = draw(st.sampled_from([match(), match(forenames="Sam", date_of_birth=date(1990, 1, 1),
                                               nino=None, gmc_number=None)]))
    return applicant(draw(st.sampled_from(["TRAC-1", "TRAC-2", "TRAC-3"])),
                     vpd=draw(st.sampled_from(["RGT", "R1K"])),
                     who=replace(who, tis_placement_id=pid))


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=st.lists(_applicants(), max_size=10), size=st.integers(1, 4))
def test_a_windowed_view_decides_as_the_whole_file_prefetched(
    gateway: Gateway, file: list[CheckApplicant], size: int
) -> None:
    """The checks flow reads the register a few applicants at a time for large files: every
    file is decided as with the whole file read at once (the same applicant twice across
    windows, a transfer recorded by an earlier file, a withdrawn row)."""
    store = gateway.store
    if not store.sent("P-1"):
        with store.transaction():
            store.save_applicants(_ROWS, "t")
            store.record_transfers([("R1K", "P-2", "TRAC-0", "sha", "t")])
    whole = decide(file, PrefetchedView.of(store, file), AS_OF)
    view = WindowedView(store, size)
    assert decide(view.over(file), view, AS_OF) == whole
