"""The PPA figures derived from one run's measured area, timing and power: throughput, densities
(with the weight store also as 8T bit-cells), energy per MAC by block (with the clock network,
ungated and with the modelled clock gating of the weight cells, :mod:`.clocking`), the TOPS/W
curve against array utilization, and the scaled estimates (Stillmaker & Baas, and classical)."""

from __future__ import annotations

from typing import Any

from ..golden.config import CoreConfig
from .clocking import gated_energy_pj
from .curve import utilization_curve
from .scaling import NODES, SB_NODES, bitcell_area_um2, sb_factors, scale

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
        per_mac = p["window_cycles"] / p["macs"]  # cycles per MAC
        by_block = {b: watts * period_s * per_mac * 1e12
                    for b, watts in p.get("blocks_w", {}).items()}
        e_sta = p["total_w"] * period_s * per_mac * 1e12
        entry = {
            "power_mw_at_fmax": p["total_w"] * 1e3,
            "energy_per_mac_pj_opensta": e_sta,
            "energy_per_mac_pj": e_sta,
            # each block's share of the energy per MAC (its leaf cells' power, same window)
            "energy_per_mac_pj_by_block": by_block,
            # how busy the array was: MACs per cycle over the window against the peak
            "utilization": busy,
            "gap": p.get("gap", 0), "emit_every": p.get("emit_every", 1),
            "activity": f"gate-level {_SIM_NAMES[p.get('simulator', 'icarus')]} of the mapped "
                        f"netlist, {w} workload, "
                        f"{p['vectors']} vectors, {p['window_cycles']} cycles",
        }
        if r.get("clock") and by_block:
            entry.update(_clocked(r["clock"], by_block, per_mac,
                                  p.get("word_writes", 0) / p["window_cycles"]))
        entry["tops_per_w"] = 2 / entry["energy_per_mac_pj"]
        energy[w] = entry
    scaled = {}
    src = NODES["180nm"]
    period = r["timing"]["min_period_ns"]
    for node in ("22nm", "12nm"):
        row, vdd = SB_NODES[node]
        f = sb_factors(row, vdd)
        scaled[node] = _scaled_entry(
            cfg, logic * f["area"], bitcell * f["area"], period * f["delay"], f["energy"],
            energy, {"method": f"Stillmaker & Baas 2017, {row} row at {vdd:g} V from 180 nm "
                               "at 1.8 V", "area_factor": f["area"],
                     "delay_factor": f["delay"], "energy_factor": f["energy"]})
    for node in ("22nm", "12nm"):
        dst = NODES[node]
        s = scale(1.0, 1.0, 1.0, src, dst)
        scaled[f"{node} classical"] = _scaled_entry(
            cfg, logic * s["area_um2"], bitcell * s["area_um2"], period * s["delay_ns"],
            s["energy_pj"], energy, {"method": "classical S, U^2 scaling", "S": s["S"],
                                     "U": s["U"]})
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
        "curve": utilization_curve(energy),
        "scaled": scaled,
    }


def _clocked(clock: dict[str, Any], by_block: dict[str, float], per_mac: float,
             writes_per_cycle: float) -> dict[str, Any]:
    """The energy per MAC with the clock network as a block of its own, ungated and with the
    weight cells' clock gated (:mod:`dcim.synth.clocking`); ``per_mac`` is window cycles per
    MAC, ``writes_per_cycle`` the word writes per cycle in the window."""
    ungated = {**by_block, "clock": sum(clock["energy_pj_per_cycle"].values()) * per_mac}
    out = {"energy_per_mac_pj": sum(ungated.values()), "energy_per_mac_pj_by_block": ungated,
           "word_writes_per_cycle": writes_per_cycle}
    # one gate per word (the report's "gated"), and one per column ("gated_column")
    for tag, per_gate in (("", 1), ("_column", clock["words_per_column"])):
        g = gated_energy_pj(clock["gating"], clock["words"], writes_per_cycle, per_gate)
        gated = dict(ungated)
        gated["weights"] += (g["weights_added"] - g["weights_saved"]) * per_mac
        gated["clock"] += (g["clock_gated"] - g["clock_ungated"]) * per_mac
        out[f"energy_per_mac_pj_gated{tag}"] = sum(gated.values())
        out[f"energy_per_mac_pj_by_block_gated{tag}"] = gated
        out[f"tops_per_w_gated{tag}"] = 2 / sum(gated.values())
    return out


def _scaled_entry(cfg: CoreConfig, logic_um2: float, bitcell_um2: float, period_ns: float,
                  energy_factor: float, energy: dict[str, dict[str, Any]],
                  how: dict[str, Any]) -> dict[str, Any]:
    """One scaled node: areas (logic and bit-cells apart), Fmax, peak TOPS, TOPS/mm2 and each
    workload's energy per MAC and TOPS/W (ungated and gated) scaled by ``energy_factor``."""
    f_mhz = 1000.0 / period_ns
    tops = 2 * cfg.peak_macs_per_cycle * f_mhz * 1e6 / 1e12
    area = logic_um2 + bitcell_um2
    entry = {"estimate": True, **how, "area_um2_logic": logic_um2,
             "area_um2_bitcell": bitcell_um2, "area_um2_logic_plus_bitcell": area,
             "fmax_mhz": f_mhz, "tops": tops, "tops_per_mm2": tops / (area * 1e-6)}
    for w, e in energy.items():
        for tag in ("", "_gated", "_gated_column"):
            if f"energy_per_mac_pj{tag}" in e:
                e_pj = e[f"energy_per_mac_pj{tag}"] * energy_factor
                entry[f"energy_per_mac_pj_{w}{tag}"] = e_pj
                entry[f"tops_per_w_{w}{tag}"] = 2 / e_pj
    return entry

