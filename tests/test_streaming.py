"""Placement and check files decided as they are read, a window at a time (issue 13), and the
daily release decided a window of due holds at a time, give what deciding the whole at once
gives: the same outputs byte for byte, the same state — and a file found invalid only at its end
leaves nothing of what was decided on the way."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from gateway import config
from gateway.cli import FLOWS
from gateway.flows import Held, Staging, Tally, one_key, two_keys
from gateway.flows import checks as check_flow
from gateway.flows import placements as placement_flow
from gateway.jobs import JOBS, run_jobs
from gateway.pipeline import Pipeline
from gateway.store import open_store
from gateway.store.sqlite import SqliteStore
from tests import builders as b
from tests.conftest import Gateway, write_config

AS_OF = date(2026, 11, 2)
# bytes of output pieces a streamed file holds before appending them: every window, now and
# then, or only at the end (Staging.LIMIT)
HELD = st.sampled_from([0, 2000, Staging.LIMIT])
COUNTED = st.sampled_from([0, 2, 100_000])  # keys a tally keeps in memory (flows.HELD)
DPN_A = "EOE/RGT00/001/FY1/001"  # RGT (Single) and R1K (Host): a host/lead pair
DPN_B = "EOE/RGT00/002/CT1/001"  # RGT, Shared
DPN_C = "EOE/RGT00/003/ST1/001"  # RGT, Single
TABLES = {  # what a placement file changes, in an order that does not depend on timing
    "applicants": "placement_id, vpd",
    "held_placements": "placement_id",
    "load_files": "vpd, name",
    "load_records": "vpd, load_file, record",
    "resendable": "placement_id",
    "outcome_counts": "receipt_id, result, reason, vpd",
    "check_transfers": "vpd, placement_id",
}
PEOPLE = [
    b.trainee("T1", forenames="Alex", surname="Smith", dob="1995-03-04", gmc="7123456"),
    b.trainee("T2", forenames="Sam", surname="Okafor", dob="1993-07-21", gmc="7654321",
              nino=None),
    b.trainee("T3", forenames="Jo", surname="Bloggs", dob="1990-01-01", gmc="7000001"),
]


def clock() -> str:
    """One time for every gateway, so that their outputs can be compared byte for byte."""
    return "2026-11-02T10:00:00+00:00"


def new_gateway(root: Path, *, streamed: bool, store_url: str = "") -> Gateway:
    """A gateway in ``root`` with the world's positions and persons loaded; ``streamed``: as
    the gateway runs, else deciding every placement file whole (the careful path)."""
    root.mkdir(parents=True)
    settings = config.load(write_config(root, store_url=store_url))
    store = open_store(settings)
    pipeline = Pipeline(settings, store, FLOWS, clock, streams=None if streamed else {})
    gateway = Gateway(root, settings, store, pipeline)
    gateway.process("esr", "positions-RGT.xml", b.positions("RGT", [
        b.position(1001, "1001", dpn=DPN_A, host_lead="Lead"),
        b.position(1002, "1002", dpn=DPN_B, ptype="Shared"),
        b.position(1003, "1003", dpn=DPN_C),
    ]), AS_OF)
    gateway.process("esr", "positions-R1K.xml", b.positions("R1K", [
        b.position(2001, "2001", dpn=DPN_A, host_lead="Host"),
    ]), AS_OF)
    gateway.process("esr", "persons-RGT.xml", b.persons("RGT", [
        b.person("E1", [b.assignment("A1", "1003", start="2026-01-01",
                                     projected_end="2027-01-31")],
                 forenames="Alex", surname="Smith", dob="1995-03-04", gmc="7123456"),
    ]), AS_OF)
    return gateway


def state(gateway: Gateway) -> dict[str, list[tuple[object, ...]]]:
    """What the placement files changed, table by table (times and ids are the same on both)."""
    return {table: [tuple(row) for row in gateway.store.execute(
        f"SELECT * FROM {table} ORDER BY {order}")]  # noqa: S608 (the tables named above)
        for table, order in TABLES.items()}


def outbox(gateway: Gateway) -> dict[str, bytes]:
    """Every published output by its path under the outbox (a rotation grid's workbook by
    name only: its zip entries carry the time they were written; its CSV has the same rows)."""
    top = gateway.settings.paths.outbox
    return {str(p.relative_to(top)): b"" if p.suffix == ".xlsx" else p.read_bytes()
            for p in gateway.outbox()}


@st.composite
def placement_files(draw: st.DrawFn) -> list[str]:
    """Placements of a few ids (so that some recur: duplicates, updates, withdrawals), on a few
    posts (so that they meet on a Single post), starting too soon, in the window or later."""
    count = draw(st.integers(1, 12))
    rows = []
    for _ in range(count):
        start = AS_OF + timedelta(days=draw(st.sampled_from([20, 60, 60, 80, 150])))
        rows.append(b.placement(
            draw(st.sampled_from(["P1", "P2", "P3", "P4", "P5", "P6"])),
            dpn=draw(st.sampled_from([DPN_A, DPN_A, DPN_B, DPN_C, "EOE/NONE/001"])),
            start=start.isoformat(),
            end=(start + timedelta(days=draw(st.sampled_from([-1, 90, 180])))).isoformat(),
            action=draw(st.sampled_from(["upsert", "upsert", "upsert", "withdraw"])),
            person=draw(st.sampled_from(PEOPLE)),
        ))
    return rows


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(placement_files(), min_size=1, max_size=3), window=st.integers(1, 4),
       held=HELD, counted=COUNTED)
def test_a_file_streamed_in_windows_gives_what_the_whole_file_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: list[list[str]], window: int,
    held: int, counted: int,
) -> None:
    """Windows of 1–4 placements, one file after another (so re-sends and held placements meet
    the register), then the daily release of the held ones: the outputs, acknowledgements
    included, and every table a placement file changes are the same as when each file, and
    the release, is decided whole — whether the outputs are appended to their files after
    every window or after several (``held``: bytes of pieces held at once), and whether the
    file's tallies (A9, A13) are in the store from the start, move there on the way, or stay
    in memory (``counted``: keys a tally keeps in memory)."""
    monkeypatch.setattr(placement_flow, "WINDOW", window)
    monkeypatch.setattr(placement_flow, "HELD", counted)
    monkeypatch.setattr(Staging, "LIMIT", held)
    example = Path(tempfile.mkdtemp(dir=tmp_path))  # one per example
    streamed = new_gateway(example / "streamed", streamed=True)
    whole = new_gateway(example / "whole", streamed=False)
    try:
        for n, rows in enumerate(files):
            text = b.placements(rows)
            assert streamed.process("tis", f"placements-{n}.xml", text, AS_OF) == (
                whole.process("tis", f"placements-{n}.xml", text, AS_OF))
        assert outbox(streamed) == outbox(whole)
        assert state(streamed) == state(whole)
        # the daily jobs 100 days on: the held placements are due, released a window at a time
        later = AS_OF + timedelta(days=100)
        assert run_jobs(streamed.pipeline, later, force=True) == run_jobs(
            whole.pipeline, later, force=True, jobs=[replace(job, stream=None) for job in JOBS])
        assert outbox(streamed) == outbox(whole)
        assert state(streamed) == state(whole)
    finally:
        streamed.store.close()
        whole.store.close()


def test_streamed_on_postgresql_as_on_sqlite(tmp_path: Path, store_url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The same on each backend, with windows of two: the later windows read what the earlier
    ones wrote in the file's open transaction (placements, checks, the daily release), the
    tallies moving into the store once they count more than three keys."""
    monkeypatch.setattr(placement_flow, "WINDOW", 2)
    monkeypatch.setattr(placement_flow, "HELD", 3)
    monkeypatch.setattr(check_flow, "HELD", 3)
    rows = [
        b.placement("P1", dpn=DPN_A, start="2027-01-01", person=PEOPLE[0]),
        b.placement("P2", dpn=DPN_C, start="2027-01-01", person=PEOPLE[1]),
        b.placement("P3", dpn=DPN_A, start="2027-01-02", person=PEOPLE[1]),  # occupied by P1
        b.placement("P1", dpn=DPN_B, start="2027-01-01", person=PEOPLE[0]),  # twice in the file
        b.placement("P4", dpn=DPN_B, start="2027-06-01", person=PEOPLE[2]),  # held
        b.placement("P5", dpn=DPN_A, start="2026-11-10", person=PEOPLE[2]),  # too soon
    ] + [b.placement(f"Q{n}", dpn=DPN_B, start="2027-01-05", person=PEOPLE[2])
         for n in range(45)  # more than 40 on one position: a second load file (A13)
         ] + [b.placement(f"H{n}", dpn=DPN_B, start="2027-05-01", person=PEOPLE[n % 3])
              for n in range(5)  # held, released later in three windows
              ] + [b.placement("P2", dpn=DPN_C, start="2027-01-01", person=PEOPLE[1])]  # again,
    # windows after the first: A9 finds it in the store
    streamed = new_gateway(tmp_path / "streamed", streamed=True, store_url=store_url)
    whole = new_gateway(tmp_path / "whole", streamed=False)
    try:
        assert streamed.process("tis", "placements.xml", b.placements(rows), AS_OF) == (
            "processed")
        whole.process("tis", "placements.xml", b.placements(rows), AS_OF)
        got = outbox(streamed)
        assert got == outbox(whole)
        ack = next(text for name, text in got.items() if name.endswith("placements.ack.xml"))
        assert ack.count(b"DUPLICATE_IN_FILE") == 2  # P1 in the next window, P2 far after
        assert "esr/RGT/applicants-placements-" in "".join(got)
        assert sum("applicants-" in name for name in got) == 3  # RGT twice (A13), R1K
        monkeypatch.setattr(check_flow, "WINDOW", 2)
        person = PEOPLE[2]
        checks = b.checks([
            b.applicant(f"A{n}", placement_id=f"Q{n % 3}", forenames=str(person["Forenames"]),
                        surname=str(person["Surname"]), dob=str(person["DateOfBirth"]),
                        checks=[b.dbs(issued="2026-10-01"), b.reference("2026-10-02")])
            for n in range(5)  # Q0, Q1, Q2 once each, then Q0 and Q1 again (C3)
        ])
        for gateway in (streamed, whole):
            assert gateway.process("trac", "checks.xml", checks, AS_OF) == "processed"
        got = outbox(streamed)
        assert got == outbox(whole)
        load = next(text for name, text in got.items() if name.startswith("esr/RGT/checks-"))
        assert load.count(b"<ApplicantChecks ") == 3
        assert state(streamed) == state(whole)
        later = date(2027, 2, 1)  # the H placements are due (P4 not yet)
        assert run_jobs(streamed.pipeline, later, force=True) == run_jobs(
            whole.pipeline, later, force=True, jobs=[replace(job, stream=None) for job in JOBS])
        got = outbox(streamed)
        assert got == outbox(whole)
        released = [text for name, text in got.items()
                    if name.startswith("esr/") and "-released-" in name]
        assert [text.count(b"<Applicant ") for text in released] == [5]
        assert state(streamed) == state(whole)
    finally:
        streamed.store.close()
        whole.store.close()


def test_a_file_invalid_at_its_end_leaves_nothing_it_decided(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """Records decided and written before the schema error of the last one: the file is
    rejected as a whole, nothing of the earlier windows is published or kept, no temporary file
    is left — and the next file is decided as if the invalid one had never come."""
    monkeypatch.setattr(placement_flow, "WINDOW", 2)
    gateway = new_gateway(tmp_path / "gw", streamed=True)
    before = state(gateway)
    rows = [b.placement(f"P{n}", dpn=DPN_B, start="2027-01-05", person=PEOPLE[n % 3])
            for n in range(7)]
    bad = b.placements([*rows, b.placement("P9", wte="lots")])
    try:
        assert gateway.process("tis", "bad.xml", bad, AS_OF) == "rejected"
        assert [p.name for p in gateway.outbox("esr/**/*")] == []
        assert [p.name for p in gateway.outbox("reports/*/notifications-bad-*")] == []
        ack = (gateway.settings.paths.acks / "bad.ack.xml").read_text()
        assert 'status="rejected"' in ack
        assert "SCHEMA_INVALID" in ack
        assert state(gateway) == before
        temps = [p for p in gateway.root.rglob(".*.tmp")]
        assert temps == []
        assert os.listdir(gateway.settings.paths.processing / "tis") == []
        assert gateway.process("tis", "good.xml", b.placements(rows), AS_OF) == "processed"
        assert len(gateway.outbox("esr/RGT/*")) == 1
    finally:
        gateway.store.close()


@st.composite
def check_files(draw: st.DrawFn) -> list[str]:
    """Applicants matched by placement id or by demographics (to the world's placements, to a
    withdrawn one, to none), some twice, some not yet recruited, with checks some of which are
    out of date."""
    rows = []
    for n in range(draw(st.integers(1, 10))):
        person = draw(st.sampled_from(PEOPLE))
        rows.append(b.applicant(
            f"A{n}",
            placement_id=draw(st.sampled_from([None, "P1", "P2", "P3", "P9"])),
            status=draw(st.sampled_from(["Outcome Recruited", "Outcome Recruited", "Offered"])),
            forenames=str(person["Forenames"]), surname=str(person["Surname"]),
            dob=str(person["DateOfBirth"]),
            checks=[b.dbs(issued=draw(st.sampled_from(["2026-10-01", "2020-01-01"]))),
                    b.reference(draw(st.sampled_from(["2026-10-02", "2027-04-02"])))],
        ))
    return rows


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(check_files(), min_size=1, max_size=2), window=st.integers(1, 3),
       held=HELD, counted=COUNTED)
def test_a_check_file_streamed_in_windows_gives_what_the_whole_file_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: list[list[str]], window: int,
    held: int, counted: int,
) -> None:
    """As for placements: check files decided in windows of 1–3 applicants, one file after
    another (so that checks already sent meet C3, in the file and across files), give the same
    outputs and state as each file decided whole."""
    monkeypatch.setattr(check_flow, "WINDOW", window)
    monkeypatch.setattr(check_flow, "HELD", counted)  # C3's tally: as for placements
    monkeypatch.setattr(Staging, "LIMIT", held)
    example = Path(tempfile.mkdtemp(dir=tmp_path))  # one per example
    gateways = [new_gateway(example / "streamed", streamed=True),
                new_gateway(example / "whole", streamed=False)]
    sent = b.placements([
        b.placement("P1", dpn=DPN_B, start="2027-01-05", person=PEOPLE[0]),
        b.placement("P2", dpn=DPN_B, start="2027-01-05", person=PEOPLE[1]),
        b.placement("P3", dpn=DPN_B, start="2027-01-05", person=PEOPLE[2]),
    ])
    withdrawn = b.placements([b.placement("P3", dpn=DPN_B, start="2027-01-05",
                                          person=PEOPLE[2], action="withdraw")])
    try:
        for gateway in gateways:
            assert gateway.process("tis", "sent.xml", sent, AS_OF) == "processed"
            assert gateway.process("tis", "withdrawn.xml", withdrawn, AS_OF) == "processed"
        for n, rows in enumerate(files):
            text = b.checks(rows)
            statuses = [gateway.process("trac", f"checks-{n}.xml", text, AS_OF)
                        for gateway in gateways]
            assert statuses[0] == statuses[1]
        assert outbox(gateways[0]) == outbox(gateways[1])
        assert state(gateways[0]) == state(gateways[1])
    finally:
        for gateway in gateways:
            gateway.store.close()


def test_a_streamed_file_renews_the_leases_itself_on_sqlite(tmp_path: Path) -> None:
    """On SQLite a streamed file's transaction holds the write lock while it is decided; the
    lease thread's own connection would wait for it, and log ``lease.renew_failed`` once the
    busy timeout ran out (30 s: a national file can take longer). The file renews this
    process's leases in its own transaction instead: here a busy timeout and a lease of
    ``lease`` seconds and a file several leases long give no failure, and another claim's lease
    is renewed."""
    lease = 0.15  # the file of 10,000 placements takes 0.8 s or more here: over five leases
    root = tmp_path / "g"
    root.mkdir()
    settings = config.load(write_config(root, store_keys=f"lease_seconds = {lease}\n"))
    store = SqliteStore(settings.paths.var / "gateway.db", busy_timeout=lease)
    pipeline = Pipeline(settings, store, FLOWS, clock)
    gateway = Gateway(root, settings, store, pipeline)
    try:
        gateway.process("esr", "pos.xml", b.rotation_post(), AS_OF)
        rotation = pipeline.claim(gateway.drop("tis", "rotation.xml", b.rotation(
            10_000, AS_OF + timedelta(days=60))), "tis")
        waiting = pipeline.claim(gateway.drop("esr", "later.xml", b.rotation_post()), "esr")
        with capture_logs() as captured, pipeline.holding():
            started = time.time()
            assert pipeline.process(rotation, AS_OF) == "processed"
            took = time.time() - started
        assert took > 3 * lease  # the lease thread tried meanwhile, more than once
        assert [e for e in captured if e["event"] == "lease.renew_failed"] == []
        (until,) = store.execute("SELECT lease_until FROM receipts WHERE id = ?", (waiting.id,))
        # renewed while the file was decided: last in its second half (the commit and the
        # publishing after the last record take a while on a loaded machine)
        assert until[0] - lease > started + took / 2
    finally:
        store.close()


def test_a_tally_reads_its_windows_keys_and_asks_the_store_for_the_others(tmp_path: Path) -> None:
    """A Tally holds only the keys read for the window (and those set since); a key it did not
    read is asked of the store; what it set reaches the store when written, and a later
    window reads it back. Without a store it is a dict that never forgets."""
    store = SqliteStore(tmp_path / "g.db")
    try:
        with store.transaction():
            store.begin_tallies()
            tally = Tally(store, "A13", two_keys)
            tally.read([("RGT", "1")])
            tally[("RGT", "1")] = tally.get(("RGT", "1")) + 1
            tally.add(("RGT", "2"))  # not read: asked of the store (none), then set
            assert ("RGT", "2") in tally
            tally.write()
            store.set_tallies("A13", {("R1K", "9"): 40})  # as another window would have
            tally.read([("RGT", "1")])
            assert (tally.get(("RGT", "1")), tally.get(("R1K", "9")), tally.get(("X", "0"))) == (
                1, 40, 0)
            assert ("RGT", "2") in tally  # not read for this window: from the store
            assert ("X", "0") not in tally
            assert store.tallies("A9", [("RGT", "1")]) == {}  # another tally's keys apart
    finally:
        store.close()
    alone = Tally(None, "", one_key)
    alone.read(["P1"])
    alone.add("P1")
    alone.read(["P2"])  # nothing is let go without a store
    assert "P1" in alone
    assert "P2" not in alone


def test_a_files_tallies_keep_their_counts_in_memory_until_they_have_too_many(
        tmp_path: Path) -> None:
    """Held (``Held(3)``, shared by a file's tallies): every count in memory across windows and
    no statement; once they keep more than three keys together, at the next write of either,
    all of them move into the store, and from then on each reads and writes a window at a
    time as a tally in the store from the start does."""
    store = SqliteStore(tmp_path / "g.db")
    try:
        with store.transaction():
            store.begin_tallies()
            asked: list[str] = []
            store._conn().set_trace_callback(asked.append)
            held = Held(3)
            tally = Tally(store, "A9", one_key, held)
            other = Tally(store, "A13", two_keys, held)
            for window in (["P1", "P2"], ["P3"]):
                tally.read(window)
                for pid in window:
                    assert pid not in tally
                    tally.add(pid)
                tally.write()
            assert [p in tally for p in ("P1", "P2", "P3", "P9")] == [True, True, True, False]
            assert not tally.in_store
            assert [q for q in asked if "file_tally" in q] == []  # nothing asked, nothing written
            other[("RGT", "1")] = 2
            other.write()  # four keys together: more than three, both moved
            assert tally.in_store
            assert other.in_store
            assert store.tallies("A9", [("", p) for p in ("P1", "P2", "P3", "P4")]) == {
                ("", p): 1 for p in ("P1", "P2", "P3")}
            assert store.tallies("A13", [("RGT", "1")]) == {("RGT", "1"): 2}
            tally.read(["P4"])
            assert "P2" in tally  # not read for this window: asked of the store
            assert "P4" not in tally
            tally.add("P4")
            tally.write()
            assert store.tallies("A9", [("", "P4")]) == {("", "P4"): 1}
            other.read([("RGT", "1")])
            assert other.get(("RGT", "1")) == 2
    finally:
        store.close()
