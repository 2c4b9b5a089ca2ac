"""The gateway's exception tree, documented in one place.

    GatewayError                 base of everything the gateway raises on purpose
    ├── ConfigError              bad configuration: names the key; the gateway does not start
    ├── RejectedFile             permanent: the content is wrong; quarantine, acknowledge
    └── TransientError           retry later: disk, store, network; the file stays claimed
        ├── StoreUnavailable     the state store cannot be reached or written
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


class TransientError(GatewayError):
    """A failure that has nothing to do with the file's content: retry with backoff."""


class StoreUnavailable(TransientError):
    """The state store cannot be reached or written."""
