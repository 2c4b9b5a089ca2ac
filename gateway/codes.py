"""Routing codes: the values of a partner's that become a folder or file name.

A VPD, a deanery (``ManagingDeaneryBody`` or a DPN's first segment), a local office or a trust
routes a record to a folder of ``outbox/``. Only a *plain code* may do that: an upper-case letter or
digit, then up to 15 upper-case letters, digits, ``_`` or ``-`` (ASCII only). Nothing in it can
climb out of a folder (``..``, ``/``), hide a file (a leading ``.``), or carry a control character.
The XSDs hold every routing code to the same pattern (``RoutingCode``); the rules check again, so
state stored before the XSDs did (or a document that bypassed them) is refused just the same.
"""

from __future__ import annotations

import re

PATTERN = r"[A-Z0-9][A-Z0-9_-]{0,15}"
_CODE = re.compile(PATTERN, re.ASCII)

INVALID_ROUTING_CODE = "INVALID_ROUTING_CODE"


def is_code(value: str | None) -> bool:
    """Whether ``value`` is a plain routing code (``^[A-Z0-9][A-Z0-9_-]{0,15}$``)."""
    return value is not None and _CODE.fullmatch(value) is not None


def shown(value: str) -> str:
    """A refused code as an acknowledgement may show it: escaped, and bounded."""
    text = value.encode("unicode_escape").decode("ascii")
    return text if len(text) <= 40 else text[:37] + "..."
