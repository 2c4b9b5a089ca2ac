"""The one way a path is made from document data: plain codes under a root, checked to stay there.

Every output of the gateway whose place depends on a partner's values (``outbox/esr/<VPD>/``,
``outbox/tis/<DEANERY>/``, ``outbox/reports/<VPD>/``) is built by :func:`output_path`. It accepts
only plain routing codes (:mod:`gateway.codes`) for the folders and a plain file name of the
gateway's own making, and checks that the result, resolved, is inside the root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from gateway.codes import INVALID_ROUTING_CODE, is_code, shown
from gateway.errors import FileError, RejectedFile

_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.+-]{0,254}", re.ASCII)


class UnsafePath(RejectedFile):
    """A path was asked for with a value that is not a plain code: hostile data that got past the
    XSD and the rules (or a bug). The file is rejected whole, nothing is written."""

    def __init__(self, message: str) -> None:
        super().__init__([FileError(INVALID_ROUTING_CODE, message)])


def output_path(root: Path, folder: str, *codes: str, name: str) -> Path:
    """``root/folder/<code>/…/name``, for codes that are plain and a name with no separator.

    ``folder`` is one of the gateway's own folder names (``esr``, ``tis``, ``reports``, ``acks``).
    Raises :class:`UnsafePath` for anything else, and when the result would leave ``root``.
    """
    for code in codes:
        if not is_code(code):
            raise UnsafePath(f"not a plain routing code: {shown(code)!r}")
    if not _NAME.fullmatch(folder) or not _NAME.fullmatch(name) or ".." in name:
        raise UnsafePath(f"not a plain file name: {shown(folder)}/{shown(name)}")
    path = root.joinpath(folder, *codes, name)
    base = os.path.realpath(root)
    if os.path.commonpath([base, os.path.realpath(path)]) != base:
        raise UnsafePath(f"{shown(str(path))} would leave {root}")
    return path
