"""What is the SQLite store's own (the contract of every store: test_store_contract.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.errors import StoreError, StoreMismatch, StoreUnavailable
from gateway.store.base import migrations
from gateway.store.sqlite import SqliteStore


def test_the_sqlite_store_runs_in_wal_mode(tmp_path: Path) -> None:
    """Opening a store applies every migration once, in WAL mode."""
    path = tmp_path / "g.db"
    SqliteStore(path).close()
    SqliteStore(path).close()
    with sqlite3.connect(path) as db:
        versions = [v for (v,) in db.execute("SELECT version FROM schema_version ORDER BY 1")]
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    db.close()
    assert versions == [v for v, _sql in migrations()]
    assert mode == "wal"


def test_every_sqlite_error_is_converted_at_the_store_boundary(tmp_path: Path) -> None:
    """No sqlite3 error leaves the store: a constraint is our StoreError (a bug), a file that is
    not a database is StoreMismatch, a store that cannot be written is StoreUnavailable."""
    with SqliteStore(tmp_path / "g.db") as store:
        store.execute("INSERT INTO jobs (name, last_run) VALUES ('j', 'x')")
        with pytest.raises(StoreError):
            store.execute("INSERT INTO jobs (name, last_run) VALUES ('j', 'y')")
        with pytest.raises(StoreUnavailable):
            store.execute("SELECT * FROM no_such_table")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is no database" * 100)
    with pytest.raises(StoreMismatch):
        SqliteStore(garbage)


def test_a_failed_commit_is_one_clear_error_and_the_store_goes_on(tmp_path: Path) -> None:
    """A COMMIT that fails (here a deferred constraint, checked at COMMIT) raises one error of
    ours, nothing of the transaction stays, and the next transaction works."""
    with SqliteStore(tmp_path / "g.db") as store:
        store.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)")
        store.execute("CREATE TABLE c (p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)")
        with pytest.raises(StoreError), store.transaction():
            store.execute("INSERT INTO c VALUES (7)")
        assert store.execute("SELECT COUNT(*) FROM c") == [(0,)]
        with store.transaction():
            store.execute("INSERT INTO p VALUES (7)")
            store.execute("INSERT INTO c VALUES (7)")
        assert store.execute("SELECT p FROM c") == [(7,)]
