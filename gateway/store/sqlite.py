"""The embedded store: SQLite in WAL mode, one connection per thread.

Every ``sqlite3`` error is converted here: a store that cannot be reached or written (a full
disk, a lock held too long, a read-only file) is :class:`StoreUnavailable`; a file that is not a
database is :class:`StoreMismatch`. Nothing of ``sqlite3`` leaves this module.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import itertools
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from gateway.errors import StoreError, StoreMismatch, StoreUnavailable
from gateway.store.base import SqlStore, migrate
from gateway.transport import modes

BUSY_TIMEOUT_SECONDS = 30
CONNECT_TRIES = 20
SIDE_FILES = ("-wal", "-shm", "-journal")  # what SQLite keeps beside the database file


def _converted(exc: sqlite3.Error, path: Path) -> Exception:
    """Our error for a sqlite3 error: the machine's (retry), a foreign file, or our bug."""
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
        return StoreMismatch(f"{path} is not a SQLite database of this gateway: {exc}")
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return StoreError(f"store: {type(exc).__name__}: {exc}")
    return StoreUnavailable(f"store: {exc}")


# ``DIT_GATEWAY_COUNT_SQL=FILE``: count the SQL statements this process issues (an
# ``executemany`` of many rows is one) and write the count to FILE at exit (benchmarks/run.py:
# statements per file should not grow with its records).
_COUNT_FILE = os.environ.get("DIT_GATEWAY_COUNT_SQL")
_statements = itertools.count()


def _write_count() -> None:
    Path(_COUNT_FILE or os.devnull).write_text(f"{next(_statements)}\n", encoding="ascii")


if _COUNT_FILE:
    atexit.register(_write_count)


class SqliteStore(SqlStore):
    """State in one SQLite file; safe for several threads and processes on one machine."""

    single_node = True

    def __init__(self, path: Path, *, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._work = threading.Lock()
        try:
            modes.make_dirs(path.parent)
            # Created (or made) 0600 before SQLite opens it: its WAL and shared memory files
            # take the database file's mode.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            for part in (path, *(path.with_name(path.name + s) for s in SIDE_FILES)):
                if part.exists():
                    modes.restrict(part)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create {path.parent}: {exc.strerror or exc}") from exc
        self.was_empty = not path.exists() or path.stat().st_size == 0
        migrate(self)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            self._local.depth = 0
            with self._lock:
                self._all.append(conn)
        return conn

    def _connect(self) -> sqlite3.Connection:
        for attempt in range(CONNECT_TRIES):
            try:
                conn = sqlite3.connect(
                    self.path, isolation_level=None, timeout=self.busy_timeout,
                    check_same_thread=False,
                )
                try:
                    # Two processes switching a new file to WAL at once: one may be told "locked".
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=FULL")
                    conn.execute("PRAGMA foreign_keys=ON")
                except BaseException:
                    conn.close()
                    raise
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) and attempt < CONNECT_TRIES - 1:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise _converted(exc, self.path) from exc
            except sqlite3.Error as exc:
                raise _converted(exc, self.path) from exc
            return conn
        raise StoreUnavailable(f"cannot open {self.path}")  # pragma: no cover - loop returns

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if _COUNT_FILE:
            next(_statements)
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _converted(exc, self.path) from exc

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        if _COUNT_FILE:
            next(_statements)
        try:
            self._conn().executemany(sql, rows)
        except sqlite3.Error as exc:
            raise _converted(exc, self.path) from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT; nested calls join the outer transaction."""
        conn = self._conn()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _converted(exc, self.path) from exc
        self._local.depth = 1
        try:
            yield
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise _converted(exc, self.path) from exc
        finally:
            self._local.depth = 0
            # A failed COMMIT (SQLITE_FULL) may already have undone the transaction itself.
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")

    @contextmanager
    def work_lock(self) -> Iterator[None]:
        """An exclusive ``flock`` on ``<store>.lock``, shared by every process on this store.

        The kernel releases it when its holder dies, however it dies.
        """
        if getattr(self._local, "working", False):  # this thread holds it already
            yield
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        with self._work:
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise StoreUnavailable(f"cannot open {lock_path}: {exc.strerror}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._local.working = True
                yield
            finally:
                self._local.working = False
                os.close(fd)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """A non-blocking ``flock`` on ``<store>.<crc of name>.lock``."""
        lock_path = self.path.with_name(f"{self.path.name}.{zlib.crc32(name.encode()):08x}.lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open {lock_path}: {exc.strerror}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
