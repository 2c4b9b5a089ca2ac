"""A 60,000-person ESR extract → its TIS person-update delta: time and peak memory.

Runs the real command line (``python -m gateway process``) in a fresh folder three times:
positions (60,000 posts), the first person extract (everyone is new: 60,000 sent), and a second
extract where 1% of persons changed (600 sent). Prints seconds, persons per second, peak RSS, and
peak RSS as a ratio of the extract's size (memory must not grow with the file).

    python benchmarks/persons_delta.py [--persons 60000]
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


def write_positions(path: Path, n: int) -> None:
    """One VPD with ``n`` training posts on the interface."""
    with path.open("w", encoding="utf-8") as fh:
        fh.write(b.positions("RGT", []).split("\n</PositionExtract>")[0] + "\n")
        for i in range(n):
            fh.write(b.position(i + 1, str(100000 + i), dpn=f"EOE/RGT00/{i:06d}/FY1/001") + "\n")
        fh.write("</PositionExtract>\n")


def write_persons(path: Path, n: int, day: str, changed_every: int = 0) -> None:
    """``n`` persons, each on their own post; every ``changed_every``-th has a new e-mail."""
    with path.open("w", encoding="utf-8") as fh:
        fh.write(b.persons("RGT", [], extract_date=day).split("\n</PersonExtract>")[0] + "\n")
        for i in range(n):
            email = f"p{i}@example.org"
            if changed_every and i % changed_every == 0:
                email = f"p{i}.new@example.org"
            fh.write(
                b.person(
                    str(500000 + i),
                    [b.assignment(f"A{i}", str(100000 + i))],
                    surname=f"Surname{i}",
                    gmc=f"{7000000 + i}",
                    email=email,
                    address={"Line1": f"{i} High Street", "Town": "Cambridge",
                             "Postcode": "CB1 1AA"},
                    absences=[("Sickness", "2026-01-05", "2026-01-09")] if i % 10 == 0 else [],
                )
                + "\n"
            )
        fh.write("</PersonExtract>\n")


def main() -> None:
    """Generate, run, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=60_000)
    n = parser.parse_args().persons
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_config(folder)
        positions, first, second = folder / "pos.xml", folder / "p1.xml", folder / "p2.xml"
        write_positions(positions, n)
        write_persons(first, n, "2026-11-02")
        write_persons(second, n, "2026-11-03", changed_every=100)
        size_mb = first.stat().st_size / 2**20
        t_pos, _ = process(folder, positions)
        t_first, rss_first = process(folder, first)
        t_delta, rss_delta = process(folder, second)
        update = folder / "outbox" / "tis" / "EOE" / "persons-RGT-2026-11-03.xml"
        sent = update.read_text().count("<Person ")
        print(f"persons: {n:,}  extract: {size_mb:.1f} MiB  positions load: {t_pos:.1f} s")
        print(f"first extract (all {n:,} new): {t_first:.1f} s, "
              f"{n / t_first:,.0f} persons/s, peak RSS {rss_first:.0f} MiB")
        print(f"delta extract ({sent:,} changed): {t_delta:.1f} s, "
              f"{n / t_delta:,.0f} persons/s, peak RSS {rss_delta:.0f} MiB")
        print(f"ratio peak RSS / extract size: {rss_delta / size_mb:.2f}")
        print(f"ratio delta sent / persons: {sent / n:.3f} (expected {1 / 100:.3f})")


if __name__ == "__main__":
    main()
