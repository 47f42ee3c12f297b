"""Replay an exported layer (``dcim calibrate --export-vectors``) on the core.

:func:`replay` drives the tiles of an export directory (:mod:`dcim.golden.quant.export`) through the
testbench's drivers, with the schedule the export names:

``stationary``
    the tile's weights loaded once; one emitting pass per vector through the DPU.
``k-reload``
    per vector, each K-pass's weight rows loaded and its pass sent with ACC (all but the first)
    and EMIT (the last); the DPU emits the result.
``k-raw``
    each K-pass's weights loaded once and every vector sent in RAW mode; the int32 partial sums
    the core emits are added on the host (saturating, :func:`dcim.golden.model.accumulate`) and
    put through :func:`dcim.golden.model.dpu`, as the mapping's host-side accumulation does.

Every output is compared with the exported expected codes; the testbench's scoreboard checks
every result packet against its own model at the same time. A mismatch names the layer, tile,
vector, column and the simulation cycle at which the (last) result packet arrived.
"""

from __future__ import annotations

import collections

import cocotb
import numpy as np

from ..golden.quant.export import load_vectors
from ..golden.model import accumulate, dpu
from .streams import unpack_beats
from .tb import CLOCK_NS, TB

__all__ = ["replay"]


def _now_ns() -> float:
    return cocotb.utils.get_sim_time("ns")


async def replay(tb: TB, path: str) -> dict:
    """Replay every tile of the export directory ``path`` on ``tb`` (already reset).

    Returns
    -------
    dict
        ``layer``, ``tiles``, ``outputs`` (values compared) and ``schedule``.

    Raises
    ------
    AssertionError
        An output differs from the exported one (layer, tile, vector, column, cycle), or the
        testbench's own checks failed.
    """
    cfg, manifest, tiles = load_vectors(path)
    assert cfg == tb.cfg, "the export was written for another configuration"
    layer, schedule = manifest["layer"], manifest["schedule"]
    raw = schedule == "k-raw"
    rows = cfg.rows
    # Result packets in arrival order: (tile, vector, pass) of the pass that emitted them.
    slots: collections.deque = collections.deque()
    got: dict = {}

    def on_packet(beats: list[int]) -> None:
        if slots:
            key = slots.popleft()
            bits = 32 if raw else 8
            lanes = cfg.y_lanes(raw)
            got[key] = (unpack_beats(beats, bits, lanes, cfg.cols), _now_ns())

    tb.add_result_listener(on_packet)
    compared = 0
    for tile in tiles:
        n_vec, passes = tile.X.shape[0], tile.W.shape[0]
        if not raw:
            await tb.set_dpu(tile.params)
        await tb.set_ctrl(raw=raw, res_en=tile.R is not None and not raw)

        def send(v: int, p: int, acc: bool, emit: bool) -> None:
            tb.send_vector(tile.X[v, p * rows:(p + 1) * rows], acc=acc, emit=emit)
            if emit:
                slots.append((tile.id, v, p))
                if tile.R is not None and not raw:
                    tb.send_residual(tile.R[v])

        if schedule == "k-reload":
            for v in range(n_vec):
                for p in range(passes):
                    await tb.wait_passes()
                    await tb.load_weights(tile.W[p])
                    send(v, p, p > 0, p == passes - 1)
        else:
            for p in range(passes):
                await tb.wait_passes()
                await tb.load_weights(tile.W[p])
                for v in range(n_vec):
                    send(v, p, False, True)
        failure = None
        try:
            await tb.drain()
        except AssertionError as exc:
            failure = exc
        out = np.zeros((n_vec, cfg.cols), dtype=np.int64)
        when = np.zeros(n_vec)
        for v in range(n_vec):
            if raw:
                psum = np.zeros(cfg.cols, dtype=np.int64)
                for p in range(passes):
                    if (tile.id, v, p) not in got:
                        break
                    vals, when[v] = got[tile.id, v, p]
                    psum = accumulate(cfg, psum, vals)
                else:
                    r = None if tile.R is None else tile.R[v]
                    out[v] = dpu(cfg, psum, tile.params, r)
                    continue
                raise AssertionError(f"layer {layer} tile {tile.id} vector {v}: pass {p} "
                                     f"never emitted a result ({failure or 'no error'})")
            else:
                key = (tile.id, v, passes - 1)
                if key not in got:
                    raise AssertionError(f"layer {layer} tile {tile.id} vector {v}: no result "
                                         f"({failure or 'no error'})")
                out[v], when[v] = got[key]
        n = tile.col1 - tile.col0
        bad = np.argwhere(out[:, :n] != tile.Y)
        if bad.size:
            v, c = (int(i) for i in bad[0])
            t = when[v]
            raise AssertionError(
                f"layer {layer} tile {tile.id} vector {v} column {c} (output channel "
                f"{tile.col0 + c}): got {out[v, c]} expected {tile.Y[v, c]} at cycle "
                f"{int(t // CLOCK_NS)} (t = {t:g} ns); {len(bad)} mismatch(es) in this tile")
        if failure is not None:
            raise failure
        compared += tile.Y.size
        cocotb.log.info("layer %s tile %d: %d vectors x %d columns bit-exact (%s)", layer,
                        tile.id, n_vec, n, schedule)
    assert compared > 0, "the replay compared nothing"
    return {"layer": layer, "tiles": len(tiles), "outputs": compared, "schedule": schedule}
