"""The gateway's exception tree, documented in one place.

    GatewayError                 base of everything the gateway raises on purpose
    ├── ConfigError              bad configuration: names the key; the gateway does not start
    ├── RejectedFile             permanent: the content is wrong; quarantine, acknowledge
    ├── OutputLost               a committed output's temporary file vanished before its rename
    ├── StoreError               the store refused a statement (a constraint): a bug of ours
    │   ├── StoreMismatch        the store is empty or foreign while var/ shows history
    │   └── AlreadyRunning       another daemon holds this var/ (one per var/ on SQLite)
    └── TransientError           retry later; the file stays claimed (counted against it)
        ├── Unavailable          the machine, not the file: intake pauses, nothing is counted
        │   ├── StoreUnavailable     the state store cannot be reached or written
        │   └── StorageUnavailable   a folder is full, read-only or not ours to write
        ├── Unreadable           an inbound file or folder cannot be read: left where it is
        ├── Vanished             an inbound file went away before its claim (another took it)
        ├── ClaimLost            another process owns the file now: let go of it
        ├── SftpUnavailable      a partner cannot be reached (transport/sftp.py)
        │   └── SftpRefused      ... and will not be until fixed: host key, authentication
        ├── RemoteFileError      one remote file could not be listed, read or moved
        └── Cancelled            an SFTP operation was abandoned at its deadline or on stop

Foreign errors (lxml, sqlite3, OSError, paramiko) are converted where they are caught, with
``raise ... from exc``. Retry decisions look at these classes only.
"""

from __future__ import annotations

from dataclasses import dataclass


class GatewayError(Exception):
    """Base class of the gateway's own errors."""


class ConfigError(GatewayError):
    """The configuration is invalid; the message names the key."""


class StoreMismatch(ConfigError):
    """The store is empty or belongs to another gateway while ``var/`` shows this one's history."""


@dataclass(frozen=True, slots=True)
class FileError:
    """One reason a whole file was rejected, as the acknowledgement reports it."""

    code: str
    message: str
    line: int | None = None
    column: int | None = None


class RejectedFile(GatewayError):
    """The file's content is wrong: it is quarantined and the acknowledgement lists why."""

    def __init__(self, errors: list[FileError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.code}: {e.message}" for e in errors[:3]))

    @property
    def code(self) -> str:
        """The first error's code, the one that names the file's fate in logs."""
        return self.errors[0].code

    @classmethod
    def one(
        cls, code: str, message: str, line: int | None = None, column: int | None = None
    ) -> RejectedFile:
        """A rejection with a single error."""
        return cls([FileError(code, message, line, column)])


class AlreadyRunning(ConfigError):
    """Another ``dit-gateway run`` holds this ``var/``."""


class OutputLost(GatewayError):
    """An output committed with its file is gone before it was renamed into place.

    Only something outside the gateway removes the temporary files of a committed file; it is
    reported loudly and the output stays listed (``status``), never skipped in silence.
    """


class StoreError(GatewayError):
    """The store refused a statement for a reason of ours (a constraint, a misuse): a bug."""


class TransientError(GatewayError):
    """A failure that has nothing to do with the file's content: retry with backoff."""


class Unavailable(TransientError):
    """Something of the machine's is out of order (disk, store): pause, retry, count nothing.

    ``reason`` is short and stable ("No space left on device"), so that a pause is logged once
    per change of reason, not once per retry.
    """

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message.rpartition(": ")[2]


class StoreUnavailable(Unavailable):
    """The state store cannot be reached or written."""


class StorageUnavailable(Unavailable):
    """A folder of the gateway's is full, read-only or refuses us."""


class Unreadable(TransientError):
    """An inbound file (or its folder) cannot be read by the gateway's user."""


class Vanished(TransientError):
    """An inbound file went away before it was claimed: another process or node took it."""


class ClaimLost(TransientError):
    """The file is owned by another process now (its lease was taken over): let go of it."""
