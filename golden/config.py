"""The one validated configuration of a D-IMC core.

A :class:`CoreConfig` is built once (from keyword arguments, a dict, JSON or TOML) and passed to
the generator, the golden model, the testbenches and synthesis. Everything that follows from the
fields (widths of every stage here; cycles, latencies and beats in :mod:`dcim.golden.schedule`,
a base class) is a property, never a stored copy. This module imports neither amaranth nor
cocotb.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from pathlib import Path
from typing import Any

import tomli_w

from .arith import Rounding
from .checks import check_bool, check_int, type_name
from .configfile import read_config_data
from .errors import InputError, InputTypeError
from .fileio import write_atomic
from .schedule import Schedule
from .tree import TREE_STYLES, TreeStyle, tree_depth, tree_register_levels

__all__ = [
    "MAX_NAME_CHARS",
    "ROUNDING_MODES",
    "SERIAL_BITS_CHOICES",
    "SV_BUILTIN_NAMES",
    "TREE_STYLES",
    "VERILOG_KEYWORDS",
    "CoreConfig",
    "Rounding",
    "TreeStyle",
    "signed_bits_for",
    "value_range",
]

#: Named requantization rounding modes (:class:`~dcim.golden.arith.Rounding`), in the order
#: of their register-map codes.
ROUNDING_MODES = tuple(Rounding)
#: Activation bits consumed per compute cycle that the core supports.
SERIAL_BITS_CHOICES = (1, 2, 4, 8)

#: Reserved words of Verilog-2005 and SystemVerilog-2017 that cannot name the top module.
VERILOG_KEYWORDS = frozenset(
    """
    accept_on alias always always_comb always_ff always_latch and assert assign assume automatic
    before begin bind bins binsof bit break buf bufif0 bufif1 byte case casex casez cell chandle
    checker class clocking cmos config const constraint context continue cover covergroup
    coverpoint cross deassign default defparam design disable dist do edge else end endcase
    endchecker endclass endclocking endconfig endfunction endgenerate endgroup endinterface
    endmodule endpackage endprimitive endprogram endproperty endspecify endsequence endtable
    endtask enum event eventually expect export extends extern final first_match for force
    foreach forever fork forkjoin function generate genvar global highz0 highz1 if iff ifnone
    ignore_bins illegal_bins implements implies import incdir include initial inout input inside
    instance int integer interconnect interface intersect join join_any join_none large let
    liblist library local localparam logic longint macromodule matches medium modport module nand
    negedge nettype new nexttime nmos nor noshowcancelled not notif0 notif1 null or output package
    packed parameter pmos posedge primitive priority program property protected pull0 pull1
    pulldown pullup pulsestyle_ondetect pulsestyle_onevent pure rand randc randcase randsequence
    rcmos real realtime ref reg reject_on release repeat restrict return rnmos rpmos rtran
    rtranif0 rtranif1 s_always s_eventually s_nexttime s_until s_until_with scalared sequence
    shortint shortreal showcancelled signed small soft solve specify specparam static string
    strong strong0 strong1 struct super supply0 supply1 sync_accept_on sync_reject_on table
    tagged task this throughout time timeprecision timeunit tran tranif0 tranif1 tri tri0 tri1
    triand trior trireg type typedef union unique unique0 unsigned until until_with untyped use
    uwire var vectored virtual void wait wait_order wand weak weak0 weak1 while wildcard wire
    with within wor xnor xor
    """.split()
)

#: Names SystemVerilog gives its built-ins (the ``std`` package every compilation unit
#: imports), which a top module must not take either.
SV_BUILTIN_NAMES = frozenset({"std"})
#: Longest top module name: the simulators' files and classes add to it (Verilator's
#: ``V<name>___024root__DepSet_...`` sources) and a file name holds at most 255 bytes.
MAX_NAME_CHARS = 64

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def value_range(bits: int, signed: bool) -> tuple[int, int]:
    """Return the inclusive ``(min, max)`` of a ``bits``-wide two's complement or unsigned value."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def signed_bits_for(lo: int, hi: int) -> int:
    """Return the fewest bits of a two's complement value that holds every integer in [lo, hi]."""
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def _check_stream_bits(name: str, value: Any, multiple: int) -> None:
    check_int(name, value, multiple, 4096)
    if value % multiple:
        raise InputError(f"{name} must be a multiple of {multiple} in [{multiple}, 4096], "
                         f"got {value}")


def _named(name: str, value: Any, enum: type) -> Any:
    """``value`` (a member of the str enum ``enum``, or its name) as the member; the message
    of a wrong one names the field, the choices and the value."""
    choices = ", ".join(enum)
    if not isinstance(value, str):
        raise InputTypeError(f"{name} must be a str, one of {choices}, "
                             f"got {type_name(value)} {value!r}")
    if value not in tuple(enum):
        raise InputError(f"{name} must be one of {choices}, got {value!r}")
    return enum(value)


@dataclasses.dataclass(frozen=True)
class CoreConfig(Schedule):
    """Parameters of one D-IMC core, validated on construction.

    Parameters
    ----------
    rows : int
        Reduction length of one pass (weights per column), 1..4096.
    cols : int
        Output channels (columns of the array), 1..4096.
    act_bits : int
        Largest activation precision, 1..8. A pass may use fewer bits at run time.
    weight_bits : int
        Weight precision, 1..8.
    act_signed, weight_signed : bool
        Two's complement (True) or unsigned (False) operands.
    serial_bits : int
        Activation bits consumed per compute cycle: 1, 2, 4 or 8; must divide ``act_bits``.
    acc_bits : int or None
        Width of the per-pass shift-and-add accumulator. ``None`` (automatic, and kept as
        ``None``) selects :attr:`min_acc_bits`, the smallest width that can never overflow;
        a smaller value is rejected. At most ``psum_bits``. Every consumer reads the width
        from :attr:`acc_width`.
    psum_bits : int
        Width of the K-tiled partial-sum accumulator that feeds the DPU, ``acc_bits``..32.
        Accumulation over passes saturates at this width.
    dpu_lanes : int or None
        Columns the DPU processes per cycle, 1..cols; must divide ``cols``. ``None``
        (automatic) selects the fewest lanes with which DPU results keep up with the array
        (:meth:`~dcim.golden.schedule.Schedule.balanced`).
    dpu_residual : bool
        Whether the DPU has the element-wise residual-add stage.
    rounding : Rounding or str
        Requantization rounding mode, one of :data:`ROUNDING_MODES`; a name (``"single"``, as
        a file holds it) is stored as its :class:`~dcim.golden.arith.Rounding`.
    tree_regs : int
        Pipeline register stages inside each column adder tree, 0..:attr:`tree_depth` (which
        depends on ``tree_style``).
    tree_style : TreeStyle or str
        How the column adder trees are built, one of :data:`TREE_STYLES`
        (:mod:`dcim.golden.tree`): ``ripple``, two-input adders, or ``csa``, a carry-save
        compressor tree and one final adder; a name is stored as its
        :class:`~dcim.golden.tree.TreeStyle`.
    weight_sets : int
        Weight sets per column, 1 or 2. With 2 (double-buffered weights) each column holds a
        shadow set beside the active one: weight rows are written into the shadow while passes
        compute on the active set, and an activation vector whose ``tuser`` SWAP bit is set
        makes the shadow active before its pass (docs/core.md, "Double-buffered weights").
        The default 1 has one set, and weight rows wait until no pass computes.
    w_stream_bits, x_stream_bits : int
        Data widths of the weight and activation AXI4-Stream slaves, multiples of 8 (one byte
        lane per element), at most 4096. ``x_stream_bits`` ``None`` (automatic) selects the
        smallest power of two >= 64 with which an activation vector arrives within a pass's
        compute cycles.
    y_stream_bits : int or None
        Data width of the result AXI4-Stream master, a multiple of 32 (int8 or int32 lanes),
        at most 4096. ``None`` (automatic) selects the smallest power of two >= 64 with which
        an int8 result leaves within a pass's compute cycles.

    The automatic fields (``None``) are resolved on construction to the values
    :meth:`~dcim.golden.schedule.Schedule.balanced` gives, so that the default
    configuration's array computes in every cycle with back-to-back vectors; the resolved
    values are what every consumer reads and what :meth:`fields` and the saved files hold.
    :meth:`replace` derives them again from the new fields unless they are given.
    name : str
        Top module name: a legal Verilog identifier of at most :data:`MAX_NAME_CHARS`
        characters that is neither a reserved word nor a SystemVerilog built-in
        (:data:`SV_BUILTIN_NAMES`).

    Raises
    ------
    TypeError
        A field has the wrong type (bools and floats are not ints).
    ValueError
        A field is out of its range; the message names the field, the range and the value.
    """

    rows: int = 64
    cols: int = 32
    act_bits: int = 8
    weight_bits: int = 8
    act_signed: bool = True
    weight_signed: bool = True
    serial_bits: int = 1
    acc_bits: int | None = None
    psum_bits: int = 32
    dpu_lanes: int | None = None
    dpu_residual: bool = True
    rounding: Rounding = Rounding.SINGLE
    tree_regs: int = 0
    tree_style: TreeStyle = TreeStyle.RIPPLE
    weight_sets: int = 1
    w_stream_bits: int = 64
    x_stream_bits: int | None = None
    y_stream_bits: int | None = None
    name: str = "dcim_core"

    def __post_init__(self) -> None:
        check_int("rows", self.rows, 1, 4096)
        check_int("cols", self.cols, 1, 4096)
        check_int("act_bits", self.act_bits, 1, 8)
        check_int("weight_bits", self.weight_bits, 1, 8)
        check_bool("act_signed", self.act_signed)
        check_bool("weight_signed", self.weight_signed)
        if isinstance(self.serial_bits, bool) or not isinstance(self.serial_bits, int):
            raise InputTypeError(f"serial_bits must be an int, one of {SERIAL_BITS_CHOICES}, "
                                 f"got {type_name(self.serial_bits)} {self.serial_bits!r}")
        if self.serial_bits not in SERIAL_BITS_CHOICES:
            raise InputError(f"serial_bits must be one of {SERIAL_BITS_CHOICES}, "
                             f"got {self.serial_bits}")
        if self.act_bits % self.serial_bits:
            raise InputError(f"serial_bits must divide act_bits ({self.act_bits}), "
                             f"got {self.serial_bits}")
        self._resolve_automatic()
        check_int("psum_bits", self.psum_bits, self.min_acc_bits, 32)
        if self.acc_bits is not None:
            check_int("acc_bits", self.acc_bits, self.min_acc_bits, self.psum_bits)
        check_int("dpu_lanes", self.dpu_lanes, 1, self.cols)
        if self.cols % self.dpu_lanes:
            raise InputError(f"dpu_lanes must divide cols ({self.cols}), got {self.dpu_lanes}")
        check_bool("dpu_residual", self.dpu_residual)
        object.__setattr__(self, "rounding", _named("rounding", self.rounding, Rounding))
        object.__setattr__(self, "tree_style", _named("tree_style", self.tree_style, TreeStyle))
        check_int("weight_sets", self.weight_sets, 1, 2)
        _check_stream_bits("w_stream_bits", self.w_stream_bits, 8)
        _check_stream_bits("x_stream_bits", self.x_stream_bits, 8)
        _check_stream_bits("y_stream_bits", self.y_stream_bits, 32)
        if not isinstance(self.name, str):
            raise InputTypeError(f"name must be a str (a Verilog identifier), "
                                 f"got {type_name(self.name)} {self.name!r}")
        if len(self.name) > MAX_NAME_CHARS:
            raise InputError(f"name must be at most {MAX_NAME_CHARS} characters, got "
                             f"{len(self.name)} ({self.name[:20]!r}...)")
        if not _IDENT.match(self.name) or self.name in VERILOG_KEYWORDS:
            raise InputError("name must be a Verilog identifier ([A-Za-z_][A-Za-z0-9_]*, not a "
                             f"reserved word), got {self.name!r}")
        if self.name in SV_BUILTIN_NAMES:
            raise InputError(f"name must not be a SystemVerilog built-in "
                             f"({', '.join(sorted(SV_BUILTIN_NAMES))}), got {self.name!r}")
        self._check_tree_regs()  # last: its message builds a copy with another style

    def _check_tree_regs(self) -> None:
        """``tree_regs`` within the levels of the chosen tree style; the message names both
        values (and the style that would place them)."""
        depth = self.tree_depth
        if isinstance(self.tree_regs, bool) or not isinstance(self.tree_regs, int):
            raise InputTypeError(f"tree_regs must be an int in [0, {depth}], "
                                 f"got {type_name(self.tree_regs)} {self.tree_regs!r}")
        if 0 <= self.tree_regs <= depth:
            return
        msg = (f"tree_regs must be in [0, {depth}] with tree_style {self.tree_style} "
               f"({depth} tree levels at {self.rows} rows), got {self.tree_regs}")
        for other in TREE_STYLES:
            if other != self.tree_style and self.tree_regs >= 0:
                fits = self.replace(tree_style=other, tree_regs=0).tree_depth
                if self.tree_regs <= fits:
                    msg += f" (tree_style {other} places up to {fits})"
        raise InputError(msg)

    #: Fields that ``None`` makes automatic, resolved on construction (``acc_bits`` is
    #: automatic too, but stays ``None``: :attr:`acc_width`).
    AUTOMATIC = ("dpu_lanes", "x_stream_bits", "y_stream_bits")

    def _resolve_automatic(self) -> None:
        """Replace the automatic fields that are ``None`` by their balanced values and
        remember which they were (for :meth:`replace`)."""
        auto = frozenset(name for name in self.AUTOMATIC if getattr(self, name) is None)
        object.__setattr__(self, "_automatic", auto)
        if not auto:
            return
        # The balanced figures read these fields: a provisional 1 / 64 stands in for the
        # automatic ones, and every resolved value is at least that.
        for name in auto:
            object.__setattr__(self, name, 1 if name == "dpu_lanes" else 64)
        balanced = self.balanced()
        for name in auto:
            value = balanced[name]
            if name != "dpu_lanes":
                value = min(4096, 1 << (value - 1).bit_length())
            object.__setattr__(self, name, value)

    @property
    def automatic(self) -> frozenset[str]:
        """The fields of :data:`AUTOMATIC` that were ``None`` (resolved on construction)."""
        return self._automatic

    # ----------------------------------------------------------------------------------------
    # Operand ranges
    @functools.cached_property
    def act_range(self) -> tuple[int, int]:
        """Inclusive range of an activation at full precision."""
        return value_range(self.act_bits, self.act_signed)

    def act_range_at(self, bits: int) -> tuple[int, int]:
        """Inclusive range of an activation in a pass that uses ``bits`` (1..act_bits) bits."""
        self.check_runtime_bits(bits)
        return value_range(bits, self.act_signed)

    @functools.cached_property
    def weight_range(self) -> tuple[int, int]:
        """Inclusive range of a weight."""
        return value_range(self.weight_bits, self.weight_signed)

    def check_runtime_bits(self, bits: Any) -> int:
        """Validate a runtime activation precision and return it.

        Raises
        ------
        TypeError, ValueError
            ``bits`` is not an int in [1, act_bits].
        """
        check_int("act_bits (runtime)", bits, 1, self.act_bits)
        return bits

    # ----------------------------------------------------------------------------------------
    # Widths of every stage
    @property
    def product_range(self) -> tuple[int, int]:
        """Inclusive range of one weight x activation product at full precision."""
        wl, wh = self.weight_range
        al, ah = self.act_range
        prods = (wl * al, wl * ah, wh * al, wh * ah)
        return min(prods), max(prods)

    @property
    def slice_range(self) -> tuple[int, int]:
        """Inclusive range of one activation slice (the top slice of a signed activation is
        signed, every other slice unsigned)."""
        lo, hi = value_range(self.serial_bits, self.act_signed)
        return min(lo, 0), max(hi, (1 << self.serial_bits) - 1)

    @property
    def slice_psum_range(self) -> tuple[int, int]:
        """Inclusive range of one column's adder-tree output in one compute cycle."""
        wl, wh = self.weight_range
        sl, sh = self.slice_range
        prods = (wl * sl, wl * sh, wh * sl, wh * sh)
        return self.rows * min(prods), self.rows * max(prods)

    @property
    def slice_psum_bits(self) -> int:
        """Two's complement width of one column's adder-tree output."""
        return signed_bits_for(*self.slice_psum_range)

    @functools.cached_property
    def acc_range(self) -> tuple[int, int]:
        """Inclusive range of a full-precision pass result (a dot product of ``rows`` terms)."""
        lo, hi = self.product_range
        return self.rows * lo, self.rows * hi

    @property
    def min_acc_bits(self) -> int:
        """Smallest accumulator width that can never overflow for ``rows`` and both precisions."""
        return signed_bits_for(*self.acc_range)

    @property
    def acc_width(self) -> int:
        """Width of the per-pass accumulator: ``acc_bits``, or :attr:`min_acc_bits` when
        ``acc_bits`` is None (automatic)."""
        return self.min_acc_bits if self.acc_bits is None else self.acc_bits

    @property
    def psum_range(self) -> tuple[int, int]:
        """Inclusive range of the saturating K-tiled partial-sum accumulator."""
        return value_range(self.psum_bits, True)

    @functools.cached_property
    def tree_depth(self) -> int:
        """Levels of one column adder tree in the chosen ``tree_style``
        (:func:`dcim.golden.tree.tree_depth`): ``ceil(log2(rows))`` for ``ripple``; the
        compressor levels plus the final adder for ``csa``."""
        return tree_depth(self)

    @property
    def tree_register_levels(self) -> list[int]:
        """The tree levels (1..:attr:`tree_depth`) after which the ``tree_regs`` pipeline
        registers sit (:func:`dcim.golden.tree.tree_register_levels`)."""
        return tree_register_levels(self.tree_depth, self.tree_regs)

    # ----------------------------------------------------------------------------------------
    # Index and count widths of the control path
    @property
    def row_bits(self) -> int:
        """Width of a row index 0..rows-1 (at least 1 bit): ``max(1, ceil(log2(rows)))``."""
        return max(1, (self.rows - 1).bit_length())

    @property
    def col_bits(self) -> int:
        """Width of a column index 0..cols-1 (at least 1 bit): ``max(1, ceil(log2(cols)))``."""
        return max(1, (self.cols - 1).bit_length())

    @property
    def precision_bits(self) -> int:
        """Width of a runtime activation precision 0..act_bits (the CTRL.RUN_BITS value and
        the precision that travels with an activation vector)."""
        return self.act_bits.bit_length()

    @property
    def shamt_bits(self) -> int:
        """Width of the shift of one slice's column sums, 0..act_bits-1 (at least 1 bit)."""
        return max(1, (self.act_bits - 1).bit_length())

    # ----------------------------------------------------------------------------------------
    # Serialization
    def replace(self, **changes: Any) -> CoreConfig:
        """Return a validated copy with ``changes`` applied; automatic fields not in
        ``changes`` (``acc_bits`` None and those in :attr:`automatic`) are derived again, so
        they follow the new fields."""
        again = {name: None for name in self.automatic if name not in changes}
        return dataclasses.replace(self, **again, **changes)

    def fields(self) -> dict[str, Any]:
        """Return the fields as a plain dict (what :meth:`from_dict` accepts)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def derived(self) -> dict[str, Any]:
        """Return the derived figures (informational; never read back)."""
        return {
            "act_range": list(self.act_range),
            "weight_range": list(self.weight_range),
            "slice_psum_bits": self.slice_psum_bits,
            "min_acc_bits": self.min_acc_bits,
            "acc_width": self.acc_width,
            "tree_depth": self.tree_depth,
            "cycles_per_pass": self.cycles_per_pass(),
            "peak_macs_per_cycle": self.peak_macs_per_cycle,
            "pass_interval": self.pass_interval(),
            "array_utilization": round(self.array_utilization(), 4),
            "pass_bound": self.pass_bound(),
            "weight_bits_stored": self.stored_bits,
            "x_beats": self.x_beats,
            "w_beats": self.w_beats,
            "y_beats_int8": self.y_beats(raw=False),
            "y_beats_int32": self.y_beats(raw=True),
        }

    def to_dict(self) -> dict[str, Any]:
        """Return the fields plus a ``derived`` section."""
        return {**self.fields(), "derived": self.derived()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CoreConfig:
        """Build a config from a dict of fields; an optional ``derived`` section is ignored.

        Raises
        ------
        TypeError
            ``data`` is not a dict.
        ValueError
            ``data`` has a key that is not a field (the message lists the unknown keys), or a
            field is out of range.
        """
        if not isinstance(data, dict):
            raise InputTypeError(f"config must be a mapping of fields, got {type_name(data)}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - {"derived"})
        if unknown:
            raise InputError(f"unknown config key(s) {', '.join(unknown)}; "
                             f"allowed: {', '.join(sorted(names))}")
        return cls(**{k: v for k, v in data.items() if k != "derived"})

    def to_json(self) -> str:
        """Serialize to JSON (fields and derived figures), deterministic key order."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_toml(self) -> str:
        """Serialize the fields (and derived figures, as a table) to TOML; an automatic
        ``acc_bits`` (None, which TOML cannot hold) is left out."""
        fields = {k: v for k, v in self.fields().items() if v is not None}
        return tomli_w.dumps({**fields, "derived": self.derived()})

    @classmethod
    def load(cls, path: str | Path) -> CoreConfig:
        """Read a config from a ``.json`` or ``.toml`` file, ``-`` (standard input) or the
        ``<name>.json`` of ``dcim generate`` (:func:`dcim.golden.configfile.read_config_data`).

        Raises
        ------
        ValueError
            The file cannot be parsed, has an unsupported suffix, or holds an invalid config.
        OSError
            The file cannot be read.
        """
        return cls.from_dict(read_config_data(path))

    def save(self, path: str | Path) -> None:
        """Write the config to a ``.json`` or ``.toml`` file (chosen by suffix)."""
        path = Path(path)
        if path.suffix == ".json":
            write_atomic(path, self.to_json())
        elif path.suffix == ".toml":
            write_atomic(path, self.to_toml())
        else:
            raise InputError(f"config file must end in .json or .toml, got {path.name!r}")
