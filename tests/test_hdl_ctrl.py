"""The components of ``ctrl`` on their own in Amaranth's simulator: the CSR block decodes every
address as docs/core.md documents it, the stream receivers keep the packet rules."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator
from hdl_helpers import doc_decode

from dcim.golden.config import CoreConfig
from dcim.hdl.csr import CsrBlock
from dcim.hdl.regmap import RegMap
from dcim.hdl.rx import ActivationReceiver, StreamReceiver

OKAY, SLVERR = 0, 2  # AXI4-Lite responses


def _table_word(sel, col):
    """What the stand-in DPU returns for a table read: its selector and column."""
    return 0xA5000000 | sel << 16 | col


def _csr_transactions(cfg, addrs):
    """Write and then read each address of ``addrs`` through the CSR block's AXI4-Lite port,
    with a stand-in DPU on its table port. Returns per address the bresp, what the table port
    showed in the write cycle ``(we, sel, addr, wdata)``, the rresp and the rdata."""
    dut = CsrBlock(cfg)
    bus, tbl = dut.bus, dut.tables
    seen = []

    async def bench(ctx):
        ctx.set(bus.bready, 1)
        ctx.set(bus.rready, 1)
        for n, addr in enumerate(addrs):
            data = 0x5A000000 | n
            ctx.set(bus.awaddr, addr)
            ctx.set(bus.wdata, data)
            ctx.set(bus.awvalid, 1)
            ctx.set(bus.wvalid, 1)
            assert ctx.get(bus.awready)
            await ctx.tick()
            ctx.set(bus.awvalid, 0)
            ctx.set(bus.wvalid, 0)
            port = tuple(ctx.get(v) for v in (tbl.we, tbl.sel, tbl.addr, tbl.wdata))
            await ctx.tick()
            assert ctx.get(bus.bvalid)
            bresp = ctx.get(bus.bresp)
            await ctx.tick()
            ctx.set(bus.araddr, addr)
            ctx.set(bus.arvalid, 1)
            assert ctx.get(bus.arready)
            await ctx.tick()
            ctx.set(bus.arvalid, 0)
            # the DPU answers for the selector and column the block presents
            ctx.set(tbl.rdata, _table_word(ctx.get(tbl.sel), ctx.get(tbl.addr)))
            await ctx.tick().repeat(2)
            assert ctx.get(bus.rvalid)
            seen.append((bresp, port, ctx.get(bus.rresp), ctx.get(bus.rdata), data))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen


@pytest.mark.parametrize("kw", [dict(rows=4, cols=5), dict(rows=3, cols=4, dpu_residual=False),
                                dict(rows=2, cols=1)], ids=["5cols", "4cols-nores", "1col"])
def test_csr_block_decodes_the_documented_map(kw):
    """Registers answer OKAY and never reach the tables; table entry c of the table the
    document places at an address is written and read on the table port with that table's
    selector and column c; everything else, entries at or past cols included, answers SLVERR
    and writes nothing. Expectations from the map typed from docs/core.md."""
    cfg = CoreConfig(**kw)
    rm = RegMap(cfg)
    addrs = list(range(0, 0x80, 4)) + [0x41, 0x4E, 0x3FFC, 0x3FFF]
    for base in (0x4000, 0x8000, 0xC000):
        addrs += [base + 4 * c + c % 4 for c in range(cfg.cols + 2)]
        addrs += [base + 0x3FFC, base - 4]
    addrs += [0xFFFC, 0x10000 - 1]
    seen = _csr_transactions(cfg, addrs)
    for addr, (bresp, (we, sel, col, wdata), rresp, rdata, data) in zip(addrs, seen):
        where = doc_decode(addr, cfg.cols, cfg.dpu_residual)
        assert (bresp, rresp) == ((SLVERR, SLVERR) if where is None else (OKAY, OKAY)), hex(addr)
        if isinstance(where, tuple):
            name, c = where
            select = rm.table(name).select
            assert (we, sel, col, wdata) == (1, select, c, data), hex(addr)
            assert rdata == _table_word(select, c), hex(addr)
        else:
            assert we == 0, hex(addr)
            if where is None:
                assert rdata == 0, hex(addr)
    # the ID registers read what the document says
    by_addr = dict(zip(addrs, seen))
    assert by_addr[0x00][3] == 0x4443494D                    # MAGIC
    assert by_addr[0x08][3] == cfg.rows and by_addr[0x0C][3] == cfg.cols
    assert by_addr[0x64][3] == (addrs.index(0x64) & 0xFF)     # ACT_MIN took the write


# ------------------------------------------------------------------------------------------
# Receivers


def _drive(dut, packets, *, take_when_full=False, run_bits=None):
    """Send ``packets`` (lists of (tdata, tlast, tuser)) into ``dut``, one beat per cycle when
    ready; record every cycle (tready, full, err, data, user, bits). With ``take_when_full``
    the consumer takes a full buffer after one cycle."""
    s, buf, st = dut.s, dut.buf, dut.status
    log = []
    beats = [b for p in packets for b in p]

    async def bench(ctx):
        if run_bits is not None:
            ctx.set(st.run_bits, run_bits[0])
        i = cycles = 0
        full_for = 0
        while (i < len(beats) or ctx.get(buf.full)) and cycles < 200:
            if i < len(beats):
                data, last, user = beats[i]
                ctx.set(s.tdata, data)
                ctx.set(s.tlast, last)
                if user is not None:
                    ctx.set(s.tuser, user)
                ctx.set(s.tvalid, 1)
            else:
                ctx.set(s.tvalid, 0)
            full_for = full_for + 1 if ctx.get(buf.full) else 0
            ctx.set(buf.take, int(take_when_full and full_for > 1))
            rec = {"ready": ctx.get(s.tready), "full": ctx.get(buf.full),
                   "err": ctx.get(st.err), "busy": ctx.get(st.busy), "data": ctx.get(buf.data),
                   "take": ctx.get(buf.take), "hs": i < len(beats) and ctx.get(s.tready)}
            if "user" in buf.signature.members:
                rec["user"] = ctx.get(buf.user.as_value())
                rec["bits"] = ctx.get(buf.bits)
            log.append(rec)
            await ctx.tick()
            cycles += 1
            if rec["hs"]:
                i += 1
                if run_bits is not None and i < len(run_bits):
                    ctx.set(st.run_bits, run_bits[i])  # from the cycle after the beat

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return log


def test_weight_receiver_packet_rules():
    """3 beats of 2 lanes for 5 columns of 4-bit weights: a good row fills the buffer and stalls
    the stream until taken (ready again in the cycle it is taken); a short and a long row are dropped with err, every beat of the long
    one consumed."""
    cfg = CoreConfig(rows=2, cols=5, weight_bits=4, w_stream_bits=16)
    assert (cfg.w_beats, cfg.w_lanes) == (3, 2)
    good = [(0x2F1E, 0, None), (0x4D3C, 0, None), (0xFF5B, 1, None)]
    short = [(0x1111, 0, None), (0x2222, 1, None)]
    long = [(0x3333, 0, None)] * 3 + [(0x4444, 1, None)]
    log = _drive(StreamReceiver.weights(cfg), [short, long, good], take_when_full=True)
    errs = [n for n, r in enumerate(log) if r["err"] and r["hs"]]
    assert len(errs) == 2                                    # the short and the long row
    fills = [r for r in log if r["full"]]
    assert fills, "the good row never filled the buffer"
    # low 4 bits of each byte lane, column c at bits [4c, 4c+4); lane 1 of beat 2 is past cols
    assert fills[0]["data"] == 0xE | 0xF << 4 | 0xC << 8 | 0xD << 12 | 0xB << 16
    # stalled while full, ready again in the cycle the buffer is taken (rows back to back)
    assert all(bool(r["ready"]) == bool(r["take"]) for r in fills)
    assert any(r["take"] for r in fills) and any(not r["take"] for r in fills)
    assert sum(r["hs"] for r in log) == len(short) + len(long) + len(good)
    assert all(r["busy"] for r in log if r["full"])


def test_activation_receiver_extends_by_run_bits_and_overlaps():
    """RUN_BITS as the first beat arrives sets the precision of the whole packet (later
    changes do not); tuser is the first beat's; the buffer takes the next packet's first beat
    in the cycle it is taken."""
    cfg = CoreConfig(rows=4, cols=1, act_bits=8, x_stream_bits=16)
    assert (cfg.x_beats, cfg.x_lanes) == (2, 2)
    # bytes 0x05 0xFB | 0x7F 0x80 at 3 bits, signed: 0b101 -> -3, 0b011 -> 3, 0b111 -> -1, 0
    first = [(0xFB05, 0, 0b10), (0x807F, 1, 0b01)]
    second = [(0x0101, 0, 0b11), (0x0202, 1, 0b00)]
    log = _drive(ActivationReceiver(cfg), [first, second], take_when_full=True,
                 run_bits=[3, 8, 8, 2])
    fills = [r for r in log if r["full"]]
    vals = [(fills[0]["data"] >> (8 * k)) & 0xFF for k in range(4)]
    assert vals == [(-3) & 0xFF, 3, (-1) & 0xFF, 0]
    assert (fills[0]["user"], fills[0]["bits"]) == (0b10, 3)
    # the second packet's first beat is accepted in the cycle the first packet is taken
    taken = [n for n, r in enumerate(log) if r["take"]]
    assert taken and log[taken[0]]["ready"] and log[taken[0]]["hs"]
    last = [r for r in log if r["full"]][-1]
    assert (last["user"], last["bits"]) == (0b11, 8)
    assert [(last["data"] >> (8 * k)) & 0xFF for k in range(4)] == [1, 1, 2, 2]
