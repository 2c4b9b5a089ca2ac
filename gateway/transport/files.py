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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from gateway.errors import OutputLost, StorageUnavailable, Vanished
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


def write_temp(temp: Path, write: Callable[[BinaryIO], None]) -> tuple[int, int]:
    """Write ``temp`` completely and fsync it; returns its (inode, size).

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
            os.fsync(fh.fileno())
            st = os.fstat(fh.fileno())
    except OSError as exc:
        discard(temp)
        raise StorageUnavailable(f"cannot write {temp.name}: {exc.strerror or exc}") from exc
    return st.st_ino, st.st_size


def append_temp(temp: Path, write: Callable[[BinaryIO], None], *, create: bool = False,
                sync: bool = False) -> tuple[int, int]:
    """Write more of ``temp`` (``create``: start it, owner-and-group only, as
    :func:`write_temp`); ``sync``: fsync it, the last piece. Returns its (inode, size)."""
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
            if sync:
                os.fsync(fh.fileno())
            st = os.fstat(fh.fileno())
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
    """Rename many finished temporary files into place, then fsync each folder once.

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
        for folder in folders:
            fsync_dir(folder)
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
        fsync_dir(target_dir)
        fsync_dir(source.parent)
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
    try:
        modes.restrict(target)  # a partner's 0644 is not kept in var/
        fsync_dir(target.parent)
        fsync_dir(source.parent)
    except OSError as exc:
        raise StorageUnavailable(f"cannot claim {source.name}: {exc.strerror}") from exc


def _take_by_copy(fd: int, source: Path, target: Path, hidden: Path) -> None:
    try:
        os.rename(source, hidden)
    except FileNotFoundError as exc:
        raise Vanished(f"{source.name} was taken by another process") from exc
    except OSError as exc:
        raise StorageUnavailable(f"cannot claim {source.name}: {exc.strerror}") from exc
    temp = temp_path_for(target, "claim")
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        with os.fdopen(os.dup(fd), "rb") as src:
            write_temp(temp, lambda fh: shutil.copyfileobj(src, fh, 1024 * 1024))
        os.rename(temp, target)
    except BaseException:
        discard(temp)
        with contextlib.suppress(OSError):
            os.rename(hidden, source)  # give the file back to the inbox
        raise
    with contextlib.suppress(OSError):
        os.unlink(hidden)


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks."""
    with path.open("rb") as fh:
        return sha256_of_fd(fh.fileno())


def sha256_of_fd(fd: int) -> str:
    """The SHA-256 of an open file's bytes from its start, read in chunks."""
    digest = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 1024 * 1024):
        digest.update(chunk)
    return digest.hexdigest()
