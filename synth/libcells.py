"""Liberty cells as three-valued functions, for the cycle-based simulator
(:mod:`dcim.synth.gatesim`).

Every cell's function comes from the liberty (``function`` of each output pin, ``ff`` groups for
flip-flops), as a table over its inputs in three values: 0, 1 and X (unknown), with the output X
exactly when the known inputs do not decide it. Cells this cannot model (latches, tri-state
outputs, flip-flops with asynchronous clear or preset, more than :data:`MAX_INPUTS` inputs) carry
the reason.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["MAX_INPUTS", "X", "CellModel", "parse_function", "parse_liberty_cells"]

#: The unknown value in the three-valued net arrays (0 and 1 are themselves).
X = 2
#: Largest number of inputs of a combinational cell (tables have 3**MAX_INPUTS entries).
MAX_INPUTS = 4


def _groups(text: str):
    """Yield ``(kind, args, body)`` of the top-level groups of liberty ``text``."""
    pos = 0
    head = re.compile(r"(\w+)\s*\(([^)]*)\)\s*\{")
    while True:
        m = head.search(text, pos)
        if not m:
            return
        depth, i = 1, m.end()
        while depth:
            j = text.find("}", i)
            k = text.find("{", i)
            if j < 0:
                raise ValueError(f"unclosed liberty group {m.group(1)}({m.group(2)})")
            if 0 <= k < j:
                depth, i = depth + 1, k + 1
            else:
                depth, i = depth - 1, j + 1
        yield m.group(1), m.group(2).strip().strip('"'), text[m.end():i - 1]
        pos = i


def _attr(body: str, name: str) -> str | None:
    """The value of simple attribute ``name`` in a group body, outside its subgroups."""
    flat = body
    for _kind, _args, sub in list(_groups(body)):
        flat = flat.replace(sub, "")
    m = re.search(rf"(?<![\w]){name}\s*:\s*(\"[^\"]*\"|[^;\n]+)\s*;", flat)
    return m.group(1).strip().strip('"').strip() if m else None


_TOKEN = re.compile(r"\s*(?:([A-Za-z_][\w\[\]\.]*)|([01])|(.))")


def parse_function(expr: str) -> Callable[[dict[str, bool]], bool]:
    """A liberty Boolean ``function`` (``!``/``'`` not, ``^`` xor, ``&``/``*``/space and,
    ``+``/``|`` or, highest precedence first) as a function of a ``{pin: bool}`` mapping.

    Raises
    ------
    ValueError
        The expression does not parse.
    """
    toks: list[tuple[str, str]] = []
    for m in _TOKEN.finditer(expr):
        if m.group(1):
            toks.append(("id", m.group(1)))
        elif m.group(2):
            toks.append(("const", m.group(2)))
        elif m.group(3):
            toks.append(("op", m.group(3)))
    pos = 0

    def peek() -> tuple[str, str] | None:
        return toks[pos] if pos < len(toks) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        pos += 1
        return toks[pos - 1] if pos <= len(toks) else ("eof", "")

    def primary():
        t = take()
        if t == ("op", "!"):
            inner = primary()
            node = lambda v: not inner(v)  # noqa: E731
        elif t == ("op", "("):
            node = or_expr()
            if take() != ("op", ")"):
                raise ValueError(f"unbalanced parentheses in liberty function {expr!r}")
        elif t[0] == "id":
            name = t[1]
            node = lambda v: v[name]  # noqa: E731
        elif t[0] == "const":
            c = t[1] == "1"
            node = lambda v: c  # noqa: E731
        else:
            raise ValueError(f"cannot parse liberty function {expr!r}")
        while peek() == ("op", "'"):
            take()
            prev = node
            node = lambda v, p=prev: not p(v)  # noqa: E731
        return node

    def xor_expr():
        node = primary()
        while peek() == ("op", "^"):
            take()
            a, b = node, primary()
            node = lambda v, a=a, b=b: a(v) != b(v)  # noqa: E731
        return node

    def and_expr():
        node = xor_expr()
        while True:
            t = peek()
            if t in (("op", "&"), ("op", "*")):
                take()
            elif not (t and (t[0] in ("id", "const") or t in (("op", "!"), ("op", "(")))):
                return node
            a, b = node, xor_expr()
            node = lambda v, a=a, b=b: a(v) and b(v)  # noqa: E731

    def or_expr():
        node = and_expr()
        while peek() in (("op", "+"), ("op", "|")):
            take()
            a, b = node, and_expr()
            node = lambda v, a=a, b=b: a(v) or b(v)  # noqa: E731
        return node

    fn = or_expr()
    if pos != len(toks):
        raise ValueError(f"trailing tokens in liberty function {expr!r}")
    return fn


def _names(expr: str) -> list[str]:
    return sorted({m.group(1) for m in _TOKEN.finditer(expr) if m.group(1)})


def _table3(fn: Callable[[dict[str, bool]], bool], inputs: Sequence[str]) -> np.ndarray:
    """``fn`` over ``inputs`` as a three-valued table of ``3**MAX_INPUTS`` entries, indexed by
    ``sum(v_i * 3**i)`` (``v_i`` in 0, 1, X); unused input positions are ignored."""
    n = len(inputs)
    out = np.empty(3 ** MAX_INPUTS, dtype=np.uint8)
    for code in range(3 ** MAX_INPUTS):
        digits = [(code // 3 ** i) % 3 for i in range(MAX_INPUTS)][:n]
        unknown = [i for i, d in enumerate(digits) if d == X]
        seen = set()
        for fill in itertools.product((0, 1), repeat=len(unknown)):
            vals = list(digits)
            for i, f in zip(unknown, fill):
                vals[i] = f
            seen.add(bool(fn({p: bool(v) for p, v in zip(inputs, vals)})))
            if len(seen) == 2:
                break
        out[code] = X if len(seen) == 2 else int(seen.pop())
    return out


@dataclasses.dataclass
class CellModel:
    """One liberty cell: input pins, and per output pin its three-valued table over ``inputs``.

    For a flip-flop, ``next_state`` is the table of the next state over ``inputs`` (sampled at the
    clock edge on pin ``clock``, rising unless ``falling``) and ``outputs`` are tables over the
    single state variable (identity or inverted).
    """

    name: str
    inputs: list[str]
    outputs: dict[str, np.ndarray]
    clock: str | None = None
    falling: bool = False
    next_state: np.ndarray | None = None
    unsupported: str | None = None


def parse_liberty_cells(text: str) -> dict[str, CellModel]:
    """Every cell of a liberty file as a :class:`CellModel` (cells this simulator cannot model
    carry the reason in ``unsupported``)."""
    cells: dict[str, CellModel] = {}
    for _kind, _args, lib in _groups(text):
        for kind, name, body in _groups(lib):
            if kind != "cell":
                continue
            pins: dict[str, tuple[str, str | None]] = {}
            ff = latch = None
            for sk, sargs, sbody in _groups(body):
                if sk == "pin":
                    pins[sargs] = ((_attr(sbody, "direction") or "").lower(),
                                   _attr(sbody, "function"))
                elif sk == "ff":
                    ff = (sargs, sbody)
                elif sk in ("latch", "statetable"):
                    latch = sk
            inputs = sorted(p for p, (d, _) in pins.items() if d == "input")
            model = CellModel(name, inputs, {})
            if latch:
                model.unsupported = f"{latch} group"
            elif any(d not in ("input", "output") for d, _ in pins.values()):
                model.unsupported = "a pin that is neither input nor output"
            elif "three_state" in body:
                model.unsupported = "tri-state output"
            elif ff is not None:
                state = [s.strip() for s in ff[0].split(",")]
                if _attr(ff[1], "clear") or _attr(ff[1], "preset"):
                    model.unsupported = "flip-flop with asynchronous clear or preset"
                else:
                    clk = (_attr(ff[1], "clocked_on") or "").replace(" ", "")
                    m = re.fullmatch(r"\(?(!?)\(?([A-Za-z_]\w*)\)?\)?('?)", clk)
                    nxt = _attr(ff[1], "next_state")
                    if not m or nxt is None or m.group(2) not in inputs:
                        model.unsupported = f"flip-flop clocked on {clk!r}"
                    else:
                        model.clock = m.group(2)
                        model.falling = bool(m.group(1)) != bool(m.group(3))
                        data = [p for p in inputs if p != model.clock]
                        if len(data) > MAX_INPUTS:
                            model.unsupported = f"more than {MAX_INPUTS} inputs"
                        else:
                            model.inputs = data
                            model.next_state = _table3(parse_function(nxt), data)
                            for p, (d, fn) in pins.items():
                                if d != "output":
                                    continue
                                if fn is None or not set(_names(fn)) <= set(state):
                                    model.unsupported = f"output {p} not a function of the state"
                                    break
                                f = parse_function(fn)
                                iq = state[0]
                                table = _table3(lambda v, f=f, iq=iq, st=state: f(
                                    {st[0]: v[iq], **({st[1]: not v[iq]} if len(st) > 1
                                                      else {})}), [iq])
                                model.outputs[p] = table
            else:
                if len(inputs) > MAX_INPUTS:
                    model.unsupported = f"more than {MAX_INPUTS} inputs"
                for p, (d, fn) in pins.items():
                    if d != "output" or model.unsupported:
                        continue
                    if fn is None or not set(_names(fn)) <= set(inputs):
                        model.unsupported = f"output {p} without a function of the inputs"
                        break
                    model.outputs[p] = _table3(parse_function(fn), inputs)
            cells[name] = model
    return cells
