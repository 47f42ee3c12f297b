"""The PPA figures derived from one run's measured area, timing and power: throughput, densities
(with the weight store also as 8T bit-cells), energy per MAC, and the scaled estimates."""

from __future__ import annotations

from typing import Any

from ..golden.config import CoreConfig
from .scaling import NODES, bitcell_area_um2, scale

__all__ = ["derive"]

_SIM_NAMES = {"icarus": "Icarus simulation", "cycle": "cycle-based simulation"}


def _bits_list(cfg: CoreConfig) -> list[int]:
    bits = {cfg.act_bits, cfg.serial_bits}
    if cfg.act_bits >= 8:
        bits.add(4)
    return sorted(bits, reverse=True)


def derive(cfg: CoreConfig, r: dict[str, Any]) -> dict[str, Any]:
    """Throughput, densities, energy and scaled estimates from the measured figures in ``r``.

    Raises
    ------
    AssertionError
        A workload's utilization (its MACs per cycle over the window against the array's peak)
        is not in (0, 1]: the measurement is broken, an internal error.
    """
    total = r["area"]["total_um2"]
    weights = r["area"]["blocks"].get("weights", {}).get("area_um2", 0.0)
    logic = total - weights
    stored_bits = cfg.stored_bits
    bitcell = bitcell_area_um2(stored_bits)
    fmax = r["timing"]["fmax_mhz"]
    fuser = 1000.0 / r["timing"]["clock_ns"]
    per_bits = {}
    for b in _bits_list(cfg):
        macs_per_cycle = cfg.macs_per_cycle(b)
        tops = 2 * macs_per_cycle * fmax * 1e6 / 1e12
        per_bits[str(b)] = {
            "cycles_per_pass": cfg.cycles_per_pass(b),
            "tops_at_fmax": tops,
            "tops_at_clock": 2 * macs_per_cycle * fuser * 1e6 / 1e12,
            "tops_per_mm2_total": tops / (total * 1e-6),
            "tops_per_mm2_logic": tops / (logic * 1e-6) if logic > 0 else None,
            "tops_per_mm2_bitcell": tops / ((logic + bitcell) * 1e-6),
        }
    energy = {}
    period_s = r["timing"]["min_period_ns"] * 1e-9
    for w, p in r.get("power", {}).items():
        # a computed figure: outside (0, 1] the measurement is broken (a bug, not bad input)
        if p["window_cycles"] < 1 or p["macs"] < 1:
            raise AssertionError(f"workload {w}: {p['macs']} MACs in {p['window_cycles']} "
                                 "cycles; the activity window or its MAC count is wrong")
        busy = p["macs"] / p["window_cycles"] / cfg.peak_macs_per_cycle
        if not 0 < busy <= 1:
            raise AssertionError(f"workload {w}: {p['macs']} MACs in {p['window_cycles']} "
                                 f"cycles is {busy:.0%} of the peak "
                                 f"{cfg.peak_macs_per_cycle:g} MACs/cycle; the activity "
                                 "window or its MAC count is wrong")
        e_mac = p["total_w"] * p["window_cycles"] * period_s / p["macs"]
        energy[w] = {
            "power_mw_at_fmax": p["total_w"] * 1e3,
            "energy_per_mac_pj": e_mac * 1e12,
            # each block's share of the energy per MAC (its leaf cells' power, same window)
            "energy_per_mac_pj_by_block": {
                b: watts * p["window_cycles"] * period_s / p["macs"] * 1e12
                for b, watts in p.get("blocks_w", {}).items()},
            "tops_per_w": 2 / e_mac / 1e12,
            # how busy the array was: MACs per cycle over the window against the peak
            "utilization": busy,
            "activity": f"gate-level {_SIM_NAMES[p.get('simulator', 'icarus')]} of the mapped "
                        f"netlist, {w} workload, "
                        f"{p['vectors']} vectors, {p['window_cycles']} cycles",
        }
    scaled = {}
    src = NODES["180nm"]
    for node in ("22nm", "12nm"):
        dst = NODES[node]
        s = scale(logic + bitcell, r["timing"]["min_period_ns"], 1.0, src, dst)
        f_mhz = 1000.0 / s["delay_ns"]
        tops = 2 * cfg.peak_macs_per_cycle * f_mhz * 1e6 / 1e12
        entry = {"estimate": True, "S": s["S"], "U": s["U"],
                 "area_um2_logic_plus_bitcell": s["area_um2"],
                 "fmax_mhz": f_mhz, "tops": tops,
                 "tops_per_mm2": tops / (s["area_um2"] * 1e-6)}
        for w, e in energy.items():
            e_pj = e["energy_per_mac_pj"] * s["energy_pj"]
            entry[f"energy_per_mac_pj_{w}"] = e_pj
            entry[f"tops_per_w_{w}"] = 2 / (e_pj * 1e-12) / 1e12
        scaled[node] = entry
    dp = [b["fmax_mhz"] for name, b in r["timing"].get("by_endpoint_block", {}).items()
          if name in ("compute", "accum") and "fmax_mhz" in b]
    return {
        "datapath_fmax_mhz": min(dp) if dp else None,
        "area_um2_total": total,
        "area_um2_logic": logic,
        "area_um2_weight_flops": weights,
        "stored_bits": stored_bits,
        "bitcell_area_um2": bitcell,
        "area_um2_logic_plus_bitcell": logic + bitcell,
        "fmax_mhz": fmax,
        "by_runtime_bits": per_bits,
        "energy": energy,
        "scaled": scaled,
    }

