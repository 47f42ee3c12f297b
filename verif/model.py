"""The transaction-level reference of the core: the contract of docs/core.md on top of golden/.

:class:`CoreModel` is fed by the input monitors (every packet the DUT accepted, every CSR write
the testbench made) and predicts, in order, every result packet the core must emit, as the exact
beats of ``m_axis_y``. All arithmetic is :mod:`dcim.golden` (exact integers); this module only
decodes stream bytes and keeps the state the contract defines (weights, with two weight sets both
sets and the active one, W_ROW, CTRL, DPU tables, partial sums, queued residuals). It also
samples functional coverage.

The model is lazy: an accepted activation packet only queues its pass, and the passes queued
since the last computation are computed in one batch (one matrix product, one DPU call) when
something needs them: a result is read from :attr:`CoreModel.expected`, or any state the
passes depend on changes (weights, CSRs, the partial sums, a reset). Every such change goes
through a method or property of the model that computes the queue first, so a batch always
sees the state its passes were accepted under. Only the arithmetic is batched; what is
predicted, and in which order, is what a pass-by-pass model predicts.

With ``weight_sets`` 2 the passes compute with the active set (0 after a reset) and weight rows
go into the other, so a row does not compute the queue; a SWAP vector computes the queue and
toggles the active set. A row whose last beat was accepted in the same cycle as a SWAP vector's
last beat belongs to the set that swap activates (docs/core.md): the monitors pass the time of
each acceptance (``t``) so that the model gets this right whichever monitor runs first.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from ..golden.arith import INT32_MAX, INT32_MIN
from ..golden.config import CoreConfig
from ..golden.model import DpuParams, DpuStages, accumulate, dpu_stages, mvm
from .coverage import Coverage
from .beats import pack_beats, pack_rows, unpack_beats
from .csr import RegMapView

__all__ = ["SCALARS", "CoreModel", "Expected", "decode_lanes"]

#: The DPU scalar registers (each one field of the register's name) and the model attribute
#: that keeps each.
SCALARS = {"OUT_ZP": "out_zp", "ACT_MIN": "act_min", "ACT_MAX": "act_max",
           "RES_MULT": "res_mult", "RES_SHIFT": "res_shift", "RES_ZP": "res_zp"}


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

    ``beats`` is None until it is computed (a queued pass) or, for a DPU result with the
    residual enabled, until its residual has arrived (``waiting``); ``values`` are the int8
    outputs or int32 sums, ``raw`` tells which, ``macs`` the multiply-accumulates it verifies.
    """

    raw: bool
    values: np.ndarray | None
    beats: list[int] | None
    macs: int
    psum: np.ndarray | None = None
    params: DpuParams | None = None
    residual: np.ndarray | None = None
    waiting: bool = False


def _register(name: str, doc: str) -> property:
    """A CSR field the model keeps: reading it is free; writing it computes the queued passes
    first (they were accepted under the old value)."""
    attr = "_" + name

    def get(self):
        return getattr(self, attr)

    def put(self, value) -> None:
        self.flush()
        setattr(self, attr, value)

    return property(get, put, doc=doc)


@dataclass
class _Pass:
    beats: list[int]
    acc: bool
    emit: bool
    exp: Expected | None


class CoreModel:
    """The state of one core as the contract defines it.

    Parameters
    ----------
    cfg : CoreConfig
    cov : Coverage, optional
        Where to count functional-coverage hits.
    regs : RegMapView, optional
        The register map, whose reset values the model's registers take (default: the one of
        ``cfg``, :meth:`RegMapView.of`).
    """

    def __init__(self, cfg: CoreConfig, cov: Coverage | None = None,
                 regs: RegMapView | None = None):
        self.cfg = cfg
        self.cov = cov
        self.regs = RegMapView.of(cfg) if regs is None else regs
        # The weight sets (memories: a reset keeps them) and which rows of each were loaded.
        self.sets = np.zeros((cfg.weight_sets, cfg.rows, cfg.cols), dtype=np.int64)
        self.set_known = np.zeros((cfg.weight_sets, cfg.rows), dtype=bool)
        self.active = 0
        self.bias = np.zeros(cfg.cols, dtype=np.int64)
        self.mult = np.zeros(cfg.cols, dtype=np.int64)
        self.shift = np.zeros(cfg.cols, dtype=np.int64)
        self._min_cols: np.ndarray | None = None  # columns of minimum weights only
        self._expected: collections.deque[Expected] = collections.deque()
        self._queue: list[_Pass] = []
        self.waiting_residual: collections.deque[Expected] = collections.deque()
        self.errors = {"w_len": 0, "x_len": 0, "r_len": 0}
        self.reset()

    # ------------------------------------------------------------------------------------
    def reset(self) -> None:
        """What a reset does: registers to reset values, partial sums 0, queues emptied.

        Weight storage and the DPU tables are memories and keep their contents. Passes
        accepted before the reset are computed first (their coverage counts), then dropped.
        """
        cfg = self.cfg
        self.flush()
        regs, ctrl = self.regs, self.regs["CTRL"]
        self._w_row = regs["W_ROW"].field("ROW").reset_value
        if self.active:
            self._hit("weights.swap_reset")
        self.active = 0  # set 0 is active after a reset
        self._swap_t: object = None  # when the last SWAP vector was accepted
        self._swap_last = False  # the last pass swapped and no row came since
        self._run_bits = ctrl.field("RUN_BITS").reset_value
        self._raw = bool(ctrl.field("RAW").reset_value)
        self._res_en = cfg.dpu_residual and bool(ctrl.field("RES_EN").reset_value)
        for name, attr in SCALARS.items():  # the residual scalars exist only with the stage
            reg = regs.registers.get(name)
            setattr(self, attr, 0 if reg is None else reg.field(name).reset_value)
        self._params: DpuParams | None = None
        self._psum = np.zeros(cfg.cols, dtype=np.int64)
        self.passes = 0
        self.pending_passes = 0  # passes since the last emit (for the MAC count)
        # BUSY_CYCLES once every accepted pass has computed (modulo 2**32): the compute
        # cycles, cycles_per_pass(RUN_BITS), of the passes accepted since the reset or the last
        # PERF.CLEAR.
        self.busy_cycles = 0
        self._expected.clear()
        self.waiting_residual.clear()
        self.residuals: collections.deque[np.ndarray] = collections.deque()

    @property
    def W(self) -> np.ndarray:
        """The active weight set (rows, cols): what the passes compute with."""
        return self.sets[self.active]

    @property
    def w_known(self) -> np.ndarray:
        """Which rows of the active set were loaded."""
        return self.set_known[self.active]

    def _hit(self, key: str, n: int = 1) -> None:
        if self.cov is not None:
            self.cov.hit(key, n)

    # ------------------------------------------------------------------------------------
    # State the testbench reads and writes (a write computes the queued passes first)
    @property
    def expected(self) -> collections.deque[Expected]:
        """The result packets predicted and not yet taken, in order, every one computed
        (``beats`` None only for a DPU result still waiting for its residual)."""
        self.flush()
        return self._expected

    @property
    def outstanding(self) -> int:
        """How many result packets are predicted and not yet taken (computes nothing)."""
        return len(self._expected)

    def peek(self, index: int) -> Expected | None:
        """The ``index``-th predicted result not yet taken, computed or not (None past the
        end); for checks that must not wait for a batch, such as ``waiting``."""
        return self._expected[index] if index < len(self._expected) else None

    @property
    def psum(self) -> np.ndarray:
        """The partial sums (int64, one per column) after every accepted pass."""
        self.flush()
        return self._psum

    run_bits = _register("run_bits", "CTRL.RUN_BITS in effect.")
    raw = _register("raw", "CTRL.RAW in effect.")
    res_en = _register("res_en", "CTRL.RES_EN in effect.")
    w_row = _register("w_row", "W_ROW: the row the next weight packet writes.")

    # ------------------------------------------------------------------------------------
    # CSR side
    def clear_perf(self) -> None:
        """A write of ``PERF.CLEAR`` (with no pass computing: the counters restart at 0)."""
        self.busy_cycles = 0

    def set_table(self, name: str, index: int, value: int) -> None:
        """A write of ``value`` to ``name[index]`` (BIAS, MULT or SHIFT)."""
        self.flush()
        getattr(self, {"BIAS": "bias", "MULT": "mult", "SHIFT": "shift"}[name])[index] = value
        self._params = None

    def set_scalar(self, attr: str, value: int) -> None:
        """A write of a DPU scalar (``out_zp``, ``act_min``, ... as attribute names)."""
        self.flush()
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
    def weight_packet(self, beats: list[int], t: object = None) -> None:
        """A weight-row packet was accepted (at time ``t``, if given: see the module
        docstring). With one set it is written into the array; with two into the shadow set,
        or into the active one if ``t`` is the time the last SWAP vector was accepted."""
        cfg = self.cfg
        if len(beats) != cfg.w_beats:
            self.errors["w_len"] += 1
            self._hit("errors.w_short" if len(beats) < cfg.w_beats else "errors.w_long")
            return
        row = decode_lanes(beats, cfg.w_lanes, cfg.cols, cfg.weight_bits, cfg.weight_signed)
        if cfg.weight_sets == 1:
            self.flush()
            target = 0
        elif t is not None and t == self._swap_t:
            # Accepted with the SWAP vector: written before the swap, into the set it made
            # active. The queue holds only that swap's passes (the swap computed the rest).
            target = self.active
            self._hit("weights.swap_same_cycle")
        else:
            target = 1 - self.active
            self._hit("weights.shadow_write")
        self._swap_last = False
        self.sets[target, self._w_row] = row
        self.set_known[target, self._w_row] = True
        if target == self.active:
            self._min_cols = None
        lo, hi = cfg.weight_range
        self._hit("operands.w_min", int(np.any(row == lo)))
        self._hit("operands.w_max", int(np.any(row == hi)))
        self._hit("operands.w_zero", int(np.any(row == 0)))
        self._w_row = (self._w_row + 1) % cfg.rows
        if self._w_row == 0:
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
            exp = self.waiting_residual.popleft()
            exp.residual, exp.waiting = r, False
            if exp.psum is not None:  # computed already
                self._resolve([exp])
        else:
            self.residuals.append(r)

    def activation_packet(self, beats: list[int], tuser: int, t: object = None) -> None:
        """An activation packet was accepted (at time ``t``, if given) with ``tuser`` (bit0
        ACC, bit1 EMIT, with two weight sets bit2 SWAP); its pass is queued (see the module
        docstring) and its result, if it emits, predicted."""
        cfg = self.cfg
        if len(beats) != cfg.x_beats:
            self.errors["x_len"] += 1
            self._hit("errors.x_short" if len(beats) < cfg.x_beats else "errors.x_long")
            return
        if cfg.weight_sets == 2 and tuser & 4:
            self.flush()  # the passes before the swap compute with the old set
            self.active = 1 - self.active
            self._min_cols = None
            self._swap_t = t
            self._hit("weights.swap")
            if self._swap_last:
                self._hit("weights.swap_consecutive")
            self._swap_last = True
        if not self.w_known.all():
            raise AssertionError("the test computed with weight rows it never loaded: "
                                 f"{np.flatnonzero(~self.w_known)[:8].tolist()}...")
        acc, emit = bool(tuser & 1), bool(tuser & 2)
        self.passes += 1
        self.busy_cycles += cfg.cycles_per_pass(self._run_bits)
        self.pending_passes += 1
        exp = None
        if emit:
            exp = self._emit()
        self._queue.append(_Pass(beats, acc, emit, exp))

    def _emit(self) -> Expected:
        """The result packet of an emitting pass, in order; computed by :meth:`flush`."""
        cfg = self.cfg
        macs = self.pending_passes * cfg.rows * cfg.cols
        self.pending_passes = 0
        if self._raw:
            self._hit("modes.raw")
            exp = Expected(True, None, None, macs)
        else:
            self._hit("modes.dpu")
            exp = Expected(False, None, None, macs, params=self.params())
            if self._res_en:
                self._hit("modes.residual")
                if self.residuals:
                    exp.residual = self.residuals.popleft()
                else:
                    exp.waiting = True
                    self.waiting_residual.append(exp)
        self._expected.append(exp)
        return exp

    # ------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Compute every queued pass: one matrix product for all of them, the partial sums in
        order, one DPU evaluation for the results that do not wait for a residual."""
        if not self._queue:
            return
        queue, self._queue = self._queue, []
        cfg = self.cfg
        bits = self._run_bits
        n = len(queue)
        per = cfg.x_beats * cfg.x_lanes
        X = decode_lanes([b for q in queue for b in q.beats], cfg.x_lanes, n * per, bits,
                         cfg.act_signed).reshape(n, per)[:, :cfg.rows]
        results = mvm(cfg, self.W, X, bits)
        self._sample_passes(X, bits, queue)
        lo, hi = cfg.psum_range
        psum = self._psum
        done = []
        for q, result in zip(queue, results):
            if q.acc:
                unsat = psum + result
                psum = accumulate(cfg, psum, result)
                self._hit("saturation.psum_high", int(np.any(unsat > hi)))
                self._hit("saturation.psum_low", int(np.any(unsat < lo)))
            else:
                psum = result.copy()
            if q.exp is not None:
                q.exp.psum = psum.copy()
                if q.exp.raw:
                    q.exp.values = q.exp.psum
                    q.exp.beats = pack_beats(q.exp.values, 32, cfg.y_lanes(True))
                elif not q.exp.waiting:
                    done.append(q.exp)
        self._psum = psum
        self._resolve(done)

    def _sample_passes(self, X: np.ndarray, bits: int, queue: list[_Pass]) -> None:
        cfg = self.cfg
        lo, hi = cfg.act_range_at(bits)
        n = X.shape[0]
        self._hit(f"precision.run_bits_{bits}", n)
        self._hit("operands.x_min", int(np.any(X == lo, axis=1).sum()))
        self._hit("operands.x_max", int(np.any(X == hi, axis=1).sum()))
        self._hit("operands.x_zero", int(np.any(X == 0, axis=1).sum()))
        if bits == cfg.act_bits:
            chains = int(np.all(X == lo, axis=1).sum())
            if chains:
                if self._min_cols is None:
                    self._min_cols = np.all(self.W == cfg.weight_range[0], axis=0)
                self._hit("operands.min_chain", chains * int(self._min_cols.any()))
        accs = sum(q.acc for q in queue)
        self._hit("modes.acc", accs)
        self._hit("modes.replace", n - accs)
        self._hit("modes.k_tile_middle", sum(q.acc and not q.emit for q in queue))

    def _resolve(self, exps: list[Expected]) -> None:
        """The DPU outputs of computed DPU results, batched per settings and residual use."""
        cfg = self.cfg
        groups: dict[tuple[int, bool], list[Expected]] = {}
        for e in exps:
            groups.setdefault((id(e.params), e.residual is not None), []).append(e)
        for group in groups.values():
            p = group[0].params
            P = np.stack([e.psum for e in group])
            R = np.stack([e.residual for e in group]) if group[0].residual is not None else None
            st = dpu_stages(cfg, P, p, R)
            out = st.out
            self._sample_dpu(st, p, R is not None)
            lanes = cfg.y_lanes(False)
            for e, values, beats in zip(group, out, pack_rows(out, 8, lanes)):
                e.values = values
                e.beats = beats

    def _sample_dpu(self, st: DpuStages, p: DpuParams, residual: bool) -> None:
        """Coverage of a batch of DPU evaluations (the stages golden computed them through,
        arrays of shape (n, cols))."""
        n = st.out.shape[0]

        def rows(cond) -> int:  # how many results have the condition in some column
            return int(np.any(cond, axis=1).sum())

        self._hit("saturation.bias_high", rows(st.biased > INT32_MAX))
        self._hit("saturation.bias_low", rows(st.biased < INT32_MIN))
        self._hit("rounding.tie_positive", rows(st.tie & (st.product > 0)))
        self._hit("rounding.tie_negative", rows(st.tie & (st.product < 0)))
        self._hit("dpu.shift_left", n * int(np.any(p.shift > 0)))
        self._hit("dpu.shift_right", n * int(np.any(p.shift < 0)))
        if residual:
            self._hit("dpu.res_zp_min", n * int(p.res_zp == -128))
            self._hit("dpu.res_zp_max", n * int(p.res_zp == 127))
        self._hit("saturation.clamp_low", rows(st.total < p.act_min))
        self._hit("saturation.clamp_high", rows(st.total > p.act_max))
        self._hit("dpu.out_zp_min", n * int(p.out_zp == -128))
        self._hit("dpu.out_zp_max", n * int(p.out_zp == 127))
        self._hit("dpu.relu", n * int(p.act_min == p.out_zp and p.act_min > -128))
        assert np.all((st.out >= p.act_min) & (st.out <= p.act_max))
