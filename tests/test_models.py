"""``quick_init``: the faster ``__init__`` of frozen records builds what dataclasses' own builds."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from dataclasses import dataclass, field
from datetime import date

import pytest

import gateway.models
import gateway.rules.checks
import gateway.rules.persons
import gateway.rules.placements
import gateway.store.base
import gateway.xml.writers
from gateway.models import quick_init


@dataclass(frozen=True, slots=True)
class Plain:
    a: str
    b: int
    c: str | None = None
    d: tuple[str, ...] = ()


@quick_init
@dataclass(frozen=True, slots=True)
class Quick:
    a: str
    b: int
    c: str | None = None
    d: tuple[str, ...] = ()


CALLS: list[tuple[tuple[object, ...], dict[str, object]]] = [
    (("x", 1), {}),
    (("x", 1, "c"), {}),
    (("x",), {"b": 2, "d": ("y",)}),
    ((), {"d": ("z",), "c": None, "b": 3, "a": "w"}),
]


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_a_quick_record_is_the_record_dataclasses_would_build(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    plain, quick = Plain(*args, **kwargs), Quick(*args, **kwargs)  # type: ignore[arg-type]
    assert dataclasses.astuple(plain) == dataclasses.astuple(quick)
    assert repr(plain).replace("Plain", "Quick") == repr(quick)
    assert quick == Quick(*args, **kwargs)  # type: ignore[arg-type]
    assert hash(quick) == hash(Quick(*args, **kwargs))  # type: ignore[arg-type]
    assert pickle.loads(pickle.dumps(quick)) == quick  # noqa: S301 - our own bytes


@pytest.mark.parametrize(("args", "kwargs"), [
    ((), {"a": "x"}),                 # b missing
    (("x", 1), {"a": "y"}),           # a twice
    (("x", 1), {"e": 0}),             # no such field
    (("x", 1, None, (), 5), {}),      # one too many
])
def test_a_quick_record_refuses_the_calls_dataclasses_refuse(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    with pytest.raises(TypeError):
        Plain(*args, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Quick(*args, **kwargs)  # type: ignore[arg-type]


def test_a_quick_record_stays_frozen() -> None:
    quick = Quick("x", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.a = "y"  # type: ignore[misc]


def test_classes_it_cannot_build_faithfully_are_refused_at_import() -> None:
    @dataclass(slots=True)
    class Mutable:
        a: str

    @dataclass(frozen=True)
    class NoSlots:
        a: str

    @dataclass(frozen=True, slots=True)
    class Factory:
        a: list[str] = field(default_factory=list)

    @dataclass(frozen=True, slots=True)
    class NotInit:
        a: str = field(default="x", init=False)

    @dataclass(frozen=True, slots=True)
    class PostInit:
        a: str

        def __post_init__(self) -> None:
            pass

    for cls in (Mutable, NoSlots, Factory, NotInit, PostInit):
        with pytest.raises(TypeError, match="quick_init"):
            quick_init(cls)


def _quick_classes() -> set[type]:
    modules = (gateway.models, gateway.rules.checks, gateway.rules.persons,
               gateway.rules.placements, gateway.store.base, gateway.xml.writers)
    return {
        value for module in modules for value in vars(module).values()
        if isinstance(value, type) and dataclasses.is_dataclass(value)
        and getattr(value.__init__, "__code__", None) is not None
        and value.__init__.__code__.co_filename == "<string>"
        and "_set_" in " ".join(value.__init__.__code__.co_names)
    }


def test_every_quick_record_of_the_gateway_sets_each_field_from_its_parameter() -> None:
    classes = _quick_classes()
    assert gateway.models.Placement in classes
    assert gateway.models.Position in classes
    for cls in classes:
        names = [f.name for f in dataclasses.fields(cls)]
        values = [object() for _ in names]
        by_position = cls(*values)
        by_name = cls(**dict(zip(names, values, strict=True)))
        for name, value in zip(names, values, strict=True):
            assert getattr(by_position, name) is value, (cls, name)
            assert getattr(by_name, name) is value, (cls, name)
        assert by_position.__reduce__() == (cls, tuple(values)), cls  # pickled by its fields


@quick_init
@dataclass(frozen=True, slots=True)
class One:
    a: str


@quick_init
@dataclass(frozen=True, slots=True)
class Empty:
    pass


@pytest.mark.parametrize("record", [Quick("x", 1, "c", ("y",)), One("z"), Empty()])
def test_a_quick_record_is_pickled_and_copied_as_its_class_called_with_its_fields(
    record: object,
) -> None:
    """A quick record pickles as its class and its fields in order (the reader process sends
    a large file's records so: gateway.reading), and comes back equal through pickle, copy and
    deepcopy, whatever the number of its fields."""
    values = dataclasses.astuple(record)  # type: ignore[call-overload]
    assert record.__reduce__() == (type(record), values)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        again = pickle.loads(pickle.dumps(record, protocol))  # noqa: S301 - our own bytes
        assert again == record
        assert type(again) is type(record)
    assert copy.copy(record) == record
    assert copy.deepcopy(record) == record


def test_a_national_record_comes_back_whole_from_a_pickle() -> None:
    """A placement with its trainee and address (nested quick records, dates) round-trips."""
    trainee = gateway.models.Trainee(
        "T1", "Ann", "Lee", date(1990, 1, 2), "F", "7123456", nino="QQ123456C",
        address=gateway.models.Address("1 High St", postcode="AB1 2CD"))
    placement = gateway.models.Placement(
        "P1", "upsert", "EOE/RGT/001", "In Post", "F1", "GM", date(2027, 2, 1),
        date(2027, 8, 1), "1.0", trainee)
    again = pickle.loads(pickle.dumps(placement, pickle.HIGHEST_PROTOCOL))  # noqa: S301
    assert again == placement
    assert again.trainee.address == trainee.address
