"""A large streamed file is read and validated in a second process beside the gateway's own
(``gateway.reading``, issue 13): the records, and the point where an invalid file fails, are
those of reading it in process; a reader that dies is a retry, never a silent short file; a
reader is never left behind, and does not stop on the signals that ask the gateway to stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lxml import etree

from gateway import reading
from gateway.documents import BY_NAME, DocumentKind
from gateway.errors import RejectedFile, TransientError
from gateway.flows import placements as placement_flow
from gateway.rules.persons import sent_text
from gateway.store import codec
from gateway.transport.files import sha256_of
from gateway.xml.schemas import schema
from gateway.xml.writers import post_text
from tests import builders as b
from tests.daemon import children, wait_until
from tests.test_streaming import AS_OF, DPN_B, PEOPLE, new_gateway, outbox, state

TIS = "urn:dit-gateway:tis:position-extract:1"

LIMIT = 1 << 30
PLACEMENTS = BY_NAME["placements"]
CHECKS = BY_NAME["checks"]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def awkward_placements(count: int) -> str:
    """Placements with every optional part, none, and text that needs escaping."""
    rows = []
    for n in range(count):
        person = b.trainee(f"T{n}", forenames=f"Zoë & <{n}>", surname="O'Neil \"Jr\"",
                           dob="1990-01-01", gmc=f"7{n:06d}",
                           nino=None if n % 2 else "QQ123456C")
        rows.append(b.placement(f"P{n}", person=person, start="2027-02-01",
                                action="withdraw" if n % 7 == 0 else "upsert"))
    return b.placements(rows)


def many_placements(count: int) -> str:
    """``count`` plain placements, quickly (a file larger than the pipe holds)."""
    row = b.placement("PX")
    return b.placements([row.replace('"PX"', f'"P{n}"') for n in range(count)])


def in_process(path: Path, kind: DocumentKind) -> list[object]:
    return list(reading.read(path, kind, schema(kind.xsd), LIMIT))


def readers() -> list[int]:
    """The reader processes this one started and has not yet reaped (zombies included)."""
    found = []
    for pid in children(os.getpid()):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"gateway.reading" in cmdline or "(python" in stat:
            found.append(pid)
    return found


def the_reader() -> int:
    """The one reader process running now."""
    wait_until(lambda: bool(readers()), 10, "the reader process")
    found = readers()
    assert len(found) == 1
    return found[0]


def test_records_read_beside_are_those_read_in_process(tmp_path: Path) -> None:
    """Placements (across several batches, with and without their optional parts, with text
    to escape) and check applicants come back from the reader process equal, in order."""
    placements = write(tmp_path / "placements.xml", awkward_placements(2 * reading.BATCH + 7))
    person = b.trainee("T1", forenames="Ann", surname="Lee", dob="1990-01-01")
    checks = write(tmp_path / "checks.xml", b.checks([
        b.applicant(f"A{n}", placement_id=None if n % 2 else f"P{n}",
                    forenames=str(person["Forenames"]), surname=str(person["Surname"]),
                    dob=str(person["DateOfBirth"]),
                    checks=[b.dbs(issued="2026-10-01"), b.reference("2026-10-02")])
        for n in range(reading.BATCH + 1)
    ]))
    for path, kind in ((placements, PLACEMENTS), (checks, CHECKS)):
        expected = in_process(path, kind)
        assert len(expected) > reading.BATCH
        assert list(reading.read_beside(path, kind, LIMIT)) == expected
    assert readers() == []


def test_an_invalid_file_fails_beside_where_it_fails_in_process(tmp_path: Path) -> None:
    """A schema error after the first batch: the reader hands over every record before it,
    then the stream raises (ValueError, which the pipeline takes as an invalid file and reads
    the careful way for the reasons), as reading in process raises RejectedFile there."""
    rows = [b.placement(f"P{n}") for n in range(reading.BATCH + 20)]
    rows.insert(reading.BATCH + 10, b.placement("BAD", wte="lots"))
    path = write(tmp_path / "bad.xml", b.placements(rows))
    got: list[object] = []
    with pytest.raises(RejectedFile):  # what came before the error stays in the list
        got.extend(reading.read(path, PLACEMENTS, schema(PLACEMENTS.xsd), LIMIT))
    beside: list[object] = []
    with pytest.raises(ValueError, match="SCHEMA_INVALID"):
        beside.extend(reading.read_beside(path, PLACEMENTS, LIMIT))
    assert beside == got
    assert len(got) >= reading.BATCH
    assert readers() == []


def test_the_pipeline_reading_beside_gives_what_it_gives_reading_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every file read beside (BESIDE_BYTES 0): a file of several windows, one invalid after
    its first window, one with a DTD, and the first again (a duplicate) give the same
    statuses, outputs (acknowledgements included) and state as read in process."""
    monkeypatch.setattr(placement_flow, "WINDOW", 2)
    rows = [b.placement(f"P{n}", dpn=DPN_B, start="2027-01-05", person=PEOPLE[n % 3])
            for n in range(7)]
    files = [
        ("good.xml", b.placements(rows)),
        ("bad.xml", b.placements([*rows[:3], b.placement("P9", wte="lots")])),
        ("dtd.xml", b.placements(rows[:2]).replace(
            "<PlacementFile", '<!DOCTYPE PlacementFile [<!ENTITY e "x">]>\n<PlacementFile', 1)),
        ("again.xml", b.placements(rows)),
    ]
    statuses = {}
    gateways = {}
    started: list[str] = []
    read_beside = reading.read_beside

    def counted(path: Path, kind: DocumentKind, limit: int) -> Iterator[object]:
        started.append(path.name.partition("-")[2])  # the claim's name: <id>-<name>
        return read_beside(path, kind, limit)

    monkeypatch.setattr(reading, "read_beside", counted)
    for beside in (True, False):
        monkeypatch.setattr(reading, "BESIDE_BYTES", 0 if beside else 1 << 40)
        monkeypatch.setattr(reading, "cores", lambda: 2)
        gateway = new_gateway(tmp_path / str(beside), streamed=True)
        gateways[beside] = gateway
        statuses[beside] = [gateway.process("tis", name, text, AS_OF) for name, text in files]
    try:
        assert statuses[True] == ["processed", "rejected", "rejected", "duplicate"]
        assert started == ["good.xml", "bad.xml"]  # the DTD is refused before any reading
        assert statuses[True] == statuses[False]
        assert outbox(gateways[True]) == outbox(gateways[False])
        assert state(gateways[True]) == state(gateways[False])
        acks = gateways[True].settings.paths.acks
        assert "FORBIDDEN_XML" in (acks / "dtd.ack.xml").read_text()
        assert "SCHEMA_INVALID" in (acks / "bad.ack.xml").read_text()
    finally:
        for gateway in gateways.values():
            gateway.store.close()
    assert readers() == []


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """More placements than the pipe holds, so that the reader is still at work after the
    first record has come."""
    path = tmp_path_factory.mktemp("large") / "large.xml"
    return write(path, many_placements(20_000))


def first_of(stream: Iterator[object]) -> object:
    return next(stream)


def test_a_reader_that_dies_is_a_retry_not_a_short_file(large: Path) -> None:
    """SIGKILL the reader after the first record: the records it had sent still come, then
    the stream raises TransientError (the file is tried again), and the reader is reaped."""
    stream = reading.read_beside(large, PLACEMENTS, LIMIT)
    first_of(stream)
    os.kill(the_reader(), signal.SIGKILL)
    rest: list[object] = []
    with pytest.raises(TransientError, match="ended before the end of the file"):
        rest.extend(stream)
    assert 1 + len(rest) < 20_000
    assert readers() == []


def test_leaving_the_stream_early_ends_the_reader(large: Path) -> None:
    """The gateway stops reading (a rule raised, the store failed): closing the stream kills
    and reaps the reader, which would otherwise wait on the pipe."""
    stream = reading.read_beside(large, PLACEMENTS, LIMIT)
    first_of(stream)
    pid = the_reader()
    stream.close()  # type: ignore[attr-defined]
    assert readers() == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_reader_does_not_stop_on_the_gateways_stop_signals(large: Path) -> None:
    """SIGTERM and SIGINT (systemd's stop, Ctrl-C) reach the whole group: the daemon finishes
    the file in hand, so its reader must not stop half way."""
    stream = reading.read_beside(large, PLACEMENTS, LIMIT)
    first_of(stream)
    pid = the_reader()
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGINT)
    assert 1 + sum(1 for _record in stream) == 20_000
    assert readers() == []


def test_only_a_large_file_on_a_machine_with_a_second_core_is_read_beside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Below BESIDE_BYTES, or with one core, the file is read in process (no second Python
    to start for a small file); a file that cannot be looked at is read in process, which
    says why."""
    path = write(tmp_path / "p.xml", many_placements(2))
    size = path.stat().st_size
    monkeypatch.setattr(reading, "BESIDE_BYTES", size + 1)
    assert not reading.beside_worthwhile(path)
    monkeypatch.setattr(reading, "BESIDE_BYTES", size)
    assert reading.beside_worthwhile(path) == (len(os.sched_getaffinity(0)) > 1)
    monkeypatch.setattr(reading, "cores", lambda: 1)
    assert not reading.beside_worthwhile(path)
    monkeypatch.setattr(reading, "cores", lambda: 2)
    assert reading.beside_worthwhile(path)
    assert not reading.beside_worthwhile(tmp_path / "missing.xml")


def test_with_no_process_to_be_had_the_file_is_read_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Starting the reader fails (a limit on processes): the records are read here instead."""
    path = write(tmp_path / "p.xml", awkward_placements(3))

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(reading.subprocess, "Popen", refuse)
    assert list(reading.read_beside(path, PLACEMENTS, LIMIT)) == in_process(path, PLACEMENTS)


def test_a_reader_ends_when_the_gateway_is_killed(large: Path) -> None:
    """SIGKILL the gateway's process mid-file: its reader, blocked on the full pipe, ends on
    the broken pipe instead of lingering."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from gateway import reading\n"
        "from gateway.documents import BY_NAME\n"
        "kind = BY_NAME['placements']\n"
        "stream = reading.read_beside(Path(sys.argv[1]), kind, 1 << 30)\n"
        "next(stream)\n"
        "print('reading', flush=True)\n"
        "sys.stdin.read()\n"
    )
    gateway = subprocess.Popen([sys.executable, "-c", script, str(large)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert gateway.stdout is not None
        assert gateway.stdout.readline() == "reading\n"
        children = [int(pid) for pid in
                    Path(f"/proc/{gateway.pid}/task/{gateway.pid}/children").read_text().split()]
        assert len(children) == 1
        gateway.kill()
        gateway.wait()
        wait_until(lambda: not _running(children[0]), 20, "the reader to end")
        assert not _running(children[0])
    finally:
        if gateway.poll() is None:
            gateway.kill()
        gateway.communicate()


def _running(pid: int) -> bool:
    """Whether ``pid`` is alive (an exited process left unreaped is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def extracts(folder: Path) -> list[tuple[Path, str]]:
    """Files of every outcome: two position extracts, a person extract, one that fails its
    schema, one in the wrong channel, a placement file (a streamed kind), a duplicate."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [
        ("positions-RGT.xml", "esr", b.positions("RGT", [
            b.position(1001, "1001", dpn=DPN_B), b.position(1002, "1002", dpn="EOE/RGT00/9/F1/1"),
        ])),
        ("positions-R1K.xml", "esr", b.positions("R1K", [b.position(2001, "2001", dpn=DPN_B)])),
        ("persons-RGT.xml", "esr", b.persons("RGT", [
            b.person("E1", [b.assignment("A1", "1001", start="2026-01-01")],
                     forenames="Zoë & Ann", surname="O'Neil", dob="1995-03-04"),
        ])),
        ("bad.xml", "esr", b.positions("RGT", [b.position(1003, "1003")]).replace(
            "<HiringStatus>Active</HiringStatus>", "<HiringStatus>Lively</HiringStatus>")),
        ("wrong.xml", "tis", b.positions("RGT", [b.position(1004, "1004")])),
        ("placements.xml", "tis", b.placements([b.placement("P1", dpn=DPN_B)])),
        ("again.xml", "esr", b.positions("R1K", [b.position(2001, "2001", dpn=DPN_B)])),
    ]
    return [(write(folder / name, text), channel) for name, channel, text in files]


def patient(ahead: reading.Ahead, taken: list[str],
            expect: set[str] | None = None) -> reading.Ahead:
    """``ahead`` whose ``take`` waits for the reader's answer however slow it is, and notes
    the kind of each answer in ``taken``; with ``expect``, each answer must be a document
    prepared with exactly those keys."""
    take = ahead.take

    def counted(sha256: str, channel: str) -> object:
        got = take(sha256, channel, wait=10)
        taken.append(type(got).__name__)
        if expect is not None:
            assert isinstance(got, reading.Parsed)
            assert set(got.prepared) == expect
        return got

    ahead.take = counted  # type: ignore[method-assign,assignment]
    return ahead


def test_files_parsed_ahead_give_what_parsing_here_gives(tmp_path: Path) -> None:
    """Each file asked before the one before it is decided (as ``process FILE…`` does): the
    same statuses, outputs (acknowledgements included) and state as parsing each here; the
    reader parsed the extracts, the rejected files and the duplicate, and left the placement
    file (read as it is decided) to the pipeline."""
    files = extracts(tmp_path / "files")
    results = {}
    taken: list[str] = []
    for ahead in (True, False):
        gateway = new_gateway(tmp_path / f"gw-{ahead}", streamed=True)
        if ahead:
            gateway.pipeline.ahead = patient(
                reading.Ahead(1 << 30, frozenset(gateway.pipeline.streams)), taken)
        statuses = []
        try:
            for n, (path, channel) in enumerate(files):
                if gateway.pipeline.ahead is not None and n + 1 < len(files):
                    gateway.pipeline.ahead.ask(*files[n + 1])
                receipt = gateway.pipeline.claim(path, channel, copy=True)
                statuses.append(gateway.pipeline.process(receipt, AS_OF))
            results[ahead] = (statuses, outbox(gateway), state(gateway))
        finally:
            if gateway.pipeline.ahead is not None:
                gateway.pipeline.ahead.close()
            gateway.store.close()
    assert results[True][0] == ["processed", "processed", "processed", "rejected", "rejected",
                                "processed", "duplicate"]
    assert results[True] == results[False]
    # the first file was not asked (parsed here); the reader left the placements (streamed as
    # they are decided); the duplicate was never parsed; the others came from the reader, a
    # rejection as a rejection
    assert taken == ["NoneType", "Parsed", "Parsed", "RejectedFile", "RejectedFile", "NoneType"]
    assert readers() == []


def test_a_person_extract_parsed_ahead_comes_with_its_persons_prepared(tmp_path: Path) -> None:
    """The reader encodes each person as the store does and makes the text of each that its
    fingerprint hashes, in order, exactly as the gateway would (names that need escaping, no
    optional parts, every optional part); a position extract's positions come encoded, and a
    placement file (a kind with nothing to prepare) as parsed."""
    persons = write(tmp_path / "persons.xml", b.persons("RGT", [
        b.person("E1", [b.assignment("A1", "1001", start="2026-01-01")],
                 forenames="Zoë & <Ann>", surname="O'Neil \"Jr\"", dob="1995-03-04"),
        b.person("E2", [b.assignment("A2", "1002", start="2026-02-01")], nino=None, gmc=None),
        b.person("E3", [b.assignment("A3", "1003", start="2026-03-01")], title="Dr",
                 email="e3@example.org", address={"Line1": "1 Road", "Town": "Leeds",
                                                  "Postcode": "LS1 1AA"},
                 absences=[("Maternity", "2026-05-01", None)]),
    ]))
    positions = write(tmp_path / "positions.xml", b.positions("RGT", [
        b.position(1001), b.position(1002, "1002", dpn=None, host_lead="Lead")]))
    placements = write(tmp_path / "placements.xml", b.placements([b.placement("P1")]))
    ahead = reading.Ahead(1 << 30, frozenset())  # no kind streamed: placements parsed ahead
    try:
        ahead.ask(persons, "esr")
        got = ahead.take(sha256_of(persons), "esr", wait=10)
        ahead.ask(positions, "esr")
        posts = ahead.take(sha256_of(positions), "esr", wait=10)
        ahead.ask(placements, "tis")
        other = ahead.take(sha256_of(placements), "tis", wait=10)
    finally:
        ahead.close()
    assert isinstance(got, reading.Parsed)
    assert isinstance(posts, reading.Parsed)
    assert isinstance(other, reading.Parsed)
    here = reading.parse(persons, "esr", LIMIT).document.persons
    assert got.document.persons == here
    assert got.prepared == {
        reading.PERSONS_JSON: tuple(codec.dumps(p) for p in here),
        reading.PERSONS_SENT: tuple(sent_text(p) for p in here),
    }
    there = reading.parse(positions, "esr", LIMIT).document.positions
    assert posts.prepared == {reading.POSITIONS_JSON: tuple(codec.dumps(p) for p in there),
                              reading.POSITIONS_POSTS: tuple(post_text(p) for p in there)}
    assert other.kind.name == "placements"
    assert other.prepared == {}


def test_a_position_extract_parsed_ahead_is_stored_as_one_parsed_here(tmp_path: Path) -> None:
    """The reader encodes each position as the store does and as TIS extracts carry it; the
    register keeps each saved position under its own encoding, and the TIS extracts each post
    under its own text, with a refused position (a routing code that is not plain) left out
    between two saved ones, exactly as when the extract is parsed here."""
    text = b.positions("R1K", [
        b.position(3001, "3001", dpn="EOE/R1K00/1/F1/1"),
        b.position(3002, "3002", dpn="E.E/R1K00/2/F1/1"),
        b.position(3003, "3003", dpn="EOE/R1K00/3/F1/1", name="ST3 Cardiology"),
    ])
    stored = {}
    written = {}
    taken: list[str] = []
    for ahead in (True, False):
        path = write(tmp_path / f"positions-R1K-{ahead}.xml", text)
        gateway = new_gateway(tmp_path / f"gw-{ahead}", streamed=True)
        try:
            if ahead:
                gateway.pipeline.ahead = patient(reading.Ahead(1 << 30, frozenset()), taken,
                                                 expect={reading.POSITIONS_JSON,
                                                         reading.POSITIONS_POSTS})
                gateway.pipeline.ahead.ask(path, "esr")
            receipt = gateway.pipeline.claim(path, "esr", copy=True)
            assert gateway.pipeline.process(receipt, AS_OF) == "processed"
            stored[ahead] = dict(gateway.store.execute(
                "SELECT esr_position_id, data FROM positions WHERE vpd = 'R1K'"))
            written[ahead] = {name: data
                              for name, data in outbox(gateway).items()
                              if name.startswith("tis/") and "R1K" in name}
        finally:
            if gateway.pipeline.ahead is not None:
                gateway.pipeline.ahead.close()
            gateway.store.close()
    assert taken == ["Parsed"]
    here = {p.esr_position_id: p for p in reading.parse(path, "esr", LIMIT).document.positions}
    assert stored[True] == stored[False] == {
        3001: codec.dumps(here[3001]), 3003: codec.dumps(here[3003])}
    assert list(written[True]) == ["tis/EOE/positions-R1K-2026-11-02.xml"]
    assert written[True] == written[False]
    posts = etree.fromstring(next(iter(written[True].values()))).findall(f"{{{TIS}}}Post")
    assert [(p.findtext(f"{{{TIS}}}PositionNumber"), p.findtext(f"{{{TIS}}}PositionName"))
            for p in posts] == [("3001", here[3001].position_name), ("3003", "ST3 Cardiology")]


def test_a_file_changed_after_it_was_asked_is_parsed_here(tmp_path: Path) -> None:
    """The claimed copy is not what was asked (the file changed in between), or the reader
    read it after it changed: nothing of the reader's is used for it."""
    first = write(tmp_path / "a.xml", b.positions("RGT", [b.position(1001, "1001")]))
    ahead = reading.Ahead(1 << 30, frozenset())
    try:
        ahead.ask(first, "esr")
        old = sha256_of(first)
        write(first, b.positions("RGT", [b.position(1002, "1002")]))
        assert ahead.take(sha256_of(first), "esr") is None  # never asked for these bytes
        assert ahead.take(old, "esr", wait=10) is None  # changed while it was read
        second = write(tmp_path / "b.xml", b.positions("RGT", [b.position(1003, "1003")]))
        ahead.ask(second, "esr")
        asked = sha256_of(second)
        assert isinstance(ahead.take(asked, "esr", wait=10), reading.Parsed)
        ahead.ask(second, "esr")
        assert ahead.take(asked, "tis", wait=10) is None  # asked as another channel's file
    finally:
        ahead.close()
    assert readers() == []


def _returns_at_once(call: Callable[[], object]) -> list[object]:
    """``[call()]``, run in a thread; the test fails if it is still waiting after 10 s (the
    caller then opens the FIFO for writing and closes it, to let the thread end)."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "still waiting on a FIFO"
    return result


def test_a_fifo_is_never_waited_on_by_the_look_ahead(tmp_path: Path) -> None:
    """A FIFO where a file was (an operator's, or one a partner swapped in after intake looked
    at a regular file): the look-ahead neither waits for a writer nor asks its reader about it,
    and the reader's own parse lets it be (before, both opened it and waited forever)."""
    fifo = tmp_path / "swapped.xml"
    os.mkfifo(fifo)
    ahead = reading.Ahead(1 << 30, frozenset())
    try:
        _returns_at_once(lambda: ahead.ask(fifo, "esr"))
        assert ahead.asked == 0
        assert readers() == []  # none started for it
        got = _returns_at_once(lambda: reading._parse_ahead(fifo, "esr", 1 << 30, frozenset()))
        assert got == [("", "esr", reading._SKIPPED, None)]
    finally:
        ahead.close()
        with contextlib.suppress(OSError):  # a reader still waiting: give it its end of file
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.fixture
def answering(tmp_path: Path) -> Iterator[tuple[reading.Ahead, list[Path], int]]:
    """A look-ahead reader that has answered for the first of three small files: the reader,
    the files and its process id; at the end, closed and gone."""
    files = [write(tmp_path / f"{n}.xml", b.positions("RGT", [b.position(n, str(n))]))
             for n in (1, 2, 3)]
    ahead = reading.Ahead(1 << 30, frozenset())
    try:
        ahead.ask(files[0], "esr")
        assert isinstance(ahead.take(sha256_of(files[0]), "esr", wait=10), reading.Parsed)
        yield ahead, files, the_reader()
    finally:
        ahead.close()
    assert readers() == []


def test_a_look_ahead_reader_that_died_leaves_every_file_to_be_parsed_here(
    answering: tuple[reading.Ahead, list[Path], int],
) -> None:
    """SIGKILL the reader: the files asked after are parsed here (take says None, nothing is
    raised), no reader is started again for them, and the dead one is reaped."""
    ahead, files, pid = answering
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not _running(pid), 10, "the killed reader to end")
    ahead.ask(files[1], "esr")
    ahead.ask(files[2], "esr")
    assert ahead.take(sha256_of(files[1]), "esr", wait=10) is None
    assert ahead.take(sha256_of(files[2]), "esr", wait=10) is None
    assert readers() == []


def test_a_file_the_reader_has_not_answered_is_parsed_here_without_waiting(
    answering: tuple[reading.Ahead, list[Path], int],
) -> None:
    """The reader cannot answer (stopped here with SIGSTOP; in life: still starting, or its core
    busy): take says None at once, and the file is parsed here. Its late answer is used for
    nothing; the next file asked is the reader's again."""
    ahead, files, pid = answering
    os.kill(pid, signal.SIGSTOP)
    try:
        ahead.ask(files[1], "esr")
        got: list[object] = []
        taking = threading.Thread(
            target=lambda: got.append(ahead.take(sha256_of(files[1]), "esr")), daemon=True)
        taking.start()
        taking.join(timeout=10)  # it waited for the stopped reader before
        assert not taking.is_alive()
        assert got == [None]
    finally:
        os.kill(pid, signal.SIGCONT)
    ahead.ask(files[2], "esr")
    third = ahead.take(sha256_of(files[2]), "esr", wait=10)
    assert isinstance(third, reading.Parsed)
    assert [p.position_number for p in third.document.positions] == ["3"]
    assert readers() == [pid]  # the same reader, answering again


def test_files_asked_and_never_taken_neither_block_nor_pile_up(tmp_path: Path) -> None:
    """Thousands of files asked and never taken (duplicates are never parsed): their answers,
    together larger than the pipe, once filled it and stopped the reader, and then the asks
    filled the other pipe and stopped the gateway. Now the asks go on; the reader has at most
    ``WAITING`` of them in hand, its answers are taken off the pipe, and only the asks that can
    still be taken are kept. The last file asked is still the reader's."""
    big = write(tmp_path / "big.xml",
                b.positions("RGT", [b.position(n, str(n)) for n in range(1, 401)]))
    sha = sha256_of(big)
    ahead = reading.Ahead(1 << 30, frozenset())
    try:
        asking = threading.Thread(target=lambda: [ahead.ask(big, "esr") for _ in range(2000)],
                                  daemon=True)
        asking.start()
        asking.join(timeout=60)  # it never ended before
        assert not asking.is_alive()
        assert len(ahead._asked) <= reading.WAITING  # what it holds: the asks still wanted
        assert len(ahead._replies) <= reading.WAITING
        got = ahead.take(sha, "esr", wait=10)
        assert isinstance(got, reading.Parsed)
        assert len(got.document.positions) == 400
    finally:
        ahead.close()
    assert readers() == []


def test_a_next_file_that_cannot_be_looked_at_is_left_for_its_turn(tmp_path: Path) -> None:
    """``process a b c``: b cannot be read while a is decided (gone; a folder where the file
    was): asking ahead for it raises nothing, gives the reader nothing and does not end it (b is
    the pipeline's to refuse in its turn). c, outside the inbox, is asked with no channel: the
    reader reads the channel from its root, as the claim will."""
    from gateway import cli  # noqa: PLC0415

    gateway = new_gateway(tmp_path / "gw", streamed=True)
    ahead = gateway.pipeline.ahead = reading.Ahead(1 << 30, frozenset())
    try:
        cli.ask_ahead(gateway.pipeline, tmp_path / "missing.xml", gateway.settings)
        (tmp_path / "b.xml").mkdir()
        cli.ask_ahead(gateway.pipeline, tmp_path / "b.xml", gateway.settings)
        assert ahead.asked == 0
        assert readers() == []
        readable = write(tmp_path / "c.xml", b.positions("RGT", [b.position(1)]))
        cli.ask_ahead(gateway.pipeline, readable, gateway.settings)
        assert ahead.asked == 1
        assert isinstance(ahead.take(sha256_of(readable), "esr", wait=10), reading.Parsed)
        cli.ask_ahead(gateway.pipeline, readable, gateway.settings)
        assert ahead.take(sha256_of(readable), "tis", wait=10) is None  # not its channel
    finally:
        ahead.close()
        gateway.store.close()
    assert readers() == []
