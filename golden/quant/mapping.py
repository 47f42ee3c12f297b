"""Map a quantized model's layers onto the configured core: tiles, passes, cycles, utilization.

A weighted layer with reduction depth ``K``, ``N`` output channels and ``V`` activation
vectors per inference (``OH*OW`` for a convolution, 1 for a fully connected layer) runs on the
``rows x cols`` array as ``ceil(K/rows)`` row tiles (K-passes accumulated in the partial sum)
times ``ceil(N/cols)`` column tiles, so ``passes = V * row_tiles * col_tiles``.

Cycle model, on the core's stream contract (docs/core.md), every figure from the
configuration's :class:`~dcim.golden.schedule.Schedule`: a weight tile loads in
``tile_load_cycles`` (``rows`` weight-row packets of ``w_beats`` beats, back to back);
passes run back to back every ``pass_interval`` cycles (accumulating, emitting a DPU
result, or emitting a raw int32 result), and ``pass_bound`` names what bounds them. The core
keeps one partial sum per column, so a layer is run with one of these schedules (the cheaper
one is reported):

``stationary`` (``K <= rows``)
    each column tile loaded once per batch; one emitting pass per vector.
``k-reload`` (``K > rows``)
    per vector and column tile: load each row tile, accumulate its pass (ACC), emit after the
    last one through the DPU.
``k-raw`` (``K > rows``)
    each tile loaded once per batch; every pass emits its raw int32 partial sums and the host
    adds them (saturating as :func:`dcim.golden.model.accumulate`) and applies the DPU rules
    (:func:`dcim.golden.model.dpu`) -- the same integers as on the core.

With one weight set (``weight_sets`` 1) weight loads are not overlapped with compute: a layer
of ``n`` tiles, tile ``i`` loaded in ``L`` cycles and then computed in ``C_i``, takes
``sum(L + C_i)``. With two (double-buffered weights, docs/core.md) tile ``i+1`` loads into the
shadow set while tile ``i`` computes, and its first pass swaps it in: ``L + sum_{i<n-1}
max(C_i, L) + C_{n-1}``, i.e. ``sum_{i<n-1} min(C_i, L)`` load cycles fewer
(:attr:`LayerMap.overlapped_cycles`). The first tile of a layer is not overlapped with the
previous layer. Layers off the array (pooling, an Add not fused into the DPU, flatten, softmax)
are listed with zero array cycles.

``utilization`` is the fraction of the array's cells doing useful MACs during the passes
(``MACs / (passes * rows * cols)``); the totals give effective and peak TOPS at a clock
(1 MAC = 2 operations).
"""

from __future__ import annotations

import dataclasses
import math

from ..config import CoreConfig
from ..errors import InputError
from .qmodel import QLayer

__all__ = ["LayerMap", "MappingTotals", "hidden_load", "map_layers", "totals"]


def hidden_load(cfg: CoreConfig, load: int, computes: list[tuple[int, int]]) -> int:
    """Load cycles hidden under compute in a chain of tiles, each loaded in ``load`` cycles
    and then computed (module docstring): ``computes`` lists ``(C, count)`` for every tile but
    the last (``count`` tiles computing ``C`` cycles each, in any order). 0 with one weight
    set."""
    if cfg.weight_sets == 1:
        return 0
    return sum(count * min(c, load) for c, count in computes)


@dataclasses.dataclass(frozen=True)
class LayerMap:
    """Mapping figures of one layer for one batch of inferences (see :func:`map_layers`).

    Attributes
    ----------
    name, kind : str
    K, N, vectors : int
        Reduction depth, output channels, activation vectors (0 for layers off the array).
    row_tiles, col_tiles, passes : int
    macs : int
        Useful multiply-accumulates.
    compute_cycles : int
        ``passes * cycles_per_pass``: cycles the array computes.
    load_cycles : int
        Weight-load cycles (every one, overlapped or not).
    cycles : int
        Total cycles under the cycle model.
    utilization : float
        ``macs / (passes * rows * cols)`` (0 for layers off the array).
    schedule : str
        ``stationary``, ``k-reload`` or ``k-raw`` (see the module docstring; empty for layers
        off the array).
    bound : str
        What sets the interval of an emitting pass
        (:meth:`~dcim.golden.schedule.Schedule.pass_bound`): ``array``, ``activation stream``,
        ``DPU`` or ``result stream`` (empty for layers off the array).
    overlapped_cycles : int
        Weight-load cycles hidden under compute (two weight sets; 0 with one): ``cycles`` is
        ``load_cycles + compute time - overlapped_cycles``.
    """

    name: str
    kind: str
    K: int
    N: int
    vectors: int
    row_tiles: int
    col_tiles: int
    passes: int
    macs: int
    compute_cycles: int
    load_cycles: int
    cycles: int
    utilization: float
    schedule: str = ""
    bound: str = ""
    overlapped_cycles: int = 0

    @property
    def on_array(self) -> bool:
        """Whether the layer runs on the array."""
        return self.passes > 0


@dataclasses.dataclass(frozen=True)
class MappingTotals:
    """Totals for one batch of inferences at a clock frequency.

    Attributes
    ----------
    macs, passes, compute_cycles, load_cycles, cycles, overlapped_cycles : int
    utilization : float
        MAC-weighted array utilization over the passes.
    clock_mhz : float
    peak_tops : float
        ``2 * peak_macs_per_cycle * f``.
    effective_tops : float
        ``2 * macs / (cycles / f)``.
    inferences_per_s : float
    batch : int
        Inferences the figures cover (one weight load per batch).
    """

    macs: int
    passes: int
    compute_cycles: int
    load_cycles: int
    cycles: int
    utilization: float
    clock_mhz: float
    peak_tops: float
    effective_tops: float
    inferences_per_s: float
    batch: int = 1
    overlapped_cycles: int = 0


def map_layers(cfg: CoreConfig, layers: list[QLayer], shapes: dict[str, tuple[int, ...]],
               batch: int = 1) -> list[LayerMap]:
    """Mapping figures of every layer for a batch of ``batch`` inferences (each weight tile is
    loaded once per batch).

    Parameters
    ----------
    layers : list of QLayer
        From :func:`dcim.golden.quant.qmodel.plan` or a quantized model.
    shapes : dict of str to tuple
        Shape of one inference's tensors by name (batch 1), e.g. from
        ``FloatGraph.forward(x[:1], keep_all=True)``.
    batch : int
        Inferences that share one weight load (``vectors`` counts all of them).

    Raises
    ------
    ValueError
        ``batch`` is not a positive int.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InputError(f"batch must be an int >= 1, got {batch!r}")
    out = []
    cpp = cfg.cycles_per_pass()
    tile_load = cfg.tile_load_cycles
    per_pass = cfg.pass_interval(emit=False)  # an accumulating pass
    e_pass, r_pass = cfg.pass_interval(), cfg.pass_interval(raw=True)
    for layer in layers:
        op = layer.op
        if not op.on_array:
            out.append(LayerMap(layer.name, op.kind, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0))
            continue
        k, n_out = op.dims
        kind = op.kind if layer.lut is None else f"{op.kind}+{layer.lut.kind}"
        v = op.vectors(shapes[layer.output]) * batch
        plan = op.tile_plan(cfg)
        rt, ct = max(cfg.k_passes(k_t) for _, k_t, _, _ in plan), len(plan)
        passes = v * rt * ct
        macs = v * k * n_out
        options = []  # (cycles, load cycles, schedule, raw results, hidden load cycles)
        if rt == 1:  # ct tiles of v emitting passes
            load = ct * tile_load
            hid = hidden_load(cfg, tile_load, [(v * e_pass, ct - 1)])
            options.append((load + v * ct * e_pass - hid, load, "stationary", False, hid))
        else:
            # v * ct groups of rt tiles of one pass each, accumulating but the last
            load = v * ct * rt * tile_load
            hid = hidden_load(cfg, tile_load, [(per_pass, v * ct * (rt - 1)),
                                               (e_pass, v * ct - 1)])
            options.append((load + v * ct * ((rt - 1) * per_pass + e_pass) - hid, load,
                            "k-reload", False, hid))
            # rt * ct tiles of v raw passes
            load = rt * ct * tile_load
            hid = hidden_load(cfg, tile_load, [(v * r_pass, rt * ct - 1)])
            options.append((load + passes * r_pass - hid, load, "k-raw", True, hid))
        cycles, load, schedule, raw, hid = min(options, key=lambda o: o[0])
        bound = cfg.pass_bound(raw=raw)  # of the emitting passes
        out.append(LayerMap(layer.name, kind, k, n_out, v, rt, ct, passes, macs,
                            passes * cpp, load, cycles, macs / (passes * cfg.rows * cfg.cols),
                            schedule, bound, hid))
    return out


def totals(cfg: CoreConfig, maps: list[LayerMap], clock_mhz: float, batch: int = 1
           ) -> MappingTotals:
    """Totals of ``maps`` (computed for ``batch`` inferences) and TOPS at ``clock_mhz``.

    Raises
    ------
    ValueError
        ``clock_mhz`` is not a positive finite number.
    """
    if not (isinstance(clock_mhz, (int, float)) and math.isfinite(clock_mhz) and clock_mhz > 0):
        raise InputError(f"clock must be a positive frequency in MHz, got {clock_mhz!r}")
    macs = sum(m.macs for m in maps)
    passes = sum(m.passes for m in maps)
    cycles = sum(m.cycles for m in maps)
    f = clock_mhz * 1e6
    util = macs / (passes * cfg.rows * cfg.cols) if passes else 0.0
    return MappingTotals(
        macs=macs, passes=passes, compute_cycles=sum(m.compute_cycles for m in maps),
        load_cycles=sum(m.load_cycles for m in maps), cycles=cycles, utilization=util,
        clock_mhz=float(clock_mhz), peak_tops=2 * cfg.peak_macs_per_cycle * f / 1e12,
        effective_tops=(2 * macs * f / cycles / 1e12) if cycles else 0.0,
        inferences_per_s=f * batch / cycles if cycles else 0.0, batch=batch,
        overlapped_cycles=sum(m.overlapped_cycles for m in maps))
