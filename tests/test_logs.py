"""The log processor keeps personal data out."""

from __future__ import annotations

import io
import json

from gateway import logs


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
