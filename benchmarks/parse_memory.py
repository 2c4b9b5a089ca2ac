"""Streaming parse + XSD validation: peak memory must not grow with the file.

Generates TIS placement files of increasing size, and in a fresh subprocess for each, streams
them through the hardened reader (``iter_records`` with the XSD), keeping nothing. Prints
records/s and peak RSS per size, and the ratio of peak RSS between the largest and the smallest
file against the ratio of their sizes.

    python benchmarks/parse_memory.py [--sizes 2000 20000 200000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import builders as b  # noqa: E402

CHILD = """
import resource, sys
from pathlib import Path
from gateway.xml.schemas import schema
from gateway.xml.secure import iter_records
n = sum(1 for _ in iter_records(Path(sys.argv[1]), schema("tis-placements"), 2**40))
print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_file(path: Path, n: int) -> None:
    """A placement file of ``n`` records, written incrementally."""
    head, tail = b.placements([]).split("\n</PlacementFile>")
    with path.open("w", encoding="utf-8") as fh:
        fh.write(head + "\n")
        for i in range(n):
            person = b.trainee(f"T{i}", surname=f"Surname{i}", gmc=f"{7000000 + i % 999999}")
            fh.write(b.placement(f"P{i}", dpn=f"EOE/RGT00/{i % 5000:05d}/FY1/001",
                                 person=person) + "\n")
        fh.write("</PlacementFile>" + tail)


def main() -> None:
    """Generate, measure, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 20_000, 200_000])
    sizes = parser.parse_args().sizes
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"p{n}.xml"
            write_file(path, n)
            started = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, str(path)], cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout.split()
            seconds = time.perf_counter() - started
            count, rss_kib = int(out[0]), int(out[1])
            assert count == n
            mib = path.stat().st_size / 2**20
            results.append((n, mib, rss_kib / 1024, seconds))
            print(f"{n:>8,} records  {mib:8.1f} MiB  {n / seconds:>9,.0f} records/s  "
                  f"peak RSS {rss_kib / 1024:6.1f} MiB")
    (_, size0, rss0, _), (_, size1, rss1, _) = results[0], results[-1]
    print(f"file size ratio {size1 / size0:.0f}x  ->  peak RSS ratio {rss1 / rss0:.2f}x")


if __name__ == "__main__":
    main()
