"""The daemon's lifecycle: start (recover, scheduled jobs), loop (intake → pipeline, retries,
daily jobs), graceful stop on SIGTERM/SIGINT (finish the file in hand), second signal forces.

One worker takes files one at a time, in arrival order: the rules depend on order, and the
store has one writer. Event handlers only record hints.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

from gateway import logs
from gateway.errors import TransientError
from gateway.jobs import run_jobs
from gateway.pipeline import Pipeline
from gateway.store.base import Receipt
from gateway.transport.local import LocalIntake

if TYPE_CHECKING:
    from gateway.transport.exchange import PartnerExchange

log = logs.get("gateway.daemon")
T = TypeVar("T")
STOP_TIMEOUT_SECONDS = 60
MAX_BACKOFF_SECONDS = 300.0
TICK_SECONDS = 0.1


@dataclass(slots=True)
class _Retry:
    receipt: Receipt
    attempts: int
    due: float


class Daemon:
    """``dit-gateway run``."""

    def __init__(
        self, pipeline: Pipeline, intake: LocalIntake,
        exchanges: Sequence[PartnerExchange] = (),
    ) -> None:
        self.pipeline = pipeline
        self.intake = intake
        self.exchanges = exchanges  # SFTP partners, one thread each
        self.settings = pipeline.settings
        self._stop = threading.Event()
        self._signals = 0
        self._retries: dict[int, _Retry] = {}
        self._jobs_day: date | None = None
        self.processed = 0

    # --- lifecycle -----------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; returns the exit status."""
        self._install_signals()
        log.info("daemon.starting", pid=os.getpid(), inbox=str(self.settings.paths.inbox),
                 outbox=str(self.settings.paths.outbox), var=str(self.settings.paths.var))
        for receipt in self._guard(self.pipeline.recover) or []:
            if self._stop.is_set():
                break
            self._process(receipt)
        self.intake.start()
        for exchange in self.exchanges:
            exchange.start()
        try:
            while not self._stop.is_set():
                self._step()
                self._stop.wait(TICK_SECONDS)
        finally:
            for exchange in self.exchanges:
                exchange.stop(wait=False)
            for exchange in self.exchanges:
                exchange.stop()
            self.intake.stop()
        log.info("daemon.stopped", files=self.processed, held=len(self._retries))
        return 0

    def stop(self) -> None:
        """Ask the loop to stop after the file in hand."""
        self._stop.set()

    def _install_signals(self) -> None:
        def handle(signum: int, _frame: FrameType | None) -> None:
            self._signals += 1
            if self._signals > 1:
                log.warning("daemon.forced", signal=signum)
                os._exit(1)
            log.info("daemon.stopping", signal=signum)
            self._stop.set()
            signal.signal(signal.SIGALRM, lambda *_: os._exit(1))
            signal.alarm(STOP_TIMEOUT_SECONDS)

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    # --- the loop ------------------------------------------------------------------------------

    def _step(self) -> None:
        today = date.today()
        if self._jobs_day != today:
            ran = self._guard(partial(run_jobs, self.pipeline, today))
            if ran is not None:
                self._jobs_day = today
        for path, channel in self.intake.ready():
            if self._stop.is_set():
                return
            receipt = self._guard(partial(self.pipeline.claim, path, channel))
            if receipt is None:
                self.intake.later(path, self.settings.intake.retry_seconds or 1.0)
                continue
            self.intake.forget(path)
            self._process(receipt)
        now = time.monotonic()
        for retry in sorted(self._retries.values(), key=lambda r: r.receipt.id):
            if self._stop.is_set():
                return
            if retry.due <= now:
                self._process(retry.receipt)

    def _process(self, receipt: Receipt) -> None:
        try:
            self.pipeline.process(receipt, date.today())
        except TransientError as exc:
            self._failed(receipt, exc)
        except Exception as exc:  # a bug must not crash-loop the daemon on a poison file
            log.exception("file.failed", file=receipt.name, sha256=receipt.sha256,
                          channel=receipt.channel, error=type(exc).__name__)
            self._failed(receipt, TransientError(f"internal error: {type(exc).__name__}"))
        else:
            self._retries.pop(receipt.id, None)
            self.processed += 1

    def _failed(self, receipt: Receipt, exc: TransientError) -> None:
        retry = self._retries.get(receipt.id) or _Retry(receipt, 0, 0.0)
        retry.attempts += 1
        limit = self.settings.intake.retry_limit
        if retry.attempts >= limit:
            try:
                self.pipeline.give_up(receipt, str(exc))
            except TransientError:
                pass
            else:
                self._retries.pop(receipt.id, None)
                return
        delay = min(self.settings.intake.retry_seconds * 2 ** (retry.attempts - 1),
                    MAX_BACKOFF_SECONDS)
        retry.due = time.monotonic() + delay
        self._retries[receipt.id] = retry
        log.warning("file.retry", file=receipt.name, sha256=receipt.sha256,
                    channel=receipt.channel, attempt=retry.attempts, limit=limit,
                    retry_in=delay, error=str(exc))

    def _guard(self, work: Callable[[], T]) -> T | None:
        try:
            return work()
        except TransientError as exc:
            log.warning("daemon.transient", error=str(exc))
            return None

