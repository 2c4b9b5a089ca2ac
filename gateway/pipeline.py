"""One inbound file's life (spec section 3): claim, ledger, duplicate, parse & validate, rules,
commit, publish, archive or quarantine, acknowledge — and recovery after a crash.

The commit protocol, which makes a crash at any point leave either the old state or the new:

1. every output (the acknowledgement included) is written under a temporary dot-name next to its
   final name and fsynced (in threads, while 2 writes the state: every fsync is done, and any
   failure raised, before 2 commits);
2. one store transaction applies the state changes, marks the file's fate and lists the outputs
   still to publish;
3. the outputs but the acknowledgement are renamed into place;
4. the input leaves ``var/processing/`` for the archive or the quarantine;
5. the acknowledgement is renamed into place, last (spec 3: once it is there, the file is done),
   and the outputs are forgotten by the store.

A crash before 2 leaves the file claimed: on restart it is processed again from the same state
and gives the same outputs. A crash after 2 is finished by :meth:`Pipeline.recover`, which renames
what 2 listed and moves the input on, in the same order.

A placement or check file is decided as it is read, a window of records at a time (issue 13): the
transaction of 2 is opened first and takes each window's state changes as the window's outputs
are appended to their temporary files; the outputs are fsynced, the fate marked and the outputs
listed last, and the commit is the same single one. A file that proves invalid on the way
(its last record, say) rolls the transaction back, its temporary files are removed, and it is
decided the careful way (:func:`parse`), which says why. A large one is read and validated by
a second process beside the rules (:mod:`gateway.reading`); the pipeline takes its records the
same way, and nothing else changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from gateway import faults, logs, owner, reading
from gateway.config import CHANNELS, UNKNOWN_CHANNEL, Settings
from gateway.documents import BY_ROOT, DocumentKind
from gateway.errors import (
    FileError,
    GatewayError,
    OutputLost,
    RejectedFile,
    StorageUnavailable,
    TransientError,
    Unavailable,
    Unreadable,
    Vanished,
)
from gateway.flows import Context, Flow, Output, Plan, Sink, Staging, Stream
from gateway.flows.checks import stream as stream_checks
from gateway.flows.placements import stream as stream_placements
from gateway.models import Totals
from gateway.reading import Parsed, parse
from gateway.store.base import CLAIMING, Held, Receipt
from gateway.store.interfaces import Store
from gateway.store.operations import OperationsLedger
from gateway.transport import files, modes
from gateway.xml import writers
from gateway.xml.secure import (
    Root,
    read_root,
)

log = logs.get("gateway.pipeline")

STREAMS: dict[str, Stream] = {"placements": stream_placements, "checks": stream_checks}

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 120


def safe_name(name: str) -> str:
    """A partner's file name made harmless: no separators, no control characters, bounded."""
    cleaned = re.sub(r"\.{2,}", ".", _UNSAFE.sub("_", name)).lstrip(".") or "file"
    if len(cleaned) > MAX_NAME:
        stem, dot, ext = cleaned.rpartition(".")
        ext = ext[:10] if dot else ""
        cleaned = (stem if dot else cleaned)[: MAX_NAME - len(ext) - 1] + (dot + ext)
    return cleaned


def received_name(path: Path) -> str:
    """A partner's file name as text: bytes that are not UTF-8 (which the file system allows,
    and Python holds as lone surrogates that neither the store nor XML can take) written as
    ``\\xNN``, as :func:`sent_name` writes what XML cannot carry."""
    return os.fsencode(path.name).decode("utf-8", "backslashreplace")


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def sent_name(name: str) -> str:
    """A partner's file name as sent, with what XML cannot carry written as ``\\xNN``."""
    return _NOT_XML.sub(
        lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", name
    )


def utc_now() -> str:
    """The current time as an ``xs:dateTime`` with zone."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class Pipeline:
    """Takes claimed files through their life; shared by the daemon and the one-shot commands.

    Every claim is owned by this process (:mod:`gateway.owner`) and leased in the store; state
    changes (a file's rules and commit, a job, recovery) happen under the store's work lock, one
    at a time across every process that shares the store.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        flows: dict[str, Flow],
        clock: Callable[[], str] = utc_now,
        streams: Mapping[str, Stream] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.flows = flows
        # kinds decided as they are read (issue 13); the flow of the same name decides the file
        # when it proves invalid on the way, or for its records with routing codes not plain
        self.streams = STREAMS if streams is None else streams
        self.clock = clock
        self.paths = settings.paths
        modes.configure(settings.paths.var, settings.paths.gid)
        self.node = settings.store.node
        self.owner = str(owner.me(self.node))
        # (channel, seconds) of each file this process took to its end, for the daemon's metrics
        self.timings: list[tuple[str, float]] = []
        self._owed: dict[int, int] = {}  # attempts to give back once the store is writable
        # a streamed file's transaction renews the leases itself (on SQLite, where the
        # background renewal would wait for the write lock that transaction holds)
        self._renewing_inline = False
        self._dangling: set[int] = set()  # claims to drop once the store is writable
        # files parsed ahead while the one before is decided (``process FILE…``); None: none
        self.ahead: reading.Ahead | None = None
        self._clock_skew = 0.0  # the store's clock less this host's, last measured
        self._skew_warned = False

    def now(self) -> float:
        """The time by the store's clock, in which leases are set and compared, so that nodes
        whose own clocks disagree still agree on who holds a file: this host's clock plus the
        difference last measured (:meth:`measure_clock`), so that no lease costs a round trip."""
        return time.time() + self._clock_skew

    def measure_clock(self) -> None:
        """Measure the store's clock against this host's (at the middle of the round trip),
        at each recovery and lease renewal; warn (``store.clock_skew``) once when they differ
        by more than a quarter of a lease, and say when they agree again. Never fails: a store
        out of reach keeps the last measure."""
        try:
            before = time.time()
            theirs = self.store.clock()
            after = time.time()
        except GatewayError:
            return
        self._clock_skew = theirs - (before + after) / 2
        apart = abs(self._clock_skew) > self.settings.store.lease_seconds / 4
        if apart != self._skew_warned:
            self._skew_warned = apart
            (log.warning if apart else log.info)(
                "store.clock_skew" if apart else "store.clock_agrees",
                seconds=round(self._clock_skew, 3), lease_seconds=self.settings.store.lease_seconds)

    def lease_until(self) -> float:
        """When a claim taken or renewed now expires (by the store's clock)."""
        return self.now() + self.settings.store.lease_seconds

    def _renew_every(self) -> float:
        """Seconds between renewals of this process's leases: three in a lease."""
        return max(self.settings.store.lease_seconds / 3, 0.05)

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Renew this process's leases in the background while the block runs."""
        stop = threading.Event()
        every = self._renew_every()

        def renew() -> None:
            while not stop.wait(every):
                if self._renewing_inline:
                    continue
                self.measure_clock()
                try:
                    self.store.renew(self.owner, self.lease_until())
                except GatewayError as exc:
                    log.warning("lease.renew_failed", error=str(exc))

        thread = threading.Thread(target=renew, name="lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    @contextlib.contextmanager
    def looking_ahead(self) -> Iterator[None]:
        """Within the block, a file asked for with :meth:`ask_ahead` is parsed by a reader
        process while the one before it is decided (:class:`~gateway.reading.Ahead`), if the
        machine has a second core; the reader ends with the block."""
        if self.ahead is not None or reading.cores() < 2:
            yield
            return
        self.ahead = reading.Ahead(self.settings.intake.max_bytes, frozenset(self.streams))
        try:
            yield
        finally:
            ahead, self.ahead = self.ahead, None
            ahead.close()
            if ahead.asked:
                log.info("lookahead.ended", asked=ahead.asked, used=ahead.used)

    def ask_ahead(self, path: Path, channel: str | None) -> None:
        """Have the look-ahead reader, if there is one, parse ``path`` (a file of ``channel``
        to be claimed next; None: of the channel its root names). Never fails: a file it cannot
        read now is parsed in its turn."""
        if self.ahead is not None:
            self.ahead.ask(path, channel)

    # --- claim ---------------------------------------------------------------------------------

    def claim(self, source: Path, channel: str, *, copy: bool = False) -> Receipt:
        """Move (or copy) a complete inbound file into ``var/processing/`` and record it.

        The receipt (owner, lease, where the file comes from) is written first, then the file
        moved: a file in ``var/processing/`` always has its receipt, so a crash anywhere leaves
        something recovery can decide on. An unreadable file is left where it is.
        """
        original = received_name(source)
        name = safe_name(original)
        for rid in sorted(self._dangling):
            self.store.drop_claim(rid)
            self._dangling.discard(rid)
        fd = _open_inbound(source, name, follow=copy)
        try:
            ino = os.fstat(fd).st_ino
            folder = self.paths.processing / channel
            try:
                modes.make_dirs(folder)
            except OSError as exc:
                raise StorageUnavailable(f"cannot create {folder}: {exc.strerror}") from exc
            receipt = self.store.claim(
                name, channel, folder, at=self.clock(), owner=self.owner,
                lease_until=self.lease_until(), original_name=original,
                source=None if copy else (_stored_path(source), ino),
            )
            target = Path(receipt.processing_path)
            faults.crashpoint("claim-recorded")
            try:
                if copy:
                    _copy_claim(fd, target)
                else:
                    files.take(fd, source, target, _hidden(source, receipt.id))
            except BaseException:
                try:
                    self.store.drop_claim(receipt.id)
                except GatewayError:
                    self._dangling.add(receipt.id)  # dropped before the next claim
                raise
            faults.crashpoint("claimed")
            receipt = self.store.claimed(receipt.id, files.sha256_of_fd(fd))
        finally:
            os.close(fd)
        log.info("file.claimed", file=name, sha256=receipt.sha256, channel=channel)
        return receipt

    # --- process -------------------------------------------------------------------------------

    def process(self, receipt: Receipt, as_of: date) -> str:
        """Take one claimed file to its end; returns its status.

        Raises TransientError (the file stays claimed; :class:`Unavailable` ones are not counted
        against the file) and ClaimLost (another process owns it now: let go).
        """
        with self.store.work_lock():
            owed = self._owed.pop(receipt.id, 0)
            try:
                attempts = self.store.begin_attempt(receipt.id, self.owner, give_back=owed)
            except Unavailable:
                self._owed[receipt.id] = owed
                raise
            if attempts > self.settings.intake.retry_limit:
                self._give_up(receipt, self.store.last_error(receipt.id) or "unknown")
                return "rejected"
            if not Path(receipt.processing_path).exists():
                # removed from var/processing/ by hand (or a restore without it): nothing to
                # try again, so said at once rather than after retry_limit failures
                self._give_up(receipt, "the gateway's copy of the file was lost before it "
                              "could be processed (gone from var/processing/): send it again",
                              at_once=True)
                return "rejected"
            faults.crashpoint("attempt-started")
            try:
                return self._process(receipt, as_of)
            except Unavailable as exc:
                self._give_back(receipt.id, str(exc))
                raise
            except Exception as exc:
                with contextlib.suppress(GatewayError):
                    self.store.note_error(receipt.id, _describe(exc))
                raise

    def _give_back(self, rid: int, error: str) -> None:
        try:
            self.store.undo_attempt(rid, error)
        except GatewayError:
            self._owed[rid] = self._owed.get(rid, 0) + 1

    def _process(self, receipt: Receipt, as_of: date) -> str:
        started = time.monotonic()
        path = Path(receipt.processing_path)
        now = self.clock()
        ctx = Context(self.settings, self.store, as_of, now, receipt)
        earlier = self.store.processed_file(receipt.sha256)
        errors: list[FileError] = []
        duplicate_of = None
        kind: tuple[str, str | None] | None = None  # (flow, the document's VPD) once parsed
        # the look-ahead reader's document or rejection for these bytes, if it has one (never
        # a streamed kind's): then the root need not be read here
        ahead = None if earlier is not None else self._ahead(receipt)
        root = None if earlier is not None or ahead is not None else self._root(path)
        streamed = None if root is None else self._stream(receipt, ctx, root)
        if streamed is not None:
            status, (totals, count) = "processed", streamed
        else:
            if earlier is not None:
                status, plan, duplicate_of = "duplicate", Plan(), earlier
                errors = [FileError("DUPLICATE_FILE",
                                    f"same content as the earlier file {earlier}")]
            else:
                try:
                    parsed = self._parsed(receipt, root, ahead)
                    kind = (parsed.kind.name, getattr(parsed.document, "vpd", None))
                    plan = self.flows[parsed.kind.name](
                        parsed.document,
                        dataclasses.replace(ctx, prepared=parsed.prepared)
                        if parsed.prepared else ctx)
                    del parsed  # the file's records: the plan keeps what it needs of them
                    status = "processed"
                except RejectedFile as rejected:
                    status, plan, errors = "rejected", Plan(), rejected.errors
            totals = Totals.of(plan.outcomes)
            ack = self._ack(receipt, status, now, errors, plan, totals, duplicate_of)
            outputs = [*plan.outputs, ack]
            count = len(outputs)
            self._commit(receipt, status, plan, outputs, errors, totals, duplicate_of, kind)
        self.store.close_receipt(receipt.id)  # the input was moved on before the ack
        self.timings.append((receipt.channel, time.monotonic() - started))
        log.info(
            f"file.{status}",
            file=receipt.name,
            sha256=receipt.sha256,
            channel=receipt.channel,
            code=errors[0].code if errors else None,
            received=totals.received,
            loaded=totals.loaded,
            updated=totals.updated,
            withdrawn=totals.withdrawn,
            deferred=totals.deferred,
            unchanged=totals.unchanged,
            rejected=totals.rejected,
            outputs=count,
            duration_ms=round((time.monotonic() - started) * 1000),
        )
        return status

    def _ack(
        self,
        receipt: Receipt,
        status: str,
        now: str,
        errors: list[FileError],
        plan: Plan,
        totals: Totals,
        duplicate_of: str | None,
        body: BinaryIO | None = None,
    ) -> Output:
        header = writers.AckHeader(
            sent_name(receipt.sent_name), receipt.sha256, receipt.claimed_at, receipt.channel,
            status, now, duplicate_of, stored_as=receipt.name,
        )
        return Output(
            self.paths.acks / receipt.ack_name,
            partial(writers.write_ack, header=header, errors=errors, outcomes=plan.outcomes,
                    totals=totals, body=body),
        )

    def _root(self, path: Path) -> Root | None:
        """The file's root element, read once for :meth:`_stream` and :meth:`parse`; None if it
        cannot be read (then :meth:`parse` reads it again to say why)."""
        try:
            return read_root(path, self.settings.intake.max_bytes)
        except RejectedFile:
            return None

    def _stream(self, receipt: Receipt, ctx: Context, root: Root) -> tuple[Totals, int] | None:
        """Decide a file of a streamed kind as it is read, and commit it (issue 13): the
        store transaction is opened first, each window's state changes go into it and its
        outputs into their temporary files, then the acknowledgement, the file's fate and the
        outputs to publish, as :meth:`commit` does. None if the file is not of such a kind, or
        proved invalid on the way: then nothing of it was kept (the transaction rolled back,
        the temporary files removed) and the caller decides it the careful way.

        Returns the totals and the number of outputs."""
        path = Path(receipt.processing_path)
        kind = BY_ROOT.get((root.namespace, root.name))
        if (kind is None or kind.channel != receipt.channel or kind.name not in self.flows
                or kind.name not in self.streams):
            return None
        records: Iterator[Any] = _streamed(path, kind, self.settings.intake.max_bytes)
        inline = self.store.single_node
        if inline:
            records = self._renewed(records)
        try:
            modes.make_dirs(self.paths.var)
            # the ack's outcomes, in a file with no name (closed by the block below)
            spool = tempfile.TemporaryFile(dir=self.paths.var)  # noqa: SIM115
        except OSError as exc:
            raise StorageUnavailable(f"cannot write in {self.paths.var}: {exc.strerror}") from exc
        staging = Staging(receipt.sha256[:12])
        sink = Sink(staging, spool)

        def run() -> None:
            self.streams[kind.name](records, ctx, sink)
            ack = self._ack(receipt, "processed", ctx.now, [], Plan(), sink.totals, None, spool)
            staging.write(ack.path, ack.write)

        def finish() -> None:
            totals = sink.totals
            self.store.finish(
                receipt.id, "processed", at=self.clock(), owner=self.owner,
                totals={"received": totals.received, "rejected": totals.rejected},
            )
            vpd = getattr(kind.build(root.attributes, ()), "vpd", None)
            OperationsLedger(self.store).record_counts(receipt.id, kind.name, vpd, sink.counts)

        self._renewing_inline = inline
        try:
            with spool:
                count = self.commit_streamed(receipt.id, staging, run, finish,
                                             settle=lambda: self._move_input(receipt, "processed"))
        except _Invalid:
            return None
        finally:
            self._renewing_inline = False
        return sink.totals, count

    def _renewed(self, records: Iterator[Any]) -> Iterator[Any]:
        """``records``, this process's leases renewed on the way as :meth:`holding` would, in
        the file's own transaction: on SQLite, the renewal thread's connection would wait for
        the write lock that transaction holds (a national file holds it for longer than
        SQLite's busy timeout). Nobody else can write meanwhile; the renewal is seen with the
        file's commit."""
        every = self._renew_every()
        due = time.monotonic() + every
        for n, record in enumerate(records):
            if not n % 256 and time.monotonic() >= due:
                self.store.renew(self.owner, self.lease_until())
                due = time.monotonic() + every
            yield record

    def _ahead(self, receipt: Receipt) -> Parsed | RejectedFile | None:
        """What the look-ahead reader made of these very bytes, if it has it ready
        (:class:`~gateway.reading.Ahead`); None: the file is read here."""
        return self.ahead.take(receipt.sha256, receipt.channel) if self.ahead else None

    def _parsed(self, receipt: Receipt, root: Root | None,
                ahead: Parsed | RejectedFile | None) -> Parsed:
        """The claimed file parsed: by the look-ahead reader (``ahead``), else here."""
        if isinstance(ahead, RejectedFile):
            raise ahead
        if ahead is not None:
            return ahead
        return self.parse(Path(receipt.processing_path), receipt.channel, root)

    def parse(self, path: Path, channel: str | None, root: Root | None = None) -> Parsed:
        """Hardened parse and XSD validation of a whole file; raises RejectedFile. ``root``:
        its root element, already read."""
        return parse(path, channel, self.settings.intake.max_bytes, root)

    def _commit(
        self,
        receipt: Receipt,
        status: str,
        plan: Plan,
        outputs: list[Output],
        errors: list[FileError],
        totals: Totals,
        duplicate_of: str | None,
        kind: tuple[str, str | None] | None = None,
    ) -> None:
        def finish() -> None:
            self.store.finish(
                receipt.id,
                status,
                at=self.clock(),
                owner=self.owner,
                code=errors[0].code if errors else None,
                duplicate_of=duplicate_of,
                totals={"received": totals.received, "rejected": totals.rejected},
            )
            if kind is not None:
                OperationsLedger(self.store).record(receipt.id, *kind, plan.outcomes)

        self.commit(receipt.id, receipt.sha256[:12], plan, outputs, finish,
                    settle=lambda: self._move_input(receipt, status))

    def commit(
        self, rid: int, tag: str, plan: Plan, outputs: list[Output], finish: Callable[[], None],
        *, settle: Callable[[], None] | None = None,
    ) -> None:
        """Write outputs under temporary names, commit state in one transaction, then publish.
        The outputs are fsynced in threads (:class:`files.Syncs`) while the state is written,
        and waited for before the commit.

        ``rid`` is the receipt whose outputs these are (0 for a scheduled job); ``tag`` makes the
        temporary names unique to this piece of work, so that a retry overwrites them. A
        temporary output that is gone before the commit (removed by something else) fails the
        commit, so the file is processed again rather than acknowledged with a hole.
        ``settle`` (an inbound file's: its input moved on) runs once the outputs but the
        acknowledgement are in place, before it is.
        """
        with self.store.work_lock(), files.Syncs() as syncs:
            written: list[files.Written] = []
            try:
                for output in outputs:
                    temp = files.temp_path_for(output.path, tag)
                    ino, size = files.write_temp(temp, output.write, syncs=syncs)
                    written.append((temp, output.path, ino, size))
                faults.crashpoint("outputs-written")
                with self.store.transaction():
                    plan.apply(self.store)  # while the outputs are fsynced
                    finish()
                    self.store.add_pending_outputs(rid, written)
                    syncs.wait()  # durable before the commit says they exist
                    _check_written(written)
            except BaseException:
                for temp, _final, _ino, _size in written:
                    files.discard(temp)
                raise
            faults.crashpoint("committed")
            self._publish(rid, written, settle)

    def commit_streamed(
        self, rid: int, staging: Staging, run: Callable[[], None], finish: Callable[[], None],
        *, within: bool = True, settle: Callable[[], None] | None = None,
    ) -> int:
        """:meth:`commit` for work that writes its state changes and outputs as it goes (a
        streamed file, the daily release): the transaction is opened first and ``run`` writes
        into it and into ``staging``'s temporary files; then the outputs are fsynced, ``finish``
        marks the work done and the outputs to publish are listed, and the one transaction
        commits. Anything raised rolls it back and removes the temporary files. Returns the
        number of outputs published. ``within=False``: ``run`` writes only outputs, and runs
        before the transaction opens (under the work lock all the same)."""
        try:
            with self.store.work_lock():
                if not within:
                    run()
                with self.store.transaction():
                    if within:
                        run()
                    written = self._staged(rid, staging, finish)
        except BaseException:
            staging.discard()
            raise
        faults.crashpoint("committed")
        self._publish(rid, written, settle)
        return len(written)

    def _staged(self, rid: int, staging: Staging, finish: Callable[[], None]
                ) -> list[files.Written]:
        """Inside the commit's transaction: the staged outputs fsynced, ``finish``, the outputs
        to publish listed."""
        written = staging.finish()
        faults.crashpoint("outputs-written")
        finish()
        self.store.add_pending_outputs(rid, written)
        _check_written(written)
        return written

    def _publish(self, rid: int, outputs: Iterable[files.Written],
                 settle: Callable[[], None] | None = None) -> None:
        """Rename ``outputs`` into place and forget them. With ``settle`` (an inbound file's
        outputs), the acknowledgement goes last, after ``settle`` has moved the input on: an
        acknowledgement in ``outbox/`` means the file is done (spec 3, steps 5 and 6); the
        outputs are forgotten when the file's receipt is closed, in one transaction with it
        (a crash before that publishes them again, which finds them in place)."""
        if settle is None:
            files.publish_all(outputs)
            self.store.clear_outputs(rid)
            faults.crashpoint("published")
        else:
            acks: list[files.Written] = []
            others: list[files.Written] = []
            for output in outputs:
                (acks if output[1].parent == self.paths.acks else others).append(output)
            files.publish_all(others)
            faults.crashpoint("published")
            settle()
            faults.crashpoint("archived")
            files.publish_all(acks)

    def _move_input(self, receipt: Receipt, status: str) -> None:
        """The input from ``var/processing/`` to the quarantine (rejected) or the archive; done
        already (a recovery after the move), nothing."""
        path = Path(receipt.processing_path)
        if path.exists():
            if status == "rejected":
                files.move(path, self.paths.quarantine, receipt.name)
            else:
                day = self.clock()[:10]
                files.move(path, self.paths.archive / receipt.channel / day, receipt.name)

    def _finalize(self, receipt: Receipt, status: str) -> None:
        """Recovery's end of a finished file: its input moved on if it was not yet, its
        receipt closed."""
        self._move_input(receipt, status)
        self.store.close_receipt(receipt.id)

    def give_up(self, receipt: Receipt, error: str) -> None:
        """Quarantine a file that kept failing for a reason other than its content."""
        with self.store.work_lock():
            self._give_up(receipt, error)

    def _give_up(self, receipt: Receipt, error: str, *, at_once: bool = False) -> None:
        now = self.clock()
        text = error if at_once else f"gave up after repeated failures: {error}"
        errors = [FileError("PROCESSING_FAILED", text)]
        ack = self._ack(receipt, "rejected", now, errors, Plan(), Totals(), None)
        self._commit(receipt, "rejected", Plan(), [ack], errors, Totals(), None)
        self.store.close_receipt(receipt.id)  # quarantined before the ack
        log.error("file.quarantined", file=receipt.name, sha256=receipt.sha256,
                  channel=receipt.channel, code="PROCESSING_FAILED", error=error)

    # --- recovery ------------------------------------------------------------------------------

    def recover(self, working: Collection[int] = ()) -> list[Receipt]:
        """Finish what a crash interrupted; return the claimed files to process.

        Takes only what nobody holds: claims whose owner is gone (lease expired, or a dead
        process on this host), and this process's own claims that it is not ``working`` on.
        """
        self.measure_clock()
        with self.store.work_lock():
            todo = []
            for held in self.store.held_receipts():
                receipt = self._take(held, working)
                if receipt is not None:
                    todo.append(receipt)
            self._publish_pending(0)  # a job's outputs (jobs run under the work lock too)
            todo += self._adopt_orphans()
        if todo:
            log.info("recovery.pending", count=len(todo))
        return sorted(todo, key=lambda r: r.id)

    def _take(self, held: Held, working: Collection[int]) -> Receipt | None:
        """Take over one open receipt if its owner is gone; the receipt to process, if any."""
        receipt = held.receipt
        if receipt.owner == self.owner:
            if receipt.id in working:
                return None
        elif not owner.gone(receipt.owner, held.lease_until, self.now(), self.node) or not (
            self.store.take_over(receipt.id, receipt.owner, self.owner, self.lease_until())
        ):
            return None
        else:
            log.info("recovery.taken_over", file=receipt.name, sha256=receipt.sha256 or None,
                     channel=receipt.channel, status=receipt.status, owner=receipt.owner)
        settle = functools.partial(self._move_input, receipt, receipt.status)
        if not self._publish_pending(receipt.id, settle):
            return None
        if receipt.status == CLAIMING:
            return self._finish_claim(held)
        if receipt.status == "claimed":
            self._remove_temps(receipt.sha256[:12])
            return self.store.receipt(receipt.id)
        self._finalize(receipt, receipt.status)
        return None

    def _publish_pending(self, rid: int, settle: Callable[[], None] | None = None) -> bool:
        pending = [(p.temp, p.final, p.ino, p.size) for p in self.store.pending_outputs(rid)]
        if not pending:
            return True
        try:
            self._publish(rid, pending, settle)
        except OutputLost as exc:
            log.error("recovery.output_lost", count=len(pending), error=str(exc))
            return False
        return True

    def _finish_claim(self, held: Held) -> Receipt | None:
        """A claim interrupted between its receipt and its ``claimed`` mark: did the move
        happen? If the file is in ``var/processing/`` (and not still, unmoved, in the inbox),
        it is ours; otherwise the receipt is dropped and the inbox file taken again later."""
        receipt = held.receipt
        target = Path(receipt.processing_path)
        files.discard(files.temp_path_for(target, "claim"))
        source = _path_of(held.source_path) if held.source_path else None
        hidden = _hidden(Path(source), receipt.id) if source else None
        # lstat: a link a partner swapped in at the last moment is never followed
        moved = _is_regular(target) and not _unmoved(source, held.source_ino, target)
        if not moved:
            files.discard(target)
            if source and hidden is not None and hidden.exists():
                os.rename(hidden, source)  # a copy across file systems, unfinished
            self.store.drop_claim(receipt.id)
            return None
        if hidden is not None:
            files.discard(hidden)
        return self.store.claimed(receipt.id, files.sha256_of(target))

    def _adopt_orphans(self) -> list[Receipt]:
        """Files in ``var/processing/`` with no receipt (left by version 0.1): claim them.

        The folder is listed before the open receipts are read: another process's claim
        records its receipt before its file arrives, and closes it only after the file has
        left, so a file listed here is either an open receipt's, gone by now, or an orphan.
        (Read the other way round, a claim made in between looked like an orphan.)"""
        listed = []
        for channel in (*CHANNELS, UNKNOWN_CHANNEL):
            folder = self.paths.processing / channel
            if folder.is_dir():
                listed += [(path, channel) for path in folder.iterdir()
                           if not path.name.startswith(".") and path.is_file()]
        if not listed:
            return []
        known = {h.receipt.processing_path for h in self.store.held_receipts()}
        return [self.claim(path, channel) for path, channel in listed
                if str(path) not in known and path.exists()]

    def _remove_temps(self, tag: str) -> None:
        if self.paths.outbox.is_dir():
            for temp in self.paths.outbox.rglob(f".*.{tag}.tmp"):
                temp.unlink(missing_ok=True)


def _open_inbound(source: Path, name: str, *, follow: bool) -> int:
    """Open an inbound file for reading; only a regular file (never a link, from an inbox)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(source, flags)
    except PermissionError as exc:
        raise Unreadable(f"{name} cannot be read by the gateway's user; it is left where it is"
                         ) from exc
    except FileNotFoundError as exc:
        raise Vanished(f"{name} was taken by another process") from exc
    except OSError as exc:
        raise TransientError(f"{name} is not a regular file; it is left where it is") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise TransientError(f"{name} is not a regular file; it is left where it is")
    return fd


def _hidden(source: Path, rid: int) -> Path:
    """Where a claim across file systems parks the inbound file while copying it."""
    return source.with_name(f".{rid}.claim")


def _copy_claim(fd: int, target: Path) -> None:
    """Copy an open file into ``target`` atomically (``process`` leaves the original)."""
    temp = files.temp_path_for(target, "claim")
    os.lseek(fd, 0, os.SEEK_SET)
    with os.fdopen(os.dup(fd), "rb") as src:
        files.write_temp(temp, partial(_copy_stream, src))
    try:
        os.rename(temp, target)
    except OSError as exc:
        files.discard(temp)
        raise StorageUnavailable(f"cannot claim {target.name}: {exc.strerror}") from exc


def _copy_stream(src: BinaryIO, dst: BinaryIO) -> None:
    while chunk := src.read(1024 * 1024):
        dst.write(chunk)


# A source path whose bytes are not UTF-8 (which the store's text cannot hold) is stored as
# this prefix and its bytes in hex; a source path is absolute, so no other starts so.
_HEX_PATH = "hex:"


def _stored_path(path: Path) -> str:
    """``path`` as the store's text can hold it, to be found again by :func:`_path_of`."""
    raw = os.fsencode(path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _HEX_PATH + raw.hex()


def _path_of(stored: str) -> str:
    """The path :func:`_stored_path` stored."""
    if stored.startswith(_HEX_PATH):
        return os.fsdecode(bytes.fromhex(stored.removeprefix(_HEX_PATH)))
    return stored


def _is_regular(path: Path) -> bool:
    """Whether ``path`` is a regular file itself (not a link to one)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _unmoved(source_path: str | None, source_ino: int | None, target: Path) -> bool:
    """Whether the file a claim was taking is still in the inbox, unmoved (so ``target`` is a
    partial copy, not the file)."""
    if source_path is None or source_ino is None:
        return False
    try:
        return os.stat(source_path, follow_symlinks=False).st_ino == source_ino != (
            target.stat().st_ino
        )
    except OSError:
        return False


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, GatewayError) else f"internal error: {type(exc).__name__}"


def _check_written(written: Iterable[files.Written]) -> None:
    """A temporary output gone before the commit (removed by something else) fails it."""
    gone = [t for t, _f, i, n in written if not files.still_written(t, i, n)]
    if gone:
        raise TransientError(
            f"{len(gone)} output(s) vanished before the commit, e.g. {gone[0].name}: the file "
            "is processed again"
        )


class _Invalid(Exception):
    """A streamed file proved invalid on the way (:meth:`Pipeline._stream`)."""


def _streamed(path: Path, kind: DocumentKind, limit: int) -> Iterator[Any]:
    """The records of a file as they are read and validated; :class:`_Invalid` if it is not a
    valid file (the careful path, :func:`parse`, says why, and takes the records whose routing
    codes are not plain)."""
    try:
        yield from reading.streamed(path, kind, limit)
    except (RejectedFile, ValueError, KeyError, TypeError) as exc:
        raise _Invalid(str(exc)) from exc
