"""The cocotb regression (`dcim regress`) on both simulators over a small config matrix.

Marker ``sim``: each case generates the Verilog, builds it for one simulator and runs every
cocotb test with one seed; the table must say pass and the scoreboard must have compared
results. Sizes are kept small so that the whole tier stays well inside CI's limit on 2 cores.
"""

import json

import pytest

from dcim.sim.cli import main

pytestmark = pytest.mark.sim


def _summary(out):
    """The records of the one regression under ``out`` (its summary.json)."""
    (path,) = out.glob("*/summary.json")
    return json.loads(path.read_text())

CONFIGS = {
    "tiny": ["--rows", "8", "--cols", "4"],
    "64x32": ["--rows", "64", "--cols", "32"],
    "npot": ["--rows", "20", "--cols", "12", "--w-stream-bits", "24", "--x-stream-bits", "40"],
    "serial4": ["--rows", "16", "--cols", "8", "--serial-bits", "4"],
    "unsigned": ["--rows", "16", "--cols", "8", "--act-signed", "false",
                 "--weight-signed", "false", "--serial-bits", "2", "--rounding", "rne"],
    "dbuf": ["--rows", "8", "--cols", "4", "--weight-sets", "2", "--tree-regs", "1"],
}


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_regress_passes(tmp_path, capsys, name, sim):
    code = main(["regress", *CONFIGS[name], "--sim", sim, "--seed", "1", "--out",
                 str(tmp_path), "--timeout", "1200"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    (rec,) = _summary(tmp_path)
    assert rec["simulator"] == sim and rec["array"] == "rtl"  # the default view up to 64x32
    assert rec["tests"] >= 15 and rec["transactions"] > 0 and rec["macs_verified"] > 0
    assert rec["result"] == "pass" and rec["errors"] == []


# The two views of the array (docs/core.md, "The column") through the same seeds: every test's
# output digest must be the same. Sizes that differ in rows, serial_bits, signedness,
# tree_regs, tree_style and weight_sets; the tests that exercise the array (the others do not
# depend on the view).
VIEW_CONFIGS = {
    "8x4-tree1": ["--rows", "8", "--cols", "4", "--tree-regs", "1"],
    "20x12-serial2": ["--rows", "20", "--cols", "12", "--serial-bits", "2", "--w-stream-bits",
                      "24", "--x-stream-bits", "40"],
    "16x8-unsigned-serial4": ["--rows", "16", "--cols", "8", "--act-signed", "false",
                              "--weight-signed", "false", "--serial-bits", "4", "--tree-regs",
                              "2"],
    "8x4-dbuf-tree1": ["--rows", "8", "--cols", "4", "--weight-sets", "2", "--tree-regs", "1"],
    "24x8-csa-dbuf-serial2": ["--rows", "24", "--cols", "8", "--tree-style", "csa",
                              "--tree-regs", "3", "--serial-bits", "2", "--weight-sets", "2"],
}
VIEW_TESTS = ("test_random|test_precisions|test_k_tiled|test_weight_reload|test_corners"
              "|test_weight_swaps")


@pytest.mark.parametrize("name", list(VIEW_CONFIGS))
def test_array_views_give_identical_outputs(tmp_path, capsys, name):
    # Both simulators at 8x4; Icarus alone at the other two sizes (a one-second build, where
    # Verilator spends a build and a second random-init run on each view).
    sim = "all" if name == "8x4-tree1" else "icarus"
    code = main(["regress", *VIEW_CONFIGS[name], "--sim", sim, "--seed", "3", "--out",
                 str(tmp_path), "--array-model", "both", "--tests", VIEW_TESTS, "-j", "2",
                 "--timeout", "1200"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    sims = ["icarus", "verilator"] if sim == "all" else [sim]
    records = {(r["simulator"], r["array"]): r for r in _summary(tmp_path)}
    assert set(records) == {(s, v) for s in sims for v in ("rtl", "fast")}, records
    for s in sims:
        rtl, fast = records[s, "rtl"], records[s, "fast"]
        assert rtl["result"] == fast["result"] == "pass", (rtl, fast)
        assert (rtl["compared_with"], rtl["outputs_compared"]) == (None, 0)
        assert fast["compared_with"] == "rtl" and fast["outputs_compared"] >= 5, fast


def test_a_broken_fast_view_fails(tmp_path, capsys, monkeypatch):
    """A one-character change in the behavioural model (the top weight bit's sign) must fail
    the view comparison and the scoreboard."""
    from dcim.sim import build

    src = build.FAST_COLUMN_SOURCE.read_text()
    broken = tmp_path / "broken.v"
    marker = "(j == WB - 1)) hi = hi - cnt;"
    assert src.count(marker) == 1
    broken.write_text(src.replace(marker, "(j == WB - 1)) hi = hi + cnt;"))
    monkeypatch.setattr(build, "FAST_COLUMN_SOURCE", broken)
    code = main(["regress", "--rows", "8", "--cols", "4", "--sim", "icarus", "--seed", "3",
                 "--out", str(tmp_path / "o"), "--array-model", "both", "--tests",
                 "test_random/stall=0$", "--timeout", "600"])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    records = {r["array"]: r for r in _summary(tmp_path / "o")}
    assert {v: r["result"] for v, r in records.items()} == {"fast": "fail", "rtl": "pass"}
    assert any("the fast array gave other outputs than the rtl array in test_random" in e
               for e in records["fast"]["errors"]), records["fast"]
    assert records["fast"]["compared_with"] == "rtl" and records["fast"]["outputs_compared"] >= 1


def test_regress_256x256_verilator(tmp_path, capsys):
    """A real size in the sim tier: 256x256 (IBM Hermes' array) on Verilator with its default
    view (fast), one seed, the tests that drive the array end to end (docs/verification.md
    has the whole list at this size)."""
    code = main(["regress", "--rows", "256", "--cols", "256", "--sim", "verilator", "--seed", "5",
                 "--out", str(tmp_path), "--tests", "test_csr|test_random/stall=0|test_k_tiled",
                 "--timeout", "2400"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    (rec,) = _summary(tmp_path)
    assert (rec["rows"], rec["cols"], rec["simulator"], rec["array"]) == \
        (256, 256, "verilator", "fast")
    assert rec["tests"] == 3 and rec["macs_verified"] >= 256 * 256 * 10
    assert rec["result"] == "pass"
