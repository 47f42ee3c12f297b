"""The schedule and throughput figures of a core configuration: cycles per pass, latencies, pass
intervals, stream beats and lanes.

:class:`Schedule` is a base class of :class:`dcim.golden.config.CoreConfig` (its methods read
the configuration's fields), kept in a module of its own: the one place a cycle count or a beat
count comes from. No amaranth or cocotb here.
"""

from __future__ import annotations

import math

from .checks import check_int, positive_int

__all__ = ["Schedule"]


class Schedule:
    """Cycle and beat figures of :class:`~dcim.golden.config.CoreConfig` (a base class; the
    fields it reads are the configuration's)."""

    def cycles_per_pass(self, bits: int | None = None) -> int:
        """Compute cycles of one pass at ``bits`` activation bits (default ``act_bits``)."""
        bits = self.act_bits if bits is None else self.check_runtime_bits(bits)
        return -(-bits // self.serial_bits)

    def k_passes(self, k: int) -> int:
        """Passes (row tiles of ``rows``, accumulated in the partial sums) that a reduction of
        depth ``k`` takes.

        Raises
        ------
        TypeError
            ``k`` is not an integer (a bool is not).
        ValueError
            ``k`` is below 1.
        """
        return -(-positive_int("k", k) // self.rows)

    def col_tiles(self, n: int) -> int:
        """Column tiles of ``cols`` that ``n`` output channels take.

        Raises
        ------
        TypeError
            ``n`` is not an integer (a bool is not).
        ValueError
            ``n`` is below 1.
        """
        return -(-positive_int("n", n) // self.cols)

    def pass_latency(self, bits: int | None = None) -> int:
        """Cycles from the handshake of the last beat of an activation packet (idle core) to
        the first ``tvalid`` of its raw (CTRL.RAW) result: the pass's compute cycles, the
        adder-tree registers, and one cycle each for the vector buffer, the accumulate stage
        and the partial-sum commit."""
        return self.cycles_per_pass(bits) + self.tree_regs + 3

    def result_latency(self, bits: int | None = None) -> int:
        """As :meth:`pass_latency`, for a DPU (int8) result: plus one cycle per DPU group
        of the first result beat and the DPU pipeline (:attr:`dpu_latency`)."""
        first_beat = min(self.y_lanes(raw=False), self.cols)
        return self.pass_latency(bits) + -(-first_beat // self.dpu_lanes) + self.dpu_latency

    def result_drain(self, raw: bool = False) -> int:
        """Cycles from the first beat of a result packet to its last, the output not stalled:
        ``y_beats(raw) - 1`` for a raw result (every partial sum is there at once); a DPU
        result's beat ``k`` also waits for the DPU groups its values come from, one group per
        cycle after those of the first beat, so ``max(y_beats - 1, dpu_groups - g0)`` with
        ``g0`` the groups of the first beat (:meth:`result_latency` counts those)."""
        beats = self.y_beats(raw)
        if raw:
            return beats - 1
        g0 = -(-min(self.y_lanes(raw=False), self.cols) // self.dpu_lanes)
        return max(beats - 1, self.dpu_groups - g0)

    @property
    def dpu_groups(self) -> int:
        """DPU cycles (groups of ``dpu_lanes`` columns) per result vector; also the entries of
        each per-lane DPU table."""
        return self.cols // self.dpu_lanes

    @property
    def dpu_latency(self) -> int:
        """Cycles from the DPU accepting a group of ``dpu_lanes`` partial sums to its result
        being valid on the DPU output, when the output is not stalled. The DPU pipeline has one
        register stage each for: input and table read, bias add, the multiply's partial
        products, their sum, the rounding shift(s), the main + residual sum, and the zero point
        and clamp. Independent of every field."""
        return 7

    def pass_interval(self, bits: int | None = None, raw: bool = False,
                      emit: bool = True) -> int:
        """Cycles from one pass to the next in the steady state of back-to-back activation
        vectors (no idle input cycles, no backpressure, no residual stream).

        Every stage a pass goes through is pipelined, so the interval is the longest time one
        pass occupies a stage. Without ``emit`` (passes accumulating into the partial sums) a
        pass runs every ``max(cycles_per_pass(bits), x_beats)`` cycles. A pass that emits a RAW
        result holds the output buffer until its last beat has left: ``max(cycles_per_pass(bits),
        x_beats, y_beats(raw=True) + 1)``. A pass that emits a DPU result holds the output
        buffer while its ``dpu_groups`` groups are fed to the DPU, and the result stream for
        its ``y_beats(raw=False)`` beats; the DPU's pipeline and the two result banks overlap
        it with the passes before and after: ``max(cycles_per_pass(bits), x_beats, dpu_groups,
        y_beats(raw=False))``. Measured on the RTL in ``tests/test_pass_interval.py``.
        """
        cpp = self.cycles_per_pass(bits)
        if not emit:
            return max(cpp, self.x_beats)
        if raw:
            return max(cpp, self.x_beats, self.y_beats(raw=True) + 1)
        return max(cpp, self.x_beats, self.dpu_groups, self.y_beats(raw=False))

    def array_utilization(self, bits: int | None = None, raw: bool = False,
                          emit: bool = True) -> float:
        """The fraction of cycles the array computes with back-to-back vectors:
        ``cycles_per_pass(bits) / pass_interval(bits, raw, emit)``."""
        return self.cycles_per_pass(bits) / self.pass_interval(bits, raw, emit)

    def pass_bound(self, bits: int | None = None, raw: bool = False, emit: bool = True) -> str:
        """What sets :meth:`pass_interval`: ``"array"`` (the compute cycles; the balanced
        case), ``"activation stream"`` (``x_beats``), ``"DPU"`` (its groups; DPU results only)
        or ``"result stream"`` (the result beats); the first of these in that order on a
        tie."""
        cpp, interval = self.cycles_per_pass(bits), self.pass_interval(bits, raw, emit)
        if interval == cpp:
            return "array"
        if interval == self.x_beats:
            return "activation stream"
        if not raw and interval == self.dpu_groups:
            return "DPU"
        return "result stream"

    def balanced(self, bits: int | None = None) -> dict[str, int]:
        """The fewest DPU lanes and the narrowest streams with which DPU results of passes at
        ``bits`` activation bits (default ``act_bits``) are array-bound
        (:meth:`pass_bound` is ``"array"``): ``dpu_lanes`` (the smallest divisor of ``cols``
        with ``dpu_groups <= cycles_per_pass``), ``x_stream_bits`` (8 bits per activation
        lane, ``x_beats <= cycles_per_pass``) and ``y_stream_bits`` (a multiple of 32,
        ``y_beats(raw=False) <= cycles_per_pass``), each at most its field's limit of 4096
        bits. Fields already wide enough are returned as they are."""
        cpp = self.cycles_per_pass(bits)
        lanes = next(d for d in range(1, self.cols + 1)
                     if self.cols % d == 0 and self.cols // d <= cpp)
        x_bits = min(4096, 8 * -(-self.rows // cpp))
        y_bits = min(4096, 32 * -(-self.cols // (4 * cpp)))
        return {"dpu_lanes": max(self.dpu_lanes, lanes),
                "x_stream_bits": max(self.x_stream_bits, x_bits),
                "y_stream_bits": max(self.y_stream_bits, y_bits)}

    def macs_per_cycle(self, bits: int | None = None) -> float:
        """MACs per compute cycle of a pass at ``bits`` activation bits (default
        ``act_bits``): ``rows * cols / cycles_per_pass(bits)``."""
        return self.rows * self.cols / self.cycles_per_pass(bits)

    @property
    def peak_macs_per_cycle(self) -> float:
        """MACs per compute cycle at full activation precision."""
        return self.macs_per_cycle()

    @property
    def stored_words(self) -> int:
        """Weight words the array stores: ``weight_sets * rows * cols`` (both sets with
        double-buffered weights)."""
        return self.weight_sets * self.rows * self.cols

    @property
    def stored_bits(self) -> int:
        """Weight bits the array stores: ``stored_words * weight_bits``."""
        return self.stored_words * self.weight_bits

    def latency_bound(self, n_vec: int, stall: int = 0) -> int:
        """Cycles within which the results of ``n_vec`` activation vectors sent back to back
        to an idle core (weights and CSRs loaded) have all left ``m_axis_y``: the one source
        of every testbench timeout and drain limit.

        Each vector is counted as if it went through the core alone, from its first
        activation beat to its last result beat: its ``x_beats``, its residual's ``r_beats``
        (with the residual stage), :meth:`result_latency` to the first result beat, one cycle
        per further DPU group and the ``y_beats(raw=True)`` beats of the longer (raw) result
        packet; every beat may be preceded by up to ``stall`` idle or backpressure cycles.
        Vectors overlap inside the core, so ``n_vec`` of them take at most ``n_vec`` times
        that. An upper bound, not the exact figure: it holds for raw and DPU results, at
        any runtime precision.

        Parameters
        ----------
        n_vec : int
            Vectors, >= 0.
        stall : int
            Most idle cycles before any input beat or backpressure cycles before any result
            beat, >= 0.

        Raises
        ------
        TypeError, ValueError
            ``n_vec`` or ``stall`` is not an int >= 0.
        """
        check_int("n_vec", n_vec, 0, 1 << 62)
        check_int("stall", stall, 0, 1 << 62)
        beats = self.x_beats + self.y_beats(raw=True) + (self.r_beats if self.dpu_residual else 0)
        one = beats * (1 + stall) + self.result_latency() + self.dpu_groups - 1
        return n_vec * one

    @property
    def x_user_bits(self) -> int:
        """Bits of the activation stream's ``tuser``: ACC (bit 0), EMIT (bit 1) and, with two
        weight sets, SWAP (bit 2: make the shadow weight set active before this pass)."""
        return 3 if self.weight_sets == 2 else 2

    @property
    def x_lanes(self) -> int:
        """Activations carried by one beat of the activation stream."""
        return self.x_stream_bits // 8

    @property
    def w_lanes(self) -> int:
        """Weights carried by one beat of the weight stream."""
        return self.w_stream_bits // 8

    @property
    def x_beats(self) -> int:
        """Beats in one activation vector packet (``rows`` activations)."""
        return math.ceil(self.rows / self.x_lanes)

    @property
    def tile_load_cycles(self) -> int:
        """Cycles the weight stream takes to load one tile (``rows`` weight-row packets) with
        back-to-back beats and no pass computing: ``rows * w_beats``. The row buffer takes the
        next row's first beat in the cycle it writes a row into the array, so the stream is
        never stalled (the last row is written one cycle after its last beat; measured in
        ``tests/test_weight_swap_cycles.py``)."""
        return self.rows * self.w_beats

    @property
    def w_beats(self) -> int:
        """Beats in one weight-row packet (``cols`` weights)."""
        return math.ceil(self.cols / self.w_lanes)

    @property
    def r_beats(self) -> int:
        """Beats in one residual packet (``cols`` int8 values, activation-stream width)."""
        return math.ceil(self.cols / self.x_lanes)

    def y_lanes(self, raw: bool) -> int:
        """Results per beat of the result stream: int32 lanes if ``raw``, else int8 lanes."""
        return self.y_stream_bits // (32 if raw else 8)

    def y_beats(self, raw: bool) -> int:
        """Beats in one result packet (``cols`` results)."""
        return math.ceil(self.cols / self.y_lanes(raw))
