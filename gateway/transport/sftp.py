"""One connection to one SFTP partner — the only module that talks paramiko.

:class:`SftpEndpoint` offers what the exchange needs: list, stat, fetch, put, publish (rename an
upload into place), move aside, remove, make folders, close. It is a context manager.

Security: the host key must be in the partner's ``known_hosts`` (unknown or changed: refused,
never added); key authentication only (no agent, no password), the key's passphrase only from
the environment variable named by ``passphrase_env``.

Deadlines: every paramiko call runs on the endpoint's own worker thread. A call that makes no
progress for ``timeout_seconds`` is abandoned: the connection is closed (which unblocks the call)
and :class:`SftpUnavailable` is raised. Paramiko's own timeouts are set too, but are not always
honoured (paramiko #515, #1380, #2479).

Downloads are pipelined: at most :data:`MAX_REQUESTS` read requests of :data:`REQUEST_BYTES` in
flight (bounded prefetch: memory does not grow with the file; unbounded prefetch can hang servers,
paramiko #1788), answers written in order, hashed on a second thread. A server that answers with
less than was asked is asked for the rest, and for less from then on. This uses the request
primitives ``SFTPClient._async_request``/``_read_response`` that paramiko's own prefetch is built
on, because its prefetch keeps a whole file in memory when a server shortens its reads.

Errors are converted here (``raise … from exc``)::

    TransientError
    ├── SftpUnavailable     the connection failed, dropped, or overran its deadline: reconnect
    │   └── SftpRefused     host key unknown or changed, key unreadable, authentication refused
    ├── RemoteFileError     the server refused one operation on one file; the connection is fine
    └── Cancelled           the exchange is stopping
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import queue
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, Generic, NoReturn, TypeVar, cast

import paramiko
from paramiko.sftp import (
    CMD_CLOSE,
    CMD_DATA,
    CMD_HANDLE,
    CMD_NAME,
    CMD_OPENDIR,
    CMD_READ,
    CMD_READDIR,
    CMD_STATUS,
    int64,
)

from gateway import logs
from gateway.config import SftpPartner
from gateway.errors import GatewayError, TransientError

log = logs.get("gateway.sftp")
T = TypeVar("T")

REQUEST_BYTES = 255 * 1024  # one read request: OpenSSH's largest; a server may answer less
MAX_REQUESTS = 16  # read requests in flight: at most ~4 MiB buffered per download
WINDOW_BYTES = 8 * 1024 * 1024  # SSH channel window
PACKET_BYTES = 128 * 1024  # largest SSH packet we accept (fewer packets: less Python per byte)
HASH_THREAD_BYTES = 4 * 1024 * 1024  # files from this size are hashed on a second thread
KEEPALIVE_SECONDS = 15
PARAMIKO_TIMEOUT_FACTOR = 2  # paramiko's own timeouts: a backstop behind our deadline
# AEAD ciphers first: paramiko computes the MAC of the others in Python, at a third of the speed.
FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
MAX_UNIQUE = 1000


class SftpUnavailable(TransientError):
    """The connection failed, dropped or overran its deadline; reconnect with backoff."""


class SftpRefused(SftpUnavailable):
    """The partner was refused: host key unknown or changed, key unreadable, login refused."""


class RemoteFileError(TransientError):
    """The server refused one operation on one file (the connection is fine)."""


class Cancelled(TransientError):
    """The exchange is stopping; the operation was given up."""


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """A remote directory entry."""

    name: str
    size: int
    mtime: int
    regular: bool


@dataclass(frozen=True, slots=True)
class Transfer:
    """What a download or an upload moved."""

    bytes: int
    sha256: str


# --- the worker thread and the deadline -----------------------------------------------------------


class _Job(Generic[T]):
    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class _Worker:
    """One daemon thread that runs an endpoint's paramiko calls, one at a time."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job.result = job.fn()
            except Exception as exc:  # handed to the caller, converted there
                job.error = exc
            finally:
                job.done.set()

    def submit(self, fn: Callable[[], T]) -> _Job[T]:
        job = _Job(fn)
        self._jobs.put(job)
        return job

    def close(self) -> None:
        self._jobs.put(None)


class _RefuseUnknownHost(paramiko.RejectPolicy):
    """RejectPolicy with a message an operator can act on."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> NoReturn:
        raise SftpRefused(
            f"host key of {hostname} ({key.get_name()} {key.fingerprint}) is not in known_hosts:"
            " refused (add it to known_hosts after checking it with the partner)"
        )


def _transport(sock: Any, /, **kwargs: Any) -> paramiko.Transport:
    transport = paramiko.Transport(
        sock, default_window_size=WINDOW_BYTES, default_max_packet_size=PACKET_BYTES, **kwargs
    )
    options = transport.get_security_options()
    offered = list(options.ciphers)
    options.ciphers = [c for c in FAST_CIPHERS if c in offered] + [
        c for c in offered if c not in FAST_CIPHERS
    ]
    return transport


# --- the endpoint ---------------------------------------------------------------------------------


class SftpEndpoint:
    """One connection to one partner; every operation under a deadline."""

    def __init__(self, partner: SftpPartner, cancel: threading.Event | None = None) -> None:
        self.partner = partner
        self._timeout = partner.timeout_seconds
        self._cancel = cancel or threading.Event()
        self._worker = _Worker(f"sftp-{partner.name}")
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._progress = 0.0
        self._broken = False
        self._posix_rename: bool | None = None  # None: not tried on this server yet
        self._folders: set[str] = set()
        self._request_bytes = REQUEST_BYTES

    def __enter__(self) -> SftpEndpoint:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- lifecycle -----------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect, check the host key, log in with the key, open the SFTP session."""
        self._call("connect", self._connect)

    def close(self) -> None:
        """Close the connection; never fails, never waits longer than the deadline."""
        if self._client is not None and not self._broken:
            with contextlib.suppress(GatewayError):
                self._call("close", self._close)
        self.abort()
        self._worker.close()

    def abort(self) -> None:
        """Drop the connection at once, from any thread (a blocked call then fails)."""
        self._broken = True
        client, self._client, self._sftp = self._client, None, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    # --- operations ----------------------------------------------------------------------------

    def listdir(self, folder: str) -> list[RemoteFile]:
        """The entries of a remote folder, with size and mtime as the server reports them."""
        return self._call(f"list {folder}", lambda: self._listdir(folder))

    def stat(self, path: str) -> RemoteFile | None:
        """A remote entry (not following links), or None if there is none."""
        return self._call(f"stat {_base(path)}", lambda: self._stat(path))

    def fetch(self, path: str, out: BinaryIO) -> Transfer:
        """Download a remote file into ``out`` (the caller flushes and fsyncs it)."""
        return self._call(f"download {_base(path)}", lambda: self._download(path, out))

    def put(self, local: Path, path: str) -> Transfer:
        """Upload a local file to ``path``, confirming its size on the server."""
        return self._call(f"upload {_base(path)}", lambda: self._upload(local, path))

    def publish(self, temp: str, final: str) -> str:
        """Rename an upload into place: posix-rename where the server has it (replacing
        ``final`` atomically); else a plain rename, to a unique name if ``final`` is taken —
        never a delete-then-rename. Returns the name it got."""
        return self._call(f"rename {_base(final)}", lambda: self._publish(temp, final))

    def move_aside(self, path: str, target: str) -> str | None:
        """Move a remote file to ``target`` (its folder made if need be), to a unique name if
        ``target`` is taken; never replaces a file. None if ``path`` was already gone."""
        return self._call(f"move {_base(path)}", lambda: self._move_aside(path, target))

    def remove(self, path: str) -> None:
        """Delete a remote file; a file already gone is fine."""
        self._call(f"remove {_base(path)}", lambda: self._remove(path))

    def makedirs(self, folder: str) -> None:
        """Make a remote folder and its parents as needed."""
        self._call(f"mkdir {folder}", lambda: self._makedirs(folder))

    # --- the deadline --------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        if self._broken:
            raise SftpUnavailable(f"{what}: the connection was closed")
        if self._cancel.is_set():
            raise Cancelled(f"{what}: stopping")
        self._touch()
        job = self._worker.submit(fn)
        while not job.done.wait(max(0.0, self._progress + self._timeout - time.monotonic())):
            if time.monotonic() - self._progress >= self._timeout:
                self.abort()
                raise SftpUnavailable(
                    f"{what}: no progress for {self._timeout:g} s, connection abandoned"
                )
        if job.error is not None:
            raise self._convert(what, job.error) from job.error
        return cast(T, job.result)

    def _touch(self) -> None:
        self._progress = time.monotonic()

    def _alive(self) -> bool:
        client = self._client
        transport = client.get_transport() if client is not None else None
        return transport is not None and transport.is_active()

    def _convert(self, what: str, exc: BaseException) -> GatewayError:
        where = f"{self.partner.host}:{self.partner.port}"
        converted: GatewayError
        if isinstance(exc, GatewayError):
            converted = exc
        elif isinstance(exc, paramiko.BadHostKeyException):
            converted = SftpRefused(
                f"host key of {where} has changed: got {exc.key.get_name()}"
                f" {exc.key.fingerprint}, known_hosts has {exc.expected_key.fingerprint}: refused"
            )
        elif isinstance(exc, paramiko.AuthenticationException):
            converted = SftpRefused(
                f"{what}: {where} refused the login of {self.partner.user!r}: {exc}"
            )
        elif isinstance(exc, UnicodeDecodeError):
            converted = RemoteFileError(f"{what}: a remote name is not UTF-8; rename or remove it")
        elif (
            isinstance(exc, OSError)
            and not isinstance(exc, paramiko.SSHException | TimeoutError)
            and self._alive() and not self._broken
        ):  # the server answered with an error status: this file, not the connection
            converted = RemoteFileError(f"{what}: {exc.strerror or exc}")
        else:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            converted = SftpUnavailable(f"{what}: {where}: {type(exc).__name__}: {reason}")
        return converted

    def _session(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            raise SftpUnavailable("not connected")
        return self._sftp

    # --- on the worker thread ------------------------------------------------------------------

    def _connect(self) -> None:
        partner = self.partner
        key = self._key()
        client = paramiko.SSHClient()
        try:
            client.get_host_keys().load(str(partner.known_hosts))
        except (OSError, paramiko.SSHException) as exc:
            raise SftpRefused(f"known_hosts {partner.known_hosts}: {exc}") from exc
        client.set_missing_host_key_policy(_RefuseUnknownHost())
        self._client = client
        t = self._timeout * PARAMIKO_TIMEOUT_FACTOR  # a backstop: our deadline comes first
        client.connect(
            partner.host, partner.port, username=partner.user, pkey=key,
            timeout=t, banner_timeout=t, auth_timeout=t, channel_timeout=t,
            allow_agent=False, look_for_keys=False, transport_factory=_transport,
        )  # fmt: skip
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(KEEPALIVE_SECONDS)
        sftp = client.open_sftp()
        channel = sftp.get_channel()
        if channel is not None:
            channel.settimeout(t)
        self._sftp = sftp
        if self._broken:  # abandoned while connecting: do not leave the connection open
            client.close()

    def _key(self) -> paramiko.PKey:
        partner = self.partner
        passphrase = None
        if partner.passphrase_env:
            passphrase = os.environ.get(partner.passphrase_env)
            if passphrase is None:
                raise SftpRefused(
                    f"private key {partner.private_key}: the environment variable"
                    f" {partner.passphrase_env} (passphrase_env) is not set"
                )
        # paramiko hands the passphrase to cryptography, which wants bytes (its stubs say str).
        secret: Any = passphrase.encode() if passphrase is not None else None
        try:
            return paramiko.PKey.from_path(partner.private_key, secret)
        except (paramiko.PasswordRequiredException, TypeError) as exc:  # TypeError: from
            # cryptography, for an encrypted key given no passphrase
            raise SftpRefused(
                f"private key {partner.private_key} is encrypted: name the variable that holds"
                " its passphrase in passphrase_env"
            ) from exc
        except (paramiko.SSHException, OSError, ValueError) as exc:
            raise SftpRefused(f"private key {partner.private_key} cannot be used: {exc}") from exc

    def check_key(self) -> None:
        """Load the private key now (at start), so that a bad key stops the gateway with a
        clear error instead of failing every poll. Raises SftpRefused. A key other accounts
        can read (the gateway's group holds the partners' accounts) is warned of, as OpenSSH
        would refuse it: ``sftp.key_exposed``."""
        self._key()
        try:
            mode = os.stat(self.partner.private_key).st_mode
        except OSError:
            return
        if mode & 0o077:
            log.warning("sftp.key_exposed", partner=self.partner.name,
                        mode=oct(stat.S_IMODE(mode)),
                        reason="the private key can be read or changed by other accounts than "
                               "the gateway's: chmod 600 it")

    def _close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()

    def _listdir(self, folder: str) -> list[RemoteFile]:
        """``listdir_attr`` as paramiko has it, but each name read as bytes: paramiko decodes
        names as strict UTF-8, so one name that is not would fail the whole listing and stop
        every file of the partner. Such a name comes with its odd bytes as lone surrogates
        (``surrogateescape``), which the exchange's name check refuses, as it does a control
        character: that file is skipped (and logged), the others are taken."""
        sftp: Any = self._session()  # the request primitives are not in paramiko's typed API
        kind, msg = sftp._request(CMD_OPENDIR, folder)
        if kind != CMD_HANDLE:
            raise paramiko.SFTPError("Expected handle")
        handle = msg.get_binary()
        entries = []
        try:
            while True:
                try:
                    kind, msg = sftp._request(CMD_READDIR, handle)
                except EOFError:  # the end of the folder
                    break
                if kind != CMD_NAME:
                    raise paramiko.SFTPError("Expected name response")
                for _ in range(msg.get_int()):
                    name = msg.get_string().decode("utf-8", "surrogateescape")
                    msg.get_string()  # the long name, as ls -l would show it
                    attrs = cast(Any, paramiko.SFTPAttributes)._from_msg(msg, name)
                    if name not in (".", ".."):
                        entries.append(_entry(attrs))
        finally:
            sftp._request(CMD_CLOSE, handle)
        return entries

    def _stat(self, path: str) -> RemoteFile | None:
        try:
            attrs = self._session().lstat(path)
        except FileNotFoundError:
            return None
        attrs.filename = posixpath.basename(path)
        return _entry(attrs)

    def _download(self, path: str, out: BinaryIO) -> Transfer:
        sftp = self._session()
        remote = sftp.open(path, "rb")
        try:
            size = remote.stat().st_size or 0
            transfer = _Download(self, sftp, remote.handle, size).into(out)
        except BaseException:
            with contextlib.suppress(Exception):
                remote.close()
            raise
        remote.close()
        return transfer

    def _upload(self, local: Path, path: str) -> Transfer:
        digest = hashlib.sha256()

        def progress(_sent: int, _total: int) -> None:
            self._touch()
            if self._cancel.is_set():
                raise Cancelled(f"upload {_base(path)}: stopping")

        with local.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            reader = cast(IO[bytes], _HashingReader(fh, digest))
            attrs = self._session().putfo(
                reader, path, file_size=size, callback=progress, confirm=True
            )
        return Transfer(attrs.st_size or 0, digest.hexdigest())

    def _publish(self, temp: str, final: str) -> str:
        sftp = self._session()
        if self._posix_rename is not False:
            try:
                sftp.posix_rename(temp, final)
            except OSError:
                if not self._alive():
                    raise
            else:
                self._posix_rename = True
                return final
        target = self._free(final)
        sftp.rename(temp, target)
        if self._posix_rename is None:
            self._posix_rename = False
            log.info("sftp.no_posix_rename", partner=self.partner.name)
        return target

    def _move_aside(self, path: str, target: str) -> str | None:
        self._makedirs(posixpath.dirname(target))
        if self._stat(path) is None:
            return None
        free = self._free(target)
        self._session().rename(path, free)
        return free

    def _remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._session().remove(path)

    def _makedirs(self, folder: str) -> None:
        folder = posixpath.normpath(folder)
        if folder in self._folders or folder in ("/", ".", ""):
            return
        self._makedirs(posixpath.dirname(folder))
        if self._stat(folder) is None:
            try:
                self._session().mkdir(folder)
            except OSError:
                if self._stat(folder) is None:  # not made by someone else meanwhile
                    raise
        self._folders.add(folder)

    def _free(self, target: str) -> str:
        """``target``, or ``stem.N.ext`` with the smallest N that is not taken."""
        if self._stat(target) is None:
            return target
        folder, name = posixpath.split(target)
        stem, dot, ext = name.rpartition(".")
        if not stem:
            stem, dot, ext = name, "", ""
        for n in range(1, MAX_UNIQUE):
            candidate = posixpath.join(folder, f"{stem}.{n}{dot}{ext}")
            if self._stat(candidate) is None:
                return candidate
        raise RemoteFileError(f"rename {name}: {MAX_UNIQUE} files of that name already exist")


# --- downloads ------------------------------------------------------------------------------------


class _Answers:
    """Receives the answers to our read requests (paramiko hands them over by request number)."""

    def __init__(self) -> None:
        self.got: list[tuple[int, int, paramiko.Message]] = []

    def _async_response(self, t: int, msg: paramiko.Message, num: int) -> None:
        self.got.append((num, t, msg))


class _Download:
    """One pipelined download: bounded requests in flight, answers written in order."""

    def __init__(
        self, endpoint: SftpEndpoint, sftp: paramiko.SFTPClient, handle: Any, size: int
    ) -> None:
        self.endpoint = endpoint
        self.sftp: Any = sftp  # the request primitives are not part of paramiko's typed API
        self.handle = handle
        self.size = size
        self.answers = _Answers()
        self.asked: dict[int, tuple[int, int]] = {}
        self.next_offset = 0

    def into(self, out: BinaryIO) -> Transfer:
        digest = _Digest(threaded=self.size >= HASH_THREAD_BYTES)
        ready: dict[int, bytes] = {}
        written = 0
        try:
            while written < self.size:
                self._ask_more()
                self.sftp._read_response()
                for num, t, msg in self.answers.got:
                    self._answer(num, t, msg, ready)
                self.answers.got.clear()
                while written in ready:
                    chunk = ready.pop(written)
                    out.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                self.endpoint._touch()
                if self.endpoint._cancel.is_set():
                    raise Cancelled("download: stopping")
            return Transfer(written, digest.hexdigest())
        finally:
            digest.close()

    def _ask_more(self) -> None:
        while self.next_offset < self.size and len(self.asked) < MAX_REQUESTS:
            length = min(self.endpoint._request_bytes, self.size - self.next_offset)
            self._ask(self.next_offset, length)
            self.next_offset += length

    def _ask(self, offset: int, length: int) -> None:
        num = self.sftp._async_request(
            self.answers, CMD_READ, self.handle, int64(offset), int(length)
        )
        self.asked[num] = (offset, length)

    def _answer(self, num: int, t: int, msg: paramiko.Message, ready: dict[int, bytes]) -> None:
        offset, length = self.asked.pop(num)
        if t == CMD_STATUS:
            try:
                self.sftp._convert_status(msg)
            except EOFError as exc:
                raise RemoteFileError("the file shrank while it was read") from exc
            raise RemoteFileError(f"unexpected answer to a read at {offset}")
        if t != CMD_DATA:
            raise SftpUnavailable(f"unexpected SFTP message {t} to a read")
        data = msg.get_string()
        if not data:
            raise RemoteFileError("the server sent no data")
        ready[offset] = data
        if len(data) < length:  # the server reads less at a time: ask for the rest, then less
            self._ask(offset + len(data), length - len(data))
            self.endpoint._request_bytes = min(self.endpoint._request_bytes, len(data))


class _Digest:
    """SHA-256 of a stream; for large files on a second thread (hashlib releases the GIL), so
    that hashing overlaps the transfer. Bounded: at most 16 chunks wait."""

    def __init__(self, *, threaded: bool) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] | None = None
        self._thread: threading.Thread | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=16)
            self._thread = threading.Thread(
                target=self._run, args=(self._queue,), name="sha256", daemon=True
            )
            self._thread.start()

    def _run(self, chunks: queue.Queue[bytes | None]) -> None:
        while (chunk := chunks.get()) is not None:
            self._hash.update(chunk)

    def update(self, chunk: bytes) -> None:
        if self._queue is None:
            self._hash.update(chunk)
        else:
            self._queue.put(chunk)

    def hexdigest(self) -> str:
        self.close()
        return self._hash.hexdigest()

    def close(self) -> None:
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None


class _HashingReader:
    """A file reader that hashes what is read from it (what an upload sends)."""

    def __init__(self, fh: BinaryIO, digest: Any) -> None:
        self._fh = fh
        self._digest = digest

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        self._digest.update(data)
        return data


def _entry(attrs: paramiko.SFTPAttributes) -> RemoteFile:
    mode = attrs.st_mode
    return RemoteFile(
        name=attrs.filename,
        size=attrs.st_size or 0,
        mtime=int(attrs.st_mtime or 0),
        regular=mode is None or stat.S_ISREG(mode),
    )


def _base(path: str) -> str:
    return posixpath.basename(path) or path
