"""The command line, run as an operator runs it: ``python -m gateway ...`` in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from tests import builders as b
from tests.conftest import write_config
from tests.xsdcheck import assert_valid

NOTE = "{urn:dit-gateway:notifications:1}Notification"


def gateway(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m gateway`` in ``root``."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True, text=True, check=False, cwd=root, timeout=120,
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A folder with a gateway config."""
    write_config(tmp_path)
    return tmp_path


def test_help_lists_every_command(root: Path) -> None:
    """``--help`` names the commands of spec 8."""
    out = gateway(root, "--help").stdout
    for command in ("run", "process", "tick", "validate", "status", "extract"):
        assert command in out


def test_process_exit_codes(root: Path) -> None:
    """process: 0 when all are processed, 1 when a file is rejected whole, 2 on bad config."""
    good = root / "pos.xml"
    good.write_text(b.positions("RGT", [b.position(1)]))
    bad = root / "bad.xml"
    bad.write_text("<nope")
    config = str(root / "gateway.toml")
    ok = gateway(root, "process", "--config", config, "--as-of", "2026-11-02", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "processed" in ok.stdout
    assert good.exists(), "process must not take the operator's file away"
    rejected = gateway(root, "process", "--config", config, str(bad))
    assert rejected.returncode == 1
    ack = assert_valid(root / "outbox" / "reports" / "acks" / "bad.ack.xml")
    assert ack.get("channel") == "unknown"
    broken = root / "broken.toml"
    broken.write_text("[intake]\nsettle_seconds = 'x'\n")
    usage = gateway(root, "process", "--config", str(broken), str(good))
    assert usage.returncode == 2
    assert "intake.settle_seconds" in usage.stderr
    assert gateway(root, "process", "--config", config, "--as-of", "nonsense", str(good)
                   ).returncode == 2


def test_process_in_inbox_folder_keeps_its_channel(root: Path) -> None:
    """A file given from inbox/tis is judged as a TIS file (WRONG_CHANNEL for positions)."""
    path = root / "inbox" / "tis" / "pos.xml"
    path.parent.mkdir(parents=True)
    path.write_text(b.positions("RGT", [b.position(1)]))
    result = gateway(root, "process", "--config", str(root / "gateway.toml"), str(path))
    assert result.returncode == 1
    ack = assert_valid(root / "outbox" / "reports" / "acks" / "pos.ack.xml")
    assert ack.find("{urn:dit-gateway:ack:1}Error").get("code") == "WRONG_CHANNEL"  # type: ignore[union-attr]


def test_validate_prints_file_line_column(root: Path) -> None:
    """validate prints file:line:column: message per error and exits 1; 0 when valid."""
    good = root / "good.xml"
    good.write_text(b.positions("RGT", [b.position(1)]))
    bad = root / "bad.xml"
    bad.write_text(b.positions("RGT", [b.position(1), b.position(2, ptype="Triple")]))
    ok = gateway(root, "validate", str(good))
    assert ok.returncode == 0
    assert "valid positions document" in ok.stdout
    result = gateway(root, "validate", str(good), str(bad))
    assert result.returncode == 1
    line = next(x for x in result.stdout.splitlines() if x.startswith(str(bad)))
    _file, lineno, column, message = line.split(":", 3)
    assert (int(lineno), int(column) > 0) == (4, True)
    assert "SCHEMA_INVALID" in message
    assert not (root / "var").exists(), "validate must change nothing"


def test_status_reports_the_ledger(root: Path) -> None:
    """status shows files by channel and result and the last extract per VPD."""
    config = str(root / "gateway.toml")
    good = root / "pos.xml"
    good.write_text(b.positions("RGT", [b.position(1)]))
    gateway(root, "process", "--config", config, "--as-of", "2026-11-02", str(good))
    out = gateway(root, "status", "--config", config)
    assert out.returncode == 0
    assert "esr   processed  1" in out.stdout
    assert "positions RGT   EOE      2026-11-02" in out.stdout


def test_tick_writes_the_duplicate_position_report(root: Path) -> None:
    """tick runs the weekly duplicate report now: one DUPLICATE_POSITION row per duplicated DPN."""
    config = str(root / "gateway.toml")
    extract = root / "pos.xml"
    records = [b.position(1), b.position(2), b.position(3, dpn="EOE/X")]
    extract.write_text(b.positions("RGT", records))
    gateway(root, "process", "--config", config, "--as-of", "2026-11-02", str(extract))
    result = gateway(root, "tick", "--config", config, "--as-of", "2026-11-04")
    assert result.returncode == 0, result.stderr
    report = root / "outbox" / "reports" / "RGT" / "duplicate-positions-2026-11-04.xml"
    rows = assert_valid(report).findall(NOTE)
    assert [(r.get("type"), r.get("deaneryPostNumber")) for r in rows] == [
        ("DUPLICATE_POSITION", "EOE/RGT00/001/FY1/001")
    ]
    csv = report.with_suffix(".csv").read_text()
    assert csv.splitlines()[0].startswith("type,placementId,deaneryPostNumber")
    assert etree.parse(str(report)).getroot().get("sourceFile") is None
