"""The Medical Rotation grid (spec 10): per VPD, one row per post on the interface with its
current and next trainee — name, GMC number, projected start and end, WTE — as an ``.xlsx`` an
MSO can open (header row, frozen panes, column widths, dates as dates) and a ``.csv``.

Written by the daily job to ``outbox/reports/<VPD>/rotation-grid-<date>.{xlsx,csv}`` for every
VPD whose grid changed since the last one written (a fingerprint of its rows in the store). It
carries names by nature; nothing of it reaches a log or the status page.

*Current*: a placement sent to the VPD (not withdrawn) running on the day; *next*: the earliest
that starts after it. A post shared by several trainees at once shows them all in one cell,
separated by ``; `` (one row per post, as the spec asks).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, time
from functools import partial
from typing import Any, BinaryIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from gateway.flows import Context, Output, Plan, Sink
from gateway.models import Position, SentApplicant
from gateway.rules.positions import on_interface
from gateway.store.interfaces import Store
from gateway.store.operations import OperationsLedger

HEADER = (
    "Position number", "DPN", "Post", "Current trainee", "Current GMC", "Current start",
    "Current end", "Current WTE", "Next trainee", "Next GMC", "Next start", "Next end",
    "Next WTE",
)
WIDTHS = (16, 26, 30, 28, 12, 12, 12, 10, 28, 12, 12, 12, 10)
Row = tuple[Any, ...]


def rows_for(positions: list[Position], sent: list[SentApplicant], as_of: date) -> list[Row]:
    """The grid's rows: posts on the interface (by position number), current and next."""
    by_post: dict[str, list[SentApplicant]] = defaultdict(list)
    for applicant in sent:
        by_post[applicant.position_number].append(applicant)
    rows = []
    for position in sorted(positions, key=lambda p: (p.position_number, p.esr_position_id)):
        if not on_interface(position, as_of):
            continue
        placed = sorted(by_post.get(position.position_number, ()),
                        key=lambda a: (a.placement.start, a.placement_id))
        current = [a for a in placed if a.placement.start <= as_of <= a.placement.end]
        later = [a for a in placed if a.placement.start > as_of]
        upcoming = [a for a in later if a.placement.start == later[0].placement.start]
        rows.append((position.position_number, position.dpn or "", position.position_name,
                     *_cells(current), *_cells(upcoming)))
    return rows


def _cells(placed: list[SentApplicant]) -> Row:
    """Name, GMC number, start, end, WTE of one or more trainees (``; `` between several)."""
    if not placed:
        return ("", "", None, None, "")
    ps = [a.placement for a in placed]
    return ("; ".join(f"{p.trainee.forenames} {p.trainee.surname}" for p in ps),
            "; ".join(p.trainee.gmc_number for p in ps), min(p.start for p in ps),
            max(p.end for p in ps), "; ".join(p.wte for p in ps))


def fingerprint(rows: list[Row]) -> str:
    """What identifies a grid's content."""
    return hashlib.sha256(json.dumps(rows, default=str).encode()).hexdigest()


def write_xlsx(fh: BinaryIO, vpd: str, rows: list[Row], as_of: date) -> None:
    """The workbook: a header row in bold, frozen below it, widths set, dates as dates.
    Written in openpyxl's streaming (write-only) mode: a national grid in a fraction of the
    time and memory of a workbook built cell by cell."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(f"{vpd} {as_of.isoformat()}")
    for column, width in enumerate(WIDTHS, start=1):
        sheet.column_dimensions[get_column_letter(column)].width = width
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header = []
    for title in HEADER:
        cell = WriteOnlyCell(sheet, value=title)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    for row in rows:
        cells: list[Any] = []
        for value in row:
            if isinstance(value, date):
                cell = WriteOnlyCell(sheet, value=datetime.combine(value, time()))
                cell.number_format = "yyyy-mm-dd"
                cells.append(cell)
            else:
                cells.append(value)
        sheet.append(cells)
    book.save(fh)


def write_csv(fh: BinaryIO, rows: list[Row]) -> None:
    """The same rows as CSV (UTF-8, dates as YYYY-MM-DD)."""
    text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
    writer = csv.writer(text)
    writer.writerow(HEADER)
    for row in rows:
        writer.writerow(["" if v is None else v.isoformat() if isinstance(v, date) else v
                         for v in row])
    text.flush()
    text.detach()


def _changed(ctx: Context) -> Iterator[tuple[str, list[Row], str]]:
    """(vpd, rows, fingerprint) of each VPD whose grid changed since the last one written, one
    VPD's rows at a time."""
    ledger = OperationsLedger(ctx.store)
    for vpd in ctx.store.vpds():
        sent = ledger.applicants_of(vpd)
        rows = rows_for(list(ctx.store.positions(vpd).values()), sent, ctx.as_of)
        known = ledger.grid_fingerprint(vpd)
        mark = fingerprint(rows)
        if mark == known or (known is None and not sent):
            continue
        del sent
        yield vpd, rows, mark


def grid_stream(ctx: Context, sink: Sink) -> Plan:
    """The daily job: a grid for every VPD whose grid changed since the last one written,
    each written as soon as its rows are known, so that no more than one VPD's rows are held
    (issue 13); the fingerprints are the plan's changes."""
    plan = Plan()
    name = f"rotation-grid-{ctx.as_of.isoformat()}"
    for vpd, rows, mark in _changed(ctx):
        sink.staging.write(ctx.output("reports", vpd, f"{name}.xlsx"),
                           partial(write_xlsx, vpd=vpd, rows=rows, as_of=ctx.as_of))
        sink.staging.write(ctx.output("reports", vpd, f"{name}.csv"),
                           partial(write_csv, rows=rows))
        plan.changes.append(partial(_written, vpd=vpd, mark=mark, day=ctx.as_of.isoformat()))
    return plan


def grid_plan(ctx: Context) -> Plan:
    """:func:`grid_stream` as a plan written at the end (every changed VPD's rows held)."""
    plan = Plan()
    name = f"rotation-grid-{ctx.as_of.isoformat()}"
    for vpd, rows, mark in _changed(ctx):
        plan.outputs.append(Output(ctx.output("reports", vpd, f"{name}.xlsx"),
                                   partial(write_xlsx, vpd=vpd, rows=rows, as_of=ctx.as_of)))
        plan.outputs.append(Output(ctx.output("reports", vpd, f"{name}.csv"),
                                   partial(write_csv, rows=rows)))
        plan.changes.append(partial(_written, vpd=vpd, mark=mark, day=ctx.as_of.isoformat()))
    return plan


def _written(store: Store, *, vpd: str, mark: str, day: str) -> None:
    OperationsLedger(store).grid_written(vpd, mark, day)
