"""The shared store: PostgreSQL through psycopg 3 and a psycopg_pool connection pool, for several
``dit-gateway run`` nodes on one database (spec 11).

The queries are :class:`SqlStore`'s portable SQL (``?`` placeholders, turned into psycopg's
``%s`` here); this module supplies connections (one per thread, from the pool), transactions,
the cluster-wide work lock (a session advisory lock: it dies with its node's connection),
transaction-level serialisation (``pg_advisory_xact_lock``), and the DDL dialect (identity
columns). Every psycopg error is converted here; nothing of psycopg leaves this module, and only
this module imports it (an optional extra: ``pip install 'dit-gateway[postgres]'``).
"""

from __future__ import annotations

import re
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from gateway.errors import StoreError, StoreUnavailable
from gateway.store.base import SqlStore, migrate

POOL_MAX = 32
CONNECT_TIMEOUT_SECONDS = 10.0
WORK_LOCK_KEY = 0x64697467  # "ditg": the advisory lock every node's work waits on
_PLACEHOLDER = re.compile(r"\?")
_IDENTITY = re.compile(r"\bINTEGER PRIMARY KEY\b", re.IGNORECASE)


def _converted(exc: Exception) -> Exception:
    """Our error for a psycopg error: the machine's (retry) or our bug."""
    if isinstance(exc, pg_errors.IntegrityError | pg_errors.ProgrammingError
                  | pg_errors.DataError):
        return StoreError(f"store: {type(exc).__name__}: {exc}")
    return StoreUnavailable(f"store: {exc}".strip())


def _params(params: Sequence[Any]) -> tuple[Any, ...]:
    """Parameters as the portable SQL means them (booleans are stored as integers)."""
    return tuple(int(p) if isinstance(p, bool) else p for p in params)


class PostgresStore(SqlStore):
    """State in one PostgreSQL database, shared by any number of nodes."""

    single_node = False
    # Emptied by every commit as well; not written to the WAL.
    _TALLY_TABLE = SqlStore._TALLY_TABLE + " ON COMMIT DELETE ROWS"

    def __init__(self, url: str, *, pool_max: int = POOL_MAX) -> None:
        self.url = url
        self._pool_max = pool_max
        self._sql: dict[str, str] = {}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._held: list[psycopg.Connection[Any]] = []
        self._pool = self._new_pool()
        migrate(self)

    def _new_pool(self) -> ConnectionPool:
        try:
            pool = ConnectionPool(
                self.url, min_size=1, max_size=self._pool_max, open=True,
                timeout=CONNECT_TIMEOUT_SECONDS, kwargs={"autocommit": True}, name="dit-gateway",
            )
            pool.wait(timeout=CONNECT_TIMEOUT_SECONDS)
        except (psycopg.Error, PoolTimeout) as exc:
            raise StoreUnavailable(f"cannot connect to the PostgreSQL store: {exc}") from exc
        return pool

    # --- connections ---------------------------------------------------------------------------

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._checkout()
            self._local.conn = conn
            self._local.depth = 0
        return conn

    def _checkout(self) -> psycopg.Connection[Any]:
        with self._lock:
            if self._pool.closed:  # used again after close(), like the SQLite store
                self._pool = self._new_pool()
        try:
            conn = self._pool.getconn(timeout=getattr(self._local, "wait", None))
        except (psycopg.Error, PoolTimeout) as exc:
            raise StoreUnavailable(f"store: no connection: {exc}") from exc
        with self._lock:
            self._held.append(conn)
        return conn

    def _return(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            if conn in self._held:
                self._held.remove(conn)
        self._pool.putconn(conn)

    def _broken(self, conn: psycopg.Connection[Any]) -> None:
        """Forget a connection that failed outside a transaction (the pool checks it)."""
        if getattr(self._local, "depth", 0) == 0 and conn.broken:
            self._local.conn = None
            self._return(conn)

    def _text(self, sql: str) -> str:
        text = self._sql.get(sql)
        if text is None:
            text = _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))
            self._sql[sql] = text
        return text

    # --- SqlStore ------------------------------------------------------------------------------

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        conn = self._conn()
        try:
            cur = conn.execute(self._text(sql), _params(params), prepare=False)
            return cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            self._broken(conn)
            raise _converted(exc) from exc

    def _select_in(self, sql: str, chunk: Sequence[str]) -> list[tuple[Any, ...]]:
        """``IN (?)`` as ``= ANY(?)`` of one array: a short query text, parsed once, instead of
        one placeholder per key (psycopg converts a query over 4 KiB afresh each time)."""
        return self._execute(sql.replace("IN (?)", "= ANY(?)"), (list(chunk),))

    def _select_pairs(self, sql: str, pairs: Sequence[tuple[str, str]]) -> list[tuple[Any, ...]]:
        """``(a, b) IN (?)`` as the rows of two arrays side by side."""
        return self._execute(
            sql.replace("IN (?)", "IN (SELECT * FROM unnest(?::text[], ?::text[]))"),
            ([a for a, _b in pairs], [b for _a, b in pairs]),
        )

    def set_tallies(self, tally: str, counts: Mapping[tuple[str, str], int]) -> None:
        """As the portable one, in one statement of three arrays: an ``executemany`` runs a
        statement per row on the server."""
        if counts:
            self._execute(
                "INSERT INTO file_tally (tally, a, b, n) SELECT ?, * FROM"
                " unnest(?::text[], ?::text[], ?::integer[])"
                " ON CONFLICT (a, b, tally) DO UPDATE SET n = excluded.n",
                (tally, [a for a, _b in counts], [b for _a, b in counts], list(counts.values())),
            )

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        if isinstance(rows, Sequence) and not rows:
            return
        conn = self._conn()
        try:
            with conn.cursor() as cur:
                cur.executemany(self._text(sql), (_params(r) for r in rows))
        except psycopg.Error as exc:
            self._broken(conn)
            raise _converted(exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN … COMMIT on this thread's connection; nested calls join the outer one."""
        conn = self._conn()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        try:
            conn.execute("BEGIN")
        except psycopg.Error as exc:
            self._broken(conn)
            raise _converted(exc) from exc
        self._local.depth = 1
        try:
            yield
            try:
                conn.execute("COMMIT")
            except psycopg.Error as exc:
                raise _converted(exc) from exc
        finally:
            self._local.depth = 0
            if not conn.broken and conn.info.transaction_status != TransactionStatus.IDLE:
                with suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
            self._broken(conn)

    def serialize(self, name: str) -> None:
        """``pg_advisory_xact_lock`` on ``name``: released when the transaction ends."""
        self._execute("SELECT pg_advisory_xact_lock(?)", (zlib.crc32(name.encode()),))

    def ddl(self, statement: str) -> str:
        """SQLite's auto-numbered ``INTEGER PRIMARY KEY`` is an identity column here."""
        return _IDENTITY.sub("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", statement)

    @contextmanager
    def work_lock(self) -> Iterator[None]:
        """A session advisory lock on a connection of its own, held across every node; a node
        that dies loses its connection and with it the lock."""
        if getattr(self._local, "working", False):
            yield
            return
        conn = self._checkout()
        try:
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (WORK_LOCK_KEY,))
            except psycopg.Error as exc:
                raise _converted(exc) from exc
            self._local.working = True
            try:
                yield
            finally:
                self._local.working = False
                try:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (WORK_LOCK_KEY,))
                except psycopg.Error:
                    conn.close()  # the lock goes with the session
        finally:
            self._return(conn)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """``pg_try_advisory_lock`` on a connection of its own for the block."""
        key = zlib.crc32(name.encode())
        conn = self._checkout()
        try:
            try:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            except psycopg.Error as exc:
                raise _converted(exc) from exc
            mine = bool(row and row[0])
            try:
                yield mine
            finally:
                if mine:
                    try:
                        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
                    except psycopg.Error:
                        conn.close()
        finally:
            self._return(conn)

    def wait_at_most(self, seconds: float) -> None:
        """This thread's wait for a connection from the pool (else the pool's 10 s)."""
        self._local.wait = seconds

    def clock(self) -> float:
        """The server's clock (``clock_timestamp()``: the time now, also inside a
        transaction), which every node shares."""
        return float(self.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")[0][0])

    def close(self) -> None:
        """Return every connection and close the pool."""
        with self._lock:
            held, self._held = self._held, []
        for conn in held:
            try:
                self._pool.putconn(conn)
            except Exception:
                conn.close()
        self._local = threading.local()
        self._pool.close()
