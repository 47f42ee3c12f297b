"""The whole core in Amaranth's simulator against the golden model (bit-exact).

Every result packet is also compared, beat for beat, with the prediction of the cocotb
testbench's model (:class:`amaranth_tb.AmaranthTB` feeds it and checks its scoreboard). The
DPU and saturation tests draw their stimulus from the cocotb tests' own sequences
(:mod:`dcim.verif.sequences`; more of them in ``test_hdl_sequences.py``)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth_tb import AmaranthTB
from hdl_helpers import DpuStandin

from dcim.golden.config import CoreConfig
from dcim.golden.model import accumulate, dpu, mvm
from dcim.verif.sequences import psum_saturation, rand_dpu, rand_weights

FAST_GRID = [
    dict(rows=1, cols=1, act_bits=1, weight_bits=1, dpu_residual=False),
    dict(rows=8, cols=4, serial_bits=2, tree_regs=1),
    dict(rows=5, cols=3, act_bits=4, serial_bits=4, weight_signed=False, act_signed=False,
         x_stream_bits=16, w_stream_bits=8, y_stream_bits=32),
    dict(rows=6, cols=6, act_bits=6, weight_bits=5, serial_bits=2, tree_regs=3, psum_bits=20,
         dpu_lanes=3, x_stream_bits=24),
]
SLOW_GRID = [
    dict(rows=16, cols=8, serial_bits=1),
    dict(rows=16, cols=8, serial_bits=8, tree_regs=4, y_stream_bits=128),
    dict(rows=7, cols=9, act_bits=8, serial_bits=4, act_signed=False, dpu_lanes=9),
    dict(rows=12, cols=5, act_bits=2, weight_bits=3, serial_bits=1, weight_signed=False),
    dict(rows=32, cols=2, tree_regs=2, x_stream_bits=256),
    dict(rows=3, cols=16, act_bits=8, serial_bits=2, w_stream_bits=128, dpu_lanes=4),
]


def _cfg_id(kw):
    return "-".join(f"{k}{v}" for k, v in kw.items())


def corner_vectors(cfg, bits, rng, count):
    """Random and corner activation vectors at ``bits`` runtime bits."""
    lo, hi = cfg.act_range_at(bits)
    corners = [np.full(cfg.rows, lo), np.full(cfg.rows, hi), np.zeros(cfg.rows, int),
               np.resize([lo, hi], cfg.rows), np.eye(1, cfg.rows, cfg.rows // 2, int)[0] * hi]
    rand = [rng.integers(lo, hi + 1, cfg.rows) for _ in range(count)]
    return [np.asarray(v, dtype=np.int64) for v in corners + rand]


def corner_weights(cfg, rng):
    lo, hi = cfg.weight_range
    W = rng.integers(lo, hi + 1, (cfg.rows, cfg.cols))
    W[0, :] = lo
    if cfg.rows > 1:
        W[1, :] = hi
    return W


def run_raw(kw, seed=0, stall=0.3, count=3, ktile=True):
    """Every runtime precision, RAW results, with K-tiled accumulation over several passes."""
    cfg = CoreConfig(**kw)
    rng = np.random.default_rng(seed)
    W = corner_weights(cfg, rng)
    plan = []  # (bits, x, acc, emit)
    for bits in range(1, cfg.act_bits + 1):
        for x in corner_vectors(cfg, bits, rng, count):
            plan.append((bits, x, False, True))
    if ktile:
        for x in corner_vectors(cfg, cfg.act_bits, rng, 2):
            plan.append((cfg.act_bits, x, True, False))
        plan.append((cfg.act_bits, corner_vectors(cfg, cfg.act_bits, rng, 1)[-1], True, True))
    bench = AmaranthTB(cfg, dpu_factory=DpuStandin, seed=seed, stall=stall)

    async def main(b):
        await b.load_weights(W)
        current = None
        for n, (bits, x, acc, emit) in enumerate(plan):
            if bits != current:  # change CTRL only when idle
                await b.wait_packets(sum(p[3] for p in plan[:n]))
                await b.set_ctrl(run_bits=bits, raw=True)
                current = bits
            await b.send_vector(x, acc=acc, emit=emit)
        await b.wait_packets(sum(p[3] for p in plan))

    bench.run(main)
    expected = []
    psum = np.zeros(cfg.cols, dtype=np.int64)
    for bits, x, acc, emit in plan:
        result = mvm(cfg, W, x, act_bits=bits)[0]
        psum = accumulate(cfg, psum if acc else 0, result)
        if emit:
            expected.append(psum.tolist())
    got = [bench.result(i, raw=True) for i in range(len(bench.packets))]
    assert len(got) == len(expected) > 0
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"result {i}: {g} != {e}"
    return bench


@pytest.mark.parametrize("kw", FAST_GRID, ids=_cfg_id)
def test_raw_bit_exact_fast(kw):
    run_raw(kw)


@pytest.mark.slow
@pytest.mark.parametrize("kw", SLOW_GRID, ids=_cfg_id)
def test_raw_bit_exact_grid(kw):
    run_raw(kw, seed=1, count=4)


# ------------------------------------------------------------------------------------------
# DPU results (the real DPU), timing figures, protocol errors, CSRs.

def run_dpu(kw, seed=0, stall=0.3, count=4):
    """Corner and random vectors through the real DPU with the cocotb tests' random weights
    and DPU settings (:func:`dcim.verif.sequences.rand_weights`, ``rand_dpu``)."""
    cfg = CoreConfig(**kw)
    rng = np.random.default_rng(seed)
    W = rand_weights(cfg, rng)
    X = corner_vectors(cfg, cfg.act_bits, rng, count)
    R = rng.integers(-128, 128, (len(X), cfg.cols))
    params = rand_dpu(cfg, rng)
    bench = AmaranthTB(cfg, seed=seed, stall=stall)

    async def main(b):
        await b.set_dpu(params)
        await b.set_ctrl(run_bits=cfg.act_bits, res_en=cfg.dpu_residual)
        await b.load_weights(W)
        for i, x in enumerate(X):
            if cfg.dpu_residual:
                await b.send_residual(R[i])
            await b.send_vector(x)
        await b.wait_packets(len(X))

    bench.run(main)
    psum = mvm(cfg, W, np.array(X))
    exp = dpu(cfg, psum, params, R if cfg.dpu_residual else None)
    assert len(bench.packets) == len(X)
    for i in range(len(X)):
        assert bench.result(i, raw=False) == exp[i].tolist(), f"vector {i}"
    return bench


DPU_GRID = [
    dict(rows=4, cols=4, rounding="single"),
    dict(rows=6, cols=6, rounding="double", dpu_lanes=3, serial_bits=2, dpu_residual=False),
    dict(rows=3, cols=5, rounding="rne", act_signed=False, dpu_lanes=5, y_stream_bits=32),
]


@pytest.mark.parametrize("kw", DPU_GRID, ids=_cfg_id)
def test_dpu_results_bit_exact(kw):
    run_dpu(kw)


@pytest.mark.slow
@pytest.mark.parametrize("kw", [dict(rows=16, cols=12, rounding=r, dpu_lanes=lanes,
                                     tree_regs=2, y_stream_bits=64)
                                for r in ("single", "double", "rne") for lanes in (1, 4)],
                         ids=_cfg_id)
def test_dpu_results_grid(kw):
    run_dpu(kw, seed=2, count=6)


@pytest.mark.parametrize("kw", [dict(rows=8, cols=4, serial_bits=2, tree_regs=1),
                                dict(rows=4, cols=8, act_bits=4, serial_bits=1, tree_regs=2,
                                     dpu_lanes=2),
                                dict(rows=5, cols=3, serial_bits=8),
                                dict(rows=4, cols=12, dpu_lanes=2, y_stream_bits=32)],
                         ids=_cfg_id)
def test_latency_and_pass_interval(kw):
    """Measured RAW and DPU latency, the cycles from a result's first beat to its last, and the
    back-to-back pass interval equal the figures."""
    cfg = CoreConfig(x_stream_bits=8 * max(8, kw["rows"]), **kw)
    assert cfg.x_beats == 1
    rng = np.random.default_rng(3)
    W = corner_weights(cfg, rng)
    bench = AmaranthTB(cfg)
    results = {}

    async def main(b):
        await b.load_weights(W)
        for bits in (cfg.act_bits, 1):
            for raw in (True, False):
                await b.set_ctrl(run_bits=bits, raw=raw)
                last = await b.send_vector(np.zeros(cfg.rows, int))
                await b.wait_packets(len(b.packets) + 1)
                results[bits, raw] = b.first_valid[len(b.packets) - 1] - last
                results[bits, raw, "drain"] = b.last_beat[-1] - b.first_valid[-1]
            # back-to-back passes without EMIT
            start = len(b.updates)
            for _ in range(6):
                await b.send_vector(np.zeros(cfg.rows, int), emit=False)
            await b.tick(3 * cfg.pass_latency())
            gaps = np.diff(b.updates[start:])
            results[bits, "gap"] = sorted(set(gaps.tolist()))

    bench.run(main)
    for bits in (cfg.act_bits, 1):
        assert results[bits, True] == cfg.pass_latency(bits)
        assert results[bits, False] == cfg.result_latency(bits)
        for raw in (True, False):
            assert results[bits, raw, "drain"] == cfg.result_drain(raw)
        assert results[bits, "gap"] == [cfg.cycles_per_pass(bits)]


def test_protocol_errors_and_csrs():
    """Wrong packet lengths are dropped and flagged (W1C); ID block, legal-range writes,
    SLVERR, table read-back."""
    cfg = CoreConfig(rows=8, cols=4, x_stream_bits=32, w_stream_bits=16)
    rng = np.random.default_rng(4)
    W = corner_weights(cfg, rng)
    x = corner_vectors(cfg, 8, rng, 1)[-1]
    bench = AmaranthTB(cfg, dpu_factory=DpuStandin, stall=0.2)
    regs = bench.regs
    status, ctrl = regs["STATUS"].offset, regs["CTRL"].offset
    seen = {}

    async def main(b):
        for r in regs.registers.values():
            if r.read_only and not r.volatile and r.name not in ("STATUS", "PASSES"):
                seen[r.name] = await b.read(r.offset)
        await b.write_reg("CTRL", RUN_BITS=0, RAW=1)   # RUN_BITS 0 is illegal: unchanged, RAW set
        seen["ctrl"] = await b.read(ctrl)
        await b.set_ctrl(run_bits=8, raw=True)
        seen["unmapped"] = (await b.write(0x3000, 1), await b.read(0x3000))
        seen["bad_col"] = await b.read(regs.table("BIAS").base + 4 * cfg.cols)
        await b.write(regs.table("BIAS").addr(1), 0x12345678)
        seen["bias1"] = await b.read(regs.table("BIAS").addr(1))
        await b.load_weights(W)
        beats = [0x01010101] * cfg.x_beats
        await b.send("s_axis_x", beats, user=2, last_at=0)                 # short, then
        await b.send("s_axis_x", beats + [7], user=2, last_at=cfg.x_beats)  # long
        seen["status_x"] = await b.read(status)
        await b.send("s_axis_w", [0], last_at=0)                          # short row
        seen["status_w"] = await b.read(status)
        await b.write(status, 1 << 9)
        seen["status_clr"] = await b.read(status)
        await b.send_vector(x)
        await b.wait_packets(1)
        seen["passes"] = await b.read(regs["PASSES"].offset)

    bench.run(main)
    assert {"MAGIC", "VERSION", "ROWS", "COLS", "PREC", "DPU", "WIDTHS", "STREAMS"} <= set(seen)
    for r in regs.registers.values():
        if r.name in seen:
            assert seen[r.name] == (r.reset, 0), r.name
    assert seen["ctrl"] == (8 | 16, 0)
    assert seen["unmapped"] == (2, (0, 2))
    assert seen["bad_col"] == (0, 2)
    assert seen["bias1"] == (0x12345678, 0)
    assert seen["status_x"][0] == 1 << 9
    assert seen["status_w"][0] == (1 << 9) | (1 << 8)
    assert seen["status_clr"][0] == 1 << 8
    assert seen["passes"] == (1, 0)
    assert bench.model.errors == {"w_len": 1, "x_len": 2, "r_len": 0}
    assert len(bench.packets) == 1
    assert bench.result(0, raw=True) == mvm(cfg, W, x)[0].tolist()


def test_long_backpressure_stalls_without_loss():
    cfg = CoreConfig(rows=8, cols=4, serial_bits=2, tree_regs=2, x_stream_bits=64)
    rng = np.random.default_rng(5)
    W = corner_weights(cfg, rng)
    X = corner_vectors(cfg, 8, rng, 3)[-5:]
    bench = AmaranthTB(cfg, dpu_factory=DpuStandin)
    seen = {}

    async def main(b):
        await b.set_ctrl(run_bits=8, raw=True)
        await b.load_weights(W)
        b.block = True
        for x in X[:4]:  # one in the output buffer, one at the commit, one computing, one
            await b.send_vector(x)  # buffered: then the activation stream must stall
        await b.tick(500)
        seen["tready"] = b.ctx.get(b.dut.s_axis_x.tready)
        seen["busy"] = (await b.read(b.regs["STATUS"].offset))[0] & 1
        seen["packets"] = len(b.packets)
        b.block = False
        await b.send_vector(X[4])
        await b.wait_packets(5)

    bench.run(main)
    assert seen == {"tready": 0, "busy": 1, "packets": 0}
    assert [bench.result(i, raw=True) for i in range(5)] == mvm(cfg, W, np.array(X)).tolist()


def test_reset_in_any_state_restores_registers():
    cfg = CoreConfig(rows=8, cols=4, x_stream_bits=16)
    rng = np.random.default_rng(6)
    W = corner_weights(cfg, rng)
    x = corner_vectors(cfg, 8, rng, 1)[-1]
    bench = AmaranthTB(cfg, dpu_factory=DpuStandin)
    regs = bench.regs
    after = {}

    async def main(b):
        for r in regs.registers.values():  # scribble over every writable register
            await b.write(r.offset, 0xFFFFFFFF if r.name != "CTRL" else 0x32)
        await b.load_weights(W)
        await b.set_ctrl(run_bits=8, raw=True)
        b.block = True
        await b.send_vector(x)
        await b.send("s_axis_x", [1], user=2)  # a short packet behind it
        await b.tick(30)
        await b.reset(1)
        b.block = False
        t_reset = b.now
        for r in regs.registers.values():
            after[r.name] = (await b.read(r.offset))[0]
        after["since_reset"] = b.now - t_reset
        await b.set_ctrl(run_bits=8, raw=True)
        await b.send_vector(x)   # weights are memory: kept through reset
        await b.wait_packets(1)

    bench.run(main)
    # CYCLES counts from the reset: it reads below the cycles the reads took.
    assert 0 < after.pop("CYCLES") < after.pop("since_reset")
    assert after == {r.name: r.reset for r in regs.registers.values() if not r.volatile}
    assert len(bench.packets) == 1
    assert bench.result(0, raw=True) == mvm(cfg, W, x)[0].tolist()


def test_psum_saturates_and_flags():
    """K-tiled accumulation saturates at psum_bits (both ends) and sets STATUS.PSUM_SAT."""
    cfg = CoreConfig(rows=4, cols=2, act_bits=8, weight_bits=8, psum_bits=18)
    lo, hi = cfg.act_range
    W = np.array([[127, -128]] * cfg.rows)
    X = [np.full(cfg.rows, hi if i < 5 else lo) for i in range(10)]
    bench = AmaranthTB(cfg, dpu_factory=DpuStandin)
    flags = []

    async def main(b):
        await b.set_ctrl(run_bits=8, raw=True)
        await b.load_weights(W)
        for i, x in enumerate(X):
            await b.send_vector(x, acc=i > 0, emit=True)
            await b.wait_packets(i + 1)
            flags.append((await b.read(b.regs["STATUS"].offset))[0] >> 11 & 1)
            if flags[-1]:
                await b.write(b.regs["STATUS"].offset, 1 << 11)

    bench.run(main)
    psum, expected, sat = np.zeros(cfg.cols, dtype=np.int64), [], []
    plo, phi = cfg.psum_range
    for i, x in enumerate(X):
        exact = (psum if i else 0) + mvm(cfg, W, x)[0]
        psum = accumulate(cfg, psum if i else 0, mvm(cfg, W, x)[0])
        expected.append(psum.tolist())
        sat.append(int(bool(((exact > phi) | (exact < plo)).any())))
    assert [bench.result(i, raw=True) for i in range(len(X))] == expected
    assert flags == sat and 0 < sum(sat) < len(X)


# The cocotb test_psum_saturation's sequence; the others: tests/test_hdl_sequences.py.
@pytest.mark.parametrize("sign", [1, -1])
def test_psum_saturation_sequence(sign):
    """``test_psum_saturation``'s sequence ends at the end of the partial-sum range with
    STATUS.PSUM_SAT set."""
    cfg = CoreConfig(rows=4, cols=2, psum_bits=18)
    seq = psum_saturation(cfg, sign)
    bench = AmaranthTB(cfg, dpu_factory=DpuStandin)
    status = []

    async def main(b):
        await b.set_ctrl(raw=True)
        await b.load_weights(np.full((cfg.rows, cfg.cols), seq.weight))
        for i in range(seq.passes):
            await b.send_vector(np.full(cfg.rows, seq.act), acc=i > 0, emit=i == seq.passes - 1)
        await b.wait_packets(1)
        status.append(await b.read_reg("STATUS"))

    bench.run(main)
    lo, hi = cfg.psum_range
    assert bench.result(0, raw=True) == [hi if sign > 0 else lo] * cfg.cols
    assert bench.regs["STATUS"].field("PSUM_SAT").decode(status[0]) == 1


@pytest.mark.parametrize("kw", [dict(rows=8, cols=4, serial_bits=2, tree_regs=1),
                                dict(rows=5, cols=6, act_bits=5, serial_bits=1, tree_regs=2,
                                     dpu_lanes=2, x_stream_bits=16)], ids=_cfg_id)
def test_perf_counters(kw):
    """BUSY_CYCLES equals the model's sum of cycles_per_pass over the passes (several runtime
    precisions, stalled inputs and result backpressure, so that the pipeline holds during
    passes); CYCLES grows by exactly the cycles between two reads and is >= BUSY_CYCLES;
    PERF.CLEAR and a reset zero both; PASSES is not cleared by PERF.CLEAR."""
    cfg = CoreConfig(**kw)
    rng = np.random.default_rng(7)
    W = corner_weights(cfg, rng)
    bench = AmaranthTB(cfg, dpu_factory=DpuStandin, seed=3, stall=0.3)
    seen = []

    async def counters(b, label):
        t0 = b.now
        cycles0 = await b.read_reg("CYCLES")
        busy = await b.read_reg("BUSY_CYCLES")
        span = b.now - t0  # from the start of the first CYCLES read to that of the second
        cycles1 = await b.read_reg("CYCLES")
        seen.append((label, busy, b.model.busy_cycles, cycles0, cycles1 - cycles0, span))

    async def burst(b, n):
        for bits in range(1, cfg.act_bits + 1):
            await b.set_ctrl(run_bits=bits, raw=True)
            for x in corner_vectors(cfg, bits, rng, 1)[:n]:
                await b.send_vector(x)
            await b.wait_passes()
        await b.wait_packets(len(b.x_last))

    async def main(b):
        await b.load_weights(W)
        await counters(b, "idle")
        await burst(b, 3)
        await counters(b, "burst")
        passes = await b.read_reg("PASSES")
        await b.write_reg("PERF", CLEAR=1)
        t_clear = b.now
        cleared = await b.read_reg("BUSY_CYCLES"), await b.read_reg("CYCLES"), b.now - t_clear
        seen.append(("cleared", *cleared, passes, await b.read_reg("PASSES")))
        await burst(b, 2)
        await counters(b, "after clear")
        await b.reset(2)
        await counters(b, "reset")

    bench.run(main)
    assert [s[0] for s in seen] == ["idle", "burst", "cleared", "after clear", "reset"]
    for label, busy, model, cycles0, dcycles, span in (s for s in seen if s[0] != "cleared"):
        assert busy == model, f"{label}: BUSY_CYCLES {busy}, model {model}"
        # Every read takes as long: the two CYCLES reads sample it exactly span cycles apart.
        assert dcycles == span, f"{label}: CYCLES grew by {dcycles} in {span} cycles"
        assert busy <= cycles0
    assert seen[1][1] == sum(3 * cfg.cycles_per_pass(b) for b in range(1, cfg.act_bits + 1))
    _, busy, cycles, since, passes, passes_after = seen[2]
    assert busy == 0 and 0 < cycles < since and passes == passes_after > 0
    assert seen[3][1] == sum(2 * cfg.cycles_per_pass(b) for b in range(1, cfg.act_bits + 1))
    assert seen[4][1] == 0 and seen[4][3] < seen[3][3]
