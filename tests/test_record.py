"""keyscan.record stands in for frozen, slotted dataclasses on the start-up path: it
must behave as they do wherever keyscan relies on them."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyscan.record import FrozenError, asdict, field, record, replace


@record
class Point:
    x: int
    label: str = "p"
    tags: list[str] = field(default_factory=list)
    note: dict[str, int] = field(default_factory=dict, compare=False, hash=False)


@dataclasses.dataclass(frozen=True, slots=True)
class Twin:
    x: int
    label: str = "p"
    tags: list[str] = dataclasses.field(default_factory=list)
    note: dict[str, int] = dataclasses.field(default_factory=dict, compare=False,
                                              hash=False)


@record(frozen=False)
class Counter:
    n: int = 0
    seen: list[int] = field(default_factory=list)


@given(st.integers(), st.text(max_size=5), st.integers(), st.text(max_size=5),
       st.lists(st.text(max_size=3), max_size=3))
def test_a_record_compares_hashes_and_prints_as_the_dataclass_does(
        x: int, label: str, y: int, other: str, tags: list[str]) -> None:
    a, b = Point(x, label, tags, {"n": 1}), Point(y, other)
    ta, tb = Twin(x, label, tags, {"n": 1}), Twin(y, other)
    assert (a == b) == (ta == tb)
    assert (a == Point(x, label, list(tags))) is True  # `note` is not compared
    assert repr(a).removeprefix("Point") == repr(ta).removeprefix("Twin")
    assert asdict(a) == dataclasses.asdict(ta)
    assert replace(a, x=y) == Point(y, label, tags)
    assert replace(a, x=y).note == {"n": 1}  # kept, as dataclasses.replace keeps it
    assert Point(x).tags == [] and Point(x).tags is not Point(x).tags  # made anew
    frozen = Point(x, label, (), {})  # type: ignore[arg-type]
    assert hash(frozen) == hash(Point(x, label, (), {"other": 2}))  # type: ignore[arg-type]


def test_a_record_is_immutable_slotted_and_pickles() -> None:
    p = Point(1, tags=["a"])
    with pytest.raises(FrozenError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        p.other = 1  # type: ignore[attr-defined]
    assert not hasattr(p, "__dict__")
    for twin in (pickle.loads(pickle.dumps(p)), copy.deepcopy(p), copy.copy(p)):
        assert twin == p and type(twin) is Point
    c = Counter()
    c.n += 1
    c.seen.append(3)
    assert pickle.loads(pickle.dumps(c)) == c == Counter(1, [3])
    with pytest.raises(TypeError):
        hash(c)  # mutable: unhashable, as a dataclass with eq


def test_bad_calls_fail_as_python_says() -> None:
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, x=2)  # type: ignore[misc]
    with pytest.raises(TypeError):
        Point(1, colour="red")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        replace(Point(1), colour="red")
    with pytest.raises(TypeError):
        record(type("Bad", (), {"__annotations__": {"a": "int", "b": "int"}, "a": 1}))


def test_the_hook_path_imports_no_dataclasses() -> None:
    """What the start-up path gains: neither `dataclasses` nor `inspect` is imported by a
    pre-commit scan's modules."""
    code = ("import sys; import keyscan.cli, keyscan.scan, keyscan.config, keyscan.ignore, "
            "keyscan.baseline, keyscan.report.text, keyscan.report.json, keyscan.history; "
            "print(sorted(m for m in ('dataclasses', 'inspect') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_a_record_made_often_gets_its_compiled_init_and_behaves_the_same() -> None:
    """Fields are bound by a loop at first (no compile at import); a class that makes
    many instances switches to the compiled `__init__`, with the same results."""

    @record
    class Often:
        x: int
        y: str = "a"
        z: list[int] = field(default_factory=list)

    first = Often.__init__
    made = [Often(i, y=str(i)) if i % 2 else Often(i) for i in range(100)]
    assert Often.__init__ is not first  # compiled after the first instances
    for i in (1, 2, 98, 99):
        assert made[i] == Often(i, str(i) if i % 2 else "a")
    assert made[99].z == [] and made[99].z is not made[97].z
    for bad in (lambda: Often(), lambda: Often(1, x=2), lambda: Often(1, w=3),  # type: ignore[call-arg,misc]
                lambda: Often(1, "b", [], 4)):  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            bad()
