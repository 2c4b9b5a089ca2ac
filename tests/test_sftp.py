"""The SFTP partner exchange against a real OpenSSH sshd, with files put there by the real
``sftp`` client: taking, delivering, host keys, names, faults (killed and hung servers, crashes
between steps), volume (1,000 files through the daemon) and memory (a 200 MB file)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gateway.config import SftpPartner
from gateway.errors import TransientError
from gateway.store.exchange import DONE, ExchangeLedger
from gateway.store.sqlite import SqliteStore
from gateway.transport.exchange import PartnerExchange, backoff, name_problem
from gateway.transport.sftp import SftpRefused
from tests import builders as b
from tests.conftest import write_config
from tests.daemon import DaemonProcess, wait_until
from tests.fixtures.sshd import SshServer, start_sshd
from tests.sftp_helpers import (
    Remote,
    black_hole,
    partner_for,
    partner_toml,
    remote_for,
    sha256,
    write_big,
)

PART = ".hee-tis.part"


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """One sshd for the module's tests that leave it running as they found it."""
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.kill()


@pytest.fixture
def own_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """An sshd for one test, which may kill, stop or reconfigure it."""
    server = start_sshd(tmp_path_factory.mktemp("own-sshd"))
    yield server
    server.kill()


@pytest.fixture
def remote(sshd: SshServer, request: pytest.FixtureRequest) -> Remote:
    """This test's partner folders on the shared server."""
    return remote_for(sshd, re.sub(r"\W+", "_", request.node.name))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """The gateway's SQLite store in ``tmp_path/var``."""
    db = SqliteStore(tmp_path / "var" / "gateway.db")
    yield db
    db.close()


def exchange_for(
    partner: SftpPartner, root: Path, store: SqliteStore, settle: float = 0.0
) -> PartnerExchange:
    """A partner's exchange over a gateway in ``root``."""
    return PartnerExchange(
        partner, inbox=root / "inbox", outbox=root / "outbox", ledger=ExchangeLedger(store),
        settle_seconds=settle,
    )  # fmt: skip


@pytest.fixture
def running() -> Iterator[list[PartnerExchange]]:
    """Exchanges a test starts on their threads; stopped at teardown whatever happens."""
    started: list[PartnerExchange] = []
    yield started
    for exchange in started:
        exchange.stop()


def local_files(folder: Path) -> list[str]:
    """Names in a local folder, dot-names included, sorted."""
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def events(logs: list[dict[str, object]], name: str) -> list[dict[str, object]]:
    """Captured log events of one kind."""
    return [e for e in logs if e["event"] == name]


# --- taking files ---------------------------------------------------------------------------------


def test_complete_files_are_taken_once_and_moved_to_done(
    remote: Remote, tmp_path: Path, store: SqliteStore
) -> None:
    """Files put with the real sftp client land whole in inbox/<channel>/ after a second
    listing, leave the remote inbox for remote_done, are recorded done, and a later poll takes
    nothing more; temporary names on the server are left alone."""
    files = {f"TIS_{i:04d}.xml": f"<doc n='{i}'/>".encode() * (i + 1) for i in range(3)}
    remote.put(tmp_path / "up", {**files, ".uploading.xml": b"<x/>", "half.xml.part": b"<"})
    exchange = exchange_for(partner_for(remote), tmp_path, store)
    inbox = tmp_path / "inbox" / "tis"
    with capture_logs() as logs:
        assert exchange.poll() is True  # first listing: seen, not yet taken
        assert local_files(inbox) == []
        exchange.poll()
        exchange.poll()
    exchange.close()

    assert local_files(inbox) == sorted(files)
    for name, data in files.items():
        assert (inbox / name).read_bytes() == data
    assert remote.listing(remote.inbox) == [".uploading.xml", "half.xml.part"]
    assert remote.listing(remote.done) == sorted(files)
    takes = ExchangeLedger(store).takes("hee-tis")
    assert sorted(t.remote_name for t in takes) == sorted(files)
    assert {t.state for t in takes} == {DONE}
    taken = events(logs, "sftp.taken")
    assert sorted(str(e["file"]) for e in taken) == sorted(files)
    assert all(e["channel"] == "tis" and e["partner"] == "hee-tis" for e in taken)
    assert {e["sha256"] for e in taken} == {sha256(inbox / n) for n in files}


def test_without_remote_done_a_taken_file_is_deleted(
    remote: Remote, tmp_path: Path, store: SqliteStore
) -> None:
    """With no remote_done, the server's copy is deleted once the file is in the inbox."""
    remote.put(tmp_path / "up", {"a.xml": b"<a/>"})
    exchange = exchange_for(partner_for(remote, remote_done=""), tmp_path, store)
    exchange.poll()
    exchange.poll()
    exchange.close()
    assert (tmp_path / "inbox" / "tis" / "a.xml").read_bytes() == b"<a/>"
    assert remote.listing(remote.inbox) == []
    assert not remote.done.exists()


def test_a_local_name_that_is_taken_gets_a_numeric_suffix(
    remote: Remote, tmp_path: Path, store: SqliteStore
) -> None:
    """A download never replaces a local file of the same name; the done folder keeps both
    remote files too."""
    inbox = tmp_path / "inbox" / "tis"
    inbox.mkdir(parents=True)
    (inbox / "a.xml").write_bytes(b"<local/>")
    remote.done.mkdir(parents=True)
    (remote.done / "a.xml").write_bytes(b"<taken earlier/>")
    remote.put(tmp_path / "up", {"a.xml": b"<remote/>"})
    exchange = exchange_for(partner_for(remote), tmp_path, store)
    exchange.poll()
    exchange.poll()
    exchange.close()
    assert (inbox / "a.xml").read_bytes() == b"<local/>"
    assert (inbox / "a.1.xml").read_bytes() == b"<remote/>"
    assert (remote.done / "a.xml").read_bytes() == b"<taken earlier/>"
    assert (remote.done / "a.1.xml").read_bytes() == b"<remote/>"


def test_a_file_written_slowly_is_not_taken_before_it_is_complete(
    sshd: SshServer, remote: Remote, tmp_path: Path, store: SqliteStore,
    running: list[PartnerExchange],
) -> None:
    """A file the real sftp client appends to in pieces (``reput``) over several seconds is
    left alone while it grows and taken whole once it stops changing."""
    remote.put(tmp_path / "up", {})
    exchange = exchange_for(partner_for(remote, poll_seconds=0.2), tmp_path, store, settle=2.0)
    inbox = tmp_path / "inbox" / "tis"
    local = tmp_path / "slow.xml"
    pieces = [f"<piece n='{i}'>{'x' * 5000}</piece>\n".encode() for i in range(6)]
    with capture_logs() as logs:
        exchange.start()
        running.append(exchange)
        for i, piece in enumerate(pieces):
            with local.open("ab") as fh:
                fh.write(piece)
            verb = "put" if i == 0 else "reput"
            sshd.sftp_batch([f"{verb} {local} {remote.inbox}/slow.xml"])
            time.sleep(0.3)
            assert not (inbox / "slow.xml").exists(), f"taken after {i + 1} of {len(pieces)}"
        wait_until((inbox / "slow.xml").exists, timeout=15, what="the slow file")
        exchange.stop()
    assert (inbox / "slow.xml").read_bytes() == b"".join(pieces)
    assert len(events(logs, "sftp.taken")) == 1


def polled_three_times(
    remote: Remote, tmp_path: Path, store: SqliteStore
) -> list[dict[str, object]]:
    """The log events of a partner's exchange polled three times (seen, settled, taken)."""
    exchange = exchange_for(partner_for(remote), tmp_path, store)
    with capture_logs() as logs:
        for _ in range(3):
            exchange.poll()
    exchange.close()
    return logs


def test_unsafe_remote_names_are_logged_and_never_downloaded(
    remote: Remote, tmp_path: Path, store: SqliteStore
) -> None:
    """Names with control characters, separators, '..' or too long are skipped with one log
    line each; links and folders are not files; the safe file next to them is taken."""
    remote.inbox.mkdir(parents=True)
    hostile = ["bell\x07.xml", "new\nline.xml", "back\\slash.xml", "dots..xml",
               "bidi\u202egnp.xml", "x" * 201 + ".xml"]  # fmt: skip
    for name in hostile:
        (remote.inbox / name).write_bytes(b"<x/>")
    (remote.inbox / "link.xml").symlink_to("/etc/hostname")
    (remote.inbox / "folder.xml").mkdir()
    remote.put(tmp_path / "up", {"ok.xml": b"<ok/>"})
    logs = polled_three_times(remote, tmp_path, store)
    assert local_files(tmp_path / "inbox" / "tis") == ["ok.xml"]
    assert sorted([*hostile, "folder.xml", "link.xml"]) == remote.listing(remote.inbox)
    skipped = events(logs, "sftp.skipped")
    assert len(skipped) == len(hostile)
    assert all("\n" not in str(e["file"]) and "\x07" not in str(e["file"]) for e in skipped)


def test_a_link_planted_at_the_download_s_temporary_name_is_never_written_through(
    remote: Remote, tmp_path: Path, store: SqliteStore
) -> None:
    """A local partner (its group may write into ``inbox/<channel>/``) plants, again and again
    as fast as it can, a symbolic link where the gateway downloads a remote file
    (``.<name>.<partner>.part``, a name it can guess) to a file of the gateway's: that file is
    never truncated or written (the download is made new, never opened through a link), and
    once the partner stops, the remote file is taken, whole, under its own name. Before, the
    download truncated and overwrote the file the link named."""
    remote.put(tmp_path / "up", {"pos.xml": b"<pos/>"})
    inbox = tmp_path / "inbox" / "tis"
    inbox.mkdir(parents=True)
    precious = tmp_path / "var" / "precious"
    precious.parent.mkdir(parents=True, exist_ok=True)
    precious.write_bytes(b"the gateway's own")
    planted = inbox / f".pos.xml{PART}"
    stop = threading.Event()

    def plant() -> None:
        while not stop.is_set():
            with contextlib.suppress(FileExistsError):
                planted.symlink_to(precious)

    planter = threading.Thread(target=plant)
    planter.start()
    exchange = exchange_for(partner_for(remote), tmp_path, store)
    try:
        for _ in range(5):
            with contextlib.suppress(TransientError):  # the way was never clear: next time
                exchange.poll()
            assert precious.read_bytes() == b"the gateway's own"
    finally:
        stop.set()
        planter.join()
    planted.unlink(missing_ok=True)
    exchange.poll()
    exchange.close()
    assert local_files(inbox) == ["pos.xml"]
    assert not (inbox / "pos.xml").is_symlink()
    assert (inbox / "pos.xml").read_bytes() == b"<pos/>"
    assert precious.read_bytes() == b"the gateway's own"


def test_a_remote_name_that_is_not_utf8_is_skipped_and_the_others_are_taken(
    remote: Remote, tmp_path: Path, store: SqliteStore
) -> None:
    """A remote file whose name is not UTF-8 is skipped with one ``sftp.skipped`` line (its
    bytes escaped), and stays on the server; the partner's other files are taken. Before, the
    whole listing failed (paramiko decodes names strictly) and no file of the partner came."""
    remote.put(tmp_path / "up", {"ok.xml": b"<ok/>"})
    odd = Path(os.fsdecode(bytes(remote.inbox) + b"/caf\xe9.xml"))
    odd.write_bytes(b"<odd/>")
    logs = polled_three_times(remote, tmp_path, store)
    assert local_files(tmp_path / "inbox" / "tis") == ["ok.xml"]
    assert remote.listing(remote.inbox) == [odd.name]
    (skipped,) = events(logs, "sftp.skipped")
    assert skipped["file"] == "caf\\udce9.xml"
    assert "control character" in str(skipped["reason"])
    assert events(logs, "sftp.list_failed") == []


@pytest.mark.parametrize(
    ("name", "problem"),
    [("ok.xml", None), ("", "empty"), ("..", "folder"), ("a/b", "separator"),
     ("a\\b", "separator"), ("a..b", "'..'"), ("a\x00b", "control"), ("a\x7fb", "control"),
     ("a\u2028b", "control"), ("é" * 200, None), ("é" * 201, "longer")],
)  # fmt: skip
def test_name_check(name: str, problem: str | None) -> None:
    """The remote name check accepts ordinary names and says why it refuses the others."""
    found = name_problem(name)
    assert (found is None) if problem is None else (problem in str(found))


# --- security ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["unknown", "changed"])
def test_an_unknown_or_changed_host_key_is_refused_and_nothing_is_transferred(
    case: str, sshd: SshServer, remote: Remote, tmp_path: Path, store: SqliteStore,
    running: list[PartnerExchange],
) -> None:
    """With the server's key missing from known_hosts, or a different key there, the partner
    is refused before logging in: a clear error log, state 'refused' in the ledger, the remote
    file untouched, nothing local, known_hosts unchanged."""
    known = tmp_path / "known_hosts"
    if case == "unknown":
        known.write_text(f"[example.org]:22 {sshd.host_public_key}\n")
    else:  # some other ed25519 key where the server's should be
        other = sshd.client_key.with_name(sshd.client_key.name + ".pub").read_text().split()
        known.write_text(f"[{sshd.host}]:{sshd.port} {other[0]} {other[1]}\n")
    before = known.read_text()
    remote.put(tmp_path / "up", {"a.xml": b"<a/>"})
    logins = sshd.log_text().count("Accepted publickey")
    partner = partner_for(remote, known_hosts=known, deliver=("tis",))
    (tmp_path / "outbox" / "tis").mkdir(parents=True)
    (tmp_path / "outbox" / "tis" / "out.xml").write_bytes(b"<out/>")

    with pytest.raises(SftpRefused, match="not in known_hosts" if case == "unknown" else "changed"):
        exchange_for(partner, tmp_path, store).poll()
    exchange = exchange_for(partner, tmp_path, store)
    with capture_logs() as logs:
        exchange.start()
        running.append(exchange)
        ledger = ExchangeLedger(store)
        wait_until(lambda: [p.state for p in ledger.partners()] == ["refused"], what="refused")
        exchange.stop()

    refused = events(logs, "sftp.refused")
    assert refused
    assert refused[0]["log_level"] == "error"
    assert "known_hosts" in str(refused[0]["error"])
    assert remote.listing(remote.inbox) == ["a.xml"]
    assert local_files(tmp_path / "inbox" / "tis") == []
    assert not remote.outbox.exists()
    assert known.read_text() == before
    assert sshd.log_text().count("Accepted publickey") == logins
    assert "known_hosts" in str(ledger.partners()[0].last_error)


def test_an_encrypted_key_is_opened_only_with_the_passphrase_from_the_environment(
    sshd: SshServer, remote: Remote, tmp_path: Path, store: SqliteStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The passphrase comes only from the variable named by passphrase_env: unset, the
    partner is refused with a message naming the variable; set, files are taken."""
    remote.put(tmp_path / "up", {"a.xml": b"<a/>"})
    variable = "DIT_TEST_KEY_PASSPHRASE"
    partner = partner_for(remote, private_key=sshd.encrypted_client_key, passphrase_env=variable)
    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(SftpRefused, match=variable):
        exchange_for(partner, tmp_path, store).poll()
    without = partner_for(remote, private_key=sshd.encrypted_client_key)
    with pytest.raises(SftpRefused, match="encrypted"):
        exchange_for(without, tmp_path, store).poll()
    monkeypatch.setenv(variable, sshd.passphrase)
    exchange = exchange_for(partner, tmp_path, store)
    exchange.poll()
    exchange.poll()
    exchange.close()
    assert local_files(tmp_path / "inbox" / "tis") == ["a.xml"]


# --- deliveries -----------------------------------------------------------------------------------


def test_outputs_are_delivered_once_even_across_restarts(
    remote: Remote, tmp_path: Path, store: SqliteStore
) -> None:
    """Files below the deliver folders reach remote_outbox/<path below the folder> once, never
    dot-files or temporary names, and nothing is left under a temporary name; a restart sends
    nothing again; new content under the same name is sent again, old content never twice."""
    outbox = tmp_path / "outbox"
    for rel, data in {"tis/EOE/a.xml": b"<a/>", "tis/b.xml": b"<b/>", "tis/.c.xml.x.tmp": b"<",
                      "tis/d.xml.tmp": b"<", "reports/acks/x.ack.xml": b"<ack/>",
                      "esr/RGT/not-for-this-partner.xml": b"<e/>"}.items():  # fmt: skip
        (outbox / rel).parent.mkdir(parents=True, exist_ok=True)
        (outbox / rel).write_bytes(data)
    partner = partner_for(remote, deliver=("tis", "reports/acks"))
    with capture_logs() as logs:
        exchange = exchange_for(partner, tmp_path, store)
        exchange.poll()
        exchange.poll()
        exchange.close()
        again = exchange_for(partner, tmp_path, store)
        again.poll()
    assert remote.listing(remote.outbox) == ["EOE", "b.xml", "x.ack.xml"]
    assert remote.listing(remote.outbox / "EOE") == ["a.xml"]
    assert (remote.outbox / "EOE" / "a.xml").read_bytes() == b"<a/>"
    assert (remote.outbox / "x.ack.xml").read_bytes() == b"<ack/>"
    assert len(events(logs, "sftp.delivered")) == 3
    assert sorted(p for p, _s, _r, state in ExchangeLedger(store).deliveries("hee-tis")
                  if state == "sent") == ["reports/acks/x.ack.xml", "tis/EOE/a.xml", "tis/b.xml"]

    with capture_logs() as logs:
        (outbox / "tis" / "b.xml").write_bytes(b"<b version='2'/>")
        again.poll()
        assert (remote.outbox / "b.xml").read_bytes() == b"<b version='2'/>"
        (outbox / "tis" / "b.xml").write_bytes(b"<b/>")  # content delivered before
        again.poll()
        again.close()
    assert [e["file"] for e in events(logs, "sftp.delivered")] == ["tis/b.xml"]
    assert (remote.outbox / "b.xml").read_bytes() == b"<b version='2'/>"
    assert not [p for p in remote.outbox.rglob(".*")]


def test_without_posix_rename_an_existing_target_gets_a_unique_name(
    own_sshd: SshServer, tmp_path: Path, store: SqliteStore
) -> None:
    """On a server that refuses posix-rename, an upload is renamed plainly: to a unique name
    when the target exists (which is never deleted first), and the refusal is learnt once."""
    own_sshd.stop()
    config = own_sshd.config.read_text()
    own_sshd.config.write_text(config.replace("internal-sftp", "internal-sftp -P posix-rename"))
    own_sshd.start()
    remote = remote_for(own_sshd, "no_posix_rename")
    remote.outbox.mkdir(parents=True)
    (remote.outbox / "a.xml").write_bytes(b"<partner's own/>")
    outbox = tmp_path / "outbox" / "tis"
    outbox.mkdir(parents=True)
    (outbox / "a.xml").write_bytes(b"<ours/>")
    (outbox / "b.xml").write_bytes(b"<b/>")
    remote.inbox.mkdir()
    with capture_logs() as logs:
        exchange = exchange_for(partner_for(remote, deliver=("tis",)), tmp_path, store)
        exchange.poll()
        exchange.close()
    assert remote.listing(remote.outbox) == ["a.1.xml", "a.xml", "b.xml"]
    assert (remote.outbox / "a.xml").read_bytes() == b"<partner's own/>"
    assert (remote.outbox / "a.1.xml").read_bytes() == b"<ours/>"
    assert (remote.outbox / "b.xml").read_bytes() == b"<b/>"
    assert len(events(logs, "sftp.no_posix_rename")) == 1
    assert {str(e["remote"]).rsplit("/", 1)[1] for e in events(logs, "sftp.delivered")} == {
        "a.1.xml", "b.xml"}


# --- faults ---------------------------------------------------------------------------------------


def test_sshd_killed_mid_download_and_restarted_every_file_is_taken_exactly_once(
    own_sshd: SshServer, tmp_path: Path, store: SqliteStore, running: list[PartnerExchange]
) -> None:
    """The server is killed (SIGKILL, every session) while a large file is being downloaded
    and started again: the partner backs off, reconnects, and every file ends up in the inbox
    exactly once, whole, with nothing left under a temporary name."""
    remote = remote_for(own_sshd, "killed")
    up = tmp_path / "up"
    up.mkdir()
    big_sha = write_big(up / "big.bin", 96)
    small = {f"s{i}.xml": f"<s n='{i}'/>".encode() for i in range(5)}
    remote.put(up, small)
    own_sshd.sftp_batch([f"put {up / 'big.bin'} {remote.inbox}/big.bin"], timeout=120)
    inbox = tmp_path / "inbox" / "tis"
    temp = inbox / f".big.bin{PART}"
    exchange = exchange_for(partner_for(remote, timeout_seconds=3), tmp_path, store)
    with capture_logs() as logs:
        exchange.start()
        running.append(exchange)
        wait_until(lambda: temp.exists() and temp.stat().st_size > 8 * 2**20, timeout=30,
                   what="a download in progress")
        own_sshd.kill()
        assert not (inbox / "big.bin").exists(), "the download ended before the kill"
        time.sleep(0.5)
        own_sshd.start()
        wait_until(lambda: remote.listing(remote.inbox) == [], timeout=60, what="all taken")
        wait_until(lambda: len(local_files(inbox)) == 6, what="all in the inbox")
        exchange.stop()

    assert events(logs, "sftp.backoff"), "the kill was not noticed"
    assert local_files(inbox) == sorted([*small, "big.bin"])
    assert sha256(inbox / "big.bin") == big_sha
    for name, data in small.items():
        assert (inbox / name).read_bytes() == data
    assert remote.listing(remote.done) == sorted([*small, "big.bin"])
    takes = ExchangeLedger(store).takes("hee-tis")
    assert sorted(t.remote_name for t in takes) == sorted([*small, "big.bin"])
    assert {t.state for t in takes} == {DONE}
    assert sorted(str(e["remote"]) for e in events(logs, "sftp.taken")) == sorted(
        [*small, "big.bin"])


def test_a_hung_server_is_abandoned_at_the_deadline_and_the_file_taken_later(
    own_sshd: SshServer, tmp_path: Path, store: SqliteStore, running: list[PartnerExchange]
) -> None:
    """The server's session processes are frozen (SIGSTOP) mid-download: TCP stays up but no
    byte comes. The gateway gives up after timeout_seconds on its own clock, backs off,
    reconnects to a fresh session and takes the file once."""
    remote = remote_for(own_sshd, "hung")
    up = tmp_path / "up"
    up.mkdir()
    big_sha = write_big(up / "big.bin", 64)
    remote.put(up, {})
    own_sshd.sftp_batch([f"put {up / 'big.bin'} {remote.inbox}/big.bin"], timeout=120)
    inbox = tmp_path / "inbox" / "tis"
    temp = inbox / f".big.bin{PART}"
    exchange = exchange_for(partner_for(remote, timeout_seconds=1.5), tmp_path, store)
    frozen: list[int] = []
    try:
        with capture_logs() as logs:
            exchange.start()
            running.append(exchange)
            wait_until(lambda: temp.exists() and temp.stat().st_size > 2**20, timeout=30,
                       what="a download in progress")
            frozen = own_sshd.session_pids()
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            stopped = time.monotonic()
            wait_until(lambda: bool(events(logs, "sftp.backoff")), timeout=10, what="a backoff")
            noticed = time.monotonic() - stopped
            wait_until((inbox / "big.bin").exists, timeout=60, what="the file")
            exchange.stop()
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    assert noticed < 1.5 + 2.0
    assert "no progress" in str(events(logs, "sftp.backoff")[0]["error"])
    assert sha256(inbox / "big.bin") == big_sha
    assert local_files(inbox) == ["big.bin"]
    assert len(ExchangeLedger(store).takes("hee-tis")) == 1


def test_backoff_doubles_from_one_second_with_jitter_up_to_the_cap() -> None:
    """Retry delays: within the upper half of 1, 2, 4 … seconds, never above the cap."""
    assert [backoff(n, 60, lambda: 1.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert [backoff(n, 60, lambda: 0.0) for n in range(1, 4)] == [0.5, 1, 2]
    assert backoff(500, 300) <= 300


# --- through the real daemon ----------------------------------------------------------------------


def daemon_for(root: Path, *partners: SftpPartner) -> DaemonProcess:
    """The real daemon over a gateway in ``root`` with these partners."""
    extra = "".join(partner_toml(p) for p in partners)
    return DaemonProcess(root, write_config(root, extra))


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """Daemons a test starts; killed at teardown whatever happens."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.kill()


def wait_for(daemon: DaemonProcess, check: Callable[[], bool], what: str,
             timeout: float = 30) -> None:
    """``wait_until``, showing the daemon's last log events if it times out."""
    try:
        wait_until(check, timeout=timeout, what=what)
    except AssertionError as exc:
        tail = [e for e in daemon.logs() if e["event"] != "unparsed"][-25:]
        raise AssertionError(f"{exc}; the daemon's last events: {tail}") from None


def acks(root: Path) -> list[str]:
    """Acknowledgements published so far."""
    return local_files(root / "outbox" / "reports" / "acks")


def polled_since(root: Path, at: str) -> bool:
    """Whether the partner's last poll (its last success, to the second) ended at least a
    second after ``at``: polls that listed the remote folder again since."""
    with contextlib.closing(sqlite3.connect(root / "var" / "gateway.db")) as db:
        row = db.execute("SELECT last_success FROM partners").fetchone()
    return row is not None and row[0] is not None and (
        datetime.fromisoformat(row[0]) - datetime.fromisoformat(at.replace("Z", "+00:00"))
    ).total_seconds() >= 1


def test_a_remote_file_larger_than_max_file_mb_is_never_downloaded(
    remote: Remote, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """A partner's file larger than ``[intake] max_file_mb`` is left on its server with one
    ``sftp.skipped`` line saying why: downloaded, it would only be refused here, whole, and
    could fill the disk first. The partner's other files flow."""
    small = b.positions("RGT", [b.position(1)]).encode()
    big = b.positions("RGT", [b.position(i, dpn=f"EOE/RGT00/{i:03d}/FY1/001")
                              for i in range(1, 11)]).encode()
    limit = 0.002  # MiB: 2,097 bytes, between the two
    assert len(small) < limit * 1024 * 1024 < len(big)
    remote.put(tmp_path / "up", {"big.xml": big, "small.xml": small})
    partner = partner_for(remote, channel="esr")
    daemon = DaemonProcess(tmp_path, write_config(
        tmp_path, f"max_file_mb = {limit}\n" + partner_toml(partner)))
    daemons.append(daemon)
    daemon.start()
    wait_for(daemon, lambda: acks(tmp_path) == ["small.ack.xml"], what="small.xml's ack")
    wait_for(daemon, lambda: any(e["event"] == "sftp.skipped" for e in daemon.logs()),
             what="big.xml skipped")
    said = next(e for e in daemon.logs() if e["event"] == "sftp.skipped")["timestamp"]
    wait_for(daemon, lambda: polled_since(tmp_path, str(said)),
             what="a poll that ended a second after the skip")
    (skipped,) = [e for e in daemon.logs() if e["event"] == "sftp.skipped"]  # said once
    assert skipped["file"] == "big.xml"
    assert skipped["reason"] == (f"{len(big)} bytes, larger than [intake] max_file_mb (2097 "
                                 "bytes): not downloaded")
    assert remote.listing(remote.inbox) == ["big.xml"]
    assert local_files(tmp_path / "inbox" / "esr") == []
    assert acks(tmp_path) == ["small.ack.xml"]
    assert daemon.terminate() == 0
    # and for as long as it is there, the partner's last error in ``status`` says so
    status = subprocess.run(
        [sys.executable, "-m", "gateway", "status", "--config", str(daemon.config)],
        capture_output=True, text=True, check=True, cwd=tmp_path, timeout=60)
    assert f"last error: big.xml skipped: {skipped['reason']}" in status.stdout


def test_a_private_key_others_can_read_is_warned_of_at_start(
    remote: Remote, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """A partner's private key that the group or others can read (the gateway's group holds
    the partners' accounts) is warned of once at start (``sftp.key_exposed``, its mode), as
    OpenSSH would refuse it; the partner still works. A key only the gateway can read: no
    warning."""
    key = tmp_path / "keys" / "partner"
    key.parent.mkdir()
    key.write_bytes(remote.server.client_key.read_bytes())
    key.chmod(0o600)
    daemon = daemon_for(tmp_path, partner_for(remote, private_key=key))
    daemons.append(daemon)

    def run_once() -> list[dict[str, object]]:
        daemon.start()
        wait_for(daemon, lambda: sum(e["event"] == "sftp.connected" for e in daemon.logs())
                 >= daemon.runs, what="the partner connected")
        assert daemon.terminate() == 0
        return [e for e in daemon.logs() if e["event"] == "sftp.key_exposed"]

    assert run_once() == []
    key.chmod(0o640)
    (exposed,) = run_once()
    assert (exposed["partner"], exposed["mode"]) == ("hee-tis", "0o640")


CRASH_POINTS = ["sftp-downloaded", "sftp-fetched", "sftp-published", "sftp-moved",
                "sftp-uploaded", "sftp-delivered"]  # fmt: skip


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_between_any_two_steps_loses_nothing_and_duplicates_nothing(
    point: str, remote: Remote, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """The daemon is killed (SIGKILL) at one step of a take or a delivery and started again:
    the file is taken and acknowledged exactly once, its acknowledgement delivered exactly once,
    the server's copy moved to done, and nothing is left under a temporary name."""
    remote.put(tmp_path / "up", {"pos.xml": b.positions("RGT", [b.position(1)]).encode()})
    partner = partner_for(remote, channel="esr", deliver=("reports/acks",))
    daemon = daemon_for(tmp_path, partner)
    daemons.append(daemon)
    daemon.start(DIT_GATEWAY_CRASH_AT=f"{point}:1")
    assert daemon.wait(60) == -signal.SIGKILL
    evidence = {
        "sftp-downloaded": lambda: local_files(tmp_path / "inbox" / "esr") == [f".pos.xml{PART}"],
        "sftp-fetched": lambda: local_files(tmp_path / "inbox" / "esr") == [f".pos.xml{PART}"],
        "sftp-published": lambda: local_files(tmp_path / "inbox" / "esr") == ["pos.xml"]
        and remote.listing(remote.inbox) == ["pos.xml"],
        "sftp-moved": lambda: remote.listing(remote.done) == ["pos.xml"],
        "sftp-uploaded": lambda: [re.sub(r"[0-9a-f]{12}", "SHA", n)
                                  for n in remote.listing(remote.outbox)]
        == [".pos.ack.xml.SHA.part"],
        "sftp-delivered": lambda: remote.listing(remote.outbox) == ["pos.ack.xml"],
    }
    assert evidence[point](), f"the crash at {point} left an unexpected state"

    def settled() -> bool:
        if remote.listing(remote.outbox) != ["pos.ack.xml"] or remote.listing(remote.inbox):
            return False
        with SqliteStore(tmp_path / "var" / "gateway.db") as db:
            ledger = ExchangeLedger(db)
            return [t.state for t in ledger.takes("hee-tis")] == [DONE] and [
                s for _p, _sha, _r, s in ledger.deliveries("hee-tis")] == ["sent"]

    daemon.start()
    wait_for(daemon, settled, what="the file taken and its ack delivered")
    time.sleep(0.6)  # a few more polls: nothing more may happen
    assert daemon.terminate() == 0

    assert acks(tmp_path) == ["pos.ack.xml"]
    assert remote.listing(remote.done) == ["pos.xml"]
    assert remote.listing(remote.outbox) == ["pos.ack.xml"]
    assert (remote.outbox / "pos.ack.xml").read_bytes() == (
        tmp_path / "outbox" / "reports" / "acks" / "pos.ack.xml").read_bytes()
    assert local_files(tmp_path / "inbox" / "esr") == []
    with SqliteStore(tmp_path / "var" / "gateway.db") as db:
        ledger = ExchangeLedger(db)
        assert [(t.remote_name, t.state) for t in ledger.takes("hee-tis")] == [("pos.xml", DONE)]
        assert [(p, s) for p, _sha, _r, s in ledger.deliveries("hee-tis")] == [
            ("reports/acks/pos.ack.xml", "sent")]
        assert [n for _c, _s, n in db.file_counts()] == [1]


def test_one_partner_down_stalls_neither_the_other_nor_the_local_folders(
    remote: Remote, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """A partner whose server accepts connections but never answers backs off on its own
    deadline while the other partner's files and a local drop are taken and acknowledged;
    `status` shows each partner's state and last success; a restart delivers nothing again."""
    remote.put(tmp_path / "up", {"remote.xml": b.positions("RGT", [b.position(1)]).encode()})
    good = partner_for(remote, channel="esr", deliver=("reports/acks",))
    with black_hole() as port:
        down = partner_for(remote, name="down", port=port, timeout_seconds=1.0, poll_seconds=5)
        daemon = daemon_for(tmp_path, good, down)
        daemons.append(daemon)
        daemon.start()
        wait_until((tmp_path / "inbox" / "esr").is_dir, what="inbox folders")
        (tmp_path / "inbox" / "esr" / "local.xml").write_text(
            b.positions("R1K", [b.position(2, dpn="LDN/R1K/2")]))
        wait_until(lambda: acks(tmp_path) == ["local.ack.xml", "remote.ack.xml"], timeout=20,
                   what="both acks")
        wait_until(lambda: remote.listing(remote.outbox) == ["local.ack.xml", "remote.ack.xml"],
                   what="acks delivered")
        status = subprocess.run(
            [sys.executable, "-m", "gateway", "status", "--config", str(daemon.config)],
            capture_output=True, text=True, check=True, cwd=tmp_path,
        ).stdout
        assert daemon.terminate() == 0
    lines = {line.split()[0]: line for line in status.splitlines() if line.startswith("  ")
             and line.split()[0] in ("hee-tis", "down")}
    assert "connected" in lines["hee-tis"]
    assert "last success 20" in lines["hee-tis"]
    assert "backoff" in lines["down"]
    assert "last success never" in lines["down"]
    first = daemon.logs()
    backoffs = [e for e in first if e["event"] == "sftp.backoff"]
    assert backoffs
    assert all(e["partner"] == "down" for e in backoffs)
    assert "no progress" in str(backoffs[0]["error"]) or "banner" in str(backoffs[0]["error"])
    assert not [e for e in first if "dropped_keys" in e and str(e["event"]).startswith("sftp.")]

    daemon.start()
    wait_until(lambda: sum(e["event"] == "sftp.connected" and e["partner"] == "hee-tis"
                           for e in daemon.logs()) == 2, what="second connection")
    time.sleep(1.0)
    assert daemon.terminate() == 0
    delivered = [e for e in daemon.logs()[len(first):] if e["event"] == "sftp.delivered"]
    assert delivered == []
    assert remote.listing(remote.outbox) == ["local.ack.xml", "remote.ack.xml"]


@pytest.mark.slow
def test_a_thousand_small_files_are_taken_and_acknowledged_by_the_daemon(
    remote: Remote, tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    """1,000 position extracts put in one sftp session are all taken by the real daemon, each
    acknowledged once in outbox/reports/acks/, and all moved to done on the server."""
    up = tmp_path / "up"
    up.mkdir()
    names = [f"pos{i:04d}.xml" for i in range(1000)]
    for i, name in enumerate(names):
        vpd = f"V{i:03d}"
        (up / name).write_text(b.positions(vpd, [b.position(i + 1, dpn=f"EOE/{vpd}/{i}")]))
    remote.put(tmp_path / "mk", {})
    remote.put_folder(up)
    daemon = daemon_for(tmp_path, partner_for(remote, channel="esr", poll_seconds=0.5))
    daemons.append(daemon)
    started = time.monotonic()
    daemon.start()
    wait_until(lambda: len(acks(tmp_path)) == 1000, timeout=120, what="1,000 acks")
    elapsed = time.monotonic() - started
    assert daemon.terminate() == 0
    assert acks(tmp_path) == sorted(n.replace(".xml", ".ack.xml") for n in names)
    assert remote.listing(remote.inbox) == []
    assert remote.listing(remote.done) == names
    assert local_files(tmp_path / "inbox" / "esr") == []
    taken = [e for e in daemon.logs() if e["event"] == "sftp.taken"]
    assert sorted(str(e["remote"]) for e in taken) == names
    print(f"1,000 files taken and acknowledged in {elapsed:.1f} s")


@pytest.mark.slow
def test_a_200_mb_file_is_streamed_without_being_held_in_memory(
    remote: Remote, tmp_path: Path
) -> None:
    """A 200 MB file is downloaded by a gateway process whose peak RSS stays far below the
    file's size (bounded requests in flight, written as they arrive), and arrives whole."""
    up = tmp_path / "up"
    up.mkdir()
    digest = write_big(up / "large.bin", 200)
    remote.put(tmp_path / "mk", {})
    remote.server.sftp_batch([f"put {up / 'large.bin'} {remote.inbox}/large.bin"], timeout=120)
    (up / "large.bin").unlink()
    config = write_config(tmp_path, partner_toml(partner_for(remote, timeout_seconds=30)))
    result = subprocess.run(
        [sys.executable, "-m", "tests.sftp_take", str(config)],
        capture_output=True, text=True, check=True, timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    report = json.loads(result.stdout)
    taken = tmp_path / "inbox" / "tis" / "large.bin"
    assert sha256(taken) == digest
    peak_mb = report["peak_kb"] / 1024
    growth_mb = (report["peak_kb"] - report["before_kb"]) / 1024
    print(f"200 MB taken in {report['seconds']:.1f} s; peak RSS {peak_mb:.0f} MB "
          f"(+{growth_mb:.0f} MB while downloading)")
    assert growth_mb < 40
    assert peak_mb < 100
    assert remote.listing(remote.done) == ["large.bin"]


def test_status_lists_no_partners_before_any_has_run(tmp_path: Path) -> None:
    """`status` has an SFTP section even before a partner has run."""
    config = write_config(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "status", "--config", str(config)],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "sftp partners:\n  (none)" in out


def test_threads_of_a_stopped_exchange_are_gone(
    remote: Remote, tmp_path: Path, store: SqliteStore
) -> None:
    """Stopping a running exchange ends its thread and its connection's threads."""
    remote.put(tmp_path / "up", {"a.xml": b"<a/>"})
    before = threading.active_count()
    exchange = exchange_for(partner_for(remote), tmp_path, store)
    exchange.start()
    wait_until((tmp_path / "inbox" / "tis" / "a.xml").exists, what="taken")
    exchange.stop()
    wait_until(lambda: threading.active_count() <= before, timeout=10, what="threads gone")
