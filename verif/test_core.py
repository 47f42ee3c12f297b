"""cocotb tests of a generated core (run by :mod:`dcim.sim.runner`, never by pytest directly).

The configuration, register map and stats file come from the environment variables of
:mod:`dcim.sim.runner`. Every random test seeds numpy from ``cocotb.RANDOM_SEED`` (mixed with
the test name) and logs the seed; the same seed reproduces the test. Every test has a
simulated-time timeout scaled to the configuration, and fails unless it compared something.
"""

from __future__ import annotations

import json
import os
import time
import zlib

import cocotb
import numpy as np
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, Timer

from ..golden.arith import INT32_MAX, INT32_MIN, SHIFT_RANGE, quantize_multiplier
from ..golden.config import CoreConfig
from ..golden.quant.export import MANIFEST
from ..golden.model import DpuParams, mvm_tiled
from .coverage import Coverage
from .csr import RegMapView
from .env import ENV_CONFIG, ENV_REGMAP, ENV_REPLAY, ENV_SIM, ENV_STATS
from .replay import replay
from .streams import Packet, pack_beats
from .tb import CLOCK_NS, TB

CFG = CoreConfig.load(os.environ[ENV_CONFIG])
REGS = RegMapView.load(os.environ[ENV_REGMAP])
SIM = os.environ.get(ENV_SIM, "icarus")
XCHECK = SIM == "icarus"
COV = Coverage()
STATS: dict = {"config": CFG.fields(), "sim": SIM, "tests": {}, "coverage": {}}
#: Vectors per random test: Icarus is ~50x slower than Verilator on the same design.
N_VEC = int(os.environ.get("DCIM_VECTORS", "6" if SIM == "icarus" else "48"))

# Cycles of one vector through the core, generously: input beats, compute, DPU, output beats.
_VEC_CYCLES = (CFG.x_beats + CFG.cycles_per_pass() + CFG.tree_regs + CFG.cols
               + CFG.y_beats(True) + 40)
# CSR writes of a full DPU set-up (AXI-Lite: ~6 cycles each).
_DPU_CYCLES = 10 * (3 * CFG.cols + 10)
_W_CYCLES = 10 * CFG.rows * (CFG.w_beats + 2)


def _timeout_us(vectors: int, weight_loads: int = 1, dpu_loads: int = 1,
                extra_cycles: int = 0) -> float:
    cycles = (vectors * _VEC_CYCLES * 25 + weight_loads * _W_CYCLES * 4
              + dpu_loads * _DPU_CYCLES * 4 + extra_cycles + 20000)
    return float(-(-cycles * CLOCK_NS // 1000))  # whole microseconds: exact at 1 ps precision


def _rng(name: str) -> np.random.Generator:
    seed = (cocotb.RANDOM_SEED + zlib.crc32(name.encode())) % (1 << 32)
    cocotb.log.info("test %s: numpy seed %d (from cocotb.RANDOM_SEED=%d; rerun with that seed "
                    "to reproduce)", name, seed, cocotb.RANDOM_SEED)
    return np.random.default_rng(seed)


def _record(name: str, tb: TB, extra: dict | None = None) -> None:
    STATS["tests"][name] = {"compared": tb.sb.compared, "macs": tb.sb.macs,
                            "checks": tb.checks, "digest": tb.sb.digest.hexdigest(),
                            **(extra or {})}
    STATS["coverage"] = dict(COV.hits)
    path = os.environ.get(ENV_STATS)
    if path:
        with open(path, "w") as f:
            json.dump(STATS, f, indent=1)


async def _start(dut, name: str, idle: str = "none", backpressure: str = "none") -> TB:
    tb = TB(dut, CFG, REGS, _rng(name), COV, idle=idle, backpressure=backpressure,
            xcheck=XCHECK)
    await tb.reset()
    return tb


# ------------------------------------------------------------------------------------------
# Stimulus
def rand_weights(tb: TB, rows: int | None = None) -> np.ndarray:
    lo, hi = CFG.weight_range
    W = tb.rng.integers(lo, hi + 1, (rows or CFG.rows, CFG.cols))
    # Corners appear in every matrix: the extremes and zero.
    W.flat[tb.rng.integers(0, W.size, 3)] = (lo, hi, 0)
    return W


def rand_vectors(tb: TB, n: int, bits: int, rows: int | None = None) -> np.ndarray:
    lo, hi = CFG.act_range_at(bits)
    X = tb.rng.integers(lo, hi + 1, (n, rows or CFG.rows))
    for i in range(n):
        X[i, tb.rng.integers(0, X.shape[1], 3)] = (lo, hi, 0)
    return X


def rand_dpu(tb: TB, bits: int | None = None) -> DpuParams:
    """DPU tables that map typical partial sums onto the int8 range (so outputs are neither
    all clamped nor all zero), plus random zero points and clamps."""
    rng = tb.rng
    bits = CFG.act_bits if bits is None else bits
    wl, wh = CFG.weight_range
    al, ah = CFG.act_range_at(bits)
    spread = np.sqrt(CFG.rows) * max(abs(wl), abs(wh), 1) * max(abs(al), abs(ah), 1) / 2
    mult, shift = [], []
    for _ in range(CFG.cols):
        m, s = quantize_multiplier(float(60.0 / spread * rng.uniform(0.25, 4.0)))
        mult.append(m)
        shift.append(s)
    bias = rng.integers(-int(spread), int(spread) + 1, CFG.cols)
    lo = int(rng.integers(-128, 0))
    hi = int(rng.integers(0, 128))
    return DpuParams(bias, np.array(mult), np.array(shift), out_zp=int(rng.integers(-20, 21)),
                     act_min=lo, act_max=hi,
                     res_multiplier=quantize_multiplier(float(rng.uniform(0.2, 1.5)))[0],
                     res_shift=int(rng.integers(-2, 1)), res_zp=int(rng.integers(-30, 31)))


async def load_random_weights(tb: TB) -> np.ndarray:
    W = rand_weights(tb)
    await tb.load_weights(W)
    return W


# ------------------------------------------------------------------------------------------
def _output_ports() -> list[str]:
    """The output ports of the port table of docs/core.md."""
    streams = ["s_axis_w", "s_axis_x"] + (["s_axis_r"] if CFG.dpu_residual else [])
    return ([f"{s}__tready" for s in streams]
            + [f"m_axis_y__{f}" for f in ("tdata", "tvalid", "tlast")]
            + [f"s_axil__{f}" for f in ("awready", "wready", "bresp", "bvalid", "arready",
                                       "rdata", "rresp", "rvalid")])


def _unknown_outputs(dut) -> list[str]:
    """The output ports holding an X or Z bit, with their values."""
    out = []
    for port in _output_ports():
        value = str(getattr(dut, port).value)
        if set(value) - {"0", "1"}:
            out.append(f"{port}={value}")
    return out


# The first test of the module, so that it runs at simulated time 0 in a whole regression.
@cocotb.test(timeout_time=_timeout_us(2, 1, 1), timeout_unit="us")
async def test_outputs_known(dut):
    """Every output port is 0 or 1 at time 0 and after reset release, the idle handshakes are
    low, and the first results (raw and DPU) are fully known: what a 4-state simulator under
    Icarus ``-g2012`` and cocotbext-axi need (docs/core.md, Ports)."""
    checks = 0
    if get_sim_time() == 0:
        # Only the handshake inputs are driven (idle, reset asserted); data inputs stay X.
        streams = ["s_axis_w", "s_axis_x"] + (["s_axis_r"] if CFG.dpu_residual else [])
        for port in ([f"{s}__tvalid" for s in streams] + ["m_axis_y__tready"]
                     + [f"s_axil__{f}" for f in ("awvalid", "wvalid", "bready", "arvalid",
                                                "rready")] + ["clk"]):
            getattr(dut, port).value = 0
        dut.rst.value = 1
        await ReadOnly()
        bad = _unknown_outputs(dut)
        assert not bad, f"outputs unknown at time 0: {', '.join(bad)}"
        checks += 1
        await Timer(1, "ns")
    tb = await _start(dut, "test_outputs_known")
    await ReadOnly()
    bad = _unknown_outputs(dut)
    assert not bad, f"outputs unknown after reset release: {', '.join(bad)}"
    for port in ("m_axis_y__tvalid", "s_axil__bvalid", "s_axil__rvalid"):
        assert str(getattr(dut, port).value) == "0", f"{port} is not 0 after reset"
    tb.checks += checks + 1
    await RisingEdge(tb.clk)
    await load_random_weights(tb)
    await tb.set_dpu(rand_dpu(tb))
    for raw in (True, False):
        await tb.set_ctrl(raw=raw)
        tb.send_vector(rand_vectors(tb, 1, CFG.act_bits)[0])
        await tb.drain()
    tb.finish()
    _record("test_outputs_known", tb)


@cocotb.test(timeout_time=_timeout_us(0, 0, 2, 40000), timeout_unit="us")
async def test_csr(dut):
    """Reset values, read/write of every rw field, read-only ID block, illegal values, tables,
    SLVERR on unmapped addresses."""
    tb = await _start(dut, "test_csr")
    rng = tb.rng
    for reg in REGS.registers.values():
        got = await tb.read_reg(reg.name)
        assert got == reg.reset, f"{reg.name} reads 0x{got:08X} after reset, reset value " \
                                 f"0x{reg.reset:08X}"
        tb.checks += 1
    COV.hit("csr.reset_values")
    for reg in REGS.registers.values():
        if reg.read_only:
            await tb.write(reg.offset, ~reg.reset)
            got = await tb.read_reg(reg.name)
            assert got == reg.reset, f"read-only {reg.name} changed to 0x{got:08X} by a write"
            tb.checks += 1
    COV.hit("csr.read_only")
    for reg in REGS.registers.values():
        rw = [f for f in reg.fields if f.access == "rw"]
        if not rw:
            continue
        for _ in range(2):
            word = 0
            for f in rw:
                if f.name == "RUN_BITS":
                    v = int(rng.integers(1, CFG.act_bits + 1))
                elif f.name == "ROW":
                    v = int(rng.integers(0, CFG.rows))
                elif f.name == "RES_SHIFT":
                    v = int(rng.integers(SHIFT_RANGE[0], SHIFT_RANGE[1] + 1))
                else:
                    v = int(rng.integers(0, 1 << f.width))
                word |= f.encode(v)
            await tb.write(reg.offset, word)
            got = await tb.read_reg(reg.name)
            assert got == word, f"{reg.name}: wrote 0x{word:08X}, read 0x{got:08X}"
            tb.checks += 1
    COV.hit("csr.read_write")
    # Illegal values leave the field unchanged.
    ctrl, row = REGS["CTRL"], REGS["W_ROW"]
    await tb.write(ctrl.offset, ctrl.encode(RUN_BITS=1))
    for bad in (0, CFG.act_bits + 1):
        if bad < (1 << ctrl.field("RUN_BITS").width):
            await tb.write(ctrl.offset, ctrl.encode(RUN_BITS=bad))
            got = ctrl.field("RUN_BITS").decode(await tb.read_reg("CTRL"))
            assert got == 1, f"CTRL.RUN_BITS = {bad} was accepted (reads {got})"
            tb.checks += 1
    await tb.write(row.offset, row.encode(ROW=0))
    # docs/core.md: a write of a value >= rows leaves W_ROW unchanged, also where its low bits
    # would be a legal row (rows + 1, 2 * rows + 1; 33 at 20 rows).
    for bad in sorted({CFG.rows, CFG.rows + 1, 2 * CFG.rows + 1, max(33, CFG.rows), 1 << 16,
                       0xFFFFFFFF}):
        assert await tb.write(row.offset, bad) == 0, f"W_ROW write of {bad} not OKAY"
        got = await tb.read_reg("W_ROW")
        assert got == 0, f"W_ROW = {bad} (rows {CFG.rows}) was accepted (reads {got})"
        tb.checks += 1
    COV.hit("csr.illegal_value")
    for t in REGS.tables.values():
        idx = sorted({0, CFG.cols - 1, int(rng.integers(0, CFG.cols))})
        lo, hi = SHIFT_RANGE if t.name == "SHIFT" else (0, (1 << t.width) - 1)
        vals = {c: int(rng.integers(lo, hi + 1)) & ((1 << t.width) - 1) for c in idx}
        for c, v in vals.items():
            assert await tb.write(t.addr(c), v) == 0
        for c, v in vals.items():
            data, resp = await tb.read(t.addr(c))
            mask = (1 << t.width) - 1
            assert resp == 0 and data & mask == v, \
                f"{t.name}[{c}]: wrote 0x{v:X}, read 0x{data:X} (resp {resp})"
            # docs/core.md: signed table entries read back sign-extended to 32 bits.
            upper = data >> t.width
            ext = (1 << (32 - t.width)) - 1 if t.signed and v >> (t.width - 1) else 0
            assert upper == ext, f"{t.name}[{c}]: read 0x{data:X}, expected bits above " \
                f"{t.width} to be 0x{ext:X}"
            tb.checks += 1
        beyond = t.base + t.stride * t.entries
        if beyond < (1 << REGS.addr_bits) and beyond not in {x.base for x in REGS.tables.values()}:
            data, resp = await tb.read(beyond)
            assert resp == 2 and data == 0, f"{t.name}[cols] answered {resp} with 0x{data:X}"
            tb.checks += 1
    COV.hit("csr.tables")
    for addr in REGS.unmapped_addresses():
        data, resp = await tb.read(addr)
        assert resp == 2 and data == 0, f"unmapped 0x{addr:04X} read answered {resp}, 0x{data:X}"
        assert await tb.write(addr, 0xFFFFFFFF) == 2, f"unmapped 0x{addr:04X} write not SLVERR"
        tb.checks += 2
    COV.hit("csr.slverr")
    assert tb.checks > 0, "the CSR test checked nothing"
    errs = tb.stream_errors()
    assert not errs, errs[0]
    _record("test_csr", tb)


# ------------------------------------------------------------------------------------------
STALLS = [("none", "none"), ("light", "light"), ("heavy", "heavy"), ("none", "heavy")]


@cocotb.test(timeout_time=_timeout_us(N_VEC * 4, 1, 2), timeout_unit="us")
@cocotb.parametrize(stall=STALLS)
async def test_random(dut, stall):
    """Constrained-random weights, vectors and DPU tables; raw and DPU results; every stall
    pattern on the inputs (idle) and on the output (backpressure)."""
    name = f"test_random[{stall[0]}/{stall[1]}]"
    tb = await _start(dut, name, idle=stall[0], backpressure=stall[1])
    await load_random_weights(tb)
    await tb.set_dpu(rand_dpu(tb))
    for raw in (True, False):
        await tb.set_ctrl(raw=raw)
        for x in rand_vectors(tb, N_VEC, CFG.act_bits):
            tb.send_vector(x, acc=bool(tb.rng.random() < 0.2), emit=True)
        await tb.drain()
    if CFG.dpu_residual:
        await tb.set_ctrl(raw=False, res_en=True)
        for x in rand_vectors(tb, N_VEC // 2, CFG.act_bits):
            tb.send_vector(x)
            tb.send_residual(tb.rng.integers(-128, 128, CFG.cols))
        await tb.drain()
    tb.finish()
    _record(name, tb)


@cocotb.test(timeout_time=_timeout_us(N_VEC * 2 * 8, 1, 1), timeout_unit="us")
async def test_precisions(dut):
    """Every runtime precision 1..act_bits, with random bits above the precision (ignored)."""
    tb = await _start(dut, "test_precisions")
    await load_random_weights(tb)
    await tb.set_dpu(rand_dpu(tb))
    for bits in range(1, CFG.act_bits + 1):
        await tb.set_ctrl(run_bits=bits, raw=bool(bits % 2))
        for x in rand_vectors(tb, max(2, N_VEC // 4), bits):
            tb.send_vector(x, garbage=True)
        await tb.drain()
    tb.finish()
    _record("test_precisions", tb)


@cocotb.test(timeout_time=_timeout_us(N_VEC * 4, 12, 1), timeout_unit="us")
async def test_k_tiled(dut):
    """K-tiled layers deeper than rows: weights reloaded per tile, passes accumulated (ACC)
    and emitted on the last tile; the result also equals golden.mvm_tiled directly."""
    tb = await _start(dut, "test_k_tiled")
    await tb.set_ctrl(raw=True)
    for K in (3 * CFG.rows, 2 * CFG.rows + max(1, CFG.rows // 3)):
        W = rand_weights(tb, K)
        X = rand_vectors(tb, 1, CFG.act_bits, K)[0]
        tiles = CFG.k_passes(K)
        Wp = np.zeros((tiles * CFG.rows, CFG.cols), dtype=np.int64)
        Xp = np.zeros(tiles * CFG.rows, dtype=np.int64)
        Wp[:K], Xp[:K] = W, X
        before = tb.sb.compared
        for t in range(tiles):
            await tb.wait_passes()
            await tb.load_weights(Wp[t * CFG.rows:(t + 1) * CFG.rows])
            pkt = tb.send_vector(Xp[t * CFG.rows:(t + 1) * CFG.rows], acc=t > 0,
                                 emit=t == tiles - 1)
        await pkt.sent.wait()
        exp = tb.model.expected[-1].values
        await tb.drain()
        assert tb.sb.compared == before + 1
        direct = mvm_tiled(CFG, W, X)[0]
        assert np.array_equal(exp, direct), "model and golden.mvm_tiled disagree"
        tb.checks += 1
    tb.finish()
    _record("test_k_tiled", tb)


@cocotb.test(timeout_time=_timeout_us(N_VEC * 2, 3, 1), timeout_unit="us")
async def test_weight_reload(dut):
    """Weights reloaded between vectors: whole array, then a few rows from a random W_ROW
    (wrapping past rows-1)."""
    tb = await _start(dut, "test_weight_reload")
    await tb.set_ctrl(raw=True)
    await load_random_weights(tb)
    for rnd in range(3):
        for x in rand_vectors(tb, max(2, N_VEC // 4), CFG.act_bits):
            tb.send_vector(x)
        await tb.drain()
        await tb.wait_passes()
        if rnd == 0:
            await load_random_weights(tb)
        else:
            start = int(tb.rng.integers(0, CFG.rows))
            n = int(tb.rng.integers(1, CFG.rows + 1))
            W = rand_weights(tb, CFG.rows)[:n]
            await tb.load_weights(W, first_row=start)
            assert tb.model.w_row == (start + n) % CFG.rows
            got = await tb.read_reg("W_ROW")
            assert got == tb.model.w_row, f"W_ROW reads {got}, expected {tb.model.w_row}"
            tb.checks += 1
    tb.finish()
    _record("test_weight_reload", tb)


async def _psum_saturation(tb: TB, sign: int) -> None:
    """Accumulate the largest pass of one sign until the partial sum saturates."""
    cfg = CFG
    wl, wh = cfg.weight_range
    al, ah = cfg.act_range
    cand = [(wl * al, wl, al), (wl * ah, wl, ah), (wh * al, wh, al), (wh * ah, wh, ah)]
    prod, w, a = max(cand) if sign > 0 else min(cand)
    if prod == 0:
        return
    await tb.wait_passes()
    await tb.load_weights(np.full((cfg.rows, cfg.cols), w))
    lo, hi = cfg.psum_range
    passes = (hi if sign > 0 else -lo) // abs(prod * cfg.rows) + 2
    x = np.full(cfg.rows, a)
    for i in range(passes):
        tb.send_vector(x, acc=i > 0, emit=i == passes - 1)
        if i % 64 == 63:
            await tb.x_src.idle.wait()
    await tb.drain(timeout_cycles=passes * _VEC_CYCLES)
    sat = REGS["STATUS"].field("PSUM_SAT")
    status = await tb.read_reg("STATUS")
    assert sat.decode(status) == 1, "STATUS.PSUM_SAT not set after saturation"
    await tb.write(REGS["STATUS"].offset, sat.encode(1))
    assert sat.decode(await tb.read_reg("STATUS")) == 0, "STATUS.PSUM_SAT not cleared by W1C"
    tb.checks += 2


def _saturation_passes() -> int:
    lo, hi = CFG.psum_range
    big = max(abs(CFG.acc_range[0]), abs(CFG.acc_range[1]), 1)
    return 2 * (-lo // big + 2)


@cocotb.test(timeout_time=_timeout_us(_saturation_passes() + 40, 4, 4), timeout_unit="us",
             skip=SIM == "icarus" and _saturation_passes() > 200)
async def test_psum_saturation(dut):
    """The K-tiled partial sum saturates at both ends (and flags STATUS.PSUM_SAT)."""
    tb = await _start(dut, "test_psum_saturation")
    await tb.set_ctrl(raw=True)
    await _psum_saturation(tb, +1)
    await _psum_saturation(tb, -1)
    tb.finish()
    _record("test_psum_saturation", tb)


@cocotb.test(timeout_time=_timeout_us(80, 4, 8), timeout_unit="us")
async def test_corners(dut):
    """Directed corners: minimum-operand chains, bias and output saturation at both ends,
    rounding ties of both signs, zero points at the ends of int8, ReLU, shifts both ways."""
    tb = await _start(dut, "test_corners")
    cfg = CFG
    wl, wh = cfg.weight_range
    al, ah = cfg.act_range
    await tb.wait_passes()
    W = np.full((cfg.rows, cfg.cols), wl)
    W[:, 1::2] = wh
    await tb.load_weights(W)
    chains = [np.full(cfg.rows, al), np.full(cfg.rows, ah), np.zeros(cfg.rows, dtype=np.int64)]
    await tb.set_ctrl(raw=True)
    for x in chains:
        tb.send_vector(x)
    await tb.drain()
    # DPU corners; a random matrix and vectors under each table set.
    await tb.wait_passes()
    await load_random_weights(tb)
    cols = cfg.cols
    one = np.ones(cols, dtype=np.int64)
    half = 1 << 30
    sets = [
        # ties: multiplier 0.5 with shift 0 makes every odd value a tie
        DpuParams(np.arange(cols) - cols // 2, half * one, 0 * one),
        # bias saturation at both ends, tiny scale, clamps at the ends of int8
        DpuParams(np.where(np.arange(cols) % 2, INT32_MAX, INT32_MIN), one * 3, one * -31,
                  out_zp=-128),
        DpuParams(np.where(np.arange(cols) % 2, INT32_MAX, INT32_MIN), one * INT32_MAX,
                  one * 30, out_zp=127),
        # left shift, ReLU, residual zero points at the ends
        DpuParams(0 * one, half * one, one * 2, out_zp=-3, act_min=-3, act_max=100,
                  res_multiplier=half, res_shift=0, res_zp=-128),
        DpuParams(0 * one, half * one, one * -4, out_zp=5, act_min=-20, act_max=20,
                  res_multiplier=half, res_shift=1, res_zp=127),
    ]
    for i, p in enumerate(sets):
        await tb.set_dpu(p)
        res = cfg.dpu_residual and i >= 3
        await tb.set_ctrl(raw=False, res_en=res)
        for x in rand_vectors(tb, 4, cfg.act_bits):
            tb.send_vector(x)
            if res:
                tb.send_residual(tb.rng.integers(-128, 128, cols))
        await tb.drain()
    tb.finish()
    _record("test_corners", tb)


@cocotb.test(timeout_time=_timeout_us(40, 3, 1), timeout_unit="us")
async def test_protocol_errors(dut):
    """Short and long weight, activation and residual packets are dropped whole and set the
    sticky STATUS flags (cleared by W1C); the core then computes bit-exactly."""
    tb = await _start(dut, "test_protocol_errors")
    cfg = CFG
    await load_random_weights(tb)
    await tb.set_dpu(rand_dpu(tb))
    await tb.set_ctrl(raw=True)
    status = REGS["STATUS"]
    cases = [("ERR_W_LEN", "w", cfg.w_beats - 1), ("ERR_W_LEN", "w", cfg.w_beats + 1),
             ("ERR_X_LEN", "x", cfg.x_beats - 1), ("ERR_X_LEN", "x", cfg.x_beats + 1)]
    if cfg.dpu_residual:
        cases += [("ERR_R_LEN", "r", cfg.r_beats + 1)]
        if cfg.r_beats > 1:
            cases += [("ERR_R_LEN", "r", cfg.r_beats - 1)]
    for flag, stream, beats in cases:
        if beats < 1:
            continue
        await tb.wait_passes()
        if stream == "w":
            before = await tb.read_reg("W_ROW")
            row = tb.rng.integers(*cfg.weight_range, endpoint=True, size=cfg.cols)
            pkt = tb.w_src.send_nowait(Packet(pack_beats(row, 8, cfg.w_lanes, beats), 0,
                                              lambda p: tb.model.weight_packet(p.beats)))
            await pkt.sent.wait()
        elif stream == "x":
            tb.send_vector(rand_vectors(tb, 1, cfg.act_bits)[0], beats=beats)
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
        COV.hit("csr.w1c")
        tb.checks += 2
        # Correct operation right after the bad packet.
        for x in rand_vectors(tb, 2, cfg.act_bits):
            tb.send_vector(x)
        await tb.drain()
    tb.finish()
    _record("test_protocol_errors", tb)


RESET_STATES = ["idle", "w_load", "x_recv", "compute", "output", "output_stalled"] + (
    ["residual_wait"] if CFG.dpu_residual else [])


@cocotb.test(timeout_time=_timeout_us(30, 3, 2, 5000), timeout_unit="us")
@cocotb.parametrize(state=RESET_STATES)
async def test_reset_in_state(dut, state):
    """Reset asserted at a random point of a state, then registers at reset values and a
    bit-exact operation."""
    name = f"test_reset_in_state[{state}]"
    tb = await _start(dut, name)
    rng = tb.rng
    cfg = CFG
    hold = {"on": False}

    def bp():
        while True:
            yield 1 if hold["on"] else 0
    tb.y_sink.pause = bp()
    await load_random_weights(tb)
    await tb.set_dpu(rand_dpu(tb))
    await tb.set_ctrl(raw=state in ("output", "output_stalled") and bool(rng.integers(0, 2)),
                      res_en=state == "residual_wait")
    x = rand_vectors(tb, 1, cfg.act_bits)[0]
    in_state = False
    tvalid = {"w_load": tb.w_src.bus.tvalid, "x_recv": tb.x_src.bus.tvalid}
    if state in ("w_load", "x_recv"):
        # Reset while the packet is in transfer: from its first tvalid to its last handshake.
        src = tb.w_src if state == "w_load" else tb.x_src
        src.pause = iter(lambda: int(rng.integers(0, 3)), None)
        if state == "w_load":
            pkt = src.send_nowait(Packet(pack_beats(rand_weights(tb)[0], 8, cfg.w_lanes)))
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
        COV.hit(f"reset.{state}")
    hold["on"] = False
    tb.w_src.pause = tb.x_src.pause = None
    tb.y_sink.pause = None
    await tb.reset(int(rng.integers(1, 4)))
    for reg in ("CTRL", "STATUS", "PASSES", "W_ROW", "OUT_ZP", "ACT_MIN", "ACT_MAX"):
        got = await tb.read_reg(reg)
        assert got == REGS[reg].reset, f"{reg} reads 0x{got:08X} after a reset in {state}, " \
                                       f"reset value 0x{REGS[reg].reset:08X}"
        tb.checks += 1
    await load_random_weights(tb)
    await tb.set_dpu(rand_dpu(tb))
    await tb.set_ctrl(raw=bool(rng.integers(0, 2)))
    for v in rand_vectors(tb, 3, cfg.act_bits):
        tb.send_vector(v)
    await tb.drain()
    tb.finish()
    _record(name, tb, {"in_state": in_state})


@cocotb.test(skip=os.environ.get("DCIM_BENCH") is None, timeout_time=10, timeout_unit="sec")
async def test_throughput(dut):
    """Benchmark only (DCIM_BENCH=vectors): back-to-back DPU vectors, no stalls."""
    n = int(os.environ.get("DCIM_BENCH", "0"))
    tb = await _start(dut, "test_throughput")
    await load_random_weights(tb)
    await tb.set_dpu(rand_dpu(tb))
    X = rand_vectors(tb, min(n, 256), CFG.act_bits)
    # The simulator alone: Python asleep on a timer while cocotb's C++ clock toggles.
    idle = 2000
    w0, c0 = time.perf_counter(), time.process_time()
    await Timer(idle * CLOCK_NS, "ns")
    idle_wall, idle_cpu = time.perf_counter() - w0, time.process_time() - c0
    # Time spent in the testbench's own Python (model, scoreboard, packing).
    spent = [0.0]

    def timed(fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - t
        return wrapper
    tb.model.activation_packet = timed(tb.model.activation_packet)
    tb.y_sink.on_packet = timed(tb.y_sink.on_packet)
    tb.send_vector = timed(tb.send_vector)
    t0 = cocotb.utils.get_sim_time("ns")
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        tb.send_vector(X[i % len(X)])
        if i % 256 == 255:
            await tb.x_src.idle.wait()
    await tb.drain(timeout_cycles=n * _VEC_CYCLES)
    cycles = (cocotb.utils.get_sim_time("ns") - t0) / CLOCK_NS
    tb.finish()
    # CPU seconds of the simulator process (the Verilated model and Python share it): less
    # sensitive than wall time to other jobs on the machine
    _record("test_throughput", tb, {"cycles": cycles, "wall": time.perf_counter() - w0,
                                     "cpu": time.process_time() - c0,
                                     "idle_cycles_per_s": idle / idle_wall,
                                     "idle_cycles_per_cpu_s": idle / max(idle_cpu, 1e-9),
                                     "testbench_s": spent[0]})


def _replay_timeout_us() -> float:
    path = os.environ.get(ENV_REPLAY)
    if not path:
        return 1.0
    with open(os.path.join(path, MANIFEST)) as f:
        m = json.load(f)
    n_tiles, passes, vectors = len(m["tiles"]), m["passes"], m["vectors"]
    loads = n_tiles * passes * (vectors if m["schedule"] == "k-reload" else 1)
    return _timeout_us(n_tiles * passes * vectors, loads, n_tiles, 200 * loads)


@cocotb.test(skip=os.environ.get(ENV_REPLAY) is None, timeout_time=_replay_timeout_us(),
             timeout_unit="us")
async def test_replay(dut):
    """Replay only (``dcim regress --vectors DIR``): an exported layer's tiles, every output
    compared with the exported expected codes."""
    tb = await _start(dut, "test_replay")
    stats = await replay(tb, os.environ[ENV_REPLAY])
    tb.finish()
    _record("test_replay", tb, stats)
