"""Atomic, durable file operations: temp name in the same folder, fsync, rename, fsync folder.

A reader of ``outbox/`` never sees a partial file: outputs are written under a dot-name that
every reader (and the SFTP delivery) ignores, and appear only by ``rename``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, TypeVar

from gateway.errors import OutputLost, StorageUnavailable, TransientError, Vanished
from gateway.transport import modes

TEMP_SUFFIXES = (".tmp", ".part", ".filepart", "~")


def is_temporary(name: str) -> bool:
    """Spec 2: names starting with ``.`` or ending in a temporary suffix are not yet files."""
    return name.startswith(".") or name.endswith(TEMP_SUFFIXES)


def temp_path_for(final: Path, tag: str) -> Path:
    """The temporary name an output is written under before it is renamed to ``final``."""
    return final.with_name(f".{final.name}.{tag}.tmp")


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new name in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


T = TypeVar("T")

SYNC_THREADS = 4  # fsyncs running at once: the disk makes several durable in one journal commit
SYNC_PENDING = 64  # fsyncs started and not yet done (each holds a descriptor)

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _sync_pool() -> ThreadPoolExecutor:
    global _pool  # noqa: PLW0603 - one pool for the process, made when first needed
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="fsync")
        return _pool


def _fsync_and_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _submit(sync: Callable[[T], None], what: T) -> Future[None]:
    """``sync(what)`` in the pool's threads; here and now if the interpreter is ending (no
    threads to be had), its outcome in the future all the same."""
    try:
        return _sync_pool().submit(sync, what)
    except RuntimeError:
        done: Future[None] = Future()
        try:
            sync(what)
            done.set_result(None)
        except OSError as exc:
            done.set_exception(exc)
        return done


class Syncs:
    """fsyncs of finished temporary files, run in threads while the caller goes on: an fsync
    waits on the disk, not on the interpreter, so a file's outputs are made durable while its
    state is written, and several at once. Each fsync is of the descriptor the file was written
    through (a write-back error is reported to it). :meth:`wait` before anything that needs
    them durable is committed; leaving the ``with`` block waits for every fsync started,
    whatever happened, so none outlives the work it belongs to."""

    def __init__(self) -> None:
        self._started: deque[tuple[Path, Future[None]]] = deque()
        self._failed: StorageUnavailable | None = None

    def __enter__(self) -> Syncs:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._settle(len(self._started))

    def start(self, temp: Path, fd: int) -> None:
        """fsync ``fd`` (a descriptor of ``temp``, closed once synced) in a thread."""
        if len(self._started) >= SYNC_PENDING:
            self._settle(1)
        self._started.append((temp, _submit(_fsync_and_close, fd)))

    def wait(self) -> None:
        """Wait for every fsync started; :class:`StorageUnavailable` if one failed."""
        self._settle(len(self._started))
        failed, self._failed = self._failed, None
        if failed is not None:
            raise failed

    def _settle(self, count: int) -> None:
        """Wait for the ``count`` oldest fsyncs, keeping the first failure."""
        for _ in range(count):
            temp, future = self._started.popleft()
            error = future.exception()
            if error is not None and self._failed is None:
                reason = error.strerror if isinstance(error, OSError) else None
                self._failed = StorageUnavailable(
                    f"cannot write {temp.name}: {reason or error}")
                self._failed.__cause__ = error


def fsync_dirs(folders: Iterable[Path]) -> None:
    """:func:`fsync_dir` each folder, all at once (in :class:`Syncs`' threads); the first
    failure is raised once all are done."""
    folders = list(folders)
    if len(folders) == 1:
        fsync_dir(folders[0])
        return
    errors = [future.exception() for future in [_submit(fsync_dir, f) for f in folders]]
    for error in errors:
        if error is not None:
            raise error


def write_temp(temp: Path, write: Callable[[BinaryIO], None], *, syncs: Syncs | None = None
               ) -> tuple[int, int]:
    """Write ``temp`` completely and fsync it (``syncs``: in its threads, waited for there);
    returns its (inode, size).

    The file is created owner-and-group only (:mod:`gateway.transport.modes`). A failure leaves
    no file behind.
    """
    try:
        modes.make_dirs(temp.parent)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                     modes.file_mode(temp))
        try:
            modes.restrict_fd(fd, temp)
        except BaseException:
            os.close(fd)
            raise
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            st = os.fstat(fh.fileno())
            _sync(temp, fh.fileno(), syncs)
    except OSError as exc:
        discard(temp)
        raise StorageUnavailable(f"cannot write {temp.name}: {exc.strerror or exc}") from exc
    return st.st_ino, st.st_size


def _sync(temp: Path, fd: int, syncs: Syncs | None) -> None:
    """fsync ``fd`` now, or in ``syncs`` (a descriptor of its own, as ``fd`` is closed)."""
    if syncs is None:
        os.fsync(fd)
    else:
        syncs.start(temp, os.dup(fd))


def append_temp(temp: Path, write: Callable[[BinaryIO], None], *, create: bool = False,
                syncs: Syncs | None = None) -> tuple[int, int]:
    """Write more of ``temp`` (``create``: start it, owner-and-group only, as
    :func:`write_temp`); ``syncs``: the last piece, fsync it in their threads. Returns its
    (inode, size)."""
    try:
        if create:
            modes.make_dirs(temp.parent)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                         modes.file_mode(temp))
        else:  # no mode to work out: the file exists (its mode was set when it was begun)
            fd = os.open(temp, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            if create:
                modes.restrict_fd(fd, temp)
        except BaseException:
            os.close(fd)
            raise
        with os.fdopen(fd, "ab" if not create else "wb") as fh:
            write(fh)
            fh.flush()
            st = os.fstat(fh.fileno())
            if syncs is not None:
                _sync(temp, fh.fileno(), syncs)
    except OSError as exc:
        raise StorageUnavailable(f"cannot write {temp.name}: {exc.strerror or exc}") from exc
    return st.st_ino, st.st_size


def discard(path: Path) -> None:
    """Remove a temporary file if it is there; never fails (it may sit on a broken path)."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


Written = tuple[Path, Path, int | None, int | None]  # temp, final, inode, size


def still_written(temp: Path, ino: int | None, size: int | None) -> bool:
    """Whether ``temp`` is still the file that was written (same inode and size)."""
    try:
        st = temp.stat()
    except OSError:
        return False
    return ino is None or (st.st_ino, st.st_size) == (ino, size)


def publish_all(outputs: Iterable[Written]) -> None:
    """Rename many finished temporary files into place, then fsync each folder once (all at
    once, :func:`fsync_dirs`).

    An output already renamed (same inode in place: a crash after the rename, or another
    process's recovery of a job's outputs that renamed it first) is skipped; one whose
    temporary file is gone is never skipped in silence: :class:`OutputLost`.
    """
    folders: dict[Path, None] = {}
    lost = []
    try:
        for temp, final, ino, size in outputs:
            try:
                os.replace(temp, final)
            except FileNotFoundError:
                if ino is None or not still_written(final, ino, size):
                    lost.append(final)
                continue
            folders[final.parent] = None
        fsync_dirs(folders)
    except OSError as exc:
        raise StorageUnavailable(f"cannot publish outputs: {exc.strerror or exc}") from exc
    if lost:
        raise OutputLost(
            f"{len(lost)} output(s) lost before publishing, e.g. {lost[0].name}: "
            "their temporary files were removed by something outside the gateway"
        )


def write_atomic(final: Path, data: bytes) -> None:
    """Write ``data`` to ``final`` so that it appears whole or not at all. The temporary name
    is this process's: two processes writing the same file at once (two nodes starting on one
    ``var/``) must not rename each other's."""
    temp = temp_path_for(final, f"w{os.getpid()}")

    def write(fh: BinaryIO) -> None:
        fh.write(data)

    ino, size = write_temp(temp, write)
    publish_all([(temp, final, ino, size)])


def move(source: Path, target_dir: Path, name: str | None = None) -> Path:
    """Move a file into ``target_dir`` (as ``name``) durably, never overwriting a file there."""
    try:
        modes.make_dirs(target_dir)
        target = target_dir / (name or source.name)
        stem, suffix = target.stem, target.suffix
        n = 1
        while target.exists():
            target = target_dir / f"{stem}.{n}{suffix}"
            n += 1
        os.rename(source, target)
        modes.restrict(target)
        fsync_dirs((target_dir, source.parent))
    except OSError as exc:
        raise StorageUnavailable(f"cannot move {source.name}: {exc.strerror or exc}") from exc
    return target


def take(fd: int, source: Path, target: Path, hidden: Path) -> None:
    """Move an inbound file (open as ``fd``) to ``target``; across file systems, by copy.

    Of several processes taking the same file, one wins; the others get :class:`Vanished`.
    ``inbox/`` and ``var/`` on different file systems cannot rename: the file is first renamed
    to ``hidden`` beside it (an atomic step only one process wins), copied from the open
    descriptor under a temporary name, fsynced, renamed into place, and only then removed.
    """
    try:
        os.rename(source, target)
    except FileNotFoundError as exc:
        raise Vanished(f"{source.name} was taken by another process") from exc
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise StorageUnavailable(f"cannot claim {source.name}: {exc.strerror}") from exc
        _take_by_copy(fd, source, target, hidden)
    else:
        _moved_what_was_opened(fd, source, target)
    try:
        modes.restrict(target)  # a partner's 0644 is not kept in var/
        fsync_dirs((target.parent, source.parent))
    except OSError as exc:
        raise StorageUnavailable(f"cannot claim {source.name}: {exc.strerror}") from exc


def _moved_what_was_opened(fd: int, source: Path, moved: Path) -> None:
    """What a claim's rename moved to ``moved`` is the file it opened (and hashes as ``fd``);
    else :class:`Vanished`, and what was moved is given back under the source's name.

    Between the open and the rename, the partner may have put another file under the name
    (a new version, renamed into place as it should be) or, hostile, a link to a file of the
    gateway's. Either would have been processed under the opened file's hash, the link
    followed. Given back (unless the name was taken again since: the newer one wins, as the
    partner's own rename would have had it), it is looked at afresh."""
    opened = os.fstat(fd)
    try:
        found = os.lstat(moved)
    except FileNotFoundError as exc:
        raise Vanished(f"{source.name} was taken by another process") from exc
    if (found.st_dev, found.st_ino) == (opened.st_dev, opened.st_ino):
        return
    try:
        os.link(moved, source, follow_symlinks=False)
    except FileExistsError:
        pass
    except OSError:  # a folder cannot be linked: renamed back, unless the name is taken
        if not os.path.lexists(source):
            with contextlib.suppress(OSError):
                os.rename(moved, source)
    discard(moved)
    raise Vanished(f"{source.name} was replaced while it was claimed: looked at again")


def _take_by_copy(fd: int, source: Path, target: Path, hidden: Path) -> None:
    try:
        os.rename(source, hidden)
    except FileNotFoundError as exc:
        raise Vanished(f"{source.name} was taken by another process") from exc
    except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
        # a folder where the file was to be parked (a partner may write in this folder): this
        # claim's trouble only, not the storage's; the next claim parks under another name
        raise TransientError(f"cannot claim {source.name}: {hidden.name} is taken by a folder"
                             ) from exc
    except OSError as exc:
        raise StorageUnavailable(f"cannot claim {source.name}: {exc.strerror}") from exc
    _moved_what_was_opened(fd, source, hidden)
    temp = temp_path_for(target, "claim")
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        with os.fdopen(os.dup(fd), "rb") as src:
            write_temp(temp, lambda fh: shutil.copyfileobj(src, fh, 1024 * 1024))
        os.rename(temp, target)
        fsync_dir(target.parent)  # the copy's name durable before the original goes
    except BaseException as exc:
        discard(temp)
        discard(target)  # the claim's own name: a copy not made durable is no copy
        with contextlib.suppress(OSError):
            os.rename(hidden, source)  # the file back in the inbox, under its own name
        if isinstance(exc, OSError):  # the rename or the fsync (write_temp raises its own)
            raise StorageUnavailable(f"cannot claim {source.name}: {exc.strerror or exc}"
                                     ) from exc
        raise
    with contextlib.suppress(OSError):
        os.unlink(hidden)


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks."""
    with path.open("rb") as fh:
        return sha256_of_fd(fh.fileno())


def sha256_of_regular(path: Path, max_bytes: int | None = None) -> tuple[int, str] | None:
    """The size and SHA-256 of ``path``; None if it is not a regular file (or is larger than
    ``max_bytes``). Opened without waiting and hashed from the descriptor: a FIFO, even one
    swapped in after the file was looked at, is let be, not waited on for a writer."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (max_bytes is not None and st.st_size > max_bytes):
            return None
        return st.st_size, sha256_of_fd(fd)
    finally:
        os.close(fd)


def sha256_of_fd(fd: int) -> str:
    """The SHA-256 of an open file's bytes from its start, read in chunks."""
    digest = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 1024 * 1024):
        digest.update(chunk)
    return digest.hexdigest()
