"""Crash safety: SIGKILL the real daemon at every step of the commit protocol, mid-batch."""

from __future__ import annotations

import signal
import sqlite3
from datetime import date, timedelta

from lxml import etree

from tests import builders as b
from tests.daemon import DaemonProcess, wait_until
from tests.xsdcheck import assert_all_valid

N = 200
NOTE = "{urn:dit-gateway:notifications:1}Notification"
POST = "{urn:dit-gateway:tis:position-extract:1}Post"
CRASHES = [
    "claim-recorded:10",   # the receipt written, the file not yet moved into var/processing/
    "claimed:15",          # moved into var/processing/, not yet hashed and marked claimed
    "outputs-written:30",  # outputs fsynced under temporary names, ledger not committed
    "committed:25",        # ledger committed, outputs not yet renamed into place
    "published:40",        # outputs in place, input not yet archived
    "outputs-written:1",   # straight after a restart's recovery
]


def dpn(i: int) -> str:
    """The DPN carried by file ``i``'s one position."""
    return f"EOE/RGT00/{i:03d}/FY1/001"


def test_sigkill_at_each_commit_step_loses_nothing_and_repeats_nothing(
    daemon: DaemonProcess,
) -> None:
    """Killed six times across a 200-file batch, the daemon ends with every file acknowledged
    exactly once, every output whole and valid, and none written twice."""
    root = daemon.root
    inbox = root / "inbox" / "esr"
    inbox.mkdir(parents=True)
    for i in range(N):
        text = b.positions("RGT", [b.position(i + 1, dpn=dpn(i))], kind="delta")
        (inbox / f"pos{i:03d}.xml").write_text(text)

    for crash in CRASHES:
        daemon.start(DIT_GATEWAY_CRASH_AT=crash)
        assert daemon.wait(timeout=120) == -signal.SIGKILL, f"did not crash at {crash}"

    daemon.start()
    acks = root / "outbox" / "reports" / "acks"
    wait_until(lambda: len(list(acks.glob("*.ack.xml"))) >= N, timeout=120, what="all acks")
    assert daemon.terminate() == 0

    assert sorted(p.name for p in acks.iterdir()) == [f"pos{i:03d}.ack.xml" for i in range(N)]
    for path in acks.iterdir():
        assert etree.parse(str(path)).getroot().get("status") == "processed", path.name

    leftovers = [p for p in root.rglob(".*") if p.is_file()]
    assert leftovers == [], "temporary files left behind"
    assert [p for p in (root / "var" / "processing").rglob("*") if p.is_file()] == []
    assert len(list((root / "var" / "archive").rglob("pos*.xml"))) == N

    notifications = sorted((root / "outbox" / "reports" / "RGT").glob("notifications-*.xml"))
    assert len(notifications) == N
    seen = []
    for path in notifications:
        rows = etree.parse(str(path)).getroot().findall(NOTE)
        assert [r.get("type") for r in rows] == ["NEW_DPN"], path.name
        seen.append(rows[0].get("deaneryPostNumber"))
    assert sorted(seen) == [dpn(i) for i in range(N)]

    extract = root / "outbox" / "tis" / "EOE" / "positions-RGT-2026-11-02.xml"
    posts = etree.parse(str(extract)).getroot().findall(POST)
    assert len(posts) == N

    with sqlite3.connect(root / "var" / "gateway.db") as db:
        rows = db.execute("SELECT status, COUNT(*) FROM receipts GROUP BY status").fetchall()
        pending = db.execute("SELECT COUNT(*) FROM pending_outputs").fetchone()[0]
    db.close()
    assert rows == [("processed", N)]
    assert pending == 0
    assert assert_all_valid(root / "outbox") == N + N + 1  # acks, notifications, extract
    events = [e["event"] for e in daemon.logs()]
    assert events.count("daemon.stopped") == 1


def test_sigkill_in_the_middle_of_a_streamed_placement_file(daemon: DaemonProcess) -> None:
    """A 10,000-placement file is decided as it is read, 2,000 at a time, in one transaction:
    SIGKILLed once the outputs of its first windows are appended to their temporary files
    (their state written into the open transaction), the restarted daemon decides it again
    from the start — every placement sent exactly once, no temporary file left, nothing
    published twice."""
    root = daemon.root
    (root / "inbox" / "esr").mkdir(parents=True)
    (root / "inbox" / "tis").mkdir(parents=True)
    (root / "inbox" / "esr" / "pos.xml").write_text(b.rotation_post())
    acks = root / "outbox" / "reports" / "acks"
    daemon.start()
    wait_until((acks / "pos.ack.xml").exists, timeout=60, what="the positions")
    assert daemon.terminate() == 0

    count = 10_000  # outputs of more than Staging.LIMIT (8 MiB): appended before the end
    (root / "inbox" / "tis" / "rotation.xml").write_text(
        b.rotation(count, date.today() + timedelta(days=60)))
    daemon.start(DIT_GATEWAY_CRASH_AT="staging-flushed")
    assert daemon.wait(timeout=120) == -signal.SIGKILL
    assert not (acks / "rotation.ack.xml").exists()
    assert list((root / "outbox" / "esr").rglob("applicants-*.xml")) == []
    assert list((root / "outbox").rglob(".applicants-*.tmp")) != []  # half written, unpublished

    daemon.start()
    wait_until((acks / "rotation.ack.xml").exists, timeout=120, what="the ack")
    assert daemon.terminate() == 0
    ack = etree.parse(str(acks / "rotation.ack.xml")).getroot()
    totals = ack.find("{urn:dit-gateway:ack:1}Totals")
    assert totals is not None
    assert (totals.get("received"), totals.get("loaded")) == (str(count), str(count))
    sent = [a.get("placementId") for path in (root / "outbox" / "esr").rglob("applicants-*.xml")
            for a in etree.parse(str(path)).getroot()]
    assert sorted(sent) == [f"P{i:04d}" for i in range(count)]  # each once
    assert [p for p in root.rglob(".*") if p.is_file()] == []
    with sqlite3.connect(root / "var" / "gateway.db") as db:
        records = db.execute("SELECT COUNT(*), COUNT(DISTINCT placement_id) FROM load_records"
                             ).fetchone()
        statuses = db.execute("SELECT status FROM receipts ORDER BY id").fetchall()
    db.close()
    assert records == (count, count)
    assert statuses == [("processed",), ("processed",)]
