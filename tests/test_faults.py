"""The machine misbehaves — for real: unreadable files and folders (the daemon without root's
power to read anything, via setpriv), full and read-only file systems (tmpfs mounts), inbox
and var/ on different file systems, an emptied store, a write-locked database, a concurrent
start on a new store."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from lxml import etree

from gateway import config
from gateway.cli import FLOWS
from gateway.errors import StorageUnavailable, StoreUnavailable, TransientError
from gateway.pipeline import Pipeline
from gateway.store.base import migrations
from gateway.store.sqlite import SqliteStore
from gateway.transport import files
from tests import builders as b
from tests.conftest import write_config
from tests.daemon import DaemonProcess, wait_until

# The daemon as root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: file modes bind it like
# any unprivileged user, while it can still reach the Python under /root.
UNPRIVILEGED = (
    "setpriv", "--bounding-set", "-dac_override,-dac_read_search",
    "--inh-caps", "-dac_override,-dac_read_search",
)
AS_OF = date(2026, 11, 2)
STRANGER = 64999  # a throw-away uid that owns the unreadable file
ACKS = ("outbox", "reports", "acks")


def ack_names(root: Path) -> list[str]:
    """Published acknowledgements."""
    folder = root.joinpath(*ACKS)
    return sorted(p.name for p in folder.glob("*.ack.xml")) if folder.is_dir() else []


def ack_status(root: Path, name: str) -> str | None:
    """The status an acknowledgement gives."""
    return etree.parse(str(root.joinpath(*ACKS, name))).getroot().get("status")


def events(daemon: DaemonProcess, name: str) -> list[dict[str, object]]:
    """The daemon's log events called ``name``."""
    return [e for e in daemon.logs() if e["event"] == name]


def extract(i: int) -> str:
    """An ESR position extract of its own VPD."""
    return b.positions(f"V{i:03d}", [b.position(i + 1, dpn=f"EOE/V{i:03d}/{i}/FY1/001")])


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[list[Path]]:
    """tmpfs mounts made by the test (``mount -t tmpfs``), unmounted at the end."""
    mounted: list[Path] = []
    yield mounted
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def tmpfs(mounted: list[Path], point: Path, size: str) -> Path:
    """Mount a tmpfs of ``size`` at ``point``."""
    point.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], check=True)
    mounted.append(point)
    return point


def remount(point: Path, options: str) -> None:
    """Change a mount's options (``size=…``, ``ro``, ``rw``)."""
    subprocess.run(["mount", "-o", f"remount,{options}", str(point)], check=True)


def fill(folder: Path) -> Path:
    """Write zeros into ``folder`` until its file system is full."""
    filler = folder / "filler"
    with filler.open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    return filler


def test_an_unreadable_file_among_five_good_ones(tmp_path: Path) -> None:
    """The 5 good files are processed, the unreadable one is left where it is with one warning,
    the daemon lives, takes the file once it becomes readable, and restarts cleanly."""
    daemon = DaemonProcess(tmp_path, write_config(tmp_path), prefix=UNPRIVILEGED)
    inbox = tmp_path / "inbox" / "esr"
    inbox.mkdir(parents=True)
    bad = inbox / "bad.xml"
    bad.write_text(extract(0))
    os.chown(bad, STRANGER, STRANGER)
    bad.chmod(0o600)
    for i in range(1, 6):
        (inbox / f"good{i}.xml").write_text(extract(i))
    try:
        daemon.start()
        wait_until(lambda: len(ack_names(tmp_path)) == 5, what="the five good files")
        time.sleep(3)  # three rescans pass: the unreadable file is warned about once, not each
        assert daemon.alive
        assert ack_names(tmp_path) == [f"good{i}.ack.xml" for i in range(1, 6)]
        assert bad.exists()
        warned = events(daemon, "intake.unreadable")
        assert len(warned) == 1
        assert warned[0]["file"] == "bad.xml"
        bad.chmod(0o644)
        wait_until(lambda: "bad.ack.xml" in ack_names(tmp_path), what="the file once readable")
        assert ack_status(tmp_path, "bad.ack.xml") == "processed"
        assert daemon.terminate() == 0
        daemon.start()
        assert daemon.terminate() == 0
        assert events(daemon, "daemon.stopped").__len__() == 2
    finally:
        daemon.kill()


def test_an_unreadable_inbox_folder_does_not_stop_the_daemon(tmp_path: Path) -> None:
    """An inbox folder the daemon cannot list: one warning, the other folders flow."""
    daemon = DaemonProcess(tmp_path, write_config(tmp_path), prefix=UNPRIVILEGED)
    for channel in ("esr", "tis", "trac"):
        (tmp_path / "inbox" / channel).mkdir(parents=True)
    locked = tmp_path / "inbox" / "trac"
    locked.chmod(0)
    try:
        daemon.start()
        (tmp_path / "inbox" / "esr" / "pos.xml").write_text(extract(1))
        wait_until(lambda: ack_names(tmp_path) == ["pos.ack.xml"], what="the esr file")
        time.sleep(2)  # two rescans pass: one warning, not one per rescan
        assert daemon.alive
        assert len(events(daemon, "intake.unreadable_folder")) == 1
        assert daemon.terminate() == 0
    finally:
        locked.chmod(0o755)
        daemon.kill()


def test_a_full_disk_under_var_and_outbox_pauses_and_loses_nothing(
    tmp_path: Path, mount: list[Path]
) -> None:
    """var/ and outbox/ on a tmpfs that fills: the daemon stays up (also across a restart while
    full), pauses intake once per state change, and after the disk is enlarged processes every
    file once and quarantines none."""
    disk = tmpfs(mount, tmp_path / "disk", "8m")
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text().replace('outbox = "outbox"', f'outbox = "{disk}/outbox"')
                   .replace('var = "var"', f'var = "{disk}/var"')
                   .replace("sqlite:///var/gateway.db", f"sqlite:///{disk}/var/gateway.db"))
    daemon = DaemonProcess(tmp_path, cfg)
    inbox = tmp_path / "inbox" / "esr"
    inbox.mkdir(parents=True)
    acks = disk / "outbox" / "reports" / "acks"
    try:
        daemon.start()
        (inbox / "pos000.xml").write_text(extract(0))
        wait_until((acks / "pos000.ack.xml").exists, what="the first file")
        filler = fill(disk)
        for i in range(1, 11):
            (inbox / f"pos{i:03d}.xml").write_text(extract(i))
        wait_until(lambda: len(events(daemon, "intake.paused")) == 1, what="a pause")
        reason = events(daemon, "intake.paused")[0]["reason"]
        assert reason in {"No space left on device", "database or disk is full"}
        assert daemon.terminate() == 0
        daemon.start()  # and again while the disk is full
        wait_until(lambda: len(events(daemon, "intake.paused")) == 2, what="a pause again")
        time.sleep(2)  # retries pass while full: the daemon stays up
        assert daemon.alive
        remount(disk, "size=64m")
        wait_until(lambda: len(list(acks.glob("*.ack.xml"))) == 11, timeout=60,
                   what="every file once the disk is larger")
        assert daemon.terminate() == 0
        for path in acks.glob("*.ack.xml"):
            assert etree.parse(str(path)).getroot().get("status") == "processed", path.name
        assert not any((disk / "var" / "quarantine").glob("*"))
        assert list(inbox.iterdir()) == []
        with sqlite3.connect(disk / "var" / "gateway.db") as db:
            rows = db.execute("SELECT status, COUNT(*) FROM receipts GROUP BY status").fetchall()
        db.close()
        assert rows == [("processed", 11)]
        assert len(list((disk / "outbox" / "tis" / "EOE").glob("*.xml"))) == 11
        assert "file.quarantined" not in {e["event"] for e in daemon.logs()}
        filler.unlink()
    finally:
        daemon.kill()


def test_a_read_only_outbox_pauses_until_it_is_writable(
    tmp_path: Path, mount: list[Path]
) -> None:
    """An outbox mounted read-only: paused (once), never retried past the limit nor
    quarantined; processed once it is writable again."""
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("[intake]\n", "[intake]\nretry_limit = 1\n"))
    outbox = tmpfs(mount, tmp_path / "outbox", "8m")
    remount(outbox, "ro")
    daemon = DaemonProcess(tmp_path, cfg)
    try:
        daemon.start()
        inbox = tmp_path / "inbox" / "esr"
        wait_until(inbox.is_dir, what="inbox")
        (inbox / "pos.xml").write_text(extract(1))
        wait_until(lambda: len(events(daemon, "intake.paused")) == 1, what="a pause")
        assert events(daemon, "intake.paused")[0]["reason"] == "Read-only file system"
        time.sleep(2)  # several retries pass: none is counted, none logged as a file retry
        assert events(daemon, "file.retry") == []
        assert events(daemon, "file.quarantined") == []
        remount(outbox, "rw")
        wait_until(lambda: ack_names(tmp_path) == ["pos.ack.xml"], what="the ack")
        assert ack_status(tmp_path, "pos.ack.xml") == "processed"
        # logged once the file is finished, just after its ack is published
        wait_until(lambda: events(daemon, "intake.resumed") != [], what="the resume")
        assert len(events(daemon, "intake.resumed")) == 1
        assert daemon.terminate() == 0
    finally:
        daemon.kill()


def test_inbox_and_var_on_different_file_systems_claim_by_copy(
    tmp_path: Path, mount: list[Path]
) -> None:
    """inbox/ on its own tmpfs: files are claimed by copy + fsync + unlink, not retried forever
    on "Invalid cross-device link"."""
    inbox = tmpfs(mount, tmp_path / "inbox", "8m")
    daemon = DaemonProcess(tmp_path, write_config(tmp_path))
    try:
        daemon.start()
        wait_until((inbox / "esr").is_dir, what="inbox folders")
        for i in range(3):
            (inbox / "esr" / f"pos{i}.xml").write_text(extract(i))
        wait_until(lambda: len(ack_names(tmp_path)) == 3, what="three acks")
        assert all(ack_status(tmp_path, n) == "processed" for n in ack_names(tmp_path))
        assert list((inbox / "esr").iterdir()) == []
        assert len(list((tmp_path / "var" / "archive").rglob("pos*.xml"))) == 3
        assert events(daemon, "file.claim_failed") == []
        assert daemon.terminate() == 0
    finally:
        daemon.kill()


def test_a_claim_by_copy_makes_the_copy_durable_before_the_original_goes(
    tmp_path: Path, mount: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Across file systems the original is unlinked only after the copy's name is synced into
    ``var/processing/``: a power cut between the two cannot leave neither. The power cut is not
    made for real: ``os.fsync`` and ``os.unlink`` are watched (and still done), in order."""
    inbox = tmpfs(mount, tmp_path / "inbox", "8m")
    source = inbox / "pos.xml"
    source.write_text(extract(1))
    target = tmp_path / "processing" / "1-pos.xml"
    target.parent.mkdir()
    hidden = inbox / ".pos.xml.1.claiming"
    steps: list[tuple[str, Path]] = []
    real_fsync, real_unlink = os.fsync, os.unlink

    def fsync(fd: int) -> None:
        steps.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def unlink(path: str | os.PathLike[str], *, dir_fd: int | None = None) -> None:
        steps.append(("unlink", Path(path)))
        real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "unlink", unlink)
    fd = os.open(source, os.O_RDONLY)
    try:
        files.take(fd, source, target, hidden)
    finally:
        os.close(fd)
        monkeypatch.undo()
    assert target.read_text() == extract(1)
    assert not source.exists()
    assert not hidden.exists()
    gone = steps.index(("unlink", hidden))
    assert ("fsync", target.parent) in steps[:gone]


def test_a_claim_by_copy_that_cannot_put_the_copy_in_place_gives_the_file_back(
    tmp_path: Path, mount: list[Path]
) -> None:
    """Across file systems, the copy's rename into ``var/processing/`` failing for real (its
    name taken by a folder) is the store's fault, told as :class:`StorageUnavailable` (the daemon
    pauses and tries again) and not a raw ``OSError``; the file is back in the inbox under its
    own name and no copy or temporary file is left."""
    inbox = tmpfs(mount, tmp_path / "inbox", "8m")
    source = inbox / "pos.xml"
    source.write_text(extract(1))
    target = tmp_path / "processing" / "1-pos.xml"
    (target / "occupied").mkdir(parents=True)
    hidden = inbox / ".pos.xml.1.claiming"
    fd = os.open(source, os.O_RDONLY)
    try:
        with pytest.raises(StorageUnavailable, match=r"cannot claim pos\.xml"):
            files.take(fd, source, target, hidden)
    finally:
        os.close(fd)
    assert source.read_text() == extract(1)
    assert sorted(p.name for p in inbox.iterdir()) == ["pos.xml"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["1-pos.xml"]
    assert [p.name for p in target.iterdir()] == ["occupied"]


def test_a_folder_planted_where_a_claim_parks_its_file_fails_that_claim_only(
    tmp_path: Path, mount: list[Path]
) -> None:
    """With ``inbox/`` on a file system of its own (a real tmpfs), a claim parks the file
    beside itself (``.<receipt id>.claim``) while copying it. A folder planted under that name
    (a partner's group may write into its inbox folder, and receipt ids count up) fails that
    claim as this file's trouble (:class:`TransientError`, retried), not as
    :class:`StorageUnavailable`, which pauses all intake. The file stays where it was, nothing
    is left in ``var/processing/``, and once the folder is gone the file is taken."""
    settings = config.load(write_config(tmp_path))
    assert settings.sqlite_path is not None
    inbox = tmpfs(mount, tmp_path / "inbox", "8m")
    store = SqliteStore(settings.sqlite_path)
    pipeline = Pipeline(settings, store, FLOWS)
    path = inbox / "esr" / "pos.xml"
    path.parent.mkdir()
    path.write_text(extract(1))
    planted = inbox / "esr" / ".1.claim"
    (planted / "inside").mkdir(parents=True)
    with pytest.raises(TransientError, match=r"\.1\.claim is taken by a folder") as raised:
        pipeline.claim(path, "esr")
    assert not isinstance(raised.value, StorageUnavailable)
    assert path.read_text() == extract(1)
    assert [p for p in settings.paths.processing.rglob("*") if p.is_file()] == []
    (planted / "inside").rmdir()
    planted.rmdir()
    receipt = pipeline.claim(path, "esr")
    assert pipeline.process(receipt, AS_OF) == "processed"
    store.close()


def test_process_on_a_full_disk_says_which_files_were_not_taken(
    tmp_path: Path, mount: list[Path]
) -> None:
    """``process`` whose copy of a FILE finds ``var/`` full (a real tmpfs): exit 1, and the
    error says that FILE and those after it were not taken (before, it said the file stayed in
    ``var/processing/`` to be retried, where nothing was). Nothing is left half done: once the
    space is back, the same command processes both, once."""
    config = write_config(tmp_path)
    var = tmpfs(mount, tmp_path / "var", "3m")
    first, second = tmp_path / "a.xml", tmp_path / "b.xml"
    first.write_text(extract(1))
    big = b.positions("V002", [b.position(n, dpn=f"EOE/V002/{n}/FY1/001") for n in range(1, 601)])
    second.write_text(big)
    command = [sys.executable, "-m", "gateway", "process", "--config", str(config),
               "--as-of", AS_OF.isoformat()]
    assert subprocess.run([*command, str(first)], capture_output=True, check=False
                          ).returncode == 0
    filler = fill(var)
    os.truncate(filler, filler.stat().st_size - len(big) // 2)  # room for the store, not the copy
    full = subprocess.run([*command, str(second), str(first)], capture_output=True, text=True,
                          check=False)
    assert full.returncode == 1
    said = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(said) == 1
    assert said[0].endswith(
        f"No space left on device ({second} was not taken, nor any FILE after it)")
    assert [p for p in (var / "processing").rglob("*") if p.is_file()] == []
    filler.unlink()
    again = subprocess.run([*command, str(second), str(first)], capture_output=True, text=True,
                           check=False)
    assert again.returncode == 0, again.stderr
    said = again.stdout.splitlines()
    assert said[0] == f"{second}: processed ({tmp_path}/outbox/reports/acks/b.ack.xml)"
    assert said[1].startswith(f"{first}: duplicate (")  # its own acknowledgement, numbered
    assert len(said) == 2


def test_an_emptied_store_is_refused_and_nothing_is_processed_twice(tmp_path: Path) -> None:
    """``gateway.db`` emptied to 0 bytes (a restore gone wrong) while var/ shows history: run
    and process refuse with one line saying what to do; no file is processed again."""
    cfg = write_config(tmp_path)
    source = tmp_path / "pos.xml"
    source.write_text(extract(1))
    command = [sys.executable, "-m", "gateway", "process", "--config", str(cfg), str(source)]
    assert subprocess.run(command, capture_output=True, check=False).returncode == 0
    extract_path = next((tmp_path / "outbox" / "tis" / "EOE").glob("*.xml"))
    before = extract_path.stat().st_mtime_ns
    db = tmp_path / "var" / "gateway.db"
    db.write_bytes(b"")
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    again = subprocess.run(command, capture_output=True, text=True, check=False)
    assert again.returncode == 2
    message = again.stderr.strip().splitlines()
    assert len(message) == 1
    assert "restore the store from its backup" in message[0]
    daemon = DaemonProcess(tmp_path, cfg)
    daemon.start()
    assert daemon.wait(60) == 2
    assert ack_names(tmp_path) == ["pos.ack.xml"]
    assert extract_path.stat().st_mtime_ns == before


def test_a_fresh_var_starts_with_no_set_up(tmp_path: Path) -> None:
    """A new var/ and a new store: the store's identity is written and nothing is refused."""
    settings = config.load(write_config(tmp_path))
    from gateway.store import open_store  # noqa: PLC0415

    with open_store(settings) as store:
        sid, _fresh = store.store_id()
    assert (tmp_path / "var" / "store-id").read_text().strip() == sid
    with open_store(settings):
        pass


def test_a_file_claimed_while_the_store_is_write_locked_stays_in_the_inbox(
    tmp_path: Path,
) -> None:
    """The store locked by another writer past the busy timeout: the claim fails before the file
    moves (it stays in the inbox, nothing orphaned in var/processing/), and succeeds later."""
    settings = config.load(write_config(tmp_path))
    assert settings.sqlite_path is not None
    store = SqliteStore(settings.sqlite_path, busy_timeout=0.2)
    pipeline = Pipeline(settings, store, FLOWS)
    path = tmp_path / "inbox" / "esr" / "pos.xml"
    path.parent.mkdir(parents=True)
    path.write_text(extract(1))
    locker = sqlite3.connect(settings.sqlite_path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable):
            pipeline.claim(path, "esr")
        assert path.exists()
        assert [p for p in settings.paths.processing.rglob("*") if p.is_file()] == []
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    receipt = pipeline.claim(path, "esr")
    assert pipeline.process(receipt, AS_OF) == "processed"
    store.close()


def test_migrations_are_safe_under_concurrent_start(tmp_path: Path) -> None:
    """Four processes open a new store at once: all start, the schema is applied once."""
    db = tmp_path / "var" / "gateway.db"
    code = "import sys; from pathlib import Path; from gateway.store.sqlite import SqliteStore; " \
           "SqliteStore(Path(sys.argv[1])).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db)], stderr=subprocess.PIPE)
             for _ in range(4)]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    with sqlite3.connect(db) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
    conn.close()
    assert sorted(versions) == [v for v, _sql in migrations()]


def test_a_disk_that_fills_in_the_middle_of_a_streamed_file_pauses_and_loses_nothing(
    tmp_path: Path, mount: list[Path]
) -> None:
    """A 10,000-placement file decided 2,000 at a time, its outputs on a tmpfs that fills
    while the first windows' outputs are appended to their temporary files (8 MiB at once,
    Staging.LIMIT): the file's transaction is rolled back and its temporary outputs removed,
    intake pauses, and once the disk is larger the file is decided again — every placement sent
    once, no temporary file left."""
    disk = tmpfs(mount, tmp_path / "disk", "6m")  # the first windows' outputs do not fit
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text().replace('outbox = "outbox"', f'outbox = "{disk}/outbox"'))
    daemon = DaemonProcess(tmp_path, cfg)
    acks = disk / "outbox" / "reports" / "acks"
    (tmp_path / "inbox" / "esr").mkdir(parents=True)
    (tmp_path / "inbox" / "tis").mkdir(parents=True)
    try:
        daemon.start()
        (tmp_path / "inbox" / "esr" / "pos.xml").write_text(b.rotation_post())
        wait_until((acks / "pos.ack.xml").exists, what="the positions")
        count = 10_000
        (tmp_path / "inbox" / "tis" / "rotation.xml").write_text(
            b.rotation(count, date.today() + timedelta(days=60)))
        wait_until(lambda: len(events(daemon, "intake.paused")) == 1, timeout=60, what="a pause")
        assert events(daemon, "intake.paused")[0]["reason"] == "No space left on device"
        assert not (acks / "rotation.ack.xml").exists()
        assert list((disk / "outbox").rglob("applicants-*")) == []
        remount(disk, "size=64m")
        wait_until((acks / "rotation.ack.xml").exists, timeout=120, what="the file, later")
        assert daemon.terminate() == 0
        assert etree.parse(str(acks / "rotation.ack.xml")).getroot().get("status") == (
            "processed")
        sent = [a.get("placementId") for path in (disk / "outbox" / "esr").rglob("*.xml")
                for a in etree.parse(str(path)).getroot()]
        assert sorted(sent) == [f"P{i:04d}" for i in range(count)]
        assert [p for p in disk.rglob(".*") if p.is_file()] == []
        assert "file.quarantined" not in {e["event"] for e in daemon.logs()}
    finally:
        daemon.kill()
