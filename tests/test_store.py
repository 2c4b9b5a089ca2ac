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


def test_the_per_file_reads_search_an_index_and_scan_no_table(tmp_path: Path) -> None:
    """Every bulk read the placement and check rules make per window is answered by an index
    (SQLite's plan says SEARCH, never SCAN of a table): a scan is a whole table read once per
    2,000 keys. So are the one-position questions asked outside a window, by the position
    number's index. Holds the indexes, e.g. when one that seemed unused is dropped."""
    with SqliteStore(tmp_path / "g.db") as store:
        asked: list[str] = []
        store._conn().set_trace_callback(asked.append)
        pairs = [("RGT", "1990-01-02"), ("RGU", "1991-02-03")]
        store.positions_with_dpns(["D/1", "D/2"])
        store.persons_born_on(pairs)
        store.sent_many(["P1", "P2"])
        store.occupants_of([("RGT", "1001"), ("RGU", "1002")])
        store.held_many(["P1", "P2"])
        store.applicants_born_many(pairs)
        store.transferred_many(["P1", "P2"])
        store.applicants_on("RGT", "1001")
        store.assignment_occupants("RGT", "1001")
        store._conn().set_trace_callback(None)
        selects = [sql for sql in asked if sql.lstrip().upper().startswith("SELECT")]
        assert len(selects) >= 10
        for sql in selects:
            plan = [row[3] for row in store._conn().execute(f"EXPLAIN QUERY PLAN {sql}")]
            scans = [step for step in plan if step.startswith("SCAN")
                     and "json_each" not in step and "VIRTUAL TABLE" not in step]
            assert not scans, (sql, plan)
        one_position = [sql for sql in selects if "AND position_number = " in sql]
        assert len(one_position) == 2
        for sql in one_position:
            plan = [row[3] for row in store._conn().execute(f"EXPLAIN QUERY PLAN {sql}")]
            assert any(step.startswith("SEARCH") and "(position_number=?)" in step
                       for step in plan), (sql, plan)


def test_failed_applicants_are_listed_from_an_index_of_those_alone(tmp_path: Path) -> None:
    """R4's failed rows are found through the partial index of failed rows (no row sent or
    loaded is in it, so sending costs no index write for the state), in the order listed."""
    with SqliteStore(tmp_path / "g.db") as store:
        asked: list[str] = []
        store._conn().set_trace_callback(asked.append)
        store.failed_applicants()
        store._conn().set_trace_callback(None)
        (sql,) = asked
        plan = [row[3] for row in store._conn().execute(f"EXPLAIN QUERY PLAN {sql}")]
        assert plan == ["SCAN applicants USING INDEX applicants_failed"], plan
        (definition,) = store._conn().execute(
            "SELECT sql FROM sqlite_master WHERE name = 'applicants_failed'").fetchone()
        assert "WHERE esr_state = 'failed'" in definition
