"""cocotb tests of a generated core (run by :mod:`dcim.sim.runner`, never by pytest directly).

The stimulus comes from :mod:`dcim.verif.sequences` (shared with the Amaranth-simulator tests),
the predictions from the testbench's :class:`~dcim.verif.model.CoreModel`. The configuration,
register map and stats file come from the environment variables of :mod:`dcim.sim.runner`,
read once by :func:`dcim.verif.sequences.env`: at collection for what cocotb decides there
(timeouts, skips, the parameters of ``test_reset_in_state``), otherwise at test start. Each
test has its own testbench and coverage counters and adds its entry to the stats file. Every
random test seeds numpy from ``cocotb.RANDOM_SEED`` (mixed with the test name) and logs the
seed; the same seed reproduces the test. Every test has a simulated-time timeout scaled to the
configuration, and fails unless it compared something. The throughput tests (back-to-back
bursts, the performance counters, the bench) are in :mod:`dcim.verif.test_perf`.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, Timer

from ..golden.model import mvm_tiled
from .csr_sweep import csr_sweep
from .replay import replay
from .sequences import (CLOCK_NS, MAX_PAUSE, RunEnv, corner_chains, dpu_corner_sets, env,
                        k_tiled, protocol_error_cases, psum_saturation, rand_dpu, rand_vectors,
                        rand_weights, random_passes, replay_timeout_us, reset_states,
                        saturation_passes, seed_for, timeout_us)
from .streams import Packet, pack_beats
from .harness import (core_test, load_random_weights, not_applicable, record, send_and_drain,
                      start)


def _streams(e: RunEnv) -> list[str]:
    return ["s_axis_w", "s_axis_x"] + (["s_axis_r"] if e.cfg.dpu_residual else [])


def _unknown_outputs(dut, e: RunEnv) -> list[str]:
    """The output ports of the port table of docs/core.md holding an X or Z bit."""
    ports = ([f"{s}__tready" for s in _streams(e)]
             + [f"m_axis_y__{f}" for f in ("tdata", "tvalid", "tlast")]
             + [f"s_axil__{f}" for f in ("awready", "wready", "bresp", "bvalid", "arready",
                                        "rdata", "rresp", "rvalid")])
    return [f"{p}={getattr(dut, p).value}" for p in ports
            if set(str(getattr(dut, p).value)) - {"0", "1"}]


# The first test of the module, so that it runs at simulated time 0 in a whole regression.
@core_test(2, 1, 1)
async def test_outputs_known(dut):
    """Every output port is 0 or 1 at time 0 and after reset release, the idle handshakes are
    low, and the first results (raw and DPU) are fully known: what a 4-state simulator under
    Icarus ``-g2012`` and cocotbext-axi need (docs/core.md, Ports)."""
    e = env()
    checks = 0
    if get_sim_time() == 0:
        # Only the handshake inputs are driven (idle, reset asserted); data inputs stay X.
        for port in ([f"{s}__tvalid" for s in _streams(e)] + ["m_axis_y__tready"]
                     + [f"s_axil__{f}" for f in ("awvalid", "wvalid", "bready", "arvalid",
                                                "rready")] + ["clk"]):
            getattr(dut, port).value = 0
        dut.rst.value = 1
        await ReadOnly()
        bad = _unknown_outputs(dut, e)
        assert not bad, f"outputs unknown at time 0: {', '.join(bad)}"
        checks += 1
        await Timer(1, "ns")
    tb = await start(dut, "test_outputs_known")
    await ReadOnly()
    bad = _unknown_outputs(dut, e)
    assert not bad, f"outputs unknown after reset release: {', '.join(bad)}"
    for port in ("m_axis_y__tvalid", "s_axil__bvalid", "s_axil__rvalid"):
        assert str(getattr(dut, port).value) == "0", f"{port} is not 0 after reset"
    tb.checks += checks + 1
    await RisingEdge(tb.clk)
    await load_random_weights(tb)
    await tb.set_dpu(rand_dpu(tb.cfg, tb.rng))
    for raw in (True, False):
        await tb.set_ctrl(raw=raw)
        tb.send_vector(rand_vectors(tb.cfg, tb.rng, 1, tb.cfg.act_bits)[0])
        await tb.drain()
    tb.finish()
    record("test_outputs_known", tb)


@core_test(0, 0, 2, 40000)
async def test_csr(dut):
    """Reset values, read/write of every rw field, read-only ID block, illegal values, tables,
    SLVERR on unmapped addresses."""
    tb = await start(dut, "test_csr")
    tb.checks += await csr_sweep(tb, tb.rng, tb.cov)
    assert tb.checks > 0, "the CSR test checked nothing"
    errs = tb.stream_errors()
    assert not errs, errs[0]
    record("test_csr", tb)


# ------------------------------------------------------------------------------------------
STALLS = (("none", "none"), ("light", "light"), ("heavy", "heavy"), ("none", "heavy"))


@core_test(lambda e: e.vectors * 4, 1, 2)
@cocotb.parametrize(stall=STALLS)
async def test_random(dut, stall):
    """Constrained-random weights, vectors and DPU tables; raw and DPU results; every stall
    pattern on the inputs (idle) and on the output (backpressure)."""
    name = f"test_random[{stall[0]}/{stall[1]}]"
    tb = await start(dut, name, idle=stall[0], backpressure=stall[1])
    cfg, n = tb.cfg, env().vectors
    await load_random_weights(tb)
    await tb.set_dpu(rand_dpu(cfg, tb.rng))
    for raw in (True, False):
        await tb.set_ctrl(raw=raw)
        for p in random_passes(cfg, tb.rng, n):
            tb.send_vector(p.x, acc=p.acc, emit=p.emit)
        await tb.drain()
    if cfg.dpu_residual:
        await tb.set_ctrl(raw=False, res_en=True)
        for x in rand_vectors(cfg, tb.rng, n // 2, cfg.act_bits):
            tb.send_vector(x)
            tb.send_residual(tb.rng.integers(-128, 128, cfg.cols))
        await tb.drain()
    tb.finish()
    record(name, tb)


@core_test(lambda e: e.vectors * 2 * 8, 1, 1)
async def test_precisions(dut):
    """Every runtime precision 1..act_bits, with random bits above the precision (ignored)."""
    tb = await start(dut, "test_precisions")
    cfg = tb.cfg
    await load_random_weights(tb)
    await tb.set_dpu(rand_dpu(cfg, tb.rng))
    for bits in range(1, cfg.act_bits + 1):
        await tb.set_ctrl(run_bits=bits, raw=bool(bits % 2))
        for x in rand_vectors(cfg, tb.rng, max(2, env().vectors // 4), bits):
            tb.send_vector(x, garbage=True)
        await tb.drain()
    tb.finish()
    record("test_precisions", tb)


@core_test(lambda e: e.vectors * 4, 12, 1)
async def test_k_tiled(dut):
    """K-tiled layers deeper than rows: weights reloaded per tile, passes accumulated (ACC)
    and emitted on the last tile; the result also equals golden.mvm_tiled directly."""
    tb = await start(dut, "test_k_tiled")
    cfg = tb.cfg
    await tb.set_ctrl(raw=True)
    for depth in (3 * cfg.rows, 2 * cfg.rows + max(1, cfg.rows // 3)):
        W, x, tiles = k_tiled(cfg, tb.rng, depth)
        before = tb.sb.compared
        for w, p in tiles:
            await tb.wait_passes()
            await tb.load_weights(w)
            pkt = tb.send_vector(p.x, acc=p.acc, emit=p.emit)
        await pkt.sent.wait()
        exp = tb.model.expected[-1].values
        await tb.drain()
        assert tb.sb.compared == before + 1
        assert np.array_equal(exp, mvm_tiled(cfg, W, x)[0]), "model and golden.mvm_tiled disagree"
        tb.checks += 1
    tb.finish()
    record("test_k_tiled", tb)


@core_test(lambda e: e.vectors * 2, 3, 1)
async def test_weight_reload(dut):
    """Weights reloaded between vectors: whole array, then a few rows from a random W_ROW
    (wrapping past rows-1)."""
    tb = await start(dut, "test_weight_reload")
    cfg = tb.cfg
    await tb.set_ctrl(raw=True)
    await load_random_weights(tb)
    for rnd in range(3):
        for x in rand_vectors(cfg, tb.rng, max(2, env().vectors // 4), cfg.act_bits):
            tb.send_vector(x)
        await tb.drain()
        await tb.wait_passes()
        if rnd == 0:
            await load_random_weights(tb)
        else:
            first = int(tb.rng.integers(0, cfg.rows))
            n = int(tb.rng.integers(1, cfg.rows + 1))
            await tb.load_weights(rand_weights(cfg, tb.rng, cfg.rows)[:n], first_row=first)
            assert tb.model.w_row == (first + n) % cfg.rows
            got = await tb.read_reg("W_ROW")
            assert got == tb.model.w_row, f"W_ROW reads {got}, expected {tb.model.w_row}"
            tb.checks += 1
    tb.finish()
    record("test_weight_reload", tb)


@core_test(lambda e: saturation_passes(e.cfg) + 40, 4, 4,
       skip=env().sim == "icarus" and saturation_passes(env().cfg) > 200,
           reason="over 200 saturation passes: too slow in Icarus")
async def test_psum_saturation(dut):
    """The K-tiled partial sum saturates at both ends (and flags STATUS.PSUM_SAT)."""
    tb = await start(dut, "test_psum_saturation")
    cfg, sat = tb.cfg, tb.regs["STATUS"].field("PSUM_SAT")
    await tb.set_ctrl(raw=True)
    for sign in (+1, -1):
        seq = psum_saturation(cfg, sign)
        if seq is None:
            continue
        await tb.wait_passes()
        await tb.load_weights(np.full((cfg.rows, cfg.cols), seq.weight))
        x = np.full(cfg.rows, seq.act)
        for i in range(seq.passes):
            tb.send_vector(x, acc=i > 0, emit=i == seq.passes - 1)
            if i % 64 == 63:
                await tb.x_src.idle.wait()
        await tb.drain(timeout_cycles=cfg.latency_bound(seq.passes, stall=MAX_PAUSE))
        assert sat.decode(await tb.read_reg("STATUS")) == 1, \
            "STATUS.PSUM_SAT not set after saturation"
        await tb.write(tb.regs["STATUS"].offset, sat.encode(1))
        assert sat.decode(await tb.read_reg("STATUS")) == 0, "STATUS.PSUM_SAT not cleared by W1C"
        tb.checks += 2
    tb.finish()
    record("test_psum_saturation", tb)


@core_test(80, 4, 8)
async def test_corners(dut):
    """Directed corners: minimum-operand chains, bias and output saturation at both ends,
    rounding ties of both signs, zero points at the ends of int8, ReLU, shifts both ways."""
    tb = await start(dut, "test_corners")
    cfg = tb.cfg
    await tb.wait_passes()
    W, chains = corner_chains(cfg)
    await tb.load_weights(W)
    await tb.set_ctrl(raw=True)
    for x in chains:
        tb.send_vector(x)
    await tb.drain()
    # DPU corners; a random matrix and vectors under each table set.
    await tb.wait_passes()
    await load_random_weights(tb)
    for i, p in enumerate(dpu_corner_sets(cfg)):
        await tb.set_dpu(p)
        res = cfg.dpu_residual and i >= 3
        await tb.set_ctrl(raw=False, res_en=res)
        await send_and_drain(tb, rand_vectors(cfg, tb.rng, 4, cfg.act_bits), res)
    tb.finish()
    record("test_corners", tb)


@core_test(40, 3, 1)
async def test_protocol_errors(dut):
    """Short and long weight, activation and residual packets are dropped whole and set the
    sticky STATUS flags (cleared by W1C); the core then computes bit-exactly."""
    tb = await start(dut, "test_protocol_errors")
    cfg = tb.cfg
    await load_random_weights(tb)
    await tb.set_dpu(rand_dpu(cfg, tb.rng))
    await tb.set_ctrl(raw=True)
    status = tb.regs["STATUS"]
    for flag, stream, beats in protocol_error_cases(cfg):
        await tb.wait_passes()
        if stream == "w":
            before = await tb.read_reg("W_ROW")
            row = tb.rng.integers(*cfg.weight_range, endpoint=True, size=cfg.cols)
            pkt = tb.w_src.send_nowait(Packet(pack_beats(row, 8, cfg.w_lanes, beats), 0,
                                              lambda p: tb.model.weight_packet(p.beats)))
            await pkt.sent.wait()
        elif stream == "x":
            tb.send_vector(rand_vectors(cfg, tb.rng, 1, cfg.act_bits)[0], beats=beats)
            await tb.x_src.idle.wait()
        else:
            await tb.r_src.send(Packet(pack_beats(np.zeros(cfg.cols), 8, cfg.x_lanes, beats), 0,
                                       lambda p: tb.model.residual_packet(p.beats)))
        await ClockCycles(tb.clk, 4)
        if stream == "w":
            assert await tb.read_reg("W_ROW") == before, f"a {beats}-beat weight row moved W_ROW"
        word = await tb.read_reg("STATUS")
        assert status.field(flag).decode(word) == 1, f"{flag} not set by a {beats}-beat packet"
        await tb.write(status.offset, status.encode(**{flag: 1}))
        word = await tb.read_reg("STATUS")
        assert status.field(flag).decode(word) == 0, f"{flag} not cleared by writing 1"
        tb.cov.hit("csr.w1c")
        tb.checks += 2
        # Correct operation right after the bad packet.
        for x in rand_vectors(cfg, tb.rng, 2, cfg.act_bits):
            tb.send_vector(x)
        await tb.drain()
    tb.finish()
    record("test_protocol_errors", tb)


@core_test(30, 3, 2, 5000)
@cocotb.parametrize(state=reset_states(env().cfg))
async def test_reset_in_state(dut, state):
    """Reset asserted at a random point of a state, then registers at reset values and a
    bit-exact operation."""
    name = f"test_reset_in_state[{state}]"
    tb = await start(dut, name)
    rng, cfg = tb.rng, tb.cfg
    hold = {"on": False}

    def held():  # tready low while hold["on"]
        while True:
            yield 1 if hold["on"] else 0
    tb.y_sink.set_pause(held())
    await load_random_weights(tb)
    await tb.set_dpu(rand_dpu(cfg, rng))
    await tb.set_ctrl(raw=state in ("output", "output_stalled") and bool(rng.integers(0, 2)),
                      res_en=state == "residual_wait")
    x = rand_vectors(cfg, rng, 1, cfg.act_bits)[0]
    in_state = False
    tvalid = {"w_load": tb.w_src.bus.tvalid, "x_recv": tb.x_src.bus.tvalid}
    if state in ("w_load", "x_recv"):
        # Reset while the packet is in transfer: from its first tvalid to its last handshake.
        src = tb.w_src if state == "w_load" else tb.x_src
        src.set_pause(iter(lambda: int(rng.integers(0, 3)), None))
        if state == "w_load":
            pkt = src.send_nowait(Packet(pack_beats(rand_weights(cfg, rng)[0], 8, cfg.w_lanes)))
            beats = cfg.w_beats
        else:
            pkt = tb.send_vector(x)
            beats = cfg.x_beats
        await RisingEdge(tvalid[state])
        await ClockCycles(tb.clk, int(rng.integers(0, 2 * beats)))
        in_state = not pkt.sent.is_set() or int(tvalid[state].value) == 1
    elif state == "compute":
        pkt = tb.send_vector(x)
        await pkt.sent.wait()
        await ClockCycles(tb.clk, int(rng.integers(0, cfg.cycles_per_pass())))
        in_state = tb.sb.compared == 0
    elif state in ("output", "output_stalled"):
        hold["on"] = True
        tb.y_sink.flush()  # restart the sink so that it holds tready low from now on
        pkt = tb.send_vector(x)
        await pkt.sent.wait()
        if not int(tb.y_sink.bus.tvalid.value):
            await RisingEdge(tb.y_sink.bus.tvalid)
        if state == "output":
            hold["on"] = False
            await ClockCycles(tb.clk, int(rng.integers(0, cfg.y_beats(tb.model.raw))))
        else:
            await ClockCycles(tb.clk, int(rng.integers(1, 21)))
        in_state = tb.sb.compared == 0
    elif state == "residual_wait":
        pkt = tb.send_vector(x)
        await pkt.sent.wait()
        await ClockCycles(tb.clk, cfg.cycles_per_pass() + cfg.tree_regs + 10
                          + int(rng.integers(0, 20)))
        in_state = tb.sb.compared == 0
    else:
        await ClockCycles(tb.clk, int(rng.integers(1, 20)))
        in_state = True
    cocotb.log.info("reset in state %s (still in it: %s)", state, in_state)
    if in_state:
        tb.cov.hit(f"reset.{state}")
    hold["on"] = False
    for port in (tb.w_src, tb.x_src, tb.y_sink):
        port.set_pause(None)
    await tb.reset(int(rng.integers(1, 4)))
    for reg in ("CTRL", "STATUS", "PASSES", "W_ROW", "OUT_ZP", "ACT_MIN", "ACT_MAX"):
        got = await tb.read_reg(reg)
        assert got == tb.regs[reg].reset, f"{reg} reads 0x{got:08X} after a reset in " \
            f"{state}, reset value 0x{tb.regs[reg].reset:08X}"
        tb.checks += 1
    await load_random_weights(tb)
    await tb.set_dpu(rand_dpu(cfg, rng))
    await tb.set_ctrl(raw=bool(rng.integers(0, 2)))
    for v in rand_vectors(cfg, rng, 3, cfg.act_bits):
        tb.send_vector(v)
    await tb.drain()
    tb.finish()
    record(name, tb, {"in_state": in_state})


@cocotb.test(skip=env().replay is None, timeout_time=replay_timeout_us(env().cfg, env().replay),
             timeout_unit="us")
@not_applicable(env().replay is None, "replay only (dcim regress --vectors DIR)")
async def test_replay(dut):
    """Replay only (``dcim regress --vectors DIR``): an exported layer's tiles, every output
    compared with the exported expected codes."""
    tb = await start(dut, "test_replay")
    stats = await replay(tb, env().replay)
    tb.finish()
    record("test_replay", tb, stats)
