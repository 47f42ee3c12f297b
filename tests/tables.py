"""Reading the plain-text tables of the reports back into cells, by the column rule.

A table (:func:`dcim.golden.table.table`, tabulate's ``simple`` layout) is one or more heading
lines, a rule of dashes per column, and one line per row; the rule gives each column's span,
so a cell is read from its own column, not by counting words. Kept independent of the code
under test: only the layout is assumed, not the function that makes it.
"""

import re


def _spans(rule: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"-+", rule)]


def _is_rule(line: str) -> bool:
    return bool(re.fullmatch(r" *-+( +-+)*", line))


def _fits(line: str, spans: list[tuple[int, int]]) -> bool:
    """A row has text only inside the columns' spans."""
    if not line.strip() or len(line.rstrip()) > spans[-1][1]:
        return False
    inside = set()
    for a, b in spans:
        inside.update(range(a, b))
    return all(ch == " " or i in inside for i, ch in enumerate(line))


def read_table(text: str, heading: str) -> list[dict[str, str]]:
    """The rows of the first table whose heading lines contain ``heading``, as dicts from the
    column heading (heading lines joined with a space; a blank top line repeats the one on its
    left, as a heading over several columns) to the stripped cell.

    Raises AssertionError if no such table is found.
    """
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not _is_rule(line):
            continue
        spans = _spans(line)
        top = i
        while top > 0 and lines[top - 1].strip() and _fits(lines[top - 1], spans):
            top -= 1
        heads = lines[top:i]
        if not any(heading in h for h in heads):
            continue
        names, group = [], ""
        for a, b in spans:  # a blank top heading continues the group heading on its left
            cells = [h[a:b].strip() for h in heads]
            if len(cells) > 1:
                group = cells[0] or group
                cells[0] = group
            names.append(" ".join(c for c in cells if c))
        rows = []
        for row in lines[i + 1:]:
            if not _fits(row, spans):
                break
            rows.append(dict(zip(names, (row[a:b].strip() for a, b in spans))))
        return rows
    raise AssertionError(f"no table with the heading {heading!r} in:\n{text}")


def rows_by(rows: list[dict[str, str]], column: str) -> dict[str, dict[str, str]]:
    """``rows`` keyed by their cell in ``column`` (which must be unique)."""
    out = {r[column]: r for r in rows}
    assert len(out) == len(rows), f"column {column!r} is not unique"
    return out
