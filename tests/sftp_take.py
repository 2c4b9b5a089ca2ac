"""Runs the first SFTP partner of a config in this process, without the daemon, until every
remote file it listed is taken; prints the peak RSS as JSON (the streaming test measures it).

    python -m tests.sftp_take CONFIG
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from gateway import config, logs
from gateway.store.exchange import ExchangeLedger
from gateway.store.sqlite import SqliteStore
from gateway.transport.exchange import PartnerExchange


def peak_rss_kb() -> int:
    """This process's peak resident set size so far, in KiB (Linux: ``VmHWM``; not
    ``ru_maxrss``, which a child inherits from the parent that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(path: Path) -> None:
    """Poll until a file has been taken, then report."""
    settings = config.load(path)
    logs.configure("json", "warning")
    partner = settings.sftp[0]
    store = SqliteStore(settings.sqlite_path or Path("var/gateway.db"))
    ledger = ExchangeLedger(store)
    exchange = PartnerExchange(
        partner, inbox=settings.paths.inbox, outbox=settings.paths.outbox, ledger=ledger,
        settle_seconds=0,
    )  # fmt: skip
    exchange.poll()  # connected, first listing: everything loaded that a take needs
    before = peak_rss_kb()
    started = time.monotonic()
    deadline = started + 300
    while not ledger.takes(partner.name) and time.monotonic() < deadline:
        exchange.poll()
    elapsed = time.monotonic() - started
    taken = [t.local_path for t in ledger.takes(partner.name)]
    exchange.close()
    store.close()
    print(json.dumps({"before_kb": before, "peak_kb": peak_rss_kb(), "seconds": elapsed,
                      "taken": taken}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
