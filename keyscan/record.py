"""Value classes for the start-up path, without `dataclasses`.

The pre-commit hook and every re-scan create ~30 value classes at import. With
`dataclasses` that costs its import (it pulls in `inspect`, `ast`, `dis`, `tokenize`) and
its machinery (one `exec` per generated method and much more): 75-160 ms for 50 frozen,
slotted classes on the benchmark machine, most of a hook's time. `@record` builds the
same classes from shared functions and one small compiled `__init__` (positional or
keyword, defaults, `field(default_factory=...)`), `__repr__`, `__eq__` and `__hash__`
over the compared fields, `__slots__`, immutability (`frozen`, the default) and
pickling. `replace` and
`asdict` stand in for their `dataclasses` namesakes. Type checkers see a dataclass
(PEP 681). Modules off the start-up path keep using `dataclasses`.
"""

from __future__ import annotations

from collections.abc import Callable

TYPE_CHECKING = False  # typing is not imported at run time (start-up: ~2.5 ms)
if TYPE_CHECKING:
    from typing import Any, TypeVar, overload

    from typing_extensions import dataclass_transform

    T = TypeVar("T")
else:
    def dataclass_transform(**_: object) -> Callable[[Any], Any]:
        return lambda f: f


class FrozenError(AttributeError):
    """Assigning to a field of a frozen record."""


class _Field:
    __slots__ = ("compare", "make")

    def __init__(self, make: Callable[[], Any], compare: bool) -> None:
        self.make = make
        self.compare = compare


def field(*, default_factory: Callable[[], Any], compare: bool = True,
          hash: bool | None = None) -> Any:
    """A field whose default is made anew for each instance; `compare=False` (or
    `hash=False`) leaves it out of equality and hashing."""
    return _Field(default_factory, compare and hash is not False)


_NO_DEFAULT = object()


if TYPE_CHECKING:
    @overload
    def record(cls: type[T], /) -> type[T]: ...
    @overload
    def record(*, frozen: bool = True) -> Callable[[type[T]], type[T]]: ...
@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: Any = None, /, *, frozen: bool = True) -> Any:
    """Make `cls` a value class of its annotated fields (see the module docstring)."""
    if cls is None:
        return lambda c: _build(c, frozen)
    return _build(cls, frozen)


def _build(cls: type, frozen: bool) -> type:
    # not inspect.get_annotations: importing `inspect` is what this module avoids
    names = tuple(cls.__dict__.get("__annotations__", {}))  # noqa: RUF063
    defaults = [cls.__dict__.get(name, _NO_DEFAULT) for name in names]
    compared = tuple(n for n, d in zip(names, defaults, strict=True)
                     if not (isinstance(d, _Field) and not d.compare))
    namespace = {k: v for k, v in cls.__dict__.items()
                 if k not in names and k not in ("__dict__", "__weakref__")}
    namespace["__slots__"] = names
    namespace["__record_fields__"] = names
    owner: list[type] = []
    namespace["__init__"] = _first_init(names, defaults, frozen, owner)
    namespace["__repr__"] = _repr(names)
    namespace["__eq__"] = _eq(compared)
    namespace["__hash__"] = _hash(compared) if frozen else None
    if frozen:
        namespace["__setattr__"] = _refuse
        namespace["__delattr__"] = _refuse
    namespace["__getstate__"] = _getstate(names)
    namespace["__setstate__"] = _setstate(names)
    built = type(cls)(cls.__name__, cls.__bases__, namespace)
    built.__qualname__ = cls.__qualname__
    owner.append(built)
    return built


_HOT = 32  # instances made by the loop before a class gets its compiled `__init__`


def _first_init(names: tuple[str, ...], defaults: list[Any], frozen: bool,
                owner: list[type]) -> Callable[..., None]:
    """`__init__` binding the fields by a loop, until the class has made `_HOT`
    instances: then the compiled one (`_init`) takes over. Compiling costs ~0.1 ms a
    class, 3-5 ms of every start for the ~35 records keyscan defines, most of which a
    given run makes a few of (or none)."""
    count = 0
    required = _required(names, defaults)

    def __init__(self: object, *args: Any, **kwargs: Any) -> None:
        nonlocal count
        count += 1
        if count == _HOT and owner:
            owner[0].__init__ = _init(names, defaults, frozen)  # type: ignore[misc]
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}() takes {len(names)} positional "
                            f"arguments but {len(args)} were given")
        unknown = kwargs.keys() - set(names)
        if unknown:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument "
                            f"{sorted(unknown)[0]!r}")
        put = object.__setattr__
        for i, name in enumerate(names):
            if i < len(args):
                if name in kwargs:
                    raise TypeError(f"{type(self).__name__}() got multiple values for "
                                    f"argument {name!r}")
                value = args[i]
            elif name in kwargs:
                value = kwargs[name]
            elif name in required:
                raise TypeError(f"{type(self).__name__}() missing required argument "
                                f"{name!r}")
            else:
                default = defaults[i]
                value = default.make() if isinstance(default, _Field) else default
            put(self, name, value)

    return __init__


def _required(names: tuple[str, ...], defaults: list[Any]) -> set[str]:
    """The fields without a default; refused after one with a default, as Python
    refuses such a signature."""
    required = set()
    for i, (name, default) in enumerate(zip(names, defaults, strict=True)):
        if default is _NO_DEFAULT:
            if any(d is not _NO_DEFAULT for d in defaults[:i]):
                raise TypeError(f"field {name!r} without a default follows one with a default")
            required.add(name)
    return required


def _init(names: tuple[str, ...], defaults: list[Any], frozen: bool) -> Callable[..., None]:
    """`__init__`, compiled from a few lines (one small compile a class; instances are
    made as fast as a dataclass's: the git reading path makes one per object)."""
    params, body = [], []
    scope: dict[str, Any] = {"_put": object.__setattr__, "_NONE": _NO_DEFAULT}
    for i, (name, default) in enumerate(zip(names, defaults, strict=True)):
        if default is _NO_DEFAULT:
            params.append(name)
            value = name
        elif isinstance(default, _Field):
            scope[f"_make_{i}"] = default.make
            params.append(f"{name}=_NONE")
            value = f"_make_{i}() if {name} is _NONE else {name}"
        else:
            scope[f"_default_{i}"] = default
            params.append(f"{name}=_default_{i}")
            value = name
        body.append(f"    _put(self, {name!r}, {value})" if frozen
                    else f"    self.{name} = {value}")
    source = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or "    pass")
    exec(source, scope)  # our own source, made of field names
    init: Callable[..., None] = scope["__init__"]
    return init


def _repr(names: tuple[str, ...]) -> Callable[[object], str]:
    def __repr__(self: object) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
        return f"{type(self).__qualname__}({inner})"

    return __repr__


def _eq(names: tuple[str, ...]) -> Callable[[object, object], Any]:
    def __eq__(self: object, other: object) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in names)

    return __eq__


def _hash(names: tuple[str, ...]) -> Callable[[object], int]:
    def __hash__(self: object) -> int:
        return hash(tuple(getattr(self, n) for n in names))

    return __hash__


def _getstate(names: tuple[str, ...]) -> Callable[[object], tuple[Any, ...]]:
    def __getstate__(self: object) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in names)

    return __getstate__


def _setstate(names: tuple[str, ...]) -> Callable[[object, tuple[Any, ...]], None]:
    def __setstate__(self: object, state: tuple[Any, ...]) -> None:
        for name, value in zip(names, state, strict=True):
            object.__setattr__(self, name, value)

    return __setstate__


def _refuse(self: object, name: str, *_: object) -> None:
    raise FrozenError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of record `obj` with `changes` (as `dataclasses.replace`)."""
    names: tuple[str, ...] = type(obj).__record_fields__  # type: ignore[attr-defined]
    unknown = set(changes) - set(names)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no fields {sorted(unknown)}")
    return type(obj)(**{n: changes[n] if n in changes else getattr(obj, n) for n in names})


def asdict(obj: Any) -> Any:
    """Records as dicts, all the way down (as `dataclasses.asdict`)."""
    names = getattr(type(obj), "__record_fields__", None)
    if names is not None:
        return {n: asdict(getattr(obj, n)) for n in names}
    if isinstance(obj, (list, tuple)):
        return type(obj)(asdict(v) for v in obj)
    if isinstance(obj, dict):
        return {asdict(k): asdict(v) for k, v in obj.items()}
    return obj
