"""The real daemon (``dit-gateway run`` in a subprocess) taking files as partners drop them."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from lxml import etree

from gateway import reading
from tests import builders as b
from tests.conftest import write_config
from tests.daemon import DaemonProcess, children, start_with_the_rotation_post, wait_until
from tests.xsdcheck import assert_all_valid, assert_valid

ACK = "{urn:dit-gateway:ack:1}"


def acks(root: Path) -> list[str]:
    """Names of the acknowledgements published so far."""
    folder = root / "outbox" / "reports" / "acks"
    return sorted(p.name for p in folder.glob("*.ack.xml")) if folder.is_dir() else []


@pytest.mark.parametrize("polling", [False, True], ids=["inotify observer", "polling observer"])
def test_daemon_takes_dropped_files_and_stops_cleanly(
    daemon: DaemonProcess, polling: bool
) -> None:
    """Files dropped whole, slowly in chunks, and under a temp name then renamed are each taken
    once complete, acknowledged, and the daemon stops on SIGTERM with exit 0 (with inotify and
    with the polling observer used for network shares)."""
    root = daemon.root
    inbox = root / "inbox" / "esr"
    if polling:
        config = daemon.config.read_text()
        polled = config.replace("[intake]\n", "[intake]\npolling_observer = true\n")
        daemon.config.write_text(polled)
    daemon.start()
    wait_until(inbox.is_dir, what="inbox folders")

    (inbox / "whole.xml").write_text(b.positions("RGT", [b.position(1)]))

    slow = b.positions("R1K", [b.position(i, dpn=f"LDN/R1K/{i}") for i in range(1, 40)]).encode()
    with (inbox / "slow.xml").open("wb") as fh:
        for start in range(0, len(slow), len(slow) // 6 + 1):
            fh.write(slow[start : start + len(slow) // 6 + 1])
            fh.flush()
            time.sleep(0.3)
            assert "slow.ack.xml" not in acks(root), "taken before it was complete"

    temp = inbox / "renamed.xml.part"
    temp.write_text(b.positions("RDE", [b.position(7, dpn="EOE/RDE/7")]))
    time.sleep(1.5)
    assert "renamed.xml.ack.xml" not in acks(root)
    assert "renamed.ack.xml" not in acks(root)
    temp.rename(inbox / "renamed.xml")

    wait_until(lambda: len(acks(root)) == 3, what="three acknowledgements")
    assert acks(root) == ["renamed.ack.xml", "slow.ack.xml", "whole.ack.xml"]
    for name in acks(root):
        ack = assert_valid(root / "outbox" / "reports" / "acks" / name)
        assert ack.get("status") == "processed"
    slow_ack = etree.parse(str(root / "outbox/reports/acks/slow.ack.xml")).getroot()
    assert slow_ack.find(f"{ACK}Totals").get("received") == "39"  # type: ignore[union-attr]

    assert daemon.terminate() == 0
    assert list((root / "var" / "processing").rglob("*")) == [
        p for p in (root / "var" / "processing").rglob("*") if p.is_dir()
    ]
    assert assert_all_valid(root / "outbox") >= 6
    events = [e["event"] for e in daemon.logs()]
    assert "daemon.stopped" in events


def test_daemon_duplicate_drop_gets_duplicate_ack(daemon: DaemonProcess) -> None:
    """The same bytes dropped twice: a duplicate acknowledgement and no new output."""
    root = daemon.root
    daemon.start()
    inbox = root / "inbox" / "esr"
    wait_until(inbox.is_dir, what="inbox folders")
    text = b.positions("RGT", [b.position(1)])
    (inbox / "a.xml").write_text(text)
    wait_until(lambda: acks(root) == ["a.ack.xml"], what="first ack")
    outputs = sorted(p for p in (root / "outbox").rglob("*") if p.is_file())
    (inbox / "b.xml").write_text(text)
    wait_until(lambda: "b.ack.xml" in acks(root), what="duplicate ack")
    ack = assert_valid(root / "outbox" / "reports" / "acks" / "b.ack.xml")
    assert ack.get("status") == "duplicate"
    after = sorted(p for p in (root / "outbox").rglob("*") if p.is_file())
    assert [p.name for p in after if p not in outputs] == ["b.ack.xml"]
    assert daemon.terminate() == 0


def test_a_file_whose_name_is_not_utf8_is_taken_from_the_inbox(daemon: DaemonProcess) -> None:
    """A partner's file named with bytes that are not UTF-8: the daemon takes it, once, and
    acknowledges it under a safe name; no ``file.claim_failed``. Before, every claim failed
    on the store's UTF-8 and the file stayed in the inbox."""
    root = daemon.root
    daemon.start()
    inbox = root / "inbox" / "esr"
    wait_until(inbox.is_dir, what="inbox folders")
    dropped = Path(os.fsdecode(bytes(inbox) + b"/extract-\xe9t\xe9.xml"))
    dropped.write_text(b.positions("RGT", [b.position(1)]))
    wait_until(lambda: acks(root) == ["extract-_xe9t_xe9.ack.xml"], what="its ack")
    assert not dropped.exists()
    assert not any(e["event"] == "file.claim_failed" for e in daemon.logs())
    assert daemon.terminate() == 0


def test_files_found_together_are_parsed_ahead_by_a_reader_that_ends_with_the_batch(
    daemon: DaemonProcess,
) -> None:
    """A night's extracts, all in the inbox when the daemon looks: each is acknowledged as
    processed, in order; with a second core, a reader process was given the files after the
    first (``lookahead.ended``, once for the batch), and it is gone once the batch is done."""
    root = daemon.root
    inbox = root / "inbox" / "esr"
    inbox.mkdir(parents=True)
    names = [f"positions-{n:02d}.xml" for n in range(12)]
    for n, name in enumerate(names):
        (inbox / name).write_text(b.positions(f"R{n:02d}", [
            b.position(100 * n + i, dpn=f"EOE/R{n:02d}/{i:03d}/FY1/001") for i in range(1, 40)
        ]))
    daemon.start()
    wait_until(lambda: len(acks(root)) == len(names), what="every acknowledgement")
    for name in names:
        ack = assert_valid(root / "outbox" / "reports" / "acks" / name.replace(".xml", ".ack.xml"))
        assert ack.get("status") == "processed"
    assert daemon.proc is not None
    assert_no_children = lambda: not children(daemon.proc.pid)  # noqa: E731
    wait_until(assert_no_children, what="the reader process to end with the batch")
    ended = [e for e in daemon.logs() if e["event"] == "lookahead.ended"]
    if reading.cores() > 1:
        assert len(ended) == 1
        assert 1 <= ended[0]["asked"] <= len(names) - 1
        assert 0 <= ended[0]["used"] <= ended[0]["asked"]
    else:
        assert ended == []
    assert daemon.terminate() == 0


def test_a_blocked_output_folder_pauses_intake_and_is_never_counted_against_the_file(
    daemon: DaemonProcess,
) -> None:
    """A folder the gateway cannot write (here: a file stands where outbox/tis/ should be) is
    the machine's fault: intake pauses with one log event, the file is retried without being
    counted (never quarantined, even past retry_limit), and is processed once the fault clears."""
    root = daemon.root
    config = daemon.config.read_text()
    daemon.config.write_text(config.replace("[intake]\n", "[intake]\nretry_limit = 1\n"))
    (root / "outbox").mkdir()
    blocker = root / "outbox" / "tis"
    blocker.write_text("not a folder")  # a real fault: mkdir fails
    daemon.start()
    inbox = root / "inbox" / "esr"
    wait_until(inbox.is_dir, what="inbox folders")
    (inbox / "pos.xml").write_text(b.positions("RGT", [b.position(1)]))
    wait_until(lambda: any(e["event"] == "intake.paused" for e in daemon.logs()), what="pause")
    # Retries at 0.2, 0.4, 0.8, 1.6 s: several pass while we look (absence takes time to show).
    time.sleep(3)
    assert acks(root) == []

    def attempts() -> list[tuple[int]]:
        with sqlite3.connect(root / "var" / "gateway.db") as db:
            rows = db.execute("SELECT attempts FROM receipts").fetchall()
        db.close()
        return rows

    # An attempt in flight is counted until its failure gives it back: between two retries
    # the count is 0 again (counted, it would stay at 1 and more, and the file be quarantined).
    wait_until(lambda: attempts() == [(0,)], what="no attempt counted")
    assert acks(root) == []
    blocker.unlink()
    wait_until(lambda: acks(root) == ["pos.ack.xml"], what="ack after the fault cleared")
    ack = assert_valid(root / "outbox" / "reports" / "acks" / "pos.ack.xml")
    assert ack.get("status") == "processed"
    assert (root / "outbox" / "tis" / "EOE" / "positions-RGT-2026-11-02.xml").exists()
    assert daemon.terminate() == 0
    events = [e["event"] for e in daemon.logs()]
    assert events.count("intake.paused") == 1
    assert events.count("intake.resumed") == 1
    assert "file.retry" not in events


def test_a_file_that_kills_the_process_is_quarantined_after_retry_limit_starts(
    daemon: DaemonProcess,
) -> None:
    """Attempts are counted in the store before the work: a file that takes the daemon down
    every time is quarantined (PROCESSING_FAILED) at the start after retry_limit, not looped."""
    root = daemon.root
    config = daemon.config.read_text()
    daemon.config.write_text(config.replace("[intake]\n", "[intake]\nretry_limit = 2\n"))
    inbox = root / "inbox" / "esr"
    inbox.mkdir(parents=True)
    (inbox / "pos.xml").write_text(b.positions("RGT", [b.position(1)]))
    for _ in range(2):
        daemon.start(DIT_GATEWAY_CRASH_AT="attempt-started:1")
        assert daemon.wait(timeout=60) == -signal.SIGKILL
    daemon.start()
    wait_until(lambda: acks(root) == ["pos.ack.xml"], what="the give-up ack")
    ack = assert_valid(root / "outbox" / "reports" / "acks" / "pos.ack.xml")
    assert ack.get("status") == "rejected"
    assert ack.find(f"{ACK}Error").get("code") == "PROCESSING_FAILED"  # type: ignore[union-attr]
    assert (root / "var" / "quarantine" / "pos.xml").exists()
    assert not (root / "outbox" / "tis").exists()
    assert daemon.terminate() == 0


def test_run_on_embedded_defaults_uses_local_folders(tmp_path: Path) -> None:
    """The README's run command: ``dit-gateway run`` with the committed config in a checkout
    watches ./inbox and writes ./outbox, with SQLite in ./var."""
    repo = Path(__file__).resolve().parent.parent
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "gateway.toml").write_text(
        (repo / "config" / "gateway.toml").read_text().replace(
            "settle_seconds   = 2.0", "settle_seconds   = 0.3"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run"], cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        inbox = tmp_path / "inbox" / "esr"
        wait_until(inbox.is_dir, what="./inbox/esr")
        (inbox / "pos.xml").write_text(b.positions("RGT", [b.position(1)]))
        wait_until(lambda: acks(tmp_path) == ["pos.ack.xml"], what="./outbox ack")
        assert (tmp_path / "var" / "gateway.db").is_file()
        assert (tmp_path / "outbox" / "tis" / "EOE" / "positions-RGT-2026-11-02.xml").is_file()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def test_symlink_dropped_in_the_inbox_is_never_followed(daemon: DaemonProcess) -> None:
    """A symbolic link in an inbox (it could point at any file) is left alone, never read."""
    root = daemon.root
    secret = root / "secret.xml"
    secret.write_text(b.positions("RGT", [b.position(1)]))
    daemon.start()
    inbox = root / "inbox" / "esr"
    wait_until(inbox.is_dir, what="inbox folders")
    (inbox / "link.xml").symlink_to(secret)
    (inbox / "real.xml").write_text(b.positions("R1K", [b.position(2, dpn="LDN/R1K/2")]))
    wait_until(lambda: acks(root) == ["real.ack.xml"], what="the real file's ack")
    time.sleep(1.5)
    assert acks(root) == ["real.ack.xml"]
    assert (inbox / "link.xml").is_symlink()
    assert any(e["event"] == "intake.refused" for e in daemon.logs())
    assert daemon.terminate() == 0


# Run as a script before ``python -m gateway run …`` (:class:`DaemonProcess`'s prefix): the
# real daemon, the first hash of a file being claimed failing as a disk's read error would.
_CLAIM_READ_ERROR = """
import errno, sys
from gateway import cli
from gateway.transport import files

real = files.sha256_of_fd
failed = []


def sha256_of_fd(fd):
    if not failed and sys._getframe(1).f_code.co_name == "claim":
        failed.append(fd)
        raise OSError(errno.EIO, "Input/output error")
    return real(fd)


files.sha256_of_fd = sha256_of_fd
sys.argv = ["gateway", *sys.argv[sys.argv.index("run"):]]
cli.main()
"""


def test_an_unforeseen_fault_while_claiming_does_not_stop_the_daemon(tmp_path: Path) -> None:
    """A claim failing with an error the gateway has no name for (here a read error, ``EIO``,
    after the file was moved into ``var/processing/``) is logged as ``file.claim_failed`` and
    the daemon goes on: its next sweep finishes the half-done claim, and the file is processed
    once. Before, the error left the loop and stopped the daemon."""
    daemon = DaemonProcess(tmp_path, write_config(tmp_path),
                           prefix=(sys.executable, "-c", _CLAIM_READ_ERROR))
    inbox = tmp_path / "inbox" / "esr"
    inbox.mkdir(parents=True)
    daemon.start()
    try:
        wait_until(lambda: any(e["event"] == "intake.started" for e in daemon.logs()),
                   what="intake")
        (inbox / "pos.xml").write_text(b.positions("RGT", [b.position(1)]))
        wait_until(lambda: acks(tmp_path) == ["pos.ack.xml"], timeout=60, what="the ack")
        failed = [e for e in daemon.logs() if e["event"] == "file.claim_failed"]
        assert [(e["file"], e["error"]) for e in failed] == [("pos.xml", "OSError")]
        assert daemon.alive
        ack = assert_valid(tmp_path / "outbox" / "reports" / "acks" / "pos.ack.xml")
        assert ack.get("status") == "processed"
        assert daemon.terminate() == 0
        processed = [e for e in daemon.logs() if e["event"] == "file.processed"]
        assert [e["file"] for e in processed] == ["pos.xml"]
        assert not inbox.joinpath("pos.xml").exists()
    finally:
        daemon.kill()


# Run as a script before ``python -m gateway run …``: the real daemon, killed (SIGKILL) in the
# middle of a claim across file systems: the inbound file parked under its hidden name, the
# copy not yet made.
_KILLED_MID_COPY = """
import os, signal, sys
from gateway import cli
from gateway.transport import files


def take(fd, source, target, hidden):
    os.rename(source, hidden)
    os.kill(os.getpid(), signal.SIGKILL)


files.take = take
sys.argv = ["gateway", *sys.argv[sys.argv.index("run"):]]
cli.main()
"""


def test_a_claim_killed_mid_copy_gives_a_name_that_is_not_utf8_back(tmp_path: Path) -> None:
    """The daemon killed while copying a file across file systems, the file parked under its
    hidden name: at the next start the file is put back under its own name (bytes that are
    not UTF-8 included, which the store keeps as hex), then taken and acknowledged, once."""
    config = write_config(tmp_path)
    inbox = tmp_path / "inbox" / "esr"
    inbox.mkdir(parents=True)
    dropped = Path(os.fsdecode(bytes(inbox) + b"/extract-\xe9t\xe9.xml"))
    dropped.write_text(b.positions("RGT", [b.position(1)]))
    killed = DaemonProcess(tmp_path, config, prefix=(sys.executable, "-c", _KILLED_MID_COPY))
    killed.start()
    assert killed.wait(timeout=60) == -signal.SIGKILL
    assert [p.name for p in inbox.iterdir()] == [".1.claim"]
    with sqlite3.connect(tmp_path / "var" / "gateway.db") as db:
        (stored,) = db.execute("SELECT source_path FROM receipts").fetchone()
    db.close()
    assert stored == "hex:" + os.fsencode(dropped).hex()
    daemon = DaemonProcess(tmp_path, config)
    daemon.start()
    try:
        wait_until(lambda: acks(tmp_path) == ["extract-_xe9t_xe9.ack.xml"], timeout=60,
                   what="its ack")
        assert daemon.terminate() == 0
        assert list(inbox.iterdir()) == []
        processed = [e for e in daemon.logs() if e["event"] == "file.processed"]
        assert [e["file"] for e in processed] == ["extract-_xe9t_xe9.xml"]
    finally:
        daemon.kill()


# Run as a script: the real ``run`` command, its loop's first step sending itself SIGTERM while
# holding a lock the interrupted code could hold at that moment (a signal arrives between any two
# bytecodes): the log's own write lock, or the stop event's. Nothing else is changed.
_SIGNAL_WHILE_HOLDING = """
import os, signal, sys
import structlog._output
from gateway import cli, daemon

step = daemon.Daemon._step


def held(loop, what):
    if what == "log":
        lock = structlog._output.WRITE_LOCKS.get(sys.stderr)
        assert lock is not None, "no write lock for stderr: structlog changed"
        return lock
    return loop._stop._cond


def first_step(loop):
    if not getattr(loop, "poked", False):
        loop.poked = True
        with held(loop, sys.argv[2]):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100_000):  # the handler runs in here, the lock held
                pass
    step(loop)


daemon.Daemon._step = first_step
sys.argv = ["gateway", "run", "--config", sys.argv[1]]
cli.main()
"""


@pytest.mark.parametrize("lock", ["log", "event"])
def test_a_signal_that_interrupts_a_log_line_or_the_loop_wait_still_stops_the_daemon(
    tmp_path: Path, lock: str
) -> None:
    """SIGTERM handled while the main thread holds the log's write lock or the stop event's lock
    (both non-reentrant): the handler takes neither, so the daemon says it is stopping and
    exits 0 instead of waiting on itself forever (seen once in CI as a daemon that never
    stopped)."""
    config = write_config(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", _SIGNAL_WHILE_HOLDING, str(config), lock],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line)["event"] for line in done.stderr.splitlines()]
    assert events[0] == "daemon.starting"
    assert events[-2:] == ["daemon.stopping", "daemon.stopped"]


def test_a_second_signal_stops_the_daemon_at_once_and_the_file_is_taken_again(
    daemon: DaemonProcess,
) -> None:
    """SIGTERM while a large file is being decided asks the daemon to finish it; a second
    SIGTERM stops it at once (exit 1, ``daemon.forced`` logged). The file stays claimed and the
    next start decides it once."""
    root = daemon.root
    acks_folder = start_with_the_rotation_post(daemon)
    (root / "inbox" / "tis" / "rotation.xml").write_text(
        b.rotation(20_000, date.today() + timedelta(days=60)))
    wait_until(lambda: any(e["event"] == "file.claimed" and e["file"] == "rotation.xml"
                           for e in daemon.logs()), timeout=60, what="the rotation claimed")
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: any(e["event"] == "daemon.stopping" for e in daemon.logs()),
               what="daemon.stopping, logged at once while the file is decided")
    assert not (acks_folder / "rotation.ack.xml").exists()
    daemon.proc.send_signal(signal.SIGTERM)  # the first one counted: its line is logged
    assert daemon.wait(30) == 1
    assert not (acks_folder / "rotation.ack.xml").exists()
    assert [e["signal"] for e in daemon.logs() if e["event"] == "daemon.forced"] == [
        signal.SIGTERM]
    daemon.start()
    wait_until((acks_folder / "rotation.ack.xml").exists, timeout=120, what="the rotation's ack")
    assert daemon.terminate() == 0
    ack = etree.parse(str(acks_folder / "rotation.ack.xml")).getroot()
    assert ack.get("status") == "processed"
    assert acks(root) == ["pos.ack.xml", "rotation.ack.xml"]
