"""The register-map description: consistency, generated documents, docs/core.md is current."""

import json
import re
from pathlib import Path

import pytest
from hdl_helpers import doc_decode

from dcim.golden.config import CoreConfig
from dcim.hdl.regdoc import c_header, embed_markdown, markdown
from dcim.hdl.regmap import MAGIC, Access, Field, RegMap
from dcim.verif.csr import RegMapView

DOC = Path(__file__).resolve().parents[1] / "docs" / "core.md"
CONFIGS = [CoreConfig(), CoreConfig(rows=1, cols=1, act_bits=1, weight_bits=1),
           CoreConfig(rows=4096, cols=4096, dpu_residual=False, act_signed=False)]


def test_core_doc_is_current():
    text = DOC.read_text()
    assert embed_markdown(text, RegMap(CoreConfig())) == text


@pytest.mark.parametrize("cfg", CONFIGS)
def test_layout_is_consistent(cfg):
    rm = RegMap(cfg)
    offsets = [r.offset for r in rm.registers]
    assert len(offsets) == len(set(offsets))
    assert all(o % 4 == 0 and o < 0x4000 for o in offsets)
    for r in rm.registers:
        used = 0
        for f in r.fields:
            assert used & f.mask == 0, f"{r.name}.{f.name} overlaps"
            used |= f.mask
        assert used < 1 << 32
    tops = [t.base + 4 * cfg.cols for t in rm.tables]
    assert all(top <= 1 << rm.addr_bits for top in tops)
    assert [t.base for t in rm.tables] == sorted({t.base for t in rm.tables})


@pytest.mark.parametrize("cfg", CONFIGS)
def test_id_block_reports_config(cfg):
    rm = RegMap(cfg)
    assert rm["MAGIC"].reset == 0x4443494D == MAGIC
    assert rm["ROWS"].reset == cfg.rows
    assert rm["COLS"].reset == cfg.cols
    prec = rm["PREC"]
    assert prec.field("ACT_BITS").reset == cfg.act_bits
    assert prec.field("WEIGHT_BITS").reset == cfg.weight_bits
    assert prec.field("SERIAL_BITS").reset == cfg.serial_bits
    assert prec.field("ACT_SIGNED").reset == cfg.act_signed
    assert rm["CTRL"].field("RUN_BITS").reset == cfg.act_bits
    assert rm["ACT_MIN"].reset == 0x80 and rm["ACT_MAX"].reset == 0x7F


def test_id_block_dpu_widths_streams_by_hand():
    cfg = CoreConfig(rows=48, cols=12, dpu_lanes=3, rounding="rne", tree_regs=2,
                     x_stream_bits=32, y_stream_bits=128, dpu_residual=False)
    rm = RegMap(cfg)
    # LANES 3, ROUNDING [17:16] 2 (rne), RESIDUAL [20] 0
    assert rm["DPU"].reset == 3 | 2 << 16
    # ACC_BITS: 48 x 128^2 = 786,432 < 2^20 takes 21 signed bits; PSUM_BITS [13:8] 32;
    # TREE_REGS [20:16] 2
    assert rm["WIDTHS"].reset == 21 | 32 << 8 | 2 << 16
    # a csa tree of 4096 rows of 8-bit weights x 8 unsigned slice bits has 26 levels: the
    # field holds 20 stages (5 bits)
    deep = CoreConfig(rows=4096, cols=4, serial_bits=8, act_signed=False, tree_style="csa",
                      tree_regs=20)
    assert RegMap(deep)["WIDTHS"].field("TREE_REGS").reset == 20
    # 64-bit weight beats: 8 int8 lanes; 32-bit activation beats: 4 lanes; 128-bit results:
    # 4 words of 32 bits
    assert rm["STREAMS"].reset == 8 | 4 << 10 | 4 << 20


def test_json_and_header():
    cfg = CoreConfig(cols=48)
    rm = RegMap(cfg)
    data = json.loads(rm.to_json())
    assert data["tables"][0]["entries"] == 48
    names = [r["name"] for r in data["registers"]]
    for required in ("CTRL", "STATUS", "PASSES", "W_ROW", "OUT_ZP", "ACT_MIN", "ACT_MAX",
                     "RES_MULT", "RES_SHIFT", "RES_ZP"):
        assert required in names
    header = c_header(rm)
    defines = re.findall(r"^#define (\w+)", header, re.M)
    assert len(defines) == len(set(defines))
    assert "#define DCIM_CORE_CTRL 0x0040u" in header
    assert "#define DCIM_CORE_BIAS(c) (DCIM_CORE_BIAS_BASE + 4u * (unsigned)(c))" in header


def test_errors():
    with pytest.raises(TypeError, match=r"^cfg must be a CoreConfig, got dict$"):
        RegMap({})
    with pytest.raises(ValueError, match=r"^access must be one of ro, rw, w1c, w1p, got 'x'$"):
        Field("F", 0, 1, "x", 0, "")
    with pytest.raises(ValueError, match=r"^field F must fit bits \[0, 31\], got lsb 30 width 4$"):
        Field("F", 30, 4, "rw", 0, "")
    with pytest.raises(ValueError, match=r"^document must contain <!-- regmap:begin -->"):
        embed_markdown("no markers", RegMap(CoreConfig()))


RESIDUAL_NAMES = ("RES_EN", "ERR_R_LEN", "RES_MULT", "RES_SHIFT", "RES_ZP", "s_axis_r")


@pytest.mark.parametrize("residual", [True, False])
def test_residual_fields_only_with_a_residual_port(residual):
    """Without dpu_residual no residual register or field appears in any generated document
    (the ID field DPU.RESIDUAL, which reads 0, stays)."""
    rm = RegMap(CoreConfig(rows=8, cols=4, dpu_residual=residual))
    docs = {"md": markdown(rm), "json": rm.to_json(), "h": c_header(rm)}
    for kind, text in docs.items():
        for name in RESIDUAL_NAMES[:-1]:
            assert (name in text) == residual, (kind, name)
    assert ("s_axis_r" in docs["md"]) == residual
    assert rm["DPU"].field("RESIDUAL").reset == int(residual)
    names = {f.name for r in rm.registers for f in r.fields} | {r.name for r in rm.registers}
    assert not residual or set(RESIDUAL_NAMES[:-1]) <= names


@pytest.mark.parametrize("rows", [16, 20, 1, 4096])
def test_w_row_field_sees_the_whole_word(rows):
    """W_ROW.ROW is the whole 32-bit word with legal range 0..rows-1, so that no written value
    >= rows is truncated into a legal row (docs/core.md)."""
    f = RegMap(CoreConfig(rows=rows, cols=2))["W_ROW"].field("ROW")
    assert (f.lsb, f.width, f.legal, f.access) == (0, 32, (0, rows - 1), "rw")
    assert f"row 0..{rows - 1}" in f.desc and "ignored" in f.desc


def _name(hit):
    if isinstance(hit, tuple):
        return hit[0].name, hit[1]
    return None if hit is None else hit.name


@pytest.mark.parametrize("cfg", [CoreConfig(), CoreConfig(rows=4, cols=5, dpu_residual=False),
                                 CoreConfig(rows=2, cols=1), CoreConfig(rows=2, cols=4096)],
                         ids=["default", "5cols-nores", "1col", "4096cols"])
def test_decode_matches_the_documented_map(cfg):
    """Every one of the 2**16 byte addresses decodes to what docs/core.md says."""
    rm = RegMap(cfg)
    got = [_name(rm.decode(a)) for a in range(1 << 16)]
    want = [doc_decode(a, cfg.cols, cfg.dpu_residual) for a in range(1 << 16)]
    assert got == want
    assert _name(rm.decode(0x10000 + 0x8002)) == ("MULT", 0)  # taken modulo 2**addr_bits


def test_decode_fields_of_the_address():
    """The fields the hardware decodes: region 15..14, word 13..2; one selector per table and
    one that selects none, all in select_bits."""
    rm = RegMap(CoreConfig(rows=2, cols=3))
    assert (rm.region(0xC00C), rm.word(0xC00C), rm.word(0xC00F)) == (3, 3, 3)
    assert {rm.region(t.base) for t in rm.tables} == {1, 2, 3}
    selects = {t.select for t in rm.tables} | {rm.no_select}
    assert len(selects) == 4 and max(selects) < 1 << rm.select_bits


def test_access_is_an_enum_with_the_documented_names():
    f = Field("F", 0, 1, "w1c", 0, "")
    assert f.access is Access.W1C
    rm = RegMap(CoreConfig())
    assert rm["CTRL"].field("RAW").access is Access.RW
    data = json.loads(rm.to_json())
    ctrl = next(r for r in data["registers"] if r["name"] == "CTRL")
    assert [f["access"] for f in ctrl["fields"]] == ["rw", "rw", "rw", "w1p"]
    assert sorted(data["access_types"]) == ["ro", "rw", "w1c", "w1p"]


def test_register_view_keeps_legal_ranges_and_reset_values():
    # 20 rows: W_ROW takes 0..19; act_bits 6: RUN_BITS takes 1..6 and resets to 6
    view = RegMapView(json.loads(RegMap(CoreConfig(rows=20, act_bits=6)).to_json()))
    row = view["W_ROW"].field("ROW")
    assert row.legal == (0, 19) and row.access is Access.RW
    assert [row.written(v) for v in (0, 19, 20, 33, 1 << 31)] == [0, 19, None, None, None]
    run = view["CTRL"].field("RUN_BITS")
    assert run.legal == (1, 6) and run.reset_value == 6
    # a 4-bit field: 17 puts 0b0001 in its bits (legal), 7 and 0 are outside 1..6
    assert [run.written(v) for v in (1, 6, 7, 0, 17)] == [1, 6, None, None, 1]
    act_min = view["ACT_MIN"].field("ACT_MIN")
    assert act_min.legal is None and act_min.reset_value == -128 and act_min.reset == 0x80
    assert view["ACT_MAX"].field("ACT_MAX").reset_value == 127
    assert view["CTRL"].read_only is False and view["MAGIC"].read_only is True
