"""verif/sequences.py and verif/csr_sweep.py without a simulator: budgets, environment, the
saturation sequence against golden, and a CSR sweep that fails on a bench breaking the map."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from dcim.golden.config import CoreConfig
from dcim.golden.model import accumulate, mvm
from dcim.hdl.regmap import RegMap
from dcim.verif import sequences
from dcim.verif.csr import RegMapView
from dcim.verif.csr_sweep import csr_sweep
from dcim.verif.env import ENV_CONFIG, ENV_REGMAP, ENV_SIM


def test_timeout_is_the_documented_sum():
    # 8x4, defaults: one x, w and residual beat, 4 int32 sums in two 64-bit result beats
    cfg = CoreConfig(rows=8, cols=4)
    assert (cfg.x_beats, cfg.w_beats, cfg.r_beats, cfg.y_beats(True)) == (1, 1, 1, 2)
    # one vector alone: 4 beats, each after up to 20 stall cycles; 8 compute cycles + 3 to the
    # raw result, 4 DPU groups (one lane) for the first int8 beat's 4 columns, 7 DPU stages;
    # and the bound's 3 further DPU groups
    one = 4 * 21 + (8 + 3) + 4 + 7 + 3
    assert cfg.latency_bound(1, stall=sequences.MAX_PAUSE) == one
    cycles = 4 * 3 * one + 2 * (10 * 8 * 3) * 4 + 1 * (10 * (3 * 4 + 10)) * 4 + 7 + 20000
    assert sequences.timeout_us(cfg, 3, 2, 1, 7) == -(-cycles * 10 // 1000)


def test_env_is_read_once(monkeypatch, tmp_path):
    cfg = CoreConfig(rows=4, cols=2)
    cfg.save(tmp_path / "core.json")
    (tmp_path / "regs.json").write_text(__import__("json").dumps(RegMap(cfg).to_dict()))
    monkeypatch.setenv(ENV_CONFIG, str(tmp_path / "core.json"))
    monkeypatch.setenv(ENV_REGMAP, str(tmp_path / "regs.json"))
    monkeypatch.setenv(ENV_SIM, "verilator")
    monkeypatch.delenv("DCIM_VECTORS", raising=False)
    sequences.env.cache_clear()
    try:
        e = sequences.env()
        monkeypatch.setenv(ENV_SIM, "icarus")
        assert sequences.env() is e
        assert (e.cfg, e.sim, e.vectors, e.xcheck, e.bench) == (cfg, "verilator", 48, False,
                                                                None)
    finally:
        sequences.env.cache_clear()


@pytest.mark.parametrize("kw", [dict(rows=4, cols=2, psum_bits=18),
                                dict(rows=3, cols=2, act_bits=4, weight_bits=3, psum_bits=16),
                                dict(rows=4, cols=2, act_signed=False, psum_bits=20)])
@pytest.mark.parametrize("sign", [1, -1])
def test_psum_saturation_reaches_the_end_of_the_range(kw, sign):
    cfg = CoreConfig(**kw)
    seq = sequences.psum_saturation(cfg, sign)
    if not cfg.act_signed and not cfg.weight_signed and sign < 0:
        assert seq is None
        return
    assert seq is not None and seq.passes <= sequences.saturation_passes(cfg)
    W = np.full((cfg.rows, cfg.cols), seq.weight)
    psum = np.zeros(cfg.cols, dtype=np.int64)
    for _ in range(seq.passes):
        psum = accumulate(cfg, psum, mvm(cfg, W, np.full(cfg.rows, seq.act))[0])
    lo, hi = cfg.psum_range
    assert psum.tolist() == [hi if sign > 0 else lo] * cfg.cols


def test_random_stimulus_stays_in_range_and_has_its_corners():
    # The corners go to three random positions; a repeated position keeps the last (zero).
    cfg = CoreConfig(rows=16, cols=8, act_bits=6)
    rng = np.random.default_rng(1)
    W = sequences.rand_weights(cfg, rng)
    lo, hi = cfg.weight_range
    assert lo <= W.min() and W.max() <= hi and (W == 0).any()
    for bits in (1, 3, 6):
        X = sequences.rand_vectors(cfg, rng, 20, bits)
        a, b = cfg.act_range_at(bits)
        assert X.min() >= a and X.max() <= b and (X == 0).any(axis=1).all()
        assert sum(x.min() == a and x.max() == b for x in X) >= 15
    passes = sequences.random_passes(cfg, rng, 50)
    assert all(p.emit for p in passes) and 0 < sum(p.acc for p in passes) < 50
    assert sequences.seed_for(3, "test_x") == sequences.seed_for(3, "test_x") != \
        sequences.seed_for(3, "test_y")


def test_illegal_values_are_just_outside_the_legal_range():
    regs = RegMapView(RegMap(CoreConfig(rows=20, cols=4, act_bits=8)).to_dict())
    run_bits = regs["CTRL"].field("RUN_BITS")  # legal 1..8 in 4 bits
    assert run_bits.legal == (1, 8) and sequences.illegal_values(run_bits) == [0, 9]
    assert all(run_bits.written(run_bits.encode(v)) is None
               for v in sequences.illegal_values(run_bits))
    assert sequences.illegal_values(regs["OUT_ZP"].field("OUT_ZP")) == []  # every value legal
    assert {20, 21, 41, 33, 1 << 16, 0xFFFFFFFF} == set(sequences.illegal_w_rows(CoreConfig(
        rows=20, cols=4)))


class _Memory:
    """A bench whose every address is a plain read/write word: it breaks the register map
    (reset values, read-only registers, illegal values, SLVERR)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.regs = RegMapView(RegMap(cfg).to_dict())
        self.mem = {r.offset: r.reset for r in self.regs.registers.values()}

    async def read(self, addr):
        return self.mem.get(addr, 0), 0

    async def write(self, addr, word):
        self.mem[addr] = word & 0xFFFFFFFF
        return 0

    async def read_reg(self, name):
        return (await self.read(self.regs[name].offset))[0]


def test_csr_sweep_fails_on_a_bench_that_breaks_the_map():
    bench = _Memory(CoreConfig(rows=8, cols=4))
    with pytest.raises(AssertionError, match="read-only .* changed"):
        asyncio.run(csr_sweep(bench, np.random.default_rng(0)))
