"""ESR load confirmation → the applicant register, MSO notifications, TIS confirmations (6.5).

Also R6 as a scheduled job: loads not wholly confirmed after ``confirm_hours``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import partial
from typing import BinaryIO

from gateway.codes import is_code
from gateway.flows import Context, Output, Plan, notification_outputs
from gateway.models import LoadConfirmation, SentApplicant
from gateway.rules import confirmations as rules
from gateway.rules.positions import deanery_of
from gateway.store.interfaces import ConfirmationState
from gateway.xml import writers


def view_of(store: ConfirmationState, document: LoadConfirmation) -> rules.LoadView:
    """Read once what the rules ask about a confirmation file: the load it names, the
    register rows of its placements in the VPD, and their deaneries (P3)."""
    load = store.load_file(document.vpd, document.load_file)
    pids = {c.placement_id for c in document.confirmations}
    register: dict[str, SentApplicant] = {
        row.placement_id: row
        for rows in store.sent_many(pids).values()
        for row in rows
        if row.vpd == document.vpd
    }
    records = load.records if load else ()
    positions = store.positions_with_dpns({r.dpn for r in records})
    deaneries = {}
    for record in records:
        for vpd, position in positions.get(record.dpn, ()):
            if vpd == document.vpd and position.position_number == record.position_number and (
                is_code(deanery_of(position))
            ):
                deaneries[record.placement_id] = deanery_of(position)
    return rules.LoadView(load, register, deaneries)


def plan(document: LoadConfirmation, ctx: Context) -> Plan:
    """Apply R1–R5 to a confirmation file."""
    decision = rules.decide(document, view_of(ctx.store, document))
    name = f"{ctx.receipt.stem if ctx.receipt else 'confirmations'}-{ctx.sha12}"
    outputs = tis_outputs(ctx, document.vpd, decision.tis, name)
    outputs += notification_outputs(ctx, decision.notices, f"notifications-{name}")
    result = Plan(outcomes=decision.outcomes, outputs=outputs)
    result.changes.append(partial(_remember, decision, document, ctx))
    return result


def tis_outputs(ctx: Context, vpd: str, rows: list[rules.TisRow], name: str) -> list[Output]:
    """One TIS placement confirmation per deanery (spec 5.1)."""
    by_deanery: dict[str, list[writers.ConfirmedPlacement]] = {}
    for row in rows:
        by_deanery.setdefault(row.deanery, []).append(writers.ConfirmedPlacement(
            row.placement_id, row.status, row.applicant_number, row.message))
    source = ctx.receipt.name if ctx.receipt else name
    sha = ctx.receipt.sha256 if ctx.receipt else hashlib.sha256(name.encode()).hexdigest()
    outputs = []
    for deanery, confirmed in sorted(by_deanery.items()):

        def write(fh: BinaryIO, deanery: str = deanery,
                  confirmed: list[writers.ConfirmedPlacement] = confirmed) -> None:
            writers.write_placement_confirmations(fh, deanery, vpd, ctx.now, source, sha,
                                                  confirmed)

        path = ctx.output("tis", deanery, f"confirmations-{vpd}-{name}.xml")
        outputs.append(Output(path, write))
    return outputs


def _remember(
    decision: rules.ConfirmationDecision, document: LoadConfirmation, ctx: Context,
    store: ConfirmationState,
) -> None:
    store.confirm_records(document.vpd, document.load_file, decision.confirmed, ctx.now)
    store.set_esr_states([
        (s.placement_id, s.vpd, s.state, s.applicant_number, s.assignment_id, s.message)
        for s in decision.states
    ])
    store.unkeep(decision.unkeep)
    store.keep(decision.keep, ctx.now)


def unconfirmed_plan(ctx: Context) -> Plan:
    """R6, the daily job: one LOAD_UNCONFIRMED per load file not wholly confirmed
    ``confirm_hours`` after it was written, once; hours run to :attr:`Context.at`."""
    at = datetime.fromisoformat(ctx.at)
    hours = ctx.settings.rules.confirm_hours
    late = rules.overdue(ctx.store.loads_awaiting(), at, hours, ctx.store.unconfirmed_raised())
    if not late:
        return Plan()
    keys = sorted((load.vpd, load.name) for load in late)
    tag = hashlib.sha256(repr(keys).encode()).hexdigest()[:12]
    name = f"notifications-unconfirmed-{ctx.as_of.isoformat()}-{tag}"
    first = ctx.store.unconfirmed_ids([(load.vpd, load.name) for load in late], rules.SHOWN)
    notices = [rules.unconfirmed_notice(load, first[(load.vpd, load.name)], hours)
               for load in late]
    result = Plan(outputs=notification_outputs(ctx, notices, name))
    result.changes.append(lambda store: store.mark_unconfirmed(keys, ctx.now))
    return result
