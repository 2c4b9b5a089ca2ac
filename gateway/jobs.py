"""Scheduled jobs: run by the daemon (daily, and at its start) and by ``dit-gateway tick``.

Each job returns a :class:`~gateway.flows.Plan` committed through the pipeline's protocol, so its
outputs are atomic and its state changes happen once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial

from gateway import logs
from gateway.config import WEEKDAYS
from gateway.flows import Context, Plan, Sink, Staging, notification_outputs
from gateway.flows.confirmations import unconfirmed_plan
from gateway.flows.placements import release_plan, release_stream
from gateway.ops.grid import grid_plan, grid_stream
from gateway.ops.retention import retention_job
from gateway.pipeline import Pipeline
from gateway.rules.positions import duplicate_dpns, duplicate_notice, on_interface

log = logs.get("gateway.jobs")


@dataclass(frozen=True, slots=True)
class Job:
    """A scheduled job: its name, when it is due, and what it does (``run``: a plan written at
    the end; ``stream``, when given, instead: its outputs written as it goes, issue 13)."""

    name: str
    due: Callable[[Context], str | None]  # the run key when due now, else None
    run: Callable[[Context], Plan]
    # writes its outputs as it goes; its plan's changes are made when it commits. ``within``:
    # it runs inside the job's transaction, writing state as it goes (else before it opens).
    stream: Callable[[Context, Sink], Plan] | None = None
    within: bool = True


def duplicate_report(ctx: Context) -> Plan:
    """P2: the weekly report of DPNs on more than one active position, per VPD."""
    notices = []
    for vpd in ctx.store.vpds():
        live = [p for p in ctx.store.positions(vpd).values() if on_interface(p, ctx.as_of)]
        notices += [duplicate_notice(vpd, dpn, live)
                    for dpn in sorted(duplicate_dpns(live, ctx.as_of))]
    name = f"duplicate-positions-{ctx.as_of.isoformat()}"
    return Plan(outputs=notification_outputs(ctx, notices, name))


def _weekly_due(ctx: Context) -> str | None:
    weekday = WEEKDAYS.index(ctx.settings.rules.duplicate_report_weekday)
    if ctx.as_of.weekday() != weekday:
        return None
    return ctx.as_of.isoformat()


def _daily_due(ctx: Context) -> str | None:
    return ctx.as_of.isoformat()


JOBS: list[Job] = [
    Job("release-deferred", _daily_due, release_plan, release_stream),
    Job("duplicate-report", _weekly_due, duplicate_report),
    Job("load-unconfirmed", _daily_due, unconfirmed_plan),
    Job("rotation-grid", _daily_due, grid_plan, grid_stream, within=False),
    Job("retention", _daily_due, retention_job),
]


def run_jobs(
    pipeline: Pipeline, as_of: date, *, force: bool = False, jobs: Sequence[Job] | None = None
) -> int:
    """Run every job that is due (all of them with ``force``); returns how many ran."""
    ran = 0
    for job in JOBS if jobs is None else jobs:
        # The check, the plan and the commit under one work lock: no other process changes the
        # state a job plans from, and a job due once runs once.
        started = time.monotonic()
        with pipeline.store.work_lock():
            ctx = Context(pipeline.settings, pipeline.store, as_of, pipeline.clock())
            key = as_of.isoformat() if force else job.due(ctx)
            if key is None or (not force and pipeline.store.job_last_run(job.name) == key):
                continue
            done = partial(pipeline.store.set_job_run, job.name, key)
            tag = f"{job.name}-{key}"
            if job.stream is not None:
                outputs, records = _streamed(pipeline, job.stream, job.within, ctx, tag, done)
            else:
                plan = job.run(ctx)
                pipeline.commit(0, tag, plan, plan.outputs, done)
                outputs, records = len(plan.outputs), len(plan.outcomes)
        log.info("job.done", job=job.name, as_of=key, outputs=outputs, records=records,
                 duration_ms=round((time.monotonic() - started) * 1000))
        ran += 1
    return ran


def _streamed(pipeline: Pipeline, stream: Callable[[Context, Sink], Plan], within: bool,
              ctx: Context, tag: str, done: Callable[[], None]) -> tuple[int, int]:
    """Run and commit a job that writes as it goes; (outputs, records)."""
    sink = Sink(Staging(tag))
    plans: list[Plan] = []

    def finish() -> None:
        for plan in plans:
            plan.apply(pipeline.store)
        done()

    outputs = pipeline.commit_streamed(0, sink.staging, lambda: plans.append(stream(ctx, sink)),
                                       finish, within=within)
    return outputs, sink.totals.received
