"""Who holds a claimed file: this process, named so that any other process can tell whether the
holder is gone.

An owner is ``node:pid:start``: the node is ``[store] node`` (by default the host's name), and
``start`` the process's start time in clock ticks since boot, from ``/proc``, so that a reused
pid is not mistaken for the holder. A holder is *gone* when its lease has expired, or when it ran
on this node and that process no longer exists. The lease is what lets other nodes (several
nodes on PostgreSQL) take over; on one node, a dead holder is seen at once.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Owner:
    """A process that may hold claims."""

    host: str
    pid: int
    start: int

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.start}"

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        """The owner named by ``text``, or None if it is not of our form."""
        host, _, rest = text.rpartition(":")
        host, _, pid = host.rpartition(":")
        try:
            return cls(host, int(pid), int(rest))
        except ValueError:
            return None


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot; None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return int(fields[19]) if len(fields) > 19 else None


def node_name(configured: str = "") -> str:
    """This node's name: ``[store] node`` when set, else the host's name."""
    return configured or socket.gethostname()


def me(node: str = "") -> Owner:
    """This process as an owner (computed per call: a forked child is another owner)."""
    pid = os.getpid()
    return Owner(node_name(node), pid, process_start(pid) or 0)


def alive(owner: Owner, node: str = "") -> bool:
    """Whether ``owner`` is still running (only decidable on its own node: else True)."""
    if owner.host != node_name(node):
        return True
    return process_start(owner.pid) == owner.start


def gone(owner: str | None, lease_until: float | None, now: float, node: str = "") -> bool:
    """Whether the holder of a claim is gone, so that another process may take the claim."""
    if owner is None:
        return True
    if lease_until is not None and lease_until < now:
        return True
    parsed = Owner.parse(owner)
    return parsed is None or not alive(parsed, node)
