"""Bit-cell storage area model and first-order CMOS scaling of the 180 nm results.

Everything here is an *estimate*, labelled as such in every report.

Bit-cell model
    A flip-flop weight store is far larger than a foundry SRAM bit-cell. An 8T bit-cell (the
    usual choice for digital in-memory compute: a decoupled read port) is modelled as
    ``BITCELL_F2`` feature sizes squared: ~100 F^2 for an embedded 6T SRAM cell (Lanza et al.,
    Science 2022, as quoted in seed 000) times ``EIGHT_T_OVERHEAD`` = 1.3 for the two extra read
    transistors (the ~30 % area overhead reported for 8T cells, Chang et al., IEEE JSSC 43(4),
    2008). Periphery (decoders, sense amplifiers) is not included.

CMOS scaling (generalized scaling theory)
    Dennard et al., "Design of ion-implanted MOSFETs with very small physical dimensions",
    IEEE JSSC 9(5), 1974, and the generalized form of Baccarani, Wordeman and Dennard,
    "Generalized scaling theory and its application to a 1/4 micrometer MOSFET design",
    IEEE T-ED 31(4), 1984: with linear dimensions scaled by ``1/S`` (``S = L_old / L_new``) and
    the supply by ``U = V_old / V_new``:

    - area:   ``A_new = A_old / S**2``
    - delay:  ``t_new = t_old / S`` (gate capacitance ``C/S``, with the drive current
      ``I/U`` at velocity saturation and ``V/U``: ``t ~ C V / I`` scales as ``1/S``)
    - energy: ``E_new = E_old / (S * U**2)`` (``E ~ C V^2``)

    Stillmaker and Baas (below) show such classical equations can be off by up to 83x against
    PTM/ITRS predictions below 45 nm (node names are no longer physical dimensions; wires and
    leakage do not scale ideally): the classical figures are kept beside the fitted ones as
    optimistic first-order bounds, not predictions.

Fitted scaling (the primary figure)
    A. Stillmaker and B. Baas, "Scaling equations for the accurate prediction of CMOS device
    performance from 180 nm to 7 nm", Integration, the VLSI Journal 58 (2017) 74-81,
    doi:10.1016/j.vlsi.2017.02.002. Delay and energy per operation of each node are
    polynomials of the supply voltage fitted to HSpice simulations with PTM (and ITRS) models
    (the paper's coefficient table, :data:`SB_COEFFS`): ``delay(V) = d3 V^3 + d2 V^2 + d1 V +
    d0``, ``energy(V) = e2 V^2 + e1 V + e0``; a figure scales by the ratio of the target's
    polynomial to the source's. Area scales by the paper's area factor table
    (:data:`SB_AREA_FROM_180`). Only the rows used here are transcribed (180 nm, and the
    high-performance 20 nm and 14 nm FinFET rows); they are the coefficients of the paper's
    table as also transcribed in the MIT-licensed ``nodeScale`` tool (W. Romaszkan, UCLA), and
    its published erratum's worked example (the HP 32 nm and 65 nm rows) reproduces from the
    same table. The paper has no 12 nm node: 12 nm processes (GF 12LP, TSMC 12FFC) are
    optimized 14/16 nm FinFET processes, so the **14 nm HP row stands for 12 nm**, at 0.8 V
    (and the 20 nm HP row for 22 nm, at 0.8 V); the source is 180 nm at 1.8 V (the OSU018
    liberty's corner). From 180 nm / 1.8 V to 14 nm HP / 0.8 V: delay x0.0571, energy
    x0.00365, area x0.0093.
"""

from __future__ import annotations

import dataclasses

__all__ = ["BITCELL_F2", "EIGHT_T_OVERHEAD", "NODES", "Node", "SB_AREA_FROM_180", "SB_COEFFS",
           "SB_NODES", "bitcell_area_um2", "sb_factors", "scale"]

#: Embedded 6T SRAM cell size in F^2 (Lanza et al., Science 2022, seed 000 table).
BITCELL_F2 = 100.0
#: 8T over 6T bit-cell area ratio (Chang et al., JSSC 2008: ~30 % larger).
EIGHT_T_OVERHEAD = 1.3


@dataclasses.dataclass(frozen=True)
class Node:
    """A technology node: feature size (nm) and nominal core supply (V)."""

    name: str
    feature_nm: float
    vdd: float


#: Source node (OSU 0.18 um liberty, 1.8 V) and the scaled targets. Supplies are typical
#: nominal core voltages of those nodes (22 nm FD-SOI / planar: 0.8 V; 12 nm FinFET: 0.8 V).
NODES = {
    "180nm": Node("180nm", 180.0, 1.8),
    "22nm": Node("22nm", 22.0, 0.8),
    "12nm": Node("12nm", 12.0, 0.8),
}


def bitcell_area_um2(bits: int, feature_nm: float = 180.0, eight_t: bool = True) -> float:
    """Area of ``bits`` SRAM bit-cells at ``feature_nm`` (no periphery).

    Raises
    ------
    ValueError
        ``bits`` is negative or ``feature_nm`` is not positive.
    """
    if bits < 0:
        raise ValueError(f"bits must be >= 0, got {bits}")
    if feature_nm <= 0:
        raise ValueError(f"feature_nm must be > 0, got {feature_nm}")
    f_um = feature_nm / 1000.0
    cell = BITCELL_F2 * f_um * f_um * (EIGHT_T_OVERHEAD if eight_t else 1.0)
    return bits * cell


def scale(area_um2: float, delay_ns: float, energy_pj: float, src: Node, dst: Node,
          ) -> dict[str, float]:
    """Scale area, delay and energy from node ``src`` to ``dst`` (equations in the module doc).

    Returns
    -------
    dict
        ``area_um2``, ``delay_ns``, ``energy_pj`` at ``dst`` and the factors used
        (``S``, ``U``).
    """
    s = src.feature_nm / dst.feature_nm
    u = src.vdd / dst.vdd
    return {
        "S": s,
        "U": u,
        "area_um2": area_um2 / (s * s),
        "delay_ns": delay_ns / s,
        "energy_pj": energy_pj / (s * u * u),
    }


#: Stillmaker & Baas (2017) coefficients per node: delay ``(d3, d2, d1, d0)`` and energy
#: ``(e2, e1, e0)`` polynomials of the supply voltage (the paper's table; module doc).
SB_COEFFS = {
    "180": {"delay": (0.0, 97.09, -356.7, 406.5), "energy": (0.0, 24.64, -17.98)},
    "HP20": {"delay": (0.0, 34.63, -66.37, 41.15), "energy": (0.373, -0.1582, 0.04104)},
    "HP14": {"delay": (-40.66, 109.2, -100.6, 35.92), "energy": (0.2363, -0.09675, 0.02239)},
}
#: Stillmaker & Baas (2017) area factors from 180 nm to each node (the paper's area table).
SB_AREA_FROM_180 = {"180": 1.0, "HP20": 0.011, "HP14": 0.0093}
#: The report's nodes and the fitted row and supply that stands for each (module doc).
SB_NODES = {"22nm": ("HP20", 0.8), "12nm": ("HP14", 0.8)}


def _poly(c: tuple[float, ...], v: float) -> float:
    return sum(a * v ** (len(c) - 1 - i) for i, a in enumerate(c))


def sb_factors(dst: str, v_dst: float, src: str = "180", v_src: float = 1.8) -> dict[str, float]:
    """Stillmaker & Baas factors from node ``src`` at ``v_src`` V to ``dst`` at ``v_dst`` V:
    ``delay``, ``energy`` (the ratios of the fitted polynomials) and ``area`` (the area table,
    from 180 nm only).

    Raises
    ------
    ValueError
        A node is not in :data:`SB_COEFFS`, or ``src`` is not 180 nm.
    """
    for n in (src, dst):
        if n not in SB_COEFFS:
            raise ValueError(f"node must be one of {', '.join(SB_COEFFS)}, got {n!r}")
    if src != "180":
        raise ValueError(f"the area factors are from 180 nm only, got src {src!r}")
    a, b = SB_COEFFS[src], SB_COEFFS[dst]
    return {"delay": _poly(b["delay"], v_dst) / _poly(a["delay"], v_src),
            "energy": _poly(b["energy"], v_dst) / _poly(a["energy"], v_src),
            "area": SB_AREA_FROM_180[dst]}
