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

    Stillmaker and Baas ("Scaling equations for the accurate prediction of CMOS device
    performance from 180 nm to 7 nm", Integration 58, 2017) show such classical equations can
    be off by up to 83x against PTM/ITRS predictions below 45 nm (node names are no longer
    physical dimensions; wires and leakage do not scale ideally). Treat the 22 nm / 12 nm
    figures as optimistic first-order estimates, not predictions.
"""

from __future__ import annotations

import dataclasses

__all__ = ["BITCELL_F2", "EIGHT_T_OVERHEAD", "NODES", "Node", "bitcell_area_um2", "scale"]

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
