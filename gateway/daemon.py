"""The daemon's lifecycle: start (one instance per ``var/``, recover, scheduled jobs), loop
(intake → pipeline, retries, daily jobs, orphan sweep), graceful stop on SIGTERM/SIGINT (finish
the file in hand), second signal forces.

One worker takes files one at a time, in arrival order: the rules depend on order. Event handlers
only record hints. When the machine fails (a full disk, a read-only folder, the store out of
reach) intake *pauses*: nothing new is claimed, the file in hand is retried with backoff, nothing
is counted against it, and one log event says why (and one when it resumes).
"""

from __future__ import annotations

import contextlib
import faulthandler
import fcntl
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

from gateway import logs
from gateway.errors import (
    AlreadyRunning,
    ClaimLost,
    GatewayError,
    OutputLost,
    StoreUnavailable,
    TransientError,
    Unavailable,
    Unreadable,
    Vanished,
)
from gateway.jobs import run_jobs
from gateway.ops import Operations
from gateway.pipeline import Pipeline
from gateway.store.base import Receipt
from gateway.transport import modes
from gateway.transport.local import LocalIntake

if TYPE_CHECKING:
    from gateway.transport.exchange import PartnerExchange

log = logs.get("gateway.daemon")
T = TypeVar("T")
STOP_TIMEOUT_SECONDS = 60
MAX_BACKOFF_SECONDS = 300.0
MAX_PAUSE_SECONDS = 30.0
TICK_SECONDS = 0.05  # the loop's pace: a closed file is taken within 0.2 s + this
LOCK_NAME = "run.lock"


def _forced_line(signum: int) -> bytes:
    """The log line of a second signal, made without the logger (whose lock the interrupted
    code may hold)."""
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    event = {"signal": signum, "event": "daemon.forced", "level": "warning", "timestamp": at}
    return (json.dumps(event) + "\n").encode()


@dataclass(slots=True)
class _Retry:
    receipt: Receipt
    attempts: int
    due: float


@contextlib.contextmanager
def instance_lock(var: Path) -> Iterator[None]:
    """Hold ``var/run.lock`` for the daemon's life; another holder → :class:`AlreadyRunning`.

    An ``flock``: the kernel releases it when the holder dies, however it dies.
    """
    path = var / LOCK_NAME
    try:
        modes.make_private(var)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise AlreadyRunning(f"cannot open {path}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise AlreadyRunning(
                f"another dit-gateway run (pid {holder}) is using {var}; only one daemon may "
                "run per var/ on SQLite (several nodes need a PostgreSQL store)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)


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
        self._signal: int | None = None  # the first SIGTERM or SIGINT, seen by the loop
        self._pipe: int | None = None  # the handler's way to the signal watcher (writing end)
        self._retries: dict[int, _Retry] = {}
        self._jobs_day: date | None = None
        self._jobs_retry_at = 0.0
        self._paused: str | None = None
        self._pause_seconds = 0.0
        self._paused_by_store = False
        self._resume_at = 0.0
        self._last_sweep = time.monotonic()
        self._unreadable: set[Path] = set()
        self.processed = 0
        self.ops = Operations(self.settings, pipeline.store, lambda: self._paused)

    @property
    def pause_reason(self) -> str | None:
        """Why intake is paused (a full disk, the store out of reach), or None."""
        return self._paused

    # --- lifecycle -----------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; returns the exit status. Raises AlreadyRunning."""
        lock = (
            instance_lock(self.settings.paths.var)
            if self.pipeline.store.single_node
            else contextlib.nullcontext()
        )
        with lock, self.pipeline.holding(), self._signals_handled():
            log.info("daemon.starting", pid=os.getpid(), inbox=str(self.settings.paths.inbox),
                     outbox=str(self.settings.paths.outbox), var=str(self.settings.paths.var))
            for receipt in self._guard(self.pipeline.recover) or []:
                self._retries[receipt.id] = _Retry(receipt, 0, 0.0)
            self.ops.start()
            self.intake.start()
            for exchange in self.exchanges:
                exchange.start()
            try:
                while not self._stopping():
                    self._step()
                    self.ops.tick(self.pipeline.timings)
                    self._stop.wait(TICK_SECONDS)
            finally:
                for exchange in self.exchanges:
                    exchange.stop(wait=False)
                for exchange in self.exchanges:
                    exchange.stop()
                self.intake.stop()
                self.ops.stop()
        log.info("daemon.stopped", files=self.processed, held=len(self._retries))
        return 0

    def stop(self) -> None:
        """Ask the loop to stop after the file in hand."""
        self._stop.set()

    @contextlib.contextmanager
    def _signals_handled(self) -> Iterator[None]:
        """SIGTERM and SIGINT stop the loop after the file in hand; a second one at once.

        The handler runs in the main thread, between any two of its bytecodes: it takes no
        lock, for the code it interrupted may hold it (a log line being written, the stop
        event's own lock in ``wait``). It counts and notes the signal and writes its number
        to a pipe (a system call, no lock); a thread of ours reads it, logs
        ``daemon.stopping`` and sets the stop event, at once, even while the main thread is
        deciding a long file. Once that line is logged, the first signal has been counted: a
        second one forces."""
        def handle(signum: int, _frame: FrameType | None) -> None:
            self._signals += 1
            if self._signals > 1:
                os.write(2, _forced_line(signum))
                os._exit(1)
            self._signal = signum
            if self._pipe is not None:  # None while closing down
                os.write(self._pipe, bytes([signum]))
            # A stop that hangs: every thread's stack on stderr (code paths, no data), then
            # exit 1. faulthandler's own thread does it, even when ours are stuck in C.
            faulthandler.dump_traceback_later(STOP_TIMEOUT_SECONDS, exit=True)

        read_end, self._pipe = os.pipe()
        watcher = threading.Thread(target=self._watch_signals, args=(read_end,),
                                   name="signals", daemon=True)
        watcher.start()
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        try:
            yield
        finally:  # the handlers stay: a signal while closing down is still counted
            pipe, self._pipe = self._pipe, None
            os.close(pipe)  # the watcher reads the end of the pipe and returns
            watcher.join(timeout=5)
            os.close(read_end)

    def _watch_signals(self, fd: int) -> None:
        """Log and stop on the first signal the pipe brings (see :meth:`_signals_handled`)."""
        while data := os.read(fd, 64):
            if not self._stop.is_set():
                log.info("daemon.stopping", signal=data[0])
                self._stop.set()

    # --- the loop ------------------------------------------------------------------------------

    def _step(self) -> None:
        if self._held_back():
            return
        now = time.monotonic()
        self._jobs(now)
        for retry in sorted(self._retries.values(), key=lambda r: r.receipt.id):
            if self._held_back():
                return
            if retry.due <= now:
                self._process(retry.receipt)
        ready = [] if self._held_back() else self.intake.ready()
        # several files at once (a night's extracts): each parsed while the one before it is
        # decided, by a reader process that ends with the batch
        with self.pipeline.looking_ahead() if len(ready) > 1 else contextlib.nullcontext():
            for n, (path, channel) in enumerate(ready):
                if self._held_back():
                    return
                if n + 1 < len(ready):
                    self.pipeline.ask_ahead(*ready[n + 1])
                receipt = self._claim(path, channel)
                if receipt is not None:
                    self._process(receipt)
        if now - self._last_sweep >= self.settings.intake.rescan_seconds:
            self._last_sweep = now
            for receipt in self._guard(partial(self.pipeline.recover, self._retries)) or []:
                self._retries[receipt.id] = _Retry(receipt, 0, 0.0)

    def _stopping(self) -> bool:
        """Whether the loop is to stop: asked by :meth:`stop`, or a signal came (the signal
        watcher sets the event too; this does not wait for it)."""
        return self._signal is not None or self._stop.is_set()

    def _held_back(self) -> bool:
        """Stopping, or paused and not yet due to try again."""
        return self._stopping() or (
            self._paused is not None and time.monotonic() < self._resume_at
        )

    def _jobs(self, now: float) -> None:
        today = date.today()
        if self._jobs_day == today or now < self._jobs_retry_at:
            return
        if self._guard(partial(run_jobs, self.pipeline, today)) is None:
            self._jobs_retry_at = now + max(self.settings.intake.retry_seconds, 5.0)
        else:
            self._jobs_day = today

    def _claim(self, path: Path, channel: str) -> Receipt | None:
        try:
            receipt = self.pipeline.claim(path, channel)
        except Unreadable as exc:
            if path not in self._unreadable:
                self._unreadable.add(path)
                log.warning("intake.unreadable", file=path.name, channel=channel, error=str(exc))
            self.intake.later(path, self.settings.intake.rescan_seconds)
            return None
        except Unavailable as exc:
            self._pause(exc)
            self.intake.later(path, self._pause_seconds)
            return None
        except Vanished:
            self.intake.forget(path)  # another node or process took it first
            return None
        except TransientError as exc:
            log.warning("file.claim_failed", file=path.name, channel=channel, error=str(exc))
            self.intake.later(path, self.settings.intake.retry_seconds or 1.0)
            return None
        except Exception as exc:  # an unforeseen fault (a read error, a bug) must not stop intake
            # a claim left half done is this process's own and not being worked on: the next
            # sweep (recover) finishes or drops it, and a file still in the inbox is tried again
            log.exception("file.claim_failed", file=path.name, channel=channel,
                          error=type(exc).__name__)
            self.intake.later(path, self.settings.intake.rescan_seconds)  # not every few seconds
            return None
        self._unreadable.discard(path)
        self.intake.forget(path)
        self._resume(proven=False)
        return receipt

    def _process(self, receipt: Receipt) -> None:
        try:
            self.pipeline.process(receipt, date.today())
        except ClaimLost as exc:
            self._retries.pop(receipt.id, None)
            log.warning("file.claim_lost", file=receipt.name, sha256=receipt.sha256,
                        channel=receipt.channel, error=str(exc))
        except Unavailable as exc:
            self._pause(exc)
            self._later(receipt, self._pause_seconds, counted=False)
        except TransientError as exc:
            self._failed(receipt, str(exc))
        except OutputLost as exc:
            self._retries.pop(receipt.id, None)
            log.error("file.output_lost", file=receipt.name, sha256=receipt.sha256,
                      channel=receipt.channel, error=str(exc))
        except Exception as exc:  # a bug must not crash-loop the daemon on a poison file
            log.exception("file.failed", file=receipt.name, sha256=receipt.sha256,
                          channel=receipt.channel, error=type(exc).__name__)
            self._failed(receipt, f"internal error: {type(exc).__name__}")
        else:
            self._retries.pop(receipt.id, None)
            self.processed += 1
            self._resume(proven=True)

    def _failed(self, receipt: Receipt, error: str) -> None:
        """A failure counted against the file (the store counted it before the attempt)."""
        retry = self._later(receipt, 0.0, counted=True)
        log.warning("file.retry", file=receipt.name, sha256=receipt.sha256,
                    channel=receipt.channel, attempt=retry.attempts,
                    limit=self.settings.intake.retry_limit,
                    retry_in=round(retry.due - time.monotonic(), 3), error=error)

    def _later(self, receipt: Receipt, delay: float, *, counted: bool) -> _Retry:
        retry = self._retries.get(receipt.id) or _Retry(receipt, 0, 0.0)
        if counted:
            retry.attempts += 1
            delay = min(self.settings.intake.retry_seconds * 2 ** (retry.attempts - 1),
                        MAX_BACKOFF_SECONDS)
        retry.due = time.monotonic() + delay
        self._retries[receipt.id] = retry
        return retry

    def _pause(self, exc: Unavailable) -> None:
        """The machine failed: stop taking files, back off, say so once per reason."""
        first = self.settings.intake.retry_seconds or 1.0
        self._pause_seconds = min(self._pause_seconds * 2 or first, MAX_PAUSE_SECONDS)
        self._resume_at = time.monotonic() + self._pause_seconds
        self._paused_by_store = isinstance(exc, StoreUnavailable)
        if self._paused != exc.reason:
            self._paused = exc.reason
            log.warning("intake.paused", reason=exc.reason, error=str(exc))

    def _resume(self, *, proven: bool) -> None:
        """Work succeeded. A claim, a sweep or a job only proves the store is back; a full or
        read-only folder is cleared only by a file processed end to end (``proven``)."""
        if self._paused is None:
            self._pause_seconds = 0.0
        elif proven or self._paused_by_store:
            log.info("intake.resumed", reason=self._paused)
            self._paused = None
            self._pause_seconds = 0.0

    def _guard(self, work: Callable[[], T]) -> T | None:
        try:
            result = work()
        except Unavailable as exc:
            self._pause(exc)
            return None
        except GatewayError as exc:
            log.warning("daemon.transient", error=str(exc))
            return None
        except Exception as exc:  # a bug in a job or in recovery must not stop the daemon
            log.exception("daemon.failed", error=type(exc).__name__)
            return None
        self._resume(proven=False)
        return result
