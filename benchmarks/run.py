"""Every flow through the real ``dit-gateway process`` on national data, against the limit.

The limit of a file is lxml streaming it and validating it against its XSD, nothing else — the
least any gateway must do with it. Both the gateway and the limit run as subprocesses of this
script (so both include Python's start) on the same files, in the same run; the ratio is
gateway seconds / limit seconds. SQL statements are counted by the SQLite store itself
(``DIT_GATEWAY_COUNT_SQL``).

    python benchmarks/run.py [--scale 1.0] [--placements N] [--seed 2026] [--keep DIR]
                             [--repeat N]

The gateway's modules are compiled to bytecode first, as an installed wheel has them: with
``PYTHONDONTWRITEBYTECODE`` set (as on CI) a checkout would otherwise compile its source again in
every process, about 70 ms that no installed gateway spends.

The release row is the daily job's own time (``job.done``'s ``duration_ms``; the ``tick`` that
runs it also writes the rotation grids and the other daily jobs, shown on the ``daily jobs``
row). The last line is ``placements_ratio=<x> resend_ratio=<y> release_ratio=<z> persons_ratio=<p>
peak_rss_mb=<m>``.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.generate import (  # noqa: E402
    AS_OF,
    Sizes,
    add_size_options,
    generate,
    write_confirmations,
)

CONFIG = (
    '[paths]\ninbox="inbox"\noutbox="outbox"\nvar="var"\n'
    '[store]\nurl="sqlite:///var/g.db"\n[log]\nlevel="info"\n[http]\nlisten=""\n'
)

# Runs a command and prints its wall time, the peak RSS of its process tree and the durations
# of the jobs it logged (``job.done``), as JSON.
_MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
run = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
seconds = time.perf_counter() - started
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
jobs = {}
for line in run.stderr.splitlines():
    if line.startswith("{"):
        event = json.loads(line)
        if event.get("event") == "job.done":
            jobs[event["job"]] = event["duration_ms"] / 1000
print(json.dumps({"seconds": seconds, "rss": rss, "code": run.returncode, "jobs": jobs}))
"""

# The limit: stream each file with lxml, validating against the XSD, clearing as it goes.
_LIMIT = """
import sys
from lxml import etree
schema = etree.XMLSchema(etree.parse(sys.argv[1]))
records = 0
for path in sys.argv[2:]:
    for _event, element in etree.iterparse(path, events=("end",), schema=schema,
                                          resolve_entities=False, no_network=True):
        if element.getparent() is not None and element.getparent().getparent() is None:
            records += 1
            element.clear(keep_tail=False)
            while element.getprevious() is not None:
                del element.getparent()[0]
print(records, file=sys.stderr)
"""


@dataclass
class Row:
    """One flow's figures."""

    flow: str
    records: int
    seconds: float
    rss: float
    statements: int
    limit: float

    @property
    def ratio(self) -> float:
        """Gateway seconds over limit seconds."""
        return self.seconds / self.limit if self.limit else float("nan")


def measure(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Wall time, peak RSS (MiB), exit code and job durations of ``command``."""
    result = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True,
                            text=True, check=True, cwd=ROOT, env={**os.environ, **(env or {})})
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def limit(xsd: str, files: list[Path]) -> float:
    """Seconds lxml takes to stream and validate ``files`` against ``xsd``."""
    figures = measure([sys.executable, "-c", _LIMIT, str(ROOT / "xsd" / f"{xsd}.xsd"),
                       *map(str, files)])
    return figures["seconds"]


class Gateway:
    """A throw-away gateway folder driven through the CLI."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "g.toml").write_text(CONFIG)
        self.peak = 0.0
        self.last_jobs: dict[str, float] = {}

    def tick(self, as_of: str, held: int, posts: int, original: list[Path]) -> list[Row]:
        """``tick`` on the day the held placements are due: the release job's own row (against
        the limit of their original file) and the whole tick's (grids, reports, retention)."""
        whole = self.run("daily jobs", ["tick", "--as-of", as_of], posts, "tis-placements",
                         original)
        release = Row("release", held, self.last_jobs["release-deferred"], whole.rss,
                      whole.statements, whole.limit)
        return [release, whole]

    def run(self, flow: str, args: list[str], records: int, xsd: str,
            limit_files: list[Path], job: str = "") -> Row:
        """One command, its SQL statements counted, against the limit of ``limit_files``;
        with ``job``, the seconds are that scheduled job's own (from its ``job.done``)."""
        counter = self.folder / f"sql-{flow}.count"
        figures = measure([sys.executable, "-m", "gateway", *args[:1], "--config",
                           str(self.folder / "g.toml"), *args[1:]],
                          env={"DIT_GATEWAY_COUNT_SQL": str(counter)})
        if figures["code"] not in (0, 1):
            raise SystemExit(f"{flow}: dit-gateway exited {figures['code']}")
        self.peak = max(self.peak, figures["rss"])
        statements = int(counter.read_text()) if counter.exists() else -1
        self.last_jobs = figures["jobs"]
        seconds = figures["jobs"][job] if job else figures["seconds"]
        return Row(flow, records, seconds, figures["rss"], statements, limit(xsd, limit_files))


def count(paths: list[Path], tag: bytes) -> int:
    """Records (opening tags) in files."""
    return sum(p.read_bytes().count(tag) for p in paths)


def main(argv: list[str] | None = None) -> None:
    """Generate, run every flow, print the table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_size_options(parser)
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep it")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs, each on a fresh gateway; each flow's median ratio is shown")
    args = parser.parse_args(argv)
    sizes = Sizes.scaled(args.scale, args.placements)
    if not compileall.compile_dir(ROOT / "gateway", quiet=2):  # as installed: see the docstring
        print("note: the gateway's modules could not be compiled here; every run compiles them",
              file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="dit-bench-") as tmp:
        work = args.keep or Path(tmp)
        data = generate(work / "data", sizes, args.seed)
        runs = []
        for i in range(max(1, args.repeat)):
            suffix = "" if i == 0 else f"-{i + 1}"
            runs.append(run_flows(Gateway(work / f"gateway{suffix}"), data, sizes,
                                  work / "data" / f"confirm{suffix}"))
            if args.repeat > 1:
                print(f"run {i + 1}: {last_line(runs[-1][0], runs[-1][1])}", flush=True)
        report(sizes, medians([rows for rows, _peak in runs]), max(peak for _r, peak in runs))


def run_flows(
    gw: Gateway, data: dict[str, list[Path]], sizes: Sizes, confirm: Path
) -> tuple[list[Row], float]:
    """Every flow, in order, on one fresh gateway: its rows and peak RSS."""
    as_of = AS_OF.isoformat()
    released = (AS_OF + timedelta(days=300)).isoformat()
    rows = [
        gw.run("positions", ["process", "--as-of", as_of, *map(str, data["positions"])],
               count(data["positions"], b"<Position "), "esr-positions", data["positions"]),
        gw.run("persons", ["process", "--as-of", as_of, *map(str, data["persons"])],
               count(data["persons"], b"<Person "), "esr-persons", data["persons"]),
        gw.run("persons_delta",
               ["process", "--as-of", "2026-11-03", *map(str, data["persons_delta"])],
               count(data["persons_delta"], b"<Person "), "esr-persons",
               data["persons_delta"]),
        gw.run("placements", ["process", "--as-of", as_of, str(data["placements"][0])],
               sizes.placements, "tis-placements", data["placements"]),
        gw.run("resend", ["process", "--as-of", as_of, str(data["resend"][0])],
               sizes.placements, "tis-placements", data["resend"]),
        *gw.tick(released, held_count(sizes), sizes.posts, data["placements"]),
        gw.run("checks", ["process", "--as-of", as_of, str(data["checks"][0])],
               sizes.applicants, "trac-checks", data["checks"]),
    ]
    confirmations = write_confirmations(gw.folder / "outbox", confirm)
    rows.append(gw.run("confirmations", ["process", "--as-of", released,
                                         *map(str, confirmations)],
                       count(confirmations, b"<Confirmation "),
                       "esr-applicant-confirmation", confirmations))
    return rows, gw.peak


def medians(runs: list[list[Row]]) -> list[Row]:
    """Each flow's row from the run in which its ratio was the median (the lower of two)."""
    return [sorted(same, key=lambda r: r.ratio)[(len(same) - 1) // 2]
            for same in zip(*runs, strict=True)]


def held_count(sizes: Sizes) -> int:
    """Placements the first file holds (20% start after the window)."""
    return sum(1 for i in range(sizes.placements) if 7 <= i % 10 < 9)


def report(sizes: Sizes, rows: list[Row], peak: float) -> None:
    """The table, then the one line of ratios."""
    print(f"{sizes}")
    print(f"{'flow':<14} {'records':>8} {'seconds':>8} {'records/s':>10} {'peak MiB':>9} "
          f"{'SQL stmts':>10} {'limit s':>8} {'ratio':>6}")
    for r in rows:
        print(f"{r.flow:<14} {r.records:>8,} {r.seconds:>8.2f} {r.records / r.seconds:>10,.0f} "
              f"{r.rss:>9.0f} {r.statements:>10,} {r.limit:>8.2f} {r.ratio:>6.2f}")
    print(last_line(rows, peak))


def last_line(rows: list[Row], peak: float) -> str:
    """``placements_ratio=… resend_ratio=… release_ratio=… persons_ratio=… peak_rss_mb=…``."""
    by = {r.flow: r for r in rows}
    return (f"placements_ratio={by['placements'].ratio:.2f} resend_ratio={by['resend'].ratio:.2f} "
            f"release_ratio={by['release'].ratio:.2f} "
            f"persons_ratio={by['persons_delta'].ratio:.2f} peak_rss_mb={peak:.0f}")


if __name__ == "__main__":
    main()
