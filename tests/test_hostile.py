"""Hostile input gets a clear error and nothing else: no entity expanded, no file or URL read."""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from lxml import etree
from watchdog.events import FileOpenedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers.inotify import InotifyObserver

from gateway import config
from gateway.cli import FLOWS
from gateway.pipeline import Pipeline
from gateway.store.sqlite import SqliteStore
from tests import builders as b
from tests.conftest import Gateway, write_config
from tests.xsdcheck import assert_valid

AS_OF = date(2026, 11, 2)
ACK = "{urn:dit-gateway:ack:1}"
SECRET = "TOP-SECRET-MARKER-4711"  # noqa: S105  (a marker, not a password)
NS = b.POSITIONS_NS


@dataclass
class Traps:
    """A secret file watched for opens, and a web server counting requests."""

    secret: Path
    url: str
    opened: list[str]
    requests: list[str]


class _Opens(FileSystemEventHandler):
    def __init__(self, target: Path, opened: list[str]) -> None:
        self.target = str(target)
        self.opened = opened

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, FileOpenedEvent) and event.src_path == self.target:
            self.opened.append(str(event.src_path))


@pytest.fixture(scope="module")
def traps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traps]:
    """A secret file that must never be opened and an HTTP server that must never be asked."""
    folder = tmp_path_factory.mktemp("secret")
    secret = folder / "secret.txt"
    secret.write_text(SECRET)
    opened: list[str] = []
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(f'<!ENTITY leak "{SECRET}">'.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    observer = InotifyObserver()
    observer.schedule(_Opens(secret, opened), str(folder))
    observer.start()
    try:
        yield Traps(secret, f"http://127.0.0.1:{server.server_address[1]}", opened, requests)
    finally:
        observer.stop()
        observer.join()
        server.shutdown()
        server.server_close()


def hostile_documents(t: Traps) -> dict[str, tuple[bytes, str]]:
    """name → (file bytes, expected code)."""
    root = f'<PositionExtract xmlns="{NS}" vpd="RGT" extractDate="2026-11-02" type="full">'
    laughs = '<!ENTITY l0 "ha">' + "".join(
        f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    )
    big = "x" * 50_000
    deep = "<a>" * 10_000 + "</a>" * 10_000  # beyond libxml2's own limit (256)
    nested = "<a>" * 100 + "</a>" * 100  # beyond ours (32), within libxml2's
    long_comment = "<!--" + "c" * 70_000 + "-->"
    return {
        "billion laughs": (
            f'<?xml version="1.0"?><!DOCTYPE r [{laughs}]>{root}&l9;</PositionExtract>'.encode(),
            "FORBIDDEN_XML",
        ),
        "quadratic blow-up": (
            (f'<!DOCTYPE r [<!ENTITY big "{big}">]>{root}' + "&big;" * 50_000
             + "</PositionExtract>").encode(),
            "FORBIDDEN_XML",
        ),
        "external entity to a file": (
            f'<!DOCTYPE r [<!ENTITY x SYSTEM "file://{t.secret}">]>{root}&x;</PositionExtract>'
            .encode(),
            "FORBIDDEN_XML",
        ),
        "external entity to a URL": (
            f'<!DOCTYPE r [<!ENTITY x SYSTEM "{t.url}/entity">]>{root}&x;</PositionExtract>'
            .encode(),
            "FORBIDDEN_XML",
        ),
        "parameter entities": (
            f'<!DOCTYPE r [<!ENTITY % pe SYSTEM "{t.url}/pe.dtd"> %pe;'
            f'<!ENTITY % f SYSTEM "file://{t.secret}">]>{root}&leak;</PositionExtract>'.encode(),
            "FORBIDDEN_XML",
        ),
        "external DTD": (
            f'<!DOCTYPE PositionExtract SYSTEM "{t.url}/x.dtd">{root}</PositionExtract>'.encode(),
            "FORBIDDEN_XML",
        ),
        "DOCTYPE after a long comment": (
            f'<?xml version="1.0"?>{long_comment}<!DOCTYPE r [<!ENTITY x SYSTEM '
            f'"file://{t.secret}">]>{root}&x;</PositionExtract>'.encode(),
            "FORBIDDEN_XML",
        ),
        "UTF-16 DOCTYPE": (
            f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x SYSTEM '
            f'"file://{t.secret}">]>{root}&x;</PositionExtract>'.encode("utf-16"),
            "FORBIDDEN_XML",
        ),
        "XInclude": (
            f'{root[:-1]} xmlns:xi="http://www.w3.org/2001/XInclude">'
            f'<xi:include href="file://{t.secret}" parse="text"/></PositionExtract>'.encode(),
            "FORBIDDEN_XML",
        ),
        "10,000-deep nesting": (f"{root}{deep}</PositionExtract>".encode(), "FORBIDDEN_XML"),
        "100-deep nesting": (f"{root}{nested}</PositionExtract>".encode(), "FORBIDDEN_XML"),
        "not well-formed": (f"{root}<Position></PositionExtract>".encode(), "NOT_WELL_FORMED"),
        "invalid UTF-8": (f"{root}".encode() + b"<Position>\xc3\x28</Position></PositionExtract>",
                          "NOT_WELL_FORMED"),
        "empty file": (b"", "NOT_WELL_FORMED"),
    }


CASES = list(hostile_documents(Traps(Path("/x"), "http://x", [], [])))


@pytest.mark.parametrize("case", CASES)
def test_hostile_file_is_quarantined_fast_with_a_clear_code(
    gateway: Gateway, traps: Traps, case: str
) -> None:
    """Each hostile file is quarantined with its code in under a second; nothing is expanded,
    no file is opened and no URL is fetched."""
    data, code = hostile_documents(traps)[case]
    started = time.monotonic()
    status = gateway.process("esr", "evil.xml", data, AS_OF)
    elapsed = time.monotonic() - started
    assert status == "rejected"
    assert elapsed < 1.0, f"{case} took {elapsed:.2f}s"
    ack = assert_valid(gateway.settings.paths.acks / "evil.ack.xml")
    errors = ack.findall(f"{ACK}Error")
    assert errors
    assert errors[0].get("code") == code, etree.tostring(ack)
    assert (gateway.settings.paths.quarantine / "evil.xml").exists()
    time.sleep(0.05)  # let inotify report any open
    assert traps.opened == [], "the secret file was opened"
    assert traps.requests == [], "a URL was fetched"
    for path in gateway.settings.paths.outbox.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace")
            assert "hahaha" not in path.read_text(errors="replace")


def test_gzip_bomb_is_refused_at_the_size_bound(tmp_path: Path) -> None:
    """A small gzip file that decompresses past max_file_mb is refused without reading it all."""
    settings = config.load(write_config(tmp_path, "max_file_mb = 1\n"))
    root = f'<PositionExtract xmlns="{NS}" vpd="RGT" extractDate="2026-11-02" type="full">'
    bomb = gzip.compress(root.encode() + b" " * (200 * 1024 * 1024) + b"</PositionExtract>")
    assert len(bomb) < 1024 * 1024
    path = tmp_path / "inbox" / "esr" / "bomb.xml.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(bomb)
    with SqliteStore(tmp_path / "var" / "gateway.db") as store:
        pipeline = Pipeline(settings, store, FLOWS)
        started = time.monotonic()
        assert pipeline.process(pipeline.claim(path, "esr"), AS_OF) == "rejected"
        assert time.monotonic() - started < 1.0
    ack = assert_valid(settings.paths.acks / "bomb.ack.xml")
    error = ack.find(f"{ACK}Error")
    assert error is not None
    assert error.get("code") == "FORBIDDEN_XML"
    assert "larger than" in (error.text or "")
