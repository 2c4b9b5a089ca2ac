"""A streamed file's records, read and validated as they come: in this process, or, for a large
file on a machine with a second core, in a second process beside it (issue 13).

lxml's streaming validation and the building of each record are a fifth of a national
placements file's time, and they cannot run in a thread beside the rules: lxml takes the GIL
back for every record it hands Python (docs/performance.md). A second process reads the file
with exactly :func:`read` and sends the records over a pipe, a batch at a time, while this one
decides them; the pipe's size keeps the reader a few batches ahead, so memory stays flat.

The reader ends its stream with what it found: the end of the file, an invalid file (raised
here as :class:`ValueError` at the same point of the stream as :func:`read` raises it in
process, so the pipeline's careful path says why) or a failure of its own. A reader that dies
without saying (killed, out of memory) is a :class:`TransientError`: the file is tried again.
The reader ignores SIGINT and SIGTERM (the gateway's own process decides when to stop: a
daemon finishes the file in hand) and ends when its pipe does; the gateway kills and reaps it
whenever the stream is left early.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gateway
from gateway.documents import KINDS, DocumentKind
from gateway.errors import RejectedFile, TransientError
from gateway.xml.schemas import schema
from gateway.xml.secure import iter_records

BESIDE_BYTES = 4 << 20
"""A file this size or larger is read beside (~6,500 placements): below it, starting a second
Python (~0.15 s) costs more than it saves."""
BATCH = 500  # records a message (~80 KB pickled)
PIPE_BYTES = 1 << 20

_RECORDS, _END, _INVALID, _FAILED = "records", "end", "invalid", "failed"
_ROOT = str(Path(gateway.__file__).resolve().parent.parent)
_SERVE = f"import sys; sys.path.insert(0, {_ROOT!r}); from gateway.reading import serve; serve()"


def read(path: Path, kind: DocumentKind, xsd: Any, limit: int) -> Iterator[Any]:
    """The records of a file, read (and validated, with ``xsd``) as they stream."""
    for element in iter_records(path, xsd, limit, kind.record_tag if xsd is not None else None):
        yield kind.read_record(element)


def streamed(path: Path, kind: DocumentKind, limit: int) -> Iterator[Any]:
    """:func:`read` with the kind's XSD: beside this process when the file is large and there
    is a core to spare (:data:`BESIDE_BYTES`), else in it. Raises as :func:`read` does."""
    if beside_worthwhile(path):
        return read_beside(path, kind, limit)
    return read(path, kind, schema(kind.xsd), limit)


def beside_worthwhile(path: Path) -> bool:
    """Whether ``path`` is large enough, and this process has a second core, to read it beside."""
    try:
        large = os.stat(path).st_size >= BESIDE_BYTES
    except OSError:
        return False  # read in process, which says why it cannot be
    return large and _cores() > 1


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def read_beside(path: Path, kind: DocumentKind, limit: int) -> Iterator[Any]:
    """:func:`read` with the kind's XSD, in a second process (:func:`serve`)."""
    try:
        reader = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(path), kind.name, str(limit)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True,
        )
    except OSError as exc:  # no process to be had (a limit on processes, memory): read here
        from gateway.logs import get  # noqa: PLC0415 - the reader process never logs

        get("gateway.reading").warning("reader.not_started", file=path.name, error=str(exc))
        yield from read(path, kind, schema(kind.xsd), limit)
        return
    pipe = reader.stdout
    if pipe is None:  # for the type checker: stdout=PIPE always gives one
        raise RuntimeError("no pipe from the reader process")
    _widen(pipe.fileno())
    try:
        while True:
            try:
                # S301: pickles from this gateway's own reader, over a pipe only it holds; the
                # partner's text arrives inside them as strings, never as pickle opcodes
                what, value = pickle.load(pipe)  # noqa: S301
            except (EOFError, pickle.UnpicklingError, ValueError) as exc:
                code = reader.wait()
                raise TransientError(
                    f"the process reading {path.name} ended before the end of the file (exit "
                    f"status {code}): the file is tried again") from exc
            if what == _RECORDS:
                yield from value
            elif what == _END:
                return
            elif what == _INVALID:
                raise ValueError(value)
            else:
                raise RuntimeError(f"reading {path.name} failed: {value}")
    finally:
        if reader.poll() is None:
            reader.kill()
        pipe.close()
        reader.wait()


def _widen(fd: int) -> None:
    """Let the pipe hold a few windows of records (1 MiB, Linux's most for any user; 64 KiB
    by default, less than two batches): the rules take 2,000 records at once, and a reader
    held one batch ahead made them wait for the rest of every window."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or a lower limit: as it is
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def serve() -> None:
    """The reader process: ``<path> <kind> <limit>`` → pickled batches on stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out = sys.stdout.buffer
    try:
        path, name, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
        batch: list[Any] = []
        try:
            kind = next(k for k in KINDS if k.name == name)
            for record in read(Path(path), kind, schema(kind.xsd), limit):
                batch.append(record)
                if len(batch) == BATCH:
                    pickle.dump((_RECORDS, batch), out, pickle.HIGHEST_PROTOCOL)
                    batch = []
            end = (_END, "")
        except (RejectedFile, ValueError, KeyError, TypeError) as exc:
            end = (_INVALID, str(exc))
        except Exception as exc:  # said to the gateway, which raises it
            end = (_FAILED, f"{type(exc).__name__}: {exc}")
        # the records read before an invalid part too: the stream is the one read() gives
        pickle.dump((_RECORDS, batch), out, pickle.HIGHEST_PROTOCOL)
        pickle.dump(end, out, pickle.HIGHEST_PROTOCOL)
        out.flush()
    except BrokenPipeError:  # the gateway left the stream: nobody to tell
        os._exit(1)
