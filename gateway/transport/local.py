"""Local intake: watches ``inbox/esr|tis|trac`` and says which files are complete.

watchdog events are hints, not truth: a periodic full listing is the source of truth (events can
be lost; network shares give none). A file is complete when its size and modification time have
not changed for ``settle_seconds``, or, sooner, when it was closed after writing and has not
changed since. Temporary names (spec 2) are never taken.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import FileClosedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from gateway import logs
from gateway.config import CHANNELS
from gateway.transport import modes
from gateway.transport.files import is_temporary

log = logs.get("gateway.intake")
CLOSED_QUIET_SECONDS = 0.2


@dataclass(slots=True)
class _Seen:
    size: int
    mtime_ns: int
    since: float
    not_before: float = 0.0


MOVE_PAIRING_SECONDS = 0.02


def _shorten_move_pairing() -> None:
    """watchdog holds each unpaired IN_MOVED_FROM for 0.5 s, hoping for its IN_MOVED_TO, and its
    queue is first in, first out: every claim (a rename out of the inbox, never paired) held
    back the next file's close event by half a second. A rename inside a folder delivers both
    halves in one read, so a short hold still pairs them; the hints need no pairing anyway."""
    try:
        from watchdog.observers.inotify_move_event_grouper import (  # noqa: PLC0415
            InotifyMoveEventGrouper,
        )
    except ImportError:  # another platform, or a watchdog without the grouper
        return
    InotifyMoveEventGrouper.delay = MOVE_PAIRING_SECONDS


class _Hints(FileSystemEventHandler):
    """Event handler: only records which paths to look at (never does work itself)."""

    def __init__(self, intake: LocalIntake) -> None:
        self._intake = intake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw:
                self._intake.hint(Path(str(raw)), closed=isinstance(event, FileClosedEvent))


class LocalIntake:
    """Watches the inbox folders and yields complete files, each once, ready to claim."""

    def __init__(
        self, inbox: Path, settle_seconds: float, rescan_seconds: float, polling: bool = False
    ) -> None:
        self.inbox = inbox
        self.settle = settle_seconds
        self.rescan = rescan_seconds
        self._polling = polling
        self._lock = threading.Lock()
        self._hinted: set[Path] = set()
        self._closed: dict[Path, tuple[int, int, float]] = {}
        self._seen: dict[Path, _Seen] = {}
        self._last_scan = 0.0
        self._refused: set[Path] = set()
        self._observer: Any = None

    def start(self) -> None:
        """Create the folders and start watching them."""
        for channel in CHANNELS:
            modes.make_dirs(self.inbox / channel, group_writable=True)
        _shorten_move_pairing()
        self._observer = PollingObserver(timeout=1) if self._polling else Observer()
        handler = _Hints(self)
        for channel in CHANNELS:
            folder = self.inbox / channel
            if os.access(folder, os.R_OK | os.X_OK):
                self._observer.schedule(handler, str(folder), recursive=False)
        try:
            self._observer.start()
        except OSError as exc:
            # An unreadable inbox folder cannot be watched; the rescan still lists the others.
            log.warning("intake.unwatched", error=exc.strerror or str(exc))
            self._observer = None
        log.info("intake.started", inbox=str(self.inbox),
                 observer=type(self._observer).__name__ if self._observer else "rescan only")

    def stop(self) -> None:
        """Stop watching."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def healthy(self) -> bool:
        """Whether the observer thread is alive (the rescan keeps working regardless)."""
        return self._observer is not None and self._observer.is_alive()

    def hint(self, path: Path, *, closed: bool = False) -> None:
        """Note that ``path`` may have changed (called from the observer's thread)."""
        state = None
        if closed:
            try:
                st = path.stat()
                state = (st.st_size, st.st_mtime_ns, time.monotonic())
            except OSError:
                state = None
        with self._lock:
            self._hinted.add(path)
            if state is not None:
                self._closed[path] = state

    def later(self, path: Path, seconds: float) -> None:
        """Do not offer ``path`` again for ``seconds`` (its claim failed)."""
        with self._lock:
            seen = self._seen.get(path)
            if seen is not None:
                seen.not_before = time.monotonic() + seconds

    def ready(self) -> list[tuple[Path, str]]:
        """Complete files to claim now, oldest first, as (path, channel)."""
        now = time.monotonic()
        with self._lock:
            candidates = set(self._hinted) | set(self._seen)
            self._hinted.clear()
            closed = dict(self._closed)
        if now - self._last_scan >= self.rescan or not self._last_scan:
            candidates |= set(self._listing())
            self._last_scan = now
        found: list[tuple[float, Path, str]] = []
        for path in candidates:
            channel = path.parent.name
            if path.parent.parent != self.inbox or channel not in CHANNELS:
                continue
            if is_temporary(path.name):
                continue
            item = self._observe(path, now, closed.get(path))
            if item is not None:
                found.append((item, path, channel))
        found.sort()
        return [(path, channel) for _mtime, path, channel in found]

    def forget(self, path: Path) -> None:
        """The file has been claimed (or vanished)."""
        with self._lock:
            self._seen.pop(path, None)
            self._closed.pop(path, None)

    def _observe(
        self, path: Path, now: float, closed: tuple[int, int, float] | None
    ) -> float | None:
        try:
            st = path.lstat()  # a symlink is never followed: it could point anywhere
        except OSError:
            self.forget(path)
            return None
        if not stat.S_ISREG(st.st_mode):
            if path not in self._refused:
                self._refused.add(path)
                log.warning("intake.refused", file=path.name, reason="not a regular file")
            return None
        with self._lock:
            seen = self._seen.get(path)
            if seen is None or (seen.size, seen.mtime_ns) != (st.st_size, st.st_mtime_ns):
                seen = _Seen(st.st_size, st.st_mtime_ns, now)
                self._seen[path] = seen
            if now < seen.not_before:
                return None
            settled = now - seen.since >= self.settle
            # Closed after writing, and untouched since the close: complete.
            closed_quiet = (
                closed is not None
                and closed[:2] == (st.st_size, st.st_mtime_ns)
                and now - closed[2] >= min(CLOSED_QUIET_SECONDS, self.settle)
            )
            if settled or closed_quiet:
                return st.st_mtime
        return None

    def _listing(self) -> list[Path]:
        paths = []
        for channel in CHANNELS:
            folder = self.inbox / channel
            try:
                paths += [p for p in folder.iterdir() if not p.name.startswith(".")]
            except FileNotFoundError:
                continue
            except OSError as exc:
                if folder not in self._refused:
                    self._refused.add(folder)
                    log.warning("intake.unreadable_folder", channel=channel,
                                error=exc.strerror or str(exc))
                continue
            self._refused.discard(folder)
        return paths
