"""The SFTP partner exchange: one thread per ``[[sftp]]`` partner inside ``dit-gateway run``.

Each poll: (re)connect if need be and finish half-done work, list the remote inbox, take the
files that are complete, then deliver new outputs. A failure backs off this partner only (1 s
doubling to ``poll_seconds * 10``, with jitter); other partners and the local folders go on.

A remote file is complete when a later listing, at least ``settle_seconds`` after it was first
seen so, shows the same size and mtime (never "now minus mtime": the server's clock is not ours).

A take, in an order that loses nothing and duplicates nothing if the connection or the gateway
dies between any two steps (docs/sftp.md):

1. download to ``inbox/<channel>/.<name>.<partner>.part`` (a dot-name: the intake ignores it),
   fsync it and its folder; check the remote file did not change meanwhile;
2. ledger: *fetched* (partner, remote name, size, mtime, sha256, temp and local name);
3. link it as ``inbox/<channel>/<name>`` (never over another file: ``name.1.xml`` …), drop the
   temp name, fsync; ledger: *published*. The local intake takes it from here;
4. move the remote file to ``remote_done`` (or delete it) — if it is still the same file;
5. ledger: *done*.

At start, and after every reconnect before listing, unfinished takes are finished from the
ledger: a *fetched* take is published (unless its temp name already has a second link, i.e. it
was), a *published* take gets its remote move. A remote file matching an unfinished take (same
name, size and mtime) is never downloaded again.

A delivery: upload to ``.<name>.<sha12>.part`` next to the target, ledger *sending*, rename into
place (posix-rename where offered), ledger *sent*. Recovery renames a *sending* upload whose temp
name is still there, and marks it sent if it is not (it was renamed). Each (output, content) goes
to each partner once.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import posixpath
import random
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway import faults, logs
from gateway.config import Intake, SftpPartner
from gateway.errors import TransientError
from gateway.pipeline import safe_name, utc_now
from gateway.store.exchange import FETCHED, PUBLISHED, Delivery, ExchangeLedger, Take
from gateway.transport import files, modes
from gateway.transport.sftp import (
    Cancelled,
    RemoteFile,
    RemoteFileError,
    SftpEndpoint,
    SftpRefused,
)

log = logs.get("gateway.sftp")

MAX_REMOTE_NAME = 200
FIRST_BACKOFF_SECONDS = 1.0
MIN_SETTLE_POLL_SECONDS = 0.2
MAX_LOCAL_SUFFIX = 1000
_BAD_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")  # controls, format (bidi), surrogates, breaks


def name_problem(name: str) -> str | None:
    """Why a remote file name must not be used, or None when it is safe to take."""
    if not name or name in (".", ".."):
        return "empty or a folder reference"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if ".." in name:
        return "contains '..'"
    if any(unicodedata.category(c) in _BAD_CATEGORIES for c in name):
        return "contains a control character"
    if len(name) > MAX_REMOTE_NAME:
        return f"longer than {MAX_REMOTE_NAME} characters"
    return None


def backoff(attempt: int, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next try after ``attempt`` failures in a row: 1 s doubling up to
    ``cap``, with jitter (uniform over the upper half), so partners do not retry in step."""
    ceiling = min(cap, FIRST_BACKOFF_SECONDS * 2.0 ** min(attempt - 1, 30))
    return ceiling / 2 + rand() * ceiling / 2


@dataclass(slots=True)
class _Seen:
    size: int
    mtime: int
    since: float


@dataclass(slots=True)
class _Output:
    size: int
    mtime_ns: int
    sha256: str
    delivered: bool


class PartnerExchange:
    """Takes a partner's files into ``inbox/<channel>/`` and delivers outputs to it."""

    def __init__(
        self,
        partner: SftpPartner,
        *,
        inbox: Path,
        outbox: Path,
        ledger: ExchangeLedger,
        settle_seconds: float = 2.0,
        max_bytes: int = Intake().max_bytes,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.partner = partner
        self.max_bytes = max_bytes  # a larger remote file is not downloaded (it would be
        # refused once here, whole, and could fill the disk first)
        self.folder = inbox / partner.channel
        self.outbox = outbox
        self.ledger = ledger
        self.settle = settle_seconds
        self.clock = clock
        self.attempt = 0
        self.last_success: str | None = None
        self.problem: str | None = None
        self._tag = _tag(partner.name)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._endpoint: SftpEndpoint | None = None
        self._seen: dict[str, _Seen] = {}
        self._skipped: set[str] = set()
        self._outputs: dict[str, _Output] = {}

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the partner's thread."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"sftp-{self.partner.name}", daemon=True
        )
        self._thread.start()

    def stop(self, *, wait: bool = True) -> None:
        """Stop after the step in hand (a download in progress is given up; it is not recorded,
        so it is taken again later); the connection is dropped if that takes too long.
        ``wait=False`` only asks (to stop several partners at once)."""
        self._stop.set()
        thread = self._thread
        if thread is None or not wait:
            return
        thread.join(self.partner.timeout_seconds + 5)
        if thread.is_alive() and self._endpoint is not None:
            self._endpoint.abort()
            thread.join(5)
        self._thread = None

    def close(self) -> None:
        """Drop the connection (for callers that poll without the thread)."""
        self._disconnect()

    def _run(self) -> None:
        log.info("sftp.started", partner=self.partner.name, channel=self.partner.channel)
        delay = 0.0
        while not self._stop.wait(delay):
            delay = self._step()
        self._disconnect()
        log.info("sftp.stopped", partner=self.partner.name)

    def _step(self) -> float:
        """One poll, its failure handled; returns the seconds until the next poll."""
        try:
            settling = self.poll()
        except TransientError as exc:
            if self._stop.is_set():  # given up because we are stopping
                return 0.0
            return self._failed("refused" if isinstance(exc, SftpRefused) else "backoff", exc)
        except Exception as exc:  # a bug must not kill the partner's thread
            log.exception("sftp.failed", partner=self.partner.name, error=type(exc).__name__)
            return self._failed("backoff", exc)
        if settling:
            return min(self.partner.poll_seconds, max(self.settle, MIN_SETTLE_POLL_SECONDS))
        return self.partner.poll_seconds

    # --- one poll ------------------------------------------------------------------------------

    def poll(self) -> bool:
        """Connect if need be (finishing half-done work first), take the complete files, deliver
        new outputs. True when a remote file is still settling (poll again soon).

        One process (one node) at a time polls a partner: the others skip the round, so every
        remote file is taken once and every output delivered once across nodes.
        """
        with self.ledger.store.exclusive(f"sftp:{self.partner.name}") as mine:
            if not mine:
                self._disconnect()  # the holder may be finishing what we would redo
                return False
            return self._poll()

    def _poll(self) -> bool:
        if self._endpoint is None:
            self._connect()
        self.problem = None
        settling = self._take_complete()
        self._deliver()
        self.attempt = 0
        self.last_success = self.clock()
        self.ledger.set_state(self.partner.name, "connected", self.last_success,
                              error=self.problem, success=True)
        return settling

    def _connect(self) -> None:
        self.recover_local()
        endpoint = SftpEndpoint(self.partner, self._stop)
        try:
            endpoint.connect()
        except BaseException:
            endpoint.close()
            raise
        self._endpoint = endpoint
        log.info("sftp.connected", partner=self.partner.name, host=self.partner.host,
                 port=self.partner.port, state="connected", last_success=self.last_success)
        self.ledger.set_state(self.partner.name, "connected", self.clock())
        self._recover()

    def _disconnect(self) -> None:
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            endpoint.close()

    def _failed(self, state: str, exc: BaseException) -> float:
        self._disconnect()
        self.attempt += 1
        delay = backoff(self.attempt, max(1.0, self.partner.poll_seconds * 10))
        error = str(exc) or type(exc).__name__
        event = log.error if state == "refused" else log.warning
        event(f"sftp.{state}", partner=self.partner.name, state=state, attempt=self.attempt,
              retry_in=round(delay, 2), error=error, last_success=self.last_success)
        try:
            self.ledger.set_state(self.partner.name, state, self.clock(), error=error)
        except TransientError as store_error:
            log.warning("sftp.state_not_saved", partner=self.partner.name, error=str(store_error))
        return delay

    def _ep(self) -> SftpEndpoint:
        if self._endpoint is None:
            raise Cancelled("not connected")
        return self._endpoint

    # --- taking files --------------------------------------------------------------------------

    def _take_complete(self) -> bool:
        try:
            entries = self._ep().listdir(self.partner.remote_inbox)
        except RemoteFileError as exc:  # e.g. no such folder: deliveries still go
            self.problem = str(exc)
            log.warning("sftp.list_failed", partner=self.partner.name,
                        path=self.partner.remote_inbox, error=str(exc))
            return False
        now = time.monotonic()
        present: dict[str, RemoteFile] = {}
        for entry in entries:
            if not entry.regular or is_temporary_name(entry.name):
                continue
            problem = self._skip_reason(entry)
            if problem is None:
                present[entry.name] = entry
                continue
            # the partner's last error (``status``) for as long as the file is there; the log
            # says it once
            self.problem = f"{printable(entry.name)} skipped: {problem}"
            if entry.name not in self._skipped:
                self._skipped.add(entry.name)
                log.warning("sftp.skipped", partner=self.partner.name, file=printable(entry.name),
                            reason=problem)
        names = {e.name for e in entries}
        self._skipped &= names
        self._seen = {n: s for n, s in self._seen.items() if n in present}
        unfinished = {(t.remote_name, t.size, t.mtime): t for t in
                      self.ledger.open_takes(self.partner.name)}
        settling = False
        for entry in sorted(present.values(), key=lambda e: (e.mtime, e.name)):
            if self._stop.is_set():
                break
            take = unfinished.get((entry.name, entry.size, entry.mtime))
            if take is not None:
                self._finish(take)
                continue
            seen = self._seen.get(entry.name)
            if seen is None or (seen.size, seen.mtime) != (entry.size, entry.mtime):
                self._seen[entry.name] = _Seen(entry.size, entry.mtime, now)
                settling = True
            elif now - seen.since < self.settle:
                settling = True
            else:
                self._take_one(entry)
        return settling

    def _skip_reason(self, entry: RemoteFile) -> str | None:
        """Why a remote file is left where it is (None: it is taken)."""
        problem = name_problem(entry.name)
        if problem is not None:
            return f"unsafe name: {problem}"
        if entry.size > self.max_bytes:
            return (f"{entry.size} bytes, larger than [intake] max_file_mb ({self.max_bytes}"
                    " bytes): not downloaded")
        return None

    def _take_one(self, entry: RemoteFile) -> None:
        try:
            self._take(entry)
        except RemoteFileError as exc:
            self.problem = str(exc)
            self._seen.pop(entry.name, None)
            log.warning("sftp.take_failed", partner=self.partner.name, remote=entry.name,
                        error=str(exc))

    def _take(self, entry: RemoteFile) -> None:
        started = time.monotonic()
        endpoint = self._ep()
        remote = posixpath.join(self.partner.remote_inbox, entry.name)
        local_name = safe_name(entry.name)
        temp = self.folder / f".{local_name}.{self._tag}.part"
        try:
            modes.make_dirs(self.folder, group_writable=True)
            # A partner's group may write into this folder and can guess the name: whatever is
            # there (a crash's leftover, a planted link to a file of ours) goes, and the temp
            # is made new, never opened through a link (O_EXCL does not follow one).
            files.discard(temp)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, modes.file_mode(temp))
            with os.fdopen(fd, "wb") as fh:
                modes.restrict_fd(fh.fileno(), temp)
                transfer = endpoint.fetch(remote, fh)
                fh.flush()
                os.fsync(fh.fileno())
            files.fsync_dir(self.folder)
            after = endpoint.stat(remote)
        except OSError as exc:
            files.discard(temp)
            raise TransientError(f"cannot write {temp.name}: {exc.strerror or exc}") from exc
        except BaseException:
            files.discard(temp)
            raise
        same = after is not None and (after.size, after.mtime) == (entry.size, entry.mtime)
        if transfer.bytes != entry.size or not same:
            files.discard(temp)
            self._seen.pop(entry.name, None)
            log.info("sftp.changed", partner=self.partner.name, remote=entry.name,
                     reason="the remote file changed while it was downloaded; taken later")
            return
        faults.crashpoint("sftp-downloaded")
        take = self.ledger.record_fetched(
            self.partner.name, entry.name, size=entry.size, mtime=entry.mtime,
            sha256=transfer.sha256, temp_path=str(temp),
            local_path=str(self._free_local(local_name)), at=self.clock(),
        )  # fmt: skip
        faults.crashpoint("sftp-fetched")
        take = self._finish(take)
        self._seen.pop(entry.name, None)
        log.info("sftp.taken", partner=self.partner.name, remote=entry.name,
                 file=Path(take.local_path).name, channel=self.partner.channel,
                 bytes=transfer.bytes, sha256=transfer.sha256,
                 duration_ms=round((time.monotonic() - started) * 1000))

    def _finish(self, take: Take) -> Take:
        if take.state == FETCHED:
            take = self._publish(take)
        if take.state == PUBLISHED:
            self._acknowledge(take)
        return take

    def _publish(self, take: Take) -> Take:
        """Step 3: the download appears in the inbox under its own name, never over another."""
        temp, target = Path(take.temp_path), Path(take.local_path)
        try:
            if temp.exists():
                if temp.stat().st_nlink == 1:
                    target = _link(temp, target)
                temp.unlink(missing_ok=True)
                files.fsync_dir(self.folder)
        except OSError as exc:
            raise TransientError(f"cannot publish {target.name}: {exc.strerror or exc}") from exc
        self.ledger.mark_published(take.id, str(target))
        faults.crashpoint("sftp-published")
        return dataclasses.replace(take, state=PUBLISHED, local_path=str(target))

    def _acknowledge(self, take: Take) -> None:
        """Step 4: the taken file leaves the remote inbox — if it is still the file we took."""
        endpoint = self._ep()
        remote = posixpath.join(self.partner.remote_inbox, take.remote_name)
        current = endpoint.stat(remote)
        if current is not None and (current.size, current.mtime) == (take.size, take.mtime):
            if self.partner.remote_done:
                endpoint.move_aside(
                    remote, posixpath.join(self.partner.remote_done, take.remote_name)
                )
            else:
                endpoint.remove(remote)
            faults.crashpoint("sftp-moved")
        self.ledger.mark_done(take.id, self.clock())

    def _free_local(self, name: str) -> Path:
        return _free(self.folder / name)

    def recover_local(self) -> None:
        """Publish downloads recorded as fetched, and remove temp files no take refers to
        (downloads a crash interrupted before they were recorded)."""
        open_takes = self.ledger.open_takes(self.partner.name)
        for take in open_takes:
            if take.state == FETCHED:
                self._publish(take)
        referenced = {t.temp_path for t in open_takes if t.state == FETCHED}
        if self.folder.is_dir():
            for temp in self.folder.glob(f".*.{self._tag}.part"):
                if str(temp) not in referenced:
                    files.discard(temp)

    def _recover(self) -> None:
        """After (re)connecting: finish unfinished takes and deliveries before listing."""
        takes = self.ledger.open_takes(self.partner.name)
        deliveries = self.ledger.sending(self.partner.name)
        for take in takes:
            self._finish(take)
        for delivery in deliveries:
            self._finish_delivery(delivery, time.monotonic())
        if takes or deliveries:
            log.info("sftp.recovered", partner=self.partner.name, count=len(takes),
                     outputs=len(deliveries))

    # --- deliveries ----------------------------------------------------------------------------

    def _deliver(self) -> None:
        for entry in self.partner.deliver:
            base = self.outbox / entry
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*")):
                if self._stop.is_set():
                    return
                relative = path.relative_to(base)
                if any(is_temporary_name(part) for part in relative.parts) or not path.is_file():
                    continue
                try:
                    self._deliver_one(path, relative)
                except FileNotFoundError:
                    continue  # moved away meanwhile
                except RemoteFileError as exc:
                    self.problem = str(exc)
                    log.warning("sftp.delivery_failed", partner=self.partner.name,
                                file=relative.as_posix(), error=str(exc))

    def _deliver_one(self, path: Path, relative: Path) -> None:
        key = path.relative_to(self.outbox).as_posix()
        st = path.stat()
        known = self._outputs.get(key)
        if known is None or (known.size, known.mtime_ns) != (st.st_size, st.st_mtime_ns):
            sha = files.sha256_of(path)
            known = _Output(st.st_size, st.st_mtime_ns, sha,
                            self.ledger.delivered(self.partner.name, key, sha))
            self._outputs[key] = known
        if known.delivered:
            return
        started = time.monotonic()
        endpoint = self._ep()
        final = posixpath.join(self.partner.remote_outbox, *relative.parts)
        folder = posixpath.dirname(final)
        temp = posixpath.join(folder, f".{relative.name}.{known.sha256[:12]}.part")
        endpoint.makedirs(folder)
        transfer = endpoint.put(path, temp)
        if transfer.sha256 != known.sha256 and self.ledger.delivered(
            self.partner.name, key, transfer.sha256
        ):  # replaced meanwhile by content that went before
            endpoint.remove(temp)
            return
        delivery = Delivery(self.partner.name, key, transfer.sha256, temp, final, transfer.bytes)
        self.ledger.record_sending(delivery, self.clock())
        faults.crashpoint("sftp-uploaded")
        self._finish_delivery(delivery, started)

    def _finish_delivery(self, delivery: Delivery, started: float) -> None:
        endpoint = self._ep()
        final = delivery.remote_path
        if endpoint.stat(delivery.remote_temp) is not None:
            final = endpoint.publish(delivery.remote_temp, delivery.remote_path)
            faults.crashpoint("sftp-delivered")
        self.ledger.mark_sent(delivery, final, self.clock())
        known = self._outputs.get(delivery.path)
        if known is not None and known.sha256 == delivery.sha256:
            known.delivered = True
        log.info("sftp.delivered", partner=self.partner.name, file=delivery.path, remote=final,
                 bytes=delivery.bytes, sha256=delivery.sha256,
                 duration_ms=round((time.monotonic() - started) * 1000))


def is_temporary_name(name: str) -> bool:
    """Spec 2: dot-names and temporary suffixes are not files yet (on either side)."""
    return files.is_temporary(name)


def printable(name: str) -> str:
    """A name safe to put in a log line: control characters escaped, length bounded."""
    return name.encode("unicode_escape").decode("ascii")[:2 * MAX_REMOTE_NAME]


def _tag(partner: str) -> str:
    """The partner's name in local temp names: safe, and distinct for distinct names."""
    safe = safe_name(partner)
    if safe == partner:
        return safe
    return f"{safe}-{hashlib.sha256(partner.encode()).hexdigest()[:8]}"


def _free(path: Path) -> Path:
    """``path``, or ``stem.N.suffix`` with the smallest N that does not exist."""
    candidate = path
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
        n += 1
    return candidate


def _link(temp: Path, target: Path) -> Path:
    """Give ``temp`` the name ``target`` (or ``stem.N.suffix`` if taken), never replacing a
    file: a hard link, or a checked rename where links are not supported."""
    for n in range(MAX_LOCAL_SUFFIX):
        candidate = target if n == 0 else target.with_name(f"{target.stem}.{n}{target.suffix}")
        try:
            os.link(temp, candidate)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            if candidate.exists():
                continue
            temp.rename(candidate)
        return candidate
    raise TransientError(f"cannot publish {target.name}: too many files of that name")
