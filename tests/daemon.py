"""The real daemon in a subprocess: ``python -m gateway run``, as an operator would start it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests import builders


class DaemonProcess:
    """Starts, watches and stops ``dit-gateway run`` with a given config."""

    def __init__(
        self, root: Path, config: Path, env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.config = config
        self.env = env or {}
        self.prefix = prefix  # e.g. setpriv, to run the daemon with fewer privileges
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.log_path = root / "daemon.log"

    def start(self, **env: str) -> None:
        """Start the daemon (again); its log lines are appended to ``daemon.log``."""
        full_env = {**os.environ, **self.env, **env}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "gateway", "run", "--config",
                 str(self.config)],
                cwd=self.root,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=full_env,
            )
        self.runs += 1

    def terminate(self, timeout: float = 90) -> int:
        """SIGTERM (once the daemon has installed its handlers), then wait; returns the exit
        status. The wait outlasts the daemon's own stop timeout (60 s), after which it prints
        its threads' stacks and exits 1: those are printed here, for the failing test."""
        assert self.proc is not None
        wait_until(
            lambda: self.proc is None or self.proc.poll() is not None
            or sum(e["event"] == "daemon.starting" for e in self.logs()) >= self.runs,
            what="the daemon to start",
        )
        self.proc.send_signal(signal.SIGTERM)
        code = self.wait(timeout)
        if code != 0:
            print(f"{self.log_path.name}, what was not a log line:")
            for entry in self.logs():
                if entry["event"] == "unparsed":
                    print(entry["raw"])
        return code

    def wait(self, timeout: float = 60) -> int:
        """Wait for the daemon to exit on its own; returns the exit status."""
        assert self.proc is not None
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL if still running (cleanup)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    @property
    def alive(self) -> bool:
        """Whether the daemon process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> list[dict[str, Any]]:
        """Every JSON log line written so far."""
        if not self.log_path.exists():
            return []
        lines = []
        for raw in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                lines.append({"event": "unparsed", "raw": raw})
        return lines


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (zombies included: not yet reaped)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def wait_until(check: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    """Poll ``check`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def start_with_the_rotation_post(daemon: DaemonProcess) -> Path:
    """Start the daemon with ``inbox/tis/`` made and the post of :func:`builders.rotation`
    loaded (its acknowledgement seen); returns the acknowledgements' folder."""
    inbox = daemon.root / "inbox"
    (inbox / "esr").mkdir(parents=True)
    (inbox / "tis").mkdir(parents=True)
    (inbox / "esr" / "pos.xml").write_text(builders.rotation_post())
    acks = daemon.root / "outbox" / "reports" / "acks"
    daemon.start()
    wait_until((acks / "pos.ack.xml").exists, timeout=60, what="the positions")
    return acks
