"""Markdown tables and the sweep plot of ``dcim synth`` results (the dicts of :mod:`.flow`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["AXELERA_DSRAM", "curve_lines", "markdown", "plot_curve", "plot_sweep",
           "summary_lines", "sweep_markdown"]

#: Digital SRAM IMC row of the state-of-the-art table in seed 000 (Eleftheriou, Axelera AI):
#: Axelera's D-SRAM core, 12 nm, INT8.
AXELERA_DSRAM = {"node": "12nm", "tops_per_w": 14.11, "tops_per_mm2": 6.64, "tops": 39.3,
                 "area_mm2": 8.6}


def _f(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if x == 0:
            return "0"
        if abs(x) >= 1e5:
            return f"{x:,.0f}"
        if abs(x) < 1e-3:
            return f"{x:.{digits}e}"
        return f"{x:.{digits}g}" if abs(x) < 100 else f"{x:,.0f}"
    return str(x)


def summary_lines(r: dict[str, Any]) -> list[str]:
    """The figures ``dcim synth`` prints: area, Fmax, TOPS, TOPS/mm2, energy/MAC, blocks."""
    cfg, d, t = r["config"], r["derived"], r["timing"]
    full = d["by_runtime_bits"][str(cfg["act_bits"])]
    lines = [
        f"core {cfg['rows']}x{cfg['cols']} (act {cfg['act_bits']}b, weight "
        f"{cfg['weight_bits']}b, serial {cfg['serial_bits']}b, "
        f"tree {cfg.get('tree_style', 'ripple')} with {cfg['tree_regs']} regs); "
        f"method: {r['method']}",
        f"area: {d['area_um2_total']:,.0f} um2 total ({r['area']['cells']:,} cells, "
        f"{r['area']['flops']:,} flops); logic without weight flops "
        f"{d['area_um2_logic']:,.0f} um2; logic + 8T bit-cell model "
        f"{d['area_um2_logic_plus_bitcell']:,.0f} um2",
        f"Fmax: {d['fmax_mhz']:.1f} MHz (min period {t['min_period_ns']:.3f} ns; critical path "
        f"{t['critical_path']['start']} -> {t['critical_path']['end']})",
        f"TOPS (peak, {cfg['act_bits']}-bit activations): {full['tops_at_fmax']:.4g} at Fmax, "
        f"{full['tops_at_clock']:.4g} at {t['clock_ns']:g} ns",
        f"TOPS/mm2: {full['tops_per_mm2_total']:.4g} total, {_f(full['tops_per_mm2_logic'], 4)} "
        f"logic only, {full['tops_per_mm2_bitcell']:.4g} logic + bit-cells",
    ]
    for w, e in d["energy"].items():
        if w.startswith("u"):
            continue
        lines.append(f"energy/MAC ({w} workload): {e['energy_per_mac_pj']:.4g} pJ, "
                     f"{e['power_mw_at_fmax']:.4g} mW at Fmax, {e['tops_per_w']:.4g} TOPS/W "
                     f"(array busy {100 * e['utilization']:.0f} % of the window)")
        if "energy_per_mac_pj_gated" in e:
            lines.append(f"  with the weight cells' clock gated (modelled: no ICG cell in "
                         f"OSU018): {e['energy_per_mac_pj_gated']:.4g} pJ, "
                         f"{e['tops_per_w_gated']:.4g} TOPS/W (a gate per word; a gate per "
                         f"column: {e['energy_per_mac_pj_gated_column']:.4g} pJ, "
                         f"{e['tops_per_w_gated_column']:.4g} TOPS/W)")
        if e.get("energy_per_mac_pj_by_block"):
            lines.append(f"  by block ({w}): " + ", ".join(
                f"{b} {pj:.4g} pJ" for b, pj in e["energy_per_mac_pj_by_block"].items()))
        if e.get("energy_per_mac_pj_by_block_gated"):
            lines.append(f"  by block, gated ({w}): " + ", ".join(
                f"{b} {pj:.4g} pJ" for b, pj in e["energy_per_mac_pj_by_block_gated"].items()))
    lines += curve_lines(d)
    s12 = d["scaled"].get("12nm", {})
    if "u100" in d["energy"] and "tops_per_w_u100" in s12:
        c12 = d["scaled"]["12nm classical"]
        lines.append(
            f"12 nm (Stillmaker & Baas, estimate) at the curve's highest utilization "
            f"({100 * d['energy']['u100']['utilization']:.0f} %): "
            f"{s12['tops_per_w_u100']:.3g} TOPS/W ungated, "
            f"{s12.get('tops_per_w_u100_gated', float('nan')):.3g} gated per word, "
            f"{s12.get('tops_per_w_u100_gated_column', float('nan')):.3g} per column, "
            f"{s12['tops_per_mm2']:.3g} TOPS/mm2 (logic {s12['area_um2_logic'] / 1e6:.4g} mm2 + "
            f"bit-cells {s12['area_um2_bitcell'] / 1e6:.3g} mm2); classical scaling "
            f"{c12['tops_per_w_u100']:.3g} / {c12.get('tops_per_w_u100_gated', float('nan')):.3g}"
            f" TOPS/W, {c12['tops_per_mm2']:.3g} TOPS/mm2; 180 nm: "
            f"{d['energy']['u100']['tops_per_w']:.3g} / "
            f"{d['energy']['u100'].get('tops_per_w_gated', float('nan')):.3g} TOPS/W, "
            f"{full['tops_per_mm2_bitcell']:.3g} TOPS/mm2 (logic + bit-cells)")
    total = d["area_um2_total"]
    lines.append("blocks: " + ", ".join(
        f"{name} {b['area_um2']:,.0f} um2 ({100 * b['area_um2'] / total:.1f} %)"
        for name, b in r["area"]["blocks"].items()))
    return lines


def curve_lines(d: dict[str, Any]) -> list[str]:
    """The TOPS/W-against-utilization table (markdown) of derived figures ``d``, with the
    Thetis anchor (seed 000: -7 % at 25 %); empty without a curve."""
    curve = d.get("curve") or []
    if not curve:
        return []
    top = curve[0]
    out = [f"TOPS/W against array utilization (random data, idle cycles between vectors; "
           f"relative to the highest point, {100 * top['utilization']:.1f} % busy):",
           "| target | busy (measured) | idle gap | pJ/MAC | TOPS/W | vs top | pJ/MAC gated | "
           "TOPS/W gated | vs top gated | pJ/MAC gated/column | vs top gated/column | Thetis |",
           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for p in curve:
        thetis = "-7 %" if p["target_percent"] == 25 else ("0 %" if p is top else "")
        out.append(f"| {p['target_percent']} % | {100 * p['utilization']:.1f} % | {p['gap']} | "
                   f"{_f(p['energy_per_mac_pj'], 4)} | {_f(p['tops_per_w'], 4)} | "
                   f"{100 * (p['relative'] - 1):+.1f} % | "
                   f"{_f(p.get('energy_per_mac_pj_gated'), 4)} | "
                   f"{_f(p.get('tops_per_w_gated'), 4)} | "
                   + (f"{100 * (p['relative_gated'] - 1):+.1f} %" if "relative_gated" in p
                      else "-")
                   + f" | {_f(p.get('energy_per_mac_pj_gated_column'), 4)} | "
                   + (f"{100 * (p['relative_gated_column'] - 1):+.1f} %"
                      if "relative_gated_column" in p else "-") + f" | {thetis} |")
    reached = {p["target_percent"] for p in curve}
    missing = [u for u in (100, 50, 25, 10) if u not in reached]
    if missing:
        out.append(f"(not reached by this configuration: {', '.join(f'{u} %' for u in missing)};"
                   f" back-to-back vectors keep the array {100 * top['utilization']:.1f} % busy)")
    return out


def plot_curve(d: dict[str, Any], path: Path) -> bool:
    """Plot the TOPS/W curve (ungated and gated, relative to the highest point) beside the
    Thetis anchor into ``path`` (PNG); False (nothing written) without matplotlib or curve."""
    curve = d.get("curve") or []
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - the plot extra
        return False
    if not curve:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    u = [100 * p["utilization"] for p in curve]
    ax.plot(u, [p["relative"] for p in curve], "o-", label="dcim, ungated")
    if all("relative_gated" in p for p in curve):
        ax.plot(u, [p["relative_gated"] for p in curve], "s-",
                label="dcim, weight clock gated per word (modelled)")
        ax.plot(u, [p["relative_gated_column"] for p in curve], "d-",
                label="dcim, weight clock gated per column (modelled)")
    ax.plot([100, 25], [1.0, 1 - 0.07], "k^--", label="Thetis (seed 000): -7 % at 25 %")
    ax.axhline(0.85, color="grey", lw=0.8, ls=":", label="goal: <= 15 % loss at 25 %")
    ax.set_xlabel("array utilization (%)")
    ax.set_ylabel("TOPS/W relative to the highest utilization")
    ax.set_xlim(0, 105)
    ax.set_ylim(0, 1.1)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def markdown(r: dict[str, Any]) -> str:
    """A markdown report of one result."""
    cfg, d, t = r["config"], r["derived"], r["timing"]
    out = [f"# dcim synth: {cfg['name']} {cfg['rows']}x{cfg['cols']}", "",
           f"Method: {r['method']}. Liberty: `{r['liberty']}`.", ""]
    if r.get("area_corrections"):
        out.append("Cell areas corrected from the LEF (liberty -> LEF, um2): " + ", ".join(
            f"{c['cell']} {c['liberty_um2']:g} -> {c['lef_um2']:g}"
            for c in r["area_corrections"]) + ".")
        out.append("")
    out += ["## Area per block (OSU 0.18 um, LEF areas)", "",
            "| block | area (um2) | share | cells |", "| --- | ---: | ---: | ---: |"]
    total = d["area_um2_total"]
    for name, b in r["area"]["blocks"].items():
        out.append(f"| {name} | {b['area_um2']:,.0f} | {100 * b['area_um2'] / total:.1f} % | "
                   f"{b['cells']:,} |")
    out.append(f"| **total** | **{total:,.0f}** | 100 % | {r['area']['cells']:,} |")
    out += ["", f"Weight storage as an 8T bit-cell model ({d['stored_bits']:,} bits): "
            f"{d['bitcell_area_um2']:,.0f} um2 instead of {d['area_um2_weight_flops']:,.0f} um2 "
            "of flip-flops and write logic.", ""]
    g = r.get("generic", {})
    if g.get("transistors_cmos"):
        out += [f"Generic synthesis: {g['cells']:,} cells, `stat -tech cmos` transistors: "
                f"{g['transistors_cmos']} ('+': flip-flops not counted).", ""]
    out += ["## Timing", "",
            f"Fmax {d['fmax_mhz']:.1f} MHz (period {t['min_period_ns']:.3f} ns = "
            f"{t['clock_ns']:g} ns - slack {t['worst_slack_ns']:.3f} ns); critical path "
            f"`{t['critical_path']['start']}` -> `{t['critical_path']['end']}`.", "",
            "## Throughput and density", "",
            "| act bits | cycles/pass | TOPS @Fmax | TOPS @clock | TOPS/mm2 total | "
            "TOPS/mm2 logic | TOPS/mm2 logic+bit-cells |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for b, x in d["by_runtime_bits"].items():
        out.append(f"| {b} | {x['cycles_per_pass']} | {_f(x['tops_at_fmax'], 4)} | "
                   f"{_f(x['tops_at_clock'], 4)} | {_f(x['tops_per_mm2_total'], 4)} | "
                   f"{_f(x['tops_per_mm2_logic'], 4)} | {_f(x['tops_per_mm2_bitcell'], 4)} |")
    if d["energy"]:
        out += ["", "## Power and energy (at Fmax)", "",
                "| workload | power (mW) | energy/MAC (pJ) | TOPS/W | array busy | "
                "activity source |",
                "| --- | ---: | ---: | ---: | ---: | --- |"]
        for w, e in d["energy"].items():
            out.append(f"| {w} | {_f(e['power_mw_at_fmax'], 4)} | "
                       f"{_f(e['energy_per_mac_pj'], 4)} | {_f(e['tops_per_w'], 4)} | "
                       f"{100 * e['utilization']:.0f} % | {e['activity']} |")
        by_block = {w: e.get("energy_per_mac_pj_by_block") or {} for w, e in d["energy"].items()}
        names = list(next(iter(by_block.values())))
        if names:
            out += ["", "Energy per MAC by block (pJ; each block's leaf cells from OpenSTA, same "
                    "window; `clock`: the clock net's pin load, C_clk Vdd^2 per cycle, which "
                    "OpenSTA's report leaves out: an ideal clock, no tree). `gated`: the "
                    "weight cells' clock gated per word (modelled: no ICG cell in OSU018; "
                    "LATCH + OR2X1 per word, docs/synth.md):", "",
                    "| workload | " + " | ".join(names) + " | total |",
                    "| --- |" + " ---: |" * (len(names) + 1)]
            for w, v in by_block.items():
                e = d["energy"][w]
                out.append(f"| {w} | " + " | ".join(_f(v[b], 4) for b in names)
                           + f" | {_f(e['energy_per_mac_pj'], 4)} |")
                g = e.get("energy_per_mac_pj_by_block_gated")
                if g:
                    out.append(f"| {w} gated | " + " | ".join(_f(g[b], 4) for b in names)
                               + f" | {_f(e['energy_per_mac_pj_gated'], 4)} |")
        c = r.get("clock") or {}
        if c.get("gating"):
            m = c["gating"]
            out += ["", f"Clock-gating model per weight word ({m['word_bits']} x {m['flop']}): "
                    f"a flip-flop not written saves {m['flop_clock_pj']:.4g} pJ per cycle "
                    f"(OpenSTA) and {m['flop_clock_cap_pf']:.4g} pF of clock load; the gate "
                    f"({m['gate_cells']}) costs {m['gate_cycle_pj']:.4g} pJ and "
                    f"{m['gate_clock_cap_pf']:.4g} pF every cycle, {m['gate_write_pj']:.4g} pJ "
                    f"more in a written cycle, and {m['gate_area_um2']:g} um2 "
                    f"({c['words'] * m['gate_area_um2']:,.0f} um2 for {c['words']:,} words)."]
        curve = curve_lines(d)
        if curve:
            out += ["", "## TOPS/W against utilization", ""] + curve
    ws = [w for w in d["energy"] if not w.startswith("u") or w == "u100"]
    cols = [(w, tag) for w in ws for tag in ("", "_gated", "_gated_column")
            if f"energy_per_mac_pj{tag}" in d["energy"][w]]
    out += ["", "## Scaled estimates (NOT measured)", "",
            "Stillmaker & Baas (Integration 58, 2017) fitted equations, the primary figure (14 nm "
            "HP at 0.8 V stands for 12 nm, 20 nm HP for 22 nm), and classical S, U^2 scaling "
            "beside (optimistic). Logic and bit-cells scaled apart (the 8T bit-cell model at "
            "180 nm scaled by the same area factor); every block's energy by the logic energy "
            "factor. `u100`: the utilization curve's highest point.", "",
            "| node | logic (um2) | bit-cells (um2) | Fmax (MHz) | TOPS | TOPS/mm2 | "
            + " | ".join(f"TOPS/W {w}{t.replace('_', ' ')}" for w, t in cols) + " |",
            "| --- | ---: | ---: | ---: | ---: | ---: |" + " ---: |" * len(cols)]
    src = d["by_runtime_bits"][str(cfg["act_bits"])]
    out.append(f"| 180nm (measured) | {_f(d['area_um2_logic'])} | {_f(d['bitcell_area_um2'])} | "
               f"{_f(d['fmax_mhz'], 4)} | {_f(src['tops_at_fmax'], 4)} | "
               f"{_f(src['tops_per_mm2_bitcell'], 4)} | "
               + " | ".join(_f(d["energy"][w][f"tops_per_w{t}"], 4) for w, t in cols) + " |")
    for node, s in d["scaled"].items():
        out.append(f"| {node} (estimate) | {_f(s['area_um2_logic'])} | "
                   f"{_f(s['area_um2_bitcell'])} | {_f(s['fmax_mhz'], 4)} | {_f(s['tops'], 4)} | "
                   f"{_f(s['tops_per_mm2'], 4)} | "
                   + " | ".join(_f(s[f"tops_per_w_{w}{t}"], 4) for w, t in cols) + " |")
    a = AXELERA_DSRAM
    out.append(f"| Axelera D-SRAM (seed 000, {a['node']}, silicon) | - | - | - | {a['tops']} | "
               f"{a['tops_per_mm2']} | " + " | ".join(str(a["tops_per_w"]) for _ in cols) + " |")
    out.append("")
    return "\n".join(out)


_SWEEP_COLS = ("rows", "cols", "tree", "method", "area_um2", "logic_um2", "fmax_mhz", "tops",
               "tops_mm2", "tops_mm2_bitcell", "pj_mac_random", "pj_mac_sparse",
               "tops_w_12nm", "tops_mm2_12nm", "wall_s")


def sweep_row(r: dict[str, Any]) -> dict[str, Any]:
    """The sweep-table entry of one result."""
    cfg, d = r["config"], r["derived"]
    full = d["by_runtime_bits"][str(cfg["act_bits"])]
    e = d["energy"]
    s12 = d["scaled"]["12nm"]
    return {
        "rows": cfg["rows"], "cols": cfg["cols"],
        "tree": f"{cfg.get('tree_style', 'ripple')}, {cfg['tree_regs']} regs",
        "method": "flat" if r["method"] == "flat" else "estimate",
        "area_um2": d["area_um2_total"], "logic_um2": d["area_um2_logic"],
        "fmax_mhz": d["fmax_mhz"], "tops": full["tops_at_fmax"],
        "tops_mm2": full["tops_per_mm2_total"], "tops_mm2_bitcell": full["tops_per_mm2_bitcell"],
        "pj_mac_random": e.get("random", {}).get("energy_per_mac_pj"),
        "pj_mac_sparse": e.get("sparse", {}).get("energy_per_mac_pj"),
        "tops_w_12nm": s12.get("tops_per_w_random"),
        "tops_mm2_12nm": s12["tops_per_mm2"],
        "wall_s": r.get("wall_time", {}).get("total_s"),
    }


def sweep_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table of :func:`sweep_row` entries, with the Axelera D-SRAM reference."""
    head = ["rows", "cols", "tree", "method", "area (um2)", "logic (um2)", "Fmax (MHz)", "TOPS",
            "TOPS/mm2", "TOPS/mm2 logic+bit-cells", "pJ/MAC random", "pJ/MAC sparse",
            "TOPS/W @12nm (est.)", "TOPS/mm2 @12nm (est.)", "wall (s)"]
    out = ["| " + " | ".join(head) + " |", "|" + " ---: |" * len(head)]
    for row in rows:
        out.append("| " + " | ".join(_f(row[k], 4) if not isinstance(row[k], str) else row[k]
                                     for k in _SWEEP_COLS) + " |")
    a = AXELERA_DSRAM
    out.append(f"| Axelera D-SRAM | (seed 000) | - | silicon, {a['node']} | - | - | - | "
               f"{a['tops']} | - | - | - | - | {a['tops_per_w']} | {a['tops_per_mm2']} | - |")
    return "\n".join(out) + "\n"


def plot_sweep(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Plot area and TOPS/mm2 against array size (rows x cols) into ``path`` (PNG).

    Raises
    ------
    RuntimeError
        matplotlib is not installed (the ``plot`` extra).
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover
        raise RuntimeError("the sweep plot needs matplotlib (pip install dcim[plot])") from exc
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for n_rows in sorted({r["rows"] for r in rows}):
        pts = sorted((r for r in rows if r["rows"] == n_rows), key=lambda r: r["cols"])
        size = [r["rows"] * r["cols"] for r in pts]
        line, = a1.loglog(size, [r["area_um2"] / 1e6 for r in pts], "o-",
                          label=f"rows={n_rows} total")
        a1.loglog(size, [r["logic_um2"] / 1e6 for r in pts], "s--", color=line.get_color(),
                  label=f"rows={n_rows} without weight flops")
        a2.semilogx(size, [r["tops_mm2"] for r in pts], "o-", color=line.get_color(),
                    label=f"rows={n_rows} total")
        a2.semilogx(size, [r["tops_mm2_bitcell"] for r in pts], "s--", color=line.get_color(),
                    label=f"rows={n_rows} logic + 8T bit-cells")
        for r in pts:
            a1.annotate(f"{r['rows']}x{r['cols']}", (r["rows"] * r["cols"], r["area_um2"] / 1e6),
                        fontsize=7)
    for ax, ylabel in ((a1, "area (mm2, OSU 0.18 um)"), (a2, "peak TOPS/mm2 at Fmax (180 nm)")):
        ax.set_xlabel("array size rows x cols (MACs)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
