"""Operating it (spec 10), through the real daemon: /metrics agrees with the acknowledgements,
the status page in real headless Chromium, /readyz on real faults, the file that never came."""

from __future__ import annotations

import csv
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from lxml import etree
from prometheus_client.parser import text_string_to_metric_families

from gateway import config
from gateway.errors import ConfigError
from gateway.ops import server
from gateway.store import open_store
from gateway.transport import files
from tests import builders as b
from tests.conftest import REPO, write_config
from tests.daemon import DaemonProcess, wait_until
from tests.fixtures.postgres import PostgresServer

ACK = "{urn:dit-gateway:ack:1}"
DPN = "EOE/RGT00/001/FY1/001"
ALEX = b.trainee("T1", forenames="Alexandra", surname="Quennell", dob="1995-03-04",
                 nino="QQ123456C", gmc="7123456", email="alexandra.q@example.org")
SAM = b.trainee("T2", forenames="Samira", surname="Okonjo", dob="1993-07-21", nino=None,
                gmc="7654321", email=None)
PERSONAL = ["Alexandra", "Quennell", "Samira", "Okonjo", "1995-03-04", "1993-07-21",
            "QQ123456C", "7123456", "7654321", "alexandra.q@example.org"]


def port_of(daemon: DaemonProcess) -> int:
    """The port the daemon's HTTP server listens on (``[http] listen`` port 0: from its log)."""
    wait_until(lambda: any(e["event"] == "http.listening" for e in daemon.logs()),
               what="the HTTP server")
    return int(next(e["port"] for e in daemon.logs() if e["event"] == "http.listening"))


def get(port: int, path: str) -> tuple[int, str]:
    """(status, body) of a GET."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def acks(root: Path) -> list[etree._Element]:
    """Every published acknowledgement."""
    folder = root / "outbox" / "reports" / "acks"
    return [etree.parse(str(p)).getroot() for p in sorted(folder.glob("*.ack.xml"))]


def drop_scenario(root: Path) -> None:
    """Positions, then placements (one loaded, one UNKNOWN_DPN), and a file broken whole."""
    inbox = root / "inbox"
    for channel in ("esr", "tis"):
        (inbox / channel).mkdir(parents=True, exist_ok=True)
    (inbox / "esr" / "positions.xml").write_text(b.positions("RGT", [b.position(1, dpn=DPN)]))
    wait_until(lambda: len(acks(root)) == 1, what="the positions ack")
    (inbox / "tis" / "placements.xml").write_text(b.placements([
        b.placement("P1", dpn=DPN, start="2026-12-14", person=ALEX),
        b.placement("P2", dpn="EOE/RGT00/999/FY1/001", start="2026-12-14", person=SAM),
    ]))
    (inbox / "tis" / "broken.xml").write_text("<PlacementFile>Quennell 1995-03-04")
    wait_until(lambda: len(acks(root)) == 3, what="three acks")


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of a family."""
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return [(dict(s.labels), s.value) for s in family.samples
                    if s.name.endswith("_total") or s.name == name]
    return []


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[DaemonProcess, int]]:
    """A daemon on the scenario, its HTTP port."""
    daemon = DaemonProcess(tmp_path, write_config(tmp_path))
    daemon.start()
    try:
        port = port_of(daemon)
        drop_scenario(tmp_path)
        yield daemon, port
    finally:
        daemon.kill()


def test_metrics_count_what_the_acknowledgements_say(
    tmp_path: Path, running: tuple[DaemonProcess, int]
) -> None:
    """Files by channel and status, records by result and reason: /metrics holds exactly the
    counts of the acks; the histogram saw each file; and the counts survive a restart."""
    daemon, port = running
    files = Counter((a.get("channel"), a.get("status")) for a in acks(tmp_path))
    records = Counter((o.get("result"), o.get("reason") or "")
                      for a in acks(tmp_path) for o in a.findall(f"{ACK}Outcome"))
    assert records == Counter({("loaded", ""): 2, ("rejected", "UNKNOWN_DPN"): 1})

    def scraped(port: int) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]], str]:
        status, text = get(port, "/metrics")
        assert status == 200
        got_files: Counter[tuple[str, str]] = Counter()
        for labels, value in samples(text, "dit_gateway_files"):
            got_files[(labels["channel"], labels["status"])] += int(value)
        got_records: Counter[tuple[str, str]] = Counter()
        for labels, value in samples(text, "dit_gateway_records"):
            got_records[(labels["result"], labels["reason"])] += int(value)
        return got_files, got_records, text

    # each file's time is observed once its step is over, a moment after its acknowledgement
    # (CI once scraped in between)
    timed = 'dit_gateway_processing_seconds_count{channel="tis"} 2.0'
    wait_until(lambda: timed in scraped(port)[2], timeout=10, what="both tis files timed")
    got_files, got_records, text = scraped(port)
    assert got_files == files
    assert got_records == records
    assert timed in text
    assert "dit_gateway_store_up 1.0" in text
    for secret in PERSONAL:
        assert secret not in text
    assert daemon.terminate() == 0
    daemon.start()
    again_files, again_records, _text = scraped(port_of_restart(daemon))
    assert (again_files, again_records) == (files, records)


def test_an_acknowledgement_is_served_by_its_receipt_id_and_nothing_else_is(
    tmp_path: Path, running: tuple[DaemonProcess, int]
) -> None:
    """``/acks/<id>`` (the page's links) serves a file's acknowledgement by its receipt's id;
    an id that is no receipt's, too large for the store's integers, or not a number is 404,
    never an internal error (a 30-digit id was a 500 and a traceback in the log)."""
    daemon, port = running
    status, body = get(port, "/acks/1")
    folder = tmp_path / "outbox" / "reports" / "acks"
    assert (status, body) == (200, (folder / "positions.ack.xml").read_text())
    for asked in ("/acks/999999", "/acks/" + "9" * 30, "/acks/%C2%B2", "/acks/", "/acks/-1"):
        assert get(port, asked) == (404, "no such acknowledgement\n"), asked
    assert [e for e in daemon.logs() if e["event"] == "http.failed"] == []
    assert daemon.terminate() == 0


def port_of_restart(daemon: DaemonProcess) -> int:
    """The port of the daemon's second run."""
    wait_until(lambda: sum(e["event"] == "http.listening" for e in daemon.logs()) == 2,
               what="the HTTP server again")
    return int([e for e in daemon.logs() if e["event"] == "http.listening"][-1]["port"])


def test_the_status_page_in_headless_chromium(
    tmp_path: Path, running: tuple[DaemonProcess, int]
) -> None:
    """Real Chromium loads the page: the file just processed with its totals, the rejection
    reasons, a link to each acknowledgement — and none of the scenario's personal data."""
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    _daemon, port = running
    profile = Path(tempfile.mkdtemp(prefix="chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                 "--window-size=1280,1600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        assert driver.title == "dit-gateway — status"
        rows = driver.find_elements(By.CSS_SELECTOR, "tr.file")
        cells = [[c.text for c in row.find_elements(By.TAG_NAME, "td")] for row in rows]
        placements = next(c for c in cells if c[1] == "placements.xml")
        assert placements[2:7] == ["tis", "processed", "", "2", "1"]
        broken = next(c for c in cells if c[1] == "broken.xml")
        assert broken[3:5] == ["rejected", "NOT_WELL_FORMED"]
        reasons = driver.find_element(By.ID, "rejections").find_element(
            By.XPATH, "following-sibling::table").text
        assert "UNKNOWN_DPN" in reasons
        assert "NOT_WELL_FORMED" in reasons
        assert "Ready" in driver.find_element(By.ID, "readiness").text
        link = rows[0].find_element(By.LINK_TEXT, "acknowledgement").get_attribute("href")
        artefacts = REPO / "test-artifacts"
        artefacts.mkdir(exist_ok=True)
        shot = tmp_path / "status-page.png"
        assert driver.save_screenshot(str(shot))
        shutil.copy(shot, artefacts / "status-page.png")
        page = driver.page_source
        for secret in PERSONAL:
            assert secret not in page, secret
        assert driver.find_elements(By.TAG_NAME, "script") == []
        driver.get(str(link))
        assert "Acknowledgement" in driver.page_source
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    """tmpfs mounts made by the test, unmounted at the end."""
    made: list[Path] = []
    yield made
    for point in reversed(made):
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_readyz_turns_503_for_a_read_only_outbox_folder_and_back(
    tmp_path: Path, mounts: list[Path]
) -> None:
    """An outbox folder on a file system remounted read-only: /readyz 503 naming the folder
    (while /healthz stays 200), then 200 again once it is writable."""
    tis = tmp_path / "outbox" / "tis"
    tis.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(tis)], check=True)
    mounts.append(tis)
    daemon = DaemonProcess(tmp_path, write_config(tmp_path))
    daemon.start()
    try:
        port = port_of(daemon)
        assert get(port, "/readyz") == (200, "ready\n")
        subprocess.run(["mount", "-o", "remount,ro", str(tis)], check=True)
        status, body = get(port, "/readyz")
        assert status == 503
        assert f"folder not writable: {tis}" in body
        assert get(port, "/healthz") == (200, "ok\n")
        subprocess.run(["mount", "-o", "remount,rw", str(tis)], check=True)
        assert get(port, "/readyz") == (200, "ready\n")
    finally:
        daemon.kill()


def test_readyz_turns_503_when_the_store_is_unreachable_and_back(tmp_path: Path) -> None:
    """The daemon's PostgreSQL server stopped for real: /readyz 503 "store unreachable", the
    page still answers, and /metrics says ``dit_gateway_store_up 0``, each well within
    Prometheus' default scrape timeout (10 s: a scrape that outlasts it is lost, and with it
    the store_up alert; each took the store pool's 10 s, the page 20 s); started again: 200."""
    server = PostgresServer.start(Path(tempfile.mkdtemp(prefix="dit-gateway-pg-readyz-")))
    try:
        daemon = DaemonProcess(tmp_path, write_config(tmp_path, store_url=server.new_database()))
        daemon.start()
        try:
            port = port_of(daemon)
            assert get(port, "/readyz") == (200, "ready\n")
            server.pause()
            status, body = get(port, "/readyz")
            assert status == 503
            assert "store unreachable" in body
            for path in ("/metrics", "/"):
                asked = time.monotonic()
                status, body = get(port, path)
                assert (status, time.monotonic() - asked < 8) == (200, True), path
            assert "dit_gateway_store_up 0.0" in get(port, "/metrics")[1]
            assert "store unreachable" in get(port, "/")[1]
            server.resume()
            wait_until(lambda: get(port, "/readyz") == (200, "ready\n"), timeout=60,
                       what="ready again")
        finally:
            daemon.kill()
    finally:
        server.stop()


def test_silent_clients_cannot_keep_the_server_from_answering(tmp_path: Path) -> None:
    """A connection opened and left silent (a port scan, a probe that hangs): /healthz,
    /readyz, /metrics and the page still answer, and the server closes the silent one after
    ``IDLE_SECONDS``. As many silent ones as it takes at once: one more is closed unanswered
    (threads stay bounded), and once they go, it answers again. Before, one silent
    connection kept every request waiting for ever: a liveness probe would have restarted
    the daemon."""
    daemon = DaemonProcess(tmp_path, write_config(tmp_path))
    daemon.start()
    try:
        port = port_of(daemon)
        silent = socket.create_connection(("127.0.0.1", port))
        opened = time.monotonic()
        for path in ("/healthz", "/readyz", "/metrics", "/"):
            assert get(port, path)[0] == 200, path
        silent.settimeout(server.IDLE_SECONDS + 20)
        assert silent.recv(1) == b""  # closed by the server (a timeout would raise)
        assert time.monotonic() - opened >= server.IDLE_SECONDS - 1
        silent.close()
        crowd = [socket.create_connection(("127.0.0.1", port))
                 for _ in range(server.MAX_CONNECTIONS)]
        try:
            one_more = socket.create_connection(("127.0.0.1", port))
            one_more.settimeout(5)
            assert one_more.recv(1) == b""  # closed at once, long before IDLE_SECONDS
            one_more.close()
        finally:
            for connection in crowd:
                connection.close()
        wait_until(lambda: get(port, "/healthz") == (200, "ok\n"), what="/healthz again")
        assert daemon.terminate() == 0
    finally:
        daemon.kill()


def checks(text: str) -> int:
    """How many times the daemon has checked its expectations (from /metrics)."""
    return int(sum(v for _l, v in samples(text, "dit_gateway_expect_checks")))


def test_an_expected_extract_that_does_not_come(tmp_path: Path) -> None:
    """[[expect]] an ESR extract for RGT every 0.002 h (7.2 s): overdue → one
    expected_file_missing however many checks pass, the gauge 1, a line on the page, /readyz
    still 200; the extract comes → expected_file_arrived, the gauge 0, the line gone."""
    config = write_config(tmp_path, extra='[[expect]]\nchannel = "esr"\nvpd = "RGT"\n'
                                          "every_hours = 0.002\n")
    daemon = DaemonProcess(tmp_path, config)
    daemon.start()
    try:
        port = port_of(daemon)

        def missing() -> list[dict[str, object]]:
            return [e for e in daemon.logs() if e["event"] == "expected_file_missing"]

        wait_until(lambda: bool(missing()), timeout=30, what="expected_file_missing")
        first = missing()[0]
        assert first["expected"] == "esr:RGT"
        assert first["since"] == "never"
        _status, text = get(port, "/metrics")
        assert 'dit_gateway_expected_file_overdue{expected="esr:RGT"} 1.0' in text
        assert "esr:RGT" in get(port, "/")[1]
        assert get(port, "/readyz")[0] == 200
        seen = checks(text)
        wait_until(lambda: checks(get(port, "/metrics")[1]) >= seen + 3, timeout=30,
                   what="three more checks")
        assert len(missing()) == 1
        inbox = tmp_path / "inbox" / "esr"
        inbox.mkdir(parents=True, exist_ok=True)
        (inbox / "rgt.xml").write_text(b.positions("RGT", [b.position(1, dpn=DPN)]))
        wait_until(lambda: any(e["event"] == "expected_file_arrived" for e in daemon.logs()),
                   timeout=30, what="expected_file_arrived")
        _status, text = get(port, "/metrics")
        assert 'dit_gateway_expected_file_overdue{expected="esr:RGT"} 0.0' in text
        assert len(missing()) == 1
    finally:
        daemon.kill()


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m gateway`` in ``root`` with its config."""
    command, *rest = args
    return subprocess.run(
        [sys.executable, "-m", "gateway", command, "--config", str(root / "gateway.toml"), *rest],
        capture_output=True, text=True, check=False, cwd=root, timeout=120,
    )


def test_the_rotation_grid_holds_current_and_next_per_post(tmp_path: Path) -> None:
    """Posts on the interface of RGT with a current and a next trainee, a shared post held by
    two at once, and a post whose placement was withdrawn: the .xlsx opens with openpyxl with a
    bold frozen header, dates as dates, one row per post; the .csv says the same; a day with
    nothing changed writes no grid."""
    write_config(tmp_path)
    dpns = ["EOE/RGT00/001/FY1/001", "EOE/RGT00/002/FY1/001", "EOE/RGT00/003/FY1/001"]
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "pos.xml").write_text(b.positions("RGT", [
        b.position(1, "1001", dpn=dpns[0]), b.position(2, "1002", dpn=dpns[1], ptype="Shared"),
        b.position(3, "1003", dpn=dpns[2]), b.position(4, "1004", dpn=None),
    ]))
    people = [b.trainee(f"T{i}", forenames=f"Given{i}", surname=f"Family{i}",
                        gmc=f"70000{i:02d}", nino=None) for i in range(1, 6)]
    (drop / "tis.xml").write_text(b.placements([
        b.placement("P1", dpn=dpns[0], start="2026-09-07", end="2026-11-19", person=people[0]),
        b.placement("P2", dpn=dpns[0], start="2026-11-20", end="2027-06-01", person=people[1],
                    wte="0.8"),
        b.placement("P3", dpn=dpns[1], start="2026-09-07", end="2027-03-01", person=people[2]),
        b.placement("P4", dpn=dpns[1], start="2026-09-07", end="2027-03-01", person=people[3]),
        b.placement("P5", dpn=dpns[2], start="2026-11-10", end="2027-03-01", person=people[4]),
    ]))
    (drop / "withdraw.xml").write_text(b.placements([
        b.placement("P5", dpn=dpns[2], start="2026-11-10", end="2027-03-01", person=people[4],
                    action="withdraw"),
    ]))
    for name, day in (("pos.xml", "2026-09-01"), ("tis.xml", "2026-09-01"),
                      ("withdraw.xml", "2026-09-02")):
        result = cli(tmp_path, "process", "--as-of", day, str(drop / name))
        assert result.returncode == 0, result.stderr
    assert cli(tmp_path, "tick", "--as-of", "2026-11-02").returncode == 0
    folder = tmp_path / "outbox" / "reports" / "RGT"
    sheet = openpyxl.load_workbook(folder / "rotation-grid-2026-11-02.xlsx").worksheets[0]
    assert sheet.freeze_panes == "A2"
    assert all(cell.font.bold for cell in sheet[1])
    assert sheet.column_dimensions["D"].width >= 20
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows[0][:4] == ["Position number", "DPN", "Post", "Current trainee"]
    day = datetime.datetime
    assert rows[1:] == [
        ["1001", dpns[0], "FY1 General Medicine", "Given1 Family1", "7000001",
         day(2026, 9, 7), day(2026, 11, 19), "1.0", "Given2 Family2", "7000002",
         day(2026, 11, 20), day(2027, 6, 1), "0.8"],
        ["1002", dpns[1], "FY1 General Medicine", "Given3 Family3; Given4 Family4",
         "7000003; 7000004", day(2026, 9, 7), day(2027, 3, 1), "1.0; 1.0",
         None, None, None, None, None],
        ["1003", dpns[2], "FY1 General Medicine", None, None, None, None, None,
         None, None, None, None, None],
    ]
    with (folder / "rotation-grid-2026-11-02.csv").open(newline="") as fh:
        table = list(csv.reader(fh))
    assert table[1][:8] == ["1001", dpns[0], "FY1 General Medicine", "Given1 Family1",
                            "7000001", "2026-09-07", "2026-11-19", "1.0"]
    assert len(table) == 4
    assert cli(tmp_path, "tick", "--as-of", "2026-11-03").returncode == 0
    assert not (folder / "rotation-grid-2026-11-03.xlsx").exists()


def test_retention_removes_only_what_is_old_and_no_longer_needed(tmp_path: Path) -> None:
    """With [retention] days = 90 and files 100 days old: the archive, the quarantine and an
    output sent to its partner go; a recent archive and quarantine file, a file in
    processing, an output still being sent, outputs no partner delivers and an applicant load
    awaiting ESR's confirmation (even though sent) stay."""
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("id", "known_hosts"):
        (keys / name).write_text("unused\n")
    extra = ('[retention]\ndays = 90\n[[sftp]]\nname = "hub"\nhost = "127.0.0.1"\n'
             'user = "u"\nprivate_key = "keys/id"\nknown_hosts = "keys/known_hosts"\n'
             'deliver = ["tis", "esr"]\n')
    write_config(tmp_path, extra=extra)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "pos.xml").write_text(b.positions("RGT", [b.position(1, dpn=DPN)]))
    (drop / "tis.xml").write_text(b.placements([b.placement("P1", dpn=DPN, start="2026-12-01")]))
    (drop / "broken.xml").write_text("<PlacementFile>")
    (drop / "recent.xml").write_text(b.positions("RGX", [b.position(2, dpn=DPN)]))
    (drop / "recent-broken.xml").write_text("<PositionExtract>")
    for name in ("pos.xml", "tis.xml", "broken.xml", "recent.xml", "recent-broken.xml"):
        result = cli(tmp_path, "process", "--as-of", "2026-11-02", str(drop / name))
        assert result.returncode in (0, 1), result.stderr
    var, outbox = tmp_path / "var", tmp_path / "outbox"
    in_hand = var / "processing" / "esr" / "in-hand.xml"
    in_hand.parent.mkdir(parents=True, exist_ok=True)
    in_hand.write_text("x")
    extract = next((outbox / "tis" / "EOE").glob("positions-RGT-*.xml"))
    sending = outbox / "tis" / "EOE" / "positions-RGX-2026-01-01.xml"
    sending.write_text("<x/>")
    load = next((outbox / "esr" / "RGT").glob("applicants-*.xml"))
    # 100 days before the tick's as-of (retention counts from it, not from the clock)
    as_of = datetime.datetime(2026, 11, 22, tzinfo=datetime.UTC)
    old = as_of.timestamp() - 100 * 86400
    recent = {p for p in var.rglob("*") if p.name.startswith("recent")}
    everything = [p for p in [*var.rglob("*"), *outbox.rglob("*")] if p.is_file()]
    for path in everything:
        if path not in recent and path.suffix in (".xml", ".csv"):
            os.utime(path, (old, old))
    settings = config.load(tmp_path / "gateway.toml")
    with open_store(settings) as store:
        for path, state in ((extract, "sent"), (sending, "sending"), (load, "sent")):
            store.execute(
                "INSERT INTO sftp_deliveries (partner, path, sha256, remote_temp, remote_path,"
                " bytes, state, sent_at) VALUES ('hub', ?, ?, 't', 'r', 1, ?, 'now')",
                (path.relative_to(outbox).as_posix(), files.sha256_of(path), state),
            )
    before = {p for p in everything if p.exists()}
    result = cli(tmp_path, "tick", "--as-of", "2026-11-22")
    assert result.returncode == 0, result.stderr
    gone = {p for p in before if not p.exists()}
    archived = {p for p in before if "archive" in p.parts and p not in recent}
    quarantined = {p for p in before if "quarantine" in p.parts and p not in recent}
    assert archived
    assert quarantined
    assert gone == archived | quarantined | {extract}
    assert in_hand.exists()
    assert sending.exists()
    assert load.exists()
    assert recent
    assert all(p.exists() for p in recent)
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    removed = {e["kind"]: (e["files"], e["kept"]) for e in events
               if e["event"] == "retention.removed"}
    assert removed["archive"][0] == len(archived)
    assert removed["quarantine"][0] == len(quarantined)
    assert removed["outbox"][0] == 1


@pytest.mark.parametrize(("extra", "key"), [
    ('[http]\nlisten = "localhost"\n', "http.listen"),
    ('[[expect]]\nchannel = "fax"\nevery_hours = 1\n', "expect[0].channel"),
    ('[[expect]]\nchannel = "tis"\nevery_hours = 0\n', "expect[0].every_hours"),
    ('[[expect]]\nchannel = "tis"\npartner = "nobody"\nevery_hours = 1\n', "expect[0].partner"),
    ("[retention]\ndays = 0\n", "retention.days"),
])
def test_operating_settings_are_checked_naming_the_key(
    tmp_path: Path, extra: str, key: str
) -> None:
    """A wrong [http], [[expect]] or [retention] value is a configuration error naming its key."""
    path = write_config(tmp_path, extra=extra)
    with pytest.raises(ConfigError, match=re.escape(key)):
        config.load(path)


def test_the_systemd_unit_is_hardened() -> None:
    """The unit runs as its own user with the sandboxing an operator would expect."""
    unit = (REPO / "config" / "systemd" / "dit-gateway.service").read_text()
    lines = {line.strip() for line in unit.splitlines()}
    for wanted in ("User=dit-gateway", "ProtectHome=true", "PrivateDevices=true",
                   "ProtectSystem=strict", "NoNewPrivileges=true", "UMask=0027",
                   "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"):
        assert wanted in lines, wanted
    assert "9180" in unit
