"""Where a ``dit-gateway`` command spends its time: py-spy samples it, this sums by function.

    pip install py-spy      # or: pip install -e .[bench]
    python benchmarks/profile.py [--rate 200] [--top 40] -- process --config g.toml FILE…

Runs ``python -m gateway <args>`` under ``py-spy record --format raw`` (sampling: the command
runs at nearly its own speed), then prints each function's share of the samples: inclusive
(the function and what it calls) and self (the function's own lines), from the command's
``process``/``tick`` down. docs/performance.md says what it showed.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def _name(frame: str) -> str:
    """``function (path/file.py:line)`` → ``function file.py``."""
    function, _, where = frame.partition(" (")
    return f"{function} {Path(where.split(':')[0]).name}" if where else function


def summarise(raw: Path, top: int) -> str:
    """Inclusive and self shares of the samples in py-spy's raw output."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        total += samples
        frames = [_name(f) for f in stack.split(";")]
        for name in set(frames):
            inclusive[name] += samples
        own[frames[-1]] += samples
    lines = [f"{total} samples", "inclusive:"]
    lines += [f"{n / total:7.1%}  {k}" for k, n in inclusive.most_common(top)]
    lines += ["self:"]
    lines += [f"{n / total:7.1%}  {k}" for k, n in own.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Sample the command, print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--top", type=int, default=40, help="functions shown")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then dit-gateway's args")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists() or not command:
        raise SystemExit("needs py-spy (pip install py-spy) and a dit-gateway command after --")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "samples.txt"
        subprocess.run([spy, "record", "--rate", str(args.rate), "--format", "raw",
                        "--output", str(raw), "--", sys.executable, "-m", "gateway", *command],
                       check=False, stdout=subprocess.DEVNULL)  # here: relative paths hold
        print(summarise(raw, args.top))


if __name__ == "__main__":
    main()
