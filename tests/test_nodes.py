"""Several nodes on PostgreSQL (spec 11): real ``run`` daemons with names of their own on one
shared folder tree and one database on a real PostgreSQL server; one SIGKILLed halfway; two
polling the same SFTP partner on a real sshd."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from lxml import etree

from tests import builders as b
from tests.conftest import write_config
from tests.daemon import DaemonProcess, wait_until
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.sshd import SshServer, start_sshd
from tests.sftp_helpers import Remote, partner_for, partner_toml, remote_for

N = 1000
LEASE = 3


@pytest.fixture
def database(postgres_server: PostgresServer) -> str:
    """A new database on the session's PostgreSQL server."""
    return postgres_server.new_database()


@pytest.fixture
def nodes(tmp_path: Path, database: str) -> Iterator[list[DaemonProcess]]:
    """Two daemons, ``node-a`` and ``node-b``, over one folder tree and one database."""
    made = []
    for name in ("node-a", "node-b"):
        config = write_config(tmp_path, store_url=database,
                              store_keys=f'node = "{name}"\nlease_seconds = {LEASE}\n')
        config = config.rename(tmp_path / f"{name}.toml")
        daemon = DaemonProcess(tmp_path, config)
        daemon.log_path = tmp_path / f"{name}.log"
        made.append(daemon)
    yield made
    for daemon in made:
        daemon.kill()


def extract(i: int) -> str:
    """An ESR position extract of a VPD of its own."""
    return b.positions(f"V{i:03d}", [b.position(i + 1, dpn=f"EOE/V{i:03d}/{i}/FY1/001")])


def acks(root: Path) -> list[Path]:
    """Published acknowledgements."""
    folder = root / "outbox" / "reports" / "acks"
    return sorted(folder.glob("*.ack.xml")) if folder.is_dir() else []


def processed_by(daemon: DaemonProcess) -> int:
    """How many files a node processed, from its own log."""
    return sum(e["event"] == "file.processed" for e in daemon.logs())


def settled(database: str) -> bool:
    """No receipt is open and no output waits to be published."""
    with psycopg.connect(database) as conn:
        open_ = conn.execute("SELECT COUNT(*) FROM receipts WHERE closed = 0").fetchone()
        pending = conn.execute("SELECT COUNT(*) FROM pending_outputs").fetchone()
    return open_ == (0,) and pending == (0,)


def held_by(database: str, prefix: str) -> list[str]:
    """The names of the open receipts a node (by its owner prefix) holds."""
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT name FROM receipts WHERE closed = 0 AND owner LIKE %s",
                            (prefix + "%",)).fetchall()
    return sorted(name for (name,) in rows)


def assert_each_once(root: Path, database: str, names: list[str]) -> None:
    """One processed ack, one ledger row, one extract and one notice per file."""
    assert sorted(p.name for p in acks(root)) == sorted(f"{n}.ack.xml" for n in names)
    for path in acks(root):
        assert etree.parse(str(path)).getroot().get("status") == "processed", path.name
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT status, COUNT(*) FROM receipts GROUP BY status").fetchall()
        pending = conn.execute("SELECT COUNT(*) FROM pending_outputs").fetchone()
    assert rows == [("processed", len(names))]
    assert pending == (0,)
    assert len(list((root / "outbox" / "tis" / "EOE").glob("*.xml"))) == len(names)
    assert len(list((root / "outbox" / "reports").glob("V*/notifications-*.xml"))) == len(names)
    assert [p for p in (root / "var" / "processing").rglob("*") if p.is_file()] == []
    assert [p for p in root.rglob(".*") if p.is_file()] == []


def drop_all(root: Path) -> list[str]:
    """N files in the shared inbox; their stems."""
    inbox = root / "inbox" / "esr"
    inbox.mkdir(parents=True, exist_ok=True)
    names = [f"pos{i:04d}" for i in range(N)]
    for i, name in enumerate(names):
        (inbox / f"{name}.xml").write_text(extract(i))
    return names


def test_two_nodes_share_1000_files_each_acknowledged_once(
    tmp_path: Path, database: str, nodes: list[DaemonProcess]
) -> None:
    """Two nodes on one folder tree and one database take 1,000 files between them: each is
    acknowledged once and no output is written twice."""
    names = drop_all(tmp_path)
    for node in nodes:
        node.start()
    wait_until(lambda: len(acks(tmp_path)) >= N and settled(database), timeout=300,
               what="1,000 acks")
    for node in nodes:
        assert node.terminate() == 0
    assert_each_once(tmp_path, database, names)
    assert all(processed_by(node) > 0 for node in nodes), "both nodes should have worked"
    assert sum(processed_by(node) for node in nodes) == N
    jobs = [e["job"] for node in nodes for e in node.logs() if e["event"] == "job.done"]
    assert jobs.count("release-deferred") == 1, "the daily job runs once across the nodes"


def test_a_node_killed_halfway_is_finished_by_the_other_within_the_lease(
    tmp_path: Path, database: str, nodes: list[DaemonProcess]
) -> None:
    """node-a SIGKILLed halfway through 1,000 files: node-b takes over what node-a held once
    the lease runs out, and everything is acknowledged once within lease_seconds plus a few
    seconds of the last ack node-a could have written."""
    names = drop_all(tmp_path)
    first, second = nodes
    first.start()
    second.start()
    wait_until(lambda: len(acks(tmp_path)) >= N // 2, timeout=300, what="half the acks")
    assert first.proc is not None
    first.proc.kill()
    killed = time.monotonic()
    first.wait(30)
    held = held_by(database, "node-a:")
    wait_until(lambda: len(acks(tmp_path)) >= N and settled(database), timeout=300,
               what="every file acknowledged and nothing left open")
    elapsed = time.monotonic() - killed
    print(f"node-b finished node-a's half {elapsed:.1f} s after the kill (lease {LEASE} s)")
    assert elapsed < LEASE + 30
    assert second.terminate() == 0
    assert_each_once(tmp_path, database, names)
    taken = [e for e in second.logs() if e["event"] == "recovery.taken_over"]
    # node-a may be killed between two files, holding nothing: then there is nothing to take
    assert sorted(str(e["file"]) for e in taken) == held
    assert all(str(e["owner"]).startswith("node-a:") for e in taken)
    assert not [e for e in second.logs() if e["event"] == "file.claim_failed"]


BEHIND = 300  # seconds node-b's clock runs behind node-a's: a hundred leases


def faketime_library() -> str:
    """libfaketime for threaded programs (Debian's faketime package, which
    scripts/install-test-deps.sh installs)."""
    (found,) = Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1")
    return str(found)


def test_a_node_whose_clock_is_wrong_still_takes_over_a_dead_node_s_file_within_the_lease(
    tmp_path: Path, database: str
) -> None:
    """node-b's clock runs five minutes behind node-a's (libfaketime: a real clock, set
    wrong, as an unsynchronised host's is). node-a dies (SIGKILL) holding a claimed file.
    Leases are set and compared by the database's clock, so node-b takes the file over once
    the lease has run out, as it would with the clocks agreeing, and warns once of the
    difference (``store.clock_skew``). Before, by its own clock node-b saw node-a's lease
    run for five minutes more, and the file waited that long."""
    def node(name: str) -> DaemonProcess:
        config = write_config(tmp_path, store_url=database,
                              store_keys=f'node = "{name}"\nlease_seconds = {LEASE}\n')
        daemon = DaemonProcess(tmp_path, config.rename(tmp_path / f"{name}.toml"))
        daemon.log_path = tmp_path / f"{name}.log"
        return daemon

    node_a, node_b = node("node-a"), node("node-b")
    node_b.env = {"LD_PRELOAD": faketime_library(), "FAKETIME": f"-{BEHIND}s",
                  "FAKETIME_DONT_FAKE_MONOTONIC": "1"}  # only the wall clock is wrong
    inbox = tmp_path / "inbox" / "esr"
    inbox.mkdir(parents=True)
    (inbox / "pos.xml").write_text(extract(1))
    try:
        node_a.start(DIT_GATEWAY_CRASH_AT="claimed:1")  # dies holding the file's claim
        assert node_a.wait(60) == -signal.SIGKILL
        assert held_by(database, "node-a:") == ["pos.xml"]
        died = time.monotonic()
        node_b.start()
        wait_until(lambda: [p.name for p in acks(tmp_path)] == ["pos.ack.xml"],
                   timeout=LEASE + 30, what="node-b to finish node-a's file")
        print(f"node-b finished it {time.monotonic() - died:.1f} s after node-a died")
        assert node_b.terminate() == 0
        (taken,) = [e for e in node_b.logs() if e["event"] == "recovery.taken_over"]
        assert (taken["file"], str(taken["owner"]).split(":")[0]) == ("pos.xml", "node-a")
        (skew,) = [e for e in node_b.logs() if e["event"] == "store.clock_skew"]
        assert BEHIND - 5 < float(skew["seconds"]) < BEHIND + 5
        assert settled(database)
    finally:
        node_a.kill()
        node_b.kill()


@pytest.fixture
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A throw-away sshd for the test."""
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.kill()


def test_two_nodes_polling_one_partner_take_and_deliver_each_file_once(
    tmp_path: Path, database: str, sshd: SshServer, request: pytest.FixtureRequest
) -> None:
    """Two nodes poll the same SFTP partner: every remote file is taken once (one ack each,
    moved to done once) and every output (the acks) delivered once."""
    remote: Remote = remote_for(sshd, re.sub(r"\W+", "_", request.node.name))
    up = tmp_path / "up"
    up.mkdir()
    names = [f"pos{i:03d}.xml" for i in range(60)]
    for i, name in enumerate(names):
        (up / name).write_text(extract(i))
    remote.put(tmp_path / "mk", {})
    remote.put_folder(up)
    partner = partner_for(remote, channel="esr", poll_seconds=0.2, deliver=("reports/acks",))
    root = tmp_path / "gw"
    root.mkdir()
    daemons = []
    for node in ("node-a", "node-b"):
        config = write_config(root, partner_toml(partner), store_url=database,
                              store_keys=f'node = "{node}"\n').rename(root / f"{node}.toml")
        daemon = DaemonProcess(root, config)
        daemon.log_path = root / f"{node}.log"
        daemons.append(daemon)
    try:
        for daemon in daemons:
            daemon.start()
        wait_until(lambda: len(remote.listing(remote.outbox)) >= len(names), timeout=120,
                   what="every ack delivered")
        time.sleep(2)  # more polls by both nodes pass: nothing is taken or delivered again
        for daemon in daemons:
            assert daemon.terminate() == 0
    finally:
        for daemon in daemons:
            daemon.kill()
    expected_acks = sorted(n.replace(".xml", ".ack.xml") for n in names)
    assert sorted(p.name for p in acks(root)) == expected_acks
    assert remote.listing(remote.outbox) == expected_acks
    assert remote.listing(remote.done) == names
    assert remote.listing(remote.inbox) == []
    events = [e for d in daemons for e in d.logs()]
    taken = sorted(str(e["remote"]) for e in events if e["event"] == "sftp.taken")
    assert taken == names
    delivered = [e for e in events if e["event"] == "sftp.delivered"]
    assert len(delivered) == len(names)
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT status, COUNT(*) FROM receipts GROUP BY status").fetchall()
    assert rows == [("processed", len(names))]
