"""Who may read what the gateway writes: owner and group only, whatever the process umask.

Every file and folder the gateway creates can hold personal data (an applicant load holds names,
dates of birth, NINOs and addresses; an inbound file, the archive and the store hold the same). So:

- under ``var/`` (the store and its WAL and journal, ``processing/``, ``archive/``,
  ``quarantine/``): files 0600, folders 0700 — the gateway's user only;
- everywhere else (``outbox/``, and what the gateway writes into ``inbox/``): files 0640,
  folders 0750 — the gateway's user, and its group read-only. ``[paths] group`` names that
  group (e.g. the account a partner's SFTP job runs as); files and folders in the outbox are
  given to it.

Modes are set with ``fchmod``/``chmod`` after creating, so the umask can only take bits away
before, never add them. Folders that exist already are left as their owner made them, except
``var/`` and its own folders, which are made private at start (:func:`make_private`).
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
SHARED_FILE = 0o640
SHARED_DIR = 0o750


@dataclass
class Policy:
    """Where files are private (``var/``), and the group the others are given to."""

    private: tuple[str, ...] = ()  # absolute paths, as text
    gid: int | None = None


_policy = Policy()  # this process's, set by :func:`configure` when settings are known


def configure(var: Path, gid: int | None = None) -> None:
    """Set the policy for this process: ``var`` private, others shared with ``gid``."""
    _policy.private = (os.path.abspath(var),)
    _policy.gid = gid


def _is_private(path: Path | str) -> bool:
    # On the text of the absolute path, as Path.is_relative_to compares parts: every output
    # asks (twice), and pathlib took ~20 µs a time.
    absolute = os.path.abspath(path)
    return any(absolute == root or absolute.startswith(_inside(root))
               for root in _policy.private)


def _inside(root: str) -> str:
    return root if root.endswith(os.sep) else root + os.sep


def file_mode(path: Path) -> int:
    """The mode a new file at ``path`` gets."""
    return PRIVATE_FILE if _is_private(path) else SHARED_FILE


def restrict_fd(fd: int, path: Path) -> None:
    """Give the open file at ``path`` its mode (and group, outside ``var/``)."""
    os.fchmod(fd, file_mode(path))
    if _policy.gid is not None and not _is_private(path):
        os.fchown(fd, -1, _policy.gid)


def restrict(path: Path) -> None:
    """Give an existing file its mode, if the gateway's user owns it. A file a partner's
    account owns keeps its mode (made 0600, it could become unreadable to the gateway itself);
    the 0700 folders of ``var/`` keep others out of it."""
    with contextlib.suppress(OSError):
        st = path.lstat()
        if st.st_uid == os.geteuid() and stat.S_ISREG(st.st_mode):
            os.chmod(path, file_mode(path))


def make_dirs(folder: Path, *, group_writable: bool = False) -> None:
    """``mkdir -p`` with each created folder 0700 under ``var/``, else 0750 (0770 for an inbox
    folder a partner's account drops files into: ``group_writable``). Each folder created, and
    the folder it was created in, are fsynced before this returns: a file renamed into a new
    folder and synced there is durable only once the folder's own name is (after a power cut,
    an unsynced ``outbox/tis/<DEANERY>/`` or archive day could vanish with what was published
    into it)."""
    if os.path.isdir(folder):  # nearly always: one stat, no Path made
        return
    folder = Path(folder)
    missing = []
    probe = folder
    while not probe.is_dir():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    created = []
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            if not path.is_dir():
                raise
            continue
        created.append(path)
        private = _is_private(path)
        os.chmod(path, PRIVATE_DIR if private else (0o770 if group_writable else SHARED_DIR))
        if _policy.gid is not None and not private:
            os.chown(path, -1, _policy.gid)
    if created:
        from gateway.transport.files import fsync_dir  # noqa: PLC0415 - files imports this module

        for path in reversed(created):  # its mode and owner, and the names made in it
            fsync_dir(path)
        # the names made in folders that were there (one, unless another process made some of
        # the way): folders we may write into and traverse without being allowed to open them,
        # such as a 0730 parent of another owner, are let be
        for parent in {p.parent for p in created} - set(created):
            with contextlib.suppress(PermissionError):
                fsync_dir(parent)


def make_private(folder: Path) -> None:
    """Create ``folder`` private, or make it private if it exists and the gateway owns it."""
    make_dirs(folder)
    with contextlib.suppress(OSError):  # not ours, or a read-only mount: left as it is
        st = folder.stat()
        if st.st_uid == os.geteuid() and st.st_mode & 0o077:
            os.chmod(folder, PRIVATE_DIR)
