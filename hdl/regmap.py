"""The AXI4-Lite register map of the core, described once.

The CSR block (:mod:`dcim.hdl.csr`) builds its storage and its address decoder from this
description, the DPU (:mod:`dcim.hdl.dpu`) its table selectors and table formats, and so do the
register map documents (:meth:`RegMap.to_json`, and the Markdown and C header of
:mod:`dcim.hdl.regdoc`). This module imports no amaranth: testbenches and software read it as
plain data.

Conventions
-----------
* 32-bit registers at word-aligned byte addresses; ``addr_bits`` (16) address bits.
* Address decoding (:meth:`RegMap.decode`): bits ``[addr_bits-1:region_lsb]`` (15..14) select
  the region, bits ``[region_lsb-1:word_lsb]`` (13..2) the word in it, bits 1..0 are ignored.
  Region 0 holds the registers; each table has a region of its own (:meth:`RegMap.region`),
  its entry ``c`` at word ``c``.
* Every write is a full 32-bit write (``wstrb`` is ignored). Bits outside every field read 0.
* Signed register fields hold two's complement in their own bits and read back zero-extended;
  signed table entries (``BIAS``, ``SHIFT``) read back sign-extended to 32 bits.
* A read or write to an address that is neither a register nor a table entry of an existing
  column gets ``SLVERR``; the write has no effect, the read returns 0.
* Counters (``PASSES``, ``CYCLES``, ``BUSY_CYCLES``) are 32-bit, read-only, cleared by reset
  and wrap at ``2**32``. ``CYCLES`` counts every clock cycle: it is the one *volatile* field
  (:attr:`Field.volatile`), which changes with no traffic at all. ``PERF.CLEAR`` zeroes
  ``CYCLES`` and ``BUSY_CYCLES`` (not ``PASSES``): array utilization over a window is
  ``BUSY_CYCLES / CYCLES`` read after it, or the ratio of the differences of two reads of each,
  taken modulo ``2**32``.
* Per-column tables ``BIAS``, ``MULT``, ``SHIFT`` have ``cols`` entries with a 4-byte stride.
  They are memories: not cleared by reset (power-up value 0).
"""

from __future__ import annotations

import dataclasses
import json
from enum import StrEnum
from typing import Any

from ..golden.arith import MULTIPLIER_BITS, MULTIPLIER_RANGE, SHIFT_BITS, SHIFT_RANGE
from ..golden.config import ROUNDING_MODES, CoreConfig
from ._cfg import check_cfg

__all__ = ["ACCESS", "MAGIC", "VERSION", "Access", "Field", "RegMap", "Register", "Table"]

#: Value of the read-only ``MAGIC`` register: ASCII "DCIM".
MAGIC = 0x4443494D
#: Register-map version (major, minor), read from ``VERSION``.
VERSION = (1, 1)

class Access(StrEnum):
    """The access type of a register field; its value is the name the register-map documents
    and JSON use."""

    RO = "ro"
    RW = "rw"
    W1C = "w1c"
    W1P = "w1p"


#: Field access types and what each means.
ACCESS = {
    Access.RO: "read-only (constant or driven by the core); writes ignored",
    Access.RW: "read/write",
    Access.W1C: "sticky flag set by the core; write 1 to clear",
    Access.W1P: "write 1 to trigger (one-cycle pulse); reads 0",
}

_ADDR_BITS = 16
_DATA_BITS = 32
_WORD_LSB = 2      # byte address -> 32-bit word
_REGION_LSB = 14   # 16 KiB regions: the registers, then one per table
_TABLE_STRIDE = 4
# The requantization operand ranges as the documents print them.
_MULT_TEXT = f"{MULTIPLIER_RANGE[0]}..2**{MULTIPLIER_BITS}-1"
_SHIFT_TEXT = f"{SHIFT_RANGE[0]}..{SHIFT_RANGE[1]}"
assert MULTIPLIER_RANGE[1] == 2**MULTIPLIER_BITS - 1


@dataclasses.dataclass(frozen=True)
class Field:
    """A bit field of a register.

    Attributes
    ----------
    name : str
    lsb, width : int
        Bit position and width inside the 32-bit word.
    access : Access or str
        One of :data:`ACCESS` (a name is stored as its :class:`Access`).
    reset : int
        Value after reset (the constant for read-only ID fields), as the field's bits.
    desc : str
    signed : bool
        Two's complement field.
    legal : (int, int) or None
        Inclusive range of values a write may set (``rw`` fields): a write whose bits of the
        field hold any other value leaves the field unchanged (the core stores only the bits
        the range needs). ``None``: every value.
    volatile : bool
        The core changes the field in every cycle, with no bus or stream traffic (the
        free-running ``CYCLES``, ``ro`` only): a read after a reset returns the cycles since,
        not the reset value.
    """

    name: str
    lsb: int
    width: int
    access: Access
    reset: int
    desc: str
    signed: bool = False
    legal: tuple[int, int] | None = None
    volatile: bool = False

    def __post_init__(self) -> None:
        if self.access not in ACCESS:
            raise ValueError(f"access must be one of {', '.join(ACCESS)}, got {self.access!r}")
        object.__setattr__(self, "access", Access(self.access))
        if self.volatile and self.access is not Access.RO:
            raise ValueError(f"volatile field {self.name} must be ro, got {self.access}")
        if not (0 <= self.lsb and 1 <= self.width and self.lsb + self.width <= 32):
            raise ValueError(f"field {self.name} must fit bits [0, 31], got lsb {self.lsb} "
                             f"width {self.width}")
        object.__setattr__(self, "reset", self.reset & ((1 << self.width) - 1))

    @property
    def mask(self) -> int:
        """The field's bits in the register word."""
        return ((1 << self.width) - 1) << self.lsb


@dataclasses.dataclass(frozen=True)
class Register:
    """A 32-bit register: a byte offset and its fields."""

    name: str
    offset: int
    desc: str
    fields: tuple[Field, ...]

    @property
    def reset(self) -> int:
        """The whole word after reset."""
        return sum(f.reset << f.lsb for f in self.fields)

    def field(self, name: str) -> Field:
        """Return the field called ``name``."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name}")


@dataclasses.dataclass(frozen=True)
class Table:
    """A per-column table: entry ``c`` at ``base + 4*c`` for ``c`` in ``0..cols-1``.

    ``select`` is the DPU table selector (``TableBusSignature.sel``) that stores it; ``width``
    and ``signed`` are the format of a stored entry.
    """

    name: str
    base: int
    width: int
    signed: bool
    select: int
    desc: str


class RegMap:
    """The register map of the core configured by ``cfg``.

    Parameters
    ----------
    cfg : CoreConfig

    Raises
    ------
    TypeError
        ``cfg`` is not a :class:`~dcim.golden.config.CoreConfig`.
    """

    #: Byte-address bits of the AXI4-Lite port.
    addr_bits = _ADDR_BITS
    #: Bits of a register word (and of the AXI4-Lite data).
    data_bits = _DATA_BITS
    #: Lowest address bit of the word index (bits below it are ignored).
    word_lsb = _WORD_LSB
    #: Lowest address bit of the region number.
    region_lsb = _REGION_LSB
    #: Bytes between two entries of a table.
    table_stride = _TABLE_STRIDE

    def __init__(self, cfg: CoreConfig) -> None:
        self.cfg = check_cfg(cfg)
        self.registers: tuple[Register, ...] = tuple(_registers(cfg))
        self.tables: tuple[Table, ...] = (
            Table("BIAS", 0x4000, 32, True, 0,
                  "Per-column bias added to the partial sum (int32)."),
            Table("MULT", 0x8000, MULTIPLIER_BITS, False, 1,
                  f"Per-column requantization multiplier, {_MULT_TEXT}."),
            Table("SHIFT", 0xC000, SHIFT_BITS, True, 2,
                  f"Per-column requantization shift, {_SHIFT_TEXT} (positive: left)."),
        )
        offsets = [r.offset for r in self.registers]
        assert len(set(offsets)) == len(offsets)
        assert all(self.region(o) == 0 and o % self.table_stride == 0 for o in offsets)
        # Every table fills the start of a region of its own (a word per entry), and the
        # selectors are distinct and leave one code that selects no table.
        regions = [self.region(t.base) for t in self.tables]
        assert all(t.base == r << self.region_lsb for t, r in zip(self.tables, regions))
        assert 0 not in regions and len(set(regions)) == len(regions)
        assert self.table_stride == 1 << self.word_lsb
        assert cfg.cols <= 1 << (self.region_lsb - self.word_lsb)
        selects = sorted(t.select for t in self.tables)
        assert selects == list(range(len(selects)))

    def __getitem__(self, name: str) -> Register:
        for r in self.registers:
            if r.name == name:
                return r
        raise KeyError(f"no register {name}")

    def table(self, name: str) -> Table:
        """Return the table called ``name``."""
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(f"no table {name}")

    # ----------------------------------------------------------------------------------------
    # Address decoding: what the CSR block implements in hardware.
    @property
    def select_bits(self) -> int:
        """Width of the DPU table selector: it holds every ``Table.select`` and
        :attr:`no_select`."""
        return self.no_select.bit_length()

    @property
    def no_select(self) -> int:
        """The table selector of an address that is in no table."""
        return len(self.tables)

    def region(self, addr: int) -> int:
        """The region number of byte address ``addr``: 0 for the registers, else a table's."""
        return (addr % (1 << self.addr_bits)) >> self.region_lsb

    def word(self, addr: int) -> int:
        """The index of the word ``addr`` falls in, inside its region."""
        return (addr % (1 << self.region_lsb)) >> self.word_lsb

    def decode(self, addr: int) -> Register | tuple[Table, int] | None:
        """What byte address ``addr`` (taken modulo ``2**addr_bits``) reaches: a register, a
        table and its column ``(table, c)``, or None for an unmapped address (``SLVERR``)."""
        region, word = self.region(addr), self.word(addr)
        if region == 0:
            for r in self.registers:
                if self.word(r.offset) == word:
                    return r
            return None
        for t in self.tables:
            if self.region(t.base) == region:
                return (t, word) if word < self.cfg.cols else None
        return None

    # ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The register map as plain data (what :meth:`to_json` writes)."""
        return {
            "name": self.cfg.name,
            "version": list(VERSION),
            "addr_bits": self.addr_bits,
            "data_bits": self.data_bits,
            "access_types": dict(ACCESS),
            "registers": [
                {"name": r.name, "offset": r.offset, "reset": r.reset, "desc": r.desc,
                 "fields": [{"name": f.name, "lsb": f.lsb, "width": f.width,
                             "access": f.access, "reset": f.reset, "signed": f.signed,
                             "legal": None if f.legal is None else list(f.legal),
                             "volatile": f.volatile, "desc": f.desc} for f in r.fields]}
                for r in self.registers],
            "tables": [
                {"name": t.name, "base": t.base, "stride": self.table_stride,
                 "entries": self.cfg.cols, "width": t.width, "signed": t.signed,
                 "access": Access.RW, "desc": t.desc}
                for t in self.tables],
        }

    def to_json(self) -> str:
        """The register map as JSON (deterministic)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"


def _registers(cfg: CoreConfig) -> list[Register]:
    rounding = ROUNDING_MODES.index(cfg.rounding)
    residual = cfg.dpu_residual
    dbuf = cfg.weight_sets == 2
    regs = [
        Register("MAGIC", 0x00, "Identifies the core: ASCII \"DCIM\".",
                 (Field("MAGIC", 0, 32, Access.RO, MAGIC, "0x4443494D"),)),
        Register("VERSION", 0x04, "Register-map version.",
                 (Field("MINOR", 0, 16, Access.RO, VERSION[1], "minor version"),
                  Field("MAJOR", 16, 16, Access.RO, VERSION[0], "major version"))),
        Register("ROWS", 0x08, "Rows of the array (reduction length of one pass).",
                 (Field("ROWS", 0, 13, Access.RO, cfg.rows, "rows"),
                  *([Field("DBUF", 16, 1, Access.RO, 1,
                           "two weight sets per column (double-buffered weights)")]
                    if dbuf else []))),
        Register("COLS", 0x0C, "Columns of the array (output channels).",
                 (Field("COLS", 0, 13, Access.RO, cfg.cols, "cols"),)),
        Register("PREC", 0x10, "Operand precisions and signedness.",
                 (Field("ACT_BITS", 0, 4, Access.RO, cfg.act_bits, "maximum activation bits"),
                  Field("WEIGHT_BITS", 4, 4, Access.RO, cfg.weight_bits, "weight bits"),
                  Field("SERIAL_BITS", 8, 4, Access.RO, cfg.serial_bits,
                        "activation bits per compute cycle"),
                  Field("ACT_SIGNED", 16, 1, Access.RO, int(cfg.act_signed), "signed activations"),
                  Field("WEIGHT_SIGNED", 17, 1, Access.RO, int(cfg.weight_signed),
                        "signed weights"))),
        Register("DPU", 0x14, "DPU configuration.",
                 (Field("LANES", 0, 13, Access.RO, cfg.dpu_lanes, "DPU lanes"),
                  Field("ROUNDING", 16, 2, Access.RO, rounding,
                        "rounding mode: " + ", ".join(f"{i} {m}"
                                                      for i, m in enumerate(ROUNDING_MODES))),
                  Field("RESIDUAL", 20, 1, Access.RO, int(cfg.dpu_residual),
                        "residual-add stage present"))),
        Register("WIDTHS", 0x18, "Accumulator widths and adder-tree pipelining.",
                 (Field("ACC_BITS", 0, 6, Access.RO, cfg.acc_width, "pass accumulator bits"),
                  Field("PSUM_BITS", 8, 6, Access.RO, cfg.psum_bits, "partial-sum bits"),
                  Field("TREE_REGS", 16, 5, Access.RO, cfg.tree_regs,
                        "adder-tree register stages"))),
        Register("STREAMS", 0x1C, "Stream widths in lanes.",
                 (Field("W_LANES", 0, 10, Access.RO, cfg.w_lanes, "weight bytes per beat"),
                  Field("X_LANES", 10, 10, Access.RO, cfg.x_lanes, "activation bytes per beat"),
                  Field("Y_WORDS", 20, 10, Access.RO, cfg.y_lanes(raw=True),
                        "32-bit words per result beat"))),
        Register("CTRL", 0x40,
                 "Control. RUN_BITS applies to activation packets whose first beat arrives "
                 f"after the write; {'RAW and RES_EN apply' if residual else 'RAW applies'} to "
                 "results emitted after the write. Change them while STATUS.BUSY is 0.",
                 (Field("RUN_BITS", 0, 4, Access.RW, cfg.act_bits,
                        f"runtime activation precision 1..{cfg.act_bits}; a write of another "
                        "value leaves the field unchanged", legal=(1, cfg.act_bits)),
                  Field("RAW", 4, 1, Access.RW, 0,
                        "emit raw int32 partial sums (bypass the DPU)"),
                  *([Field("RES_EN", 5, 1, Access.RW, 0,
                           "consume one s_axis_r residual vector per emitted DPU result")]
                    if residual else []),
                  Field("CLEAR", 8, 1, Access.W1P, 0, "zero every partial sum"))),
        Register("STATUS", 0x44, "Status and sticky error flags.",
                 (Field("BUSY", 0, 1, Access.RO, 0,
                        "a packet, pass or result is in progress or waiting"),
                  *([Field("W_SET", 1, 1, Access.RO, 0,
                           "the active weight set (weight rows write the other one)")]
                    if dbuf else []),
                  Field("ERR_W_LEN", 8, 1, Access.W1C, 0,
                        f"a weight packet had a beat count other than {cfg.w_beats} (dropped)"),
                  Field("ERR_X_LEN", 9, 1, Access.W1C, 0,
                        f"an activation packet had a beat count other than {cfg.x_beats} "
                        "(dropped)"),
                  *([Field("ERR_R_LEN", 10, 1, Access.W1C, 0,
                           f"a residual packet had a beat count other than {cfg.r_beats} "
                           "(dropped)")] if residual else []),
                  Field("PSUM_SAT", 11, 1, Access.W1C, 0,
                        f"a partial sum saturated at {cfg.psum_bits} bits"))),
        Register("PASSES", 0x48, "Compute passes completed since reset (wraps).",
                 (Field("COUNT", 0, 32, Access.RO, 0, "passes"),)),
        Register("W_ROW", 0x4C,
                 "Row written by the next weight packet; increments after each accepted "
                 "row, wrapping at rows.",
                 (Field("ROW", 0, 32, Access.RW, 0,
                        f"row 0..{cfg.rows - 1}; a write of a larger value (any 32-bit word "
                        f">= {cfg.rows}) is ignored: W_ROW keeps its value",
                        legal=(0, cfg.rows - 1)),)),
        Register("PERF", 0x50, "Performance counters' control.",
                 (Field("CLEAR", 0, 1, Access.W1P, 0,
                        "zero CYCLES and BUSY_CYCLES (they count again from the next cycle)"),)),
        Register("CYCLES", 0x54,
                 "Clock cycles since reset or PERF.CLEAR (wraps): the denominator of the "
                 "array utilization BUSY_CYCLES / CYCLES.",
                 (Field("COUNT", 0, 32, Access.RO, 0, "cycles", volatile=True),)),
        Register("BUSY_CYCLES", 0x58,
                 "Compute cycles since reset or PERF.CLEAR (wraps): cycles in which a slice of "
                 "a pass enters the array (not held by the result path), "
                 "cycles_per_pass(RUN_BITS) per pass.",
                 (Field("COUNT", 0, 32, Access.RO, 0, "compute cycles"),)),
        Register("OUT_ZP", 0x60, "DPU output zero point.",
                 (Field("OUT_ZP", 0, 8, Access.RW, 0, "int8", signed=True),)),
        Register("ACT_MIN", 0x64, "DPU clamp minimum (ReLU: out_zp).",
                 (Field("ACT_MIN", 0, 8, Access.RW, -128, "int8", signed=True),)),
        Register("ACT_MAX", 0x68, "DPU clamp maximum.",
                 (Field("ACT_MAX", 0, 8, Access.RW, 127, "int8", signed=True),)),
    ]
    if residual:
        regs += [
            Register("RES_MULT", 0x6C, "Residual requantization multiplier.",
                     (Field("RES_MULT", 0, MULTIPLIER_BITS, Access.RW, 0, _MULT_TEXT),)),
            Register("RES_SHIFT", 0x70, "Residual requantization shift (positive: left).",
                     (Field("RES_SHIFT", 0, SHIFT_BITS, Access.RW, 0, _SHIFT_TEXT, signed=True),)),
            Register("RES_ZP", 0x74, "Residual zero point.",
                     (Field("RES_ZP", 0, 8, Access.RW, 0, "int8", signed=True),)),
        ]
    return regs
