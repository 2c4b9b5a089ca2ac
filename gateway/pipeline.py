"""One inbound file's life (spec section 3): claim, ledger, duplicate, parse & validate, rules,
commit, publish, archive or quarantine, acknowledge — and recovery after a crash.

The commit protocol, which makes a crash at any point leave either the old state or the new:

1. every output (the acknowledgement included) is written under a temporary dot-name next to its
   final name and fsynced;
2. one store transaction applies the state changes, marks the file's fate and lists the outputs
   still to publish;
3. the outputs are renamed into place (then forgotten by the store);
4. the input leaves ``var/processing/`` for the archive or the quarantine.

A crash before 2 leaves the file claimed: on restart it is processed again from the same state
and gives the same outputs. A crash after 2 is finished by :meth:`Pipeline.recover`, which renames
what 2 listed and moves the input on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from gateway import faults, logs
from gateway.config import CHANNELS, UNKNOWN_CHANNEL, Settings
from gateway.documents import BY_ROOT, DocumentKind
from gateway.errors import FileError, RejectedFile, TransientError
from gateway.flows import Context, Flow, Output, Plan
from gateway.models import Totals
from gateway.store.base import Receipt, SqlStore
from gateway.transport import files
from gateway.xml import writers
from gateway.xml.schemas import schema
from gateway.xml.secure import check_well_formed, iter_records, read_root, schema_errors

log = logs.get("gateway.pipeline")

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


def utc_now() -> str:
    """The current time as an ``xs:dateTime`` with zone."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class Parsed:
    """A validated inbound document and its kind."""

    kind: DocumentKind
    document: Any


class Pipeline:
    """Takes claimed files through their life; shared by the daemon and the one-shot commands."""

    def __init__(
        self,
        settings: Settings,
        store: SqlStore,
        flows: dict[str, Flow],
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.settings = settings
        self.store = store
        self.flows = flows
        self.clock = clock
        self.paths = settings.paths

    # --- claim ---------------------------------------------------------------------------------

    def claim(self, source: Path, channel: str, *, copy: bool = False) -> Receipt:
        """Move (or copy) a complete inbound file into ``var/processing/`` and record it."""
        name = safe_name(source.name)
        if not copy and (source.is_symlink() or not source.is_file()):
            # From an inbox, only regular files are taken: a link could point anywhere.
            raise TransientError(f"{name} is not a regular file; it is left where it is")
        folder = self.paths.processing / channel
        target = folder / name
        n = 1
        while target.exists():
            target = folder / f"{n}-{name}"
            n += 1
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if copy:
                temp = files.temp_path_for(target, "claim")
                files.write_temp(temp, lambda fh: _copy_into(source, fh))
                temp.rename(target)
            else:
                source.rename(target)
            files.fsync_dir(folder)
        except OSError as exc:
            raise TransientError(f"cannot claim {name}: {exc.strerror or exc}") from exc
        faults.crashpoint("claimed")
        receipt = self.store.claim(name, channel, files.sha256_of(target), target, self.clock())
        log.info("file.claimed", file=name, sha256=receipt.sha256, channel=channel)
        return receipt

    # --- process -------------------------------------------------------------------------------

    def process(self, receipt: Receipt, as_of: date) -> str:
        """Take one claimed file to its end; returns its status. Raises TransientError."""
        started = time.monotonic()
        path = Path(receipt.processing_path)
        now = self.clock()
        ctx = Context(self.settings, self.store, as_of, now, receipt)
        earlier = self.store.processed_file(receipt.sha256)
        errors: list[FileError] = []
        duplicate_of = None
        if earlier is not None:
            status, plan, duplicate_of = "duplicate", Plan(), earlier
            errors = [FileError("DUPLICATE_FILE", f"same content as the earlier file {earlier}")]
        else:
            try:
                parsed = self.parse(path, receipt.channel)
                plan = self.flows[parsed.kind.name](parsed.document, ctx)
                status = "processed"
            except RejectedFile as rejected:
                status, plan, errors = "rejected", Plan(), rejected.errors
        totals = Totals.of(plan.outcomes)
        header = writers.AckHeader(
            receipt.name, receipt.sha256, receipt.claimed_at, receipt.channel, status, now,
            duplicate_of,
        )
        ack = Output(
            self.paths.acks / receipt.ack_name,
            partial(writers.write_ack, header=header, errors=errors, outcomes=plan.outcomes,
                    totals=totals),
        )
        outputs = [*plan.outputs, ack]
        self._commit(receipt, status, plan, outputs, errors, totals, duplicate_of)
        self._finalize(receipt.id, path, status, receipt.channel)
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
            outputs=len(outputs),
            duration_ms=round((time.monotonic() - started) * 1000),
        )
        return status

    def parse(self, path: Path, channel: str | None) -> Parsed:
        """Hardened parse and XSD validation of a whole file; raises RejectedFile."""
        return parse(path, channel, self.settings.intake.max_bytes)

    def _commit(
        self,
        receipt: Receipt,
        status: str,
        plan: Plan,
        outputs: list[Output],
        errors: list[FileError],
        totals: Totals,
        duplicate_of: str | None,
    ) -> None:
        def finish() -> None:
            self.store.finish(
                receipt.id,
                status,
                at=self.clock(),
                code=errors[0].code if errors else None,
                duplicate_of=duplicate_of,
                totals={"received": totals.received, "rejected": totals.rejected},
            )

        self.commit(receipt.id, receipt.sha256[:12], plan, outputs, finish)

    def commit(
        self, rid: int, tag: str, plan: Plan, outputs: list[Output], finish: Callable[[], None]
    ) -> None:
        """Write outputs under temporary names, commit state in one transaction, then publish.

        ``rid`` is the receipt whose outputs these are (0 for a scheduled job); ``tag`` makes the
        temporary names unique to this piece of work, so that a retry overwrites them.
        """
        written: list[tuple[Path, Path]] = []
        try:
            for output in outputs:
                temp = files.temp_path_for(output.path, tag)
                files.write_temp(temp, output.write)
                written.append((temp, output.path))
            faults.crashpoint("outputs-written")
            with self.store.transaction():
                plan.apply(self.store)
                finish()
                self.store.add_pending_outputs(rid, written)
        except BaseException:
            for temp, _final in written:
                files.discard(temp)
            raise
        faults.crashpoint("committed")
        self._publish(rid, written)

    def _publish(self, rid: int, outputs: Iterable[tuple[Path, Path]]) -> None:
        files.publish_all(outputs)
        self.store.clear_outputs(rid)
        faults.crashpoint("published")

    def _finalize(self, rid: int, path: Path, status: str, channel: str) -> None:
        if path.exists():
            if status == "rejected":
                files.move(path, self.paths.quarantine)
            else:
                day = self.clock()[:10]
                files.move(path, self.paths.archive / channel / day)
        self.store.close_receipt(rid)

    def give_up(self, receipt: Receipt, error: str) -> None:
        """Quarantine a file that kept failing for a reason other than its content."""
        now = self.clock()
        errors = [FileError("PROCESSING_FAILED", f"gave up after repeated failures: {error}")]
        header = writers.AckHeader(
            receipt.name, receipt.sha256, receipt.claimed_at, receipt.channel, "rejected", now
        )
        ack = Output(
            self.paths.acks / receipt.ack_name,
            partial(writers.write_ack, header=header, errors=errors, outcomes=[], totals=Totals()),
        )
        self._commit(receipt, "rejected", Plan(), [ack], errors, Totals(), None)
        self._finalize(receipt.id, Path(receipt.processing_path), "rejected", receipt.channel)
        log.error("file.quarantined", file=receipt.name, sha256=receipt.sha256,
                  channel=receipt.channel, code="PROCESSING_FAILED", error=error)

    # --- recovery ------------------------------------------------------------------------------

    def recover(self) -> list[Receipt]:
        """Finish what a crash interrupted; return the claimed files still to process."""
        pending_by_receipt: dict[int, list[tuple[Path, Path]]] = {}
        for rid, temp, final in self.store.pending_outputs():
            pending_by_receipt.setdefault(rid, []).append((temp, final))
        for rid, outputs in pending_by_receipt.items():
            outputs.sort(key=lambda pair: pair[1].parent == self.paths.acks)
            self._publish(rid, outputs)
        todo = []
        for path in self._processing_files():
            receipt = self.store.open_receipt(path)
            if receipt is None:
                receipt = self.store.claim(
                    path.name, path.parent.name, files.sha256_of(path), path, self.clock()
                )
            if receipt.status == "claimed":
                self._remove_temps(receipt.sha256[:12])
                todo.append(receipt)
            else:
                self._finalize(receipt.id, path, receipt.status, receipt.channel)
        for receipt in self.store.open_receipts():
            if receipt.status != "claimed" and not Path(receipt.processing_path).exists():
                self.store.close_receipt(receipt.id)
        if todo:
            log.info("recovery.pending", count=len(todo))
        return sorted(todo, key=lambda r: r.id)

    def _processing_files(self) -> list[Path]:
        found = []
        for channel in (*CHANNELS, UNKNOWN_CHANNEL):
            folder = self.paths.processing / channel
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if path.name.startswith("."):
                    path.unlink(missing_ok=True)  # an interrupted copy-claim
                elif path.is_file():
                    found.append(path)
        return found

    def _remove_temps(self, tag: str) -> None:
        if self.paths.outbox.is_dir():
            for temp in self.paths.outbox.rglob(f".*.{tag}.tmp"):
                temp.unlink(missing_ok=True)


def parse(path: Path, channel: str | None, limit: int) -> Parsed:
    """Hardened parse and XSD validation of a whole file; raises RejectedFile.

    ``channel`` is the inbox the file came from (None: any); ``limit`` bounds the bytes read.
    """
    root = read_root(path, limit)
    kind = BY_ROOT.get((root.namespace, root.name))
    if kind is None:
        check_well_formed(path, limit)
        raise RejectedFile.one(
            "UNKNOWN_DOCUMENT",
            f"root element {root.name} in namespace {root.namespace or '(none)'} is not a "
            "document of this interface",
            1,
        )
    if channel is not None and kind.channel != channel:
        raise RejectedFile.one(
            "WRONG_CHANNEL",
            f"a {kind.name} document belongs in inbox/{kind.channel.value}/, not "
            f"inbox/{channel}/",
        )
    xsd = schema(kind.xsd)
    records = []
    try:
        for element in iter_records(path, xsd, limit):
            records.append(kind.read_record(element))
    except (ValueError, KeyError, TypeError) as exc:
        raise schema_errors(path, xsd, limit) from exc
    return Parsed(kind, kind.build(root.attributes, tuple(records)))


def _copy_into(source: Path, fh: BinaryIO) -> None:
    with source.open("rb") as src:
        while chunk := src.read(1024 * 1024):
            fh.write(chunk)
