"""Closing the loop with ESR (spec 6.5): load confirmations, R4, R6 and re-sending (R7),
end to end through the command line over several ``--as-of`` days, on both store backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from gateway import config
from gateway.store import open_store
from tests import builders as b
from tests.conftest import write_config
from tests.daemon import DaemonProcess, wait_until
from tests.xsdcheck import assert_all_valid, assert_valid

ACK = "{urn:dit-gateway:ack:1}"
AL = "{urn:dit-gateway:esr:applicant-load:1}"
PC = "{urn:dit-gateway:tis:placement-confirmations:1}"
NOTE = "{urn:dit-gateway:notifications:1}Notification"
DPN_A = "EOE/RGT00/001/FY1/001"
DPN_B = "EOE/RGT00/002/CT1/001"
DPN_NEW = "EOE/RGT00/005/FY1/001"
DPN_LATE = "EOE/RGT00/006/FY1/001"

ALEX = b.trainee("T1", forenames="Alex", surname="Smith", dob="1995-03-04", nino="QQ123456C",
                 gmc="7123456", email="alex.smith@example.org", mobile="07700900123")
SAM = b.trainee("T2", forenames="Samira", surname="Okafor", dob="1993-07-21", nino=None,
                gmc="7654321", email="s.okafor@example.org")
JO = b.trainee("T3", forenames="Jo", surname="Bloggs", dob="1990-01-01", nino="QQ654321A",
               gmc="7000001", email=None)
ESR_SAYS = "Mandatory NI number missing for Samira Okafor"
PERSONAL = ["Smith", "Okafor", "Bloggs", "Samira", "1995-03-04", "1993-07-21", "QQ123456C",
            "7123456", "7654321", "alex.smith@example.org", "s.okafor@example.org",
            "07700900123", "QQ654321A", ESR_SAYS, "Mandatory NI"]


class Cli:
    """``python -m gateway`` in a gateway folder; keeps every log line it wrote."""

    def __init__(self, root: Path, store_url: str = "", extra: str = "") -> None:
        self.root = root
        write_config(root, extra=extra, store_url=store_url)
        self.logs: list[str] = []

    def __call__(self, *args: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
        command, *rest = args
        env = dict(os.environ)
        env.pop("DIT_GATEWAY_CRASH_AT", None)
        if crash:
            env["DIT_GATEWAY_CRASH_AT"] = crash
        result = subprocess.run(
            [sys.executable, "-m", "gateway", command, "--config",
             str(self.root / "gateway.toml"), *rest],
            capture_output=True, text=True, check=False, cwd=self.root, timeout=120, env=env,
        )
        self.logs.append(result.stderr)
        return result

    def ok(self, *args: str) -> str:
        """Run a command that must exit 0; its standard output."""
        result = self(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def process(self, as_of: str, name: str, text: str) -> str:
        """Process one input file (written outside the inbox) on day ``as_of``."""
        path = self.root / "drop" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        return self.ok("process", "--as-of", as_of, str(path))

    def out(self, pattern: str) -> list[Path]:
        """Published outputs matching ``pattern`` under outbox/."""
        return sorted(p for p in (self.root / "outbox").glob(pattern)
                      if not p.name.startswith("."))

    def one(self, pattern: str) -> Path:
        """The one published output matching ``pattern``."""
        found = self.out(pattern)
        assert len(found) == 1, found
        return found[0]

    def assert_no_personal_data_logged(self) -> None:
        """No log line of any command carries a name, date of birth, NINO, GMC number, contact
        detail or ESR's message text."""
        everything = "\n".join(self.logs)
        for secret in PERSONAL:
            assert secret not in everything, f"personal data in logs: {secret}"


def outcomes(path: Path) -> list[tuple[str, str, str | None]]:
    """(recordId, result, reason) of an acknowledgement, checking its totals add up."""
    ack = assert_valid(path)
    totals = ack.find(f"{ACK}Totals")
    assert totals is not None
    counts = {k: int(v) for k, v in totals.attrib.items()}
    assert counts["received"] == sum(v for k, v in counts.items() if k != "received")
    rows = ack.findall(f"{ACK}Outcome")
    assert len(rows) == counts["received"]
    return [(o.get("recordId", ""), o.get("result", ""), o.get("reason")) for o in rows]


def applicants(path: Path) -> list[tuple[str, str]]:
    """(placementId, action) of a load file."""
    return [(a.get("placementId", ""), a.get("action", ""))
            for a in assert_valid(path).findall(f"{AL}Applicant")]


def notices(paths: list[Path]) -> list[tuple[str, str | None, str]]:
    """(type, placementId, text) of every notification in ``paths``."""
    return [(n.get("type", ""), n.get("placementId"), n.text or "")
            for path in paths for n in assert_valid(path).findall(NOTE)]


def tis_rows(path: Path) -> list[tuple[str, str, str | None, str | None]]:
    """(placementId, status, ApplicantNumber, Message) of a TIS placement confirmation."""
    return [(p.get("placementId", ""), p.get("status", ""), p.findtext(f"{PC}ApplicantNumber"),
             p.findtext(f"{PC}Message"))
            for p in assert_valid(path).findall(f"{PC}Placement")]


def esr_state(root: Path, placement_id: str, vpd: str = "RGT") -> tuple[object, ...] | None:
    """The register's (state, applicant number, assignment id, message) of an applicant."""
    store = open_store(config.load(root / "gateway.toml"))
    try:
        return store.esr_state(placement_id, vpd)
    finally:
        store.close()


def setup_day_one(cli: Cli) -> str:
    """Positions and a placement file on 2027-05-01; returns the RGT load file's name."""
    cli.process("2027-05-01", "rgt-pos.xml", b.positions("RGT", [
        b.position(1, "1001", dpn=DPN_A, host_lead="Lead"),
        b.position(2, "1002", dpn=DPN_B, ptype="Shared"),
    ]))
    cli.process("2027-05-01", "tis-1.xml", b.placements([
        b.placement("P1", dpn=DPN_A, start="2027-06-01", end="2027-12-01", person=ALEX),
        b.placement("P2", dpn=DPN_B, start="2027-06-01", end="2027-12-01", person=SAM),
        b.placement("P3", dpn=DPN_B, start="2027-06-01", end="2027-12-01", person=JO),
        b.placement("P5", dpn=DPN_NEW, start="2027-06-01", end="2027-12-01", person=JO),
        b.placement("P6", dpn=DPN_LATE, start="2027-05-20", end="2027-12-01", person=JO),
    ]))
    assert outcomes(cli.one("reports/acks/tis-1.ack.xml")) == [
        ("P1", "loaded", None), ("P2", "loaded", None), ("P3", "loaded", None),
        ("P5", "rejected", "UNKNOWN_DPN"), ("P6", "rejected", "UNKNOWN_DPN"),
    ]
    load = cli.one("esr/RGT/applicants-tis-1-*.xml")
    assert applicants(load) == [("P1", "create"), ("P2", "create"), ("P3", "create")]
    return load.name


def test_confirmations_end_to_end(tmp_path: Path, store_url: str) -> None:
    """R1–R5 over several days: SUCCESS and FAIL reach the register, TIS and the MSO exactly
    as R2/R3 say; a duplicate file, a repeated confirmation, an unknown load and a record not
    in the load; then R4: TIS sending the failed placement again creates it again, the loaded
    one is unchanged; no personal data in any log line."""
    cli = Cli(tmp_path, store_url)
    load = setup_day_one(cli)
    status = cli.ok("status")
    assert "loads awaiting confirmation: 1" in status
    assert f"RGT   {load}" in status
    assert "3 unconfirmed" in status

    text = b.confirmations("RGT", load, [
        b.confirmation("P1", number="APP-1", assignment_id="AS-1"),
        b.confirmation("P2", "FAIL", message_type="ERROR", message=ESR_SAYS),
        b.confirmation("P3", number="APP-3", assignment_id="AS-3", message_type="INFO",
                       message="Applicant created."),
        b.confirmation("P9"),
        b.confirmation("P1", action="withdraw"),
    ])
    cli.process("2027-05-02", "conf-1.xml", text)
    assert outcomes(cli.one("reports/acks/conf-1.ack.xml")) == [
        ("P1", "updated", None), ("P2", "updated", None), ("P3", "updated", None),
        ("P9", "rejected", "NOT_IN_LOAD"), ("P1", "rejected", "NOT_IN_LOAD"),
    ]
    assert tis_rows(cli.one("tis/EOE/confirmations-RGT-conf-1-*.xml")) == [
        ("P1", "LOADED", "APP-1", None), ("P2", "FAILED", None, ESR_SAYS),
        ("P3", "LOADED", "APP-3", None),
    ]
    failed = notices(cli.out("reports/RGT/notifications-conf-1-*.xml"))
    assert [(kind, pid) for kind, pid, _text in failed] == [("LOAD_FAILED", "P2")]
    assert ESR_SAYS in failed[0][2]
    assert cli.out("reports/RGT/notifications-conf-1-*.csv")
    assert ESR_SAYS in cli.one("reports/RGT/notifications-conf-1-*.csv").read_text()
    assert esr_state(tmp_path, "P1") == ("in ESR", "APP-1", "AS-1", None)
    assert esr_state(tmp_path, "P2") == ("failed", None, None, ESR_SAYS)
    assert esr_state(tmp_path, "P3") == ("in ESR", "APP-3", "AS-3", None)
    status = cli.ok("status", "--as-of", "2027-05-02")
    assert "loads awaiting confirmation: 0" in status
    assert "failed applicants: 1" in status
    assert "P2" in status
    assert "resend would send: 3" in status  # P2 failed; P5, P6 rejected
    assert "failed by ESR; 2027-05-02: loaded" in status  # P2 would be created again (R4)
    assert "rejected UNKNOWN_DPN; 2027-05-02: rejected UNKNOWN_DPN" in status  # P5, P6

    # The same bytes again: a duplicate file, nothing changes.
    cli.process("2027-05-02", "conf-1-again.xml", text)
    ack = assert_valid(cli.one("reports/acks/conf-1-again.ack.xml"))
    assert ack.get("status") == "duplicate"
    assert len(cli.out("tis/EOE/confirmations-*.xml")) == 1

    # Another file repeating one confirmation: unchanged (R5); an unknown load (R1).
    cli.process("2027-05-02", "conf-2.xml", b.confirmations("RGT", load, [
        b.confirmation("P1", number="APP-1", assignment_id="AS-1")],
        processed_at="2027-05-02T04:00:00Z"))
    assert outcomes(cli.one("reports/acks/conf-2.ack.xml")) == [("P1", "unchanged", None)]
    assert not cli.out("tis/EOE/confirmations-RGT-conf-2-*.xml")
    cli.process("2027-05-02", "conf-3.xml", b.confirmations("RGT", "applicants-nope-1.xml", [
        b.confirmation("P1")]))
    assert outcomes(cli.one("reports/acks/conf-3.ack.xml")) == [
        ("P1", "rejected", "UNKNOWN_LOAD")]
    cli.process("2027-05-02", "conf-4.xml", b.confirmations("R1K", load, [b.confirmation("P1")]))
    assert outcomes(cli.one("reports/acks/conf-4.ack.xml")) == [
        ("P1", "rejected", "UNKNOWN_LOAD")]

    # R4: TIS sends P1 and P2 again, unchanged: P2 (failed) is created again, P1 is unchanged.
    cli.process("2027-05-03", "tis-2.xml", b.placements([
        b.placement("P1", dpn=DPN_A, start="2027-06-01", end="2027-12-01", person=ALEX),
        b.placement("P2", dpn=DPN_B, start="2027-06-01", end="2027-12-01", person=SAM),
    ]))
    assert outcomes(cli.one("reports/acks/tis-2.ack.xml")) == [
        ("P1", "unchanged", None), ("P2", "loaded", None)]
    assert applicants(cli.one("esr/RGT/applicants-tis-2-*.xml")) == [("P2", "create")]
    assert esr_state(tmp_path, "P2") == ("sent", None, None, None)
    status = cli.ok("status")
    assert "failed applicants: 0" in status
    assert "resend would send: 2" in status

    assert assert_all_valid(tmp_path / "outbox") > 10
    cli.assert_no_personal_data_logged()


def test_withdraw_of_a_failed_create_writes_no_esr_record(tmp_path: Path) -> None:
    """R4: a withdraw of a placement whose create ESR failed is `withdrawn` with no ESR record;
    a later upsert of it is a create again."""
    cli = Cli(tmp_path)
    load = setup_day_one(cli)
    cli.process("2027-05-02", "conf.xml", b.confirmations("RGT", load, [
        b.confirmation("P2", "FAIL", message="Rejected by ESR")]))
    cli.process("2027-05-03", "tis-w.xml", b.placements([
        b.placement("P2", dpn=DPN_B, start="2027-06-01", end="2027-12-01", person=SAM,
                    action="withdraw")]))
    assert outcomes(cli.one("reports/acks/tis-w.ack.xml")) == [("P2", "withdrawn", None)]
    assert not cli.out("esr/RGT/applicants-tis-w-*.xml")
    assert "resend would send: 2" in cli.ok("status")  # P5, P6: the withdrawn P2 is gone
    cli.process("2027-05-04", "tis-again.xml", b.placements([
        b.placement("P2", dpn=DPN_B, start="2027-06-01", end="2027-12-01", person=SAM)]))
    assert applicants(cli.one("esr/RGT/applicants-tis-again-*.xml")) == [("P2", "create")]


def test_resend_after_the_cause_is_fixed(tmp_path: Path, store_url: str) -> None:
    """R7: a placement rejected UNKNOWN_DPN goes out as a create with RESENT once the position
    extract adds its DPN; one now within 2 days of its start is refused START_TOO_SOON and says
    so; a failed one is re-sent; an unknown id, or nothing left, exits 1."""
    cli = Cli(tmp_path, store_url)
    load = setup_day_one(cli)
    cli.process("2027-05-04", "rgt-delta.xml", b.positions("RGT", [
        b.position(5, "1005", dpn=DPN_NEW), b.position(6, "1006", dpn=DPN_LATE)],
        kind="delta"))

    out = cli.ok("resend", "--placement", "P5", "--as-of", "2027-05-04")
    assert out.startswith("P5: loaded")
    ack = cli.one("reports/acks/resend-2027-05-04-1.ack.xml")
    assert outcomes(ack) == [("P5", "loaded", None)]
    assert applicants(cli.one("esr/RGT/applicants-resend-2027-05-04-1.xml")) == [
        ("P5", "create")]
    sent = notices(cli.out("reports/RGT/notifications-resend-2027-05-04-1.xml"))
    assert sorted((kind, pid) for kind, pid, _t in sent) == [
        ("READY_TO_HIRE", "P5"), ("RESENT", "P5")]
    assert "UNKNOWN_DPN" in next(t for kind, _p, t in sent if kind == "RESENT")

    again = cli("resend", "--placement", "P5", "--as-of", "2027-05-04")
    assert again.returncode == 1
    assert "nothing to re-send" in again.stderr
    unknown = cli("resend", "--placement", "NOPE", "--as-of", "2027-05-04")
    assert unknown.returncode == 1
    assert cli("resend", "--as-of", "2027-05-04").returncode == 2
    assert cli("resend", "--placement", "P6", "--all-failed").returncode == 2

    refused = cli("resend", "--placement", "P6", "--as-of", "2027-05-19")
    assert refused.returncode == 0, refused.stderr
    assert refused.stdout.startswith("P6: rejected START_TOO_SOON")
    assert outcomes(cli.one("reports/acks/resend-2027-05-19-1.ack.xml")) == [
        ("P6", "rejected", "START_TOO_SOON")]
    assert not cli.out("esr/RGT/applicants-resend-2027-05-19-*.xml")
    assert "P6" in cli.ok("status").split("resend would send:")[1]

    # A failed create, re-sent with --all-failed --vpd: created again (R4), RESENT.
    cli.process("2027-05-05", "conf.xml", b.confirmations("RGT", load, [
        b.confirmation("P3", "FAIL", message="Position closed")]))
    out = cli.ok("resend", "--all-failed", "--vpd", "RGT", "--as-of", "2027-05-06")
    assert sorted(out.splitlines()[:2]) == [
        "P3: loaded: Sent to ESR: create to RGT (Lead).",
        "P6: loaded: Sent to ESR: create to RGT (Lead).",
    ]
    assert applicants(cli.one("esr/RGT/applicants-resend-2027-05-06-1.xml")) == [
        ("P3", "create"), ("P6", "create")]
    assert cli("resend", "--all-failed", "--as-of", "2027-05-06").returncode == 1
    assert assert_all_valid(tmp_path / "outbox") > 5
    cli.assert_no_personal_data_logged()


def test_r6_one_load_unconfirmed_for_the_split_file_only_once(tmp_path: Path) -> None:
    """R6: 45 placements on one post go out as two load files (A13); ESR confirms the first
    only; after confirm_hours one LOAD_UNCONFIRMED names the -2 file, and never again."""
    cli = Cli(tmp_path)
    cli.process("2027-05-01", "pos.xml", b.positions("RGT", [
        b.position(1, "1001", dpn=DPN_B, ptype="Shared")]))
    cli.process("2027-05-01", "big.xml", b.placements([
        b.placement(f"P{i}", dpn=DPN_B, start="2027-06-01", end="2027-12-01",
                    person=b.trainee(f"T{i}", gmc=f"{7100000 + i}"))
        for i in range(45)]))
    first, second = sorted(cli.out("esr/RGT/applicants-big-*.xml"), key=lambda p: len(p.name))
    assert second.name.endswith("-2.xml")
    cli.process("2027-05-02", "conf.xml", b.confirmations("RGT", first.name, [
        b.confirmation(pid, number=f"APP-{pid}") for pid, _a in applicants(first)]))

    cli.ok("tick", "--as-of", "2027-05-02")  # 24 hours at most: not yet
    assert not cli.out("reports/RGT/notifications-unconfirmed-*.xml")
    cli.ok("tick", "--as-of", "2027-05-04")  # 48 hours at least
    raised = notices(cli.out("reports/RGT/notifications-unconfirmed-*.xml"))
    assert [kind for kind, _p, _t in raised] == ["LOAD_UNCONFIRMED"]
    assert second.name in raised[0][2]
    assert first.name not in raised[0][2]
    assert "5 record(s)" in raised[0][2]
    cli.ok("tick", "--as-of", "2027-05-05")
    cli.ok("tick", "--as-of", "2027-05-06")
    assert len(cli.out("reports/RGT/notifications-unconfirmed-*.xml")) == 1
    status = cli.ok("status")
    assert "loads awaiting confirmation: 1" in status
    assert f"{second.name}" in status
    assert "LOAD_UNCONFIRMED raised" in status
    cli.assert_no_personal_data_logged()


@pytest.mark.parametrize("crash", ["outputs-written:1", "committed:1", "published:1"])
def test_sigkill_during_a_resend_sends_nothing_twice(tmp_path: Path, crash: str) -> None:
    """A resend killed at each step of the commit: the next command finishes or redoes it;
    the placement goes to ESR exactly once, with one acknowledgement and one RESENT."""
    cli = Cli(tmp_path)
    setup_day_one(cli)
    cli.process("2027-05-04", "rgt-delta.xml", b.positions("RGT", [
        b.position(5, "1005", dpn=DPN_NEW)], kind="delta"))
    killed = cli("resend", "--placement", "P5", "--as-of", "2027-05-04", crash=crash)
    assert killed.returncode == -signal.SIGKILL
    retried = cli("resend", "--placement", "P5", "--as-of", "2027-05-04")
    committed = crash != "outputs-written:1"
    assert retried.returncode == (1 if committed else 0), retried.stdout + retried.stderr
    loads = cli.out("esr/RGT/applicants-resend-*.xml")
    assert [applicants(p) for p in loads] == [[("P5", "create")]]
    assert [p.name for p in cli.out("reports/acks/resend-*.ack.xml")] == [
        "resend-2027-05-04-1.ack.xml"]
    sent = notices(cli.out("reports/RGT/notifications-resend-*.xml"))
    assert [(k, p) for k, p, _t in sent if k == "RESENT"] == [("RESENT", "P5")]
    assert [p for p in tmp_path.joinpath("outbox").rglob(".*") if p.is_file()] == []
    assert "resend would send: 1" in cli.ok("status")  # P6 only


@pytest.mark.parametrize(
    "crash", ["outputs-written:1", "committed:1", "published:1", "archived:1"])
def test_sigkill_during_a_confirmation_file_loses_nothing(tmp_path: Path, crash: str) -> None:
    """A confirmation file killed at each step of the commit: the next command finishes or
    redoes it; one TIS confirmation, one LOAD_FAILED, the register as R2/R3 say."""
    cli = Cli(tmp_path)
    load = setup_day_one(cli)
    text = b.confirmations("RGT", load, [
        b.confirmation("P1", number="APP-1"), b.confirmation("P2", "FAIL", message=ESR_SAYS)])
    path = tmp_path / "drop" / "conf.xml"
    path.write_text(text)
    killed = cli("process", "--as-of", "2027-05-02", str(path), crash=crash)
    assert killed.returncode == -signal.SIGKILL
    cli.ok("process", "--as-of", "2027-05-02", str(path))  # recovers the first, then a copy
    assert len(cli.out("tis/EOE/confirmations-RGT-conf-*.xml")) == 1
    assert [(k, p) for k, p, _t in notices(cli.out("reports/RGT/notifications-conf-*.xml"))
            ] == [("LOAD_FAILED", "P2")]
    acks = cli.out("reports/acks/conf*.ack.xml")
    assert sorted(assert_valid(a).get("status") or "" for a in acks) == [
        "duplicate", "processed"]
    assert esr_state(tmp_path, "P1")[:2] == ("in ESR", "APP-1")  # type: ignore[index]
    assert esr_state(tmp_path, "P2") == ("failed", None, None, ESR_SAYS)
    assert [p for p in tmp_path.joinpath("outbox").rglob(".*") if p.is_file()] == []
    cli.assert_no_personal_data_logged()


def test_requeue_takes_a_quarantined_file_through_the_pipeline_again(
    tmp_path: Path, store_url: str
) -> None:
    """requeue: a quarantined file corrected in place is processed, one left as it was is
    rejected again (not a duplicate: only processed content counts); the ledger links each new
    receipt to the one that quarantined the file; a file not in the quarantine is usage."""
    cli = Cli(tmp_path, store_url)
    cli.process("2027-05-01", "pos.xml", b.positions("RGT", [b.position(1, "1001", dpn=DPN_A)]))
    good = b.placements([b.placement("P1", dpn=DPN_A, start="2027-06-01", end="2027-12-01")])
    broken = good.replace("2027-12-01", "2027-13-01")
    for name in ("bad.xml", "worse.xml"):
        path = tmp_path / "drop" / name
        path.write_text(broken)
        assert cli("process", "--as-of", "2027-05-01", str(path)).returncode == 1
    quarantine = tmp_path / "var" / "quarantine"
    assert sorted(p.name for p in quarantine.iterdir()) == ["bad.xml", "worse.xml"]

    (quarantine / "bad.xml").write_text(good)  # the operator corrects it in place
    out = cli.ok("requeue", "--as-of", "2027-05-02", str(quarantine / "bad.xml"))
    assert "bad.xml: processed" in out
    acks = sorted(p.name for p in cli.out("reports/acks/bad*.ack.xml"))
    assert len(acks) == 2
    new_ack = next(a for a in acks if a != "bad.ack.xml")
    assert outcomes(cli.one(f"reports/acks/{new_ack}")) == [("P1", "loaded", None)]
    assert applicants(cli.one("esr/RGT/applicants-bad-*.xml")) == [("P1", "create")]
    assert sorted(p.name for p in quarantine.iterdir()) == ["worse.xml"]

    again = cli("requeue", "--all", "--as-of", "2027-05-02")
    assert again.returncode == 1, again.stdout + again.stderr
    assert "worse.xml: rejected" in again.stdout
    assert sorted(p.name for p in quarantine.iterdir()) == ["worse.xml"]

    assert cli("requeue", "--as-of", "2027-05-02", "nothere.xml").returncode == 2
    assert cli("requeue", str(tmp_path / "drop" / "bad.xml")).returncode == 2
    assert cli("requeue").returncode == 2

    store = open_store(config.load(tmp_path / "gateway.toml"))
    try:
        receipts = {name: [] for name in ("bad.xml", "worse.xml")}  # type: dict[str, list[int]]
        for rid, name, _status, _ack in store.receipts_since(0):
            if name in receipts:
                receipts[name].append(rid)
        links = {name: [store.requeued_from(rid) for rid in ids]
                 for name, ids in receipts.items()}
        statuses = [s for _r, n, s, _a in store.receipts_since(0) if n == "worse.xml"]
    finally:
        store.close()
    assert links["bad.xml"] == [None, receipts["bad.xml"][0]]
    assert links["worse.xml"] == [None, receipts["worse.xml"][0]]
    assert statuses == ["rejected", "rejected"]
    cli.assert_no_personal_data_logged()


def test_requeue_after_a_fault_was_cleared(tmp_path: Path) -> None:
    """requeue: a file quarantined PROCESSING_FAILED (it killed the process more often than
    retry_limit allows) goes through unchanged once the fault is gone, and is processed."""
    cli = Cli(tmp_path, extra="retry_limit = 1\n")
    cli.process("2027-05-01", "pos.xml", b.positions("RGT", [b.position(1, "1001", dpn=DPN_A)]))
    path = tmp_path / "drop" / "tis.xml"
    path.write_text(b.placements([
        b.placement("P1", dpn=DPN_A, start="2027-06-01", end="2027-12-01", person=ALEX)]))
    killed = cli("process", "--as-of", "2027-05-01", str(path), crash="attempt-started:1")
    assert killed.returncode == -signal.SIGKILL
    other = tmp_path / "drop" / "other.xml"
    other.write_text(b.positions("R1K", [b.position(9, "9001", dpn="EOE/R1K00/009/FY1/001")]))
    cli.ok("process", "--as-of", "2027-05-01", str(other))  # recovery gives the first one up
    ack = assert_valid(cli.one("reports/acks/tis.ack.xml"))
    assert ack.get("status") == "rejected"
    assert ack.find(f"{ACK}Error").get("code") == "PROCESSING_FAILED"  # type: ignore[union-attr]

    out = cli.ok("requeue", "--all", "--as-of", "2027-05-01")
    assert "tis.xml: processed" in out
    assert not list((tmp_path / "var" / "quarantine").iterdir())
    assert applicants(cli.one("esr/RGT/applicants-tis-*.xml")) == [("P1", "create")]
    cli.assert_no_personal_data_logged()


def test_the_daemon_takes_a_confirmation_from_inbox_esr(daemon: DaemonProcess) -> None:
    """A load confirmation dropped into inbox/esr is told from the extracts by its root
    element and processed by the daemon: TIS told, the MSO warned, nothing personal logged."""
    root = daemon.root
    cli = Cli(root)
    today = date.today()
    start, end = today + timedelta(days=30), today + timedelta(days=200)
    cli.process(today.isoformat(), "pos.xml", b.positions("RGT", [
        b.position(1, "1001", dpn=DPN_A)]))
    cli.process(today.isoformat(), "tis.xml", b.placements([
        b.placement("P1", dpn=DPN_A, start=start.isoformat(), end=end.isoformat(),
                    person=SAM)]))
    load = cli.one("esr/RGT/applicants-tis-*.xml").name
    inbox = root / "inbox" / "esr"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "apc.xml").write_text(b.confirmations("RGT", load, [
        b.confirmation("P1", "FAIL", message_type="ERROR", message=ESR_SAYS)]))
    daemon.start()
    wait_until(lambda: bool(cli.out("tis/EOE/confirmations-RGT-apc-*.xml")),
               what="the TIS confirmation")
    assert daemon.terminate() == 0
    assert tis_rows(cli.one("tis/EOE/confirmations-RGT-apc-*.xml")) == [
        ("P1", "FAILED", None, ESR_SAYS)]
    assert [(k, p) for k, p, _t in notices(cli.out("reports/RGT/notifications-apc-*.xml"))
            ] == [("LOAD_FAILED", "P1")]
    logged = "\n".join(str(e) for e in daemon.logs())
    assert any(e.get("event") == "file.processed" and e.get("file") == "apc.xml"
               for e in daemon.logs())
    for secret in PERSONAL:
        assert secret not in logged, f"personal data in logs: {secret}"
