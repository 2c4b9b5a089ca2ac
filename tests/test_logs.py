"""The log processor keeps personal data out."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from gateway import logs
from tests import builders as b
from tests.conftest import write_config


def test_unknown_keys_are_dropped() -> None:
    """A key not on the allowlist (say, a surname) never reaches the log."""
    event = {"event": "x", "surname": "Smith", "file": "a.xml", "dob": "1990-01-01"}
    out = logs.keep_personal_data_out(None, "info", event)
    assert "surname" not in out
    assert "dob" not in out
    assert out["file"] == "a.xml"
    assert out["dropped_keys"] == 2


def test_free_text_is_scrubbed() -> None:
    """Error text with an e-mail, NINO, date, phone or GMC number is redacted."""
    text = "a.b@nhs.net QQ123456C 1990-02-03 07700 900123 7123456"
    out = logs.keep_personal_data_out(None, "error", {"event": "x", "error": text})
    for secret in ("a.b@nhs.net", "QQ123456C", "1990-02-03", "07700 900123", "7123456"):
        assert secret not in out["error"]


def test_configured_logger_writes_json_lines_without_personal_data() -> None:
    """The configured pipeline renders one JSON object per line, already scrubbed."""
    stream = io.StringIO()
    logs.configure("json", "info", stream)
    logs.get().info("file.processed", file="a.xml", forenames="Jo", count=3)
    line = json.loads(stream.getvalue().strip())
    assert line["event"] == "file.processed"
    assert line["count"] == 3
    assert line["level"] == "info"
    assert "timestamp" in line
    assert "forenames" not in line
    assert "Jo" not in stream.getvalue()


def test_log_exception_keeps_the_traceback() -> None:
    """``log.exception`` writes the traceback (scrubbed), not only the exception's class: a
    production bug leaves its story."""
    stream = io.StringIO()
    logs.configure("json", "info", stream)

    def reader_that_breaks() -> None:
        raise KeyError("DateOfBirth 1990-02-03")

    try:
        reader_that_breaks()
    except KeyError:
        logs.get().exception("file.failed", error="KeyError")
    line = json.loads(stream.getvalue().strip())
    assert "Traceback (most recent call last)" in line["exception"]
    assert "reader_that_breaks" in line["exception"]
    assert "1990-02-03" not in stream.getvalue()


def test_a_file_named_after_a_person_leaves_neither_nino_nor_birth_date_in_the_log(
    tmp_path: Path,
) -> None:
    """A partner's files named after a trainee's NINO and date of birth, through the real
    ``process`` command (one valid, one broken): the log names them with both redacted, and the
    acknowledgements are still written under the names given."""
    write_config(tmp_path)
    names = ["Smith-QQ123456C-1998-06-14.xml", "Smith_QQ123456C_19980614.xml"]
    (tmp_path / names[0]).write_text(b.positions("RGT", [b.position(1)]))
    (tmp_path / names[1]).write_text("<PositionExtract>not xml")
    logged = ""
    for name in names:
        result = subprocess.run(
            [sys.executable, "-m", "gateway", "process", "--config",
             str(tmp_path / "gateway.toml"), "--as-of", "2026-11-02", str(tmp_path / name)],
            capture_output=True, text=True, check=False, cwd=tmp_path, timeout=120,
        )
        assert result.returncode in (0, 1), result.stderr
        logged += result.stderr
    events = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    files = {e["file"] for e in events if "file" in e}
    assert files == {"Smith-[redacted]-[redacted].xml", "Smith_[redacted]_[redacted].xml"}
    for secret in ("QQ123456C", "1998-06-14", "19980614"):
        assert secret not in logged
    acks = tmp_path / "outbox" / "reports" / "acks"
    assert sorted(p.name for p in acks.iterdir()) == sorted(
        n.replace(".xml", ".ack.xml") for n in names)


def test_file_names_are_scrubbed_in_every_key_that_carries_one() -> None:
    """``file``, ``remote``, ``path``, ``ack`` and ``duplicate_of``: NINO, dates in the usual
    orders and GMC numbers are redacted; plain names stay as they are."""
    for key in ("file", "remote", "path", "ack", "duplicate_of"):
        event = logs.keep_personal_data_out(None, "info", {
            "event": "x", key: "in/Jones.QQ 12 34 56 C.14-06-1998.7123456.xml"})
        assert event[key] == "in/Jones.[redacted].[redacted].[redacted].xml", key
    kept = logs.keep_personal_data_out(None, "info", {"event": "x", "file": "pos0001.xml"})
    assert kept["file"] == "pos0001.xml"
