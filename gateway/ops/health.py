"""``/readyz`` (spec 10): the store reachable, the folders writable, intake not paused.

Each check is a callable giving None when all is well, else the reason (no personal data: the
reasons name folders and errors, never a file's content). An overdue ``[[expect]]`` file does
not make the gateway unready: that is the partner's silence, not the gateway's fault.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence

from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.store.interfaces import Store
from gateway.store.operations import OperationsLedger

Check = Callable[[], str | None]


STORE_UNREACHABLE = "store unreachable"


def store_check(store: Store) -> Check:
    """The store answers a round trip."""

    def check() -> str | None:
        try:
            OperationsLedger(store).ping()
        except GatewayError as exc:
            return f"{STORE_UNREACHABLE}: {exc}"
        return None

    return check


def folders_check(settings: Settings) -> Check:
    """Each output folder that exists (and ``var/processing``) takes a new file: a real write of
    a dot-named probe (ignored by every reader), not a permission bit that root would pass."""
    paths = settings.paths
    outbox = paths.outbox

    def check() -> str | None:
        folders = [outbox, paths.processing]
        if outbox.is_dir():
            folders += [p for p in sorted(outbox.rglob("*")) if p.is_dir()]
        for folder in folders:
            if not folder.is_dir():
                continue
            probe = folder / f".readyz-{os.getpid()}.tmp"
            try:
                fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.close(fd)
            except OSError as exc:
                return f"folder not writable: {folder}: {exc.strerror or exc}"
            finally:
                with contextlib.suppress(OSError):
                    probe.unlink()
        return None

    return check


def paused_check(reason: Callable[[], str | None]) -> Check:
    """Intake is not paused."""

    def check() -> str | None:
        why = reason()
        return f"intake paused: {why}" if why else None

    return check


def not_ready(checks: Sequence[Check]) -> list[str]:
    """The reasons the gateway is not ready (empty: ready)."""
    return [why for why in (check() for check in checks) if why]


