"""National data for the benchmarks: seeded, reproducible, sizes adjustable, valid against the XSDs.

At ``--scale 1`` (England): 191 VPDs, each in one of 13 regions, and 100,000 posts with DPNs of
their VPD's region in 191 ESR position extracts (some DPNs carried twice in one VPD — P2's
duplicates —, host/lead pairs across two VPDs, shared posts, one post in 20 managed by the next
region), 60,000 persons in 191 ESR person extracts and a second set with 1% changed (the delta),
one TIS file of 60,000 placements (70% starting within the 13-week window, 20% later — held —,
10% too soon), its re-send with 1% changed, and a Trac check file of 60,000 applicants. Every
file is written as it is generated (never a whole tree in memory).

    python benchmarks/generate.py OUT [--scale 1.0] [--seed 2026]
    python benchmarks/generate.py OUT --placements 240000   # more placements (and posts)

The ESR load confirmation answers load files the gateway writes, so ``run.py`` makes it from
them (:func:`write_confirmations`).
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import builders as b  # noqa: E402

AS_OF = date(2026, 11, 2)  # the day the placements are processed
DEANERIES = ("EOE", "KSS", "LDN", "NE", "NW", "SW", "TV", "WM", "YH", "EM", "WX", "SE", "PEN")
GRADES = ("F1", "F2", "CT1", "CT2", "ST3", "ST4", "ST5")


@dataclass(frozen=True)
class Sizes:
    """How much of everything."""

    vpds: int = 191
    posts: int = 100_000
    persons: int = 60_000
    placements: int = 60_000
    applicants: int = 60_000

    @classmethod
    def scaled(cls, scale: float, placements: int | None = None) -> Sizes:
        """National sizes times ``scale`` (at least one VPD's worth); ``placements`` overrides
        the placements (and grows the posts to carry them)."""
        n = max(int(60_000 * scale), 10) if placements is None else placements
        return cls(vpds=min(191, max(int(191 * scale), 3)) if scale < 1 else 191,
                   posts=max(int(100_000 * scale), n * 5 // 3),
                   persons=max(int(60_000 * scale), 10), placements=n, applicants=n)


def vpd(i: int) -> str:
    """The VPD code of VPD ``i``."""
    return f"V{i:03d}"


class Nation:
    """The posts and people, as functions of their number (nothing is kept in memory)."""

    def __init__(self, sizes: Sizes, seed: int = 2026) -> None:
        self.sizes = sizes
        self.seed = seed

    def vpd_of(self, post: int) -> int:
        """The VPD of post ``post``."""
        return post % self.sizes.vpds

    def dpn(self, post: int) -> str:
        """The DPN of a post: every 500th carries its predecessor's in the same VPD (P2), every
        250th is the host half of a host/lead pair whose lead is the next post (another VPD)."""
        if post % 500 == 499:
            post -= self.sizes.vpds  # the same VPD's earlier post: a duplicate DPN
        if post % 250 == 124:
            post += 1  # the lead's DPN, in the next VPD
        v = self.vpd_of(post)
        return f"{self.deanery(v)}/{vpd(v)}/{post:06d}/{GRADES[post % len(GRADES)]}/001"

    @staticmethod
    def deanery(v: int) -> str:
        """The local office of VPD ``v``: a trust sits in one of England's 13 regions, and its
        DPNs carry that region's code."""
        return DEANERIES[v % len(DEANERIES)]

    def managing(self, post: int) -> str | None:
        """Every 20th post is managed by the next region's office (the FAQ's cross-boundary
        post: ``ManagingDeaneryBody`` set), so its VPD's extract goes to two deaneries (P3)."""
        if post % 20 == 3:
            return DEANERIES[(self.vpd_of(post) + 1) % len(DEANERIES)]
        return None

    def position(self, post: int) -> str:
        """The ESR ``Position`` of a post."""
        host_lead = None
        if post % 250 == 124:
            host_lead = "Host"
        elif post % 250 == 125:
            host_lead = "Lead"
        return b.position(post + 1, str(100_000 + post), dpn=self.dpn(post),
                          ptype="Shared" if post % 100 == 7 else "Single",
                          host_lead=host_lead, mdb=self.managing(post))

    def born(self, person: int) -> date:
        """Person ``person``'s date of birth, the same in TIS and ESR (A8 finds them)."""
        rng = random.Random(self.seed * 1_000_003 + person)
        return date(1985, 1, 1) + timedelta(days=rng.randrange(15 * 365))

    def trainee(self, person: int, *, changed: bool = False) -> dict[str, object]:
        """The TIS trainee of person ``person``."""
        return b.trainee(f"T{person}", forenames=f"Given{person}",
                         surname=f"Family{person}{'x' if changed else ''}",
                         dob=self.born(person).isoformat(), gmc=f"{7_000_000 + person}",
                         nino=f"QQ{person % 1_000_000:06d}C", email=None)

    def start(self, placement: int) -> date:
        """70% within the window, 20% later (held), 10% too soon (START_TOO_SOON)."""
        bucket = placement % 10
        if bucket < 7:
            return AS_OF + timedelta(days=10 + placement % 70)
        if bucket < 9:
            return AS_OF + timedelta(days=120 + placement % 150)
        return AS_OF + timedelta(days=1)


def _stream(path: Path, head: str, tail: str, rows: Iterator[str]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        fh.write(head)
        for row in rows:
            fh.write(row)
            fh.write("\n")
        fh.write(tail)


def _split(document: str) -> tuple[str, str]:
    """A builder's empty document as (head, tail) around where the records go."""
    marker = "\n</"
    cut = document.rindex(marker)
    return document[:cut] + "\n", document[cut + 1:]


def write_positions(nation: Nation, folder: Path) -> list[Path]:
    """One full ESR position extract per VPD."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for v in range(nation.sizes.vpds):
        head, tail = _split(b.positions(vpd(v), []))
        path = folder / f"positions-{vpd(v)}.xml"
        _stream(path, head, tail, (nation.position(p)
                                   for p in range(v, nation.sizes.posts, nation.sizes.vpds)))
        paths.append(path)
    return paths


def write_persons(nation: Nation, folder: Path, extract_date: str, changed_every: int = 0,
                  prefix: str = "persons") -> list[Path]:
    """One ESR person extract per VPD: person ``i`` holds post ``i``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for v in range(nation.sizes.vpds):
        head, tail = _split(b.persons(vpd(v), [], extract_date=extract_date))

        def rows(v: int = v) -> Iterator[str]:
            for i in range(v, nation.sizes.persons, nation.sizes.vpds):
                changed = bool(changed_every) and i % changed_every == 0
                # The post's holder today, leaving before the placements start (A7).
                leaving = (AS_OF + timedelta(days=5)).isoformat()
                yield b.person(f"E{i}", [b.assignment(f"A{i}", str(100_000 + i),
                                                      projected_end=leaving)],
                               forenames=f"Given{i}", surname=f"Family{i}{'x' if changed else ''}",
                               dob=nation.born(i).isoformat(), gmc=f"{7_000_000 + i}",
                               nino=f"QQ{i % 1_000_000:06d}C")

        path = folder / f"{prefix}-{vpd(v)}.xml"
        _stream(path, head, tail, rows())
        paths.append(path)
    return paths


def write_placements(nation: Nation, path: Path, changed_every: int = 0) -> None:
    """The TIS placement file: placement ``i`` on post ``i`` for person ``i``."""
    head, tail = _split(b.placements([]))

    def rows() -> Iterator[str]:
        for i in range(nation.sizes.placements):
            start = nation.start(i)
            end = start + timedelta(days=182 + (31 if changed_every and i % changed_every == 0
                                                else 0))
            yield b.placement(f"P{i}", dpn=nation.dpn(i), start=start.isoformat(),
                              end=end.isoformat(), person=nation.trainee(i))

    _stream(path, head, tail, rows())


def write_checks(nation: Nation, path: Path) -> None:
    """The Trac check file: applicant ``i`` matches placement ``i`` (by id) with a DBS check."""
    head, tail = _split(b.checks([]))

    def rows() -> Iterator[str]:
        for i in range(nation.sizes.applicants):
            yield b.applicant(f"TR{i}", vpd(nation.vpd_of(i)), placement_id=f"P{i}",
                              forenames=f"Given{i}", surname=f"Family{i}",
                              checks=[b.dbs(f"{i:012d}", issued="2026-10-01")])

    _stream(path, head, tail, rows())


def write_confirmations(outbox: Path, folder: Path, fail_every: int = 50) -> list[Path]:
    """An ESR load confirmation for every applicant load in ``outbox/esr``: SUCCESS for each
    record, FAIL for every ``fail_every``-th."""
    from lxml import etree  # noqa: PLC0415

    ns = "{urn:dit-gateway:esr:applicant-load:1}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for load in sorted(outbox.glob("esr/*/applicants-*.xml")):
        root = etree.parse(str(load)).getroot()
        code = root.get("vpd", load.parent.name)
        head, tail = _split(b.confirmations(code, load.name, []))

        def rows(root: etree._Element = root) -> Iterator[str]:
            for n, applicant in enumerate(root.iter(f"{ns}Applicant")):
                pid, action = applicant.get("placementId", ""), applicant.get("action", "create")
                if n % fail_every == fail_every - 1:
                    yield b.confirmation(pid, "FAIL", action=action, message_type="ERROR",
                                         message="Rejected by ESR.")
                else:
                    yield b.confirmation(pid, action=action, number=f"APP-{pid}",
                                         assignment_id=str(40_000_000 + n))

        path = folder / f"confirmation-{code}-{load.stem}.xml"
        _stream(path, head, tail, rows())
        paths.append(path)
    return paths


def generate(out: Path, sizes: Sizes, seed: int = 2026) -> dict[str, list[Path]]:
    """Every input of the benchmark under ``out``; paths by flow."""
    nation = Nation(sizes, seed)
    out.mkdir(parents=True, exist_ok=True)
    placements, resend, checks = out / "placements.xml", out / "resend.xml", out / "checks.xml"
    write_placements(nation, placements)
    write_placements(nation, resend, changed_every=100)
    write_checks(nation, checks)
    return {
        "positions": write_positions(nation, out / "positions"),
        "persons": write_persons(nation, out / "persons", "2026-11-02"),
        "persons_delta": write_persons(nation, out / "persons-delta", "2026-11-03", 100,
                                       "persons-delta"),
        "placements": [placements],
        "resend": [resend],
        "checks": [checks],
    }


def add_size_options(parser: argparse.ArgumentParser) -> None:
    """``--scale``, ``--placements`` and ``--seed``: what :meth:`Sizes.scaled` and
    :func:`generate` take (this script's and ``run.py``'s)."""
    parser.add_argument("--scale", type=float, default=1.0,
                        help="national sizes times this (1.0: 191 VPDs, 100,000 posts, "
                        "60,000 persons, placements and applicants)")
    parser.add_argument("--placements", type=int, default=None,
                        help="placements and applicants instead (posts grow to carry them)")
    parser.add_argument("--seed", type=int, default=2026, help="the same seed, the same files")


def main(argv: list[str] | None = None) -> None:
    """Generate into OUT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    add_size_options(parser)
    args = parser.parse_args(argv)
    sizes = Sizes.scaled(args.scale, args.placements)
    made = generate(args.out, sizes, args.seed)
    total = sum(p.stat().st_size for paths in made.values() for p in paths)
    print(f"{sizes}: {sum(len(p) for p in made.values())} files, {total / 2**20:.1f} MiB "
          f"in {args.out}")


if __name__ == "__main__":
    main()

