"""A file's life through the pipeline: outputs, acknowledgement, archive, duplicates, refusals."""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import stat
import threading
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import BinaryIO

import pytest
from lxml import etree
from structlog.testing import capture_logs

from gateway.cli import FLOWS
from gateway.errors import TransientError, Vanished
from gateway.pipeline import Pipeline
from gateway.store.base import Held
from tests import builders as b
from tests.conftest import Gateway
from tests.xsdcheck import assert_all_valid, assert_valid

AS_OF = date(2026, 11, 2)
ACK = "{urn:dit-gateway:ack:1}"


def ack_of(gw: Gateway, stem: str) -> etree._Element:
    """The acknowledgement of an input, checked against its XSD."""
    return assert_valid(gw.settings.paths.acks / f"{stem}.ack.xml")


def totals(ack: etree._Element) -> dict[str, int]:
    """The acknowledgement's totals as numbers."""
    node = ack.find(f"{ACK}Totals")
    assert node is not None
    return {k: int(v) for k, v in node.attrib.items()}


def test_position_extract_gives_extract_notifications_and_ack(gateway: Gateway) -> None:
    """A valid position extract yields a TIS extract, notifications and an ack, all valid."""
    records = [b.position(1), b.position(2, dpn="LDN/R1K/2"), b.position(3, dpn=None)]
    text = b.positions("RGT", records)
    assert gateway.process("esr", "pos1.xml", text, AS_OF) == "processed"
    outbox = gateway.settings.paths.outbox
    names = sorted(p.relative_to(outbox).as_posix() for p in gateway.outbox())
    assert "tis/EOE/positions-RGT-2026-11-02.xml" in names
    assert "tis/LDN/positions-RGT-2026-11-02.xml" in names
    assert "reports/acks/pos1.ack.xml" in names
    notes = [n for n in names if n.startswith("reports/RGT/notifications-pos1-")]
    assert [n.rsplit(".", 1)[1] for n in notes] == ["csv", "xml"]
    assert assert_all_valid(gateway.settings.paths.outbox) == 4
    ack = ack_of(gateway, "pos1")
    assert ack.get("status") == "processed"
    t = totals(ack)
    assert t["received"] == 3
    assert t["received"] == sum(v for k, v in t.items() if k != "received")
    assert len(ack.findall(f"{ACK}Outcome")) == 3
    assert list((gateway.settings.paths.processing / "esr").iterdir()) == []
    assert len(list(gateway.settings.paths.archive.rglob("pos1.xml"))) == 1


def test_same_bytes_twice_is_a_duplicate_with_no_new_output(gateway: Gateway) -> None:
    """The same content dropped again is acknowledged as a duplicate naming the first file."""
    text = b.positions("RGT", [b.position(1)])
    gateway.process("esr", "first.xml", text, AS_OF)
    before = {p: p.stat().st_mtime_ns for p in gateway.outbox()}
    assert gateway.process("esr", "again.xml", text, AS_OF) == "duplicate"
    after = {p: p.stat().st_mtime_ns for p in gateway.outbox()}
    new = sorted(set(after) - set(before))
    assert [p.name for p in new] == ["again.ack.xml"]
    assert all(after[p] == before[p] for p in before)
    ack = ack_of(gateway, "again")
    assert ack.get("status") == "duplicate"
    assert ack.get("duplicateOf") == "first.xml"
    error = ack.find(f"{ACK}Error")
    assert error is not None
    assert error.get("code") == "DUPLICATE_FILE"


def test_same_name_twice_gets_a_second_ack_name(gateway: Gateway) -> None:
    """A second file with the same name keeps the first acknowledgement intact."""
    gateway.process("esr", "daily.xml", b.positions("RGT", [b.position(1)]), AS_OF)
    gateway.process("esr", "daily.xml", b.positions("RGT", [b.position(2)]), AS_OF)
    acks = sorted(p.name for p in gateway.settings.paths.acks.iterdir())
    assert acks[0] == "daily.2.ack.xml"
    assert acks[1] == "daily.ack.xml"


def test_wrong_channel_is_quarantined(gateway: Gateway) -> None:
    """A position extract dropped into inbox/tis is refused with WRONG_CHANNEL."""
    assert gateway.process("tis", "pos.xml", b.positions("RGT", [b.position(1)]), AS_OF) == (
        "rejected"
    )
    ack = ack_of(gateway, "pos")
    assert ack.get("status") == "rejected"
    assert ack.find(f"{ACK}Error").get("code") == "WRONG_CHANNEL"  # type: ignore[union-attr]
    assert (gateway.settings.paths.quarantine / "pos.xml").exists()
    assert not (gateway.settings.paths.outbox / "tis").exists()


def test_unknown_document_is_quarantined(gateway: Gateway) -> None:
    """A well-formed document of another namespace is refused with UNKNOWN_DOCUMENT."""
    gateway.process("esr", "odd.xml", '<Foo xmlns="urn:other"/>', AS_OF)
    assert ack_of(gateway, "odd").find(f"{ACK}Error").get("code") == "UNKNOWN_DOCUMENT"  # type: ignore[union-attr]


def test_schema_errors_are_listed_with_line_and_column(gateway: Gateway) -> None:
    """Every schema error is listed with its line and column, and the values are not echoed."""
    text = b.positions(
        "RGT",
        [
            b.position(1),
            b.position(2, status="Sleeping"),
            b.position(3, ptype="Triple"),
        ],
    )
    gateway.process("esr", "bad.xml", text, AS_OF)
    errors = ack_of(gateway, "bad").findall(f"{ACK}Error")
    assert [e.get("code") for e in errors] == ["SCHEMA_INVALID", "SCHEMA_INVALID"]
    assert [int(e.get("line", "0")) for e in errors] == [4, 5]
    assert all(int(e.get("column", "0")) > 1 for e in errors)
    text_all = " ".join(e.text or "" for e in errors)
    assert "Sleeping" not in text_all
    assert "Triple" not in text_all
    assert "HiringStatus" in text_all


def test_not_well_formed_reports_line(gateway: Gateway) -> None:
    """A broken document is NOT_WELL_FORMED with the line of the break."""
    gateway.process("esr", "broken.xml", "<a>\n<b>\n</a>", AS_OF)
    error = ack_of(gateway, "broken").find(f"{ACK}Error")
    assert error is not None
    assert error.get("code") == "NOT_WELL_FORMED"
    assert int(error.get("line", "0")) == 3


def test_gzip_input_is_read(gateway: Gateway) -> None:
    """A gzip-compressed extract is decompressed (within the size bound) and processed."""
    data = gzip.compress(b.positions("RGT", [b.position(1)]).encode())
    assert gateway.process("esr", "pos.xml.gz", data, AS_OF) == "processed"
    assert ack_of(gateway, "pos").get("status") == "processed"


def test_recovery_reprocesses_a_claimed_file(gateway: Gateway) -> None:
    """A file left claimed (crash before commit) is processed on recovery, once."""
    path = gateway.drop("esr", "pos.xml", b.positions("RGT", [b.position(1)]))
    gateway.pipeline.claim(path, "esr")
    todo = gateway.pipeline.recover()
    assert len(todo) == 1
    assert gateway.pipeline.process(todo[0], AS_OF) == "processed"
    assert gateway.pipeline.recover() == []
    assert [p.name for p in gateway.settings.paths.acks.iterdir()] == ["pos.ack.xml"]


def test_recovery_claims_an_unrecorded_file(gateway: Gateway) -> None:
    """A file moved into processing whose claim was never recorded is claimed on recovery."""
    folder = gateway.settings.paths.processing / "esr"
    folder.mkdir(parents=True)
    (folder / "lost.xml").write_text(b.positions("RGT", [b.position(1)]))
    todo = gateway.pipeline.recover()
    assert [r.name for r in todo] == ["lost.xml"]


def test_a_claim_made_while_recovery_looks_for_orphans_is_left_to_its_owner(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process claims a file just as recovery reads the open receipts to tell orphans
    from claims (seen with two nodes under load: one file processed by both): the claim is
    left to its owner; only the true orphan (no receipt) is taken."""
    folder = gateway.settings.paths.processing / "esr"
    folder.mkdir(parents=True)
    (folder / "lost.xml").write_text(b.positions("RGT", [b.position(1)]))
    source = gateway.drop("esr", "pos.xml", b.positions("RGT", [b.position(2)]))
    other = Pipeline(gateway.settings, gateway.store, FLOWS)
    other.owner = "other-node:1:1"  # alive for as long as its lease: another node
    read = gateway.store.held_receipts
    calls: list[int] = []
    claimed = []

    def held_receipts() -> list[Held]:
        held = read()
        calls.append(len(held))
        if len(calls) == 2:  # the read that tells orphans from claims: the claim right after
            claimed.append(other.claim(source, "esr"))
        return held

    monkeypatch.setattr(gateway.store, "held_receipts", held_receipts)
    todo = gateway.pipeline.recover()
    assert [r.name for r in todo] == ["lost.xml"]
    assert len(claimed) == 1
    theirs = gateway.store.receipt(claimed[0].id)
    assert theirs is not None
    assert theirs.owner == other.owner
    assert Path(theirs.processing_path).is_file()


def test_process_leaves_nothing_temporary(gateway: Gateway, tmp_path: Path) -> None:
    """After processing, no temporary file is left anywhere under outbox or var."""
    gateway.process("esr", "pos.xml", b.positions("RGT", [b.position(1)]), AS_OF)
    leftovers = [p for p in tmp_path.rglob(".*") if p.is_file()]
    assert leftovers == []


def test_a_reader_bug_on_a_valid_file_is_a_bug_not_a_rejection(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that fails on a valid file (a fault no real input makes, hence the patch) raises
    its error for the daemon to retry as an internal error; the file is not quarantined as
    SCHEMA_INVALID. Invalid content is still a rejection."""
    from gateway import documents  # noqa: PLC0415

    key = ("urn:dit-gateway:esr:positions:1", "PositionExtract")

    def broken(_element: object) -> object:
        raise KeyError("EsrLastUpdateDate")

    monkeypatch.setitem(documents.BY_ROOT, key, replace(documents.BY_ROOT[key], read_record=broken))
    path = gateway.drop("esr", "pos.xml", b.positions("RGT", [b.position(1)]))
    receipt = gateway.pipeline.claim(path, "esr")
    with pytest.raises(KeyError):
        gateway.pipeline.process(receipt, AS_OF)
    assert not ack_exists(gateway, "pos")
    assert gateway.store.receipt(receipt.id).status == "claimed"
    monkeypatch.undo()
    assert gateway.pipeline.process(receipt, AS_OF) == "processed"


def ack_exists(gateway: Gateway, stem: str) -> bool:
    """Whether the acknowledgement of ``stem`` was published."""
    return (gateway.settings.paths.acks / f"{stem}.ack.xml").exists()


def test_an_output_removed_before_the_commit_leads_to_reprocessing_not_a_hole(
    gateway: Gateway,
) -> None:
    """A temporary output deleted by something else between its write and the commit fails the
    commit (nothing committed); the file is processed again and every output appears."""
    from gateway.flows import Output, Plan  # noqa: PLC0415

    first = gateway.settings.paths.outbox / "a.txt"
    second = gateway.settings.paths.outbox / "b.txt"

    def write_first(fh: BinaryIO) -> None:
        fh.write(b"a")

    def write_second_and_delete_first(fh: BinaryIO) -> None:
        for temp in gateway.settings.paths.outbox.glob(".a.txt.*.tmp"):
            temp.unlink()
        fh.write(b"b")

    outputs = [Output(first, write_first), Output(second, write_second_and_delete_first)]
    finished: list[bool] = []
    with pytest.raises(TransientError, match="vanished before the commit"):
        gateway.pipeline.commit(0, "t", Plan(), outputs, lambda: finished.append(True))
    assert not first.exists()
    assert not second.exists()
    assert gateway.store.pending_outputs() == []
    gateway.pipeline.commit(0, "t", Plan(), [Output(first, write_first),
                                              Output(second, write_first)], lambda: None)
    assert first.read_bytes() == b"a"
    assert second.read_bytes() == b"a"


def test_an_output_that_cannot_be_made_durable_commits_nothing(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An output whose fsync fails (the disk's EIO: a fault not made for real here, hence the
    patch) fails the commit although the fsyncs run in threads beside the store's writes:
    nothing is committed, published or left behind, and the file processed again gives every
    output once."""
    path = gateway.drop("esr", "pos.xml", b.positions("RGT", [b.position(1)]))
    receipt = gateway.pipeline.claim(path, "esr")
    real = os.fsync
    failed: list[int] = []

    def failing(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            failed.append(fd)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd)

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(TransientError, match="Input/output error"):
        gateway.pipeline.process(receipt, AS_OF)
    monkeypatch.undo()
    assert len(failed) == 4  # the extract, two notifications, the acknowledgement
    assert gateway.store.receipt(receipt.id).status == "claimed"
    assert gateway.store.pending_outputs() == []
    assert gateway.outbox() == []
    assert [p for p in gateway.settings.paths.outbox.rglob(".*") if p.is_file()] == []
    assert gateway.pipeline.process(receipt, AS_OF) == "processed"
    assert len([p for p in gateway.outbox() if p.is_file()]) == 4


def test_a_committed_output_whose_temporary_file_vanished_is_reported_not_skipped(
    gateway: Gateway, tmp_path: Path
) -> None:
    """Publishing never skips silently: a committed output whose temporary file is gone (and
    whose final file is not the one written) is logged as lost and stays listed for status."""
    temp = gateway.settings.paths.outbox / ".x.xml.t.tmp"
    final = gateway.settings.paths.outbox / "x.xml"
    gateway.store.add_pending_outputs(0, [(temp, final, 12345, 10)])
    with capture_logs() as captured:
        gateway.pipeline.recover()
    assert [e["event"] for e in captured if e["log_level"] == "error"] == [
        "recovery.output_lost"
    ]
    assert len(gateway.store.pending_outputs()) == 1
    assert not final.exists()


@pytest.mark.parametrize("kind", ["positions", "placements"])
def test_a_files_root_element_is_read_once(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Whether the file is streamed (placements) or parsed whole (positions), its root is read
    once and handed on; a file whose root cannot be read is still refused with the reason."""
    import gateway.pipeline as pipeline_module  # noqa: PLC0415
    import gateway.reading as reading_module  # noqa: PLC0415 - parse() lives there

    reads: list[Path] = []
    real = pipeline_module.read_root

    def counted(path: Path, limit: int) -> object:
        reads.append(path)
        return real(path, limit)

    monkeypatch.setattr(pipeline_module, "read_root", counted)
    monkeypatch.setattr(reading_module, "read_root", counted)
    if kind == "positions":
        channel, text = "esr", b.positions("RGT", [b.position(1)])
    else:
        channel, text = "tis", b.placements([b.placement("P1")])
    assert gateway.process(channel, f"{kind}.xml", text, AS_OF) == "processed"
    assert len(reads) == 1
    reads.clear()
    assert gateway.process(channel, "broken.xml", "<?xml version='1.0'?><", AS_OF) == "rejected"
    assert len(reads) == 2  # once to try, once more by parse to say why
    assert ack_of(gateway, "broken").find(f"{ACK}Error").get("code") == "NOT_WELL_FORMED"


def test_a_file_swapped_for_a_link_while_it_is_claimed_is_never_followed(
    gateway: Gateway,
) -> None:
    """A partner swapping its settled file in the inbox, as fast as it can, for a symbolic
    link to a file of the gateway's and back: every claim that succeeds holds in
    ``var/processing/`` the very file it opened and hashed (a regular file whose bytes hash to
    the receipt's SHA-256), never the link; a claim that moved the link instead gives it back
    to the inbox and is off (:class:`Vanished`), to be looked at afresh. Before, the link was
    moved into ``var/processing/`` and followed when the file was processed."""
    inbox = gateway.settings.paths.inbox / "esr"
    inbox.mkdir(parents=True)
    precious = gateway.root / "precious"
    precious.write_bytes(b"the gateway's own")
    real = gateway.root / "real.xml"  # the partner's file, linked into the inbox again and again
    real.write_text(b.positions("RGT", [b.position(1)]))
    source = inbox / "pos.xml"
    stop = threading.Event()

    def swap() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            os.link(real, inbox / f".f{n}.tmp")
            os.rename(inbox / f".f{n}.tmp", source)
            os.symlink(precious, inbox / f".l{n}.tmp")
            os.rename(inbox / f".l{n}.tmp", source)

    swapper = threading.Thread(target=swap)
    swapper.start()
    claimed = vanished = 0
    deadline = time.monotonic() + 20
    try:
        while (claimed < 60 or vanished < 3) and time.monotonic() < deadline:
            try:
                receipt = gateway.pipeline.claim(source, "esr")
            except Vanished:
                vanished += 1
                continue
            except TransientError:  # opened while the link was there: refused at once
                continue
            claimed += 1
            moved = Path(receipt.processing_path)
            assert not moved.is_symlink()
            assert hashlib.sha256(moved.read_bytes()).hexdigest() == receipt.sha256
    finally:
        stop.set()
        swapper.join()
    assert claimed >= 60
    assert vanished >= 3, "the swap never came between a claim's open and its rename"
    assert precious.read_bytes() == b"the gateway's own"
    links = [p for p in gateway.settings.paths.processing.rglob("*") if p.is_symlink()]
    assert links == []
