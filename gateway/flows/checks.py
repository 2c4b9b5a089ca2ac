"""Trac check file → ESR check loads per VPD, REJECTED notifications, the one-off ledger (6.3).

Identity records are dropped by the reader (only the fact that one was present is kept), so
they can reach no load, report or log.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial

from gateway import faults
from gateway.flows import (
    Context,
    Held,
    NoticeParts,
    Output,
    Plan,
    Sink,
    Tally,
    Windowed,
    notification_outputs,
    two_keys,
    windows,
)
from gateway.models import CheckApplicant, CheckFile, SentApplicant
from gateway.rules.checks import CheckDecider, CheckDecision, CheckTransfer, CheckView, decide
from gateway.store.interfaces import CheckState
from gateway.xml import writers

WINDOW = 2000  # applicants whose register rows are read (and held) at once
HELD = 45_000  # C3's transfers a file keeps in memory (a national file's ~42,000 fit)


@dataclass(frozen=True, slots=True)
class PrefetchedView:
    """The check rules' view of the register (:class:`~gateway.rules.checks.CheckView`), read
    for the whole file in a few statements per 2,000 keys (placement ids and (VPD, date of birth)
    pairs of its applicants), not three per applicant; a question outside the prefetch is asked
    of the store."""

    store: CheckState
    by_placement: dict[str, list[SentApplicant]]
    by_birth: dict[tuple[str, str], list[SentApplicant]]
    done: set[tuple[str, str]]
    asked: frozenset[str]  # the placement ids ``done`` was read for

    @classmethod
    def of(cls, store: CheckState, applicants: Sequence[CheckApplicant]) -> PrefetchedView:
        """Read what deciding ``applicants`` will ask."""
        ids = {a.match.tis_placement_id for a in applicants if a.match.tis_placement_id}
        births = {(a.vpd, a.match.date_of_birth.isoformat()) for a in applicants}
        by_placement = store.sent_many(ids)
        by_birth = store.applicants_born_many(births)
        candidates = set(ids) | {row.placement_id for rows in by_birth.values() for row in rows}
        return cls(store, by_placement, by_birth, store.transferred_many(candidates),
                   frozenset(candidates))

    def matches(self, applicants: Iterable[CheckApplicant]) -> set[tuple[str, str]]:
        """(vpd, placement id) of every register row the rules may match ``applicants`` to."""
        found = {(a.vpd, a.match.tis_placement_id) for a in applicants
                 if a.match.tis_placement_id}
        found.update((vpd, row.placement_id) for (vpd, _born), rows in self.by_birth.items()
                     for row in rows)
        return found

    def sent(self, placement_id: str) -> Sequence[SentApplicant]:
        """The applicant register rows of a placement."""
        found = self.by_placement.get(placement_id)
        return found if found is not None else self.store.sent(placement_id)

    def applicants_born(self, vpd: str, date_of_birth: date) -> Sequence[SentApplicant]:
        """Applicants of the VPD whose trainee was born that day."""
        found = self.by_birth.get((vpd, date_of_birth.isoformat()))
        return found if found is not None else self.store.applicants_born(
            vpd, date_of_birth.isoformat())

    def transferred(self, vpd: str, placement_id: str) -> bool:
        """Whether checks already went for the applicant."""
        if placement_id in self.asked:
            return (vpd, placement_id) in self.done
        return self.store.transferred(vpd, placement_id)


class WindowedView(Windowed[CheckApplicant, CheckView]):
    """The check rules' view, read a window of applicants at a time (:class:`Windowed`): a
    :class:`PrefetchedView` per window; outside one, an empty one (it asks the store)."""

    def __init__(self, store: CheckState, size: int = WINDOW) -> None:
        super().__init__(partial(PrefetchedView.of, store), PrefetchedView.of(store, ()), size)

    def sent(self, placement_id: str) -> Sequence[SentApplicant]:
        """The applicant register rows of a placement."""
        return self.current.sent(placement_id)

    def applicants_born(self, vpd: str, date_of_birth: date) -> Sequence[SentApplicant]:
        """Applicants of the VPD whose trainee was born that day."""
        return self.current.applicants_born(vpd, date_of_birth)

    def transferred(self, vpd: str, placement_id: str) -> bool:
        """Whether checks already went for the applicant."""
        return self.current.transferred(vpd, placement_id)


def plan(document: CheckFile, ctx: Context) -> Plan:
    """Apply rules C1–C6 and write one check load per VPD."""
    view = WindowedView(ctx.store)
    decision = decide(view.over(document.applicants), view, ctx.as_of)
    stem = ctx.receipt.stem if ctx.receipt else "checks"
    source = ctx.receipt.name if ctx.receipt else stem
    sha = ctx.receipt.sha256 if ctx.receipt else ""
    by_vpd: dict[str, list[CheckTransfer]] = {}
    for transfer in decision.transfers:
        by_vpd.setdefault(transfer.vpd, []).append(transfer)
    outputs = []
    for vpd, transfers in sorted(by_vpd.items()):
        path = ctx.output("esr", vpd, f"checks-{stem}-{ctx.sha12}.xml")
        rows = [(t.placement_id, t.trac_applicant_id, t.checks) for t in transfers]
        write = partial(writers.write_check_load, vpd=vpd, generated_at=ctx.now,
                        source_file=source, source_sha256=sha, transfers=rows)
        outputs.append(Output(path, write))
    outputs += notification_outputs(ctx, decision.notices, f"notifications-{stem}-{ctx.sha12}")
    result = Plan(outcomes=decision.outcomes, outputs=outputs)
    result.changes.append(partial(_remember, decision, sha, ctx.now))
    return result


def stream(applicants: Iterable[CheckApplicant], ctx: Context, sink: Sink) -> None:
    """:func:`plan` a window of applicants at a time, as the file is read (issue 13): each
    window's transfers are recorded in the caller's transaction and its outputs appended, then
    it is let go. The outputs are those :func:`plan` gives for the whole file."""
    stem = ctx.receipt.stem if ctx.receipt else "checks"
    source = ctx.receipt.name if ctx.receipt else stem
    sha = ctx.receipt.sha256 if ctx.receipt else ""
    ctx.store.begin_tallies()
    done = Tally(ctx.store, "C3", two_keys, Held(HELD))
    decider = CheckDecider(ctx.as_of, done)
    loads: dict[str, writers.Parts[writers.CheckTransferRow]] = {}
    notices = NoticeParts(ctx, f"notifications-{stem}-{ctx.sha12}")
    for window in windows(applicants, WINDOW):
        view = PrefetchedView.of(ctx.store, window)
        done.read(view.matches(window))
        decision = decider.decide(window, view)
        done.write()
        by_vpd: dict[str, list[CheckTransfer]] = {}
        for transfer in decision.transfers:
            by_vpd.setdefault(transfer.vpd, []).append(transfer)
        for vpd, transfers in sorted(by_vpd.items()):
            if vpd not in loads:
                loads[vpd] = writers.check_load_parts(vpd, ctx.now, source, sha)
            sink.append(ctx.output("esr", vpd, f"checks-{stem}-{ctx.sha12}.xml"), loads[vpd],
                        [(t.placement_id, t.trac_applicant_id, t.checks) for t in transfers])
        notices.append(sink, decision.notices)
        sink.outcomes(decision.outcomes)
        _remember(decision, sha, ctx.now, ctx.store)
        faults.crashpoint("window-written")


def _remember(decision: CheckDecision, sha: str, now: str, store: CheckState) -> None:
    store.record_transfers(
        [(t.vpd, t.placement_id, t.trac_applicant_id, sha, now) for t in decision.transfers]
    )
