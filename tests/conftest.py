"""Shared fixtures: a gateway laid out in a temporary folder, with real files and real SQLite."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
import structlog

from gateway import config, logs
from gateway.cli import FLOWS
from gateway.pipeline import Pipeline
from gateway.store import SqlStore, open_store
from tests.daemon import DaemonProcess
from tests.fixtures.postgres import PostgresServer

REPO = Path(__file__).resolve().parent.parent
# Subprocesses (the daemon, the CLI) must run the checkout under test, whatever is installed.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
)


@dataclass
class Gateway:
    """A gateway in a temp folder: settings, store, pipeline, and helpers to drive it."""

    root: Path
    settings: config.Settings
    store: SqlStore
    pipeline: Pipeline

    def drop(self, channel: str, name: str, text: str | bytes) -> Path:
        """Put a file into ``inbox/<channel>/`` as a partner would (complete, in one go)."""
        path = self.settings.paths.inbox / channel / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return path

    def process(self, channel: str, name: str, text: str | bytes, as_of: date) -> str:
        """Drop a file, claim it and take it through the pipeline; returns its status."""
        receipt = self.pipeline.claim(self.drop(channel, name, text), channel)
        return self.pipeline.process(receipt, as_of)

    def outbox(self, pattern: str = "**/*") -> list[Path]:
        """Files published in the outbox (never temporary ones)."""
        return sorted(
            p for p in self.settings.paths.outbox.glob(pattern)
            if p.is_file() and not p.name.startswith(".")
        )


def write_config(
    root: Path, extra: str = "", store_url: str = "", store_keys: str = ""
) -> Path:
    """A config file for a gateway living in ``root`` (SQLite in var/ unless ``store_url``;
    ``store_keys``: more lines of ``[store]``)."""
    path = root / "gateway.toml"
    path.write_text(
        '[paths]\ninbox = "inbox"\noutbox = "outbox"\nvar = "var"\n'
        f'[store]\nurl = "{store_url or "sqlite:///var/gateway.db"}"\n{store_keys}'
        # Any free port: several daemons run at once in the tests. ``extra`` may go on [intake].
        + ("" if "[http]" in extra else '[http]\nlisten = "127.0.0.1:0"\n')
        + "[intake]\nsettle_seconds = 0.5\nrescan_seconds = 1\nretry_seconds = 0.2\n" + extra,
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (initdb + pg_ctl in a temporary folder)."""
    server = PostgresServer.start(Path(tempfile.mkdtemp(prefix="dit-gateway-pg-")))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each store backend in turn: "" (SQLite in var/) or a new PostgreSQL database's URL."""
    if request.param == "sqlite":
        return ""
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture
def gateway(tmp_path: Path, store_url: str) -> Iterator[Gateway]:
    """A gateway in ``tmp_path`` with an open store, on SQLite and on PostgreSQL."""
    settings = config.load(write_config(tmp_path, store_url=store_url))
    store = open_store(settings)
    try:
        yield Gateway(tmp_path, settings, store, Pipeline(settings, store, FLOWS))
    finally:
        store.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    """The real daemon over a gateway in ``tmp_path`` (started by the test, killed at the end)."""
    proc = DaemonProcess(tmp_path, write_config(tmp_path))
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Each test starts with the gateway's logging configured and leaves none behind."""
    logs.configure("json", "debug")
    yield
    structlog.reset_defaults()
