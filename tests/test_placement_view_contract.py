"""The placement rules' test double answers as the real view does: the same state, put into the
store (SQLite and PostgreSQL) and into ``FakeView``, gives the same answers to every question
of ``PlacementView`` — so the rule tests cannot drift from the gateway they describe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.flows.placements import PrefetchedView, StoreView, WindowedView
from gateway.models import Assignment, Occupant, Person, Placement, Position, Post
from gateway.rules.placements import PlacementView, decide
from tests.conftest import Gateway
from tests.test_rules_placements import (
    AS_OF,
    DPN,
    RULES,
    FakeView,
    day,
    person,
    placement,
    position,
    sent_row,
    trainee,
)

OTHER_DPN = "EOE/R1K00/002/FY1/001"


def world() -> tuple[list[tuple[str, Position]], list[tuple[str, Person]], list]:  # type: ignore[type-arg]
    """Positions in two VPDs (one DPN in both), persons with live and terminated assignments,
    register rows (one withdrawn) and a hold."""
    positions = [
        ("RGT", position("1001")),
        ("RGT", position("1002", dpn=OTHER_DPN)),
        ("R1K", position("2001", host_lead_flag="Host")),
        ("R1K", position("2002", dpn=None)),
    ]
    live = Assignment("A1", "1001", "Active", False, day(-100), day(50))
    ended = Assignment("A2", "1001", "Terminated", False, day(-400), end_date=day(-200))
    persons = [
        ("RGT", person("E1", assignments=(live,))),
        ("RGT", person("E2", forenames="Sam", assignments=(ended,))),
        ("RGT", person("E3", date_of_birth=date(1990, 1, 1))),
        ("R1K", person("E4")),
    ]
    rows = [
        sent_row(placement("P1")),
        sent_row(placement("P1"), vpd="R1K", number="2001", role="Host"),
        sent_row(placement("P2", trainee=trainee(tis_person_id="T2")), withdrawn=True),
        sent_row(placement("P3", dpn=OTHER_DPN), number="1002"),
    ]
    return positions, persons, rows


@pytest.fixture(params=["store", "prefetched"])
def kind(request: pytest.FixtureRequest) -> str:
    """The real view asked: the store's, query by query, or the per-file prefetch."""
    return str(request.param)


def both_views(gateway: Gateway, kind: str = "store") -> tuple[FakeView, PlacementView]:
    """The world as the rule tests' FakeView and as a real view of the store."""
    positions, persons, rows = world()
    held = placement("P9", start=200)
    store = gateway.store
    with store.transaction():
        for vpd in ("RGT", "R1K"):
            store.save_positions(vpd, [p for v, p in positions if v == vpd], replace=True)
            store.replace_persons(vpd, [p for v, p in persons if v == vpd])
        store.save_applicants(rows, "t")
        store.hold(held, "f.xml", "s" * 64, day(109).isoformat(), "t")
    occupants = [
        (vpd, a.position_number, Occupant(None, p.esr_person_id, a.start_date,
                                          a.end_date or a.projected_end_date))
        for vpd, p in persons for a in p.assignments if a.status != "Terminated"
    ]
    fake = FakeView(positions=positions, persons=persons, assignments=occupants,
                    register={(r.placement_id, r.vpd): r for r in rows}, holds={"P9": held})
    if kind == "store":
        return fake, StoreView(store)
    # A file whose placements ask about every DPN, birth date and id of the world.
    asked = [placement(pid, dpn=dpn, trainee=trainee(date_of_birth=born))
             for pid in ("P1", "P2", "P3", "P4", "P9")
             for dpn in (DPN, OTHER_DPN, "EOE/NONE/1")
             for born in (date(1995, 4, 1), date(1990, 1, 1), date(2000, 1, 1))]
    return fake, PrefetchedView.of(store, asked)


@pytest.mark.parametrize("dpn", [DPN, OTHER_DPN, "EOE/NONE/1"])
def test_positions_with_dpn_agree(gateway: Gateway, kind: str, dpn: str) -> None:
    """Every (VPD, position) carrying the DPN, in any VPD, nothing else."""
    fake, real = both_views(gateway, kind)
    assert sorted(as_posts(fake.positions_with_dpn(dpn)), key=repr) == sorted(
        as_posts(real.positions_with_dpn(dpn)), key=repr)


def as_posts(found: Sequence[tuple[str, Position | Post]]) -> list[tuple[str, tuple[Any, ...]]]:
    """What the rules read of each (VPD, position): a :class:`Post`'s fields, whether the view
    gave the whole position or the post."""
    names = [f.name for f in fields(Post)]
    return [(vpd, tuple(getattr(p, n) for n in names)) for vpd, p in found]


@pytest.mark.parametrize(("vpd", "born"), [("RGT", date(1995, 4, 1)), ("RGT", date(1990, 1, 1)),
                                          ("R1K", date(1995, 4, 1)), ("RGT", date(2000, 1, 1))])
def test_persons_like_agree(gateway: Gateway, kind: str, vpd: str, born: date) -> None:
    """The real view gives exactly the VPD's persons born that day; the fake a superset of them
    (the rules filter precisely, so a looser double is safe)."""
    fake, real = both_views(gateway, kind)
    expected = {p.esr_person_id for v, p in world()[1] if v == vpd and p.date_of_birth == born}
    assert {p.esr_person_id for p in real.persons_like(vpd, born)} == expected
    assert expected <= {p.esr_person_id for p in fake.persons_like(vpd, born)}


@pytest.mark.parametrize("pid", ["P1", "P2", "P3", "P4"])
def test_sent_agrees(gateway: Gateway, kind: str, pid: str) -> None:
    """The register rows of a placement, withdrawn ones too, one per VPD."""
    fake, real = both_views(gateway, kind)
    key = (lambda r: r.vpd)  # noqa: E731
    assert sorted(fake.sent(pid), key=key) == sorted(real.sent(pid), key=key)


@pytest.mark.parametrize(("vpd", "number"), [("RGT", "1001"), ("RGT", "1002"),
                                             ("R1K", "2001"), ("R1K", "9999")])
def test_occupants_agree(gateway: Gateway, kind: str, vpd: str, number: str) -> None:
    """Live register rows and ESR assignments not terminated on a position."""
    fake, real = both_views(gateway, kind)
    key = (lambda o: (o.tis_person_id or "", o.esr_person_id or "", o.start))  # noqa: E731
    assert sorted(fake.occupants(vpd, number), key=key) == sorted(
        real.occupants(vpd, number), key=key)


@pytest.mark.parametrize("pid", ["P9", "P1"])
def test_held_agrees(gateway: Gateway, kind: str, pid: str) -> None:
    """A held placement, or none."""
    fake, real = both_views(gateway, kind)
    assert fake.held(pid) == real.held(pid)
    assert replace(fake, holds={}).held(pid) is None


@st.composite
def _placements(draw: st.DrawFn) -> Placement:
    """A placement of the world's ids, DPNs and trainees (or of none)."""
    start = draw(st.integers(-3, 130))
    return placement(
        draw(st.sampled_from(["P1", "P2", "P3", "P4", "P9"])),
        start=start,
        end=start + draw(st.integers(-1, 120)),
        action=draw(st.sampled_from(["upsert", "upsert", "withdraw"])),
        dpn=draw(st.sampled_from([DPN, DPN, OTHER_DPN, "EOE/NONE/1"])),
        trainee=draw(st.sampled_from(
            [trainee(), trainee(tis_person_id="T2"),
             trainee(tis_person_id="T3", date_of_birth=date(1990, 1, 1))])),
    )


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=st.lists(_placements(), max_size=10), size=st.integers(1, 4))
def test_a_windowed_view_decides_as_the_whole_file_prefetched(
    gateway: Gateway, file: list[Placement], size: int
) -> None:
    """Reading the state a few placements at a time (as the flow does for large files) decides
    every file exactly as reading it for the whole file at once: the same outcomes, records,
    notices, register rows, holds and releases — across windows too (a placement id twice, two
    placements on one position, a replacement)."""
    if not gateway.store.positions("RGT"):
        both_views(gateway)  # the world, once per test (decide only reads)
    whole = decide(file, PrefetchedView.of(gateway.store, file), AS_OF, RULES)
    view = WindowedView(gateway.store, size)
    assert decide(view.over(file), view, AS_OF, RULES) == whole
