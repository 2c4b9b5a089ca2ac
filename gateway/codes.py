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


def deanery_refusal(managing_deanery_body: str | None, dpn: str | None) -> str | None:
    """What is wrong with a record's deanery codes, or None when each it has is plain.

    Both are checked, not only the one that routes (P3: ``ManagingDeaneryBody``, else the DPN's
    first segment): a DPN is matched across documents, so one that could steer a path is never
    kept.
    """
    if managing_deanery_body is not None and not is_code(managing_deanery_body):
        return f"ManagingDeaneryBody {shown(managing_deanery_body)!r}"
    if dpn is not None and not is_code(dpn.split("/", 1)[0]):
        return f"the DPN's first segment {shown(dpn.split('/', 1)[0])!r}"
    return None
