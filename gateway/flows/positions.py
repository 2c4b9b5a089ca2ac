"""ESR position extract → register, TIS position extracts, notifications (spec 6.1)."""

from __future__ import annotations

from functools import partial
from typing import BinaryIO

from gateway.flows import Context, Output, Plan, notification_outputs
from gateway.models import PositionExtract
from gateway.rules.positions import RegisterChange, RegisterView, apply_extract
from gateway.store.interfaces import Positions
from gateway.xml import writers


def plan(extract: PositionExtract, ctx: Context) -> Plan:
    """Apply the extract to the VPD's register and write the TIS extracts it implies."""
    vpd = extract.vpd
    view = RegisterView(
        positions=ctx.store.positions(vpd),
        seen_dpns=frozenset(ctx.store.seen_dpns(vpd)),
        interface_posts=ctx.store.interface_posts(vpd),
    )
    las = frozenset(ctx.settings.rules.las_occupation_codes)
    change = apply_extract(extract, view, ctx.as_of, las)
    extract_date = extract.extract_date.isoformat()
    outputs = []
    paths = {}
    for deanery, posts in change.extracts.items():
        path = ctx.output("tis", deanery, f"positions-{vpd}-{extract_date}.xml")
        paths[deanery] = str(path)
        items = [writers.ExtractPost(p, dup) for p, dup in posts]
        write = partial(_write_extract, deanery, vpd, extract_date, ctx.now, items)
        outputs.append(Output(path, write))
    stem = ctx.receipt.stem if ctx.receipt else "positions"
    outputs += notification_outputs(ctx, change.notices, f"notifications-{stem}-{ctx.sha12}")
    result = Plan(outcomes=change.outcomes, outputs=outputs)
    result.changes.append(partial(_save, change, ctx, extract_date, paths))
    return result


def _write_extract(
    deanery: str,
    vpd: str,
    extract_date: str,
    now: str,
    posts: list[writers.ExtractPost],
    fh: BinaryIO,
) -> None:
    writers.write_position_extract(fh, deanery, vpd, extract_date, now, posts)


def _save(
    change: RegisterChange, ctx: Context, extract_date: str, paths: dict[str, str], store: Positions
) -> None:
    store.save_positions(change.vpd, change.save, replace=change.replace)
    store.add_seen_dpns(change.vpd, change.new_dpns, ctx.now)
    store.set_interface_posts(change.vpd, change.interface)
    for deanery, path in paths.items():
        store.record_extract("positions", change.vpd, deanery, extract_date, path, ctx.now)
