"""The configuration object: validation messages, derived figures, serialization."""

import json

import numpy as np
import pytest

from dcim.golden.config import CoreConfig, Rounding, signed_bits_for, value_range


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"rows": 0}, ValueError, r"^rows must be in \[1, 4096\], got 0$"),
        ({"rows": 4097}, ValueError, r"^rows must be in \[1, 4096\], got 4097$"),
        ({"rows": 8.0}, TypeError, r"^rows must be an int in \[1, 4096\], got float 8\.0$"),
        ({"rows": True}, TypeError, r"^rows must be an int in \[1, 4096\], got bool True$"),
        ({"cols": 0}, ValueError, r"^cols must be in \[1, 4096\], got 0$"),
        ({"cols": "8"}, TypeError, r"^cols must be an int in \[1, 4096\], got str '8'$"),
        ({"act_bits": 9}, ValueError, r"^act_bits must be in \[1, 8\], got 9$"),
        ({"weight_bits": 0}, ValueError, r"^weight_bits must be in \[1, 8\], got 0$"),
        ({"act_signed": 1}, TypeError, r"^act_signed must be a bool \(true or false\), got int 1$"),
        ({"weight_signed": "yes"}, TypeError,
         r"^weight_signed must be a bool \(true or false\), got str 'yes'$"),
        ({"serial_bits": 3}, ValueError, r"^serial_bits must be one of \(1, 2, 4, 8\), got 3$"),
        ({"serial_bits": 2.0}, TypeError,
         r"^serial_bits must be an int, one of \(1, 2, 4, 8\), got float 2\.0$"),
        ({"act_bits": 6, "serial_bits": 4}, ValueError,
         r"^serial_bits must divide act_bits \(6\), got 4$"),
        ({"rows": 64, "acc_bits": 21}, ValueError, r"^acc_bits must be in \[22, 32\], got 21$"),
        ({"acc_bits": 33}, ValueError, r"^acc_bits must be in \[22, 32\], got 33$"),
        ({"psum_bits": 33}, ValueError, r"^psum_bits must be in \[22, 32\], got 33$"),
        ({"acc_bits": 30, "psum_bits": 24}, ValueError,
         r"^acc_bits must be in \[22, 24\], got 30$"),
        ({"cols": 32, "dpu_lanes": 3}, ValueError, r"^dpu_lanes must divide cols \(32\), got 3$"),
        ({"cols": 32, "dpu_lanes": 64}, ValueError, r"^dpu_lanes must be in \[1, 32\], got 64$"),
        ({"dpu_residual": None}, TypeError, r"^dpu_residual must be a bool"),
        ({"rounding": "floor"}, ValueError,
         r"^rounding must be one of single, double, rne, got 'floor'$"),
        ({"rounding": 1}, TypeError,
         r"^rounding must be a str, one of single, double, rne, got int"),
        ({"rows": 64, "tree_regs": 7}, ValueError,
         r"^tree_regs must be in \[0, 6\] with tree_style ripple \(6 tree levels at 64 rows\), "
         r"got 7 \(tree_style csa places up to 11\)$"),
        ({"rows": 64, "tree_regs": 12, "tree_style": "csa"}, ValueError,
         r"^tree_regs must be in \[0, 11\] with tree_style csa \(11 tree levels at 64 rows\), "
         r"got 12$"),
        ({"tree_style": "wallace"}, ValueError, r"^tree_style must be one of ripple, csa, "
         r"got 'wallace'$"),
        ({"tree_style": 1}, TypeError, r"^tree_style must be a str, one of ripple, csa, got int"),
        ({"weight_sets": 3}, ValueError, r"^weight_sets must be in \[1, 2\], got 3$"),
        ({"weight_sets": 0}, ValueError, r"^weight_sets must be in \[1, 2\], got 0$"),
        ({"weight_sets": True}, TypeError, r"^weight_sets must be an int in \[1, 2\], got bool"),
        ({"x_stream_bits": 12}, ValueError,
         r"^x_stream_bits must be a multiple of 8 in \[8, 4096\], got 12$"),
        ({"w_stream_bits": 0}, ValueError, r"^w_stream_bits must be in \[8, 4096\], got 0$"),
        ({"y_stream_bits": 48}, ValueError,
         r"^y_stream_bits must be a multiple of 32 in \[32, 4096\], got 48$"),
        ({"name": "module"}, ValueError, r"^name must be a Verilog identifier .*got 'module'$"),
        ({"name": "1core"}, ValueError, r"^name must be a Verilog identifier .*got '1core'$"),
        ({"name": "a-b"}, ValueError, r"^name must be a Verilog identifier .*got 'a-b'$"),
        ({"name": 5}, TypeError, r"^name must be a str \(a Verilog identifier\), got int 5$"),
    ],
)
def test_validation_messages(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        CoreConfig(**kwargs)


def test_runtime_bits_validation():
    cfg = CoreConfig(act_bits=4, serial_bits=2)
    with pytest.raises(ValueError, match=r"^act_bits \(runtime\) must be in \[1, 4\], got 5$"):
        cfg.cycles_per_pass(5)
    assert [cfg.cycles_per_pass(b) for b in (1, 2, 3, 4)] == [1, 1, 2, 2]


@pytest.mark.parametrize(
    ("rows", "ab", "wb", "asg", "wsg", "expect"),
    [
        # rows * 128 * 128 = 2**20 at 64 rows needs 22 signed bits (2**20 <= 2**21 - 1).
        (64, 8, 8, True, True, 22),
        (1, 8, 8, True, True, 16),   # 16384 = -128 * -128 needs 16 bits
        (4096, 8, 8, True, True, 28),
        (1, 1, 1, False, False, 2),  # 0..1 as a signed value
        (3, 8, 8, False, False, 19),  # 3 * 255 * 255 = 195075 < 2**18
        (2, 8, 8, True, False, 17),  # 2 * -128 * 255 = -65280 >= -2**16; 2 * 127 * 255 < 2**16
    ],
)
def test_min_acc_bits(rows, ab, wb, asg, wsg, expect):
    cfg = CoreConfig(rows=rows, act_bits=ab, weight_bits=wb, act_signed=asg, weight_signed=wsg)
    assert cfg.min_acc_bits == expect
    assert cfg.acc_width == expect
    assert cfg.acc_bits is None  # chosen automatically, and recorded as automatic


def test_acc_bits_bound_is_tight():
    # Brute force over every operand pair: the extreme products times rows need exactly that.
    for asg in (False, True):
        for wsg in (False, True):
            cfg = CoreConfig(rows=5, act_bits=3, weight_bits=2, act_signed=asg, weight_signed=wsg)
            a = range(*(lambda r: (r[0], r[1] + 1))(value_range(3, asg)))
            w = range(*(lambda r: (r[0], r[1] + 1))(value_range(2, wsg)))
            prods = [x * y for x in a for y in w]
            lo, hi = 5 * min(prods), 5 * max(prods)
            bits = 1
            while not (-(2 ** (bits - 1)) <= lo and hi < 2 ** (bits - 1)):
                bits += 1
            assert cfg.min_acc_bits == bits


def test_signed_bits_for():
    assert signed_bits_for(0, 0) == 1
    assert signed_bits_for(-1, 0) == 1
    assert signed_bits_for(0, 1) == 2
    assert signed_bits_for(-128, 127) == 8
    assert signed_bits_for(-129, 0) == 9
    assert signed_bits_for(0, 128) == 9


def test_derived_figures():
    cfg = CoreConfig(rows=64, cols=32, act_bits=8, serial_bits=2, x_stream_bits=64,
                     y_stream_bits=64)
    assert cfg.cycles_per_pass() == 4
    assert cfg.peak_macs_per_cycle == 64 * 32 / 4
    assert cfg.tree_depth == 6
    assert CoreConfig(rows=1).tree_depth == 0
    assert CoreConfig(rows=65).tree_depth == 7
    assert cfg.x_beats == 8 and cfg.w_beats == 4
    assert cfg.y_beats(raw=True) == 16 and cfg.y_beats(raw=False) == 4


def test_frozen():
    cfg = CoreConfig()
    with pytest.raises(Exception):
        cfg.rows = 3  # type: ignore[misc]


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_round_trip(tmp_path, suffix):
    cfg = CoreConfig(rows=100, cols=12, act_bits=4, serial_bits=2, act_signed=False,
                     dpu_lanes=4, rounding="rne", tree_regs=3, name="my_core")
    path = tmp_path / f"core{suffix}"
    cfg.save(path)
    assert CoreConfig.load(path) == cfg


def test_json_has_derived_and_rejects_unknown(tmp_path):
    data = json.loads(CoreConfig().to_json())
    assert data["derived"]["cycles_per_pass"] == 8
    data["rowz"] = 3
    with pytest.raises(ValueError, match=r"^unknown config key\(s\) rowz; allowed: "):
        CoreConfig.from_dict(data)


def test_load_errors(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match=r"c\.json: not valid JSON"):
        CoreConfig.load(bad)
    other = tmp_path / "c.yaml"
    other.write_text("")
    with pytest.raises(ValueError,
                       match=r"^config file must end in \.json or \.toml, got 'c\.yaml'$"):
        CoreConfig.load(other)


def test_replace_rederives_acc_bits():
    cfg = CoreConfig(rows=64)
    assert cfg.replace(rows=4096).acc_width == 28
    assert cfg.replace(rows=4096).acc_bits is None
    explicit = CoreConfig(rows=64, acc_bits=30).replace(rows=128)
    assert (explicit.acc_bits, explicit.acc_width) == (30, 30)
    # an explicit width equal to the automatic one stays explicit: it does not follow rows
    same = CoreConfig(rows=64, acc_bits=22)
    assert same.acc_width == 22 and same != CoreConfig(rows=64)
    assert CoreConfig(rows=16).acc_width == 20 and same.replace(rows=16).acc_width == 22


@pytest.mark.parametrize("suffix", [".json", ".toml"])
@pytest.mark.parametrize("acc_bits", [None, 22, 30])
def test_acc_bits_round_trips_automatic_or_explicit(tmp_path, suffix, acc_bits):
    cfg = CoreConfig(rows=64, acc_bits=acc_bits)
    path = tmp_path / f"core{suffix}"
    cfg.save(path)
    back = CoreConfig.load(path)
    assert back == cfg and back.acc_bits == acc_bits
    # an automatic width is None in JSON and absent from TOML; both record the width in use
    text = path.read_text()
    if suffix == ".json":
        data = json.loads(text)
        assert data["acc_bits"] == acc_bits
        assert data["derived"]["acc_width"] == (22 if acc_bits is None else acc_bits)
    else:
        fields = text.split("[derived]")[0]
        assert ("acc_bits = " in fields) == (acc_bits is not None)


def test_latency_figures_by_hand():
    # The DPU pipeline has seven stages whatever the fields (tests/test_hdl_dpu.py measures it
    # on the RTL, tests/test_hdl_core.py the pass and result latencies).
    base = CoreConfig(rows=64, cols=32, dpu_lanes=1)
    others = [CoreConfig(rounding=r, dpu_lanes=4, cols=8, dpu_residual=res, psum_bits=24)
              for r in ("single", "double", "rne") for res in (False, True)]
    assert {c.dpu_latency for c in others} == {base.dpu_latency} == {7}
    # 8 compute cycles + vector buffer, accumulate and commit
    assert base.pass_latency() == base.pass_latency(8) == 11
    assert base.pass_latency(3) == 6
    # + 8 int8 results in the first 64-bit beat through one DPU lane, + the DPU pipeline
    assert base.result_latency() == 11 + 8 + 7
    # serial_bits 2: 4 compute cycles, 2 tree registers; 8 results over 4 lanes
    cfg = CoreConfig(rows=16, cols=8, serial_bits=2, tree_regs=2, dpu_lanes=4)
    assert cfg.pass_latency() == 4 + 2 + 3
    assert cfg.result_latency() == 9 + 2 + 7


def test_dpu_groups():
    assert CoreConfig(cols=32, dpu_lanes=4).dpu_groups == 8
    assert CoreConfig(cols=12, dpu_lanes=12).dpu_groups == 1


def test_k_passes_and_col_tiles():
    cfg = CoreConfig(rows=64, cols=32)
    assert [cfg.k_passes(k) for k in (1, 63, 64, 65, 128, 129)] == [1, 1, 1, 2, 2, 3]
    assert [cfg.col_tiles(n) for n in (1, 32, 33, 100)] == [1, 1, 2, 4]
    assert cfg.k_passes(np.int64(200)) == 4
    with pytest.raises(ValueError, match=r"^k must be >= 1, got 0$"):
        cfg.k_passes(0)
    with pytest.raises(TypeError, match=r"^n must be an int >= 1, got float 2\.0$"):
        cfg.col_tiles(2.0)
    with pytest.raises(TypeError, match=r"^k must be an int >= 1, got bool True$"):
        cfg.k_passes(True)


@pytest.mark.parametrize(("rows", "row_bits"), [(1, 1), (2, 1), (3, 2), (64, 6), (65, 7),
                                                (4096, 12)])
def test_row_bits_by_hand(rows, row_bits):
    # a row index 0..rows-1: 0 needs one bit, 63 six, 64 seven, 4095 twelve
    assert CoreConfig(rows=rows, cols=4).row_bits == row_bits


@pytest.mark.parametrize(("cols", "col_bits"), [(1, 1), (3, 2), (32, 5), (33, 6), (4096, 12)])
def test_col_bits_by_hand(cols, col_bits):
    assert CoreConfig(rows=4, cols=cols).col_bits == col_bits


@pytest.mark.parametrize(("act_bits", "precision_bits", "shamt_bits"),
                         [(1, 1, 1), (2, 2, 1), (4, 3, 2), (5, 3, 3), (7, 3, 3), (8, 4, 3)])
def test_precision_and_shift_widths_by_hand(act_bits, precision_bits, shamt_bits):
    # the precision 0..act_bits (8 = 0b1000 takes four bits); the slice shift 0..act_bits-1
    cfg = CoreConfig(act_bits=act_bits)
    assert (cfg.precision_bits, cfg.shamt_bits) == (precision_bits, shamt_bits)


def test_stored_bits_and_macs_per_cycle_by_hand():
    assert CoreConfig(rows=64, cols=32).stored_bits == 16384
    assert CoreConfig(rows=3, cols=5, weight_bits=2).stored_bits == 30
    assert CoreConfig(rows=3, cols=5, weight_bits=2, weight_sets=2).stored_bits == 60
    assert CoreConfig(rows=64, cols=32, weight_sets=2).stored_words == 4096
    cfg = CoreConfig(rows=64, cols=32, act_bits=8, serial_bits=2)
    assert cfg.macs_per_cycle() == 512          # 2048 MACs in 4 cycles
    assert cfg.macs_per_cycle(3) == 1024        # 3 bits: 2 cycles
    assert cfg.macs_per_cycle(1) == 2048


def test_latency_bound_by_hand():
    # 64x32, 64-bit streams: 8 activation beats, 16 raw result beats (2 int32 lanes), 4
    # residual beats; first DPU result 11 + 8 + 7 = 26 cycles after the last activation beat,
    # then 31 more DPU groups: 28 + 26 + 31 = 85 cycles per vector
    cfg = CoreConfig(rows=64, cols=32, dpu_lanes=1)
    assert cfg.latency_bound(1) == 85
    assert cfg.latency_bound(3) == 255
    assert cfg.latency_bound(0) == 0
    # up to 20 idle cycles before each of the 28 beats: 28 * 21 + 57
    assert cfg.latency_bound(2, stall=20) == 2 * (588 + 57)
    # no residual stage; 4 + 4 beats (32-bit activations, 2 int32 lanes), result latency 16,
    # one more DPU group of 4 lanes
    cfg = CoreConfig(rows=16, cols=8, act_bits=4, serial_bits=2, tree_regs=2, dpu_lanes=4,
                     dpu_residual=False, x_stream_bits=32)
    assert cfg.result_latency() == 16
    assert cfg.latency_bound(1) == 8 + 16 + 1
    assert cfg.latency_bound(1, stall=1) == 16 + 17
    with pytest.raises(ValueError, match=r"^n_vec must be in \[0, "):
        cfg.latency_bound(-1)
    with pytest.raises(TypeError, match=r"^stall must be an int"):
        cfg.latency_bound(1, stall=1.5)


def test_rounding_is_stored_as_its_enum_and_written_as_its_name(tmp_path):
    cfg = CoreConfig(rounding="double")
    assert cfg.rounding is Rounding.DOUBLE
    assert CoreConfig(rounding=Rounding.RNE) == CoreConfig(rounding="rne")
    assert json.loads(cfg.to_json())["rounding"] == "double"
    assert 'rounding = "double"' in cfg.to_toml()
    for suffix in (".json", ".toml"):
        cfg.save(tmp_path / f"c{suffix}")
        assert CoreConfig.load(tmp_path / f"c{suffix}").rounding is Rounding.DOUBLE


def test_pass_interval_by_hand():
    cfg = CoreConfig()  # 64x32, 8 compute cycles, 8 x beats, 8 DPU groups, 4 int8 / 16 int32 beats
    assert cfg.pass_interval(emit=False) == 8
    assert cfg.pass_interval(raw=True) == 16 + 1
    assert cfg.pass_interval() == 8
    assert cfg.array_utilization() == 1.0 and cfg.pass_bound() == "array"
    one = CoreConfig(dpu_lanes=1)  # 32 groups through one lane
    assert one.pass_interval() == 32 and one.pass_bound() == "DPU"
    assert one.array_utilization() == 8 / 32
    wide = CoreConfig(rows=256, cols=4, x_stream_bits=64)  # 32 activation beats
    assert wide.pass_interval() == 32 and wide.pass_bound() == "activation stream"
    fast = CoreConfig(rows=8, cols=8, serial_bits=8, dpu_lanes=8, y_stream_bits=32)
    # one compute cycle, one 64-bit x beat, one group; 2 int8 beats, 8 int32 beats
    assert fast.pass_interval(raw=True) == 8 + 1 and fast.pass_bound(raw=True) == "result stream"
    assert fast.pass_interval() == 2 and fast.pass_bound() == "result stream"
    d = one.derived()
    assert (d["pass_interval"], d["pass_bound"]) == (32, "DPU")
