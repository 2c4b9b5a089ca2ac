"""Atomic, durable file operations: temp name in the same folder, fsync, rename, fsync folder.

A reader of ``outbox/`` never sees a partial file: outputs are written under a dot-name that
every reader (and the SFTP delivery) ignores, and appear only by ``rename``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from gateway.errors import TransientError

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


def write_temp(temp: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``temp`` completely and fsync it; a failure leaves no file behind."""
    try:
        temp.parent.mkdir(parents=True, exist_ok=True)
        with temp.open("wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        discard(temp)
        raise TransientError(f"cannot write {temp.name}: {exc.strerror or exc}") from exc


def discard(path: Path) -> None:
    """Remove a temporary file if it is there; never fails (it may sit on a broken path)."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def publish_all(pairs: Iterable[tuple[Path, Path]]) -> None:
    """Rename many finished temporary files into place, then fsync each folder once."""
    folders: dict[Path, None] = {}
    try:
        for temp, final in pairs:
            if temp.exists():
                os.replace(temp, final)
                folders[final.parent] = None
        for folder in folders:
            fsync_dir(folder)
    except OSError as exc:
        raise TransientError(f"cannot publish outputs: {exc.strerror or exc}") from exc


def write_atomic(final: Path, data: bytes) -> None:
    """Write ``data`` to ``final`` so that it appears whole or not at all."""
    temp = temp_path_for(final, "w")

    def write(fh: BinaryIO) -> None:
        fh.write(data)

    write_temp(temp, write)
    publish_all([(temp, final)])


def move(source: Path, target_dir: Path) -> Path:
    """Move a file into ``target_dir`` durably, never overwriting a different file there."""
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / source.name
        n = 1
        while target.exists():
            target = target_dir / f"{source.stem}.{n}{source.suffix}"
            n += 1
        os.rename(source, target)
        fsync_dir(target_dir)
        fsync_dir(source.parent)
    except OSError as exc:
        raise TransientError(f"cannot move {source.name}: {exc.strerror or exc}") from exc
    return target


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()
