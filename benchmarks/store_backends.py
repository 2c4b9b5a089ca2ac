"""The national placements file on SQLite and on PostgreSQL, in the same run.

Loads the position extracts of ``placements_national`` (150 VPDs), then times ``dit-gateway
process`` of the 60,000-placement file and of its 1%-changed re-send, once with the embedded
SQLite store and once with a PostgreSQL store on a throw-away local server (Debian's
``postgresql``, started like the tests' fixture). Prints each time and the ratio
PostgreSQL / SQLite (the goal: at most 1.5).

    python benchmarks/store_backends.py [--placements 60000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import process, write_config  # noqa: E402
from benchmarks.placements_national import VPDS, dpn, vpd, write_placements  # noqa: E402
from tests import builders as b  # noqa: E402
from tests.fixtures.postgres import PostgresServer  # noqa: E402


def run(folder: Path, n: int, store_url: str) -> tuple[float, float, float]:
    """(positions, first file, re-send) seconds for one store."""
    write_config(folder, store_url)
    extracts = []
    for v in range(VPDS):
        posts = [b.position(i + 1, str(100000 + i), dpn=dpn(i)) for i in range(v, n, VPDS)]
        path = folder / f"pos-{vpd(v)}.xml"
        path.write_text(b.positions(vpd(v), posts))
        extracts.append(path)
    t_pos, _ = process(folder, *extracts)
    first, second = folder / "tis-1.xml", folder / "tis-2.xml"
    write_placements(first, n)
    write_placements(second, n, changed_every=100)
    t1, _ = process(folder, first)
    t2, _ = process(folder, second)
    return t_pos, t1, t2


def main() -> None:
    """Both stores, one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--placements", type=int, default=60_000)
    n = parser.parse_args().placements
    server = PostgresServer.start(Path(tempfile.mkdtemp(prefix="dit-gateway-bench-pg-")))
    try:
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as c:
            lite = run(Path(a), n, "")
            pg = run(Path(c), n, server.new_database())
    finally:
        server.stop()
    print(f"{n:,} placements, {VPDS} VPDs        SQLite   PostgreSQL   ratio")
    for label, x, y in zip(("positions", "placements", "re-send"), lite, pg, strict=True):
        print(f"  {label:28} {x:7.1f} s {y:9.1f} s   {y / x:5.2f}")
    print(f"placements_pg_ratio={pg[1] / lite[1]:.2f} resend_pg_ratio={pg[2] / lite[2]:.2f}")


if __name__ == "__main__":
    main()
