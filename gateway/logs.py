"""Logs are data: structlog events, one JSON object per line on standard error (spec 7).

No personal data may reach a log. :func:`keep_personal_data_out` is a processor that lets through
only keys on an allowlist (ids, counts, codes, file facts) and scrubs free text, so that a careless
``log.info(..., surname=...)`` is dropped rather than written.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

ALLOWED_KEYS = frozenset(
    {
        "event", "level", "timestamp", "logger",
        "file", "sha256", "channel", "partner", "attempt", "duration_ms", "kind", "status",
        "code", "error", "reason", "vpd", "deanery", "path", "count", "records", "outputs",
        "received", "loaded", "updated", "withdrawn", "deferred", "unchanged", "rejected",
        "placement_id", "esr_person_id", "esr_position_id", "trac_applicant_id", "record_id",
        "job", "as_of", "week", "files", "retry_in", "limit", "pid", "inbox", "outbox", "var",
        "store", "version", "signal", "state", "remote", "bytes", "host", "port", "last_success",
        "observer", "held", "released", "duplicate_of", "ack", "errors", "config", "dropped_keys",
        "exception", "attempts", "lease_seconds", "owner", "seconds", "mode",
        "expected", "every_hours", "since", "freed", "kept", "vpds", "resend", "requeued_from",
        "asked", "used",
    }
)

# Edges: not a letter or digit (so "_" and "-" in a file name separate, as spaces do in text).
_L, _R = r"(?<![A-Za-z0-9])", r"(?![A-Za-z0-9])"
_SEP = r"[\s_.-]?"
_SCRUB = (
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),                                       # e-mail
    re.compile(_L + r"[A-Z]{2}" + rf"(?:{_SEP}\d\d){{3}}{_SEP}[A-D]?" + _R, re.I),  # NINO
    re.compile(r"(?<!\d)(?:19|20)\d\d[-_./]?[01]\d[-_./]?[0-3]\d(?!\d)"),       # 1998-06-14
    re.compile(r"(?<!\d)[0-3]\d[-_./]?[01]\d[-_./]?(?:19|20)\d\d(?!\d)"),       # 14-06-1998
    re.compile(r"\+?\d[\d ]{9,}\d"),                                              # phone
    re.compile(r"(?<![A-Za-z0-9/])\d{7}(?![A-Za-z0-9/])"),                        # GMC number
)
# Keys whose values are names a partner chose (a file, its remote path): scrubbed like free text.
_NAMED = ("file", "remote", "path", "ack", "duplicate_of")


def scrub(text: str) -> str:
    """Text with anything shaped like personal data replaced by ``[redacted]``: e-mail
    addresses, NINOs, dates (of birth: any date, in the usual orders), phone and GMC numbers.
    Separators in file names (``_``, ``-``, ``.``) count as word edges, so a file called
    ``Smith_QQ123456C_19980614.xml`` is logged as ``Smith_[redacted]_[redacted].xml``."""
    for pattern in _SCRUB:
        text = pattern.sub("[redacted]", text)
    return text


def keep_personal_data_out(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: only allowlisted keys survive; free-text values and the names of
    partners' files are scrubbed."""
    dropped = [key for key in event if key not in ALLOWED_KEYS]
    for key in dropped:
        del event[key]
    if dropped:
        event["dropped_keys"] = len(dropped)
    for key in ("error", "reason", "event", "exception", *_NAMED):
        value = event.get(key)
        if isinstance(value, str):
            event[key] = scrub(value)
    return event


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def configure(fmt: str = "json", level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog once for the process."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # The traceback as text under "exception", before the allowlist (which keeps and
            # scrubs it): a bug in production must leave its story, not only its class name.
            structlog.processors.format_exc_info,
            keep_personal_data_out,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get(name: str = "gateway") -> Any:
    """A bound logger."""
    return structlog.get_logger(name)
