"""Switching activity of the core on a workload, as OpenSTA ``set_power_activity`` commands.

The Debian OpenSTA cannot read VCD or SAIF, so the flow measures toggle rates itself:

1. :func:`workload` draws weights and activation vectors (``random``: uniform INT8 over the
   configured ranges; ``sparse``: ReLU-like activations, about 60 % zeros and small positive
   values, and Gaussian-like weights).
2. :func:`write_testbench` writes a Verilog testbench that streams the weights through
   ``s_axis_w`` and the vectors through ``s_axis_x`` (tuser EMIT, or ACC and EMIT for a K-tiled
   workload; idle cycles between vectors if asked) with ``m_axis_y`` always ready,
   and dumps a VCD of the compute window only (after the weights are loaded); :class:`Program`
   is the same testbench for the cycle-based simulator (:mod:`dcim.synth.gatesim`).
3. :func:`toggle_rates` reads that VCD (with pyvcd's tokenizer) and returns, per requested
   signal bit, the toggles per clock cycle and the fraction of time at 1 (the cycle-based
   simulator counts them itself).
4. :func:`activity_tcl` turns the rates of cell pins and input ports into OpenSTA commands
   (``sta::set_power_pin_activity`` per pin, ``set_power_activity -input_ports``).
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from vcd.reader import TokenKind, tokenize

from ..golden.config import CoreConfig
from ..verif.beats import pack_beats

__all__ = ["WORKLOADS", "BitRate", "Program", "Workload", "activity_tcl", "toggle_rates",
           "workload", "write_testbench"]

#: Workload names understood by :func:`workload`.
WORKLOADS = ("random", "sparse")

@dataclasses.dataclass(frozen=True)
class Workload:
    """Weights (``rows`` x ``cols``) and activation vectors (``n`` x ``rows``) as Python ints.

    ``gap`` idle cycles follow each vector's last beat on the activation stream (0: back to
    back); every ``emit_every``-th vector's pass emits a result (tuser EMIT), the others
    accumulate into the partial sums (tuser ACC after the first of each group of
    ``emit_every``): a K-tiled layer with ``K = emit_every``.
    """

    name: str
    weights: list[list[int]]
    vectors: list[list[int]]
    gap: int = 0
    emit_every: int = 1

    @property
    def macs(self) -> int:
        """Multiply-accumulates the vectors perform on the array."""
        return len(self.vectors) * len(self.weights) * len(self.weights[0])

    @property
    def results(self) -> int:
        """Result packets the vectors produce."""
        return len(self.vectors) // self.emit_every

    def user(self, i: int) -> int:
        """The ``tuser`` of vector ``i`` (bit 0 ACC, bit 1 EMIT)."""
        k = i % self.emit_every
        return (1 if k else 0) | (2 if k == self.emit_every - 1 else 0)


def workload(cfg: CoreConfig, name: str, n_vectors: int, seed: int = 1, gap: int = 0,
             emit_every: int = 1) -> Workload:
    """Draw workload ``name`` (one of :data:`WORKLOADS`) for ``cfg``; ``gap`` and
    ``emit_every`` as in :class:`Workload`.

    Raises
    ------
    ValueError
        ``name`` is not a workload, ``n_vectors`` is not positive, ``gap`` is negative, or
        ``emit_every`` does not divide ``n_vectors``.
    """
    if name not in WORKLOADS:
        raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}, got {name!r}")
    if n_vectors < 1:
        raise ValueError(f"vectors must be >= 1, got {n_vectors}")
    if gap < 0:
        raise ValueError(f"gap must be >= 0 cycles, got {gap}")
    if emit_every < 1 or n_vectors % emit_every:
        raise ValueError(f"emit_every must be >= 1 and divide the vectors ({n_vectors}), "
                         f"got {emit_every}")
    rng = random.Random(f"{seed}-{name}")
    wl, wh = cfg.weight_range
    al, ah = cfg.act_range
    if name == "random":
        w = [[rng.randint(wl, wh) for _ in range(cfg.cols)] for _ in range(cfg.rows)]
        x = [[rng.randint(al, ah) for _ in range(cfg.rows)] for _ in range(n_vectors)]
    else:
        sw = (wh - wl) / 8
        w = [[max(wl, min(wh, round(rng.gauss(0, sw)))) for _ in range(cfg.cols)]
             for _ in range(cfg.rows)]
        sa = ah / 4
        x = [[max(0, min(ah, round(rng.gauss(-0.25 * sa, sa)))) for _ in range(cfg.rows)]
             for _ in range(n_vectors)]
    return Workload(name, w, x, gap, emit_every)


def _ident(name: str) -> str:
    """A Verilog identifier for ``name`` (escaped if needed)."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name) else f"\\{name} "


def _beats(cfg: CoreConfig, wl: Workload) -> tuple[list[int], list[int]]:
    """The weight and activation stream beats of workload ``wl``."""
    wbeats = [b for row in wl.weights for b in pack_beats(row, 8, cfg.w_lanes)]
    xbeats = [b for vec in wl.vectors for b in pack_beats(vec, 8, cfg.x_lanes)]
    return wbeats, xbeats


def _drain_limit(cfg: CoreConfig, n_vec: int, gap: int = 0) -> int:
    """Rising edges the testbench waits at most for the last results: four times
    :meth:`~dcim.golden.config.CoreConfig.latency_bound` (no stalls), plus 64 for reset and
    the idle ``gap`` of every vector."""
    return 64 + 4 * cfg.latency_bound(n_vec) + n_vec * gap


def write_testbench(cfg: CoreConfig, ports: dict[str, tuple[str, int]], wl: Workload,
                    directory: Path, period_ns: float = 10.0, dump: str = "activity.vcd",
                    scopes: Sequence[str] = ("",)) -> Path:
    """Write ``tb_<workload>.v`` and its stimulus files into ``directory``; return the testbench.

    The testbench drives every input port: ``clk``, ``rst`` (high for 4 cycles), the weight
    and activation streams, ``m_axis_y__tready`` = 1 and 0 on every other input. Inputs change
    at the falling clock edge; a quarter period later, when the logic has settled, the
    testbench samples ``tready`` (a beat is taken at the next rising edge when it is 1) and
    counts result packets (``tvalid`` and ``tlast``). Each vector's first beat carries its
    ``tuser`` (:meth:`Workload.user`) and its last beat is followed by ``wl.gap`` idle cycles
    (``tvalid`` 0). It samples nothing at a rising edge, so
    no result depends on the order in which the simulator runs the processes of one instant;
    :class:`Program` is the same testbench for :mod:`dcim.synth.gatesim`. The VCD holds
    the nets (not the cells' insides) of each module instance in ``scopes`` (dotted paths
    below the core, ``""`` for the core itself) over the compute window, from a falling edge
    after the weights are loaded to the falling edge after the last result. It prints
    ``RESULTS <n>`` (result packets seen) and ``WINDOW <cycles>`` (rising edges in the VCD).
    """
    directory = Path(directory)
    wbeats, xbeats = _beats(cfg, wl)
    (directory / f"w_{wl.name}.hex").write_text(
        "\n".join(f"{b:x}" for b in wbeats) + "\n")
    (directory / f"x_{wl.name}.hex").write_text(
        "\n".join(f"{b:x}" for b in xbeats) + "\n")
    decl, conn = [], []
    for name, (direction, width) in ports.items():
        rng = f"[{width - 1}:0] " if width > 1 else ""
        ident = _ident(name)
        kind = "reg" if direction == "input" else "wire"
        init = " = 0" if direction == "input" else ""
        decl.append(f"  {kind} {rng}{ident}{init};")
        conn.append(f"    .{ident}({ident})")
    half = period_ns / 2
    quarter = period_ns / 4
    n_vec = len(wl.vectors)
    k = wl.emit_every
    gap = (f"\n      if ((i % {cfg.x_beats}) == {cfg.x_beats - 1}) begin @(negedge clk) "
           f"s_axis_x__tvalid = 0; repeat ({wl.gap - 1}) @(negedge clk); end" if wl.gap else "")
    has_tlast = "s_axis_x__tlast" in ports
    dumps = "\n".join(
        "    $dumpvars(1, dut" + "".join("." + _ident(p) for p in s.split(".") if p) + ");"
        for s in scopes)
    xlast = (f"s_axis_x__tlast = (i % {cfg.x_beats}) == {cfg.x_beats - 1};" if has_tlast
             else "")
    return_path = directory / f"tb_{wl.name}.v"
    return_path.write_text(f"""`timescale 1ns/1ps
module tb;
{chr(10).join(decl)}
  reg [{cfg.w_stream_bits - 1}:0] wmem [0:{len(wbeats) - 1}];
  reg [{cfg.x_stream_bits - 1}:0] xmem [0:{len(xbeats) - 1}];
  integer i, results = 0, window = 0, dumping = 0;
  {cfg.name} dut (
{("," + chr(10)).join(conn)}
  );
  always #{half} clk = ~clk;
  always @(posedge clk) if (dumping) window = window + 1;
  always @(negedge clk) begin
    #{quarter};
    if (m_axis_y__tvalid === 1'b1 && m_axis_y__tlast === 1'b1) results = results + 1;
  end
  initial begin
    $readmemh("w_{wl.name}.hex", wmem);
    $readmemh("x_{wl.name}.hex", xmem);
    rst = 1; m_axis_y__tready = 1;
    repeat (4) @(posedge clk);
    @(negedge clk) rst = 0;
    for (i = 0; i < {len(wbeats)}; i = i + 1) begin
      @(negedge clk);
      s_axis_w__tdata = wmem[i]; s_axis_w__tvalid = 1;
      s_axis_w__tlast = (i % {cfg.w_beats}) == {cfg.w_beats - 1};
      #{quarter}; while (s_axis_w__tready !== 1'b1) begin @(negedge clk); #{quarter}; end
      @(posedge clk);
    end
    @(negedge clk) s_axis_w__tvalid = 0;
    repeat (8) @(negedge clk);
    $dumpfile("{dump}");
{dumps}
    dumping = 1;
    for (i = 0; i < {len(xbeats)}; i = i + 1) begin
      @(negedge clk);
      s_axis_x__tdata = xmem[i]; s_axis_x__tvalid = 1;
      s_axis_x__tuser = ((i % {cfg.x_beats}) == 0) ?
        {{((i / {cfg.x_beats}) % {k}) == {k - 1}, ((i / {cfg.x_beats}) % {k}) != 0}} : 2'b00;
      {xlast}
      #{quarter}; while (s_axis_x__tready !== 1'b1) begin @(negedge clk); #{quarter}; end
      @(posedge clk);{gap}
    end
    @(negedge clk) s_axis_x__tvalid = 0;
    i = 0;
    while (results < {wl.results} && i < {_drain_limit(cfg, n_vec, wl.gap)})
      begin @(posedge clk); i = i + 1; end
    @(negedge clk);
    $dumpoff;
    $display("RESULTS %0d", results);
    $display("WINDOW %0d", window);
    $finish;
  end
endmodule
""")
    return return_path


class Program:
    """The testbench of :func:`write_testbench` as a :mod:`dcim.synth.gatesim` lane program:
    the same stimulus at the same clock edges, the same window and result count."""

    def __init__(self, cfg: CoreConfig, ports: dict[str, tuple[str, int]], wl: Workload) -> None:
        self.cfg, self.wl = cfg, wl
        self.has_tlast = "s_axis_x__tlast" in ports
        self.results = 0

    def monitor(self, read) -> None:
        """Count a result packet (sampled after the falling edge, as the testbench does)."""
        if read("m_axis_y__tvalid") == 1 and read("m_axis_y__tlast") == 1:
            self.results += 1

    def __iter__(self):
        cfg = self.cfg
        wbeats, xbeats = _beats(cfg, self.wl)
        n_vec = len(self.wl.vectors)
        yield {"rst": 1, "m_axis_y__tready": 1}
        for _ in range(4):
            yield ("posedge",)
        yield ("negedge",)
        yield {"rst": 0}
        for i, b in enumerate(wbeats):
            yield ("negedge",)
            yield {"s_axis_w__tdata": b, "s_axis_w__tvalid": 1,
                   "s_axis_w__tlast": int(i % cfg.w_beats == cfg.w_beats - 1)}
            while (yield ("read", "s_axis_w__tready")) != 1:
                yield ("negedge",)
            yield ("posedge",)
        yield ("negedge",)
        yield {"s_axis_w__tvalid": 0}
        for _ in range(8):
            yield ("negedge",)
        yield ("window", True)
        for i, b in enumerate(xbeats):
            yield ("negedge",)
            beat = {"s_axis_x__tdata": b, "s_axis_x__tvalid": 1,
                    "s_axis_x__tuser": (self.wl.user(i // cfg.x_beats)
                                        if i % cfg.x_beats == 0 else 0)}
            if self.has_tlast:
                beat["s_axis_x__tlast"] = int(i % cfg.x_beats == cfg.x_beats - 1)
            yield beat
            while (yield ("read", "s_axis_x__tready")) != 1:
                yield ("negedge",)
            yield ("posedge",)
            if self.wl.gap and i % cfg.x_beats == cfg.x_beats - 1:
                yield ("negedge",)
                yield {"s_axis_x__tvalid": 0}
                for _ in range(self.wl.gap - 1):
                    yield ("negedge",)
        yield ("negedge",)
        yield {"s_axis_x__tvalid": 0}
        i = 0
        while self.results < self.wl.results and i < _drain_limit(cfg, n_vec, self.wl.gap):
            yield ("posedge",)
            i += 1
        yield ("negedge",)
        yield ("window", False)


@dataclasses.dataclass(frozen=True)
class BitRate:
    """Toggle rate of one signal bit: toggles per clock cycle and the fraction of time at 1."""

    activity: float
    duty: float


def toggle_rates(vcd_path: Path, wanted: Iterable[tuple[str, str, int]], cycles: int,
                 ) -> dict[tuple[str, str, int], BitRate]:
    """Measure toggles of the ``wanted`` bits in a VCD (read with pyvcd's tokenizer).

    A toggle is a change between 0 and 1 (changes from or to X or Z count nothing); the time at
    1 runs from the first time stamp to the last.

    Parameters
    ----------
    vcd_path : Path
        The VCD (Icarus format).
    wanted : iterable of (scope, name, bit)
        ``scope`` is the dotted instance path below the dumped top (``""`` for the top, e.g.
        ``"weights"``), ``name`` the signal name without escape, ``bit`` the bit index.
    cycles : int
        Clock cycles the VCD covers (the denominator of the toggle rate).

    Returns
    -------
    dict
        A :class:`BitRate` for every wanted bit found in the VCD (missing ones are left out).

    Raises
    ------
    ValueError
        ``cycles`` is below 1.
    vcd.reader.VCDParseError
        The file is not a VCD.
    """
    if cycles < 1:
        raise ValueError(f"cycles must be >= 1, got {cycles}")
    want: dict[tuple[str, str], set[int]] = {}
    for scope, name, bit in wanted:
        want.setdefault((scope, name), set()).add(bit)
    ids: dict[str, list[tuple[str, str, int, int]]] = {}  # code -> [(scope, name, lsb, width)]
    scopes: list[str] = []
    state: dict[str, str] = {}
    toggles: dict[str, list[int]] = {}
    high: dict[str, list[int]] = {}
    since: dict[str, int] = {}
    t = 0
    t0 = None
    kinds = TokenKind
    with open(vcd_path, "rb") as f:
        for tok in tokenize(f):
            kind = tok.kind
            if kind is kinds.CHANGE_TIME:
                t = tok.data
                if t0 is None:
                    t0 = t
                continue
            if kind is kinds.CHANGE_SCALAR or kind is kinds.CHANGE_VECTOR:
                code, val = tok.data
                entries = ids.get(code)
                if entries is None:
                    continue
                width = entries[0][3]
                if isinstance(val, int):
                    val = format(val, f"0{width}b")
                elif len(val) < width:
                    pad = val[0] if val[0] in "xzXZ" else "0"
                    val = pad * (width - len(val)) + val
                old = state.get(code)
                if old is not None:
                    tg, hi = toggles[code], high[code]
                    dt = t - since[code]
                    for k in range(width):
                        o, n = old[width - 1 - k], val[width - 1 - k]
                        if o == "1":
                            hi[k] += dt
                        if o != n and o in "01" and n in "01":
                            tg[k] += 1
                state[code] = val
                since[code] = t
            elif kind is kinds.SCOPE:
                scopes.append(tok.data.ident)
            elif kind is kinds.UPSCOPE:
                scopes.pop()
            elif kind is kinds.VAR:
                var = tok.data
                index = var.bit_index
                lsb = 0 if index is None else index if isinstance(index, int) else min(index)
                scope = ".".join(scopes[2:])  # drop the testbench and the core
                if (scope, var.reference) in want:
                    ids.setdefault(var.id_code, []).append(
                        (scope, var.reference, lsb, var.size))
            elif kind is kinds.ENDDEFINITIONS:
                toggles = {c: [0] * v[0][3] for c, v in ids.items()}
                high = {c: [0] * v[0][3] for c, v in ids.items()}
    t_end = t
    out: dict[tuple[str, str, int], BitRate] = {}
    span = max(t_end - (t0 or 0), 1e-12)
    for code, entries in ids.items():
        width = entries[0][3]
        val = state.get(code, "0" * width)
        for k in range(width):
            if val[width - 1 - k] == "1":
                high[code][k] += t_end - since.get(code, t_end)
        for scope, name, lsb, _ in entries:
            for bit in want[(scope, name)]:
                k = bit - lsb if bit >= lsb else bit
                if 0 <= k < width:
                    out[(scope, name, bit)] = BitRate(toggles[code][k] / cycles,
                                                      min(1.0, high[code][k] / span))
    return out


def activity_tcl(pin_rates: dict[str, BitRate], port_rates: dict[str, BitRate]) -> str:
    """OpenSTA commands setting the activity of instance pins and input ports.

    Pins and ports with the same rounded (activity, duty) are grouped into one command.
    """
    groups: dict[tuple[str, float, float], list[str]] = {}
    for kind, rates in (("-pins", pin_rates), ("-input_ports", port_rates)):
        for name, r in rates.items():
            groups.setdefault((kind, round(r.activity, 4), round(r.duty, 3)), []).append(name)
    lines = []
    for (kind, act, duty), names in sorted(groups.items()):
        for i in range(0, len(names), 500):
            objs = " ".join("{" + n + "}" for n in names[i:i + 500])
            if kind == "-pins":
                # set_power_activity -pins is broken in OpenSTA 2.0.17 (and only takes inputs)
                lines.append(f"foreach p [get_pins {{{objs}}}] "
                             f"{{ sta::set_power_pin_activity $p {act} {duty} }}")
            else:
                lines.append(f"set_power_activity -input_ports [get_ports {{{objs}}}] "
                             f"-activity {act} -duty {duty}")
    return "\n".join(lines) + "\n"
