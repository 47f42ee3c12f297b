"""Map a quantized model's layers onto the configured core: tiles, passes, cycles, utilization.

A weighted layer with reduction depth ``K``, ``N`` output channels and ``V`` activation
vectors per inference (``OH*OW`` for a convolution, 1 for a fully connected layer) runs on the
``rows x cols`` array as ``ceil(K/rows)`` row tiles (K-passes accumulated in the partial sum)
times ``ceil(N/cols)`` column tiles, so ``passes = V * row_tiles * col_tiles``.

Cycle model (weight-stationary, one tile resident; documented in docs/calibration.md):

* each tile is loaded once per batch of inferences: ``rows * w_beats`` cycles (not
  overlapped);
* each pass takes ``max(cycles_per_pass, x_beats)`` cycles (compute and the next activation
  vector's stream overlap), and the final K-pass of each vector also waits for the DPU
  (``cols / dpu_lanes`` cycles) and the int8 result stream (``y_beats``), which overlap it;
* layers off the array (pooling, a residual add that is not fused into the DPU, flatten,
  softmax) are listed with zero array cycles.

``utilization`` is the fraction of the array's cells doing useful MACs during the passes
(``MACs / (passes * rows * cols)``); the totals give effective and peak TOPS at a clock
(1 MAC = 2 operations).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .config import CoreConfig
from .qmodel import QLayer

__all__ = ["LayerMap", "MappingTotals", "map_layers", "totals"]


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
        Weight-load cycles.
    cycles : int
        Total cycles under the cycle model.
    utilization : float
        ``macs / (passes * rows * cols)`` (0 for layers off the array).
    bound : str
        What sets the cycles of the final K-pass of a vector: ``compute``, ``x_stream``,
        ``dpu`` or ``y_stream`` (empty for layers off the array).
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
    bound: str = ""

    @property
    def on_array(self) -> bool:
        """Whether the layer runs on the array."""
        return self.passes > 0


@dataclasses.dataclass(frozen=True)
class MappingTotals:
    """Totals for one batch of inferences at a clock frequency.

    Attributes
    ----------
    macs, passes, compute_cycles, load_cycles, cycles : int
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


def _vectors(layer: QLayer, shapes: dict[str, tuple[int, ...]]) -> int:
    out = shapes[layer.output]
    return int(np.prod(out[2:])) if layer.node.kind == "conv" else 1


def map_layers(cfg: CoreConfig, layers: list[QLayer], shapes: dict[str, tuple[int, ...]],
               batch: int = 1) -> list[LayerMap]:
    """Mapping figures of every layer for a batch of ``batch`` inferences (each weight tile is
    loaded once per batch).

    Parameters
    ----------
    layers : list of QLayer
        From :func:`dcim.golden.qmodel.plan` or a quantized model.
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
        raise ValueError(f"batch must be an int >= 1, got {batch!r}")
    out = []
    per_pass = max(cfg.cycles_per_pass(), cfg.x_beats)
    limits = {"compute": cfg.cycles_per_pass(), "x_stream": cfg.x_beats,
              "dpu": cfg.cols // cfg.dpu_lanes, "y_stream": cfg.y_beats(raw=False)}
    bound = max(limits, key=limits.get)  # first of equals: compute wins a tie
    per_last = limits[bound]
    for layer in layers:
        if layer.kind != "matmul":
            out.append(LayerMap(layer.name, layer.node.kind, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0))
            continue
        w = layer.node.weight
        n_out, k = w.shape[0], int(np.prod(w.shape[1:]))
        v = _vectors(layer, shapes) * batch
        rt, ct = math.ceil(k / cfg.rows), math.ceil(n_out / cfg.cols)
        passes = v * rt * ct
        macs = v * k * n_out
        load = rt * ct * cfg.rows * cfg.w_beats
        cycles = load + v * ct * ((rt - 1) * per_pass + per_last)
        out.append(LayerMap(layer.name, layer.node.kind, k, n_out, v, rt, ct, passes, macs,
                            passes * cfg.cycles_per_pass(), load, cycles,
                            macs / (passes * cfg.rows * cfg.cols), bound))
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
        raise ValueError(f"clock must be a positive frequency in MHz, got {clock_mhz!r}")
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
        inferences_per_s=f * batch / cycles if cycles else 0.0, batch=batch)
