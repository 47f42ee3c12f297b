"""Layer mapping figures against hand-computed layers."""

import numpy as np
import pytest
from onnx import helper
from onnx_graphs import gemm_model, init, model

from dcim.golden.config import CoreConfig
from dcim.golden.quant.mapping import map_layers, totals
from dcim.golden.quant.onnx_import import import_model
from dcim.golden.quant.qmodel import plan


def _mapped(m, in_shape, cfg, batch=1):
    g = import_model(m)
    layers = plan(g)
    shapes = {k: v.shape for k, v in g.forward(np.zeros((1, *in_shape)), keep_all=True).items()}
    return map_layers(cfg, layers, shapes, batch)


def _conv16():
    node = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1])
    pool = helper.make_node("MaxPool", ["c"], ["y"], name="pool", kernel_shape=[2, 2],
                            strides=[2, 2])
    return model([node, pool], [init("w", np.ones((16, 16, 3, 3)))], [16, 8, 8])


def test_conv_on_default_core():
    # rows 64, cols 32, 8 cycles per pass, 8 activation beats, DPU 32 cycles (1 lane),
    # 4 int8 / 16 int32 result beats (automatic 64-bit streams), 4 beats per weight row: a tile
    # loads in 64 * 4 = 256 cycles (the weight stream never stalls).
    conv, pool = _mapped(_conv16(), (16, 8, 8), CoreConfig(dpu_lanes=1))
    small = _mapped(_conv16(), (16, 8, 8), CoreConfig(rows=256, x_stream_bits=128,
                                                      dpu_lanes=1))[0]
    assert (small.row_tiles, small.schedule, small.bound) == (1, "stationary", "DPU")
    assert small.cycles == 256 * 4 + 64 * 32  # one tile load, then DPU-bound emitting passes
    assert (conv.K, conv.N, conv.vectors) == (144, 16, 64)
    assert (conv.row_tiles, conv.col_tiles, conv.passes) == (3, 1, 192)
    assert conv.macs == 64 * 144 * 16
    assert conv.compute_cycles == 192 * 8
    # k-raw: each of the 3 tiles loaded once (256 cycles), then 192 passes, each bound by its
    # 16-beat int32 result and the cycle that frees the output buffer after its last beat.
    # (k-reload: 64 * (3 * 256 + 2 * 8 + 32) = 52224 cycles.)
    assert conv.load_cycles == 3 * 256
    assert conv.cycles == 768 + 192 * 17
    assert (conv.schedule, conv.bound) == ("k-raw", "result stream")
    assert conv.utilization == pytest.approx(147456 / (192 * 64 * 32))
    assert (pool.passes, pool.cycles, pool.on_array) == (0, 0, False)


def test_gemm_stream_bound_and_batch():
    # 1 compute cycle; 8 activation beats, 16 int32 result beats
    cfg = CoreConfig(serial_bits=8, dpu_lanes=32, x_stream_bits=64, y_stream_bits=64)
    (fc,) = _mapped(gemm_model(np.ones((70, 100)), np.zeros(70)), (100,), cfg)
    assert (fc.row_tiles, fc.col_tiles, fc.passes, fc.macs) == (2, 3, 6, 7000)
    # One vector: reloading the two row tiles per column tile (3 * (2 * 256 + 8 + 8) = 1584)
    # beats loading all six once and emitting raw sums (1536 + 6 * 17 = 1638).
    assert fc.load_cycles == 6 * 256
    assert fc.cycles == 3 * (2 * 256 + 8 + 8)
    assert (fc.schedule, fc.bound) == ("k-reload", "activation stream")
    (fc4,) = _mapped(gemm_model(np.ones((70, 100)), np.zeros(70)), (100,), cfg, batch=4)
    assert (fc4.vectors, fc4.passes, fc4.load_cycles) == (4, 24, 1536)
    assert fc4.cycles == 1536 + 24 * 17
    assert (fc4.schedule, fc4.bound) == ("k-raw", "result stream")
    t = totals(cfg, [fc4], 100.0, batch=4)
    assert t.peak_tops == pytest.approx(2 * 64 * 32 * 100e6 / 1e12)
    assert t.effective_tops == pytest.approx(2 * 28000 * 100e6 / fc4.cycles / 1e12)
    assert t.inferences_per_s == pytest.approx(4 * 100e6 / fc4.cycles)
    assert t.utilization == pytest.approx(28000 / (24 * 2048))


def test_errors():
    with pytest.raises(ValueError, match=r"^batch must be an int >= 1, got 0$"):
        _mapped(_conv16(), (16, 8, 8), CoreConfig(), batch=0)
    with pytest.raises(ValueError, match=r"^clock must be a positive frequency in MHz, "
                                         r"got -1$"):
        totals(CoreConfig(), [], -1)


def _depthwise(c=32, k=3, hw=8):
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="dw", group=c, pads=[1, 1, 1, 1])
    return model([node], [init("w", np.ones((c, 1, k, k)))], [c, hw, hw])


def test_depthwise_conv_real_utilization():
    # 32 channels of 3x3 on 64x32: a channel is 9 rows of one column; 7 channels per tile
    # (63 rows), so 5 tiles; each of the 64 output pixels is one vector per tile.
    (dw,) = _mapped(_depthwise(), (32, 8, 8), CoreConfig())
    assert (dw.kind, dw.K, dw.N, dw.vectors) == ("gconv", 9, 32, 64)
    assert (dw.row_tiles, dw.col_tiles, dw.passes) == (1, 5, 64 * 5)
    assert dw.macs == 64 * 9 * 32
    assert dw.utilization == pytest.approx(9 * 32 / (5 * 64 * 32))
    assert dw.schedule == "stationary"
    # 5x5 depthwise on 16 rows: one channel (25 rows) per tile, two K-passes each.
    (dw5,) = _mapped(_depthwise(c=4, k=5), (4, 8, 8), CoreConfig(rows=16, cols=8))
    assert (dw5.K, dw5.row_tiles, dw5.col_tiles, dw5.passes) == (25, 2, 4, 36 * 2 * 4)
    assert dw5.utilization == pytest.approx(25 * 4 / (4 * 2 * 16 * 8))


def test_two_weight_sets_overlap_the_next_tile_load():
    cfg = CoreConfig(weight_sets=2)
    conv = _mapped(_conv16(), (16, 8, 8), cfg)[0]
    # k-raw, 3 tiles of 64 raw passes (17 cycles each = 1088 cycles) and 256-cycle loads:
    # the loads of tiles 2 and 3 hide under the compute of tiles 1 and 2.
    assert (conv.schedule, conv.load_cycles) == ("k-raw", 768)
    assert conv.overlapped_cycles == 2 * 256
    assert conv.cycles == 768 + 192 * 17 - 512
    one = _mapped(_conv16(), (16, 8, 8), CoreConfig())[0]
    assert one.overlapped_cycles == 0 and one.cycles - conv.cycles == 512
    # k-reload of one vector (fc: 2 row tiles x 3 column tiles, 8-cycle passes, 8 x-beats):
    # 6 tiles in a chain, 5 overlapped, each by the pass before it (8 cycles: 3 accumulating,
    # 2 emitting ones, whose 8 beats bound them too).
    fast = CoreConfig(serial_bits=8, dpu_lanes=32, weight_sets=2, x_stream_bits=64,
                      y_stream_bits=64)
    (fc,) = _mapped(gemm_model(np.ones((70, 100)), np.zeros(70)), (100,), fast)
    assert (fc.schedule, fc.overlapped_cycles) == ("k-reload", 5 * 8)
    assert fc.cycles == 3 * (2 * 256 + 8 + 8) - 40
    t = totals(fast, [fc], 100.0)
    assert t.overlapped_cycles == 40 and t.cycles == fc.cycles
