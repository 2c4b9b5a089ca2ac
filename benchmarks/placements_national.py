"""A national TIS placement file (60,000 placements across 150 VPDs) through the pipeline.

Loads 150 position extracts (400 posts each), then times ``dit-gateway process`` of one file of
60,000 placements starting within the 13-week window, and of the same placements re-sent with
1% changed (all ``unchanged`` but 600 ``update``s). Prints seconds, placements/s, peak RSS, and
the ratio of the re-send's time to the first run's.

    python benchmarks/placements_national.py [--placements 60000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import process, write_config  # noqa: E402
from tests import builders as b  # noqa: E402

VPDS = 150


def vpd(i: int) -> str:
    """A VPD code."""
    return f"R{i:03d}"


def dpn(i: int) -> str:
    """The DPN of post ``i``."""
    return f"EOE/{vpd(i % VPDS)}/{i:06d}/FY1/001"


def write_placements(path: Path, n: int, changed_every: int = 0) -> None:
    """``n`` placements, one per post; every ``changed_every``-th ends a month later."""
    head, tail = b.placements([]).split("\n</PlacementFile>")
    with path.open("w", encoding="utf-8") as fh:
        fh.write(head + "\n")
        for i in range(n):
            end = "2027-03-01" if changed_every and i % changed_every == 0 else "2027-02-01"
            person = b.trainee(f"T{i}", surname=f"Surname{i}", gmc=f"{7000000 + i}")
            fh.write(b.placement(f"P{i}", dpn=dpn(i), start="2026-12-01", end=end,
                                 person=person) + "\n")
        fh.write("</PlacementFile>" + tail)


def main() -> None:
    """Generate, run, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--placements", type=int, default=60_000)
    n = parser.parse_args().placements
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_config(folder)
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
        t1, rss1 = process(folder, first)
        t2, rss2 = process(folder, second)
        loads = len(list((folder / "outbox" / "esr").rglob("applicants-*.xml")))
        print(f"positions: {n:,} posts in {VPDS} VPDs loaded in {t_pos:.1f} s")
        print(f"first file: {n:,} placements in {t1:.1f} s = {n / t1:,.0f} placements/s, "
              f"peak RSS {rss1:.0f} MiB")
        print(f"re-send (1% changed): {t2:.1f} s = {n / t2:,.0f} placements/s, "
              f"peak RSS {rss2:.0f} MiB")
        print(f"applicant load files written: {loads}; ratio re-send/first time: {t2 / t1:.2f}")


if __name__ == "__main__":
    main()
