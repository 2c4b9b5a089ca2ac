"""R7: re-send placements that ESR failed or the rules rejected, every rule applied afresh.

A re-send is one piece of work committed like a file: its load files, notifications (each sent
placement with ``RESENT``) and an acknowledgement ``resend-<date>-<n>.ack.xml`` are written
under temporary names, then the register and the re-send's number ``n`` are committed in one
transaction, then the outputs are published. ``n`` is read under the work lock and taken by
that commit, so a re-send killed before it commits is done again with the same ``n`` and the
same outputs, and one killed after it is finished by recovery and is not done again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from functools import partial

from gateway.config import Settings
from gateway.flows import Context, Output, Plan, notification_outputs
from gateway.flows.placements import (
    PrefetchedView,
    kept_placements,
    load_outputs,
    remember,
    split_loads,
)
from gateway.models import Kept, Notice, NoticeType, Outcome, Result, Totals
from gateway.rules.placements import PlacementDecision, decide
from gateway.store.interfaces import PlacementState
from gateway.xml import writers

UPSERT = "upsert"


@dataclass(frozen=True, slots=True)
class Resend:
    """One re-send: its name, its plan and the acknowledgement's path."""

    name: str
    plan: Plan
    ack: Output


def select(
    kept: Sequence[Kept], vpd: str | None, dpn_vpds: dict[str, set[str]]
) -> list[Kept]:
    """The kept placements concerning ``vpd`` (the one that failed or rejected it, or any VPD
    where its DPN is on a position now); all of them when ``vpd`` is None."""
    if vpd is None:
        return list(kept)
    return [k for k in kept if k.vpd == vpd or vpd in dpn_vpds.get(k.placement.dpn, set())]


def resend_plan(ctx: Context, kept: Sequence[Kept], n: int) -> Resend:
    """Decide the kept placements afresh as of ``ctx.as_of`` (A1–A13, R4) and plan the re-send."""
    day = ctx.as_of.isoformat()
    name = f"resend-{day}-{n}"
    placements = [replace(k.placement, action=UPSERT, line=None) for k in kept]
    decision = decide(placements, PrefetchedView.of(ctx.store, placements), ctx.as_of,
                      ctx.settings.rules)
    sha = hashlib.sha256(
        "\n".join([name, *sorted(p.placement_id for p in placements)]).encode()
    ).hexdigest()
    notices = decision.notices + _resent(decision, {k.placement.placement_id: k for k in kept})
    outputs = load_outputs(ctx, decision.records, name, name, sha)
    outputs += notification_outputs(ctx, notices, f"notifications-{name}")
    result = Plan(outcomes=decision.outcomes, outputs=outputs)
    loads = split_loads(decision.records, name, name)
    result.changes.append(partial(remember, decision, ctx, name, sha, loads,
                                  kept_placements(decision, placements)))
    header = writers.AckHeader(name, sha, ctx.now, "tis", "processed", ctx.now)
    ack = Output(
        ctx.settings.paths.acks / f"{name}.ack.xml",
        partial(writers.write_ack, header=header, errors=[], outcomes=decision.outcomes,
                totals=Totals.of(decision.outcomes)),
    )
    return Resend(name, result, ack)


def _resent(decision: PlacementDecision, kept: dict[str, Kept]) -> list[Notice]:
    """A RESENT notice per record sent, saying what had stopped it before."""
    sent = {o.record_id for o in decision.outcomes if o.result in (Result.LOADED, Result.UPDATED)}
    notices = []
    for record in decision.records:
        if record.placement_id not in sent or record.action == "withdraw":
            continue
        was = kept[record.placement_id]
        why = ("ESR failed it" if was.cause == "failed"
               else f"the rules rejected it ({was.reason})")
        notices.append(Notice(
            NoticeType.RESENT,
            record.vpd,
            f"Placement {record.placement_id} re-sent to ESR as a {record.action} on position "
            f"{record.position_number} (earlier {why}).",
            placement_id=record.placement_id,
            dpn=record.dpn,
            position_number=record.position_number,
            trainee=(f"{' '.join(record.placement.trainee.surname.split())}, "
                     f"{' '.join(record.placement.trainee.forenames.split())}"),
            reason=was.reason,
        ))
    return notices


def preview(
    store: PlacementState, settings: Settings, kept: Sequence[Kept], as_of: date
) -> list[Outcome]:
    """What a re-send of ``kept`` would do as of ``as_of``: one outcome each, nothing written."""
    placements = [replace(k.placement, action=UPSERT, line=None) for k in kept]
    decision = decide(placements, PrefetchedView.of(store, placements), as_of, settings.rules)
    return decision.outcomes
