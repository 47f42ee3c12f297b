"""Reading a configuration file: the text of ``--config FILE`` turned into a dict of fields.

A file is JSON (``.json``) or TOML (``.toml``); ``-`` reads standard input (JSON when its first
character is ``{``, else TOML). The ``<name>.json`` that ``dcim generate`` writes is a
configuration too: its records of the generated files (:data:`GENERATE_KEYS`) are dropped.
Every failure is one :class:`~dcim.golden.errors.InputError` (or the OSError of an unreadable
file), never a traceback: a file that is not UTF-8, not valid JSON/TOML, nested too deeply for
the parser, or not a mapping. :meth:`dcim.golden.config.CoreConfig.load` validates the fields.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from .errors import InputError

__all__ = ["GENERATE_KEYS", "STDIN", "read_config_data"]

#: The name that reads standard input.
STDIN = "-"
#: The keys ``dcim generate`` adds to a configuration in ``<name>.json`` (besides ``derived``,
#: which every configuration file may hold): figures, the array view, the file names and their
#: digests, the tool command lines.
GENERATE_KEYS = ("figures", "array_model", "files", "sha256", "tools")


def _parse(text: str, kind: str, where: str) -> Any:
    try:
        if kind == "json":
            return json.loads(text)
        return tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{where}: not valid {kind.upper()} ({exc})") from None
    except RecursionError:
        raise InputError(f"{where}: not a configuration ({kind.upper()} nested too deeply for "
                         "its parser)") from None


def read_config_data(path: str | Path) -> dict[str, Any]:
    """Read the configuration at ``path`` (``-``: standard input) as a dict of fields.

    Returns
    -------
    dict
        The mapping the file holds, without the keys of :data:`GENERATE_KEYS` when it is the
        record ``dcim generate`` writes (it has ``files`` and ``tools``).

    Raises
    ------
    InputError
        An unsupported suffix, text that is not UTF-8, not valid JSON/TOML, nested too deeply,
        or not a mapping.
    OSError
        The file cannot be read.
    """
    if str(path) == STDIN:
        where = "--config - (standard input)"
        raw = sys.stdin.buffer.read()
        kind = "json" if raw.lstrip()[:1] == b"{" else "toml"
    else:
        path = Path(path)
        where = str(path)
        if path.suffix not in (".json", ".toml"):
            raise InputError(f"config file must end in .json or .toml, got {path.name!r}")
        kind = path.suffix[1:]
        raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: not a text file (not UTF-8 at byte {exc.start})") from None
    data = _parse(text, kind, where)
    if not isinstance(data, dict):
        raise InputError(f"{where}: a configuration must be a {kind.upper()} object of fields, "
                         f"got {type(data).__name__}")
    if "files" in data and "tools" in data:  # dcim generate's record of a configuration
        data = {k: v for k, v in data.items() if k not in GENERATE_KEYS}
    return data
