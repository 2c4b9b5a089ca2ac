"""Crash safety: SIGKILL the real daemon at every step of the commit protocol, mid-batch."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from lxml import etree

from tests import builders as b
from tests.conftest import write_config
from tests.daemon import DaemonProcess, start_with_the_rotation_post, wait_until
from tests.xsdcheck import assert_all_valid

N = 200
NOTE = "{urn:dit-gateway:notifications:1}Notification"
POST = "{urn:dit-gateway:tis:position-extract:1}Post"
CRASHES = [
    "claim-recorded:10",   # the receipt written, the file not yet moved into var/processing/
    "claimed:15",          # moved into var/processing/, not yet hashed and marked claimed
    "outputs-written:30",  # outputs written under temporary names, ledger not committed
    "committed:25",        # ledger committed, outputs not yet renamed into place
    "published:40",        # outputs in place but the ack, input not yet archived
    "archived:20",         # input archived, its ack not yet in place
    "outputs-written:1",   # straight after a restart's recovery
]


def dpn(i: int) -> str:
    """The DPN carried by file ``i``'s one position."""
    return f"EOE/RGT00/{i:03d}/FY1/001"


def test_sigkill_at_each_commit_step_loses_nothing_and_repeats_nothing(
    daemon: DaemonProcess,
) -> None:
    """Killed seven times across a 200-file batch, the daemon ends with every file acknowledged
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
    acks = start_with_the_rotation_post(daemon)
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


def test_the_acknowledgement_is_the_last_thing_a_file_leaves(tmp_path: Path) -> None:
    """Spec 3: outputs published, the input archived, then the acknowledgement. Killed after the
    outputs, and (while recovering) after the archive, no acknowledgement is there yet; once it
    is, the input is in the archive and nothing is left in ``var/processing/``."""
    config = write_config(tmp_path)
    acks = tmp_path / "outbox" / "reports" / "acks"
    archive = tmp_path / "var" / "archive"
    processing = tmp_path / "var" / "processing"
    drops = []
    for i in range(2):
        drops.append(tmp_path / f"pos{i}.xml")
        drops[i].write_text(b.positions("RGT", [b.position(i + 1, dpn=dpn(i))], kind="delta"))

    def process(path: Path, crash: str | None = None) -> int:
        env = {**os.environ, "DIT_GATEWAY_CRASH_AT": crash} if crash else None
        return subprocess.run(
            [sys.executable, "-m", "gateway", "process", "--config", str(config),
             "--as-of", "2026-11-02", str(path)],
            capture_output=True, env=env, check=False).returncode

    def files(folder: Path) -> list[str]:  # published: not the temporary dot-names
        return sorted(p.name for p in folder.rglob("[!.]*") if p.is_file())

    assert process(drops[0], "published:1") == -signal.SIGKILL
    assert [p.name for p in (tmp_path / "outbox" / "reports" / "RGT").glob("*.xml")] != []
    assert files(acks) == []
    assert files(processing) == ["1-pos0.xml"]  # copied in under its receipt
    assert files(archive) == []

    assert process(drops[1], "archived:1") == -signal.SIGKILL  # in the recovery of pos0
    assert files(acks) == []
    assert files(processing) == []
    assert files(archive) == ["pos0.xml"]

    assert process(drops[1]) == 0
    assert files(acks) == ["pos0.ack.xml", "pos1.ack.xml"]
    assert files(archive) == ["pos0.xml", "pos1.xml"]
    assert files(processing) == []
    assert [p for p in tmp_path.rglob(".*") if p.is_file()] == []


def test_an_output_lost_after_the_commit_holds_the_acknowledgement_back(tmp_path: Path) -> None:
    """Killed after the commit, then an output's temporary file removed by something else: the
    next run says so (``recovery.output_lost``) and publishes no acknowledgement for a file
    whose outputs are not all there; the input stays in ``var/processing/``."""
    config = write_config(tmp_path)
    drop = tmp_path / "pos.xml"
    drop.write_text(b.positions("RGT", [b.position(1, dpn=dpn(0))], kind="delta"))
    command = [sys.executable, "-m", "gateway", "process", "--config", str(config),
               "--as-of", "2026-11-02", str(drop)]
    killed = subprocess.run(command, capture_output=True, check=False,
                            env={**os.environ, "DIT_GATEWAY_CRASH_AT": "committed:1"})
    assert killed.returncode == -signal.SIGKILL
    temps = sorted((tmp_path / "outbox").rglob(".*.tmp"))
    lost = [t for t in temps if "notifications" in t.name]
    assert lost != []
    assert any(t.name.startswith(".pos.ack.xml") for t in temps)
    lost[0].unlink()
    again = subprocess.run(command, capture_output=True, text=True, check=False)
    events = [json.loads(line)["event"] for line in again.stderr.splitlines()
              if line.startswith("{")]
    assert "recovery.output_lost" in events
    assert list((tmp_path / "outbox" / "reports" / "acks").glob("pos.ack.xml")) == []
    assert sorted(p.name for p in (tmp_path / "var" / "processing").rglob("*.xml")) == [
        "1-pos.xml"]


def test_a_claimed_copy_removed_by_hand_is_quarantined_at_once(tmp_path: Path) -> None:
    """``process`` killed once its attempt began, then the file's copy deleted from
    ``var/processing/`` (by hand, or a restore without it): the next ``process`` says so in
    one acknowledgement (PROCESSING_FAILED, send it again) and goes on to its own FILE, exit 0.
    Before, every run failed on it with a raw FileNotFoundError until retry_limit runs had."""
    config = write_config(tmp_path)
    lost, mine = tmp_path / "lost.xml", tmp_path / "mine.xml"
    lost.write_text(b.positions("RGT", [b.position(1, dpn=dpn(1))]))
    mine.write_text(b.positions("RGT", [b.position(2, dpn=dpn(2))], kind="delta"))
    command = [sys.executable, "-m", "gateway", "process", "--config", str(config),
               "--as-of", "2026-11-02"]
    killed = subprocess.run([*command, str(lost)], capture_output=True, check=False,
                            env={**os.environ, "DIT_GATEWAY_CRASH_AT": "attempt-started"})
    assert killed.returncode == -signal.SIGKILL
    (copy,) = [p for p in (tmp_path / "var" / "processing").rglob("*") if p.is_file()]
    copy.unlink()
    result = subprocess.run([*command, str(mine)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.splitlines() == [
        f"{mine}: processed ({tmp_path}/outbox/reports/acks/mine.ack.xml)"]
    ack = etree.parse(str(tmp_path / "outbox" / "reports" / "acks" / "lost.ack.xml")).getroot()
    assert ack.get("status") == "rejected"
    errors = ack.findall("{urn:dit-gateway:ack:1}Error")
    assert [e.get("code") for e in errors] == ["PROCESSING_FAILED"]
    assert "send it again" in (errors[0].text or "")
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [e["file"] for e in logged if e["event"] == "file.quarantined"] == ["lost.xml"]
