"""Download throughput of the gateway's SFTP endpoint against the OpenSSH ``sftp`` client.

Starts a throw-away OpenSSH sshd (tests/fixtures/sshd.py), puts one large file on it, and
downloads it alternately with ``sftp get`` and with the gateway, on the same server in the same
run; prints the best of each, and the ratio (goal: the gateway at least half as fast). The
gateway is measured twice: its endpoint alone (download, written and hashed as it arrives) and
a whole take (the same, plus fsync, ledger, the rename into the inbox and the remote move).

    python benchmarks/sftp_throughput.py [--mb 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway import logs
from gateway.config import SftpPartner
from gateway.store.exchange import ExchangeLedger
from gateway.store.sqlite import SqliteStore
from gateway.transport.exchange import PartnerExchange
from gateway.transport.sftp import SftpEndpoint
from tests.fixtures.sshd import SshServer, start_sshd

MB = 1024 * 1024


def make_file(path: Path, mb: int) -> None:
    """``mb`` MiB of incompressible bytes."""
    block = os.urandom(MB)
    with path.open("wb") as fh:
        for i in range(mb):
            fh.write(i.to_bytes(8, "big") + block[8:])


def openssh_get(server: SshServer, remote: Path, local: Path) -> float:
    """Seconds the OpenSSH client takes to download ``remote``."""
    local.unlink(missing_ok=True)
    started = time.perf_counter()
    server.sftp_batch([f"get {remote} {local}"], timeout=600)
    return time.perf_counter() - started


def gateway_fetch(partner: SftpPartner, remote: Path, local: Path) -> float:
    """Seconds the gateway's endpoint takes to download ``remote`` (connected beforehand, as
    the OpenSSH client's time includes its connection: that favours OpenSSH slightly)."""
    local.unlink(missing_ok=True)
    with SftpEndpoint(partner) as endpoint, local.open("wb") as out:
        started = time.perf_counter()
        endpoint.fetch(str(remote), out)
        return time.perf_counter() - started


def gateway_take(partner: SftpPartner, root: Path, remote: Path, work: Path) -> float:
    """Seconds of a whole take: download, fsync, ledger, rename into the inbox, remote move."""
    store = SqliteStore(work / "var" / "gateway.db")
    exchange = PartnerExchange(
        partner, inbox=work / "inbox", outbox=work / "outbox", ledger=ExchangeLedger(store),
        settle_seconds=0,
    )  # fmt: skip
    try:
        exchange.poll()  # connect, first listing
        started = time.perf_counter()
        exchange.poll()  # second listing: the file is complete, taken
        elapsed = time.perf_counter() - started
    finally:
        exchange.close()
        store.close()
    taken = work / "inbox" / "tis" / remote.name
    assert taken.stat().st_size == (root / "done" / remote.name).stat().st_size
    (root / "done" / remote.name).rename(remote)
    taken.unlink()
    return elapsed


def main() -> None:
    """Run the comparison and print the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256, help="size of the file (MiB)")
    parser.add_argument("--rounds", type=int, default=3, help="downloads by each client")
    args = parser.parse_args()
    logs.configure("console", "warning")
    with tempfile.TemporaryDirectory(prefix="sftp-bench-") as tmp:
        work = Path(tmp)
        server = start_sshd(work / "sshd")
        try:
            inbox = server.root / "outgoing"
            inbox.mkdir()
            remote = inbox / "large.bin"
            make_file(remote, args.mb)
            partner = SftpPartner(
                name="bench", host=server.host, port=server.port, user=server.user,
                private_key=server.client_key, known_hosts=server.known_hosts,
                remote_inbox=str(inbox), remote_done=str(server.root / "done"),
                timeout_seconds=60,
            )  # fmt: skip
            local = work / "download.bin"
            openssh, fetch, take = [], [], []
            for n in range(args.rounds):
                openssh.append(openssh_get(server, remote, local))
                fetch.append(gateway_fetch(partner, remote, local))
                take.append(gateway_take(partner, server.root, remote, work / f"take{n}"))
            local.unlink(missing_ok=True)
        finally:
            server.kill()
    size = args.mb
    best = {"openssh": size / min(openssh), "fetch": size / min(fetch), "take": size / min(take)}
    print(f"file: {size} MiB, {args.rounds} rounds each, best of each; {os.cpu_count()} CPUs")
    print(f"OpenSSH sftp get:           {best['openssh']:7.1f} MiB/s")
    print(f"gateway endpoint download:  {best['fetch']:7.1f} MiB/s")
    print(f"gateway whole take (fsync): {best['take']:7.1f} MiB/s")
    print(f"ratio gateway/OpenSSH: download {best['fetch'] / best['openssh']:.2f},"
          f" whole take {best['take'] / best['openssh']:.2f} (goal: at least 0.5)")


if __name__ == "__main__":
    main()
