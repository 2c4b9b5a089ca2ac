"""What the benchmarks share: a throw-away gateway config and a timed run of the real CLI."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = (
    '[paths]\ninbox="inbox"\noutbox="outbox"\nvar="var"\n'
    '[store]\nurl="sqlite:///var/g.db"\n[log]\nlevel="warning"\n'
)


def write_config(folder: Path, store_url: str = "") -> Path:
    """A config for a gateway living in ``folder`` (quiet logs); SQLite unless ``store_url``."""
    path = folder / "g.toml"
    text = CONFIG if not store_url else CONFIG.replace("sqlite:///var/g.db", store_url)
    path.write_text(text)
    return path


def process(folder: Path, *files: Path, as_of: str = "2026-11-02") -> tuple[float, float]:
    """``dit-gateway process`` of ``files``; returns (seconds, peak RSS MiB of the children)."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "gateway", "process", "--config", str(folder / "g.toml"),
         "--as-of", as_of, *map(str, files)],
        check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
