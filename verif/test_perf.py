"""cocotb tests of a generated core's throughput: back-to-back bursts, the performance
counters (``PERF``, ``CYCLES``, ``BUSY_CYCLES``) against the model and CoreConfig's pass
interval, the MAC/s bench (``test_throughput``, only with ``DCIM_BENCH``) and the array
utilization of a K-tiled layer with and without weight swaps (``test_k_layer``, likewise).

Run by :mod:`dcim.sim.runner` beside :mod:`dcim.verif.test_core`, with the same harness
(:mod:`dcim.verif.harness`): each test has its own testbench, seed and timeout, and fails
unless it compared something.
"""

from __future__ import annotations

import time

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import RisingEdge, Timer

from .harness import core_test, load_random_weights, not_applicable, record, start
from .sequences import CLOCK_NS, env, rand_dpu, rand_vectors, swap_tiles, timeout_us
from .tb import TB


# Where a burst is queued, in ns after a rising edge (None: in that edge's time step). A timer
# that expires at a rising edge's time resumes the test before the clock toggles in that step
# (as test_throughput's start after its idle timer does); it comes first, while the fresh
# x source still expects its partner to stay ready (verif/streams.py), and again later.
BURST_STARTS = (5 * CLOCK_NS, None, 5 * CLOCK_NS + CLOCK_NS // 2, 5 * CLOCK_NS + 3)
BURST = 16


@core_test(2 * len(BURST_STARTS) * BURST, 1, 1)
async def test_back_to_back(dut):
    """Bursts of activation vectors back to back (queued at once, no idle cycles, no
    backpressure), each queued at another point of a clock cycle (:data:`BURST_STARTS`), raw
    and DPU results: every result compared, and the core's PASSES counter equal to the passes
    the testbench saw accepted after each burst."""
    tb = await start(dut, "test_back_to_back")
    cfg = tb.cfg
    await load_random_weights(tb)
    await tb.set_dpu(rand_dpu(cfg, tb.rng))
    for raw in (False, True):
        await tb.set_ctrl(raw=raw)
        for delay in BURST_STARTS:
            X = rand_vectors(cfg, tb.rng, BURST, cfg.act_bits)
            await RisingEdge(tb.clk)
            if delay is not None:
                await Timer(delay, "ns")
            for x in X:
                tb.send_vector(x)
            await tb.drain()
            passes = await tb.read_reg("PASSES")
            assert passes == tb.model.passes & 0xFFFFFFFF, (
                f"PASSES reads {passes} after a burst queued {delay} ns after an edge, the "
                f"testbench saw {tb.model.passes} passes accepted")
            tb.checks += 1
    tb.finish()
    record("test_back_to_back", tb)


async def read_perf(tb: TB) -> tuple[int, int]:
    """``(BUSY_CYCLES, CYCLES)``, read in that order."""
    return await tb.read_reg("BUSY_CYCLES"), await tb.read_reg("CYCLES")


def utilization(before: tuple[int, int], after: tuple[int, int]) -> tuple[int, int, float]:
    """Compute cycles, cycles and array utilization between two :func:`read_perf` (the
    counters wrap at 2**32)."""
    busy, cycles = ((a - b) % (1 << 32) for a, b in zip(after, before))
    return busy, cycles, busy / max(cycles, 1)


#: Vectors per runtime precision of test_perf_counters, then the back-to-back burst.
PERF_VECTORS, PERF_BURST = 4, 32
#: Cycles by which two reads of CYCLES may differ from the simulated time between them (the
#: AXI4-Lite master's response handshake may take a cycle more or less).
CYCLES_SLACK = 2


@core_test(lambda e: PERF_VECTORS * e.cfg.act_bits + PERF_BURST, 1, 1)
async def test_perf_counters(dut):
    """BUSY_CYCLES equals the model's compute cycles (cycles_per_pass of each pass at its
    RUN_BITS) after passes at every runtime precision under input stalls and result
    backpressure; CYCLES grows by the simulated cycles between two reads (within
    :data:`CYCLES_SLACK`) and is never below BUSY_CYCLES; PERF.CLEAR zeroes both (not PASSES);
    then a burst of :data:`PERF_BURST` vectors back to back, no stalls, whose utilization
    BUSY_CYCLES / CYCLES is logged and recorded."""
    tb = await start(dut, "test_perf_counters", idle="light", backpressure="light")
    cfg = tb.cfg
    await load_random_weights(tb)
    await tb.set_dpu(rand_dpu(cfg, tb.rng))

    async def check(label: str) -> None:
        busy = await tb.read_reg("BUSY_CYCLES")
        assert busy == tb.model.busy_cycles & 0xFFFFFFFF, (
            f"{label}: BUSY_CYCLES reads {busy}, the model predicts {tb.model.busy_cycles}")
        t0 = get_sim_time("ns")
        c0 = await tb.read_reg("CYCLES")
        c1 = await tb.read_reg("CYCLES")
        dt = (get_sim_time("ns") - t0) / CLOCK_NS
        assert busy <= c0, f"{label}: BUSY_CYCLES {busy} above CYCLES {c0}"
        assert abs((c1 - c0) - dt / 2) <= CYCLES_SLACK, (
            f"{label}: CYCLES grew by {c1 - c0} between two reads, {dt / 2} cycles apart")
        tb.checks += 3
        tb.cov.hit("csr.busy_exact")

    await check("after the weights")
    for bits in range(1, cfg.act_bits + 1):
        await tb.set_ctrl(run_bits=bits, raw=bits % 2 == 1)
        for x in rand_vectors(cfg, tb.rng, PERF_VECTORS, bits):
            tb.send_vector(x)
        await tb.drain()
        await tb.wait_passes()
        await check(f"RUN_BITS {bits}")
    passes = await tb.read_reg("PASSES")
    t0 = get_sim_time("ns")
    await tb.write_reg("PERF", CLEAR=1)
    busy, cycles = await read_perf(tb)
    since = (get_sim_time("ns") - t0) / CLOCK_NS
    assert busy == 0 and 0 < cycles < since, (
        f"after PERF.CLEAR: BUSY_CYCLES {busy}, CYCLES {cycles} ({since} cycles since the write)")
    assert await tb.read_reg("PASSES") == passes, "PERF.CLEAR changed PASSES"
    tb.checks += 2
    tb.cov.hit("csr.perf_clear")
    await check("after PERF.CLEAR")
    # Back to back, no stalls, DPU results: the array utilization of the configuration.
    for port in (tb.w_src, tb.x_src, tb.y_sink):
        port.set_pause(None)
    await tb.set_ctrl(run_bits=cfg.act_bits, raw=False)
    X = rand_vectors(cfg, tb.rng, PERF_BURST, cfg.act_bits)
    before = await read_perf(tb)
    for x in X:
        tb.send_vector(x)
    await tb.drain()
    await tb.wait_passes()
    busy, cycles, util = utilization(before, await read_perf(tb))
    assert busy == PERF_BURST * cfg.cycles_per_pass()
    # the burst runs at CoreConfig's pass interval: at least PERF_BURST intervals, and at most
    # that plus one vector's latency bound (filling and draining) and the counter reads
    interval = cfg.pass_interval()
    assert PERF_BURST * interval <= cycles <= PERF_BURST * interval + cfg.latency_bound(1) + 64, (
        f"{PERF_BURST} vectors took {cycles} cycles, pass interval {interval}")
    tb.checks += 1
    cocotb.log.info("array utilization of %d vectors back to back: BUSY_CYCLES %d / CYCLES %d "
                    "= %.1f %%", PERF_BURST, busy, cycles, 100 * util)
    await check("after the burst")
    tb.finish()
    record("test_perf_counters", tb, {"busy_cycles": busy, "csr_cycles": cycles,
                                      "utilization": util})


@cocotb.test(skip=env().bench is None, timeout_time=10, timeout_unit="sec")
@not_applicable(env().bench is None, "benchmark only (DCIM_BENCH)")
async def test_throughput(dut):
    """Benchmark only (DCIM_BENCH=vectors): back-to-back DPU vectors, no stalls."""
    n = env().bench
    tb = await start(dut, "test_throughput", profile=True)
    cfg = tb.cfg
    await load_random_weights(tb)
    await tb.set_dpu(rand_dpu(cfg, tb.rng))
    X = rand_vectors(cfg, tb.rng, min(n, 256), cfg.act_bits)
    # The simulator alone: Python asleep on a timer while cocotb's C++ clock toggles.
    idle = 2000
    w0, c0 = time.perf_counter(), time.process_time()
    await Timer(idle * CLOCK_NS, "ns")
    idle_wall, idle_cpu = time.perf_counter() - w0, time.process_time() - c0
    perf0 = await read_perf(tb)
    python0 = tb.python_s  # the testbench's own Python (model, scoreboard, packing) from here
    sending = 0.0
    t0 = cocotb.utils.get_sim_time("ns")
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        t = time.perf_counter()
        tb.send_vector(X[i % len(X)])
        sending += time.perf_counter() - t
        if i % 256 == 255:
            await tb.x_src.idle.wait()
    await tb.drain(timeout_cycles=cfg.latency_bound(n))
    cycles = (cocotb.utils.get_sim_time("ns") - t0) / CLOCK_NS
    busy, csr_cycles, util = utilization(perf0, await read_perf(tb))
    cocotb.log.info("array utilization from the CSRs: BUSY_CYCLES %d / CYCLES %d = %.1f %%",
                    busy, csr_cycles, 100 * util)
    tb.finish()
    # CPU seconds of the simulator process (the Verilated model and Python share it): less
    # sensitive than wall time to other jobs on the machine
    record("test_throughput", tb, {"cycles": cycles, "wall": time.perf_counter() - w0,
                                     "cpu": time.process_time() - c0,
                                     "idle_cycles_per_s": idle / idle_wall,
                                     "idle_cycles_per_cpu_s": idle / max(idle_cpu, 1e-9),
                                     "testbench_s": tb.python_s - python0 + sending,
                                     "busy_cycles": busy, "csr_cycles": csr_cycles,
                                     "utilization": util})


#: The K-tiled, column-tiled layer of test_k_layer: row tiles x column tiles.
K_LAYER_TILES = (4, 2)


@cocotb.test(skip=env().bench is None,
             timeout_time=timeout_us(env().cfg, K_LAYER_TILES[0] * K_LAYER_TILES[1]
                                     * max(1, env().bench or 1), 2 * K_LAYER_TILES[0]
                                     * K_LAYER_TILES[1]),
             timeout_unit="us")
@not_applicable(env().bench is None, "benchmark only (DCIM_BENCH)")
async def test_k_layer(dut):
    """Benchmark only (DCIM_BENCH=vectors per tile): a layer of ``K_LAYER_TILES`` weight tiles
    (k-raw: each tile loaded once, then every vector's pass emits raw sums), the array
    utilization measured by the CSRs over the whole layer. With one weight set each tile is
    loaded after the previous tile's passes are done (``PASSES``, as a host must); with two
    the next tile's rows stream into the shadow set while the current tile computes (sent once
    the current tile's SWAP vector is accepted) and its first vector swaps it in."""
    n = env().bench
    tb = await start(dut, "test_k_layer")
    cfg, rng = tb.cfg, tb.rng
    await tb.set_ctrl(raw=True)
    tiles = swap_tiles(cfg, rng, K_LAYER_TILES[0] * K_LAYER_TILES[1], n)
    perf0 = await read_perf(tb)
    swap = None
    for W, passes in tiles:
        if cfg.weight_sets == 1:
            await tb.wait_passes()
            await tb.load_weights(W)
        else:
            if swap is not None:
                await swap.sent.wait()
            last = None
            for row in W:
                last = tb.send_row(row)
            await last.sent.wait()
        for i, p in enumerate(passes):
            pkt = tb.send_vector(p.x, swap=cfg.weight_sets == 2 and i == 0)
            swap = pkt if i == 0 else swap
    await tb.drain()
    busy, csr_cycles, util = utilization(perf0, await read_perf(tb))
    cocotb.log.info("K-tiled layer, %d weight set(s): BUSY_CYCLES %d / CYCLES %d = %.1f %%",
                    cfg.weight_sets, busy, csr_cycles, 100 * util)
    tb.finish()
    record("test_k_layer", tb, {"busy_cycles": busy, "csr_cycles": csr_cycles,
                                "utilization": util, "tiles": len(tiles), "vectors": n})
