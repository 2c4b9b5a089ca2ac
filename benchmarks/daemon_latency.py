"""Close → acknowledgement latency of a running daemon, for one-record files.

Starts ``dit-gateway run`` (default intake settings) on a fresh folder with one VPD's positions
loaded, then drops 200 one-record position extracts into ``inbox/esr`` one after another: each
written under its final name and closed, then the time until its acknowledgement appears.
Prints p50, p95 and max, and the ratio p95 / goal (300 ms).

    python benchmarks/daemon_latency.py [--files 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import builders as b  # noqa: E402

GOAL_MS = 300.0
CONFIG = (
    '[paths]\ninbox="inbox"\noutbox="outbox"\nvar="var"\n'
    '[store]\nurl="sqlite:///var/g.db"\n[http]\nlisten=""\n'
)


def wait_for(path: Path, timeout: float = 30.0) -> float:
    """Poll until ``path`` exists; the time it was seen."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if path.exists():
            return time.perf_counter()
        time.sleep(0.002)
    raise SystemExit(f"no acknowledgement {path.name} after {timeout} s")


def main(argv: list[str] | None = None) -> None:
    """Run the daemon, drop the files one by one, report the percentiles."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    n = parser.parse_args(argv).files
    with tempfile.TemporaryDirectory(prefix="dit-latency-") as tmp:
        folder = Path(tmp)
        (folder / "g.toml").write_text(CONFIG)
        inbox = folder / "inbox" / "esr"
        inbox.mkdir(parents=True)
        acks = folder / "outbox" / "reports" / "acks"
        log = (folder / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(folder / "g.toml")],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log,
        )
        try:
            (inbox / "warm.xml").write_text(b.positions("RGT", [b.position(1)]))
            wait_for(acks / "warm.ack.xml", 60)
            latencies = []
            for i in range(n):
                text = b.positions(f"L{i % 900:03d}",
                                   [b.position(i + 2, dpn=f"EOE/L{i % 900:03d}/{i}/F1/001")])
                path = inbox / f"one-{i:04d}.xml"
                with path.open("w") as fh:
                    fh.write(text)
                closed = time.perf_counter()
                seen = wait_for(acks / f"one-{i:04d}.ack.xml")
                latencies.append((seen - closed) * 1000)
        finally:
            daemon.terminate()
            daemon.wait(60)
            log.close()
        events = [json.loads(line) for line in (folder / "daemon.log").read_text().splitlines()
                  if line.startswith("{")]
        processed = sum(e["event"] == "file.processed" for e in events)
        durations = [e["duration_ms"] for e in events if e["event"] == "file.processed"]
    cuts = statistics.quantiles(latencies, n=100)
    p50, p95 = statistics.median(latencies), cuts[94]
    print(f"{n} one-record files, one after another, default intake settings "
          f"({processed} processed)")
    print(f"close -> ack: p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {max(latencies):.0f} ms")
    print(f"of which processing (claim to ack, the daemon's duration_ms): p50 "
          f"{statistics.median(durations):.0f} ms")
    print(f"p95_ms={p95:.0f} goal_ms={GOAL_MS:.0f} ratio={p95 / GOAL_MS:.2f}")


if __name__ == "__main__":
    main()
