"""ESR position extract → register, TIS position extracts, notifications (spec 6.1)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import BinaryIO

from gateway.flows import Context, Output, Plan, notification_outputs
from gateway.models import Position, PositionExtract
from gateway.reading import POSITIONS_JSON, POSITIONS_POSTS
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
    texts = _by_object(extract.positions, ctx.prepared.get(POSITIONS_POSTS))
    outputs = []
    paths = {}
    for deanery, posts in change.extracts.items():
        path = ctx.output("tis", deanery, f"positions-{vpd}-{extract_date}.xml")
        paths[deanery] = str(path)
        items = [writers.ExtractPost(p, dup, texts.get(id(p))) for p, dup in posts]
        write = partial(_write_extract, deanery, vpd, extract_date, ctx.now, items)
        outputs.append(Output(path, write))
    stem = ctx.receipt.stem if ctx.receipt else "positions"
    outputs += notification_outputs(ctx, change.notices, f"notifications-{stem}-{ctx.sha12}")
    result = Plan(outcomes=change.outcomes, outputs=outputs)
    encoded = _encoded(extract.positions, change.save, ctx.prepared.get(POSITIONS_JSON))
    result.changes.append(partial(_save, change, ctx, extract_date, paths, encoded))
    return result


def _by_object(parsed: Sequence[Position], prepared: Sequence[str] | None) -> dict[int, str]:
    """What the look-ahead reader made of each of the extract's positions (``prepared``, in
    their order), by the position object's identity: the rules hand on the extract's own
    objects (those refused left out, the register's others beside them). Empty if the file
    was parsed here."""
    if prepared is None or len(prepared) != len(parsed):
        return {}
    return dict(zip(map(id, parsed), prepared, strict=True))


def _encoded(
    parsed: Sequence[Position], saved: Sequence[Position], prepared: Sequence[str] | None
) -> list[str] | None:
    """The encoding of each position to save (:func:`_by_object`), or None: the store encodes
    them all."""
    by_object = _by_object(parsed, prepared)
    try:
        return [by_object[id(p)] for p in saved] if by_object else None
    except KeyError:  # not one of the extract's own
        return None


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
    change: RegisterChange, ctx: Context, extract_date: str, paths: dict[str, str],
    encoded: Sequence[str] | None, store: Positions,
) -> None:
    store.save_positions(change.vpd, change.save, replace=change.replace, encoded=encoded)
    store.add_seen_dpns(change.vpd, change.new_dpns, ctx.now)
    store.set_interface_posts(change.vpd, change.interface)
    for deanery, path in paths.items():
        store.record_extract("positions", change.vpd, deanery, extract_date, path, ctx.now)
