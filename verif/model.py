"""The transaction-level reference of the core: the contract of docs/core.md on top of golden/.

:class:`CoreModel` is fed by the input monitors (every packet the DUT accepted, every CSR write
the testbench made) and predicts, in order, every result packet the core must emit, as the exact
beats of ``m_axis_y``. All arithmetic is :mod:`dcim.golden` (exact integers); this module only
decodes stream bytes and keeps the state the contract defines (weights, W_ROW, CTRL, DPU tables,
partial sums, queued residuals). It also samples functional coverage.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from ..golden.arith import INT32_MAX, INT32_MIN, requantize, saturate
from ..golden.config import CoreConfig
from ..golden.model import DpuParams, accumulate, dpu, mvm
from .coverage import Coverage
from .streams import pack_beats, unpack_beats

__all__ = ["CoreModel", "Expected", "decode_lanes"]


def decode_lanes(beats: list[int], lanes: int, count: int, bits: int, signed: bool
                 ) -> np.ndarray:
    """Byte lanes of ``beats`` (``lanes`` per beat) as ``count`` values of ``bits`` bits (the
    low bits of each byte, two's complement if ``signed``): how the core reads its inputs."""
    raw = unpack_beats(beats, 8, lanes, count, signed=False)
    v = raw & ((1 << bits) - 1)
    if signed:
        v = np.where(v >> (bits - 1), v - (1 << bits), v)
    return v


@dataclass
class Expected:
    """One result packet the core must emit.

    ``beats`` is None until the residual it needs has arrived; ``values`` are the int8 outputs
    or int32 sums, ``raw`` tells which, ``macs`` the multiply-accumulates it verifies.
    """

    raw: bool
    values: np.ndarray | None
    beats: list[int] | None
    macs: int
    psum: np.ndarray | None = None
    params: DpuParams | None = None


class CoreModel:
    """The state of one core as the contract defines it.

    Parameters
    ----------
    cfg : CoreConfig
    cov : Coverage, optional
        Where to count functional-coverage hits.
    """

    def __init__(self, cfg: CoreConfig, cov: Coverage | None = None):
        self.cfg = cfg
        self.cov = cov
        self.W = np.zeros((cfg.rows, cfg.cols), dtype=np.int64)
        self.w_known = np.zeros(cfg.rows, dtype=bool)
        self.bias = np.zeros(cfg.cols, dtype=np.int64)
        self.mult = np.zeros(cfg.cols, dtype=np.int64)
        self.shift = np.zeros(cfg.cols, dtype=np.int64)
        self._min_cols: np.ndarray | None = None  # columns of minimum weights only
        self.expected: collections.deque[Expected] = collections.deque()
        self.waiting_residual: collections.deque[Expected] = collections.deque()
        self.passes_total = 0
        self.macs_emitted = 0
        self.errors = {"w_len": 0, "x_len": 0, "r_len": 0}
        self.reset()

    # ------------------------------------------------------------------------------------
    def reset(self) -> None:
        """What a reset does: registers to reset values, partial sums 0, queues emptied.

        Weight storage and the DPU tables are memories and keep their contents.
        """
        cfg = self.cfg
        self.w_row = 0
        self.run_bits = cfg.act_bits
        self.raw = False
        self.res_en = False
        self.out_zp, self.act_min, self.act_max = 0, -128, 127
        self.res_mult, self.res_shift, self.res_zp = 0, 0, 0
        self._params: DpuParams | None = None
        self.psum = np.zeros(cfg.cols, dtype=np.int64)
        self.psum_sat = False
        self.passes = 0
        self.pending_passes = 0  # passes since the last emit (for the MAC count)
        self.expected.clear()
        self.waiting_residual.clear()
        self.residuals: collections.deque[np.ndarray] = collections.deque()

    def _hit(self, key: str, n: int = 1) -> None:
        if self.cov is not None:
            self.cov.hit(key, n)

    # ------------------------------------------------------------------------------------
    # CSR side
    def set_table(self, name: str, index: int, value: int) -> None:
        """A write of ``value`` to ``name[index]`` (BIAS, MULT or SHIFT)."""
        getattr(self, {"BIAS": "bias", "MULT": "mult", "SHIFT": "shift"}[name])[index] = value
        self._params = None

    def set_scalar(self, attr: str, value: int) -> None:
        """A write of a DPU scalar (``out_zp``, ``act_min``, ... as attribute names)."""
        setattr(self, attr, value)
        self._params = None

    def params(self) -> DpuParams:
        """The DPU settings in effect (one validated object until a setting changes)."""
        if self._params is None:
            self._params = self._make_params()
        return self._params

    def _make_params(self) -> DpuParams:
        return DpuParams(self.bias.copy(), self.mult.copy(), self.shift.copy(),
                         out_zp=self.out_zp, act_min=self.act_min, act_max=self.act_max,
                         res_multiplier=self.res_mult, res_shift=self.res_shift,
                         res_zp=self.res_zp)

    # ------------------------------------------------------------------------------------
    # Stream side (called when the DUT accepted a whole packet)
    def weight_packet(self, beats: list[int]) -> None:
        """A weight-row packet was accepted."""
        cfg = self.cfg
        if len(beats) != cfg.w_beats:
            self.errors["w_len"] += 1
            self._hit("errors.w_short" if len(beats) < cfg.w_beats else "errors.w_long")
            return
        row = decode_lanes(beats, cfg.w_lanes, cfg.cols, cfg.weight_bits, cfg.weight_signed)
        self.W[self.w_row] = row
        self.w_known[self.w_row] = True
        self._min_cols = None
        lo, hi = cfg.weight_range
        self._hit("operands.w_min", int(np.any(row == lo)))
        self._hit("operands.w_max", int(np.any(row == hi)))
        self._hit("operands.w_zero", int(np.any(row == 0)))
        self.w_row = (self.w_row + 1) % cfg.rows
        if self.w_row == 0:
            self._hit("csr.w_row_wrap")

    def residual_packet(self, beats: list[int]) -> None:
        """A residual packet was accepted."""
        cfg = self.cfg
        if len(beats) != cfg.r_beats:
            self.errors["r_len"] += 1
            self._hit("errors.r_len")
            return
        r = decode_lanes(beats, cfg.x_lanes, cfg.cols, 8, True)
        if self.waiting_residual:
            self._resolve(self.waiting_residual.popleft(), r)
        else:
            self.residuals.append(r)

    def activation_packet(self, beats: list[int], tuser: int) -> None:
        """An activation packet was accepted with ``tuser`` (bit0 ACC, bit1 EMIT)."""
        cfg = self.cfg
        if len(beats) != cfg.x_beats:
            self.errors["x_len"] += 1
            self._hit("errors.x_short" if len(beats) < cfg.x_beats else "errors.x_long")
            return
        if not self.w_known.all():
            raise AssertionError("the test computed with weight rows it never loaded: "
                                 f"{np.flatnonzero(~self.w_known)[:8].tolist()}...")
        bits = self.run_bits
        x = decode_lanes(beats, cfg.x_lanes, cfg.rows, bits, cfg.act_signed)
        result = mvm(cfg, self.W, x, bits)[0]
        acc, emit = bool(tuser & 1), bool(tuser & 2)
        self._sample_pass(x, bits, acc, emit)
        if acc:
            unsat = self.psum + result
            self.psum = accumulate(cfg, self.psum, result)
            lo, hi = cfg.psum_range
            self._hit("saturation.psum_high", int(np.any(unsat > hi)))
            self._hit("saturation.psum_low", int(np.any(unsat < lo)))
        else:
            self.psum = result.copy()
        self.passes += 1
        self.passes_total += 1
        self.pending_passes += 1
        if emit:
            self._emit()

    # ------------------------------------------------------------------------------------
    def _sample_pass(self, x: np.ndarray, bits: int, acc: bool, emit: bool) -> None:
        cfg = self.cfg
        lo, hi = cfg.act_range_at(bits)
        self._hit(f"precision.run_bits_{bits}")
        self._hit("operands.x_min", int(np.any(x == lo)))
        self._hit("operands.x_max", int(np.any(x == hi)))
        self._hit("operands.x_zero", int(np.any(x == 0)))
        if bits == cfg.act_bits and x.min() == lo == x.max():
            if self._min_cols is None:
                self._min_cols = np.all(self.W == cfg.weight_range[0], axis=0)
            self._hit("operands.min_chain", int(self._min_cols.any()))
        self._hit("modes.acc" if acc else "modes.replace")
        if acc and not emit:
            self._hit("modes.k_tile_middle")

    def _emit(self) -> None:
        cfg = self.cfg
        macs = self.pending_passes * cfg.rows * cfg.cols
        self.pending_passes = 0
        if self.raw:
            self._hit("modes.raw")
            values = self.psum.copy()
            beats = pack_beats(values, 32, cfg.y_lanes(True))
            self.expected.append(Expected(True, values, beats, macs))
            return
        self._hit("modes.dpu")
        exp = Expected(False, None, None, macs, self.psum.copy(), self.params())
        self.expected.append(exp)
        if self.res_en:
            self._hit("modes.residual")
            if self.residuals:
                self._resolve(exp, self.residuals.popleft())
            else:
                self.waiting_residual.append(exp)
        else:
            self._resolve(exp, None)

    def _resolve(self, exp: Expected, residual: np.ndarray | None) -> None:
        cfg = self.cfg
        p = exp.params
        out = dpu(cfg, exp.psum, p, residual)
        self._sample_dpu(exp.psum, p, residual, out)
        exp.values = out
        exp.beats = pack_beats(out, 8, cfg.y_lanes(False))

    def _sample_dpu(self, psum, p: DpuParams, residual, out) -> None:
        full = psum + p.bias
        self._hit("saturation.bias_high", int(np.any(full > INT32_MAX)))
        self._hit("saturation.bias_low", int(np.any(full < INT32_MIN)))
        acc = saturate(full, INT32_MIN, INT32_MAX)
        y = requantize(acc, p.multiplier, p.shift, self.cfg.rounding) + p.out_zp
        # A tie: the exact quotient acc * M / 2**(31 - shift) has fraction one half.
        t = 31 - p.shift
        prod = acc * p.multiplier
        rem = prod & ((np.int64(1) << t) - 1)
        tie = rem == (np.int64(1) << (t - 1))
        self._hit("rounding.tie_positive", int(np.any(tie & (prod > 0))))
        self._hit("rounding.tie_negative", int(np.any(tie & (prod < 0))))
        self._hit("dpu.shift_left", int(np.any(p.shift > 0)))
        self._hit("dpu.shift_right", int(np.any(p.shift < 0)))
        if residual is not None:
            y = y + requantize(residual - p.res_zp, p.res_multiplier, p.res_shift,
                               self.cfg.rounding)
            self._hit("dpu.res_zp_min", int(p.res_zp == -128))
            self._hit("dpu.res_zp_max", int(p.res_zp == 127))
        self._hit("saturation.clamp_low", int(np.any(y < p.act_min)))
        self._hit("saturation.clamp_high", int(np.any(y > p.act_max)))
        self._hit("dpu.out_zp_min", int(p.out_zp == -128))
        self._hit("dpu.out_zp_max", int(p.out_zp == 127))
        self._hit("dpu.relu", int(p.act_min == p.out_zp and p.act_min > -128))
        assert np.all((out >= p.act_min) & (out <= p.act_max))
