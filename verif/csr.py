"""The register map as the testbench sees it: read from the generated register-map JSON.

Nothing here restates an address, a field, a reset value or a legal range: :class:`RegMapView`
is built from the JSON that ``hdl/regmap.py`` writes next to the Verilog, and encodes/decodes
register words by field name (:meth:`RegMapView.of` builds the same view from a configuration
without a file). The access types are :class:`~dcim.hdl.regmap.Access` (``hdl/regmap.py`` is
plain data: no amaranth).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..golden.config import CoreConfig
from ..hdl.regmap import Access, RegMap

__all__ = ["FieldView", "RegMapView", "RegisterView", "TableView"]


@dataclass(frozen=True)
class FieldView:
    """One field: ``name``, ``lsb``, ``width``, ``access``, ``reset`` (raw bits), ``signed``,
    ``legal``, the inclusive ``(lo, hi)`` a write may set (a write of any other value
    leaves the field unchanged) or None for every value, and ``volatile``: the core changes it
    every cycle (a free-running counter; :attr:`dcim.hdl.regmap.Field.volatile`)."""

    name: str
    lsb: int
    width: int
    access: Access
    reset: int
    signed: bool
    legal: tuple[int, int] | None = None
    volatile: bool = False

    @property
    def reset_value(self) -> int:
        """The value after reset (sign-extended if signed)."""
        return self.decode(self.reset << self.lsb)

    def written(self, value: int) -> int | None:
        """The value the field takes from a write of ``value`` (its bits in the field, as
        :meth:`encode` places them), or None if the write leaves the field unchanged (those
        bits hold a value outside ``legal``)."""
        v = self.decode(self.encode(value))
        return v if self.legal is None or self.legal[0] <= v <= self.legal[1] else None

    @property
    def mask(self) -> int:
        """The field's bits in the word."""
        return ((1 << self.width) - 1) << self.lsb

    def encode(self, value: int) -> int:
        """``value`` (two's complement if signed) placed in the field's bits."""
        return (value & ((1 << self.width) - 1)) << self.lsb

    def decode(self, word: int) -> int:
        """The field's value in ``word`` (sign-extended if signed)."""
        v = (word >> self.lsb) & ((1 << self.width) - 1)
        if self.signed and v >> (self.width - 1):
            v -= 1 << self.width
        return v


@dataclass(frozen=True)
class RegisterView:
    """One register: ``name``, byte ``offset``, whole-word ``reset`` and its fields."""

    name: str
    offset: int
    reset: int
    fields: tuple[FieldView, ...]

    def field(self, name: str) -> FieldView:
        """The field called ``name`` (KeyError names the register)."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name}")

    def encode(self, **values: int) -> int:
        """A word with the named fields set and every other bit 0."""
        word = 0
        for name, value in values.items():
            word |= self.field(name).encode(value)
        return word

    @property
    def read_only(self) -> bool:
        """Every field is read-only."""
        return all(f.access is Access.RO for f in self.fields)

    @property
    def volatile(self) -> bool:
        """Some field changes every cycle on its own: reads differ from the reset value."""
        return any(f.volatile for f in self.fields)


@dataclass(frozen=True)
class TableView:
    """A per-column table: entry ``c`` at ``base + stride*c``."""

    name: str
    base: int
    stride: int
    entries: int
    width: int
    signed: bool

    def addr(self, index: int) -> int:
        """Byte address of entry ``index``."""
        if not 0 <= index < self.entries:
            raise IndexError(f"{self.name}[{index}] outside 0..{self.entries - 1}")
        return self.base + self.stride * index


class RegMapView:
    """The register map of one generated core.

    Parameters
    ----------
    data : dict
        The parsed register-map JSON.
    """

    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.addr_bits = int(data["addr_bits"])
        self.registers = {
            r["name"]: RegisterView(
                r["name"], int(r["offset"]), int(r["reset"]),
                tuple(FieldView(f["name"], int(f["lsb"]), int(f["width"]), Access(f["access"]),
                                int(f["reset"]), bool(f.get("signed", False)),
                                None if f.get("legal") is None
                                else (int(f["legal"][0]), int(f["legal"][1])),
                                bool(f.get("volatile", False)))
                      for f in r["fields"]))
            for r in data["registers"]}
        self.tables = {
            t["name"]: TableView(t["name"], int(t["base"]), int(t["stride"]), int(t["entries"]),
                                 int(t["width"]), bool(t["signed"]))
            for t in data["tables"]}

    @classmethod
    def load(cls, path: str | Path) -> RegMapView:
        """Read the register-map JSON at ``path``."""
        return cls(json.loads(Path(path).read_text()))

    @classmethod
    def of(cls, cfg: CoreConfig) -> RegMapView:
        """The register map of ``cfg`` as the generator would write it (no file)."""
        return cls(RegMap(cfg).to_dict())

    def __getitem__(self, name: str) -> RegisterView:
        try:
            return self.registers[name]
        except KeyError:
            raise KeyError(f"no register {name} in the register map") from None

    def table(self, name: str) -> TableView:
        """The table called ``name``."""
        return self.tables[name]

    def unmapped_addresses(self) -> list[int]:
        """A few word addresses that are neither a register nor a table entry."""
        used = {r.offset for r in self.registers.values()}
        for t in self.tables.values():
            used.update(t.addr(i) for i in range(t.entries))
        top = 1 << self.addr_bits
        candidates = [max(used) + 4, top - 4]
        candidates += [r.offset + 4 for r in self.registers.values()]
        candidates += [t.base + t.stride * t.entries for t in self.tables.values()]
        out = []
        for a in candidates:
            if a < top and a not in used and a not in out:
                out.append(a)
        return out[:6]
