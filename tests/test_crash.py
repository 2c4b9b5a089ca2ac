"""Crash safety: SIGKILL the real daemon at every step of the commit protocol, mid-batch."""

from __future__ import annotations

import signal
import sqlite3

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
