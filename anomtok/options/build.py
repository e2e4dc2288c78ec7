"""How an options object is built and checked: ``make_options`` (an object from keyword arguments,
the fields of its parts included) and the field checks every options class runs in its
``__post_init__``. Each check raises ``InputError`` naming the field and what it allows.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from _typeshed import DataclassInstance

__all__ = ["make_options", "set_field", "check_part", "check_paths", "check_choice", "check_bools", "field_names"]


def set_field(obj: Any, name: str, value: Any) -> None:
    """Set a field of a frozen dataclass from its own ``__post_init__`` (normalising a value)."""
    object.__setattr__(obj, name, value)  # a frozen dataclass normalising its own field


def check_part(obj: Any, name: str, cls: type, default: Callable[[], Any]) -> None:
    """Field ``name`` of ``obj`` is a ``cls`` (None: ``default()``)."""
    value = getattr(obj, name)
    if value is None:
        set_field(obj, name, default())
    elif not isinstance(value, cls):
        raise InputError(f"{name} must be a {cls.__name__}, not {type(value).__name__}")


def check_paths(value: Any, name: str) -> tuple[str, ...]:
    """A tuple of path strings from one path or a sequence of them."""
    if isinstance(value, (str, os.PathLike)):
        value = (value,)
    try:
        items = tuple(value)
    except TypeError:
        raise InputError(f"{name} must be a sequence of paths, not {value!r}") from None
    if any(not isinstance(p, (str, os.PathLike)) or not os.fspath(p) for p in items):
        raise InputError(f"{name} must hold non-empty paths, not {items!r}")
    return tuple(os.fspath(p) for p in items)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> None:
    """``value`` is one of ``choices``, else InputError listing them."""
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}, not {value!r}")


def check_bools(obj: Any, *names: str) -> None:
    """Each field in ``names`` of ``obj`` is a real bool (not 0/1 or a string)."""
    for name in names:
        if not isinstance(getattr(obj, name), bool):
            raise InputError(f"{name} must be True or False, not {getattr(obj, name)!r}")


def field_names(cls: type) -> list[str]:
    """The fields of dataclass ``cls`` its constructor takes."""
    return [f.name for f in fields(cls) if f.init]


OptionsT = TypeVar("OptionsT", bound="DataclassInstance")


def make_options(cls: type[OptionsT], options: OptionsT | None = None, **overrides: Any) -> OptionsT:
    """``options`` (default: ``cls()``) with ``overrides`` applied, built (and so checked) once.

    A keyword names a field of ``cls`` or, for options made of parts (``parts()``), a field of
    one part: ``make_options(NegtempOptions, temperature=-1)`` sets ``sampler.temperature``.
    An unknown keyword is an ``InputError`` listing the valid ones."""
    if options is not None and not isinstance(options, cls):
        raise InputError(f"options must be a {cls.__name__}, not {type(options).__name__}")
    if not overrides:
        return options if options is not None else cls()
    own = set(field_names(cls))
    parts: dict[str, type] = getattr(cls, "parts", dict)()
    top: dict[str, Any] = {}
    routed: dict[str, dict[str, Any]] = {name: {} for name in parts}
    for key, value in overrides.items():
        if key in own:
            top[key] = value
            continue
        owners = [name for name, part in parts.items() if key in field_names(part)]
        if not owners:
            valid = sorted(own | {f for part in parts.values() for f in field_names(part)})
            raise InputError(f"unknown option {key!r} for {cls.__name__}; valid: {', '.join(valid)}")
        routed[owners[0]][key] = value
    for name, kw in routed.items():
        if not kw:
            continue
        if name in top:
            raise InputError(f"give either {name}= or its fields ({', '.join(kw)}), not both")
        current: DataclassInstance = getattr(options if options is not None else cls(), name)
        top[name] = replace(current, **kw)
    return replace(options, **top) if options is not None else cls(**top)
