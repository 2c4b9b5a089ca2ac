"""Exactly once, whatever else is running: a daemon with an operator's ``process`` beside it, two
daemons, SIGKILL at random moments — real processes on one ``var/`` and one SQLite file."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from lxml import etree

from tests import builders as b
from tests.daemon import DaemonProcess, wait_until

ACK = "{urn:dit-gateway:ack:1}"
APPLICANT = "{urn:dit-gateway:esr:applicant-load:1}Applicant"
NOTE = "{urn:dit-gateway:notifications:1}Notification"


def cli(root: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m gateway <args> --config <config>`` in ``root``."""
    command, *rest = args
    return subprocess.run(
        [sys.executable, "-m", "gateway", command, "--config", str(config), *rest],
        capture_output=True, text=True, check=False, cwd=root, timeout=600,
    )


def cli_background(root: Path, config: Path, *args: str) -> subprocess.Popen[str]:
    """The same, started and left running."""
    command, *rest = args
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", command, "--config", str(config), *rest],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root,
    )


def vpd(i: int) -> str:
    """A VPD of its own for file ``i``, so that every file has an extract of its own."""
    return f"V{i:03d}"


def extract_text(i: int) -> str:
    """An ESR position extract with one position, for VPD ``vpd(i)``."""
    return b.positions(vpd(i), [b.position(i + 1, dpn=f"EOE/{vpd(i)}/{i:03d}/FY1/001")])


def ack_files(root: Path) -> list[Path]:
    """Published acknowledgements."""
    folder = root / "outbox" / "reports" / "acks"
    return sorted(folder.glob("*.ack.xml")) if folder.is_dir() else []


def ledger(root: Path) -> list[tuple[str, str]]:
    """(name, status) of every receipt."""
    with sqlite3.connect(root / "var" / "gateway.db") as db:
        rows = db.execute("SELECT name, status FROM receipts ORDER BY name").fetchall()
    db.close()
    return [(str(n), str(s)) for n, s in rows]


def assert_each_processed_once(root: Path, names: list[str]) -> None:
    """Every file has one ack saying ``processed``, one ledger row, one extract, one notice;
    nothing is left in processing, pending or temporary."""
    acks = ack_files(root)
    assert sorted(p.name for p in acks) == sorted(f"{n}.ack.xml" for n in names)
    for path in acks:
        assert etree.parse(str(path)).getroot().get("status") == "processed", path.name
    assert ledger(root) == sorted((f"{n}.xml", "processed") for n in names)
    extracts = list((root / "outbox" / "tis" / "EOE").glob("positions-*.xml"))
    assert len(extracts) == len(names)
    notices = list((root / "outbox" / "reports").glob("V*/notifications-*.xml"))
    assert len(notices) == len(names)
    for path in notices:
        rows = etree.parse(str(path)).getroot().findall(NOTE)
        assert [r.get("type") for r in rows] == ["NEW_DPN"], path.name
    assert [p for p in root.rglob(".*") if p.is_file()] == [], "temporary files left behind"
    assert [p for p in (root / "var" / "processing").rglob("*") if p.is_file()] == []
    with sqlite3.connect(root / "var" / "gateway.db") as db:
        assert db.execute("SELECT COUNT(*) FROM pending_outputs").fetchone()[0] == 0
    db.close()


def test_process_while_the_daemon_works_through_a_flood(daemon: DaemonProcess) -> None:
    """An operator's ``process`` of 10 files while the daemon works through 800: 810 acks, each
    ``processed`` once, 810 extracts — ``process`` takes nothing the daemon holds."""
    root = daemon.root
    inbox = root / "inbox" / "esr"
    inbox.mkdir(parents=True)
    for i in range(800):
        (inbox / f"pos{i:03d}.xml").write_text(extract_text(i))
    drop = root / "drop"
    drop.mkdir()
    extra = [drop / f"op{i}.xml" for i in range(800, 810)]
    for i, path in zip(range(800, 810), extra, strict=True):
        path.write_text(extract_text(i))
    daemon.start()
    wait_until(lambda: len(ack_files(root)) >= 30, timeout=120, what="the daemon under way")
    result = cli(root, daemon.config, "process", *map(str, extra))
    assert result.returncode == 0, result.stderr
    assert len(ack_files(root)) < 800, "process should have run while the daemon was busy"
    wait_until(lambda: len(ack_files(root)) >= 810, timeout=400, what="810 acks")
    assert daemon.terminate() == 0
    names = [f"pos{i:03d}" for i in range(800)] + [p.stem for p in extra]
    assert_each_processed_once(root, names)


def test_two_daemons_started_at_once_one_refuses_clearly(tmp_path: Path) -> None:
    """Two ``run`` on one ``var/`` and a new database: one refuses with one clear line and exit
    2 (no ``table already exists``), the other works."""
    from tests.conftest import write_config  # noqa: PLC0415

    config = write_config(tmp_path)
    first = DaemonProcess(tmp_path, config)
    second = DaemonProcess(tmp_path, config)
    second.log_path = tmp_path / "daemon2.log"
    try:
        first.start()
        second.start()
        deadline = time.monotonic() + 60
        while first.alive and second.alive and time.monotonic() < deadline:
            time.sleep(0.05)
        refused, running = (first, second) if not first.alive else (second, first)
        assert refused.wait(10) == 2
        lines = refused.log_path.read_text().strip().splitlines()
        assert lines[-1].startswith("error: another dit-gateway run (pid ")
        assert "already exists" not in refused.log_path.read_text()
        inbox = tmp_path / "inbox" / "esr"
        wait_until(inbox.is_dir, what="inbox")
        (inbox / "pos.xml").write_text(extract_text(1))
        wait_until(lambda: len(ack_files(tmp_path)) == 1, what="the running daemon's ack")
        assert running.terminate() == 0
    finally:
        first.kill()
        second.kill()


def test_one_placement_in_120_files_never_creates_twice(daemon: DaemonProcess) -> None:
    """One placement sent in 120 files, 60 to the daemon's inbox and 60 through two operators'
    ``process`` at the same time: exactly one ``create`` ever goes to ESR."""
    root = daemon.root
    config = daemon.config
    positions = root / "positions.xml"
    positions.write_text(b.positions("RGT", [b.position(1)]))
    assert cli(root, config, "process", str(positions)).returncode == 0
    start = date.today() + timedelta(days=30)

    def placement_file(i: int) -> str:
        end = start + timedelta(days=180 + i)
        return b.placements([b.placement("P1", start=start.isoformat(), end=end.isoformat())])

    drop = root / "drop"
    drop.mkdir()
    batches: list[list[str]] = [[], []]
    for i in range(60):
        path = drop / f"op{i:03d}.xml"
        path.write_text(placement_file(i))
        batches[i % 2].append(str(path))
    inbox = root / "inbox" / "tis"
    inbox.mkdir(parents=True)
    daemon.start()
    for i in range(60, 120):
        (inbox / f"tis{i:03d}.xml").write_text(placement_file(i))
    operators = [cli_background(root, config, "process", *batch) for batch in batches]
    for operator in operators:
        _out, err = operator.communicate(timeout=600)
        assert operator.returncode == 0, err
    wait_until(lambda: len(ack_files(root)) >= 121, timeout=300, what="121 acks")
    assert daemon.terminate() == 0
    actions = []
    for load in (root / "outbox" / "esr" / "RGT").glob("applicants-*.xml"):
        actions += [a.get("action") for a in etree.parse(str(load)).getroot().iter(APPLICANT)]
    assert actions.count("create") == 1
    assert set(actions) <= {"create", "update"}
    assert all(status == "processed" for _name, status in ledger(root))


def test_sigkill_ten_times_at_random_moments_with_process_alongside(
    daemon: DaemonProcess,
) -> None:
    """The daemon SIGKILLed 10 times at random moments in a 500-file batch (each after a random
    5 to 40 more acknowledgements), with an operator's ``process`` of 20 files running
    alongside: every file acknowledged exactly once, no output missing or doubled."""
    rng = random.Random(20261122)
    root = daemon.root
    inbox = root / "inbox" / "esr"
    inbox.mkdir(parents=True)
    for i in range(500):
        (inbox / f"pos{i:03d}.xml").write_text(extract_text(i))
    drop = root / "drop"
    drop.mkdir()
    extra = [drop / f"op{i}.xml" for i in range(500, 520)]
    for i, path in zip(range(500, 520), extra, strict=True):
        path.write_text(extract_text(i))
    daemon.start()
    operator = cli_background(root, daemon.config, "process", *map(str, extra))
    for _ in range(10):
        target = len(ack_files(root)) + rng.randint(5, 40)
        wait_until(lambda t=target: len(ack_files(root)) >= t, timeout=120, what="progress")  # type: ignore[misc]
        assert daemon.proc is not None
        daemon.proc.kill()
        daemon.wait(30)
        daemon.start()
    _out, err = operator.communicate(timeout=600)
    assert operator.returncode == 0, err
    wait_until(lambda: len(ack_files(root)) >= 520, timeout=400, what="520 acks")
    assert daemon.terminate() == 0
    assert_each_processed_once(root, [f"pos{i:03d}" for i in range(500)] + [p.stem for p in extra])
