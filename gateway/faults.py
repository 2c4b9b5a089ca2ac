"""Crash points for crash tests: ``DIT_GATEWAY_CRASH_AT=name:N`` kills the process with SIGKILL
the N-th time the pipeline passes the point ``name`` (N defaults to 1).

Points of the pipeline: ``claim-recorded`` (the receipt written, the file not yet moved),
``claimed``, ``attempt-started`` (an attempt counted, the work not begun), ``window-written`` (a
streamed file: one more window's state changes in the open transaction, and its outputs
appended to their temporary files or held to be appended with the next windows'),
``staging-flushed`` (a streamed file: the outputs held appended to their temporary files),
``outputs-written`` (temporary outputs fsynced, ledger not yet committed), ``committed``
(ledger committed, outputs not yet renamed), ``published`` (an inbound file's outputs renamed but
its acknowledgement, the input not yet archived; a job's, all renamed), ``archived`` (the input
archived or quarantined, its acknowledgement not yet renamed). Points of an SFTP take:
``sftp-downloaded``, ``sftp-fetched``, ``sftp-published``, ``sftp-moved``; of a delivery:
``sftp-uploaded``, ``sftp-delivered`` (see docs/sftp.md).
Unset in production, it costs one comparison per point.
"""

from __future__ import annotations

import os
import signal

ENV = "DIT_GATEWAY_CRASH_AT"
_target: tuple[str, int] | None = None
_hits: dict[str, int] = {}


def _load() -> tuple[str, int] | None:
    spec = os.environ.get(ENV, "")
    if not spec:
        return None
    name, _, count = spec.partition(":")
    return name, int(count or "1")


_target = _load()


def crashpoint(name: str) -> None:
    """Die here, without cleanup, if the environment asks for it."""
    if _target is None or _target[0] != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= _target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
