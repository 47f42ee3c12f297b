"""cocotb tests of double-buffered weights (``weight_sets`` 2; skipped with one set), run by
:mod:`dcim.sim.runner` after :mod:`dcim.verif.test_core` and :mod:`dcim.verif.test_perf`, with
the same harness (:mod:`dcim.verif.harness`). The other tests run with two weight sets too:
:meth:`~dcim.verif.tb.TB.load_weights` loads the shadow set and the next vector swaps it in.
"""

from __future__ import annotations

from cocotb.triggers import ClockCycles

from .harness import core_test, load_random_weights, record, start
from .sequences import env, rand_dpu, rand_vectors, swap_tiles
from .streams import Packet


async def _swap_tiles(tb, tiles, sync: bool) -> list[Packet]:
    """Stream ``tiles`` (:func:`swap_tiles`): tile ``t``'s rows go into the shadow set while
    the passes of tile ``t-1`` are queued or computing, then tile ``t``'s passes, the first
    with SWAP. With ``sync`` each tile's rows are accepted before its SWAP vector is queued;
    without, rows and vectors race and the model follows the order of acceptance. Returns
    the SWAP vectors."""
    swaps = []
    for W, passes in tiles:
        last = None
        for row in W:
            last = tb.send_row(row)
        busy = not tb.x_src.idle.is_set()
        if sync:
            await last.sent.wait()
            if busy and not tb.x_src.idle.is_set():
                tb.cov.hit("weights.shadow_write_busy")
        for i, p in enumerate(passes):
            pkt = tb.send_vector(p.x, acc=p.acc, emit=p.emit, swap=i == 0)
            if i == 0:
                swaps.append(pkt)
    if tb.y_sink.pause is not None:
        tb.cov.hit("weights.swap_backpressure")
    return swaps


async def _check_w_set(tb) -> None:
    """STATUS.W_SET reads the set the model has active."""
    got = tb.regs["STATUS"].field("W_SET").decode(await tb.read_reg("STATUS"))
    assert got == tb.model.active, f"STATUS.W_SET reads {got}, model has set {tb.model.active}"
    tb.checks += 1


@core_test(lambda e: 16 * 4 * 3, 20, 1, skip=env().cfg.weight_sets != 2,
           reason="one weight set (weight_sets 1)")
async def test_weight_swaps(dut):
    """Double-buffered weights under input stalls and heavy backpressure: K-tile groups whose
    rows load into the shadow set while the previous tile computes, each swapped in by its
    first vector (SWAP); rows synchronized with the swaps, then racing them; a reset in the
    middle of the traffic (set 0 active after it); STATUS.W_SET against the model."""
    name = "test_weight_swaps"
    tb = await start(dut, name, idle="light", backpressure="heavy")
    cfg, rng = tb.cfg, tb.rng
    await tb.set_ctrl(raw=True)
    await _check_w_set(tb)
    # Both sets loaded (a swap between), so that racing rows never compute unloaded words.
    await load_random_weights(tb)
    tb.send_vector(rand_vectors(cfg, rng, 1, cfg.act_bits)[0])
    await load_random_weights(tb)
    await _swap_tiles(tb, swap_tiles(cfg, rng, 4, 4), sync=True)
    await tb.drain()
    await _check_w_set(tb)
    await tb.set_dpu(rand_dpu(cfg, rng))
    await tb.set_ctrl(raw=False)
    await _swap_tiles(tb, swap_tiles(cfg, rng, 4, 4), sync=False)
    tb.send_vector(rand_vectors(cfg, rng, 1, cfg.act_bits)[0], swap=True)  # back to back
    tb.send_vector(rand_vectors(cfg, rng, 1, cfg.act_bits)[0], swap=True)
    await tb.drain()
    await _check_w_set(tb)
    # A reset with set 1 active, while passes compute and rows of a next tile are in flight
    # (rows held in the buffer are lost, so both sets are loaded again after it).
    if not tb.model.active:
        tb.send_vector(rand_vectors(cfg, rng, 1, cfg.act_bits)[0], swap=True)
        await tb.drain()
    *tiles, (w_next, _) = swap_tiles(cfg, rng, 3, 4)
    swaps = await _swap_tiles(tb, tiles, sync=False)
    for row in w_next:
        tb.send_row(row)
    await swaps[-1].sent.wait()
    await ClockCycles(tb.clk, int(rng.integers(0, 3 * cfg.cycles_per_pass() + 1)))
    await tb.reset(int(rng.integers(1, 4)))
    got = await tb.read_reg("STATUS")
    assert got == tb.regs["STATUS"].reset, f"STATUS reads 0x{got:08X} after a reset"
    await _check_w_set(tb)
    await load_random_weights(tb)
    tb.send_vector(rand_vectors(cfg, rng, 1, cfg.act_bits)[0])
    await load_random_weights(tb)
    await tb.set_ctrl(raw=True)
    await _swap_tiles(tb, swap_tiles(cfg, rng, 3, 4), sync=True)
    await tb.drain()
    await _check_w_set(tb)
    tb.finish()
    record(name, tb)
