"""Plain-text tables of the reports: tabulate's ``simple`` layout, indented under a heading."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tabulate import tabulate

__all__ = ["table"]


def table(rows: Iterable[Sequence[object]], headers: Sequence[str], align: str | None = None,
          indent: str = "  ") -> list[str]:
    """The lines of a table: a header (a ``\\n`` in a heading spreads it over two lines), a
    rule of dashes per column, one line per row.

    Parameters
    ----------
    rows : iterable of sequences
        The cells, shown as ``str`` gives them (a numeric-looking string is not re-formatted).
    headers : sequence of str
        One heading per column.
    align : str, optional
        One letter per column, ``l`` (left) or ``r`` (right); default: all left.
    indent : str
        Put in front of every line.

    Returns
    -------
    list of str
        The lines, without newlines.
    """
    colalign = None if align is None else [{"l": "left", "r": "right"}[a] for a in align]
    text = tabulate([["" if c is None else str(c) for c in r] for r in rows], headers=headers,
                    tablefmt="simple", colalign=colalign, disable_numparse=True)
    return [indent + ln for ln in text.splitlines()]
