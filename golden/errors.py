"""The one exception type for bad user input.

Validation code (a configuration field, a data or model file, a command-line option) raises
:class:`InputError`; the command line reports it as one line with exit code 2. Any other
exception out of a command is a bug: ``dcim`` reports it as an internal error (exit code 1) and
keeps its traceback in a log file.

:class:`InputError` is a :class:`ValueError`, and :class:`InputTypeError` (a value of the wrong
type) also a :class:`TypeError`, so callers that catch the built-in types keep working.
"""

from __future__ import annotations

__all__ = ["InputError", "InputTypeError"]


class InputError(ValueError):
    """A user input is invalid; the message names the input, what is allowed and the value."""


class InputTypeError(InputError, TypeError):
    """A user input has the wrong type (an :class:`InputError` that is also a TypeError)."""
