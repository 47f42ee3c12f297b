"""Checks of one user-given value, with the one-line message a user error carries (the
parameter, the allowed range or type, the value given): shared by :mod:`dcim.golden.config`
and :mod:`dcim.golden.schedule`."""

from __future__ import annotations

from typing import Any

from .errors import InputError, InputTypeError

__all__ = ["check_bool", "check_int", "positive_int", "type_name"]


def type_name(value: Any) -> str:
    """The name of ``value``'s type, for messages."""
    return type(value).__name__


def check_int(name: str, value: Any, lo: int, hi: int) -> None:
    """Raise unless ``value`` is an int (not a bool) in [lo, hi]; the message names ``name``,
    the range and the value."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputTypeError(f"{name} must be an int in [{lo}, {hi}], "
                             f"got {type_name(value)} {value!r}")
    if not lo <= value <= hi:
        raise InputError(f"{name} must be in [{lo}, {hi}], got {value}")


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int if it is an integer >= 1 (a numpy integer is fine, a bool is not)."""
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise InputTypeError(f"{name} must be an int >= 1, got {type_name(value)} {value!r}")
    if value < 1:
        raise InputError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_bool(name: str, value: Any) -> None:
    """Raise unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise InputTypeError(f"{name} must be a bool (true or false), "
                             f"got {type_name(value)} {value!r}")
