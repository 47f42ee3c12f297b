"""Pin capacitances, internal energies and leakage of liberty cells, for the energy models that
OpenSTA's report cannot give: the clock network (:mod:`dcim.synth.clocking`) and a clock gate
built from cells the library has.

A liberty ``internal_power`` group holds energy tables (``rise_power``, ``fall_power``) of a
pin: on an output pin, the energy of one output transition caused by ``related_pin``, indexed
by the output load and the input transition (``energy_template``: ``variable_1`` the total output
capacitance, ``variable_2`` the input transition); on an input pin, the energy of one transition
of that pin (``passive_energy_template``: the input transition alone). Tables are read in the
template's variable order and evaluated by bilinear interpolation, extrapolated linearly outside
the characterized range (as OpenSTA does). Units are the liberty's: with OSU 0.18 um's pF and V,
energies are pJ and leakage is nW.
"""

from __future__ import annotations

import dataclasses
import re
from bisect import bisect_right

from .libcells import _attr, _groups

__all__ = ["CellPower", "EnergyTable", "parse_cell_power"]


def _floats(s: str) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", s)]


def _complex(body: str, name: str) -> str:
    """The argument text of complex attribute ``name (...);`` in ``body`` ("" if absent)."""
    m = re.search(rf"\b{name}\s*\((.*?)\)\s*;", body, re.S)
    return m.group(1) if m else ""


def _interp(xs: list[float], x: float) -> tuple[int, float]:
    """The segment ``i`` (``xs[i]``..``xs[i+1]``) and fraction of ``x`` on it (may be outside
    [0, 1]: linear extrapolation beyond the first or last point)."""
    if len(xs) == 1:
        return 0, 0.0
    i = min(max(bisect_right(xs, x) - 1, 0), len(xs) - 2)
    return i, (x - xs[i]) / (xs[i + 1] - xs[i])


@dataclasses.dataclass(frozen=True)
class EnergyTable:
    """One energy table: ``values[i][j]`` at ``load[i]`` (pF) and ``slew[j]`` (ns); a passive
    (input-pin) table has ``load == [0.0]``."""

    load: list[float]
    slew: list[float]
    values: list[list[float]]

    def __call__(self, slew: float, load: float = 0.0) -> float:
        """The energy at input transition ``slew`` and output load ``load`` (bilinear,
        extrapolated linearly)."""
        i, fi = _interp(self.load, load)
        j, fj = _interp(self.slew, slew)

        def at(a: int, b: int) -> float:
            return self.values[min(a, len(self.load) - 1)][min(b, len(self.slew) - 1)]

        lo = at(i, j) + (at(i, j + 1) - at(i, j)) * fj
        hi = at(i + 1, j) + (at(i + 1, j + 1) - at(i + 1, j)) * fj
        return lo + (hi - lo) * fi if len(self.load) > 1 else lo


@dataclasses.dataclass
class CellPower:
    """The power data of one liberty cell: input capacitance per pin (pF), leakage (liberty
    leakage unit, nW for OSU018) and the energy tables ``energy[(pin, related_pin)]`` =
    ``(rise, fall)`` (``related_pin`` None for an input pin's own passive energy)."""

    name: str
    capacitance: dict[str, float]
    leakage: float
    energy: dict[tuple[str, str | None], tuple[EnergyTable | None, EnergyTable | None]]

    def transition_energy(self, pin: str, related: str | None, slew: float,
                          load: float = 0.0) -> float:
        """Energy of one rise plus one fall of ``pin`` (caused by ``related``), pJ; 0 if the
        liberty has no table for it.

        Raises
        ------
        KeyError
            ``pin`` is not a pin of the cell.
        """
        if pin not in self.capacitance and not any(p == pin for p, _ in self.energy):
            raise KeyError(f"cell {self.name} has no pin {pin}")
        rise, fall = self.energy.get((pin, related), (None, None))
        return sum(t(slew, load) for t in (rise, fall) if t is not None)


def _templates(lib_body: str) -> dict[str, list[str]]:
    """``{template: [variable_1, variable_2, ...]}`` of the library's power templates."""
    out = {}
    for kind, name, body in _groups(lib_body):
        if kind in ("power_lut_template", "lu_table_template"):
            out[name] = [_attr(body, f"variable_{k}") or "" for k in (1, 2, 3)]
    return out


def _table(name: str, body: str, templates: dict[str, list[str]]) -> EnergyTable:
    vars_ = [v for v in templates.get(name, []) if v]
    idx = [_floats(_complex(body, f"index_{k}")) for k in (1, 2)]
    vals = _floats(_complex(body, "values"))
    if len(vars_) <= 1 or not idx[1]:  # passive: input transition only
        return EnergyTable([0.0], idx[0], [vals])
    n1, n2 = len(idx[0]), len(idx[1])
    rows = [vals[i * n2:(i + 1) * n2] for i in range(n1)]
    if vars_[0] == "total_output_net_capacitance":
        return EnergyTable(idx[0], idx[1], rows)
    # (input transition, load): transpose to (load, slew)
    return EnergyTable(idx[1], idx[0], [list(col) for col in zip(*rows)])


def parse_cell_power(text: str) -> dict[str, CellPower]:
    """:class:`CellPower` of every cell of liberty ``text``."""
    cells: dict[str, CellPower] = {}
    for _kind, _args, lib in _groups(text):
        templates = _templates(lib)
        for kind, name, body in _groups(lib):
            if kind != "cell":
                continue
            leak = float(_attr(body, "cell_leakage_power") or 0.0)
            caps: dict[str, float] = {}
            energy: dict = {}
            for sk, pin, pbody in _groups(body):
                if sk != "pin":
                    continue
                cap = _attr(pbody, "capacitance")
                if cap is not None:
                    caps[pin] = float(cap)
                for gk, _a, gbody in _groups(pbody):
                    if gk != "internal_power":
                        continue
                    related = _attr(gbody, "related_pin")
                    rf = {k: _table(tname, tb, templates) for k, tname, tb in _groups(gbody)
                          if k in ("rise_power", "fall_power", "power")}
                    if "power" in rf:
                        rf.setdefault("rise_power", rf["power"])
                    energy[(pin, related)] = (rf.get("rise_power"), rf.get("fall_power"))
            cells[name] = CellPower(name, caps, leak, energy)
    return cells
