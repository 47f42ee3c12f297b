"""Zero-delay, cycle-based simulation of a mapped gate-level netlist, for switching activity.

The activity the power report needs is every net's toggles per clock cycle and its time at 1
over a workload. An event-driven simulator (Icarus on the netlist and the liberty package's cell
models) gets it through a VCD of every net, which for a 256-row array takes most of the run.
This module computes the same figures directly:

* The hierarchical Yosys JSON netlist is flattened into one array of net bits (module instances
  share their port nets with the parent).
* Every leaf cell's function comes from the liberty (:mod:`dcim.synth.libcells`: ``function``
  of each output pin, ``ff`` groups for flip-flops), as a table over its inputs in three values:
  0, 1 and X (unknown), with the output X exactly when the known inputs do not decide it.
  Flip-flops start at X, as in the 4-state simulation, so nets that are still undefined count
  neither toggles nor time at 1.
* The combinational cells are levelized once; a clock edge updates the flip-flops and a single
  pass over the levels settles the logic (zero delay: no glitches). The inputs change at the
  falling edge and the flip-flops at the rising one, so the values are settled twice per cycle,
  and a net toggles at most twice per cycle, as in the zero-delay event-driven simulation.
* Several stimuli (*lanes*, e.g. the two workloads) run side by side on the same netlist: every
  net has one value per lane, and every table lookup serves all lanes at once.

Supported: single- and multi-output combinational cells with up to :data:`MAX_INPUTS` inputs, and
edge-triggered flip-flops without asynchronous clear or preset clocked by one top-level port.
:func:`load` raises :class:`Unsupported` for anything else (latches, tri-state cells, clock
gating, combinational loops); the flow then uses the event-driven simulator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np

from .libcells import MAX_INPUTS, X, CellModel

__all__ = ["Lane", "Netlist", "Unsupported", "load", "run"]

#: 1 for a 0-1 or 1-0 transition, indexed by ``old * 3 + new`` (X changes count nothing).
_TOGGLE = np.array([0, 1, 0, 1, 0, 0, 0, 0, 0], dtype=np.int64)


class Unsupported(ValueError):
    """The netlist or the library uses something this simulator does not model."""


# ------------------------------------------------------------------------------------------------
# The flattened netlist
@dataclasses.dataclass
class Netlist:
    """A flattened mapped netlist ready to simulate (see :func:`load`).

    Net index 0 is constant 0, 1 is constant 1, 2 is undriven (always X).
    """

    n_nets: int
    ports: dict[str, tuple[str, list[int]]]
    clock: int
    pin_nets: dict[str, int]
    const_pins: dict[str, int]
    comb_in: np.ndarray
    comb_out: np.ndarray
    comb_table: np.ndarray
    levels: list[tuple[int, int]]
    tables: np.ndarray
    table_inputs: np.ndarray
    ff_in: np.ndarray
    ff_next: np.ndarray
    ff_state: np.ndarray
    ff_out: np.ndarray
    ff_out_table: np.ndarray
    ff_out_state: np.ndarray
    ff_falling: np.ndarray

    @property
    def cells(self) -> int:
        """Leaf cells (outputs of multi-output cells count once each)."""
        return len(self.comb_out) + len(self.ff_state)


def load(netlist: dict, top: str, cells: dict[str, CellModel], clock: str = "clk") -> Netlist:
    """Flatten module ``top`` of a Yosys JSON ``netlist`` with the liberty ``cells``.

    Also maps every leaf cell pin (OpenSTA name, ``inst/inst/cell/pin``) to its net
    (``pin_nets``), or to a constant (``const_pins``: 0 or 1).

    Raises
    ------
    Unsupported
        A cell type is unknown or not modelled, a flip-flop is clocked by anything but the
        ``clock`` port, a net has two drivers, or the logic has a combinational loop.
    """
    mods = netlist["modules"]
    n_nets = 3
    ports: dict[str, tuple[str, list[int]]] = {}
    top_map: dict[Any, int] = {"0": 0, "1": 1, "x": 2, "z": 2}
    for name, p in mods[top]["ports"].items():
        if p["direction"] not in ("input", "output"):
            raise Unsupported(f"port {name} is {p['direction']}")
        bits = []
        for b in p["bits"]:
            if b not in top_map:
                top_map[b] = n_nets
                n_nets += 1
            bits.append(top_map[b])
        ports[name] = (p["direction"], bits)
    if clock not in ports or len(ports[clock][1]) != 1:
        raise Unsupported(f"no one-bit clock port {clock!r}")
    clk = ports[clock][1][0]

    comb: list[tuple[list[int], int, int]] = []  # (inputs, output net, table id)
    flops: list[tuple[list[int], int, int, bool, list[tuple[int, int]]]] = []
    table_ids: dict[tuple[str, str], int] = {}
    tables: list[np.ndarray] = []
    table_inputs: list[int] = []
    pin_nets: dict[str, int] = {}
    const_pins: dict[str, int] = {}

    def tid(cell: str, key: str, table: np.ndarray, k: int) -> int:
        if (cell, key) not in table_ids:
            table_ids[(cell, key)] = len(tables)
            tables.append(table)
            table_inputs.append(k)
        return table_ids[(cell, key)]

    stack: list[tuple[str, str, dict[Any, int]]] = [("", top, top_map)]
    while stack:
        path, mod, bitmap = stack.pop()
        prefix = path + "/" if path else ""

        def net(b: Any) -> int:
            nonlocal n_nets
            if b not in bitmap:
                bitmap[b] = n_nets
                n_nets += 1
            return bitmap[b]

        for cname, cell in mods[mod]["cells"].items():
            t = cell["type"]
            conn = cell["connections"]
            if t in mods:
                sub = mods[t]
                child: dict[Any, int] = {"0": 0, "1": 1, "x": 2, "z": 2}
                for pname, p in sub["ports"].items():
                    for cb, pb in zip(p["bits"], conn.get(pname, [])):
                        if isinstance(cb, int):
                            child[cb] = net(pb)
                stack.append((prefix + cname, t, child))
                continue
            model = cells.get(t)
            if model is None:
                raise Unsupported(f"cell type {t} is not in the liberty")
            if model.unsupported:
                raise Unsupported(f"cell type {t}: {model.unsupported}")
            nets = {}
            for pin, bits in conn.items():
                if len(bits) != 1:
                    raise Unsupported(f"cell {prefix}{cname} pin {pin} is {len(bits)} bits wide")
                nets[pin] = net(bits[0])
                full = f"{prefix}{cname}/{pin}"
                if nets[pin] < 2:
                    const_pins[full] = nets[pin]
                else:
                    pin_nets[full] = nets[pin]
            ins = [nets.get(p, 2) for p in model.inputs]
            if model.next_state is not None:
                if nets.get(model.clock) != clk:
                    raise Unsupported(f"flip-flop {prefix}{cname} is not clocked by the "
                                      f"{clock} port")
                outs = [(nets[p], tid(t, p, tb, 1)) for p, tb in model.outputs.items()
                        if p in nets]
                flops.append((ins, tid(t, "next_state", model.next_state, len(ins)), len(flops),
                              model.falling, outs))
            else:
                for p, tb in model.outputs.items():
                    if p in nets:
                        comb.append((ins, nets[p], tid(t, p, tb, len(ins))))

    # drivers: one per net
    driver = np.full(n_nets, -1, dtype=np.int64)
    for i, (_, out, _) in enumerate(comb):
        if driver[out] != -1 or out < 3:
            raise Unsupported(f"net {out} has more than one driver (or drives a constant)")
        driver[out] = i
    ff_out_nets = [o for f in flops for o, _ in f[4]]
    for d, b in ports.values():
        if d == "input":
            for x in b:
                ff_out_nets.append(x)
    for o in ff_out_nets:
        if driver[o] != -1 or o < 3:
            raise Unsupported(f"net {o} has more than one driver")
        driver[o] = -2  # a source
    # levelize (Kahn): level of a cell = 1 + the highest level among its inputs' drivers
    n = len(comb)
    indeg = np.zeros(n, dtype=np.int64)
    fanout: list[list[int]] = [[] for _ in range(n_nets)]
    for i, (ins, _, _) in enumerate(comb):
        for x in set(ins):
            if driver[x] >= 0:
                indeg[i] += 1
                fanout[x].append(i)
    level = np.zeros(n, dtype=np.int64)
    ready = [i for i in range(n) if indeg[i] == 0]
    done = 0
    while ready:
        nxt = []
        for i in ready:
            done += 1
            out = comb[i][1]
            for j in fanout[out]:
                level[j] = max(level[j], level[i] + 1)
                indeg[j] -= 1
                if indeg[j] == 0:
                    nxt.append(j)
        ready = nxt
    if done != n:
        raise Unsupported(f"combinational loop through {n - done} cells")
    order = np.argsort(level, kind="stable")
    lv = level[order]
    bounds = np.flatnonzero(np.diff(lv)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [n]))

    def pad(ins: list[int]) -> list[int]:
        return ins + [0] * (MAX_INPUTS - len(ins))

    comb_in = np.array([pad(comb[i][0]) for i in order], dtype=np.int64).reshape(n, MAX_INPUTS)
    comb_out = np.array([comb[i][1] for i in order], dtype=np.int64)
    comb_table = np.array([comb[i][2] for i in order], dtype=np.int64)
    n_ff = len(flops)
    outs = [(o, t, f[2]) for f in flops for o, t in f[4]]
    return Netlist(
        n_nets=n_nets, ports=ports, clock=clk, pin_nets=pin_nets, const_pins=const_pins,
        comb_in=comb_in, comb_out=comb_out, comb_table=comb_table,
        levels=list(zip(starts.tolist(), ends.tolist())) if n else [],
        tables=np.stack(tables) if tables else np.zeros((0, 3 ** MAX_INPUTS), np.uint8),
        table_inputs=np.array(table_inputs, dtype=np.int64),
        ff_in=np.array([pad(f[0]) for f in flops], dtype=np.int64).reshape(n_ff, MAX_INPUTS),
        ff_next=np.array([f[1] for f in flops], dtype=np.int64),
        ff_state=np.arange(n_ff, dtype=np.int64),
        ff_out=np.array([o for o, _, _ in outs], dtype=np.int64),
        ff_out_table=np.array([t for _, t, _ in outs], dtype=np.int64),
        ff_out_state=np.array([s for _, _, s in outs], dtype=np.int64),
        ff_falling=np.array([f[3] for f in flops], dtype=bool))


# ------------------------------------------------------------------------------------------------
# Simulation
#: What a testbench program yields: a ``{port: value}`` dict (set input ports now),
#: ``("posedge",)`` or ``("negedge",)`` (wait for that clock edge), ``("read", port)`` (answered
#: with the settled value of a port as an int, after every lane's inputs of this instant are set;
#: X bits read as 0), ``("window", True|False)`` (start or end the measured window now).
Request = Any
Program = Generator[Request, Any, None]


@dataclasses.dataclass
class Lane:
    """One stimulus: its testbench program, an optional ``monitor`` called with a read function
    at every falling clock edge (after the inputs of that instant are set), and after the run
    its measured window: per net, 0-1 transitions (``toggles``) and half cycles at 1
    (``high``), and the rising clock edges in the window (``window_cycles``)."""

    program: Program
    monitor: Callable[[Callable[[str], int]], None] | None = None
    toggles: np.ndarray | None = None
    high: np.ndarray | None = None
    window_cycles: int = 0
    half_cycles: int = 0


def _pair_table(table: np.ndarray, k: int) -> np.ndarray:
    """A one-lane table over ``k`` inputs as a two-lane one: index ``sum(x_i * 9**i)`` with
    ``x_i = a_i + 3*b_i`` (lane 0 value ``a_i``, lane 1 value ``b_i``), entry ``a + 3*b``."""
    code = np.arange(9 ** k)
    x = [(code // 9 ** i) % 9 for i in range(k)]
    ia = sum((xi % 3) * 3 ** i for i, xi in enumerate(x)) if k else np.zeros(1, np.int64)
    ib = sum((xi // 3) * 3 ** i for i, xi in enumerate(x)) if k else np.zeros(1, np.int64)
    return (table[ia] + 3 * table[ib]).astype(np.uint8)


class _Sim:
    """The net values of all lanes, two lanes per byte (lane ``2p`` is ``x % 3`` and lane
    ``2p+1`` is ``x // 3`` of ``x[p]``), so that one gather and one table lookup per group of
    cells serve two lanes."""

    def __init__(self, nl: Netlist, lanes: int) -> None:
        self.nl = nl
        self.pairs = (lanes + 1) // 2
        self.x = np.full((self.pairs, nl.n_nets), X + 3 * X, dtype=np.uint8)
        self.x[:, 0], self.x[:, 1] = 0, 1 + 3 * 1
        for d, bits in nl.ports.values():
            if d == "input":
                self.x[:, bits] = 0
        self.state = np.full((self.pairs, len(nl.ff_state)), X + 3 * X, dtype=np.uint8)
        tabs = [_pair_table(t, int(k)) for t, k in zip(nl.tables, nl.table_inputs)]
        offs = np.cumsum([0] + [len(t) for t in tabs])
        self.flat = np.concatenate(tabs) if tabs else np.zeros(1, np.uint8)
        # per level, the cells grouped by input count: (inputs k x n, outputs, table offsets)
        k_cell = nl.table_inputs[nl.comb_table] if len(nl.comb_table) else np.zeros(0, np.int64)
        self.groups = []
        for a, b in nl.levels:
            for k in range(MAX_INPUTS + 1):
                sel = np.flatnonzero(k_cell[a:b] == k) + a
                if len(sel):
                    self.groups.append((k, [np.ascontiguousarray(nl.comb_in[sel, i])
                                            for i in range(k)],
                                        nl.comb_out[sel], offs[nl.comb_table[sel]]))
        # the flip-flops of each clock edge, grouped by data input count
        self.ff: dict[bool, list] = {False: [], True: []}
        k_ff = nl.table_inputs[nl.ff_next] if len(nl.ff_next) else np.zeros(0, np.int64)
        for falling in (False, True):
            for k in range(MAX_INPUTS + 1):
                sel = np.flatnonzero((nl.ff_falling == falling) & (k_ff == k))
                if len(sel):
                    self.ff[falling].append(
                        (sel, [np.ascontiguousarray(nl.ff_in[sel, i]) for i in range(k)],
                         offs[nl.ff_next[sel]]))
        self.ffo = (nl.ff_out, nl.ff_out_state, offs[nl.ff_out_table])
        self.dirty = True

    def _lookup(self, v: np.ndarray, ins: list[np.ndarray], off: np.ndarray) -> np.ndarray:
        code = off.copy()
        w = 1
        for a in ins:
            code += w * v.take(a).astype(np.int64) if w > 1 else v.take(a)
            w *= 9
        return self.flat.take(code)

    def settle(self) -> None:
        if not self.dirty:
            return
        ffo, ffs, ffoff = self.ffo
        for p in range(self.pairs):
            v = self.x[p]
            if len(ffo):
                v[ffo] = self.flat.take(ffoff + self.state[p].take(ffs))
            for _k, ins, out, off in self.groups:
                v[out] = self._lookup(v, ins, off)
        self.dirty = False

    def clock_edge(self, level: int) -> None:
        self.settle()
        for p in range(self.pairs):
            # every next state from the values before the edge, then all updated at once
            new = [(sel, self._lookup(self.x[p], ins, off))
                   for sel, ins, off in self.ff[level == 0]]
            for sel, val in new:
                self.state[p, sel] = val
        self.x[:, self.nl.clock] = level + 3 * level
        self.dirty = True

    def set_input(self, lane: int, port: str, value: int) -> None:
        d, bits = self.nl.ports.get(port, (None, []))
        if d != "input" or bits == [self.nl.clock]:
            raise ValueError(f"no input port {port!r} to drive")
        p, odd = divmod(lane, 2)
        new = np.array([(value >> i) & 1 for i in range(len(bits))], dtype=np.uint8)
        cur = self.x[p, bits]
        self.x[p, bits] = (cur % 3 + 3 * new) if odd else (new + 3 * (cur // 3))
        self.dirty = True

    def lane_values(self, lane: int, nets=slice(None)) -> np.ndarray:
        """Lane ``lane``'s values (0, 1, X) of ``nets``."""
        p, odd = divmod(lane, 2)
        x = self.x[p, nets]
        return x // 3 if odd else x % 3

    def read(self, lane: int, port: str) -> int:
        if port not in self.nl.ports:
            raise ValueError(f"no port {port!r}")
        self.settle()
        col = self.lane_values(lane, self.nl.ports[port][1])
        return sum(1 << i for i, b in enumerate(col.tolist()) if b == 1)


def run(nl: Netlist, lanes: Sequence[Lane], max_half_cycles: int = 10_000_000) -> None:
    """Run every lane's testbench program on ``nl`` until all have ended (see :class:`Lane`
    for what is measured, :data:`Request` for what a program may yield).

    The clock starts low and rises first half a period after time 0; every input is 0 at time 0
    unless a program sets it before its first wait. Every wait ends at the edge asked for; at
    an instant, all lanes' inputs are set before any read is answered.

    Raises
    ------
    RuntimeError
        A program did not end within ``max_half_cycles``.
    ValueError
        A program made an unknown request or named an unknown port.
    """
    sim = _Sim(nl, len(lanes))
    n = len(lanes)
    waiting: list[str | None] = ["start"] * n
    in_window = [False] * n
    prev = np.zeros((n, nl.n_nets), dtype=np.uint8)
    for lane in lanes:
        lane.toggles = np.zeros(nl.n_nets, dtype=np.int64)
        lane.high = np.zeros(nl.n_nets, dtype=np.int64)
        lane.window_cycles = lane.half_cycles = 0

    def step(edge: str) -> None:
        """Resume the lanes waiting for ``edge`` until each waits again."""
        pending: dict[int, Any] = {i: None for i in range(n) if waiting[i] == edge}
        starts, ends = [], []
        first = edge == "start"
        while pending:
            reads = {}
            for i, reply in pending.items():
                lane = lanes[i]
                while True:
                    try:
                        req = next(lane.program) if first else lane.program.send(reply)
                    except StopIteration:
                        waiting[i] = None
                        if in_window[i]:
                            ends.append(i)
                        break
                    reply = None
                    if isinstance(req, dict):
                        for port, value in req.items():
                            sim.set_input(i, port, value)
                    elif req[0] in ("posedge", "negedge"):
                        waiting[i] = req[0]
                        break
                    elif req[0] == "read":
                        reads[i] = req[1]
                        break
                    elif req[0] == "window":
                        (starts if req[1] else ends).append(i)
                    else:
                        raise ValueError(f"unknown testbench request {req!r}")
            first = False
            pending = {i: sim.read(i, port) for i, port in reads.items()}
        sim.settle()
        if edge == "negedge":
            for i, lane in enumerate(lanes):
                if lane.monitor is not None and waiting[i] is not None:
                    lane.monitor(lambda port, i=i: sim.read(i, port))
        for i in range(n):
            if in_window[i]:
                cur, old = sim.lane_values(i), prev[i]
                lanes[i].high += old == 1
                lanes[i].toggles += _TOGGLE.take(old * 3 + cur)
                prev[i] = cur
                lanes[i].half_cycles += 1
                if edge == "posedge":
                    lanes[i].window_cycles += 1
        for i in ends:
            in_window[i] = False
        for i in starts:
            if not in_window[i]:
                prev[i] = sim.lane_values(i)
                in_window[i] = True

    step("start")
    half = 0
    while any(w is not None for w in waiting):
        half += 1
        if half > max_half_cycles:
            raise RuntimeError(f"testbench did not end within {max_half_cycles} half cycles")
        level = half % 2
        sim.clock_edge(level)
        step("posedge" if level else "negedge")
