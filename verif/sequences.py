"""The stimulus of the core's tests, shared by the cocotb tests and the Amaranth-simulator tests.

Plain functions of ``(cfg, rng)`` (and a register or table of the
:class:`~dcim.verif.csr.RegMapView` where they need one) that return transactions: weight
matrices, activation vectors with their ACC/EMIT flags (:class:`Pass`), DPU settings, CSR
words, malformed-packet cases. What a transaction must produce is predicted by
:class:`~dcim.verif.model.CoreModel`, fed by whichever testbench executes it: the cocotb
:class:`~dcim.verif.tb.TB` (:mod:`dcim.verif.test_core`) or the Amaranth adapter
(``tests/amaranth_tb.py``). Every function draws from ``rng`` in a fixed order, so the same
seed gives the same stimulus on both. The environment of a regression run (:func:`env`) and
the simulated-time budgets (:func:`timeout_us`) are here too. Imports neither cocotb nor
amaranth.
"""

from __future__ import annotations

import functools
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..golden.arith import INT32_MAX, INT32_MIN, SHIFT_RANGE, quantize_multiplier
from ..golden.config import CoreConfig
from ..golden.model import DpuParams
from ..golden.quant.export import MANIFEST
from ..hdl.regmap import Access
from .csr import RegMapView
from .env import ENV_CONFIG, ENV_REGMAP, ENV_REPLAY, ENV_SIM, ENV_STATS

__all__ = ["CLOCK_NS", "Pass", "Saturation", "RunEnv", "corner_chains", "csr_rw_word",
           "dpu_corner_sets", "env", "illegal_values", "illegal_w_rows", "k_tiled",
           "protocol_error_cases", "psum_saturation", "rand_dpu", "rand_vectors",
           "rand_weights", "random_passes", "replay_timeout_us", "reset_states",
           "saturation_passes", "swap_tiles", "table_entries", "seed_for", "timeout_us",
           "MAX_PAUSE", "pauses"]

#: Clock period of the cocotb testbench.
CLOCK_NS = 10


# ------------------------------------------------------------------------------------------
# The environment of a regression run
@dataclass(frozen=True)
class RunEnv:
    """What :mod:`dcim.sim.runner` tells the cocotb test module (:mod:`dcim.verif.env`).

    Attributes
    ----------
    cfg : CoreConfig
    regs : RegMapView
    sim : str
        ``icarus`` or ``verilator``.
    vectors : int
        Vectors per random test (``DCIM_VECTORS``; Icarus is ~50x slower than Verilator).
    stats : str or None
        The statistics file to write.
    replay : str or None
        The export directory of ``test_replay``.
    bench : int or None
        Vectors of ``test_throughput`` (``DCIM_BENCH``), None to skip it.
    """

    cfg: CoreConfig
    regs: RegMapView
    sim: str
    vectors: int
    stats: str | None
    replay: str | None
    bench: int | None

    @property
    def xcheck(self) -> bool:
        """Whether the simulator is 4-state (Icarus): every sampled bit must be 0/1."""
        return self.sim == "icarus"


@functools.cache
def env() -> RunEnv:
    """The environment of this run, read once (the first call) from ``os.environ``."""
    sim = os.environ.get(ENV_SIM, "icarus")
    bench = os.environ.get("DCIM_BENCH")
    return RunEnv(cfg=CoreConfig.load(os.environ[ENV_CONFIG]),
                   regs=RegMapView.load(os.environ[ENV_REGMAP]), sim=sim,
                   vectors=int(os.environ.get("DCIM_VECTORS", "6" if sim == "icarus" else "48")),
                   stats=os.environ.get(ENV_STATS) or None,
                   replay=os.environ.get(ENV_REPLAY) or None,
                   bench=None if bench is None else int(bench))


def seed_for(base: int, name: str) -> int:
    """The numpy seed of test ``name`` in a run seeded with ``base`` (``cocotb.RANDOM_SEED``)."""
    return (base + zlib.crc32(name.encode())) % (1 << 32)



# ------------------------------------------------------------------------------------------
# Simulated-time budgets
#: Longest pause (cycles) :func:`pauses` puts before a beat.
MAX_PAUSE = 20


def pauses(rng: np.random.Generator, kind: str) -> Iterator[int] | None:
    """A stall pattern: ``none``; ``light`` (a one-cycle pause before ~1 in 4 beats);
    ``heavy`` (pauses of 1..:data:`MAX_PAUSE` cycles before ~1 in 2 beats)."""
    if kind == "none":
        return None

    def gen():
        while True:
            if kind == "light":
                yield 1 if rng.random() < 0.25 else 0
            else:
                yield int(rng.integers(1, MAX_PAUSE + 1)) if rng.random() < 0.5 else 0
    return gen()


def timeout_us(cfg: CoreConfig, vectors: int, weight_loads: int = 1, dpu_loads: int = 1,
               extra_cycles: int = 0) -> float:
    """The simulated-time limit of a test (whole microseconds, exact at 1 ps precision).

    Derived from CoreConfig's latencies: four times
    :meth:`~dcim.golden.config.CoreConfig.latency_bound` of ``vectors`` under the heaviest
    stall pattern (:data:`MAX_PAUSE` before every beat), ``weight_loads`` whole-array loads
    (rows x (w_beats + 2) CSR-free stream cycles, x 10 x 4), ``dpu_loads`` DPU set-ups (3
    tables of ``cols`` entries plus the scalars, ~10 cycles per AXI-Lite write, x 4),
    ``extra_cycles`` and 20,000 cycles of slack.
    """
    w_cycles = 10 * cfg.rows * (cfg.w_beats + 2)
    dpu_cycles = 10 * (3 * cfg.cols + 10)
    cycles = (4 * cfg.latency_bound(vectors, stall=MAX_PAUSE) + weight_loads * w_cycles * 4
              + dpu_loads * dpu_cycles * 4 + extra_cycles + 20000)
    return float(-(-cycles * CLOCK_NS // 1000))


def replay_timeout_us(cfg: CoreConfig, path: str | None) -> float:
    """The limit of ``test_replay`` on the export directory ``path`` (1 us without one): every
    pass of every tile, a weight load per pass (per vector and pass with ``k-reload``)."""
    if not path:
        return 1.0
    with open(os.path.join(path, MANIFEST)) as f:
        m = json.load(f)
    n_tiles, passes, vectors = len(m["tiles"]), m["passes"], m["vectors"]
    loads = n_tiles * passes * (vectors if m["schedule"] == "k-reload" else 1)
    return timeout_us(cfg, n_tiles * passes * vectors, loads, n_tiles, 200 * loads)


# ------------------------------------------------------------------------------------------
# Random operands
@dataclass
class Pass:
    """One activation vector and its ``tuser`` flags."""

    x: np.ndarray
    acc: bool = False
    emit: bool = True


def rand_weights(cfg: CoreConfig, rng: np.random.Generator, rows: int | None = None
                 ) -> np.ndarray:
    """A random (rows, cols) weight matrix with the extremes and zero written to three random
    positions (where positions repeat, the last value written stays)."""
    lo, hi = cfg.weight_range
    W = rng.integers(lo, hi + 1, (rows or cfg.rows, cfg.cols))
    W.flat[rng.integers(0, W.size, 3)] = (lo, hi, 0)
    return W


def rand_vectors(cfg: CoreConfig, rng: np.random.Generator, n: int, bits: int,
                 rows: int | None = None) -> np.ndarray:
    """``n`` random activation vectors at ``bits`` runtime bits, each with the extremes and
    zero written to three random positions (as in :func:`rand_weights`)."""
    lo, hi = cfg.act_range_at(bits)
    X = rng.integers(lo, hi + 1, (n, rows or cfg.rows))
    for i in range(n):
        X[i, rng.integers(0, X.shape[1], 3)] = (lo, hi, 0)
    return X


def random_passes(cfg: CoreConfig, rng: np.random.Generator, n: int, bits: int | None = None,
                  acc_share: float = 0.2) -> list[Pass]:
    """``n`` emitting passes of :func:`rand_vectors`, about ``acc_share`` of them with ACC."""
    X = rand_vectors(cfg, rng, n, cfg.act_bits if bits is None else bits)
    return [Pass(x, acc=bool(rng.random() < acc_share)) for x in X]


def _spread(cfg: CoreConfig, bits: int | None = None) -> float:
    """A typical partial-sum magnitude of random operands at ``bits``-bit activations."""
    bits = cfg.act_bits if bits is None else bits
    wl, wh = cfg.weight_range
    al, ah = cfg.act_range_at(bits)
    return float(np.sqrt(cfg.rows) * max(abs(wl), abs(wh), 1) * max(abs(al), abs(ah), 1) / 2)


def _any_scale(rng: np.random.Generator, real: float) -> tuple[int, int]:
    """``(multiplier, shift)`` with ``multiplier * 2**(shift - 31) ~= real`` for a multiplier
    of random magnitude (``k`` random bits, ``k`` in 1..31), not TFLite's normalized one in
    [2**30, 2**31): the product's low bits then reach the rounding point. The shift is
    clipped to :data:`SHIFT_RANGE` (the scale is then only near ``real``)."""
    k = int(rng.integers(1, 32))
    m = int(rng.integers(1 << (k - 1), 1 << k))
    s = int(round(31 + np.log2(real / m)))
    return m, min(max(s, SHIFT_RANGE[0]), SHIFT_RANGE[1])


def scaled_dpu(cfg: CoreConfig, rng: np.random.Generator, bits: int | None = None
               ) -> DpuParams:
    """DPU tables like :func:`rand_dpu` (typical partial sums of ``bits``-bit activations onto
    the int8 range), but every multiplier (and the residual's) of random magnitude
    (:func:`_any_scale`)."""
    spread = _spread(cfg, bits)
    pairs = [_any_scale(rng, 60.0 / spread * rng.uniform(0.25, 4.0)) for _ in range(cfg.cols)]
    res_m, res_s = _any_scale(rng, rng.uniform(0.2, 1.5))
    return DpuParams(rng.integers(-int(spread), int(spread) + 1, cfg.cols),
                     np.array([m for m, _ in pairs]), np.array([s for _, s in pairs]),
                     out_zp=int(rng.integers(-20, 21)), act_min=int(rng.integers(-128, 0)),
                     act_max=int(rng.integers(0, 128)), res_multiplier=res_m, res_shift=res_s,
                     res_zp=int(rng.integers(-30, 31)))


def rand_dpu(cfg: CoreConfig, rng: np.random.Generator, bits: int | None = None) -> DpuParams:
    """DPU tables that map typical partial sums onto the int8 range (so outputs are neither
    all clamped nor all zero), plus random zero points and clamps."""
    spread = _spread(cfg, bits)
    mult, shift = [], []
    for _ in range(cfg.cols):
        m, s = quantize_multiplier(float(60.0 / spread * rng.uniform(0.25, 4.0)))
        mult.append(m)
        shift.append(s)
    bias = rng.integers(-int(spread), int(spread) + 1, cfg.cols)
    lo = int(rng.integers(-128, 0))
    hi = int(rng.integers(0, 128))
    return DpuParams(bias, np.array(mult), np.array(shift), out_zp=int(rng.integers(-20, 21)),
                     act_min=lo, act_max=hi,
                     res_multiplier=quantize_multiplier(float(rng.uniform(0.2, 1.5)))[0],
                     res_shift=int(rng.integers(-2, 1)), res_zp=int(rng.integers(-30, 31)))


def k_tiled(cfg: CoreConfig, rng: np.random.Generator, depth: int
            ) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, Pass]]]:
    """A layer ``depth`` rows deep: ``(W, x, tiles)`` where ``tiles`` are the weight tile and
    pass of each K-pass (the last tile zero-padded; ACC on all but the first, EMIT on the
    last)."""
    W = rand_weights(cfg, rng, depth)
    x = rand_vectors(cfg, rng, 1, cfg.act_bits, depth)[0]
    n = cfg.k_passes(depth)
    Wp = np.zeros((n * cfg.rows, cfg.cols), dtype=np.int64)
    xp = np.zeros(n * cfg.rows, dtype=np.int64)
    Wp[:depth], xp[:depth] = W, x
    r = cfg.rows
    return W, x, [(Wp[t * r:(t + 1) * r], Pass(xp[t * r:(t + 1) * r], acc=t > 0,
                                               emit=t == n - 1)) for t in range(n)]


def swap_tiles(cfg: CoreConfig, rng: np.random.Generator, n_tiles: int, per_tile: int
               ) -> list[tuple[np.ndarray, list[Pass]]]:
    """Weight tiles for double-buffered weights: ``n_tiles`` random weight matrices, each with
    ``per_tile`` passes (a K-tile group: ACC on all but the first, EMIT on a random half and
    on the last), as a K-tiled and column-tiled layer streams them. A test sends tile ``t``'s
    rows while tile ``t-1``'s passes compute and the first pass of tile ``t`` with SWAP."""
    tiles = []
    for _ in range(n_tiles):
        X = rand_vectors(cfg, rng, per_tile, cfg.act_bits)
        passes = [Pass(x, acc=i > 0 and bool(rng.integers(0, 2)),
                       emit=i == per_tile - 1 or bool(rng.integers(0, 2)))
                  for i, x in enumerate(X)]
        tiles.append((rand_weights(cfg, rng), passes))
    return tiles


# ------------------------------------------------------------------------------------------
# Directed sequences
@dataclass
class Saturation:
    """Every weight ``weight``, every activation ``act``, accumulated over ``passes`` passes
    (ACC on all but the first, EMIT on the last): past the end of the partial-sum range."""

    weight: int
    act: int
    passes: int


def psum_saturation(cfg: CoreConfig, sign: int) -> Saturation | None:
    """The largest pass of sign ``sign`` (+1 or -1), accumulated until the partial sum
    saturates; None when no pass of that sign exists (unsigned operands, ``sign`` -1)."""
    wl, wh = cfg.weight_range
    al, ah = cfg.act_range
    cand = [(wl * al, wl, al), (wl * ah, wl, ah), (wh * al, wh, al), (wh * ah, wh, ah)]
    prod, w, a = max(cand) if sign > 0 else min(cand)
    if prod == 0 or (prod > 0) != (sign > 0):
        return None
    lo, hi = cfg.psum_range
    return Saturation(w, a, (hi if sign > 0 else -lo) // abs(prod * cfg.rows) + 2)


def saturation_passes(cfg: CoreConfig) -> int:
    """An upper bound of the passes of both :func:`psum_saturation` sequences."""
    lo, hi = cfg.psum_range
    big = max(abs(cfg.acc_range[0]), abs(cfg.acc_range[1]), 1)
    return 2 * (-lo // big + 2)


def corner_chains(cfg: CoreConfig) -> tuple[np.ndarray, list[np.ndarray]]:
    """Minimum weights in the even columns, maximum in the odd ones, and the vectors of all
    minimum, all maximum and all zero activations (the longest carry chains)."""
    wl, wh = cfg.weight_range
    al, ah = cfg.act_range
    W = np.full((cfg.rows, cfg.cols), wl)
    W[:, 1::2] = wh
    return W, [np.full(cfg.rows, al), np.full(cfg.rows, ah), np.zeros(cfg.rows, dtype=np.int64)]


def dpu_corner_sets(cfg: CoreConfig) -> list[DpuParams]:
    """DPU settings at the corners: rounding ties, bias saturation at both ends with the
    clamps at the ends of int8, then (the last two, with the residual) left and right shifts,
    ReLU and the residual zero points at the ends of int8."""
    cols = cfg.cols
    one = np.ones(cols, dtype=np.int64)
    half = 1 << 30
    ends = np.where(np.arange(cols) % 2, INT32_MAX, INT32_MIN)
    return [
        # multiplier 0.5 with shift 0 makes every odd value a tie
        DpuParams(np.arange(cols) - cols // 2, half * one, 0 * one),
        DpuParams(ends, one * 3, one * -31, out_zp=-128),
        DpuParams(ends, one * INT32_MAX, one * 30, out_zp=127),
        DpuParams(0 * one, half * one, one * 2, out_zp=-3, act_min=-3, act_max=100,
                  res_multiplier=half, res_shift=0, res_zp=-128),
        DpuParams(0 * one, half * one, one * -4, out_zp=5, act_min=-20, act_max=20,
                  res_multiplier=half, res_shift=1, res_zp=127),
    ]


def protocol_error_cases(cfg: CoreConfig) -> list[tuple[str, str, int]]:
    """Malformed packets ``(STATUS flag, stream "w"/"x"/"r", beats)``: one beat short and one
    long on every input stream (no empty packet)."""
    cases = [("ERR_W_LEN", "w", cfg.w_beats - 1), ("ERR_W_LEN", "w", cfg.w_beats + 1),
             ("ERR_X_LEN", "x", cfg.x_beats - 1), ("ERR_X_LEN", "x", cfg.x_beats + 1)]
    if cfg.dpu_residual:
        cases += [("ERR_R_LEN", "r", cfg.r_beats + 1), ("ERR_R_LEN", "r", cfg.r_beats - 1)]
    return [c for c in cases if c[2] >= 1]


def reset_states(cfg: CoreConfig) -> list[str]:
    """The states a reset is asserted in (``residual_wait`` only with the residual port)."""
    return (["idle", "w_load", "x_recv", "compute", "output", "output_stalled"]
            + (["residual_wait"] if cfg.dpu_residual else []))


# ------------------------------------------------------------------------------------------
# CSR values
def csr_rw_word(cfg: CoreConfig, reg, rng: np.random.Generator) -> int:
    """A word with a random legal value (the field's ``legal`` range of the register map; the
    DPU's shift range for RES_SHIFT) in every rw field of register ``reg`` (others 0)."""
    word = 0
    for f in reg.fields:
        if f.access is not Access.RW:
            continue
        if f.legal is not None:
            v = int(rng.integers(f.legal[0], f.legal[1] + 1))
        elif f.name == "RES_SHIFT":
            v = int(rng.integers(SHIFT_RANGE[0], SHIFT_RANGE[1] + 1))
        else:
            v = int(rng.integers(0, 1 << f.width))
        word |= f.encode(v)
    return word


def illegal_values(field) -> list[int]:
    """The values just outside the ``legal`` range of ``field`` (a
    :class:`~dcim.verif.csr.FieldView`) that its bits can hold: a write of them must leave the
    field unchanged."""
    if field.legal is None:
        return []
    lo, hi = field.legal
    fmin, fmax = ((-(1 << (field.width - 1)), (1 << (field.width - 1)) - 1) if field.signed
                  else (0, (1 << field.width) - 1))
    return [v for v in (lo - 1, hi + 1) if fmin <= v <= fmax]


def illegal_w_rows(cfg: CoreConfig) -> list[int]:
    """W_ROW words the core must refuse (docs/core.md: any value >= rows, also where its low
    bits would be a legal row: rows + 1, 2 * rows + 1, 33 at 20 rows)."""
    return sorted({cfg.rows, cfg.rows + 1, 2 * cfg.rows + 1, max(33, cfg.rows), 1 << 16,
                   0xFFFFFFFF})


def table_entries(cfg: CoreConfig, table, rng: np.random.Generator) -> dict[int, int]:
    """Random legal values (as ``table.width``-bit words) for the first, last and a random
    entry of ``table``."""
    idx = sorted({0, cfg.cols - 1, int(rng.integers(0, cfg.cols))})
    lo, hi = SHIFT_RANGE if table.name == "SHIFT" else (0, (1 << table.width) - 1)
    return {c: int(rng.integers(lo, hi + 1)) & ((1 << table.width) - 1) for c in idx}
