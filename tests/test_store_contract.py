"""The store's contract, one suite on every backend: SQLite and a real PostgreSQL server."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.errors import ClaimLost, StoreError
from gateway.store.base import SqlStore, migrations
from gateway.store.sqlite import SqliteStore

OWNER, OTHER = "host:1:1", "host:2:2"
StoreFactory = Callable[[], SqlStore]


@pytest.fixture
def open_store(tmp_path: Path, store_url: str) -> Iterator[StoreFactory]:
    """Opens stores on one database of the backend under test (each call: a new store object,
    as a second process would have); closes them all at the end."""
    opened: list[SqlStore] = []

    def factory() -> SqlStore:
        if store_url:
            from gateway.store.postgres import PostgresStore  # noqa: PLC0415

            store: SqlStore = PostgresStore(store_url)
        else:
            store = SqliteStore(tmp_path / "g.db")
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def claim(store: SqlStore, name: str = "daily.xml", owner: str = OWNER, lease: float = 1e12,
          ) -> int:
    """A claimed receipt (hashed) owned by ``owner``; its id."""
    receipt = store.claim(name, "esr", Path("/p"), at="t", owner=owner, lease_until=lease)
    return store.claimed(receipt.id, "a" * 64).id


def test_migrations_run_once_and_record_their_version(open_store: StoreFactory) -> None:
    """Opening a store applies every migration once; opening it again applies none."""
    open_store().close()
    store = open_store()
    versions = [v for (v,) in store.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == [v for v, _sql in migrations()]


def test_a_failed_transaction_changes_nothing(open_store: StoreFactory) -> None:
    """An error inside a transaction rolls back every write made in it."""
    store = open_store()
    store.set_job_run("job", "before")

    def half_done() -> None:
        with store.transaction():
            store.set_job_run("job", "after")
            store.add_seen_dpns("RGT", ["EOE/1"], "now")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        half_done()
    assert store.job_last_run("job") == "before"
    assert store.seen_dpns("RGT") == set()


def test_new_ids_and_unique_acknowledgement_names(open_store: StoreFactory) -> None:
    """Claims get ids from the store (RETURNING) and unique ack names, fixed when the claim is
    won: the first file of a name gets ``<stem>.ack.xml``, a later one ``<stem>.<id>.ack.xml``;
    the file's place in processing carries the id."""
    store = open_store()
    first = store.claim("daily.xml", "esr", Path("/p"), at="t", owner=OWNER, lease_until=0)
    second = store.claim("daily.xml", "esr", Path("/p"), at="t", owner=OWNER, lease_until=0)
    assert second.id > first.id
    assert store.receipt(second.id).status == "claiming"
    assert store.claimed(first.id, "a" * 64).ack_name == "daily.ack.xml"
    assert store.claimed(second.id, "b" * 64).ack_name == f"daily.{second.id}.ack.xml"
    assert second.processing_path == f"/p/{second.id}-daily.xml"


def test_a_dead_competing_claim_does_not_number_the_winners_ack(open_store: StoreFactory) -> None:
    """Two nodes claim the same inbox file and the first dies before its move: the claim that
    wins the file gets the plain acknowledgement name, and the dead one is dropped later."""
    store = open_store()
    dead = store.claim("pos.xml", "esr", Path("/p"), at="t", owner="gone:9:9", lease_until=0)
    won = store.claim("pos.xml", "esr", Path("/p"), at="t", owner=OWNER, lease_until=0)
    assert store.claimed(won.id, "c" * 64).ack_name == "pos.ack.xml"
    store.drop_claim(dead.id)
    later = store.claim("pos.xml", "esr", Path("/p"), at="t", owner=OWNER, lease_until=0)
    assert store.claimed(later.id, "d" * 64).ack_name == f"pos.{later.id}.ack.xml"


def test_concurrent_claims_of_one_name_never_share_an_ack_name(open_store: StoreFactory) -> None:
    """Eight threads, each its own store (as eight processes), claim the same name at once:
    eight receipts, eight different acknowledgement names once claimed, one of them plain."""
    stores = [open_store() for _ in range(8)]
    names: list[str] = []
    errors: list[BaseException] = []

    def work(store: SqlStore) -> None:
        try:
            rid = store.claim("x.xml", "esr", Path("/p"), at="t", owner=OWNER,
                              lease_until=0).id
            names.append(store.claimed(rid, "e" * 64).ack_name)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(names)) == 8
    assert "x.ack.xml" in names


def test_only_one_process_takes_over_a_claim(open_store: StoreFactory) -> None:
    """Take-over is compare-and-set on the owner: of two contenders exactly one wins."""
    a, b = open_store(), open_store()
    rid = claim(a, owner="gone:9:9")
    assert a.take_over(rid, "gone:9:9", OWNER, 1e12) is True
    assert b.take_over(rid, "gone:9:9", OTHER, 1e12) is False
    assert b.receipt(rid).owner == OWNER


def test_only_the_owner_finishes_and_counts_attempts(open_store: StoreFactory) -> None:
    """begin_attempt and finish refuse a process that no longer owns the file (ClaimLost);
    attempts given back are not counted."""
    store = open_store()
    rid = claim(store)
    assert store.begin_attempt(rid, OWNER) == 1
    assert store.begin_attempt(rid, OWNER) == 2
    store.undo_attempt(rid, "disk full")
    assert store.begin_attempt(rid, OWNER, give_back=1) == 1
    with pytest.raises(ClaimLost):
        store.begin_attempt(rid, OTHER)
    with pytest.raises(ClaimLost), store.transaction():
        store.finish(rid, "processed", at="t", owner=OTHER)
    with store.transaction():
        store.finish(rid, "processed", at="t", owner=OWNER)
    assert store.receipt(rid).status == "processed"


def test_leases_are_renewed_for_the_owner_only(open_store: StoreFactory) -> None:
    """renew extends the leases of the owner's open receipts and no one else's."""
    store = open_store()
    mine, theirs = claim(store, "a.xml"), claim(store, "b.xml", owner=OTHER)
    assert store.renew(OWNER, 42.0) == 1
    leases = {h.receipt.id: h.lease_until for h in store.held_receipts()}
    assert leases[mine] == 42.0
    assert leases[theirs] == 1e12


def test_pending_outputs_keep_inode_and_size(open_store: StoreFactory) -> None:
    """Outputs listed for publishing keep what identifies the file written; a receipt's are
    asked by its id, the jobs' by 0 (not everyone's: a recovery must not publish a live
    file's outputs)."""
    store = open_store()
    store.add_pending_outputs(7, [(Path("/o/.a.t.tmp"), Path("/o/a"), 123, 45)])
    store.add_pending_outputs(0, [(Path("/o/.b.t.tmp"), Path("/o/b"), 124, 46)])
    [pending] = store.pending_outputs(7)
    assert (pending.temp, pending.final, pending.ino, pending.size) == (
        Path("/o/.a.t.tmp"), Path("/o/a"), 123, 45)
    assert [p.final for p in store.pending_outputs(0)] == [Path("/o/b")]  # the jobs' only
    assert sorted(p.final for p in store.pending_outputs()) == [Path("/o/a"), Path("/o/b")]
    store.clear_outputs(7)
    store.clear_outputs(0)
    assert store.pending_outputs() == []


def test_closing_a_receipt_forgets_its_pending_outputs_and_no_others(
    open_store: StoreFactory,
) -> None:
    """A file's last step, one transaction: its receipt closed (no longer held) and its
    outputs forgotten; another receipt's and the jobs' stay to be published."""
    store = open_store()
    mine, other = claim(store, "a.xml"), claim(store, "b.xml")
    store.add_pending_outputs(mine, [(Path("/o/.a.t.tmp"), Path("/o/a"), 1, 2)])
    store.add_pending_outputs(other, [(Path("/o/.b.t.tmp"), Path("/o/b"), 3, 4)])
    store.add_pending_outputs(0, [(Path("/o/.c.t.tmp"), Path("/o/c"), 5, 6)])
    store.close_receipt(mine)
    assert store.pending_outputs(mine) == []
    assert sorted(p.final for p in store.pending_outputs()) == [Path("/o/b"), Path("/o/c")]
    assert [h.receipt.id for h in store.held_receipts()] == [other]


def test_the_store_has_one_identity(open_store: StoreFactory) -> None:
    """The identity is made once: a new store says so, a second look gets the same one."""
    store = open_store()
    sid, fresh = store.store_id()
    assert fresh
    assert open_store().store_id() == (sid, False)


def test_a_constraint_is_a_store_error_of_ours(open_store: StoreFactory) -> None:
    """A constraint violation is converted to StoreError; the store goes on working."""
    store = open_store()
    store.set_job_run("j", "x")
    with pytest.raises(StoreError):
        store.execute("INSERT INTO jobs (name, last_run) VALUES ('j', 'y')")
    assert store.job_last_run("j") == "x"


def test_the_work_lock_is_held_by_one_store_at_a_time(open_store: StoreFactory) -> None:
    """Two stores on one database (two processes, two nodes) never hold the work lock at once;
    the same thread may take it again inside itself."""
    a, b = open_store(), open_store()
    inside: list[str] = []
    overlap: list[bool] = []

    def work(store: SqlStore, name: str) -> None:
        for _ in range(5):
            with store.work_lock(), store.work_lock():
                inside.append(name)
                overlap.append(len(inside) > 1)
                time.sleep(0.01)  # held for a moment, so that a second holder would show
                inside.remove(name)

    threads = [threading.Thread(target=work, args=(s, n)) for s, n in ((a, "a"), (b, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(overlap) == 10
    assert not any(overlap)


def test_migrations_are_safe_when_processes_start_together(
    tmp_path: Path, store_url: str
) -> None:
    """Four processes open a new store at once: all start, each migration is applied once."""
    if store_url:
        code = ("import sys; from gateway.store.postgres import PostgresStore; "
                "PostgresStore(sys.argv[1]).close()")
        target = store_url
    else:
        code = ("import sys; from pathlib import Path; from gateway.store.sqlite import "
                "SqliteStore; SqliteStore(Path(sys.argv[1])).close()")
        target = str(tmp_path / "g.db")
    procs = [subprocess.Popen([sys.executable, "-c", code, target], stderr=subprocess.PIPE)
             for _ in range(4)]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    if store_url:
        from gateway.store.postgres import PostgresStore  # noqa: PLC0415

        store: SqlStore = PostgresStore(store_url)
    else:
        store = SqliteStore(tmp_path / "g.db")
    versions = sorted(v for (v,) in store.execute("SELECT version FROM schema_version"))
    store.close()
    assert versions == [v for v, _sql in migrations()]


def test_a_register_row_saved_with_its_load_is_the_row_saved_then_loaded(
    open_store: StoreFactory,
) -> None:
    """save_applicants given the window's loads writes each row once with its load, record,
    action and state ``sent`` (ESR's message cleared): the same rows as saving, then recording
    the loads, on every backend. A row whose placement is in no load keeps what it had."""
    from datetime import date  # noqa: PLC0415

    from gateway.models import (  # noqa: PLC0415
        LoadFile,
        LoadRecord,
        Placement,
        SentApplicant,
        Trainee,
    )

    store = open_store()
    trainee = Trainee("T1", "A", "B", date(1990, 1, 1), "F", "7000001")

    def rows(*pids: str) -> list[SentApplicant]:
        return [SentApplicant(pid, "RGT", "T1", "1001", "Lead", Placement(
            pid, "upsert", "EOE/X/1", "In Post", "F1", "Med", date(2027, 6, 1),
            date(2027, 12, 1), "1.0", trainee)) for pid in pids]

    def load(name: str, *pids: str) -> LoadFile:
        return LoadFile("RGT", name, "a.xml", "", tuple(
            LoadRecord(pid, "create" if name == "first.xml" else "update", n, "EOE/X/1", "1001")
            for n, pid in enumerate(pids, 1)))

    def state(pid: str) -> tuple[object, ...]:
        (row,) = store.sent(pid)
        esr = store.esr_state(pid, "RGT")
        assert esr is not None
        return (row.load_file, row.load_record, row.last_action, *esr)

    with store.transaction():  # the first sending: P1 the two-step way, P2 in one
        store.save_applicants(rows("P1"), "t")
        store.record_loads([load("first.xml", "P1")], "t")
        first = load("first.xml", "P2")
        store.save_applicants(rows("P2", "P3"), "t", [first])
        store.record_loads([first], "t", {("P2", "RGT"), ("P3", "RGT")})
    assert state("P1") == ("first.xml", 1, "create", "sent", None, None, None)
    assert state("P2") == state("P1")
    assert state("P3") == (None, None, None, "sent", None, None, None)  # in no load

    store.set_esr_states([(pid, "RGT", "failed", None, None, "no") for pid in ("P1", "P2", "P3")])
    with store.transaction():  # sent again: P1 two-step, P2 in one; P3 again in no load
        store.save_applicants(rows("P1"), "t")
        store.add_load_records([load("more.xml", "P1")])
        more = load("more.xml", "P2")
        store.save_applicants(rows("P2", "P3"), "t", [more])
        store.add_load_records([more], {("P2", "RGT"), ("P3", "RGT")})
    assert state("P1") == ("more.xml", 1, "update", "sent", None, None, None)
    assert state("P2") == state("P1")
    assert state("P3") == (None, None, None, "failed", None, None, "no")


def test_loads_register_states_and_kept_placements(open_store: StoreFactory) -> None:
    """Spec 6.5 state: loads and their records, the register's ESR state (a failed create
    occupies no position), kept placements and re-send numbers, on every backend."""
    from datetime import date  # noqa: PLC0415

    from gateway.models import (  # noqa: PLC0415
        Kept,
        LoadFile,
        LoadRecord,
        Placement,
        SentApplicant,
        Trainee,
    )

    store = open_store()
    trainee = Trainee("T1", "A", "B", date(1990, 1, 1), "F", "7000001")
    p = Placement("P1", "upsert", "EOE/X/1", "In Post", "F1", "Med", date(2027, 6, 1),
                  date(2027, 12, 1), "1.0", trainee)
    with store.transaction():
        store.save_applicants([SentApplicant("P1", "RGT", "T1", "1001", "Lead", p)], "t")
        store.record_loads([LoadFile("RGT", "applicants-a.xml", "a.xml", "", (
            LoadRecord("P1", "create", 1, "EOE/X/1", "1001"),))], "2027-05-01T10:00:00+00:00")
    load = store.load_file("RGT", "applicants-a.xml")
    assert load is not None
    assert load.written_at == "2027-05-01T10:00:00+00:00"
    assert [(r.placement_id, r.action, r.record, r.status) for r in load.records] == [
        ("P1", "create", 1, None)]
    assert store.load_file("R1K", "applicants-a.xml") is None
    (row,) = store.sent("P1")
    assert (row.load_file, row.load_record, row.last_action, row.esr_state) == (
        "applicants-a.xml", 1, "create", "sent")
    assert [f.records for f in store.loads_awaiting()] == [1]
    assert store.unconfirmed_ids([("RGT", "applicants-a.xml"), ("R1K", "x.xml")], 10) == {
        ("RGT", "applicants-a.xml"): ["P1"], ("R1K", "x.xml"): []}
    assert len(store.occupants_of({("RGT", "1001")})[("RGT", "1001")]) == 1

    store.confirm_records("RGT", "applicants-a.xml", [("P1", "create", "FAIL")], "t")
    store.set_esr_states([("P1", "RGT", "failed", None, None, "no")])
    assert store.loads_awaiting() == []
    assert store.esr_state("P1", "RGT") == ("failed", None, None, "no")
    assert store.sent_many({"P1"})["P1"][0].failed_create
    assert store.occupants_of({("RGT", "1001")})[("RGT", "1001")] == []
    assert store.applicants_on("RGT", "1001") == []
    assert store.failed_applicants() == [("P1", "RGT", "create", "applicants-a.xml")]

    store.keep([Kept(p, "failed", "RGT")], "t")
    store.keep([Kept(p, "rejected", None, "UNKNOWN_DPN")], "t")
    assert store.kept("P1") == [Kept(p, "rejected", None, "UNKNOWN_DPN")]
    store.unkeep(["P1"])
    assert store.kept() == []
    assert store.next_resend("2027-05-04") == 1
    store.record_resend("2027-05-04", 1, "t")
    assert store.next_resend("2027-05-04") == 2
    assert store.next_resend("2027-05-05") == 1


def test_the_checks_bulk_reads_answer_as_the_single_ones(open_store: StoreFactory) -> None:
    """The checks flow's prefetch (applicants by VPD and date of birth, one-off transfers) gives
    the answers of the one-at-a-time reads, on every backend; transfers recorded in a batch."""
    from datetime import date  # noqa: PLC0415

    from gateway.models import Placement, SentApplicant, Trainee  # noqa: PLC0415

    store = open_store()
    rows = []
    for i, (vpd, born) in enumerate([("RGT", 1990), ("RGT", 1990), ("RGT", 1991), ("R1K", 1990)]):
        trainee = Trainee(f"T{i}", "A", "B", date(born, 1, 1), "F", f"700000{i}")
        p = Placement(f"P{i}", "upsert", "EOE/X/1", "In Post", "F1", "Med", date(2027, 6, 1),
                      date(2027, 12, 1), "1.0", trainee)
        rows.append(SentApplicant(f"P{i}", vpd, f"T{i}", "1001", "Lead", p))
    with store.transaction():
        store.save_applicants(rows, "t")
        store.record_transfers([("RGT", "P0", "TR0", "sha", "t"), ("R1K", "P3", "TR3", "sha", "t")])
    keys = {("RGT", "1990-01-01"), ("RGT", "1991-01-01"), ("R1K", "1990-01-01"),
            ("RGT", "1980-01-01")}
    many = store.applicants_born_many(keys)
    assert set(many) == keys
    for vpd, born in keys:
        assert many[(vpd, born)] == store.applicants_born(vpd, born)
    assert [a.placement_id for a in many[("RGT", "1990-01-01")]] == ["P0", "P1"]
    done = store.transferred_many({"P0", "P1", "P3", "P9"})
    assert done == {("RGT", "P0"), ("R1K", "P3")}
    for vpd in ("RGT", "R1K"):
        for pid in ("P0", "P1", "P3", "P9"):
            assert ((vpd, pid) in done) == store.transferred(vpd, pid)


def test_a_person_extract_replaces_the_vpds_persons_and_their_assignments(
    open_store: StoreFactory,
) -> None:
    """A person extract is a full snapshot: after it, the VPD's persons and the occupancy their
    assignments give are exactly the extract's — persons gone, changed, unchanged and new, and
    another VPD untouched (only what differs is written)."""
    from dataclasses import replace  # noqa: PLC0415
    from datetime import date  # noqa: PLC0415

    from gateway.models import Assignment, Person  # noqa: PLC0415

    def person(pid: str, number: str, status: str = "Active") -> Person:
        job = Assignment(f"A-{pid}", number, status, False, date(2026, 1, 1), date(2027, 1, 1))
        return Person(pid, "Ann", "Lee", date(1990, 1, 1), "F", (job,))

    def occupied(store: SqlStore, vpd: str, number: str) -> set[str | None]:
        return {o.esr_person_id for o in store.assignment_occupants(vpd, number)}

    store = open_store()
    with store.transaction():
        store.replace_persons("RGT", [person("E1", "1001"), person("E2", "1002"),
                                      person("E3", "1003")])
        store.replace_persons("R1K", [person("E1", "1001")])
    moved = replace(person("E2", "1009"), surname="Lee-Smith")
    with store.transaction():
        store.replace_persons("RGT", [moved, person("E3", "1003"), person("E4", "1004")])
    assert [p.esr_person_id for p in store.persons("RGT")] == ["E2", "E3", "E4"]
    assert store.persons("RGT")[0] == moved
    assert occupied(store, "RGT", "1001") == set()  # E1 gone, with the assignment
    assert occupied(store, "RGT", "1002") == set()  # E2 moved to 1009
    assert occupied(store, "RGT", "1009") == {"E2"}
    assert occupied(store, "RGT", "1003") == {"E3"}  # unchanged, still there once
    assert occupied(store, "RGT", "1004") == {"E4"}
    assert len(store.assignment_occupants("RGT", "1003")) == 1
    assert occupied(store, "R1K", "1001") == {"E1"}
    born = sorted(store.persons_born("RGT", "1990-01-01"), key=lambda p: p.esr_person_id)
    assert born == store.persons("RGT")



def test_persons_born_on_answers_each_pair_as_persons_born(open_store: StoreFactory) -> None:
    """The placement prefetch's persons by (VPD, date of birth) gives exactly the one-at-a-time
    answers, on every backend: a day shared across VPDs, a VPD with several days, a pair that
    finds nobody, and more pairs than one statement asks."""
    from datetime import date, timedelta  # noqa: PLC0415

    from gateway.models import Person, PersonMatch  # noqa: PLC0415

    store = open_store()
    day = date(1990, 1, 1)
    with store.transaction():
        for v, vpd in enumerate(("RGT", "R1K", "RX1")):
            store.replace_persons(vpd, [
                Person(f"E{v}-{i}", "Ann", "Lee", day + timedelta(days=i % (v + 2)), "F", (),
                       nino=f"QQ00000{i}C" if i % 2 else None,
                       gmc_number=f"700000{i}" if i % 3 else None)
                for i in range(5)
            ])
    keys = {(vpd, (day + timedelta(days=d)).isoformat())
            for vpd in ("RGT", "R1K", "RX1", "ZZZ") for d in range(3)}
    keys |= {("RGT", (day + timedelta(days=3 + n)).isoformat()) for n in range(2100)}
    found = store.persons_born_on(keys)
    assert set(found) == keys
    for vpd, born in keys:  # what A8 compares of each person, and only that
        assert sorted(found[(vpd, born)], key=lambda p: p.esr_person_id) == sorted(
            (PersonMatch(p.esr_person_id, p.forenames, p.surname, p.date_of_birth, p.nino,
                         p.gmc_number) for p in store.persons_born(vpd, born)),
            key=lambda p: p.esr_person_id)
    assert len(found[("RGT", "1990-01-01")]) == 3
    assert {p.esr_person_id for p in found[("R1K", "1990-01-02")]} == {"E1-1", "E1-4"}
    assert sum(map(len, found.values())) == 14  # all but RX1's person born on day 3, not asked

def test_position_extracts_replace_or_amend_the_register(open_store: StoreFactory) -> None:
    """A full extract makes the VPD's register exactly its positions; a delta changes only
    those it carries; another VPD is untouched (only what differs is written)."""
    from dataclasses import replace  # noqa: PLC0415
    from datetime import date  # noqa: PLC0415

    from gateway.models import Position, Post  # noqa: PLC0415

    def post(pid: int, dpn: str | None = None) -> Position:
        return Position(pid, str(1000 + pid), "FY1", date(2020, 1, 1), "Active", "Single",
                        date(2026, 1, 1), dpn=dpn or f"EOE/RGT00/{pid:03d}/FY1/001")

    store = open_store()
    with store.transaction():
        store.save_positions("RGT", [post(1), post(2), post(3)], replace=True)
        store.save_positions("R1K", [post(1)], replace=True)
    renamed = replace(post(2), position_name="FY1 Surgery")
    with store.transaction():
        store.save_positions("RGT", [renamed, post(3), post(4)], replace=True)
    assert store.positions("RGT") == {2: renamed, 3: post(3), 4: post(4)}
    assert store.positions_with_dpn(post(1).dpn or "") == [("R1K", post(1))]
    moved = post(3, dpn="EOE/RGT00/999/FY1/001")
    with store.transaction():
        store.save_positions("RGT", [moved, post(5)], replace=False)
    assert store.positions("RGT") == {2: renamed, 3: moved, 4: post(4), 5: post(5)}
    assert store.positions_with_dpn(post(3).dpn or "") == []
    assert store.positions_with_dpn("EOE/RGT00/999/FY1/001") == [("RGT", moved)]
    assert store.positions("R1K") == {1: post(1)}
    ended = replace(post(6), dpn=None, hiring_status="Frozen", effective_to=date(2026, 5, 1),
                    managing_deanery_body="LDN")
    with store.transaction():
        store.save_positions("R1K", [ended], replace=False)
    def as_post(p: Position) -> Post:
        return Post(p.position_number, p.hiring_status, p.dpn, p.effective_to,
                    p.managing_deanery_body, p.position_type, p.host_lead_flag)

    for vpd in ("RGT", "R1K"):  # the rules' view of the register: each Post its position's
        assert sorted(store.posts(vpd), key=lambda p: p.position_number) == [
            as_post(p)
            for p in sorted(store.positions(vpd).values(), key=lambda p: p.position_number)
        ]
    dpns = {post(n).dpn or "" for n in range(1, 6)} | {"EOE/RGT00/999/FY1/001"}
    assert store.positions_with_dpns(dpns) == {  # the placement rules' view, asked in bulk
        dpn: [(vpd, as_post(p)) for vpd, p in store.positions_with_dpn(dpn)] for dpn in dpns}
    assert Post("1006", "Frozen", None, date(2026, 5, 1), "LDN", "Single") in store.posts("R1K")


def test_the_interface_record_is_replaced_with_what_is_given(open_store: StoreFactory) -> None:
    """Setting a VPD's interface posts leaves exactly those (a post whose DPN or deanery
    changed, one gone, one new, the rest as they were, then none at all); another VPD's are
    untouched; set again as it is, it stays."""
    store = open_store()
    first = {1: ("EOE/RGT00/001/FY1/001", "EOE"), 2: ("EOE/RGT00/002/FY1/001", "EOE"),
             3: ("LDN/RGT00/003/FY1/001", "LDN"), 4: ("EOE/RGT00/004/FY1/001", "EOE")}
    with store.transaction():
        store.set_interface_posts("RGT", first)
        store.set_interface_posts("R1K", {1: ("KSS/R1K00/001/FY1/001", "KSS")})
    assert store.interface_posts("RGT") == first
    second = {1: first[1], 2: ("EOE/RGT00/222/FY1/001", "EOE"), 3: (first[3][0], "KSS"),
              5: ("EOE/RGT00/005/FY1/001", "EOE")}
    with store.transaction():
        store.set_interface_posts("RGT", second)
    assert store.interface_posts("RGT") == second
    rows = store.execute("SELECT COUNT(*) FROM interface_posts WHERE vpd = 'RGT'")
    assert [tuple(row) for row in rows] == [(4,)]
    with store.transaction():
        store.set_interface_posts("RGT", dict(second))
    assert store.interface_posts("RGT") == second
    with store.transaction():
        store.set_interface_posts("RGT", {})
    assert store.interface_posts("RGT") == {}
    assert store.interface_posts("R1K") == {1: ("KSS/R1K00/001/FY1/001", "KSS")}


def test_loads_awaiting_are_counted_in_the_store(open_store: StoreFactory) -> None:
    """R6's summary of the loads ESR has not confirmed: records and distinct placements counted,
    oldest first, confirmed records left out; the first ids of each, sorted, on every backend."""
    from gateway.models import LoadFile, LoadRecord  # noqa: PLC0415

    store = open_store()
    records = [LoadRecord(pid, action, n, "EOE/X/1", "1001") for n, (pid, action) in enumerate(
        [("P20", "create"), ("P3", "create"), ("P3", "update"), ("P100", "create")], 1)]
    with store.transaction():
        store.record_loads([LoadFile("RGT", "b.xml", "b", "", tuple(records)),
                            LoadFile("R1K", "a.xml", "a", "", tuple(records[:1]))],
                           "2027-05-01T10:00:00+00:00")
        store.record_loads([LoadFile("RGT", "c.xml", "c", "", tuple(records[:2]))],
                           "2027-05-02T10:00:00+00:00")
    store.confirm_records("RGT", "c.xml", [("P20", "create", "SUCCESS")], "t")
    assert [(a.vpd, a.name, a.records, a.placements) for a in store.loads_awaiting()] == [
        ("R1K", "a.xml", 1, 1), ("RGT", "b.xml", 4, 3), ("RGT", "c.xml", 1, 1)]
    assert store.unconfirmed_ids([("RGT", "b.xml"), ("RGT", "c.xml")], 2) == {
        ("RGT", "b.xml"): ["P100", "P20"], ("RGT", "c.xml"): ["P3"]}


def test_a_files_tallies_live_in_its_transaction_alone(open_store: StoreFactory) -> None:
    """A streamed file's tallies (A9, A13, C3 across its windows): counts by (tally, a, b),
    each tally apart; begun afresh; gone with a rollback."""
    store = open_store()
    with store.transaction():
        store.begin_tallies()
        store.set_tallies("A13", {("101", "P1"): 40, ("102", "P1"): 3})
        store.set_tallies("A9", {("", "PL1"): 1})
        store.set_tallies("A13", {("101", "P1"): 41})  # set again: the last count
        assert store.tallies("A13", [("101", "P1"), ("102", "P1"), ("", "PL1"), ("9", "x")]) == {
            ("101", "P1"): 41, ("102", "P1"): 3}
        assert store.tallies("A9", [("", "PL1"), ("101", "P1")]) == {("", "PL1"): 1}
        keys = [("v", f"{n}") for n in range(4500)]  # more than one chunk of keys
        store.set_tallies("many", dict.fromkeys(keys, 2))
        assert store.tallies("many", keys) == dict.fromkeys(keys, 2)
        store.begin_tallies()
        assert store.tallies("A13", [("101", "P1")]) == {}
        store.set_tallies("A9", {("", "PL2"): 1})

    def failed() -> None:
        with store.transaction():
            store.begin_tallies()
            store.set_tallies("A9", {("", "PL3"): 1})
            raise RuntimeError("the file failed")

    with pytest.raises(RuntimeError):
        failed()
    with store.transaction():
        assert store.tallies("A9", [("", "PL3")]) == {}
