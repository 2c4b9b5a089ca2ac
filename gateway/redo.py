"""Doing work again: re-sending placements (R7) and requeueing quarantined files.

Both run through the pipeline's commit protocol under the store's work lock, like a file or a
scheduled job.
"""

from __future__ import annotations

import re
from datetime import date
from functools import partial
from pathlib import Path

from gateway import logs
from gateway.flows import Context
from gateway.flows.resend import Resend, resend_plan, select
from gateway.models import Result
from gateway.pipeline import Pipeline
from gateway.store.base import Receipt

log = logs.get("gateway.redo")

_COPY = re.compile(r"^(?P<stem>.*)\.\d+(?P<suffix>\.[^.]*)$")  # files.move's name.N.ext


def resend(
    pipeline: Pipeline, as_of: date, placement_id: str | None = None, vpd: str | None = None
) -> Resend | None:
    """Re-send one kept placement, or all (of a VPD); None when there is nothing to re-send."""
    store = pipeline.store
    with store.work_lock():
        kept = store.kept(placement_id)
        if vpd is not None:
            dpns = {k.placement.dpn for k in kept}
            found = store.positions_with_dpns(dpns)
            kept = select(kept, vpd, {d: {v for v, _p in found.get(d, ())} for d in dpns})
        if not kept:
            return None
        day = as_of.isoformat()
        n = store.next_resend(day)
        ctx = Context(pipeline.settings, store, as_of, pipeline.clock())
        done = resend_plan(ctx, kept, n)
        pipeline.commit(
            0, done.name, done.plan, [*done.plan.outputs, done.ack],
            partial(store.record_resend, day, n, ctx.now),
        )
    results = [o.result for o in done.plan.outcomes]
    log.info("resend.done", resend=done.name, received=len(results),
             loaded=results.count(Result.LOADED), updated=results.count(Result.UPDATED),
             rejected=results.count(Result.REJECTED), outputs=len(done.plan.outputs) + 1)
    return done


def quarantined_name(path: Path, quarantine: Path) -> str | None:
    """The name of a file in ``quarantine`` given as a name or a path; None if it is not there."""
    candidate = path if path.parent != Path() else quarantine / path.name
    try:
        inside = candidate.resolve().parent == quarantine.resolve()
    except OSError:
        return None
    return candidate.name if inside and candidate.is_file() else None


def requeue(pipeline: Pipeline, name: str, channel: str | None) -> Receipt:
    """Claim a quarantined file again (moved out of the quarantine), linked in the ledger to
    the receipt that quarantined it; ``channel`` when the ledger does not know the file."""
    store = pipeline.store
    prior = store.quarantined(name)
    match = _COPY.match(name)
    if prior is None and match:
        prior = store.quarantined(match["stem"] + match["suffix"])
    receipt = pipeline.claim(pipeline.paths.quarantine / name,
                             prior[1] if prior else channel or "unknown")
    if prior is not None:
        store.link_requeue(receipt.id, prior[0])
    log.info("file.requeued", file=receipt.name, sha256=receipt.sha256,
             channel=receipt.channel, requeued_from=prior[0] if prior else None)
    return receipt
