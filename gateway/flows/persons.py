"""ESR person extract → persons in the store, TIS person update delta (spec 4.2, 6.4)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import partial

from gateway.flows import Context, Output, Plan
from gateway.models import PersonExtract
from gateway.reading import PERSONS_JSON, PERSONS_SENT
from gateway.rules.persons import PersonUpdate, person_update
from gateway.store.interfaces import PersonState
from gateway.xml import writers


def plan(extract: PersonExtract, ctx: Context) -> Plan:
    """Store the VPD's persons (a full snapshot) and send TIS what changed."""
    vpd = extract.vpd
    update = person_update(
        vpd,
        extract.persons,
        ctx.store.posts(vpd),
        ctx.store.fingerprints(vpd),
        ctx.as_of,
        sent=ctx.prepared.get(PERSONS_SENT),
    )
    result = update_plan(ctx, vpd, update, extract.extract_date, "delta")
    result.changes.insert(0, partial(_replace_persons, vpd, extract,
                                     ctx.prepared.get(PERSONS_JSON)))
    return result


def full_plan(ctx: Context, vpd: str) -> tuple[Plan, int]:
    """Everyone of the VPD in scope, as a ``full`` person update (``extract persons --full``);
    returns the plan and how many persons it sends."""
    update = person_update(
        vpd,
        ctx.store.persons(vpd),
        ctx.store.posts(vpd),
        ctx.store.fingerprints(vpd),
        ctx.as_of,
        full=True,
    )
    return update_plan(ctx, vpd, update, ctx.as_of, "full"), update.sent


def update_plan(
    ctx: Context, vpd: str, update: PersonUpdate, extract_date: date, kind: str
) -> Plan:
    """Person update files per deanery, and the fingerprints committed with them."""
    day = extract_date.isoformat()
    outputs = []
    for deanery, rows in sorted(update.by_deanery.items()):
        path = ctx.output("tis", deanery, f"persons-{vpd}-{day}.xml")
        write = partial(writers.write_person_update, deanery=deanery, vpd=vpd,
                        extract_date=day, kind=kind, generated_at=ctx.now, rows=rows)
        outputs.append(Output(path, write))
    result = Plan(outcomes=update.outcomes, outputs=outputs)
    result.changes.append(partial(_remember, vpd, update, ctx.now, day, outputs))
    return result


def _replace_persons(vpd: str, extract: PersonExtract, encoded: Sequence[str] | None,
                     store: PersonState) -> None:
    store.replace_persons(vpd, extract.persons, encoded)


def _remember(
    vpd: str, update: PersonUpdate, now: str, day: str, outputs: list[Output], store: PersonState
) -> None:
    store.save_fingerprints(vpd, update.fingerprints, now)
    for output in outputs:
        store.record_extract("persons", vpd, output.path.parent.name, day, str(output.path), now)
