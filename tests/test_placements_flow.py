"""TIS placements → ESR applicant loads, end to end through ``dit-gateway process --as-of``."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from lxml import etree

from tests import builders as b
from tests.conftest import Gateway, write_config
from tests.daemon import DaemonProcess, wait_until
from tests.xsdcheck import assert_all_valid, assert_valid

AL = "{urn:dit-gateway:esr:applicant-load:1}"
ACK = "{urn:dit-gateway:ack:1}"
NOTE = "{urn:dit-gateway:notifications:1}Notification"
DPN_A = "EOE/RGT00/001/FY1/001"
DPN_B = "EOE/RGT00/002/CT1/001"

ALEX = b.trainee("T1", forenames="Alex", surname="Smith", dob="1995-03-04", nino="QQ123456C",
                 gmc="7123456", email="alex.smith@example.org", mobile="07700900123")
SAM = b.trainee("T2", forenames="Samira", surname="Okafor", dob="1993-07-21", nino=None,
                gmc="7654321", email="s.okafor@example.org")
JO = b.trainee("T3", forenames="Jo", surname="Bloggs", dob="1990-01-01", nino="QQ654321A",
               gmc="7000001", email=None)
PERSONAL = ["Smith", "Okafor", "Bloggs", "Samira", "1995-03-04", "1993-07-21", "QQ123456C",
            "7123456", "7654321", "alex.smith@example.org", "s.okafor@example.org",
            "07700900123", "QQ654321A"]


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m gateway`` in ``root`` with its config."""
    command, *rest = args
    return subprocess.run(
        [sys.executable, "-m", "gateway", command, "--config", str(root / "gateway.toml"), *rest],
        capture_output=True, text=True, check=False, cwd=root, timeout=120,
    )


def drop(root: Path, name: str, text: str) -> Path:
    """Write an input file outside the inbox (process copies it in)."""
    path = root / "drop" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def outcomes(root: Path, stem: str) -> list[tuple[str, str, str | None]]:
    """(recordId, result, reason) of an acknowledgement, checking its totals add up."""
    ack = assert_valid(root / "outbox" / "reports" / "acks" / f"{stem}.ack.xml")
    totals = ack.find(f"{ACK}Totals")
    assert totals is not None
    counts = {k: int(v) for k, v in totals.attrib.items()}
    assert counts["received"] == sum(v for k, v in counts.items() if k != "received")
    rows = ack.findall(f"{ACK}Outcome")
    assert len(rows) == counts["received"]
    return [(o.get("recordId", ""), o.get("result", ""), o.get("reason")) for o in rows]


def applicants(path: Path) -> list[tuple[str, str, str]]:
    """(placementId, action, EmployerRole) of a load file."""
    root = assert_valid(path)
    return [(a.get("placementId", ""), a.get("action", ""), a.findtext(f"{AL}EmployerRole", ""))
            for a in root.findall(f"{AL}Applicant")]


def notices(folder: Path, pattern: str) -> list[tuple[str, str | None]]:
    """(type, placementId) of every notification in matching files."""
    found = []
    for path in sorted(folder.glob(pattern)):
        found += [(n.get("type", ""), n.get("placementId"))
                  for n in assert_valid(path).findall(NOTE)]
    return found


def test_scenario_over_several_days(tmp_path: Path, store_url: str) -> None:
    """Positions, persons, two placement files and a tick give exactly the loads,
    acknowledgements and notifications the rules imply; all valid; no personal data logged."""
    root = tmp_path
    write_config(root, store_url=store_url)
    logs = []

    def run(*args: str) -> None:
        result = cli(root, *args)
        assert result.returncode == 0, result.stdout + result.stderr
        logs.append(result.stderr)

    run("process", "--as-of", "2027-05-01", str(drop(root, "rgt-pos.xml", b.positions("RGT", [
        b.position(1, "1001", dpn=DPN_A, host_lead="Lead"),
        b.position(2, "1002", dpn=DPN_B, ptype="Shared"),
    ]))))
    run("process", "--as-of", "2027-05-01", str(drop(root, "r1k-pos.xml", b.positions("R1K", [
        b.position(9, "9001", dpn=DPN_A, host_lead="Host"),
    ]))))
    run("process", "--as-of", "2027-05-01", str(drop(root, "rgt-persons.xml", b.persons("RGT", [
        b.person("E77", [b.assignment("A1", "1002", start="2026-08-01", end="2027-05-31")],
                 forenames="SAMIRA  Ada", surname=" okafor ", dob="1993-07-21", nino="QQ111111A",
                 gmc="7654321"),
    ]))))
    run("process", "--as-of", "2027-05-01", str(drop(root, "tis-1.xml", b.placements([
        b.placement("P1", dpn=DPN_A, start="2027-06-01", end="2027-12-01", person=ALEX),
        b.placement("P2", dpn=DPN_B, start="2027-06-01", end="2027-12-01", person=SAM),
        b.placement("P3", dpn=DPN_B, start="2027-09-01", end="2028-03-01", person=JO),
        b.placement("P4", dpn=DPN_B, start="2027-05-02", end="2027-08-01", person=JO),
        b.placement("P5", dpn="EOE/NOPE/1", start="2027-06-01", end="2027-12-01", person=JO),
        b.placement("P6", dpn=DPN_B, start="2027-06-01", end="2027-12-01", grade="GPST1",
                    person=JO),
        b.placement("P7", dpn=DPN_A, start="2027-11-30", end="2028-02-01", person=JO),
        b.placement("P1", dpn=DPN_A, start="2027-06-01", end="2027-12-01", person=ALEX),
    ]))))
    assert outcomes(root, "tis-1") == [
        ("P1", "loaded", None),
        ("P2", "loaded", None),
        ("P3", "deferred", None),
        ("P4", "rejected", "START_TOO_SOON"),
        ("P5", "rejected", "UNKNOWN_DPN"),
        ("P6", "rejected", "OUT_OF_SCOPE"),
        ("P7", "rejected", "POSITION_OCCUPIED"),
        ("P1", "rejected", "DUPLICATE_IN_FILE"),
    ]
    rgt = sorted((root / "outbox" / "esr" / "RGT").glob("applicants-tis-1-*.xml"))
    r1k = sorted((root / "outbox" / "esr" / "R1K").glob("applicants-tis-1-*.xml"))
    assert applicants(rgt[0]) == [("P1", "create", "Lead"), ("P2", "create", "Lead")]
    assert applicants(r1k[0]) == [("P1", "create", "Host")]
    load = assert_valid(rgt[0])
    p2 = load.findall(f"{AL}Applicant")[1]
    assert p2.findtext(f"{AL}ExistingEsrPersonId") == "E77"
    assert p2.findtext(f"{AL}ApplicantStatus") == "Preferred Applicant"
    reports = root / "outbox" / "reports"
    assert sorted(notices(reports / "RGT", "notifications-tis-1-*.xml")) == sorted([
        ("READY_TO_HIRE", "P1"), ("READY_TO_HIRE", "P2"), ("REJECTED", "P4"),
        ("REJECTED", "P6"), ("REJECTED", "P7"), ("REJECTED", "P1"),
    ])
    assert sorted(notices(reports / "R1K", "notifications-tis-1-*.xml")) == sorted([
        ("READY_TO_HIRE", "P1"), ("REJECTED", "P7"), ("REJECTED", "P1"),
    ])

    run("process", "--as-of", "2027-05-10", str(drop(root, "tis-2.xml", b.placements([
        b.placement("P1", dpn=DPN_A, start="2027-06-08", end="2027-12-01", person=ALEX),
        b.placement("P2", dpn=DPN_B, start="2027-06-01", end="2027-12-01", person=SAM,
                    action="withdraw"),
        b.placement("P9", dpn=DPN_B, start="2027-06-01", end="2027-12-01", person=JO,
                    action="withdraw"),
    ]))))
    assert outcomes(root, "tis-2") == [
        ("P1", "updated", None),
        ("P2", "withdrawn", None),
        ("P9", "rejected", "UNKNOWN_PLACEMENT"),
    ]
    rgt2 = sorted((root / "outbox" / "esr" / "RGT").glob("applicants-tis-2-*.xml"))
    assert applicants(rgt2[0]) == [("P1", "update", "Lead"), ("P2", "withdraw", "Lead")]
    changed = assert_valid(rgt2[0]).find(f"{AL}Applicant/{AL}Changed")
    assert changed is not None
    assert [f.text for f in changed] == ["ProjectedHireDate"]
    assert sorted(notices(reports / "RGT", "notifications-tis-2-*.xml")) == [
        ("CHANGE_OF_START_DATE", "P1"), ("REJECTED", "P9"), ("WITHDRAWAL", "P2")]

    status = cli(root, "status")
    assert "held placements (A3): 1" in status.stdout
    assert "P3" in status.stdout

    run("tick", "--as-of", "2027-06-01")
    assert not list((root / "outbox" / "esr" / "RGT").glob("*released*"))
    run("tick", "--as-of", "2027-06-02")
    released = sorted((root / "outbox" / "esr" / "RGT").glob("applicants-*released-2027-06-02.xml"))
    assert [applicants(p) for p in released] == [[("P3", "create", "Lead")]]
    assert notices(reports / "RGT", "notifications-released-2027-06-02.xml") == [
        ("READY_TO_HIRE", "P3")]
    assert "held placements (A3): 0" in cli(root, "status").stdout

    assert assert_all_valid(root / "outbox") > 10
    everything = "\n".join(logs)
    assert '"event": "file.processed"' in everything
    for secret in PERSONAL:
        assert secret not in everything, f"personal data in logs: {secret}"


def test_a13_no_load_file_carries_more_than_40_records_per_position(gateway: Gateway) -> None:
    """A13: 45 placements on one Shared post go out in two load files of 40 and 5."""
    gateway.process("esr", "pos.xml", b.positions("RGT", [
        b.position(1, "1001", dpn=DPN_B, ptype="Shared")]), date(2027, 5, 1))
    rows = [b.placement(f"P{i}", dpn=DPN_B, start="2027-06-01", end="2027-12-01",
                        person=b.trainee(f"T{i}", gmc=f"{7100000 + i}"))
            for i in range(45)]
    assert gateway.process("tis", "big.xml", b.placements(rows), date(2027, 5, 1)) == "processed"
    files = sorted((gateway.settings.paths.outbox / "esr" / "RGT").glob("applicants-big-*.xml"),
                   key=lambda p: len(p.name))
    assert [p.name.endswith("-2.xml") for p in files] == [False, True]
    assert [len(applicants(p)) for p in files] == [40, 5]


@pytest.mark.parametrize("as_of", [date(2027, 5, 30), date(2027, 5, 29)])
def test_a2_boundary_through_the_pipeline(gateway: Gateway, as_of: date) -> None:
    """A2 through the whole pipeline: 2 days ahead is sent, 3 days ahead too; 1 is not."""
    gateway.process("esr", "pos.xml", b.positions("RGT", [b.position(1, "1001", dpn=DPN_B)]),
                    as_of)
    gateway.process("tis", "t.xml", b.placements([
        b.placement("P1", dpn=DPN_B, start="2027-06-01", end="2027-12-01")]), as_of)
    ack = etree.parse(str(gateway.settings.paths.acks / "t.ack.xml")).getroot()
    assert ack.find(f"{ACK}Outcome").get("result") == "loaded"  # type: ignore[union-attr]


def test_daemon_releases_held_placements_at_its_start(daemon: DaemonProcess) -> None:
    """A3: a placement held earlier (more than 91 days ahead then) is sent by the daemon's
    daily job when it starts on the first day it is due (start − 91 days = today)."""
    root = daemon.root
    today = date.today()
    start = today + timedelta(days=91)
    earlier = today - timedelta(days=5)
    positions = root / "pos.xml"
    positions.write_text(b.positions("RGT", [b.position(1, "1001", dpn=DPN_B)]))
    tis = root / "tis.xml"
    tis.write_text(b.placements([
        b.placement("P1", dpn=DPN_B, start=start.isoformat(),
                    end=(start + timedelta(days=180)).isoformat())]))
    for path in (positions, tis):
        result = cli(root, "process", "--as-of", earlier.isoformat(), str(path))
        assert result.returncode == 0, result.stderr
    assert outcomes(root, "tis") == [("P1", "deferred", None)]
    assert not list((root / "outbox" / "esr").rglob("applicants-*.xml"))

    daemon.start()
    name = f"applicants-tis-*-released-{today.isoformat()}.xml"
    wait_until(lambda: bool(list((root / "outbox" / "esr" / "RGT").glob(name))),
               what="the released load")
    assert daemon.terminate() == 0
    released = list((root / "outbox" / "esr" / "RGT").glob(name))
    assert [applicants(p) for p in released] == [[("P1", "create", "Lead")]]
    assert any(e.get("job") == "release-deferred" and e.get("records") == 1
               for e in daemon.logs())
