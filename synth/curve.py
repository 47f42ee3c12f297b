"""The TOPS/W curve against array utilization: the workloads that bring the array to each
target utilization (idle cycles between vectors) and the curve's figures from their measured
energy (docs/synth.md, "TOPS/W against array utilization")."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..golden.config import CoreConfig
from .activity import Workload, workload

__all__ = ["CURVE_UTILIZATIONS", "THETIS_LOSS_AT_25", "back_to_back_utilization", "curve_gap",
           "curve_workloads", "utilization_curve"]

#: Axelera's Thetis core (seed 000): its energy efficiency drops by 7 % from 100 % to 25 %
#: array utilization.
THETIS_LOSS_AT_25 = 0.07


#: Target array utilizations (percent) of the TOPS/W curve of ``dcim synth``.
CURVE_UTILIZATIONS = (100, 50, 25, 10)


def back_to_back_utilization(cfg: CoreConfig, emit_every: int = 1) -> float:
    """The array utilization of back-to-back vectors when every ``emit_every``-th pass emits a
    DPU result and the others accumulate: ``cycles_per_pass`` over the mean of the schedule's
    pass intervals (:meth:`~dcim.golden.schedule.Schedule.pass_interval`)."""
    acc = cfg.pass_interval(emit=False)
    mean = ((emit_every - 1) * acc + cfg.pass_interval()) / emit_every
    return cfg.cycles_per_pass() / mean


def curve_gap(cfg: CoreConfig, percent: int, emit_every: int = 1) -> int | None:
    """Idle cycles between vectors that bring the array to ``percent`` % utilization: 0 for
    the highest utilization the configuration reaches (``percent`` at or above
    :func:`back_to_back_utilization`), else ``round(cycles_per_pass / u) - x_beats`` (a vector
    every ``cycles_per_pass / u`` cycles, as the activation stream then sets the pace); None
    when ``percent`` is above what back-to-back vectors reach and is not 100 (the 100 % point
    stands for the highest reached)."""
    u0 = back_to_back_utilization(cfg, emit_every)
    u = percent / 100
    if u >= u0 - 1e-9:
        return 0 if percent == 100 or u <= u0 + 1e-9 else None
    return max(0, round(cfg.cycles_per_pass() / u) - cfg.x_beats)


def curve_workloads(cfg: CoreConfig, n_vectors: int, percents=CURVE_UTILIZATIONS,
                    emit_every: int = 1, gaps: dict[int, int | None] | None = None,
                    ) -> dict[str, Workload]:
    """The workloads of the utilization curve, ``{"u<percent>": workload}``: the ``random``
    data with the idle gap of :func:`curve_gap` (or ``gaps[percent]``, e.g. those of the
    whole array for the parts of an estimate; points with no gap, which the configuration
    cannot reach, are left out)."""
    out = {}
    base = workload(cfg, "random", n_vectors, emit_every=emit_every)
    for p in percents:
        g = gaps[p] if gaps is not None else curve_gap(cfg, p, emit_every)
        if g is not None:
            out[f"u{p}"] = dataclasses.replace(base, name=f"u{p}", gap=g)
    return out


def utilization_curve(energy: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The TOPS/W curve from the energy entries of the curve workloads (``u<percent>``), in
    the order of falling target utilization, each with its efficiency relative to the first
    (highest) point, ungated and gated.

    Raises
    ------
    ValueError
        A curve workload's name is not ``u<int>``.
    """
    pts = []
    for w, e in energy.items():
        if not w.startswith("u"):
            continue
        if not w[1:].isdigit():
            raise ValueError(f"a curve workload is named u<percent>, got {w!r}")
        pts.append((int(w[1:]), w, e))
    pts.sort(key=lambda t: -t[0])
    out = []
    for target, w, e in pts:
        first = pts[0][2]
        row = {"target_percent": target, "workload": w, "utilization": e["utilization"],
               "gap": e.get("gap", 0), "energy_per_mac_pj": e["energy_per_mac_pj"],
               "tops_per_w": e["tops_per_w"],
               "relative": e["tops_per_w"] / first["tops_per_w"],
               "energy_per_mac_pj_by_block": e["energy_per_mac_pj_by_block"]}
        for tag in ("_gated", "_gated_column"):
            if f"tops_per_w{tag}" in e:
                row.update({f"energy_per_mac_pj{tag}": e[f"energy_per_mac_pj{tag}"],
                            f"tops_per_w{tag}": e[f"tops_per_w{tag}"],
                            f"relative{tag}": e[f"tops_per_w{tag}"] / first[f"tops_per_w{tag}"],
                            f"energy_per_mac_pj_by_block{tag}":
                                e[f"energy_per_mac_pj_by_block{tag}"]})
        out.append(row)
    return out
